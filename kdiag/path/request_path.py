"""The request path as one object: wire, container, TF Serving, container response.

`validate` (no model: TF Serving's answer to a valid request holds zeros), `replay` and `serve`
(a SavedModelRunner runs the signature) all walk requests through a RequestPath, so the stages
are chained in one place. The two-phase form (`begin`, then `complete` with the model's result)
lets batch replay stack many requests into one model call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kdiag.diagnosis.findings import Finding
from kdiag.model.signature import Signature
from kdiag.path.container import (
    Handlers,
    Request,
    container_request,
    container_response,
    load_handlers,
    run_python_path,
)
from kdiag.path.container_common import nginx_error_page
from kdiag.path.generations import Generation
from kdiag.path.runtime import RuntimeOutcome, runtime_outcome, validation_error
from kdiag.path.signature_stage import dtype_name
from kdiag.path.tfs_emulator import Prepared, TfsAnswer, TfServingEmulator
from kdiag.path.trace import StageRecord
from kdiag.path.wire import check_wire


@dataclass
class Invocation:
    """What the container answers to one request, with the trace of how it got there."""

    status: int
    content_type: str | None
    body: bytes
    stage: str | None  # the first failing stage, None when 2xx with predictions
    records: list[StageRecord] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    tfs_request: str | None = None
    tfs_target: dict | None = None
    tensors: dict[str, np.ndarray] = field(default_factory=dict)  # what TF Serving built
    outputs: dict[str, np.ndarray] | None = None  # what the model returned
    model_error: str | None = None
    wire_rejected: bool = False
    signature_name: str | None = None  # the signature TF Serving ran (signature_name or default)
    # How the container treated the body (njs: "tfs-json", "json-lines", "instances-list",
    # "wrapped", "csv"; Python: "raw", "handler"): diagnosis reads this, never the text again.
    container_mode: str | None = None
    # The graph, not TF Serving, decides this request (a shape TF Serving passes on unchecked)
    # and no model ran: the status is one of these, not known offline.
    status_candidates: tuple[int, ...] | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and self.stage is None


@dataclass
class _Pending:
    """A request between its container/parse stages and the model call (batch replay)."""

    req: Request
    records: list[StageRecord]
    findings: list[Finding]
    path: str
    forwarded: str | None
    target: dict | None
    tfs: TfServingEmulator
    prep: Prepared | None
    done: Invocation | None = None
    mode: str | None = None


class RequestPath:
    """The stages for one model as the container serves it.

    `run(tensors, signature_name)` is the model (None: predict without it); `code_dir` holds the
    user's inference.py, which is imported (user code runs) once per file.
    """

    def __init__(self, signatures: list[Signature], gen: Generation, *, model_name: str = "model",
                 versions: tuple[int, ...] | None = None, code_dir: Path | None = None,
                 has_requirements: bool = False, has_lib: bool = False,
                 endpoint_kind: str = "realtime", run: Callable | None = None,
                 multi_model: bool = False) -> None:
        self.signatures = signatures
        self.gen = gen
        self.model_name = model_name
        self.versions = versions
        self.code_dir = code_dir
        self.has_requirements = has_requirements
        self.has_lib = has_lib
        self.endpoint_kind = endpoint_kind
        self.run = run
        self.multi_model = multi_model  # SAGEMAKER_MULTI_MODEL=true: always the Python service
        self.handlers = handlers_for(code_dir) if code_dir is not None else None

    def reimport_handlers(self) -> None:
        """Import code/inference.py again: after code/requirements.txt is installed, since the
        first import (when the endpoint opened) may have failed for want of them."""
        if self.code_dir is not None:
            self.handlers = handlers_for(self.code_dir)

    def emulator(self) -> TfServingEmulator:
        return TfServingEmulator(self.signatures, model_name=self.model_name,
                                 versions=self.versions, tfs_version=self.gen.tfs_version,
                                 run=self.run)

    def invoke(self, req: Request, *, wire: bool = True) -> Invocation:
        """`wire=False` skips the Runtime's limits: a request straight to the container's
        /invocations (kdiag serve) is not bounded by InvokeEndpoint."""
        pending = self.begin(req, wire=wire)
        if pending.done is not None:
            return pending.done
        result = self.run(pending.prep.parse.tensors, pending.prep.signature.name) \
            if self.run is not None else None
        return self.complete(pending, result)

    def begin(self, req: Request, *, wire: bool = True) -> _Pending:
        """Everything before the model call. Python-path requests complete here."""
        checked = check_wire(req, endpoint_kind=self.endpoint_kind)
        records = [checked.record]
        findings = list(checked.findings)
        tfs = self.emulator()
        if wire and not checked.accepted:
            inv = Invocation(400, "application/json", b"", "wire", records, findings,
                             wire_rejected=True)
            return _Pending(req, records, findings, "wire", None, None, tfs, None, inv)
        cres = container_request(req, self.gen, model_name=self.model_name,
                                 code_dir=self.code_dir, has_requirements=self.has_requirements,
                                 has_lib=self.has_lib, multi_model=self.multi_model)
        if cres.path == "python":
            cres = run_python_path(req, self.gen, model_name=self.model_name, send_to_tfs=tfs,
                                   handlers=self.handlers)
        records += [cres.record] if cres.record else []
        findings += cres.findings
        target = None if cres.target is None else {
            "model": cres.target.model, "version": cres.target.version,
            "method": cres.target.method}
        if cres.path == "python":
            records += tfs.records
            last = tfs.last
            status = cres.status if cres.status is not None else 502
            body = cres.body_bytes if cres.body_bytes is not None else (cres.body or "").encode()
            if cres.status is None:
                # No Python service behind nginx (e.g. inference.py fails to import, so the
                # gunicorn worker never boots): nginx's own 502 page, never an empty body.
                body, cres.content_type = nginx_error_page(502).encode(), "text/html"
            tfs_ok = last is None or last.status == 200
            stage = None if status < 300 and tfs_ok else (
                last.stage if last is not None and not tfs_ok else "container")
            inv = Invocation(status, cres.content_type, body, stage, records,
                             findings + (last.findings if last else []),
                             cres.tfs_requests[0][0].decode("utf-8", "replace")
                             if cres.tfs_requests else None, target,
                             dict(last.parse.tensors) if last and last.parse and last.parse.ok
                             else {}, last.outputs if last else None,
                             last.model_error if last else None, container_mode="handler")
            return _Pending(req, records, findings, "python", None, target, tfs, None, inv)
        if cres.forwarded is None:
            inv = Invocation(cres.status or 500, cres.content_type,
                             (cres.body or "").encode("utf-8"), "container", records, findings,
                             None, target, container_mode=cres.mode)
            return _Pending(req, records, findings, cres.path, None, target, tfs, None, inv)
        # A pass-through body reaches TF Serving as the client's own bytes; handing those over
        # (not the decoded text) spares a copy of every large body.
        utf8 = not any(f.code == "KD109" for f in checked.findings)
        prep = tfs.prepare(req.body_bytes if cres.mode == "tfs-json" and utf8 else cres.forwarded,
                           cres.target)
        pending = _Pending(req, records, findings, cres.path, cres.forwarded, target, tfs, prep,
                           mode=cres.mode)
        if prep.answer is not None:
            pending.done = self._respond(pending, prep.answer)
        return pending

    def complete(self, pending: _Pending, result) -> Invocation:
        if pending.done is not None:
            return pending.done
        return self._respond(pending, pending.tfs.finish(pending.prep, result))

    def _respond(self, p: _Pending, ans: TfsAnswer) -> Invocation:
        p.records += p.tfs.records
        resp = container_response(ans.status, ans.body, p.req, self.gen, p.path)
        p.records += [resp.record] if resp.record else []
        status = resp.status if resp.status is not None else 502
        stage = ans.stage if ans.status != 200 else (None if status < 300 else "container-response")
        body = resp.body if isinstance(resp.body, bytes) else (resp.body or "").encode("utf-8")
        ok_parse = ans.parse is not None and ans.parse.ok
        return Invocation(status, resp.content_type, body, stage, p.records,
                          p.findings + ans.findings + resp.findings, p.forwarded, p.target,
                          dict(ans.parse.tensors) if ok_parse else {}, ans.outputs,
                          ans.model_error,
                          signature_name=ans.parse.signature_name if ok_parse else None,
                          container_mode=p.mode,
                          status_candidates=None if ans.status_candidates is None
                          else tuple(dict.fromkeys((status, 200))))


_HANDLERS: dict[tuple[Path, float], Handlers] = {}
_HANDLERS_LOCK = threading.Lock()


def handlers_for(code_dir: Path) -> Handlers:
    """The user's handlers, imported once per inference.py (and again when the file changes):
    validating many payloads must not re-run the user's module for each."""
    script = Path(code_dir).resolve() / "inference.py"
    try:
        key = (script, script.stat().st_mtime)
    except OSError:
        return load_handlers(Path(code_dir))  # no inference.py: load_handlers says so
    with _HANDLERS_LOCK:
        if key not in _HANDLERS:
            found = load_handlers(Path(code_dir))
            if found.startup_error:
                return found  # not kept: an install may make the next import succeed
            _HANDLERS[key] = found
        return _HANDLERS[key]


def caller_view(inv: Invocation, *, endpoint_name: str = "endpoint",
                request_id: str | None = None) -> RuntimeOutcome:
    """What SageMaker Runtime makes of the container's answer: what boto3 returns or raises.
    A request refused at the wire never reached the container: ValidationError."""
    if inv.wire_rejected:
        return validation_error(next((f.message for f in inv.findings
                                      if f.stage == "wire" and f.severity == "error"),
                                     "request rejected"), request_id=request_id)
    return runtime_outcome(inv.status, inv.body, inv.content_type, endpoint_name=endpoint_name,
                           request_id=request_id)


def tensor_summary(tensors: dict[str, np.ndarray]) -> dict[str, dict]:
    return {k: {"dtype": dtype_name(v), "shape": [int(d) for d in np.shape(v)]}
            for k, v in tensors.items()}
