"""`kdiag validate`: predict, without the model and without TensorFlow, what the endpoint answers.

The payload walks the same stage functions the local server and replay use: wire, container,
tfs-parse, signature. Where the model itself would answer (a valid request), kdiag cannot know
the numbers, so the response body holds zeros of the right shape; status, Content-Type and every
error text are the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kdiag.diagnose import diagnose
from kdiag.findings import Finding
from kdiag.path import tfserving
from kdiag.path.container import (
    Request,
    container_request,
    container_response,
    generation_for,
    run_python_path,
)
from kdiag.path.runtime import runtime_outcome, validation_error
from kdiag.path.tfs_emulator import TfServingEmulator, dtype_name
from kdiag.path.wire import check_wire
from kdiag.signature import Signature, format_shape, pick_signature
from kdiag.trace import StageRecord, excerpt


@dataclass
class ValidateOptions:
    framework_version: str | None = None
    via: str = "container"  # "container" | "tfs"
    code_dir: Path | None = None
    signature_name: str | None = None
    endpoint_kind: str = "realtime"
    model_name: str = "model"  # the name the container serves the model under
    versions: tuple[int, ...] | None = None  # the versions TF Serving has loaded, when known
    has_requirements: bool = False  # code/requirements.txt without --code (selects the path)
    has_lib: bool = False
    misplaced_code: str | None = None  # an inference.py the container will not find (KD002)


@dataclass
class ValidationResult:
    accepted: bool
    status: int
    stage: str | None
    error: str | None
    tfs_request: str | None = None
    tfs_target: dict | None = None
    tensors: dict[str, dict] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    fixed_payload: dict | None = None
    records: list[StageRecord] = field(default_factory=list)
    content_type: str | None = None  # of the container's answer
    response_body: str | None = None  # the container's answer (zeros for predictions when 2xx)
    name: str | None = None  # the payload's file or record id in batch runs

    def to_json(self) -> dict:
        doc = {
            "accepted": self.accepted, "status": self.status, "stage": self.stage,
            "error": self.error, "tfs_request": self.tfs_request, "tfs_target": self.tfs_target,
            "tensors": self.tensors, "findings": [f.to_dict() for f in self.findings],
            "fixed_payload": self.fixed_payload,
            "stages": [r.to_dict() for r in self.records],
        }
        if self.name is not None:
            doc = {"payload": self.name, **doc}
        return doc


def _tensors(parse: tfserving.TfsParse | None) -> dict[str, dict]:
    if parse is None or not parse.ok:
        return {}
    return {k: {"dtype": dtype_name(v), "shape": [int(d) for d in np.shape(v)]}
            for k, v in parse.tensors.items()}


def validate(req: Request, signatures: list[Signature], opts: ValidateOptions | None = None,
             *, name: str | None = None, propose_fix: bool = True) -> ValidationResult:
    """Walk one request through the stages. Never raises on a bad payload."""
    opts = opts or ValidateOptions()
    res = _walk(req, signatures, opts)
    res.name = name
    sig = pick_signature(signatures, opts.signature_name) if signatures else None
    diagnose(res, req, signatures, opts, sig, propose_fix=propose_fix)
    return res


def _walk(req: Request, signatures: list[Signature], opts: ValidateOptions) -> ValidationResult:
    gen = generation_for(opts.framework_version)
    wire = check_wire(req, endpoint_kind=opts.endpoint_kind)
    records = [wire.record]
    findings = list(wire.findings)
    if not wire.accepted:
        first = next((f.message for f in wire.findings if f.severity == "error"), "rejected")
        rt = validation_error(first)
        records += [rt.record] if rt.record else []
        return ValidationResult(False, 400, "wire", rt.message, findings=findings,
                                records=records)

    tfs = TfServingEmulator(signatures, model_name=opts.model_name, versions=opts.versions,
                            tfs_version=None if opts.via == "tfs" else gen.tfs_version)
    if opts.via == "tfs":
        ans = tfs.answer(req.body_bytes, None)
        ok = ans.status == 200
        return ValidationResult(
            ok, ans.status, ans.stage, None if ok else ans.body,
            tfs_request=req.body_bytes.decode("utf-8", "replace"),
            tfs_target={"model": opts.model_name, "version": None, "method": "predict"},
            tensors=_tensors(ans.parse), findings=findings + ans.findings,
            records=records + tfs.records, content_type="application/json",
            response_body=ans.body)

    cres = container_request(req, gen, model_name=opts.model_name, code_dir=opts.code_dir,
                             has_requirements=opts.has_requirements, has_lib=opts.has_lib)
    if cres.path == "python":
        cres = run_python_path(req, gen, code_dir=opts.code_dir, model_name=opts.model_name,
                               send_to_tfs=tfs)
    records += [cres.record] if cres.record else []
    findings += cres.findings
    target = cres.target
    tfs_target = None if target is None else {"model": target.model, "version": target.version,
                                              "method": target.method}
    if cres.path == "python":
        records += tfs.records
        last = tfs.last
        status = cres.status if cres.status is not None else 502
        forwarded = cres.tfs_requests[0][0].decode("utf-8", "replace") if cres.tfs_requests else None
        tfs_ok = last is None or last.status == 200
        accepted = status < 300 and tfs_ok
        stage = None if accepted else (last.stage if last is not None and not tfs_ok else "container")
        findings += last.findings if last is not None else []
        return _finish(accepted, status, stage, cres.body, cres.content_type, forwarded,
                       tfs_target, _tensors(last.parse if last else None), findings, records)
    if cres.forwarded is None:  # the container answered by itself (415, 500, bad attribute)
        return _finish(False, cres.status or 500, "container", cres.body, cres.content_type,
                       None, tfs_target, {}, findings, records)
    # A pass-through body reaches TF Serving as the client's own bytes; handing those over
    # (not the decoded text) spares a 2x copy of every large body.
    utf8 = not any(f.code == "KD109" for f in wire.findings)
    ans = tfs.answer(req.body_bytes if cres.mode == "tfs-json" and utf8 else cres.forwarded,
                     target)
    records += tfs.records
    findings += ans.findings
    resp = container_response(ans.status, ans.body, req, gen, cres.path)
    records += [resp.record] if resp.record else []
    findings += resp.findings
    status = resp.status if resp.status is not None else 502
    accepted = ans.status == 200 and status < 300
    return _finish(accepted, status, None if accepted else ans.stage, resp.body,
                   resp.content_type, cres.forwarded, tfs_target, _tensors(ans.parse), findings,
                   records)


def _finish(accepted: bool, status: int, stage: str | None, body: str | None,
            content_type: str | None, forwarded: str | None, tfs_target: dict | None,
            tensors: dict, findings: list[Finding], records: list[StageRecord]
            ) -> ValidationResult:
    # A fixed request id: validate predicts, it sends nothing, and its output stays the same.
    rt = runtime_outcome(status, body, content_type, request_id="kdiag-validate")
    records += [rt.record] if rt.record else []
    if not accepted:
        findings += [f for f in rt.findings if f.code == "KD660"]
    return ValidationResult(accepted, status, stage, None if accepted else body,
                            tfs_request=forwarded, tfs_target=tfs_target, tensors=tensors,
                            findings=findings, records=records, content_type=content_type,
                            response_body=body)


def one_line(res: ValidationResult) -> str:
    """The verdict in one line, for batch reports."""
    if res.accepted:
        shapes = ", ".join(f"{k} {format_shape(tuple(v['shape']))}" for k, v in res.tensors.items())
        return f"accepted ({res.status}) {shapes}"
    head = next((f for f in reversed(res.findings) if f.severity == "error"
                 and f.code[2] in "1234"), None)
    return f"rejected ({res.status}) at {res.stage}: " + (
        head.message if head else excerpt(res.error or "", 160))
