"""`kdiag validate`: predict, without the model and without TensorFlow, what the endpoint answers.

The payload walks the same stage functions the local server and replay use: wire, container,
tfs-parse, signature. Where the model itself would answer (a valid request), kdiag cannot know
the numbers, so the response body holds zeros of the right shape; status, Content-Type and every
error text are the real ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kdiag.diagnosis.diagnose import diagnose, wants_fix
from kdiag.diagnosis.families import NO_PAYLOAD_CODES
from kdiag.diagnosis.findings import Finding
from kdiag.errors import KdiagError
from kdiag.model.signature import Signature, format_shape, pick_signature
from kdiag.path.container import Request, generation_for
from kdiag.path.request_path import RequestPath, caller_view, tensor_summary
from kdiag.path.runtime import validation_error
from kdiag.path.signature_stage import GRAPH_DECIDES
from kdiag.path.tfs_emulator import TfServingEmulator
from kdiag.path.trace import StageRecord, excerpt
from kdiag.path.wire import BODY_LIMITS, body_too_large, check_wire
from kdiag.payloads.build import csv_allowed, csv_request, tfs_request
from kdiag.payloads.recover import (
    MAX_LENGTH_GROUPS,
    NoFix,
    Recovered,
    fix_b64_in_place,
    group_tensors,
    length_groups,
    recover,
    requested_signature,
)


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
    # Findings about the model that concern every request (KD230, KD501 read from the file):
    # part of each payload's result, so its root cause can be the model itself.
    artifact_findings: list[Finding] = field(default_factory=list)
    multi_model: bool = False  # sent with TargetModel to a multi-model endpoint

    @classmethod
    def for_target(cls, target, **options) -> ValidateOptions:
        """The options a resolved model.target.Target implies (name, versions, code/ files,
        its findings), plus the caller's own (framework_version, via, ...)."""
        return cls(model_name=target.model_name, versions=target.versions,
                   has_requirements=target.has_requirements, has_lib=target.has_lib,
                   misplaced_code=target.misplaced_code, artifact_findings=target.findings,
                   **options)


