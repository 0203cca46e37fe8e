"""Values shared by the njs and Python paths of the container emulation, and the error pages the
servers in front of them (nginx, gunicorn, falcon) produce.
"""

from __future__ import annotations

import http
import json
import re
from dataclasses import dataclass, field
from xml.etree import ElementTree

from kdiag.diagnosis.findings import Finding
from kdiag.path.trace import StageRecord

# JavaScript's whitespace (ECMA-262 WhiteSpace + LineTerminator), used by String.prototype.trim
# and by \s in the njs regexes. Python's str.strip() and re's \s differ (they include
# \x1c-\x1f and \x85), so the emulation spells the set out.
JS_WS = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008" \
        "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
JS_WS_CLASS = "[" + re.escape(JS_WS) + "]"

# nginx.conf.template: `default_type application/json;` for answers that set no Content-Type.
NGINX_DEFAULT_TYPE = "application/json"
# nginx writes its version in error pages (server_tokens on); the image's nginx version is not
# pinned in the container sources, so kdiag writes the bare name.
NGINX_TOKEN = "nginx"
# nginx: client_body_buffer_size 100m; a larger body is written to a file and njs throws.
NJS_BODY_BUFFER = 100 * 1024 * 1024

DEFAULT_REST_PORT = 8501
DEFAULT_GRPC_PORT = "9000"


def js_trim(text: str) -> str:
    return text.strip(JS_WS)


@dataclass
class TfsTarget:
    """The TF Serving REST call the container makes."""

    model: str
    version: int | None
    method: str = "predict"
    # The version text exactly as it goes into the URI (G1/G2 forward any text, e.g. "v1").
    raw_version: str | None = None

    @property
    def uri(self) -> str:
        uri = f"/v1/models/{self.model}"
        v = self.raw_version if self.raw_version is not None else (
            None if self.version is None else str(self.version))
        if v is not None:
            uri += f"/versions/{v}"
        return f"{uri}:{self.method}"

    @property
    def rest_uri(self) -> str:
        return f"http://localhost:{DEFAULT_REST_PORT}{self.uri}"


def make_target(model: str, version: str | None, method: str) -> TfsTarget:
    parsed = int(version) if version is not None and version.isascii() and version.isdigit() \
        else None
    return TfsTarget(model=model, version=parsed, method=method, raw_version=version)


@dataclass
class AttrError:
    """The container's own answer to custom attributes it cannot use."""

    status: int
    body: str
    content_type: str | None
    message: str


@dataclass
class ContainerResult:
    """What the container did with a request.

    Either `forwarded` (the exact text POSTed to TF Serving at `target`) is set, or the container
    answered by itself (`status`, `body`, `content_type`). On the Python path with user handlers
    the final answer comes from `run_python_path`, which also fills `status`/`body`.
    """

    forwarded: str | None
    target: TfsTarget | None
    status: int | None
    body: str | None
    path: str  # "njs" | "python" | "python-default"
    findings: list[Finding] = field(default_factory=list)
    record: StageRecord | None = None
    notes: list[str] = field(default_factory=list)
    content_type: str | None = None
    # How the body was rewritten: "tfs-json", "json-lines", "instances-list", "wrapped",
    # "csv", "raw" (Python default handler), "handler" (user code); None if not forwarded.
    mode: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    # Python path with user code: every body sent to TF Serving, as bytes on the wire.
    tfs_requests: list[tuple[bytes, TfsTarget]] = field(default_factory=list)
    startup_error: str | None = None
    # The answer body as bytes when it may not be text (Python handlers can return binary).
    body_bytes: bytes | None = None


@dataclass
class ContainerResponse:
    """What the container answers once TF Serving has answered."""

    status: int | None
    content_type: str | None
    body: str | None
    path: str
    findings: list[Finding] = field(default_factory=list)
    record: StageRecord | None = None
    notes: list[str] = field(default_factory=list)


def finding(code: str, severity: str, message: str, fix: str = "",
            stage: str = "container") -> Finding:
    return Finding(code=code, severity=severity, stage=stage, message=message, fix=fix)


def js_stringify_error(message: str) -> str:
    """`JSON.stringify({error: String(message)})` (G3 tensorflowServing.js return_error)."""
    return json.dumps({"error": message}, ensure_ascii=False, separators=(",", ":"))


