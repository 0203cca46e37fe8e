"""The Python path: gunicorn + falcon running python_service.py, with the user's code/inference.py
or the built-in default handler.

Sources: python_service.py and tfs_utils.py of each generation (commits in generations.py).
G1 python_service.py l.45-57 (default_handler), l.228-272 (_handle_invocation_post), l.279-305
(_import_handlers/_make_handler); G2 l.62-73, l.356-464; G3 l.62-71, l.452-549; tfs_utils.py
parse_request/make_tfs_uri/parse_tfs_custom_attributes (G1/G2 l.41-85, G3 l.37-112).

Running user handlers executes user code in this process: only `run_python_path` (given a code
directory by the caller) does it.
"""

from __future__ import annotations

import ast
import collections
import contextlib
import importlib.util
import io
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from kdiag.path.container_common import (
    DEFAULT_GRPC_PORT,
    DEFAULT_REST_PORT,
    AttrError,
    ContainerResult,
    TfsTarget,
    falcon_error,
    falcon_status_line,
    finding,
    make_target,
    nginx_error_page,
    unhandled_500,
)
from kdiag.path.generations import Generation, Request

# tfs_utils.py: re.findall(r"(tfs-[a-z\-]+=[^,]+)", header)
_PY_ATTR_RE = re.compile(r"(tfs-[a-z\-]+=[^,]+)")
# G3 tfs_utils.py l.37-39 (Python re semantics: \d is Unicode, $ allows a final newline)
_G3_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,254}\Z")
_G3_VERSION_RE = re.compile(r"^\d+$")
_G3_METHODS = frozenset({"predict", "classify", "regress"})
# G3 python_service.py l.491-503
_G3_DEFAULT_TYPES = frozenset({"application/json", "application/jsonlines", "application/jsons",
                               "text/csv"})
DEFAULT_CONTENT_TYPE = "application/json"  # tfs_utils.DEFAULT_CONTENT_TYPE
DEFAULT_ACCEPT = "application/json"  # tfs_utils.DEFAULT_ACCEPT_HEADER
NOT_IMPLEMENTED = "Handlers are not implemented correctly in user script."
TOOLKIT_FUNCTIONS = ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")


def select_path(gen: Generation, *, has_inference: bool, has_requirements: bool = False,
                has_lib: bool = False, multi_model: bool = False,
                universal_bucket: bool = False) -> str:
    """serve.py _need_python_service + python_service.py's choice of handler."""
    present = {"inference.py": has_inference, "requirements.txt": has_requirements,
               "lib": has_lib}
    python = multi_model or universal_bucket or any(present[t] for t in gen.python_triggers)
    if not python:
        return "njs"
    return "python" if has_inference else "python-default"


def parse_attributes(header: str | None, gen: Generation, accept: str | None,
                     default_model: str) -> tuple[dict[str, str], TfsTarget] | AttrError:
    """parse_tfs_custom_attributes + make_tfs_uri of the Python service."""
    attrs: dict[str, str] = {}
    if header:
        matches = _PY_ATTR_RE.findall(header)
        if gen.python_attribute_split == "strict":
            for i, m in enumerate(matches):
                parts = m.split("=")
                if len(parts) != 2:
                    # dict(attribute.split("=") ...) raises outside the request's try block.
                    msg = (f"dictionary update sequence element #{i} has length {len(parts)}; "
                           "2 is required")
                    ct, body = unhandled_500(gen.falcon_major, accept)
                    return AttrError(500, body, ct, msg)
                attrs[parts[0]] = parts[1]
        else:
            for m in matches:
                k, v = m.split("=", 1)
                attrs[k] = v
    header_name = attrs.get("tfs-model-name")
    version = attrs.get("tfs-model-version")
    method = attrs.get("tfs-method", "predict")
    if gen.validates_attributes:
        name = header_name or default_model
        msg = None
        if header_name is not None and not _G3_NAME_RE.match(header_name):
            msg = "invalid tfs-model-name"
        elif not name:
            msg = "no model name available: set tfs-model-name or a default model"
        elif version is not None and not _G3_VERSION_RE.match(version):
            msg = "invalid tfs-model-version: must be a positive integer"
        elif method not in _G3_METHODS:
            msg = "invalid tfs-method: must be one of predict|classify|regress"
        if msg:
            # python_service.py l.464-469: json.dumps({"error": str(ve)}), status 400
            return AttrError(400, json.dumps({"error": msg}), "application/json", msg)
    else:
        name = attrs.get("tfs-model-name", default_model)
    return attrs, make_target(name, version if version else None, method)