@dataclass
class ValidationResult:
    accepted: bool
    # None when the graph decides and no model ran: then `status_candidates` holds the answers
    # it can give (400 if an op checks the axis, 200 computed from the malformed input).
    status: int | None
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
    status_candidates: tuple[int, ...] | None = None
    container_mode: str | None = None  # how the container treated the body (see Invocation)
    root_cause: str | None = None  # the code of the one root cause; other errors follow from it

    def to_json(self) -> dict:
        doc = {
            "accepted": self.accepted, "status": self.status,
            "status_candidates": None if self.status_candidates is None
            else list(self.status_candidates),
            "root_cause": self.root_cause, "stage": self.stage,
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
    if opts.artifact_findings:
        from kdiag.model.target import findings_on_endpoint

        res.findings = findings_on_endpoint(
            list(opts.artifact_findings), multi_model=opts.multi_model,
            generation_name=generation_for(opts.framework_version).name) + res.findings
        if res.accepted and any(f.code == "KD501" for f in opts.artifact_findings):
            # The path accepts the request, and the graph then fails to read its variables
            # (FAILED_PRECONDITION, which TF Serving answers with 400), as replay shows.
            res.accepted, res.status, res.stage = False, 400, "model"
            res.status_candidates = None
    sig = pick_signature(signatures, opts.signature_name or requested_signature(
        req.body_bytes, req.content_type, signatures)) if signatures else None
    diagnose(res, req, signatures, opts, sig)
    if propose_fix and sig is not None and wants_fix(res):
        attach_fixed_payload(res, req, signatures, opts, sig)
    return res


def _walk(req: Request, signatures: list[Signature], opts: ValidateOptions) -> ValidationResult:
    gen = generation_for(opts.framework_version)
    if opts.via == "tfs":
        return _straight_to_tfs(req, signatures, opts)
    path = RequestPath(signatures, gen, model_name=opts.model_name, versions=opts.versions,
                       code_dir=opts.code_dir, has_requirements=opts.has_requirements,
                       has_lib=opts.has_lib, endpoint_kind=opts.endpoint_kind,
                       multi_model=opts.multi_model)
    inv = path.invoke(req)
    # A fixed request id: validate predicts, it sends nothing, and its output stays the same.
    rt = caller_view(inv, request_id="kdiag-validate")
    accepted = inv.ok and rt.ok
    body = inv.body.decode("utf-8", "replace")
    candidates = inv.status_candidates if inv.status_candidates and \
        len(inv.status_candidates) > 1 else None
    return ValidationResult(
        accepted, None if candidates else inv.status, inv.stage,
        None if accepted else (rt.message if inv.wire_rejected else body),
        tfs_request=inv.tfs_request, tfs_target=inv.tfs_target,
        tensors=tensor_summary(inv.tensors),
        # ModelError names a status; when the graph decides, no status is known offline.
        findings=inv.findings + [f for f in rt.findings
                                 if f.code == "KD660" and candidates is None],
        records=inv.records + ([rt.record] if rt.record else []),
        content_type=inv.content_type, response_body=None if inv.wire_rejected else body,
        status_candidates=candidates, container_mode=inv.container_mode)


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
    candidates = ans.status_candidates
    return ValidationResult(
        ok, None if candidates else ans.status, ans.stage, None if ok else ans.body,
        status_candidates=candidates,
        tfs_request=req.body_bytes.decode("utf-8", "replace"),
        tfs_target={"model": opts.model_name, "version": None, "method": "predict"},
        tensors=tensor_summary(ans.parse.tensors) if ans.parse and ans.parse.ok else {},
        findings=wire.findings + ans.findings, records=[wire.record] + tfs.records,
        content_type="application/json", response_body=ans.body)


def body_limit(opts: ValidateOptions | None = None) -> int:
    """The largest body the endpoint kind lets through: larger ones need not be read."""
    return BODY_LIMITS[(opts or ValidateOptions()).endpoint_kind]


def oversized(size: int, opts: ValidateOptions | None = None, *,
              name: str | None = None) -> ValidationResult:
    """The verdict on a body over the endpoint's limit, decided from its size alone: SageMaker
    Runtime refuses it (ValidationError 400) and the container never sees it, so kdiag does not
    read or parse it."""
    opts = opts or ValidateOptions()
    finding = body_too_large(size, opts.endpoint_kind)
    rt = validation_error(finding.message, request_id="kdiag-validate")
    record = StageRecord(stage="wire", verdict="fail", holds=f"{size} bytes (not read)",
                         size=size, excerpt="",
                         detail={"endpoint_kind": opts.endpoint_kind,
                                 "body_limit": body_limit(opts), "accepted": False,
                                 "read": False})
    return ValidationResult(False, 400, "wire", rt.message, findings=[finding],
                            records=[record] + ([rt.record] if rt.record else []), name=name)


def validate_oversized(req: Request, signatures: list[Signature],
                       opts: ValidateOptions | None = None, *,
                       name: str | None = None) -> ValidationResult:
    """--parse-oversized: the verdict stays the Runtime's refusal (KD101, nothing is delivered),
    and the stages after the wire show what the container and TF Serving would make of the
    body if it were (as through an asynchronous endpoint)."""
    from dataclasses import replace

    opts = opts or ValidateOptions()
    res = validate(req, signatures, replace(opts, endpoint_kind="async"), name=name)
    refused = oversized(len(req.body_bytes), opts, name=name)
    res.accepted, res.status, res.stage, res.error = False, 400, "wire", refused.error
    res.findings = refused.findings + [f for f in res.findings if f.stage != "wire"
                                       or f.code != "KD101"]
    res.records = refused.records[:1] + [r for r in res.records if r.stage not in
                                          ("wire", "runtime")] + refused.records[1:]
    res.response_body = None
    return res


def one_line(res: ValidationResult) -> str:
    """The verdict in one line, for batch reports."""
    root = next((f for f in res.findings if f.code == res.root_cause), None)
    if res.accepted and root is None:
        shapes = ", ".join(f"{k} {format_shape(tuple(v['shape']))}" for k, v in res.tensors.items())
        return f"accepted ({res.status}) {shapes}"
    if res.accepted:
        return f"answered {res.status}, but {root.code}: {root.message}"
    return f"rejected ({status_text(res)}) at {res.stage}: " + (
        f"{root.code}: {root.message}" if root else excerpt(res.error or "", 160))


def status_text(res: ValidationResult) -> str:
    """The status as known: a number, or what the graph may answer when it decides."""
    if res.status is None and res.status_candidates:
        return "status unknown offline, " + GRAPH_DECIDES
    return str(res.status)


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


def _same_json(a: bytes, b: str) -> bool:
    """The same JSON value, types included (1.0 is not 1), whatever the spelling."""
    import orjson

    from kdiag.replays.outputs import loads

    try:
        opt = orjson.OPT_SORT_KEYS
        return orjson.dumps(loads(a), option=opt) == orjson.dumps(loads(b), option=opt)
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError):
        return False


# A graph check for a fixed payload: None when the model answers it, else why not.
GraphCheck = Callable[[Request], "str | None"]