def nginx_error_page(status: int) -> str:
    """nginx's built-in error page (ngx_http_special_response.c), e.g. for a JS exception (500) or a
    dead upstream (502)."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    title = f"{status} {phrase}".strip()
    return (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>{NGINX_TOKEN}</center>\r\n"
            "</body>\r\n</html>\r\n")


# gunicorn util.write_error with reason "Internal Server Error" and an empty message: what an
# exception that escapes falcon 2.0 (G1, DLC TF 2.2-2.6) turns into (errata §14).
GUNICORN_500 = ("<html>\n  <head>\n    <title>Internal Server Error</title>\n  </head>\n"
                "  <body>\n    <h1><p>Internal Server Error</p></h1>\n    \n  </body>\n</html>\n")


# --- falcon 3.x error serialisation -------------------------------------------------------------
# falcon.app_helpers.default_serialize_error: client_prefers(('application/xml', 'text/xml',
# 'application/json')) through the vendored python-mimeparse best_match; else '+json'/'+xml' in
# Accept; else no body (errata §1, checked against falcon 3.1.0).

def _parse_media_range(text: str) -> tuple[str, str, dict[str, str]]:
    parts = text.split(";")
    params: dict[str, str] = {}
    for p in parts[1:]:
        if "=" in p:
            k, v = p.split("=", 1)
            params[k.strip()] = v.strip()
    full = parts[0].strip()
    if full == "*":
        full = "*/*"
    main, sub = full.split("/")  # ValueError on a malformed range, as in mimeparse
    q = params.get("q")
    try:
        qf = float(q) if q else 0.0
    except ValueError:
        qf = 0.0
    if not q or not qf or qf > 1 or qf < 0:
        params["q"] = "1"
    return main.strip(), sub.strip(), params


def _fitness(mime: str, ranges: list[tuple[str, str, dict[str, str]]]) -> tuple[float, int]:
    t_main, t_sub, t_params = _parse_media_range(mime)
    best_fit, best_q = -1, 0.0
    for main, sub, params in ranges:
        if (main == t_main or main == "*" or t_main == "*") and (
                sub == t_sub or sub == "*" or t_sub == "*"):
            fit = (100 if main == t_main else 0) + (10 if sub == t_sub else 0)
            fit += sum(1 for k, v in t_params.items() if k != "q" and params.get(k) == v)
            if fit > best_fit:
                best_fit, best_q = fit, float(params["q"])
    return best_q, best_fit


def client_prefers(accept: str | None, choices: tuple[str, ...]) -> str | None:
    """falcon Request.client_prefers: mimeparse.best_match, '' (None) when nothing fits."""
    header = accept or "*/*"
    try:
        ranges = [_parse_media_range(r) for r in header.split(",") if r.strip()]
        scored = sorted((_fitness(m, ranges), i, m) for i, m in enumerate(choices))
    except (ValueError, IndexError):
        return None
    (q, _fit), _i, mime = scored[-1]
    return mime if q else None


def falcon_status_line(code: int) -> str:
    """falcon.code_to_http_status for an int (falcon's table; http.HTTPStatus phrases agree for
    every status TF Serving emits)."""
    try:
        return f"{code} {http.HTTPStatus(code).phrase}"
    except ValueError:
        return f"{code} Unknown"


def falcon_error(title: str, description: str | None, accept: str | None
                 ) -> tuple[str, str]:
    """(content_type, body) of a falcon 3 HTTPError as the default serializer writes it."""
    preferred = client_prefers(accept, ("application/xml", "text/xml", "application/json"))
    if preferred is None:
        low = (accept or "*/*").lower()
        if "+json" in low:
            preferred = "application/json"
        elif "+xml" in low:
            preferred = "application/xml"
    if preferred is None:
        # No body; falcon's Response keeps its default media type.
        return "application/json", ""
    doc: dict[str, str] = {"title": title}
    if description is not None:
        doc["description"] = description
    if preferred == "application/json":
        # HTTPError.to_json: json.dumps(..., ensure_ascii=False) with default separators.
        return preferred, json.dumps(doc, ensure_ascii=False)
    root = ElementTree.Element("error")
    for k, v in doc.items():
        ElementTree.SubElement(root, k).text = v
    xml = ElementTree.tostring(root, encoding="unicode")
    return preferred, '<?xml version="1.0" encoding="UTF-8"?>' + xml


def unhandled_500(falcon_major: int, accept: str | None) -> tuple[str, str]:
    """(content_type, body) when an exception escapes the falcon responder (errata §14)."""
    if falcon_major < 3:
        return "text/html", GUNICORN_500
    return falcon_error("500 Internal Server Error", None, accept)