def make_context(req: Request, gen: Generation, attrs: dict[str, str], target: TfsTarget,
                 body_len: int) -> Any:
    """The handler `context` namedtuple with this generation's fields (tfs_utils.Context)."""
    Context = collections.namedtuple("Context", gen.context_fields)  # noqa: PYI024
    values = {
        "model_name": attrs.get("tfs-model-name"),
        "model_version": attrs.get("tfs-model-version"),
        "method": attrs.get("tfs-method"),
        "rest_uri": target.rest_uri,
        "grpc_port": DEFAULT_GRPC_PORT,
        "channel": None,  # a grpc.insecure_channel in the container; not emulated
        "custom_attributes": req.custom_attributes,
        "request_content_type": req.content_type or DEFAULT_CONTENT_TYPE,
        "accept_header": req.accept or DEFAULT_ACCEPT,
        "content_length": body_len,
        "timeout": 60,  # SAGEMAKER_TFS_WAIT_TIME_SECONDS default (G3)
    }
    return Context(*(values[f] for f in gen.context_fields))


def default_request(req: Request, gen: Generation, model_name: str) -> ContainerResult:
    """The default handler's request side (no inference.py): the body is forwarded raw."""
    body = req.body_bytes
    res = ContainerResult(forwarded=None, target=None, status=None, body=None,
                          path="python-default")
    parsed = parse_attributes(req.custom_attributes, gen, req.accept, model_name)
    if isinstance(parsed, AttrError):
        return _attr_failure(res, parsed, gen)
    attrs, tgt = parsed
    res.attributes = attrs
    if gen.default_handler_gate:
        ct = (req.content_type or "").split(";")[0].strip().lower()
        if ct and ct not in _G3_DEFAULT_TYPES:
            res.status, res.content_type = 415, "application/json"
            res.body = json.dumps({"error": f"Unsupported Media Type: {ct}"})
            res.findings.append(finding(
                "KD220", "error", f"G3's default Python handler answers 415 for {ct!r}",
                "send JSON or CSV, or add code/inference.py that handles this type"))
            return res
    if gen.default_handler_decodes:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            res.status, res.content_type = 500, "application/json"
            res.body = json.dumps({"error": str(e)})
            res.findings.append(finding(
                "KD219", "error", "the default Python handler decodes the body as UTF-8 and "
                f"fails: {e}", "send UTF-8 JSON, or handle binary data in code/inference.py"))
            return res
        wire = _encode_str_body(text, gen)
        if isinstance(wire, Exception):
            res.status, res.content_type = 500, "application/json"
            res.body = json.dumps({"error": str(wire)})
            res.findings.append(finding(
                "KD225", "error", "the body has characters outside Latin-1 and this image's "
                "requests/urllib3 encodes str bodies as Latin-1: 500", "send ASCII JSON "
                "(json.dumps escapes non-ASCII by default)"))
            return res
        res.forwarded = text
    else:
        res.forwarded = body.decode("utf-8", "replace")
    res.target, res.mode = tgt, "raw"
    res.findings.append(finding(
        "KD202", "warning",
        "the Python service runs the default handler (code/requirements.txt or code/lib without "
        "inference.py): the body goes to TF Serving raw, with no CSV, JSON-lines or "
        "instance wrapping", "send a complete TF Serving request ({\"instances\": [...]}), or "
        "add code/inference.py, or remove requirements.txt/lib"))
    return res


def default_response(tfs_status: int | None, tfs_body: str, req: Request, gen: Generation
                     ) -> tuple[int, str | None, str, list[str]]:
    """The default handler's answer: TF Serving's body, labelled with the Accept header."""
    accept = req.accept or DEFAULT_ACCEPT
    if tfs_status is None:
        return 500, "application/json", json.dumps({"error": _connection_error()}), [
            "TF Serving did not answer: requests raises ConnectionError, the service answers 500"]
    if gen.propagates_tfs_errors and tfs_status != 200:
        ct, body = falcon_error(falcon_status_line(tfs_status), tfs_body, req.accept)
        return tfs_status, ct, body, ["G3 raises falcon.HTTPError with TF Serving's status"]
    notes = []
    if tfs_status != 200:
        notes.append(f"TF Serving answered {tfs_status}; the default handler answers 200")
    return 200, accept, tfs_body, notes