def _fixed_body(rec: Recovered, req: Request, sig: Signature) -> tuple[str, str]:
    """(Content-Type, body) for recovered tensors: CSV stays CSV when it can carry them."""
    if rec.body is not None:
        return req.content_type or "application/json", rec.body
    if (req.content_type or "").split(";")[0].strip().lower() == "text/csv" and \
            csv_allowed(sig)[0] and sig.name == "serving_default":
        try:
            return "text/csv", csv_request(rec.tensors, sig)
        except KdiagError:  # values CSV cannot carry (NaN): fall back to JSON
            pass
    if req.content_type != "application/json":
        rec.steps.insert(0, "Content-Type application/json (was "
                         + (repr(req.content_type) if req.content_type else "none") + ")")
    return "application/json", tfs_request(
        rec.tensors, sig, columnar=rec.columnar, b64=rec.b64,
        signature_name=None if sig.name == "serving_default" else sig.name)


def _candidates(req: Request, sig: Signature, too_large: bool) -> Iterator[Recovered]:
    """Recoveries to try, least invasive first: an in-place b64 repair, then the tensors."""
    if not too_large:
        fixed = fix_b64_in_place(req.body_bytes.decode("utf-8"))
        if fixed is not None:
            yield fixed
    rec = recover(req.body_bytes, req.content_type, sig)
    if too_large:
        _round_floats(rec)
    yield rec


def _per_length(rec: Recovered, req: Request, signatures: list[Signature], opts: ValidateOptions,
                sig: Signature, run_graph: GraphCheck | None) -> list[dict] | None:
    """Ragged rows, the other choice: one request per row length, unpadded, each checked on the
    same path as the padded payload (and by the model when it is at hand). None when the model
    fixes the length, there are more than MAX_LENGTH_GROUPS lengths, or one of them fails."""
    groups = length_groups(rec.row_lengths, sig)
    if not groups or len(groups) > MAX_LENGTH_GROUPS:
        return None
    out = []
    for g in groups:
        part = Recovered(tensors=group_tensors(rec.tensors, g), steps=[], columnar=rec.columnar,
                         b64=rec.b64)
        content_type, body = _fixed_body(part, req, sig)
        part_req = Request(body=body.encode("utf-8"), content_type=content_type,
                           accept=req.accept, custom_attributes=req.custom_attributes)
        if not validate(part_req, signatures, opts, propose_fix=False).accepted or (
                run_graph is not None and run_graph(part_req)):
            return None
        out.append({"rows": list(g.rows), "lengths": g.lengths, "content_type": content_type,
                    "body": body, "verified": ["container", "tfs-parse", "signature"]
                    + (["graph"] if run_graph is not None else [])})
    return out


def attach_fixed_payload(res: ValidationResult, req: Request, signatures: list[Signature],
                         opts: ValidateOptions, sig: Signature, *,
                         run_graph: GraphCheck | None = None) -> None:
    """Recover the tensors the sender meant and propose the body that carries them, only when
    validating that body says the endpoint accepts it (so a proposal is never a guess), and,
    with `run_graph` (replay, the model at hand), only when the model answers it too."""
    no_payload = next((f.code for f in res.findings if f.code in NO_PAYLOAD_CODES), None)
    if no_payload:
        res.findings.append(Finding(
            "KD900", "info", res.stage or "container",
            "No corrected payload: no payload can work for this model as exported (the "
            f"preprocessing is outside the graph, see {no_payload}); change the client's "
            "preprocessing or the export as the snippet shows.", ""))
        return
    too_large = res.stage == "wire" and any(f.code == "KD101" for f in res.findings)
    why = ""
    try:
        for rec in _candidates(req, sig, too_large):
            content_type, body = _fixed_body(rec, req, sig)
            if content_type == req.content_type == "application/json" and \
                    _same_json(req.body_bytes, body):
                # The same request again (only its spelling differs): never offered as a fix.
                why = "the request already is what kdiag would send; the cause is not in it"
                continue
            fixed_req = Request(body=body.encode("utf-8"), content_type=content_type,
                                accept=req.accept, custom_attributes=req.custom_attributes)
            check = validate(fixed_req, signatures, opts, propose_fix=False)
            if not check.accepted:
                why = f"the rewritten request is still rejected ({check.status} at {check.stage})"
                continue
            verified = ["container", "tfs-parse", "signature"]
            if run_graph is not None:
                failed = run_graph(fixed_req)
                if failed:
                    why = f"the model fails on the rewritten request: {failed}"
                    continue
                verified.append("graph")
            res.fixed_payload = {"content_type": content_type, "body": body,
                                 "changes": rec.steps, "verified": verified}
            if rec.row_lengths:
                res.fixed_payload["per_length"] = _per_length(rec, req, signatures, opts, sig,
                                                              run_graph)
            return
    except (NoFix, UnicodeDecodeError) as e:
        why = str(e)
    except Exception as e:  # the builder refuses values it cannot write (KdiagError)
        why = str(e).rstrip(".")
    if why:
        res.findings.append(Finding("KD900", "info", res.stage or "container",
                                    f"No corrected payload: {why}.", ""))
