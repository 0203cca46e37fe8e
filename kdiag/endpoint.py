"""A local endpoint: the SageMaker TF Serving container in front of a real SavedModel.

`replay` and `serve` both go through `LocalEndpoint.invoke`, which walks the same stage
functions as `validate` with the model actually running (TensorFlow is imported on first use).
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kdiag.artifacts import read_model
from kdiag.artifacts.archive import extract_archive
from kdiag.errors import KdiagError
from kdiag.findings import Finding
from kdiag.path.container import (
    Request,
    container_request,
    container_response,
    generation_for,
    load_handlers,
    run_python_path,
)
from kdiag.path.tfs_emulator import Prepared, TfsAnswer, TfServingEmulator, dtype_name
from kdiag.path.wire import check_wire
from kdiag.signature import Signature
from kdiag.trace import StageRecord


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


class LocalEndpoint:
    """One model served as the container would serve it (njs path, or inference.py handlers
    when `code_dir` is given: that executes the user's code)."""

    def __init__(self, model: str | Path, *, framework_version: str | None = None,
                 code_dir: Path | None = None, model_name: str | None = None) -> None:
        path = Path(model)
        self._tmp: Path | None = None
        art = read_model(path)
        if art.kind == "archive":
            self._tmp = extract_archive(path)
            art_disk = read_model(self._tmp)
            art_disk.model_name = art.model_name
            art = art_disk
        if art.savedmodel_dir is None or not art.signatures:
            self.close()
            from kdiag.validation_setup import explain_errors

            raise KdiagError(f"{model} holds no SavedModel kdiag can run. "
                             + explain_errors(art.findings))
        self.artifact = art
        self.savedmodel_dir = art.savedmodel_dir
        self.signatures: list[Signature] = art.signatures
        self.model_name = model_name or (art.model_name if art.kind == "archive" else None) \
            or "model"
        lay = art.layout
        self.versions = tuple(int(v) for v in lay.default_model.loadable_versions) \
            if lay is not None and lay.default_model is not None else \
            ((int(art.version),) if art.version and art.version.isdigit() else None)
        self.gen = generation_for(framework_version)
        self.code_dir = code_dir
        self.handlers = load_handlers(code_dir) if code_dir is not None else None
        # inference.py present but not run (no code_dir): serve as if code/ were absent.
        uses_code = bool(lay) and (not lay.inference_py or code_dir is not None)
        self.has_requirements = uses_code and "code/requirements.txt" in lay.python_path_files
        self.has_lib = uses_code and "code/lib" in lay.python_path_files
        self.unrun_code = bool(lay and lay.inference_py and code_dir is None)
        self._runner = None
        self._lock = threading.Lock()

    # -- the model -------------------------------------------------------------------------
    @property
    def runner(self):
        with self._lock:
            if self._runner is None:
                from kdiag.runner import load_runner, require_tensorflow

                require_tensorflow("Running the model")
                self._runner = load_runner(self.savedmodel_dir)
            return self._runner

    def run(self, tensors: dict[str, np.ndarray], signature_name: str | None = None):
        return self.runner.run(tensors, signature_name)

    def emulator(self, *, with_model: bool = True) -> TfServingEmulator:
        return TfServingEmulator(self.signatures, model_name=self.model_name,
                                 versions=self.versions, tfs_version=self.gen.tfs_version,
                                 run=self.run if with_model else None)

    # -- the container contract (POST /invocations) ----------------------------------------
    def invoke(self, req: Request, *, wire: bool = True) -> Invocation:
        """`wire=False` skips the Runtime's limits: a request straight to the container's
        /invocations (kdiag serve) is not bounded by InvokeEndpoint."""
        pending = self.begin(req, wire=wire)
        if pending.done is not None:
            return pending.done
        result = self.run(pending.prep.parse.tensors, pending.prep.signature.name)
        return self.complete(pending, result)

    def begin(self, req: Request, *, wire: bool = True) -> _Pending:
        """Everything before the model call. Python-path requests complete here."""
        checked = check_wire(req)
        records = [checked.record]
        findings = list(checked.findings)
        tfs = self.emulator()
        if wire and not checked.accepted:
            inv = Invocation(400, "application/json", b"", "wire", records, findings,
                             wire_rejected=True)
            return _Pending(req, records, findings, "wire", None, None, tfs, None, inv)
        cres = container_request(req, self.gen, model_name=self.model_name,
                                 code_dir=self.code_dir, has_requirements=self.has_requirements,
                                 has_lib=self.has_lib)
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
            tfs_ok = last is None or last.status == 200
            stage = None if status < 300 and tfs_ok else (
                last.stage if last is not None and not tfs_ok else "container")
            inv = Invocation(status, cres.content_type, body, stage, records,
                             findings + (last.findings if last else []),
                             cres.tfs_requests[0][0].decode("utf-8", "replace")
                             if cres.tfs_requests else None, target,
                             dict(last.parse.tensors) if last and last.parse and last.parse.ok
                             else {}, last.outputs if last else None,
                             last.model_error if last else None)
            return _Pending(req, records, findings, "python", None, target, tfs, None, inv)
        if cres.forwarded is None:
            inv = Invocation(cres.status or 500, cres.content_type,
                             (cres.body or "").encode("utf-8"), "container", records, findings,
                             None, target)
            return _Pending(req, records, findings, cres.path, None, target, tfs, None, inv)
        prep = tfs.prepare(cres.forwarded, cres.target)
        pending = _Pending(req, records, findings, cres.path, cres.forwarded, target, tfs, prep)
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
                          signature_name=ans.parse.signature_name if ok_parse else None)

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> LocalEndpoint:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def tensor_summary(tensors: dict[str, np.ndarray]) -> dict[str, dict]:
    return {k: {"dtype": dtype_name(v), "shape": [int(d) for d in np.shape(v)]}
            for k, v in tensors.items()}
