"""The `wire` stage: what SageMaker Runtime accepts before anything reaches the container.

botocore checks only minimum lengths client-side (aws-apis-detail.md §1.1), so an oversized body
or header is sent and refused by the service; kdiag checks the service-model limits itself.
Limits come from botocore's sagemaker-runtime 2017-05-13 service model (InvokeEndpointInput):
Body blob max 6291456; ContentType/Accept `Header` max 1024, pattern \\p{ASCII}*;
CustomAttributes max 1024, \\p{ASCII}*, documented as "visible US-ASCII characters".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kdiag.diagnosis.findings import Finding
from kdiag.errors import KdiagError
from kdiag.path.generations import Request, decode_utf8
from kdiag.path.trace import StageRecord, excerpt

__all__ = ["Request", "WireResult", "body_too_large", "check_wire", "BODY_LIMITS", "HEADER_LIMIT",
           "NJS_CONTENT_TYPES", "TEXT_CONTENT_TYPES"]

BODY_LIMITS: dict[str, int] = {
    "realtime": 6291456,  # service-2.json BodyBlob max
    # Serverless: "4 MB" request payload (docs serverless-endpoints-invoke); taken as 4 MiB.
    "serverless": 4 * 1024 * 1024,
    # Async: up to 1 GB through S3 (docs async-inference); the InvokeEndpointAsync body is a URI.
    "async": 1024 ** 3,
}
HEADER_LIMIT = 1024
# The content types the njs path accepts (tensorflowServing.js invocations(), all generations).
NJS_CONTENT_TYPES = ("application/json", "application/jsonlines", "application/jsons", "text/csv")
TEXT_CONTENT_TYPES = frozenset(NJS_CONTENT_TYPES)

# RFC 7230 token characters, for the media type syntax check (RFC 7231 §3.1.1.1).
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE_RE = re.compile(rf"^\s*({_TOKEN})/({_TOKEN})\s*(;.*)?$", re.S)
_PARAM_RE = re.compile(rf"^\s*{_TOKEN}\s*=\s*({_TOKEN}|\"(?:[^\"\\]|\\.)*\")\s*$", re.S)


@dataclass
class WireResult:
    """Findings about the request as sent, and the stage record.

    `accepted` is False when SageMaker Runtime itself would refuse the request (ValidationError),
    so nothing would reach the container.
    """

    accepted: bool
    size: int
    media_type: str | None  # the Content-Type cut at ';', trimmed and lower-cased
    findings: list[Finding] = field(default_factory=list)
    record: StageRecord | None = None


def _f(code: str, severity: str, message: str, fix: str) -> Finding:
    return Finding(code=code, severity=severity, stage="wire", message=message, fix=fix)


def _check_header(name: str, value: str | None, out: list[Finding]) -> bool:
    """Service-model checks of one header; False when the runtime would refuse it."""
    if value is None:
        return True
    ok = True
    if len(value) > HEADER_LIMIT:
        ok = False
        out.append(_f("KD102", "error",
                      f"{name} is {len(value)} characters; SageMaker Runtime accepts at most "
                      f"{HEADER_LIMIT}",
                      f"shorten the {name} header to {HEADER_LIMIT} characters or fewer"))
    if not value.isascii():
        ok = False
        bad = next(c for c in value if not c.isascii())
        out.append(_f("KD103", "error",
                      f"{name} contains the non-ASCII character {bad!r}; the service model "
                      "allows ASCII only",
                      f"send {name} as plain ASCII"))
    return ok


def body_too_large(size: int, endpoint_kind: str = "realtime") -> Finding:
    """KD101: SageMaker Runtime refuses the body before anything reaches the container."""
    limit = BODY_LIMITS[endpoint_kind]
    return _f("KD101", "error",
              f"body is {size} bytes; a {endpoint_kind} endpoint accepts at most {limit} bytes",
              "send fewer instances per request (split the batch), or use an asynchronous "
              "endpoint for large payloads")


def check_wire(req: Request, *, endpoint_kind: str = "realtime") -> WireResult:
    """Check a request against SageMaker Runtime's limits and the header syntax the container needs.

    Never raises on odd input (random bytes, odd headers); only an unknown `endpoint_kind` is a
    usage error.
    """
    if endpoint_kind not in BODY_LIMITS:
        raise KdiagError(f"endpoint kind {endpoint_kind!r} is not one of "
                         f"{', '.join(BODY_LIMITS)}.")
    body = req.body_bytes
    size = len(body)
    findings: list[Finding] = []
    accepted = True

    limit = BODY_LIMITS[endpoint_kind]
    if size > limit:
        accepted = False
        findings.append(body_too_large(size, endpoint_kind))

    for name, value in (("Content-Type", req.content_type), ("Accept", req.accept),
                        ("X-Amzn-SageMaker-Custom-Attributes", req.custom_attributes)):
        accepted &= _check_header(name, value, findings)
    ca = req.custom_attributes
    if ca is not None and ca.isascii() and any(ord(c) < 0x20 or ord(c) == 0x7F for c in ca):
        findings.append(_f("KD112", "warning",
                           "custom attributes contain control characters; the API documents "
                           "visible US-ASCII only",
                           "remove control characters (tabs, newlines) from CustomAttributes"))

    media_type = _content_type_checks(req.content_type, findings)

    if size == 0:
        findings.append(_f("KD110", "warning",
                           "the body is empty: the njs path forwards {\"instances\":[undefined]} "
                           "for JSON (TF Serving 400) and fails with 500 for CSV",
                           "send the payload in the body"))
    elif media_type in TEXT_CONTENT_TYPES or media_type is None:
        try:
            text = decode_utf8(body)
            if text is None:
                body.decode("utf-8")  # not UTF-8: decode again for the error's position
        except UnicodeDecodeError as e:
            sev = "error" if media_type is not None else "warning"
            findings.append(_f("KD109", sev,
                               f"body is not valid UTF-8 ({e.reason} at byte {e.start}) but is "
                               f"sent as {media_type or 'an unlabelled body'}",
                               "encode the text as UTF-8, or send binary data base64-encoded "
                               "inside JSON ({\"b64\": \"...\"})"))
        else:
            if text.startswith("\ufeff"):
                findings.append(_f("KD111", "warning",
                                   "body starts with a UTF-8 byte-order mark, which TF Serving's "
                                   "JSON parser does not skip",
                                   "write the file without a BOM (encoding='utf-8', not "
                                   "'utf-8-sig')"))

    verdict = "fail" if not accepted or any(f.severity == "error" for f in findings) else (
        "warn" if findings else "ok")
    record = StageRecord(
        stage="wire", verdict=verdict,
        holds=f"{size} bytes, {req.content_type or 'no Content-Type'}",
        size=size, excerpt=excerpt(body[:512]),
        detail={"content_type": req.content_type, "accept": req.accept,
                "custom_attributes": req.custom_attributes, "endpoint_kind": endpoint_kind,
                "body_limit": limit, "accepted": accepted})
    return WireResult(accepted=accepted, size=size, media_type=media_type, findings=findings,
                      record=record)


def _content_type_checks(ct: str | None, out: list[Finding]) -> str | None:
    if ct is None or ct == "":
        out.append(_f("KD104", "warning",
                      "no Content-Type: the container's njs path answers 415 "
                      "'Unsupported Media Type: Unknown'; a Python handler sees application/json",
                      "send ContentType='application/json' (or text/csv)"))
        return None
    m = _MEDIA_TYPE_RE.match(ct)
    media = ct.split(";")[0].strip().lower()
    if not m:
        out.append(_f("KD105", "warning",
                      f"Content-Type {ct!r} is not a type/subtype media type",
                      "use a media type such as application/json"))
        return media or None
    params = m.group(3)
    if params is not None:
        bad = [p for p in params[1:].split(";") if not _PARAM_RE.match(p)]
        if bad:
            out.append(_f("KD105", "warning",
                          f"Content-Type {ct!r} has a malformed parameter {bad[0].strip()!r}",
                          "write parameters as name=value"))
        out.append(_f("KD106", "warning",
                      f"Content-Type {ct!r} carries parameters: G1/G2 containers compare the raw "
                      "header and answer 415; G3 ignores them",
                      f"send exactly {media!r} without parameters"))
    if ct.split(";")[0] != media:
        out.append(_f("KD107", "warning",
                      f"Content-Type {ct!r} is not written exactly {media!r}: G1/G2 "
                      "containers compare case- and space-sensitively and answer 415",
                      f"send exactly {media!r}"))
    if media not in TEXT_CONTENT_TYPES:
        out.append(_f("KD108", "warning",
                      f"Content-Type {media!r} is not one the container converts itself "
                      f"({', '.join(NJS_CONTENT_TYPES)}): without code/inference.py it answers 415",
                      "send JSON or CSV, or handle this type in code/inference.py"))
    return media