def _connection_error(port: int = DEFAULT_REST_PORT) -> str:
    # requests.exceptions.ConnectionError text, abbreviated (the object address varies).
    return (f"HTTPConnectionPool(host='localhost', port={port}): Max retries exceeded with url: "
            "(Caused by NewConnectionError(': Failed to establish a new connection: [Errno 111] "
            "Connection refused'))")


def _attr_failure(res: ContainerResult, err: AttrError, gen: Generation) -> ContainerResult:
    res.status, res.body, res.content_type = err.status, err.body, err.content_type
    if err.status == 400:
        res.findings.append(finding(
            "KD214", "error", f"the container rejects the custom attributes: {err.message}",
            "send tfs-model-name as letters/digits/._-, tfs-model-version as digits, tfs-method "
            "as predict, classify or regress"))
    else:
        res.findings.append(finding(
            "KD215", "error", "a tfs-* custom attribute value contains '=': the G1/G2 Python "
            f"service fails before the handler runs ({err.message}) and answers 500",
            "remove '=' from tfs-* values (base64 padding included)"))
    return res


# --- requests emulation -------------------------------------------------------------------------

def _encode_str_body(text: str, gen: Generation) -> bytes | Exception:
    if gen.str_body_encoding == "utf-8":
        return text.encode("utf-8", "surrogatepass")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as err:
        # http.client._encode's message for a str body that is not Latin-1.
        return UnicodeEncodeError(
            err.encoding, err.object, err.start, err.end,
            f"Body ({repr(text[err.start:err.end])[:20]}) is not valid Latin-1. Use "
            "body.encode('utf-8') if you want to send it encoded in UTF-8.")


def encode_requests_data(data: Any, gen: Generation) -> tuple[bytes, str | None]:
    """(wire bytes, Content-Type) for requests.post(uri, data=data), as requests would send them.

    Raises what requests/http.client raise for data they cannot send.
    """
    if data is None or (not isinstance(data, (str, bytes, bytearray)) and not data
                        and not hasattr(data, "read")):
        return b"", None
    if isinstance(data, str):
        wire = _encode_str_body(data, gen)
        if isinstance(wire, Exception):
            raise wire
        return wire, None
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data), None
    if hasattr(data, "read"):
        chunk = data.read()
        return (chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)), None
    if isinstance(data, (bool, int, float)):
        raise ValueError("cannot encode objects that are not 2-tuples")
    if hasattr(data, "__iter__"):
        items = list(data.items()) if isinstance(data, collections.abc.Mapping) else list(data)
        pairs = []
        for k, vs in items:  # same unpacking errors as requests' _encode_params
            if isinstance(vs, (str, bytes)) or not hasattr(vs, "__iter__"):
                vs = [vs]
            for v in vs:
                if v is not None:
                    pairs.append((k.encode("utf-8") if isinstance(k, str) else k,
                                  v.encode("utf-8") if isinstance(v, str) else v))
        return urlencode(pairs, doseq=True).encode("ascii"), "application/x-www-form-urlencoded"
    raise TypeError(f"a bytes-like object is required, not '{type(data).__name__}'")


class _Headers(dict):
    """A case-insensitive header mapping (like requests.structures.CaseInsensitiveDict)."""

    def __init__(self, items: dict[str, str]):
        super().__init__(items)
        self._lower = {k.lower(): k for k in items}

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(self._lower.get(key.lower(), key))

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(self._lower.get(key.lower(), key), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._lower


class HTTPError(Exception):
    """Raised by TfsResponse.raise_for_status, with requests' message format."""

    def __init__(self, message: str, response: TfsResponse):
        super().__init__(message)
        self.response = response


class TfsResponse:
    """What `output_handler` receives: the parts of requests.Response handlers use."""

    def __init__(self, status_code: int, body: str | bytes, url: str):
        self.status_code = status_code
        self.content = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        self.url = url
        self.encoding = "utf-8"
        self.headers = _Headers({"Content-Type": "application/json",
                                 "Content-Length": str(len(self.content))})
        try:
            import http
            self.reason = http.HTTPStatus(status_code).phrase
        except ValueError:
            self.reason = ""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    def json(self, **kwargs: Any) -> Any:
        return json.loads(self.text, **kwargs)

    def iter_content(self, chunk_size: int = 1, decode_unicode: bool = False) -> Iterator[Any]:
        data = self.text if decode_unicode else self.content
        for i in range(0, len(data), max(1, chunk_size)):
            yield data[i:i + chunk_size]

    def raise_for_status(self) -> None:
        kind = "Client" if 400 <= self.status_code < 500 else (
            "Server" if 500 <= self.status_code < 600 else None)
        if kind:
            raise HTTPError(f"{self.status_code} {kind} Error: {self.reason} for url: {self.url}",
                            self)

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}]>"


