"""The njs path: tensorflowServing.js, the nginx JavaScript that rewrites requests when the model
has no code/inference.py.

Rules and strings are from tensorflowServing.js at the commits in generations.py (G1 da192561;
G2 6712253d3b, logic identical to G1 apart from requestBody/requestText; G3 e0ecedea6a).
Regexes use JavaScript's whitespace set (JS_WS_CLASS) and ASCII digits, as V8/njs do.
"""

from __future__ import annotations

import re

from kdiag.path.container_common import (
    JS_WS,
    JS_WS_CLASS,
    NGINX_DEFAULT_TYPE,
    NJS_BODY_BUFFER,
    AttrError,
    TfsTarget,
    js_stringify_error,
    js_trim,
    make_target,
    nginx_error_page,
)
from kdiag.path.generations import Generation, decode_utf8

_S = JS_WS_CLASS
# is_tfs_json: /"(instances|inputs|examples)"\s*:/
TFS_JSON_RE = re.compile(rf'"(instances|inputs|examples)"{_S}*:')
# is_json_lines: /[}\]]\s*[\[{]/
JSON_LINES_RE = re.compile(rf"[}}\]]{_S}*[\[{{]")
# generic_json_request: /^\s*\[\s*\[/
INSTANCES_LIST_RE = re.compile(rf"^{_S}*\[{_S}*\[")
# csv_request (G1/G2): needs_quotes = data.search(/^\s*("|[\d.Ee+\-]+.*)/) != 0
CSV_NUMERIC_START_RE = re.compile(rf'^{_S}*("|[0-9.Ee+\-])')
# G3 csv_request: strict JSON number
CSV_NUMBER_RE = re.compile(r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$")
LINE_SPLIT_RE = re.compile(r"\r?\n")
# parse_custom_attributes: /tfs-[a-z\-]+=[^,]+/g
ATTR_RE = re.compile(r"tfs-[a-z\-]+=[^,]+")
# G3 make_tfs_uri
G3_MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
G3_VERSION_RE = re.compile(r"^[0-9]+$")
G3_METHODS = ("predict", "classify", "regress")

JSON_TYPES = ("application/json", "application/jsonlines", "application/jsons")


class NjsException(Exception):
    """A JavaScript exception in the njs handler: nginx answers 500 with its HTML page."""


def gate(content_type: str | None, gen: Generation) -> tuple[str | None, str | None]:
    """(kind, 415 body): kind is "json" or "csv"; otherwise the 415 body the container sends."""
    if gen.content_type_gate == "exact":
        ct = content_type
        if ct in JSON_TYPES:
            return "json", None
        if ct == "text/csv":
            return "csv", None
        # return_error: '{"error": "' + message + '"}' with no escaping (G1/G2 l.57-63)
        return None, '{"error": "Unsupported Media Type: ' + (ct or "Unknown") + '"}'
    ct = js_trim((content_type or "").split(";")[0]).lower()
    if ct in JSON_TYPES:
        return "json", None
    if ct == "text/csv":
        return "csv", None
    return None, js_stringify_error("Unsupported Media Type: " + (ct or "Unknown"))


def body_text(body: bytes, gen: Generation) -> tuple[str | None, list[str]]:
    """What njs hands the JavaScript: None stands for `undefined` (empty body)."""
    notes: list[str] = []
    if not body:
        return None, notes
    if len(body) > NJS_BODY_BUFFER:
        raise NjsException("request body is in a file")
    text = decode_utf8(body)
    if text is not None:
        return text, notes
    if gen.njs_body_access == "requestText":
        notes.append("body is not UTF-8: njs r.requestText replaced the invalid bytes with "
                     "U+FFFD before conversion")
    else:
        notes.append("body is not UTF-8: njs r.requestBody passed the raw bytes through; "
                     "kdiag shows them as U+FFFD")
    return body.decode("utf-8", "replace"), notes


def is_json_lines(text: str) -> bool:
    """JSON_LINES_RE.search(text) is not None, without the regex's cost.

    A character class at the start of a pattern makes Python's re test every position (about
    300 us on a 40 kB body); closing brackets are few, and str.find reaches each at C speed.
    """
    n = len(text)
    for closer in "]}":
        i = text.find(closer)
        while i != -1:
            j = i + 1
            while j < n and text[j] in JS_WS:
                j += 1
            if j < n and text[j] in "[{":
                return True
            i = text.find(closer, j if j > i + 1 else i + 1)
    return False


def dispatch_json(data: str | None, gen: Generation) -> tuple[str, str]:
    """(forwarded text, mode) for the JSON content types (json_request and its helpers)."""
    text = "undefined" if data is None else data  # JS coerces undefined to "undefined"
    checks = ("tfs", "lines") if gen.tfs_check_first else ("lines", "tfs")
    for check in checks:
        if check == "tfs" and TFS_JSON_RE.search(text):
            return text, "tfs-json"
        if check == "lines" and is_json_lines(text):
            return json_lines(text), "json-lines"
    if INSTANCES_LIST_RE.match(text):
        return '{"instances":' + text + "}", "instances-list"
    return '{"instances":[' + text + "]}", "wrapped"


def json_lines(data: str) -> str:
    """json_lines_request: one physical line keeps no brackets."""
    lines = LINE_SPLIT_RE.split(js_trim(data))
    out = ['{"instances":']
    if len(lines) != 1:
        out.append("[")
    for i, raw in enumerate(lines):
        line = js_trim(raw)
        if line:
            out.append(("" if i == 0 else ",") + line)
    out.append("}" if len(lines) == 1 else "]}")
    return "".join(out)


def csv_legacy(data: str | None) -> str:
    """G1/G2 csv_request: one quoting decision for the whole body from its first character."""
    if data is None:
        raise NjsException("TypeError: cannot read property 'search' of undefined")
    needs_quotes = CSV_NUMERIC_START_RE.match(data) is None
    lines = LINE_SPLIT_RE.split(js_trim(data))
    out = ['{"instances":[']
    last = len(lines) - 1
    for i, raw in enumerate(lines):
        line = js_trim(raw)
        if not line:
            continue
        multi = "," in line
        piece = line
        if needs_quotes:
            # JS String.replace with a string pattern replaces the first occurrence only.
            piece = '"' + line.replace('"', '\\"', 1).replace(",", '","', 1) + '"'
        out.append(f"[{piece}]" if multi else piece)
        if i != last:
            out.append(",")
    out.append("]}")
    return "".join(out)


def split_csv_fields(line: str) -> list[str]:
    """G3 split_csv_fields: quotes group, "" is a literal quote, commas in quotes do not split."""
    fields: list[str] = []
    cur: list[str] = []
    inq = False
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == '"':
            if inq and i + 1 < n and line[i + 1] == '"':
                cur.append('"')
                i += 1
            else:
                inq = not inq
        elif c == "," and not inq:
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    fields.append("".join(cur))
    return fields


def csv_fields(data: str | None) -> str:
    """G3 csv_request: per-field typing, always valid JSON."""
    if data is None:
        raise NjsException("TypeError: cannot read property 'trim' of undefined")
    lines = LINE_SPLIT_RE.split(js_trim(data))
    out = ['{"instances":[']
    last = len(lines) - 1
    for i, raw in enumerate(lines):
        line = js_trim(raw)
        if not line:
            continue
        fields = split_csv_fields(line)
        parts = []
        for f in fields:
            probe = js_trim(f)
            if probe != "" and CSV_NUMBER_RE.match(probe):
                parts.append(probe)
            else:
                parts.append('"' + f.replace("\\", "\\\\").replace('"', '\\"') + '"')
        joined = ",".join(parts)
        out.append(f"[{joined}]" if len(fields) > 1 else joined)
        if i != last:
            out.append(",")
    out.append("]}")
    return "".join(out)


def parse_attributes(header: str | None) -> tuple[dict[str, str], list[str], bool]:
    """parse_custom_attributes: (attributes, dropped pairs, tfs-model-name came from the header).

    A pair whose value contains '=' splits into 3+ parts and is dropped (all generations' njs).
    """
    attrs: dict[str, str] = {}
    dropped: list[str] = []
    from_header = False
    if header:
        for m in ATTR_RE.findall(header):
            kv = m.split("=")
            if len(kv) == 2:
                attrs[kv[0]] = kv[1]
                if kv[0] == "tfs-model-name":
                    from_header = True
            else:
                dropped.append(m)
    return attrs, dropped, from_header


def target(attrs: dict[str, str], from_header: bool, default_model: str, gen: Generation
           ) -> TfsTarget | AttrError:
    """make_tfs_uri(r, true); G3 validates and answers 400 itself."""
    name = attrs.get("tfs-model-name") or default_model
    version = attrs.get("tfs-model-version")
    method = attrs.get("tfs-method") or "predict"
    if gen.validates_attributes:
        msg = None
        if from_header and not G3_MODEL_NAME_RE.match(name):
            msg = "invalid tfs-model-name"
        elif version is not None and not G3_VERSION_RE.match(version):
            msg = "invalid tfs-model-version"
        elif method not in G3_METHODS:
            msg = "invalid tfs-method"
        if msg:
            return AttrError(400, js_stringify_error(msg), "application/json", msg)
    return make_target(name, version, method)


def response(tfs_status: int | None, tfs_body: str, accept: str | None, gen: Generation
             ) -> tuple[int, str | None, str, list[str]]:
    """tfs_json_request's callback: (status, content type, body, notes)."""
    notes: list[str] = []
    if tfs_status is None:
        return 502, "text/html", nginx_error_page(502), [
            "TF Serving did not answer: nginx's proxy to the TFS upstream fails with 502"]
    body = tfs_body
    if tfs_status == 400:
        fixed = body.replace("\\'instances\\'", "'instances'", 1)
        if fixed != body:
            notes.append("njs replaced the first \\'instances\\' with 'instances' in the 400 body")
        body = fixed
    content_type = NGINX_DEFAULT_TYPE
    if accept is not None:
        if gen.accept_rule == "exact-jsonlines":
            # tensorflow-serving.js @v1.7.0 l.80-83
            if accept in ("application/jsonlines", "application/jsons"):
                body = body.replace("\n", "")
                content_type = accept
        elif gen.accept_rule == "first-listed":
            types = js_trim(accept).replace(" ", "", 1).split(",")
            if "application/jsonlines" in types or "application/json" in types:
                body = body.replace("\n", "")
                content_type = types[0]
        else:
            types = [js_trim(s) for s in accept.split(",")]
            if "application/jsonlines" in types or "application/json" in types:
                body = body.replace("\n", "")
                content_type = "application/json"
    return tfs_status, content_type, body, notes
