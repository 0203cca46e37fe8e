"""`kdiag serve`: a local endpoint that real clients can talk to, offline.

One process answers three ways, all through the same stage functions as `validate` and `replay`
(kdiag.path.local_endpoint.LocalEndpoint), so what a client sees here is what kdiag predicts everywhere:

- the container contract (`GET /ping`, `POST /invocations`), as the SageMaker TensorFlow Serving
  container's nginx answers it;
- the SageMaker Runtime API (`POST /endpoints/{name}/invocations`), so an unmodified boto3
  `sagemaker-runtime` client pointed at this server with `endpoint_url` gets the same return values
  and the same exceptions (ModelError 424, ValidationError 400) as from AWS;
- TF Serving's own REST API (`/v1/models/...`: predict, model status, metadata), as code that calls
  TF Serving directly (inference.py, tensorflow/serving users) sees it.

Routing and answers live in `ServerApp.handle`, a plain function of (method, path, headers, body);
the HTTP plumbing around it only bounds sizes and times, and logs one line per request.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from kdiag.errors import KdiagError
from kdiag.model.signature import DTYPE_NAMES, Signature, dtype_enum_name, pick_signature
from kdiag.path import tfserving
from kdiag.path.container import Request, TfsTarget
from kdiag.path.container_common import nginx_error_page
from kdiag.path.local_endpoint import LocalEndpoint
from kdiag.path.request_path import Invocation
from kdiag.path.runtime import runtime_outcome, validation_error

__all__ = ["MAX_BODY", "Reply", "RunningServer", "ServerApp", "load_model", "start_server"]

MAX_BODY = 100 * 1024 * 1024  # refused with 413 before reading; nginx's client_body_buffer_size
# Lingering close after a refusal (nginx: lingering_time 30s, lingering_timeout 5s), shorter
# here and bounded in bytes, so a refused client cannot hold a connection slot for long.
LINGER_TIME = 2.0
LINGER_READ_TIMEOUT = 0.5
LINGER_MAX_BYTES = 16 << 20
SOCKET_TIMEOUT = 30.0  # per socket operation: a client that stalls loses its connection
HEADER_TIMEOUT = 10.0  # a connection must send a complete request head within this many seconds
MAX_CONNECTIONS = 64  # open connections; the longest-idle one makes room for a new one
RUNTIME_DEADLINE = 60.0  # SageMaker Runtime's wait for the container (InvokeEndpoint doc string)
ACCOUNT = "123456789012"  # the account kdiag's runtime answers as (runtime.py's default)
REGION = "us-east-1"
VARIANT = "AllTraffic"  # the variant name the SageMaker SDK gives a single-variant endpoint

# botocore data/sagemaker-runtime/2017-05-13/service-2.json: InvokeEndpointInput members that are
# headers, their service-model shapes (max length, pattern) and the member name AWS puts in a
# constraint message (lower camel case, as AWS's validation messages spell members).
_NAME_RE = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")  # EndpointName / TargetVariantHeader
_ASCII_RE = re.compile(r"[\x00-\x7f]*")  # \p{ASCII}*
_PRINTABLE_RE = re.compile(r"[^\s][\x20-\x7e]*")  # \A\S[\p{Print}]*\z (Java: ASCII classes)
_RUNTIME_HEADERS: tuple[tuple[str, str, int, int, re.Pattern, str, bool], ...] = (
    # header, member, min, max, pattern, pattern text, sensitive
    ("Content-Type", "contentType", 0, 1024, _ASCII_RE, r"\p{ASCII}*", False),
    ("Accept", "accept", 0, 1024, _ASCII_RE, r"\p{ASCII}*", False),
    ("X-Amzn-SageMaker-Custom-Attributes", "customAttributes", 0, 1024, _ASCII_RE,
     r"\p{ASCII}*", True),
    ("X-Amzn-SageMaker-Target-Variant", "targetVariant", 0, 63, _NAME_RE,
     "^[a-zA-Z0-9](-*[a-zA-Z0-9])*", False),
    ("X-Amzn-SageMaker-Inference-Id", "inferenceId", 1, 64, _PRINTABLE_RE,
     r"\A\S[\p{Print}]*\z", False),
    ("X-Amzn-SageMaker-Target-Model", "targetModel", 1, 1024, _PRINTABLE_RE,
     r"\A\S[\p{Print}]*\z", False),
)
BODY_MAX = 6291456  # BodyBlob max

# TF Serving's REST routes (http_rest_api_util.cc, TF Serving 2.3+): case-insensitive, matched
# against the whole path; anything else under /v1/ is "Malformed request".
_TFS_PATH_RE = re.compile(r"/v1/.*", re.I | re.S)
_PREDICT_RE = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.I)
_STATUS_RE = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.I)
_INT64_MAX = (1 << 63) - 1
_RUNTIME_RE = re.compile(r"/endpoints/([^/]+)/(invocations|async-invocations|"
                         r"invocations-response-stream)")

# nginx.conf.template (deep-learning-containers, all generations): `location / { return 404
# '{"error": "Not Found"}'; }` with default_type application/json.
_NOT_FOUND = b'{"error": "Not Found"}'
JSON = "application/json"

# SignatureDef.defaults (meta_graph.proto) appeared in TF 2.13; TF Serving's own metadata test
# data gained `"defaults": {}` in commit 07b08825 (2023-05-03).
_DEFAULTS_SINCE = (2, 13)


@dataclass
class Reply:
    """One HTTP answer: status, headers (without Content-Length) and body."""

    status: int
    headers: dict[str, str]
    body: bytes
    note: str = ""  # for the log line: what happened behind the status


def _json_reply(status: int, body: str | bytes, note: str = "") -> Reply:
    raw = body if isinstance(body, bytes) else _encode(body)
    return Reply(status, {"Content-Type": JSON}, raw, note)


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


# ------------------------------------------------------------------------------------------------
# TF Serving's protobuf JSON (model status and metadata)
# ------------------------------------------------------------------------------------------------

def _proto_json(value, depth: int = 0) -> str:
    """protobuf's JsonPrintOptions(add_whitespace=True) layout: one space per level, `"k": v`.

    Real TF Serving output shows this layout (e.g. `"model_spec":{\\n "name": ...`); the top-level
    document ends with a newline, which is why the metadata answer reads `}\\n,\\n`.
    """
    pad = " " * (depth + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = ",\n".join(f"{pad}{_jstr(k)}: {_proto_json(v, depth + 1)}" for k, v in value.items())
        return "{\n" + items + "\n" + " " * depth + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        items = ",\n".join(pad + _proto_json(v, depth + 1) for v in value)
        return "[\n" + items + "\n" + " " * depth + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return _jstr(str(value))


def _jstr(s: str) -> str:
    out = s.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + re.sub(r"[\x00-\x1f]", lambda m: f"\\u{ord(m.group()):04x}", out) + '"'


def _tensor_info(spec) -> dict:
    # Field order as TF Serving prints it (dtype, tensor_shape, then the `name` of the encoding
    # oneof): seen in real `GET .../metadata` answers.
    shape = ({"dim": [], "unknown_rank": True} if spec.shape is None else
             {"dim": [{"size": str(int(d)), "name": ""} for d in spec.shape],
              "unknown_rank": False})
    return {"dtype": dtype_enum_name(spec.dtype), "tensor_shape": shape, "name": spec.tensor_name or ""}


def metadata_json(model_name: str, version: int, signatures: list[Signature], *,
                  tfs_version: tuple[int, int] = (2, 20)) -> str:
    """`GET /v1/models/<m>/metadata` as TF Serving writes it (http_rest_api_util.cc ToJsonString:
    each part printed by protobuf, then glued by hand, hence the odd `}\\n,\\n` and the doubled
    `signature_def` key)."""
    sigs = {}
    for s in signatures:
        d = {"inputs": {k: _tensor_info(v) for k, v in s.inputs.items()},
             "outputs": {k: _tensor_info(v) for k, v in s.outputs.items()},
             "method_name": s.method_name}
        if tfs_version >= _DEFAULTS_SINCE:
            d["defaults"] = {}
        sigs[s.name] = d
    # ModelSpec prints name, signature_name, then the version oneof (observed order).
    spec = _proto_json({"name": model_name, "signature_name": "", "version": str(version)}) + "\n"
    sig_map = _proto_json({"signature_def": sigs}) + "\n"
    return ("{\n" + '"model_spec":' + spec + ",\n" + '"metadata": {' + '"signature_def": '
            + sig_map + "}\n" + "}\n")


def status_json(versions: list[int]) -> str:
    """`GET /v1/models/<m>[/versions/<v>]`: GetModelStatusResponse, every version AVAILABLE,
    newest first (ServableStateMonitor's VersionMap is ordered by std::greater)."""
    doc = {"model_version_status": [
        {"version": str(v), "state": "AVAILABLE",
         "status": {"error_code": "OK", "error_message": ""}} for v in sorted(versions, reverse=True)]}
    return _proto_json(doc) + "\n"


# ------------------------------------------------------------------------------------------------
# The application: routes -> answers
# ------------------------------------------------------------------------------------------------

def _header(headers: Mapping[str, str] | object, name: str) -> str | None:
    get = getattr(headers, "get", None)
    return None if get is None else get(name)


class ServerApp:
    """Answers requests for one LocalEndpoint. Thread-safe: it keeps no per-request state."""

    def __init__(self, endpoint: LocalEndpoint, *, endpoint_name: str = "local",
                 variant: str = VARIANT, runtime_deadline: float | None = RUNTIME_DEADLINE) -> None:
        # `kdiag serve --multi-model DIR` passes a kdiag.serve.multi_model.ModelManager: the
        # container's MME mode (recognised by its flag: that module imports this one).
        self.manager = endpoint if getattr(endpoint, "is_multi_model", False) else None
        # Set when the container would not start (code/requirements.txt it cannot install):
        # nothing healthy stands behind nginx, so every route gets nginx's 502 page.
        self.startup_failure: str | None = getattr(endpoint, "startup_failure", None)
        self.endpoint = endpoint
        self.endpoint_name = endpoint_name
        self.variant = variant
        self.runtime_deadline = runtime_deadline
        self.tfs_version = tfserving.parse_tfs_version(endpoint.gen.tfs_version)
        self.versions = sorted(endpoint.versions) if endpoint.versions else [1]
        self._metadata_sigs: dict[int, list[Signature]] = {}
        self._lock = threading.Lock()

    # -- entry point ---------------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        """The answer to one request. `raw_path` is the request target as sent (percent-encoded,
        maybe with a query string, which no route here reads)."""
        path = raw_path.split("?", 1)[0].split("#", 1)[0]
        if self.startup_failure is not None:
            return self._not_started(path)
        try:
            m = _RUNTIME_RE.fullmatch(path)
            if m:
                return self.runtime(method, m.group(1), m.group(2), headers, body)
            if self.manager is not None:
                return self.multi_model(method, path, headers, body)
            # nginx locations are prefix matches (errata §10): /pingX pings, /invocations/x invokes.
            if path.startswith("/ping"):
                return Reply(200, {}, b"", "ping")
            if path.startswith("/invocations"):
                return self.invocations(headers, body)
            if path.startswith("/tfs/"):  # `location /tfs` is not internal: TF Serving, direct
                path = path[4:]
            if _TFS_PATH_RE.fullmatch(path):
                return self.tfs(method, path, body)
            return _json_reply(404, _NOT_FOUND)
        except Exception as e:  # a bug in kdiag: answer like a crashed container, keep serving
            note = f"internal error {type(e).__name__}: {e}"
            if _RUNTIME_RE.fullmatch(path):
                out = runtime_outcome(500, f'{{"error": "kdiag: {type(e).__name__}"}}', JSON,
                                      endpoint_name=self.endpoint_name, variant=self.variant)
                return Reply(out.http_status, dict(out.http_headers), out.http_body, note)
            return _json_reply(500, f'{{"error": "kdiag: {type(e).__name__}"}}', note)

    def _not_started(self, path: str) -> Reply:
        page = nginx_error_page(502).encode()
        note = "the container did not start: " + (self.startup_failure or "")[:120]
        if _RUNTIME_RE.fullmatch(path):
            out = runtime_outcome(502, page, "text/html", endpoint_name=self.endpoint_name,
                                  variant=self.variant, region=REGION, account=ACCOUNT)
            return Reply(out.http_status, dict(out.http_headers), out.http_body, note)
        return Reply(502, {"Content-Type": "text/html"}, page, note)

    # -- the container contract ----------------------------------------------------------------
    def invocations(self, headers: Mapping[str, str], body: bytes) -> Reply:
        req = Request(body, _header(headers, "Content-Type"), _header(headers, "Accept"),
                      _header(headers, "X-Amzn-SageMaker-Custom-Attributes"))
        # The container itself has no size limit: only InvokeEndpoint applies the Runtime's.
        return self._container_reply(self.endpoint.invoke(req, wire=False))

    @staticmethod
    def _container_reply(inv: Invocation) -> Reply:
        headers = {} if inv.content_type is None else {"Content-Type": inv.content_type}
        note = "" if inv.stage is None else f"stage {inv.stage}"
        return Reply(inv.status, headers, inv.body, note)

    # -- SAGEMAKER_MULTI_MODEL=true ------------------------------------------------------------
    def multi_model(self, method: str, path: str, headers: Mapping[str, str],
                    body: bytes) -> Reply:
        """nginx's MME routes: /ping, and /invocations and /models* to the Python service
        (falcon routes /models, /models/{model_name}, /models/{model_name}/invoke)."""
        mgr = self.manager
        if path.startswith("/ping"):
            return Reply(200, {}, b"", "ping")
        parts = path.split("/")
        if path.startswith("/invocations"):
            if method != "POST":
                return _json_reply(405, b'{"title": "405 Method Not Allowed"}')
            return self._mme_answer(mgr.invoke(None, self._request(headers, body)))
        if parts[1:2] == ["models"] and len(parts) <= 4:
            name = unquote(parts[2]) if len(parts) > 2 and parts[2] else None
            invoke = len(parts) == 4 and parts[3] == "invoke"
            if len(parts) == 4 and not invoke:
                return _json_reply(404, b'{"title": "404 Not Found"}')
            if method == "POST" and invoke and name:
                return self._mme_answer(mgr.invoke(name, self._request(headers, body)))
            if method == "POST" and name is None:
                return self._mme_answer(mgr.load(body))
            if method == "POST" and name:
                # on_post with a model name and no /invoke: falcon's route is an invocation
                return self._mme_answer(mgr.invoke(name, self._request(headers, body)))
            if method == "GET" and not invoke:
                return self._mme_answer(mgr.list() if name is None else mgr.describe(name))
            if method == "DELETE" and name and not invoke:
                return self._mme_answer(mgr.unload(name))
            return _json_reply(405, b'{"title": "405 Method Not Allowed"}')
        return _json_reply(404, _NOT_FOUND)

    @staticmethod
    def _request(headers: Mapping[str, str], body: bytes) -> Request:
        return Request(body, _header(headers, "Content-Type"), _header(headers, "Accept"),
                       _header(headers, "X-Amzn-SageMaker-Custom-Attributes"))

    def _mme_answer(self, ans) -> Reply:
        if isinstance(ans, Invocation):
            return self._container_reply(ans)
        headers = {} if ans.content_type is None else {"Content-Type": ans.content_type}
        return Reply(ans.status, headers, ans.body, ans.note)

    # -- the SageMaker Runtime API -------------------------------------------------------------
    def runtime(self, method: str, raw_name: str, operation: str, headers: Mapping[str, str],
                body: bytes) -> Reply:
        if method != "POST" or operation != "invocations":
            # What AWS's front end answers for an operation it does not route (rest-json): boto3
            # raises ClientError with this code. kdiag serves InvokeEndpoint only.
            return Reply(404, {"x-amzn-ErrorType": "UnknownOperationException",
                               "Content-Type": JSON},
                         b'{"message": "kdiag serve implements InvokeEndpoint only '
                         b'(POST /endpoints/<name>/invocations)"}', "unknown operation")
        name = unquote(raw_name)
        problems = self._constraint_problems(name, headers, body)
        if problems:
            n = len(problems)
            msg = (f"{n} validation error{'s' if n > 1 else ''} detected: " + "; ".join(problems))
            return self._validation(msg)
        if name != self.endpoint_name:
            # aws-apis-detail.md §1.5 [observed]: a misspelled, deleted or other-region endpoint.
            return self._validation(f"Endpoint {name} of account {ACCOUNT} not found.")
        variant = _header(headers, "X-Amzn-SageMaker-Target-Variant")
        if variant is not None and variant != self.variant:
            # [inferred] wording: the service answers ValidationError; its text was not seen.
            return self._validation(f"Variant {variant} of endpoint {name} of account {ACCOUNT} "
                                    "not found.")
        req = Request(body, _header(headers, "Content-Type"), _header(headers, "Accept"),
                      _header(headers, "X-Amzn-SageMaker-Custom-Attributes"))
        target = _header(headers, "X-Amzn-SageMaker-Target-Model")
        model = None
        if self.manager is not None:
            if target is None:
                # [inferred] wording: a multi-model endpoint needs TargetModel.
                return self._validation("TargetModel header is required for a multi-model "
                                        f"endpoint: endpoint {name} is multi-model.")
            model, problem = self.manager.target_model(target)
            if problem is not None:
                return self._validation(problem)
        elif target is not None:
            # [inferred] wording: the service refuses TargetModel for a single-model endpoint.
            return self._validation(f"Endpoint {name} of account {ACCOUNT} is not a multi-model "
                                    "endpoint; TargetModel is not allowed.")
        inv = self._invoke_with_deadline(req, model)
        if inv is None:
            out = runtime_outcome(None, None, None, endpoint_name=name, variant=self.variant,
                                  region=REGION, account=ACCOUNT)
            return Reply(out.http_status, dict(out.http_headers), out.http_body,
                         f"container gave no answer within {self.runtime_deadline:g} s")
        if inv.wire_rejected:  # the same limits as above; kept in case the two ever differ
            text = "; ".join(f.message for f in inv.findings if f.stage == "wire") or "refused"
            return self._validation(text)
        out = runtime_outcome(inv.status, inv.body, inv.content_type, endpoint_name=name,
                              variant=self.variant, region=REGION, account=ACCOUNT)
        note = "" if out.ok else f"ModelError: container {inv.status}" + (
            f" at {inv.stage}" if inv.stage else "")
        return Reply(out.http_status, dict(out.http_headers), out.http_body, note)

    @staticmethod
    def _validation(message: str) -> Reply:
        out = validation_error(message)
        return Reply(out.http_status, dict(out.http_headers), out.http_body, "ValidationError")

    @staticmethod
    def _constraint_problems(name: str, headers: Mapping[str, str], body: bytes) -> list[str]:
        """The service-model constraints botocore leaves to the service (aws-apis-detail.md §1.1).
        Wording: AWS's usual `Value '<v>' at '<member>' failed to satisfy constraint: ...`
        [inferred: not seen for this service]; sensitive members omit the value."""
        out: list[str] = []

        def check(member: str, value: str, lo: int, hi: int, pattern: re.Pattern, ptext: str,
                  sensitive: bool) -> None:
            shown = "Value" if sensitive else f"Value '{value}'"
            if len(value) < lo:
                out.append(f"{shown} at '{member}' failed to satisfy constraint: Member must "
                           f"have length greater than or equal to {lo}")
            if len(value) > hi:
                out.append(f"{shown} at '{member}' failed to satisfy constraint: Member must "
                           f"have length less than or equal to {hi}")
            if not pattern.fullmatch(value):
                out.append(f"{shown} at '{member}' failed to satisfy constraint: Member must "
                           f"satisfy regular expression pattern: {ptext}")

        check("endpointName", name, 0, 63, _NAME_RE, "^[a-zA-Z0-9](-*[a-zA-Z0-9])*", False)
        for header, member, lo, hi, pattern, ptext, sensitive in _RUNTIME_HEADERS:
            value = _header(headers, header)
            if value is not None:
                check(member, value, lo, hi, pattern, ptext, sensitive)
        if len(body) > BODY_MAX:
            out.append(f"Value at 'body' failed to satisfy constraint: Member must have length "
                       f"less than or equal to {BODY_MAX}")
        return out

    def _invoke_with_deadline(self, req: Request, model: str | None = None
                              ) -> Invocation | None:
        """The Runtime stops waiting after 60 s and answers ModelError; the model call itself
        cannot be cancelled, so it finishes in the background. `model`: the TargetModel's
        model in multi-model mode."""
        def call() -> Invocation:
            if self.manager is None:
                return self.endpoint.invoke(req)
            ans = self.manager.invoke(model, req)
            if isinstance(ans, Invocation):
                return ans
            return Invocation(ans.status, ans.content_type, ans.body, "container", [], [])

        if self.runtime_deadline is None:
            return call()
        box: dict[str, object] = {}

        def work() -> None:
            try:
                box["inv"] = call()
            except BaseException as e:  # handed back to the request thread
                box["exc"] = e

        t = threading.Thread(target=work, name="kdiag-invoke", daemon=True)
        t.start()
        t.join(self.runtime_deadline)
        if t.is_alive():
            return None
        if "exc" in box:
            raise box["exc"]  # type: ignore[misc]
        return box["inv"]  # type: ignore[return-value]

    # -- TF Serving's REST API -----------------------------------------------------------------
    def tfs(self, method: str, path: str, body: bytes) -> Reply:
        """http_rest_api_handler.cc ProcessRequest: the route regexes, then the one handler."""
        malformed = f"Malformed request: {method} {path}"
        if method == "POST":
            m = _PREDICT_RE.fullmatch(path)
            if not m:
                return self._tfs_error("INVALID_ARGUMENT", malformed)
            raw_model, raw_version, raw_label, verb = m.groups()
            model, version, label, err = self._model_info(raw_model, raw_version, raw_label)
            if err:
                return err
            # The verb is matched case-insensitively but dispatched case-sensitively.
            if verb in ("predict", "classify", "regress"):
                return self._tfs_predict(model, version, label, body, verb)
            return self._tfs_error("INVALID_ARGUMENT", malformed)
        if method == "GET":
            m = _STATUS_RE.fullmatch(path)
            if not m:
                return self._tfs_error("INVALID_ARGUMENT", malformed)
            raw_model, raw_version, raw_label, sub = m.groups()
            model, version, label, err = self._model_info(raw_model or "", raw_version, raw_label)
            if err:
                return err
            if not model:
                return self._tfs_error("INVALID_ARGUMENT", "Missing model name in request.")
            if sub == "metadata":
                return self._tfs_metadata(model, version, label)
            return self._tfs_status(model, version)
        return self._tfs_error("INVALID_ARGUMENT", malformed)

    def _tfs_error(self, code: str, message: str) -> Reply:
        return _json_reply(tfserving.http_status(code),
                           tfserving.error_body(message, tfs_version=self.tfs_version), code)

    def _model_info(self, raw_model: str, raw_version: str | None, raw_label: str | None):
        """http_rest_api_util.cc ParseModelInfo: percent-decode the name and label, read the
        version as an int64."""
        version = None
        if raw_version:
            v = int(raw_version) if len(raw_version) <= 19 else _INT64_MAX + 1
            if v > _INT64_MAX:
                return None, None, None, self._tfs_error(
                    "INVALID_ARGUMENT", f"Failed to convert version: {raw_version} to numeric.")
            version = v
        return (unquote(raw_model), version, unquote(raw_label) if raw_label else None, None)

    def _tfs_predict(self, model: str, version: int | None, label: str | None,
                     body: bytes, verb: str = "predict") -> Reply:
        emu = self._endpoint_for(model).emulator()
        if label is not None:
            # No labels are configured in the container's model config, so every label fails in
            # the servable lookup (server_core.cc GetModelVersionForLabel), which comes after the
            # body's parse phase (json_tensor.cc FillPredictRequestFromJson). A model name that
            # cannot exist (it holds "/") yields the parse-phase answer or the lookup failure.
            probe = emu.answer(body, TfsTarget(model + "/", None, verb))
            if probe.status != 404:
                return _json_reply(probe.status, probe.body, f"stage {probe.stage}")
            return self._tfs_error("INVALID_ARGUMENT",
                                   f"Unrecognized servable version label: {label}")
        ans = emu.answer(body, TfsTarget(model, version, verb))
        return _json_reply(ans.status, ans.body, "" if ans.stage is None else f"stage {ans.stage}")

    def _endpoint_for(self, model: str):
        """The endpoint of `model` when the artifact holds several models, else the default
        (whose emulator then answers TF Serving's 404)."""
        pick = getattr(self.endpoint, "model_endpoint", None)
        other = pick(model) if pick is not None else None
        return other if other is not None else self.endpoint

    def _known(self, model: str, version: int | None) -> bool:
        return model == self.endpoint.model_name and (version is None or version in self.versions)

    def _tfs_status(self, model: str, version: int | None) -> Reply:
        # get_model_status_impl.cc: a label is ignored (all versions answer).
        ep = self._endpoint_for(model)
        if model != ep.model_name:
            return self._tfs_error("NOT_FOUND", f"Could not find any versions of model {model}")
        versions = self.versions if ep is self.endpoint else sorted(ep.versions or [1])
        if version is not None and version not in versions:
            return self._tfs_error("NOT_FOUND", f"Could not find version {version} of model {model}")
        return _json_reply(200, status_json([version] if version is not None else versions))

    def _tfs_metadata(self, model: str, version: int | None, label: str | None) -> Reply:
        if label is not None:
            return self._tfs_error("INVALID_ARGUMENT",
                                   f"Unrecognized servable version label: {label}")
        if not self._known(model, version):
            which = f"Latest({model})" if version is None else f"Specific({model}, {version})"
            # basic_manager.cc, via ServerCore::GetServableHandle
            return self._tfs_error("NOT_FOUND", f"Servable not found for request: {which}")
        v = version if version is not None else max(self.versions)
        return _json_reply(200, metadata_json(model, v, self._signature_defs(v),
                                              tfs_version=self.tfs_version))

    def _signature_defs(self, version: int) -> list[Signature]:
        """Every SignatureDef of the version's `serve` meta graph, the init op included, as TF
        Serving lists them (the endpoint's own list leaves the init op out)."""
        with self._lock:
            cached = self._metadata_sigs.get(version)
        if cached is not None:
            return cached
        from kdiag.model.savedmodel import read_saved_model

        served = Path(self.endpoint.savedmodel_dir)
        folder = served
        if served.parent.is_dir():
            for p in served.parent.iterdir():
                if p.is_dir() and p.name.isdigit() and int(p.name) == version:
                    folder = p
                    break
        try:
            mg = read_saved_model(folder).serving()
            sigs = mg.signatures if mg is not None else list(self.endpoint.signatures)
        except KdiagError:
            sigs = list(self.endpoint.signatures)
        with self._lock:
            self._metadata_sigs[version] = sigs
        return sigs


def tfserving_json_error(message: str) -> str:
    """A container-style `{"error": "..."}` body with proper escaping."""
    return '{"error": ' + _jstr(message) + "}"


# ------------------------------------------------------------------------------------------------
# Start-up
# ------------------------------------------------------------------------------------------------

def load_model(endpoint: LocalEndpoint) -> float:
    """Load the model and run the default signature once on zeros, so that /ping means "ready"
    and the first client request is not the one paying for graph set-up. Returns seconds.

    Raises KdiagError (TensorFlow missing, model that does not load). A warm-up that fails (a
    graph that rejects zeros) is ignored: real requests will show the problem.
    """
    t0 = time.perf_counter()
    runner = endpoint.runner
    try:
        sig = pick_signature(endpoint.signatures)
    except KdiagError:
        return time.perf_counter() - t0
    tensors = {}
    for name, spec in sig.inputs.items():
        if spec.shape is None or spec.dtype not in DTYPE_NAMES.values() or spec.dtype == "string":
            return time.perf_counter() - t0
        shape = tuple(1 if d < 0 else d for d in spec.shape)
        try:
            tensors[name] = np.zeros(shape, dtype=spec.dtype)
        except TypeError:
            return time.perf_counter() - t0
    with contextlib.suppress(Exception):  # only a warm-up
        runner.run(tensors, sig.name)
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------------
# HTTP plumbing
# ------------------------------------------------------------------------------------------------

def _close_quietly(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


# Content-Length as RFC 9110 §8.6 writes it: digits only (no sign, no spaces, no list).
_LENGTH_RE = re.compile(r"[0-9]{1,18}")


class _HTTPServer(ThreadingHTTPServer):
    """One thread per connection, with two bounds that keep a shared machine's server answering:

    - at most `max_connections` open connections: when a new one arrives at the cap, the
      connection idle longest (waiting for a request) is closed to make room; when every
      connection is busy with a request, the new one gets 503 and is closed;
    - a header deadline: a connection that has not sent a complete request head within
      `header_timeout` seconds of connecting (or of its previous answer) is closed, however
      slowly it trickles bytes.
    """

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, addr, app: ServerApp, *, max_body: int, socket_timeout: float,
                 log: Callable[[str], None] | None, max_connections: int = MAX_CONNECTIONS,
                 header_timeout: float = HEADER_TIMEOUT) -> None:
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        self.max_body = max_body
        self.socket_timeout = socket_timeout
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.log = log
        self.active = 0
        # socket -> monotonic time it became idle (waiting for a request head), or None if busy
        self.conns: dict[socket.socket, float | None] = {}
        self.state_lock = threading.Lock()
        self._reaper_stop = threading.Event()
        super().__init__(addr, _Handler)
        self._reaper = threading.Thread(target=self._reap, name="kdiag-serve-deadline",
                                        daemon=True)
        self._reaper.start()

    def _reap(self) -> None:
        while not self._reaper_stop.wait(min(0.25, self.header_timeout / 4)):
            now = time.monotonic()
            with self.state_lock:
                late = [s for s, since in self.conns.items()
                        if since is not None and now - since > self.header_timeout]
            for sock in late:
                _close_quietly(sock)

    def mark(self, sock: socket.socket, idle: bool) -> None:
        with self.state_lock:
            if sock in self.conns:
                self.conns[sock] = time.monotonic() if idle else None

    def process_request(self, request, client_address):
        with self.state_lock:
            evict = None
            if len(self.conns) >= self.max_connections:
                idle = [(since, s) for s, since in self.conns.items() if since is not None]
                if not idle:
                    full = True
                else:
                    full = False
                    evict = min(idle, key=lambda t: t[0])[1]
                    self.conns.pop(evict, None)
            else:
                full = False
            if not full:
                self.conns[request] = time.monotonic()
        if evict is not None:
            _close_quietly(evict)
        if full:
            self._refuse_busy(request)
            return
        super().process_request(request, client_address)

    def _refuse_busy(self, request: socket.socket) -> None:
        body = tfserving_json_error(f"kdiag serve is answering {self.max_connections} requests "
                                    "already; try again").encode()
        head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: {JSON}\r\n"
                f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n")
        with contextlib.suppress(OSError):
            request.settimeout(1.0)
            request.sendall(head.encode() + body)
        self.shutdown_request(request)
        if self.log is not None:
            self.log("- - - 503 (connection cap reached, all connections busy)")

    def shutdown_request(self, request):
        with self.state_lock:
            self.conns.pop(request, None)
        super().shutdown_request(request)

    def server_close(self) -> None:
        self._reaper_stop.set()
        super().server_close()

    def handle_error(self, request, client_address):
        # A client that vanished mid-request; the handler already logged what it could.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def version_string(self) -> str:
        return "kdiag"

    def setup(self) -> None:
        self.timeout = self.server.socket_timeout
        super().setup()

    def handle_one_request(self) -> None:
        # Idle until the request head is parsed (the header deadline runs), busy after.
        self.server.mark(self.connection, idle=True)
        super().handle_one_request()

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if ok:
            self.server.mark(self.connection, idle=False)
        return ok

    def log_message(self, format: str, *args) -> None:
        pass  # one line per request is written by _dispatch, without headers

    def handle_expect_100(self) -> bool:
        length = self._declared_length()
        if length is not None and length > self._body_limit():
            self._refuse_too_large(time.perf_counter(), length)
            return False
        return super().handle_expect_100()

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_GET

    def _declared_length(self) -> int | None:
        """The Content-Length, 0 when absent, None when duplicated or malformed."""
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return 0
        if len(values) > 1 or not _LENGTH_RE.fullmatch(values[0]):
            return None
        return int(values[0])

    def _is_runtime(self) -> bool:
        return bool(_RUNTIME_RE.fullmatch((self.path or "").split("?", 1)[0]))

    def _body_limit(self) -> int:
        return BODY_MAX if self._is_runtime() else self.server.max_body

    def _refuse_too_large(self, t0: float, size: int) -> None:
        self.close_connection = True
        if self._is_runtime():
            # SageMaker Runtime's own refusal of a body over the BodyBlob limit: the message
            # ServerApp gives once a body is read, decided here from Content-Length alone.
            out = validation_error("1 validation error detected: Value at 'body' failed to "
                                   "satisfy constraint: Member must have length less than or "
                                   f"equal to {BODY_MAX}")
            self._send(Reply(out.http_status, dict(out.http_headers), out.http_body,
                             "too large, not read"), t0)
            self._linger()
            return
        body = tfserving_json_error(f"request body of {size} bytes is over kdiag serve's limit "
                                    f"of {self.server.max_body} bytes (--max-body-mb)").encode()
        self._send(Reply(413, {"Content-Type": JSON}, body, "too large, not read"), t0)
        self._linger()

    def _linger(self) -> None:
        """nginx's lingering close: after an early refusal, read and drop what the client is
        still sending for a short while, so it sees the answer instead of a reset (a client
        blocked in sendall would otherwise get a broken pipe and never read the 413)."""
        sock = self.connection
        with contextlib.suppress(OSError):
            self.wfile.flush()
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(LINGER_READ_TIMEOUT)
            deadline = time.monotonic() + LINGER_TIME
            dropped = 0
            while time.monotonic() < deadline and dropped < LINGER_MAX_BYTES:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                dropped += len(chunk)

    def _dispatch(self) -> None:
        t0 = time.perf_counter()
        te = (self.headers.get("Transfer-Encoding") or "").strip().lower()
        if te and te != "identity":
            self.close_connection = True
            self._send(_json_reply(411, tfserving_json_error("send a Content-Length"),
                                   "chunked body refused"), t0)
            return
        length = self._declared_length()
        if length is None:
            self.close_connection = True
            self._send(_json_reply(400, tfserving_json_error(
                "bad Content-Length: send exactly one, as digits"), "bad Content-Length"), t0)
            return
        if length > self._body_limit():
            self._refuse_too_large(t0, length)
            return
        try:
            body = self.rfile.read(length) if length else b""
        except (TimeoutError, OSError):
            self.close_connection = True
            self._log(408, 0, t0, "client too slow sending the body")
            return
        if len(body) < length:
            self.close_connection = True
            self._log(400, 0, t0, "body shorter than Content-Length")
            return
        with self.server.state_lock:
            self.server.active += 1
        try:
            reply = self.server.app.handle(self.command, self.path, self.headers, body)
        except Exception as e:  # never a dropped connection: a well-formed 500
            reply = _json_reply(500, tfserving_json_error(f"kdiag: {type(e).__name__}"),
                                f"internal error {type(e).__name__}")
        finally:
            with self.server.state_lock:
                self.server.active -= 1
        if not 100 <= reply.status <= 599:
            # kdiag predicts no HTTP answer at all (TF Serving overflowing its stack), so there
            # is no real answer to imitate: say so in a well-formed 502 of kdiag's own.
            reply = _json_reply(502, tfserving_json_error(
                "kdiag serve: TF Serving crashes on this request and gives no answer; what a "
                "client behind the container receives then is not predicted"),
                f"predicted crash (status {reply.status})")
        self._send(reply, t0)

    def _send(self, reply: Reply, t0: float) -> None:
        try:
            self.send_response(reply.status)
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(reply.body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
        except OSError:
            self.close_connection = True
        self._log(reply.status, len(reply.body), t0, reply.note)

    def _log(self, status: int, size: int, t0: float, note: str = "") -> None:
        log = self.server.log
        if log is None:
            return
        # The path without its query string: SigV4 query signing puts credentials there.
        path = (self.path or "").split("?", 1)[0]
        ms = (time.perf_counter() - t0) * 1000
        line = f"{self.client_address[0]} {self.command} {path} {status} {size}B {ms:.1f}ms"
        log(line + (f" ({note})" if note else ""))


@dataclass
class RunningServer:
    """A server answering in a background thread. `stop()` (or leaving the `with` block) stops
    accepting, lets requests in flight finish (up to `grace` seconds) and closes every
    connection."""

    url: str
    host: str
    port: int
    endpoint_name: str
    app: ServerApp
    routes: list[str] = field(default_factory=list)
    _httpd: _HTTPServer | None = None
    _thread: threading.Thread | None = None

    def stop(self, grace: float = 3.0) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with httpd.state_lock:
                if httpd.active == 0:
                    break
            time.sleep(0.02)
        with httpd.state_lock:
            conns = list(httpd.conns)
        for sock in conns:
            _close_quietly(sock)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(grace)

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(endpoint: LocalEndpoint, host: str = "127.0.0.1", port: int = 0,
                 endpoint_name: str = "local", *, variant: str = VARIANT,
                 log: Callable[[str], None] | None = None, max_body: int = MAX_BODY,
                 socket_timeout: float = SOCKET_TIMEOUT, header_timeout: float = HEADER_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS,
                 runtime_deadline: float | None = RUNTIME_DEADLINE) -> RunningServer:
    """Serve `endpoint` on host:port (0 picks a free port) in a background thread.

    The model is not loaded here; call `load_model` first so /ping reflects a loaded model.
    `log` receives one line per request (method, path without query, status, bytes, ms); it is
    never given headers, so credentials in Authorization never reach it.
    Raises KdiagError when the address cannot be bound.
    """
    if not _NAME_RE.fullmatch(endpoint_name) or len(endpoint_name) > 63:
        raise KdiagError(f"endpoint name {endpoint_name!r} is not one SageMaker accepts: up to 63 "
                         "letters, digits and hyphens, starting and ending with a letter or digit.")
    app = ServerApp(endpoint, endpoint_name=endpoint_name, variant=variant,
                    runtime_deadline=runtime_deadline)
    try:
        httpd = _HTTPServer((host, port), app, max_body=max_body, socket_timeout=socket_timeout,
                            log=log, header_timeout=header_timeout,
                            max_connections=max_connections)
    except OSError as e:
        what = "is in use" if getattr(e, "errno", None) in (98, 48, 10048) else f"failed: {e}"
        raise KdiagError(f"cannot listen on {host}:{port}: the address {what}. Pick another "
                         "--port, or --port 0 for a free one.") from None
    bound_port = httpd.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound_port}"
    m = endpoint.model_name
    routes = ["GET /ping", "POST /invocations", f"POST /endpoints/{endpoint_name}/invocations",
              f"POST /v1/models/{m}[/versions/N]:predict|classify|regress",
              f"GET /v1/models/{m}[/versions/N]",
              f"GET /v1/models/{m}[/versions/N]/metadata"]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
                              name=f"kdiag-serve-{bound_port}", daemon=True)
    server = RunningServer(url=url, host=host, port=bound_port, endpoint_name=endpoint_name,
                           app=app, routes=routes, _httpd=httpd, _thread=thread)
    thread.start()
    return server