# --- loading and running user code --------------------------------------------------------------

@dataclass
class Handlers:
    """The functions python_service._import_handlers picked, or why the service cannot start."""

    handler: Callable | None = None
    input_handler: Callable | None = None
    output_handler: Callable | None = None
    startup_error: str | None = None
    code_dir: Path | None = None
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _code_on_path(code_dir: Path) -> Iterator[None]:
    # G1: gunicorn --pythonpath code,code/lib; G2/G3: PYTHONPATH. Added for the call only.
    added = [str(p) for p in (code_dir, code_dir / "lib") if str(p) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for p in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(p)


def static_check(code_dir: Path) -> list:
    """Findings from reading code/inference.py without running it."""
    out = []
    path = code_dir / "inference.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError) as e:
        return [finding("KD222", "error", f"code/inference.py cannot be imported: {e}",
                        "fix the script; the Python service will not start")]
    names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    names |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
              if isinstance(t, ast.Name)}
    if "handler" not in names and not {"input_handler", "output_handler"} <= names:
        out.append(finding("KD221", "error",
                           f"code/inference.py defines neither handler nor both input_handler "
                           f"and output_handler: the service fails at start with "
                           f"NotImplementedError('{NOT_IMPLEMENTED}')",
                           "define handler(data, context), or input_handler(data, context) and "
                           "output_handler(response, context)"))
    toolkit = sorted(names & set(TOOLKIT_FUNCTIONS))
    if toolkit:
        out.append(finding("KD223", "warning",
                           f"code/inference.py defines {', '.join(toolkit)}: the TensorFlow "
                           "Serving container does not call sagemaker-inference-toolkit functions",
                           "rename to input_handler/output_handler (or handler)"))
    return out


def load_handlers(code_dir: Path) -> Handlers:
    """Import code/inference.py as python_service._import_handlers does (runs user code)."""
    code_dir = Path(code_dir)
    script = code_dir / "inference.py"
    found = Handlers(code_dir=code_dir)
    try:
        with _code_on_path(code_dir):
            spec = importlib.util.spec_from_file_location("inference", script)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {script}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
    except BaseException as e:  # noqa: BLE001 - user code may raise anything, even SystemExit
        if isinstance(e, KeyboardInterrupt):
            raise
        found.startup_error = f"{type(e).__name__}: {e}"
        return found
    if hasattr(module, "handler"):
        found.handler = module.handler
    elif hasattr(module, "input_handler") and hasattr(module, "output_handler"):
        found.input_handler, found.output_handler = module.input_handler, module.output_handler
    else:
        found.startup_error = f"NotImplementedError: {NOT_IMPLEMENTED}"
    return found


def _is_falcon_http_error(e: BaseException) -> bool:
    return type(e).__module__.split(".")[0] == "falcon" and hasattr(e, "status")


def _falcon_error_answer(e: Any, accept: str | None) -> tuple[int, str, str]:
    status = getattr(e, "status", 500)
    if isinstance(status, int):
        line = falcon_status_line(status)
    else:
        line = str(getattr(status, "value", status))
        if hasattr(status, "phrase"):
            line = f"{status.value} {status.phrase}"
    code = int(line[:3]) if line[:3].isdigit() else 500
    title = getattr(e, "title", None) or line
    ct, body = falcon_error(title, getattr(e, "description", None), accept)
    return code, ct, body


