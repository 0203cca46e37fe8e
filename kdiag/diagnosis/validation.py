"""`kdiag validate`: predict, without the model and without TensorFlow, what the endpoint answers.

The payload walks the same stage functions the local server and replay use: wire, container,
tfs-parse, signature. Where the model itself would answer (a valid request), kdiag cannot know
the numbers, so the response body holds zeros of the right shape; status, Content-Type and every
error text are the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kdiag.diagnosis.diagnose import diagnose
from kdiag.diagnosis.findings import Finding
from kdiag.model.signature import Signature, format_shape, pick_signature
from kdiag.path.container import Request, generation_for
from kdiag.path.request_path import RequestPath, caller_view, tensor_summary
from kdiag.path.runtime import validation_error
from kdiag.path.tfs_emulator import TfServingEmulator
from kdiag.path.trace import StageRecord, excerpt
from kdiag.path.wire import check_wire
from kdiag.payloads.build import tfs_request
from kdiag.payloads.recover import NoFix, recover


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


def validate(req: Request, signatures: list[Signature], opts: ValidateOptions | None = None,
             *, name: str | None = None, propose_fix: bool = True) -> ValidationResult:
    """Walk one request through the stages. Never raises on a bad payload."""
    opts = opts or ValidateOptions()
    res = _walk(req, signatures, opts)
    res.name = name
    sig = pick_signature(signatures, opts.signature_name) if signatures else None
    if sig is not None and not res.accepted:
        diagnose(res, req, signatures, opts, sig)
        if propose_fix:
            attach_fixed_payload(res, req, signatures, opts, sig)
    return res


def _walk(req: Request, signatures: list[Signature], opts: ValidateOptions) -> ValidationResult:
    gen = generation_for(opts.framework_version)
    if opts.via == "tfs":
        return _straight_to_tfs(req, signatures, opts)
    path = RequestPath(signatures, gen, model_name=opts.model_name, versions=opts.versions,
                       code_dir=opts.code_dir, has_requirements=opts.has_requirements,
                       has_lib=opts.has_lib, endpoint_kind=opts.endpoint_kind)
    inv = path.invoke(req)
    # A fixed request id: validate predicts, it sends nothing, and its output stays the same.
    rt = caller_view(inv, request_id="kdiag-validate")
    accepted = inv.ok and rt.ok
    body = inv.body.decode("utf-8", "replace")
    return ValidationResult(
        accepted, inv.status, inv.stage,
        None if accepted else (rt.message if inv.wire_rejected else body),
        tfs_request=inv.tfs_request, tfs_target=inv.tfs_target,
        tensors=tensor_summary(inv.tensors),
        findings=inv.findings + [f for f in rt.findings if f.code == "KD660"],
        records=inv.records + ([rt.record] if rt.record else []),
        content_type=inv.content_type, response_body=None if inv.wire_rejected else body)


def _straight_to_tfs(req: Request, signatures: list[Signature],
                     opts: ValidateOptions) -> ValidationResult:
    """--via tfs: the body as sent to TF Serving's REST API, no container in front."""
    wire = check_wire(req, endpoint_kind=opts.endpoint_kind)
    if not wire.accepted:
        rt = validation_error(next(f.message for f in wire.findings if f.severity == "error"))
        return ValidationResult(False, 400, "wire", rt.message, findings=wire.findings,
                                records=[wire.record] + ([rt.record] if rt.record else []))
    tfs = TfServingEmulator(signatures, model_name=opts.model_name, versions=opts.versions,
                            tfs_version=generation_for(opts.framework_version).tfs_version)
    ans = tfs.answer(req.body_bytes, None)
    ok = ans.status == 200
    return ValidationResult(
        ok, ans.status, ans.stage, None if ok else ans.body,
        tfs_request=req.body_bytes.decode("utf-8", "replace"),
        tfs_target={"model": opts.model_name, "version": None, "method": "predict"},
        tensors=tensor_summary(ans.parse.tensors) if ans.parse and ans.parse.ok else {},
        findings=wire.findings + ans.findings, records=[wire.record] + tfs.records,
        content_type="application/json", response_body=ans.body)


def one_line(res: ValidationResult) -> str:
    """The verdict in one line, for batch reports."""
    if res.accepted:
        shapes = ", ".join(f"{k} {format_shape(tuple(v['shape']))}" for k, v in res.tensors.items())
        return f"accepted ({res.status}) {shapes}"
    head = next((f for f in reversed(res.findings) if f.severity == "error"
                 and f.code[2] in "1234"), None)
    return f"rejected ({res.status}) at {res.stage}: " + (
        head.message if head else excerpt(res.error or "", 160))


def _round_floats(rec) -> None:
    """Field notes §9: a JSON float costs ~20 bytes; 3 decimals keep most models' accuracy and
    cut a body to about a third. The model is untouched; the user decides if 1e-3 is enough."""
    import numpy as np

    rounded = False
    for name, arr in rec.tensors.items():
        if arr.dtype.kind == "f":
            rec.tensors[name] = np.round(arr, 3).astype(arr.dtype)
            rounded = True
    if not rounded:
        raise NoFix("the body is too large and holds no floats to round; send less data per "
                    "request, b64 image bytes, or use async inference")
    rec.steps.append("rounded floats to 3 decimals to fit the size limit (check the model "
                     "tolerates it)")


def attach_fixed_payload(res: ValidationResult, req: Request, signatures: list[Signature],
                         opts: ValidateOptions, sig: Signature) -> None:
    """Recover the tensors the sender meant and propose the body that carries them, only when
    validating that body says the endpoint accepts it (so a proposal is never a guess)."""
    too_large = res.stage == "wire" and any(f.code == "KD101" for f in res.findings)
    try:
        rec = recover(req.body_bytes, req.content_type, sig)
        if too_large:
            _round_floats(rec)
        if req.content_type != "application/json":
            rec.steps.insert(0, "Content-Type application/json (was "
                             + (repr(req.content_type) if req.content_type else "none") + ")")
        body = tfs_request(rec.tensors, sig,
                           signature_name=None if sig.name == "serving_default" else sig.name)
    except (NoFix, UnicodeDecodeError) as e:
        res.findings.append(Finding("KD900", "info", res.stage or "container",
                                    f"No corrected payload: {e}.", ""))
        return
    except Exception as e:  # the builder refuses values it cannot write (KdiagError)
        res.findings.append(Finding("KD900", "info", res.stage or "container",
                                    f"No corrected payload: {e}", ""))
        return
    fixed_req = Request(body=body.encode("utf-8"), content_type="application/json",
                        accept=req.accept, custom_attributes=req.custom_attributes)
    check = validate(fixed_req, signatures, opts, propose_fix=False)
    if check.accepted:
        res.fixed_payload = {"content_type": "application/json", "body": body,
                             "changes": rec.steps}