class _Intercept:
    """Routes the user's requests calls to http://localhost:8501 to the emulated TF Serving."""

    def __init__(self, gen: Generation, send: Callable, calls: list):
        self.gen, self.send, self.calls = gen, send, calls
        self.statuses: list[int] = []

    def post(self, url: str, data: Any = None, json_body: Any = None) -> TfsResponse:
        if json_body is not None and data is None:
            wire = json.dumps(json_body, allow_nan=True).encode("utf-8")
        else:
            wire, _ = encode_requests_data(data, self.gen)
        parts = urlsplit(url)
        if parts.hostname not in ("localhost", "127.0.0.1") or parts.port != DEFAULT_REST_PORT:
            raise ConnectionError(f"kdiag: only TF Serving at localhost:{DEFAULT_REST_PORT} is "
                                  f"reachable from an emulated handler, not {url}")
        tgt = _target_from_path(parts.path)
        self.calls.append((wire, tgt))
        status, text = self.send(wire, tgt)
        self.statuses.append(status)
        return TfsResponse(status, text, url)


def _target_from_path(path: str) -> TfsTarget:
    m = re.match(r"^/v1/models/([^/:]+)(?:/versions/([^/:]+))?(?::(.*))?$", path)
    if not m:
        return TfsTarget(model=path, version=None, method="", raw_version=None)
    return make_target(m.group(1), m.group(2), m.group(3) or "")


@contextlib.contextmanager
def _patched_requests(icpt: _Intercept) -> Iterator[None]:
    """While a user `handler` runs, requests.Session.request to TF Serving goes to `send`."""
    try:
        import requests
    except ImportError:  # user code that imports requests would have failed to load already
        yield
        return
    original = requests.sessions.Session.request

    def fake(self: Any, method: str, url: str, **kw: Any) -> Any:
        resp = icpt.post(url, kw.get("data"), kw.get("json"))
        real = requests.models.Response()
        real.status_code, real._content, real.url = resp.status_code, resp.content, url
        real.headers.update(resp.headers)
        real.encoding, real.reason = "utf-8", resp.reason
        return real

    requests.sessions.Session.request = fake
    try:
        yield
    finally:
        requests.sessions.Session.request = original


def run_python_path(req: Request, gen: Generation, *, code_dir: Path | None = None,
                    model_name: str,
                    send_to_tfs: Callable[[bytes, TfsTarget], tuple[int, str]],
                    handlers: Handlers | None = None) -> ContainerResult:
    """Run the Python service for one request: parse_request, the user's handlers, and falcon.

    `send_to_tfs(wire_bytes, target)` answers for TF Serving (status, body text). Executes
    code/inference.py from `code_dir` (or reuses `handlers` from load_handlers). The result has
    the final status/body/content_type; `tfs_requests` lists what reached TF Serving.
    """
    if handlers is None:
        if code_dir is None:
            raise ValueError("run_python_path needs code_dir or handlers")
        handlers = load_handlers(Path(code_dir))
    body = req.body_bytes
    res = ContainerResult(forwarded=None, target=None, status=None, body=None, path="python")
    if handlers.startup_error:
        res.startup_error = handlers.startup_error
        res.findings.append(finding(
            "KD221" if "NotImplementedError" in handlers.startup_error else "KD222", "error",
            f"the Python service cannot start: {handlers.startup_error}; /ping fails and the "
            "endpoint never becomes InService",
            "define handler, or input_handler and output_handler, in code/inference.py and make "
            "it importable"))
        res.notes.append("no answer: gunicorn never starts, nginx has no upstream")
        return res
    parsed = parse_attributes(req.custom_attributes, gen, req.accept, model_name)
    if isinstance(parsed, AttrError):
        return _attr_failure(res, parsed, gen)
    attrs, tgt = parsed
    res.attributes, res.target = attrs, tgt
    context = make_context(req, gen, attrs, tgt, len(body))
    data = io.BytesIO(body)
    icpt = _Intercept(gen, send_to_tfs, res.tfs_requests)
    accept = req.accept
    try:
        with _code_on_path(handlers.code_dir or Path(".")):
            if handlers.handler is not None:
                res.mode = "handler"
                with _patched_requests(icpt):
                    out = handlers.handler(data, context)
            else:
                res.mode = "handler"
                processed = handlers.input_handler(data, context)
                if isinstance(processed, dict) or (
                        isinstance(processed, list) and processed
                        and all(isinstance(p, tuple) for p in processed)):
                    res.findings.append(finding(
                        "KD224", "error",
                        "input_handler returned a dict: requests form-encodes it "
                        "(instances=...&...), which TF Serving cannot parse",
                        "return json.dumps(...) from input_handler"))
                status, text_resp = _post_pair(icpt, processed, tgt)
                if gen.propagates_tfs_errors and status != 200:
                    raise _TfsHttpError(status, text_resp)
                out = handlers.output_handler(TfsResponse(status, text_resp, tgt.rest_uri),
                                              context)
            out_body, out_ct = out  # res.body, res.content_type = handlers(data, context)
    except _TfsHttpError as e:
        res.status = e.status
        res.content_type, res.body = falcon_error(falcon_status_line(e.status), e.description,
                                                  accept)
        res.notes.append("G3 raised falcon.HTTPError with TF Serving's status before "
                         "output_handler")
        _fill_forwarded(res)
        return res
    except KeyboardInterrupt:
        raise
    except SystemExit as e:
        res.status, res.content_type, res.body = 502, "text/html", nginx_error_page(502)
        res.notes.append(f"the handler called exit ({e}): the gunicorn worker dies")
        _fill_forwarded(res)
        return res
    except Exception as e:  # noqa: BLE001 - mirrors python_service's broad except
        if gen.propagates_tfs_errors and _is_falcon_http_error(e):
            res.status, res.content_type, res.body = _falcon_error_answer(e, accept)
            res.notes.append("G3 re-raises falcon.HTTPError from handlers")
        else:
            res.status, res.content_type = 500, "application/json"
            res.body = json.dumps({"error": str(e)})
            code = "KD227" if _is_unpack_error(e) else "KD226"
            msg = ("the handler's result is not a (body, content_type) pair" if code == "KD227"
                   else f"the handler raised {type(e).__name__}")
            res.findings.append(finding(
                code, "error", f"{msg}: the service answers 500 {{\"error\": \"{e}\"}}",
                "return (body, content_type) from handler/output_handler and catch errors"))
        _fill_forwarded(res)
        return res
    _fill_forwarded(res)
    rendered = _render_body(out_body)
    if rendered is None or (out_ct is not None and not isinstance(out_ct, str)):
        res.status = 500
        res.content_type, res.body = "text/html", GUNICORN_FALLBACK
        res.findings.append(finding(
            "KD227", "error", f"the handler returned a body of type {type(out_body).__name__}; "
            "falcon cannot send it and the server answers 500",
            "return str or bytes as the body and a str content type"))
        return res
    res.status, res.content_type, res.body = 200, out_ct, rendered
    res.body_bytes = out_body.encode("utf-8") if isinstance(out_body, str) else (
        b"" if out_body is None else bytes(out_body))
    if icpt.statuses and icpt.statuses[-1] != 200:
        res.findings.append(finding(
            "KD640", "warning", f"TF Serving answered {icpt.statuses[-1]} but the container "
            "answers 200 (G1/G2 set 200 before calling handlers)",
            "check response.status_code in output_handler and raise on errors",
            stage="container-response"))
    return res


GUNICORN_FALLBACK = unhandled_500(2, None)[1]


class _TfsHttpError(Exception):
    def __init__(self, status: int, description: str):
        super().__init__(description)
        self.status, self.description = status, description


def _post_pair(icpt: _Intercept, processed: Any, tgt: TfsTarget) -> tuple[int, str]:
    # requests.post(context.rest_uri, data=processed_input)
    wire, _ = encode_requests_data(processed, icpt.gen)
    icpt.calls.append((wire, tgt))
    status, text = icpt.send(wire, tgt)
    icpt.statuses.append(status)
    return status, text


def _fill_forwarded(res: ContainerResult) -> None:
    if res.tfs_requests:
        wire, tgt = res.tfs_requests[-1]
        res.forwarded = wire.decode("utf-8", "replace")
        res.target = tgt


def _render_body(body: Any) -> str | None:
    if body is None:
        return ""
    if isinstance(body, str):
        return body
    if isinstance(body, (bytes, bytearray)):
        return bytes(body).decode("utf-8", "replace")
    return None


def _is_unpack_error(e: Exception) -> bool:
    s = str(e)
    return isinstance(e, (ValueError, TypeError)) and (
        "unpack" in s and ("expected 2" in s or "non-iterable" in s))
