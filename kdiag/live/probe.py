"""`kdiag probe`: diagnose a live SageMaker endpoint end to end.

1. Describe it (status, variants, endpoint config with Data Capture, the model: image -> TF
   version -> container generation, ModelDataUrl, environment).
2. Get the signature: --signature, --model, the model.tar.gz from S3 (--fetch-model), or, when
   none is available, inferred from TF Serving's own error messages (kdiag.live.infer_signature).
3. Send payloads (generated per content type, or the user's), each first validated locally: the
   prediction and the live answer side by side; a disagreement is itself a finding.
4. For each failure: the boto3 error classified, the diagnosis rules run on the container's
   message, and the endpoint's CloudWatch lines around the request.
5. With the model at hand, each live output compared with the local replay.

Bounded against production: a request budget, a rate, a concurrency, per-call timeouts, retries
only for throttling and transient errors; --dry-run sends nothing to the runtime at all.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kdiag.diagnosis.findings import Finding, fails
from kdiag.errors import KdiagError
from kdiag.live.describe import EndpointDescription, describe_endpoint
from kdiag.live.invoke import Budget, InvokeOutcome, RateLimiter, RetryPolicy, invoke
from kdiag.live.session import AwsClients, AwsOptions
from kdiag.model.signature import Signature, pick_signature
from kdiag.path.container import Request
from kdiag.path.trace import excerpt

if TYPE_CHECKING:
    from kdiag.diagnosis.validation import ValidationResult
    from kdiag.live.infer_signature import Inference
    from kdiag.model.target import Target

STAGE = "endpoint"
DEFAULT_MAX_REQUESTS = 10
DEFAULT_RATE = 2.0
BODY_EXCERPT = 300


@dataclass
class ProbeOptions:
    aws: AwsOptions = field(default_factory=AwsOptions)
    signature: str | None = None  # a model path or signature JSON
    model: str | None = None  # a local model: signature and local replay
    fetch_model: bool = False
    max_model_bytes: int = 2 << 30
    infer: bool = True
    payloads: list[str] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    accept: str | None = None
    custom_attributes: str | None = None
    target_variant: str | None = None
    batch: int = 1
    seed: int = 0
    framework_version: str | None = None
    signature_name: str | None = None
    model_name: str | None = None
    max_requests: int = DEFAULT_MAX_REQUESTS
    infer_max_requests: int = 8
    rate: float = DEFAULT_RATE
    concurrency: int = 1
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    logs: bool = True
    log_wait: float = 10.0
    replay: bool = True
    atol: float = 1e-5
    rtol: float = 1e-5
    atol_by_output: dict[str, float] = field(default_factory=dict)
    rtol_by_output: dict[str, float] = field(default_factory=dict)
    dry_run: bool = False


@dataclass
class PayloadResult:
    name: str
    source: str  # "generated" | "file"
    request: Request
    prediction: ValidationResult | None = None
    live: InvokeOutcome | None = None
    agreement: str = "not-compared"  # "agree" | "disagree" | "not-compared"
    # The payload's one root cause, the same code validate and replay name: the local run's
    # when the model ran here, else the prediction's.
    root_cause: str | None = None
    replay: dict | None = None
    logs: dict | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def live_text(self) -> str:
        live = self.live
        if live is None:
            return "not sent"
        if live.ok:
            return f"200 ({live.content_type or 'no content type'})"
        if live.kind == "model-error":
            return f"ModelError (container {live.original_status_code})"
        if live.kind == "budget":
            return "not sent (--max-requests)"
        return f"{live.error_code or live.kind} ({live.kind})"

    @property
    def predicted_text(self) -> str:
        p = self.prediction
        if p is None:
            return "no prediction"
        if p.status is None and p.status_candidates:
            return ("an error the graph answers with "
                    + " or ".join(str(s) for s in p.status_candidates) + f" at {p.stage}")
        return f"{p.status} accepted" if p.accepted else f"{p.status} at {p.stage}"

    def to_json(self) -> dict:
        req = self.request
        body = req.body_bytes
        p = self.prediction
        return {
            "name": self.name, "source": self.source,
            "request": {"content_type": req.content_type, "accept": req.accept,
                        "custom_attributes": req.custom_attributes, "bytes": len(body),
                        "body_excerpt": excerpt(body, BODY_EXCERPT)},
            "root_cause": self.root_cause,
            "prediction": None if p is None else {
                "accepted": p.accepted, "status": p.status,
                "status_candidates": None if p.status_candidates is None
                else list(p.status_candidates), "root_cause": p.root_cause, "stage": p.stage,
                "error": None if p.error is None else excerpt(p.error, 500),
                "tfs_request": None if p.tfs_request is None else excerpt(p.tfs_request, 500),
                "findings": [f.to_dict() for f in p.findings]},
            "live": None if self.live is None else self.live.to_json(),
            "agreement": self.agreement, "replay": self.replay, "logs": self.logs,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass
class ProbeResult:
    endpoint: EndpointDescription
    framework_version: str | None = None
    generation: str | None = None
    model_name: str = "model"
    signature_source: str | None = None  # "--signature" | "--model" | "s3" | "inferred"
    signature: Signature | None = None
    inference: Inference | None = None
    model_artifact: dict | None = None
    payloads: list[PayloadResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    requests_sent: int = 0
    max_requests: int = 0
    dry_run: bool = False

    @property
    def all_findings(self) -> list[Finding]:
        out = list(self.endpoint.findings) + list(self.findings)
        for p in self.payloads:
            out += p.findings
        return out

    def failed(self, fail_on: str = "error") -> bool:
        return fails(self.all_findings, fail_on)

    def to_json(self) -> dict:
        sig = self.signature
        return {
            "endpoint": self.endpoint.to_json(),
            "framework_version": self.framework_version, "generation": self.generation,
            "model_name": self.model_name,
            "signature": None if sig is None else {"source": self.signature_source,
                                                    **sig.to_json()},
            "inference": None if self.inference is None else self.inference.to_json(),
            "model_artifact": self.model_artifact,
            "payloads": [p.to_json() for p in self.payloads],
            "findings": [f.to_dict() for f in self.all_findings],
            "requests_sent": self.requests_sent, "max_requests": self.max_requests,
            "dry_run": self.dry_run,
            "healthy": not self.failed("error"),
        }


def _f(code: str, severity: str, message: str, fix: str = "", stage: str = STAGE) -> Finding:
    return Finding(code, severity, stage, message, fix)  # type: ignore[arg-type]


# ---- the probe ----------------------------------------------------------------------------

def probe(endpoint_name: str, opts: ProbeOptions | None = None, *,
          clients: AwsClients | None = None) -> ProbeResult:
    """Diagnose `endpoint_name`. Raises KdiagError for what stops a probe altogether (no
    credentials, endpoint not found, control plane unreachable, bad options); everything the
    endpoint answers ends up in the result."""
    from kdiag.path.generations import generation_for

    opts = opts or ProbeOptions()
    _check_options(opts)
    clients = clients or AwsClients(opts.aws)
    desc = describe_endpoint(clients, endpoint_name)
    fv = opts.framework_version or desc.framework_version
    gen = generation_for(fv)
    primary = desc.primary_model
    res = ProbeResult(endpoint=desc, framework_version=fv, generation=f"{gen.name} ({gen.label})",
                      max_requests=opts.max_requests, dry_run=opts.dry_run)
    budget = Budget(0 if opts.dry_run else opts.max_requests)
    limiter = RateLimiter(opts.rate)
    serving = desc.serving
    fetched = None
    try:
        target, local_model, fetched = _signature(res, opts, clients, desc)
        model_name = opts.model_name or (primary.default_model_name if primary else None) or \
            (target.model_name if target else "model")
        res.model_name = model_name
        if target is None and opts.infer and serving and not opts.dry_run:
            target = _infer(res, opts, clients, endpoint_name, budget, limiter)
        elif target is None and opts.infer and opts.dry_run and serving:
            res.findings.append(_f("KD810", "info",
                                   "Dry run: without a signature kdiag would infer one by "
                                   f"sending up to {opts.infer_max_requests} minimal requests "
                                   "({\"instances\": [{}]} and the like) and reading TF "
                                   "Serving's error messages."))
        _model_name_findings(res, target, primary)
        sig = None
        if target is not None:
            sig = pick_signature(target.signatures, opts.signature_name)
            res.signature = sig
        res.payloads = _payloads(res, opts, sig)
        _predict(res, opts, target, fv, model_name)
        if opts.dry_run:
            res.findings.append(_f("KD809", "info",
                                   f"Dry run: {len(res.payloads)} payload(s) shown, nothing sent "
                                   "to the endpoint."))
        elif not serving:
            pass  # KD800 says why nothing was sent
        else:
            from kdiag.model.runner import tensorflow_available

            runs_here = local_model is not None and opts.replay and tensorflow_available()
            _send(res, opts, clients, endpoint_name, budget, limiter)
            _analyse(res, opts, clients, desc, runs_here)
            if local_model is not None and opts.replay:
                _replay(res, opts, local_model, fv, model_name)
        for p in res.payloads:
            _root_cause(p)
    finally:
        if fetched is not None:
            fetched.cleanup()
        res.requests_sent = budget.used
    return res


def _check_options(opts: ProbeOptions) -> None:
    if opts.max_requests < 0:
        raise KdiagError("--max-requests must be 0 or more.")
    if opts.rate <= 0:
        raise KdiagError("--rate must be above 0 (requests per second).")
    if not 1 <= opts.concurrency <= 64:
        raise KdiagError("--concurrency must be between 1 and 64.")
    if opts.aws.timeout <= 0 or opts.aws.connect_timeout <= 0:
        raise KdiagError("--timeout and --connect-timeout must be above 0 seconds.")
    if opts.batch < 1:
        raise KdiagError("--batch must be at least 1.")


def _signature(res: ProbeResult, opts: ProbeOptions, clients: AwsClients,
               desc: EndpointDescription) -> tuple[Target | None, str | None, Any]:
    """(target for validation, local model path for replay, fetched artifact to clean up)."""
    from kdiag.model.target import resolve_target

    target = local = fetched = None
    if opts.signature:
        target = resolve_target(opts.signature, signature_name=opts.signature_name,
                                model_name=opts.model_name)
        res.signature_source = "--signature"
    if opts.model:
        local = opts.model
        if target is None:
            target = resolve_target(opts.model, signature_name=opts.signature_name,
                                    model_name=opts.model_name)
            res.signature_source = "--model"
    primary = desc.primary_model
    url = primary.model_data_url if primary else None
    if target is None and opts.fetch_model:
        if not url:
            res.findings.append(_f("KD812", "warning",
                                   "--fetch-model: the model has no ModelDataUrl to download.",
                                   "Pass --model or --signature."))
        elif opts.dry_run:
            res.findings.append(_f("KD812", "info",
                                   f"Dry run: would download {url} (at most "
                                   f"{opts.max_model_bytes} bytes) to read its signature."))
        else:
            from kdiag.live.model_fetch import FetchRefused, fetch_model

            try:
                fetched = fetch_model(clients, url, max_bytes=opts.max_model_bytes)
            except FetchRefused as e:
                res.findings.append(_f("KD812", "warning", f"--fetch-model: {e}.",
                                       "Pass --model with a local copy, or --signature; "
                                       "--max-model-bytes raises the size limit."))
            except KdiagError as e:
                res.findings.append(_f("KD812", "warning", f"--fetch-model: {e}"))
            try:
                if fetched is not None:
                    res.model_artifact = {"url": url, "bytes": fetched.size}
                    try:
                        target = resolve_target(str(fetched.path), signature_name=opts.signature_name,
                                                model_name=opts.model_name)
                        res.signature_source = "s3"
                        local = str(fetched.path)
                    except KdiagError as e:
                        res.findings.append(_f("KD812", "error",
                                               f"The endpoint's model artifact {url} has no "
                                               f"signature kdiag can read: {e}",
                                               "kdiag inspect the archive; the container cannot "
                                               "serve it either.", stage="artifact"))
            except BaseException:  # the caller never gets it: remove the download here
                if fetched is not None:
                    fetched.cleanup()
                raise
    if target is not None:
        res.findings += target.findings
    return target, local, fetched


def _model_name_findings(res: ProbeResult, target: Target | None, primary) -> None:
    env_name = primary.default_model_name if primary else None
    if env_name and target is not None and res.signature_source in ("--model", "s3") and \
            target.model_name and env_name != target.model_name:
        res.findings.append(_f(
            "KD807", "error",
            f"SAGEMAKER_TFS_DEFAULT_MODEL_NAME is {env_name!r} but the archive's model is named "
            f"{target.model_name!r}: the container waits for a model that TF Serving never "
            "loads (startup times out), or requests without tfs-model-name find no servable.",
            f"Set SAGEMAKER_TFS_DEFAULT_MODEL_NAME={target.model_name} or remove it."))


def _infer(res: ProbeResult, opts: ProbeOptions, clients: AwsClients, endpoint_name: str,
           budget: Budget, limiter: RateLimiter) -> Target | None:
    from kdiag.live.infer_signature import Answer, infer_signature
    from kdiag.model.target import Target

    def send(body: bytes) -> Answer | None:
        out = invoke(clients, endpoint_name, Request(body, "application/json", opts.accept),
                     budget=budget, limiter=limiter, policy=opts.retry,
                     target_variant=opts.target_variant)
        if out.kind == "budget":
            return None
        if out.ok:
            return Answer(True, out.body.decode("utf-8", "replace"), out.status)
        text = out.container_message if out.kind == "model-error" else (out.message or out.kind)
        return Answer(False, text or "", out.original_status_code or out.status)

    inf = infer_signature(send, max_requests=min(opts.infer_max_requests, budget.left))
    res.inference = inf
    sig = inf.signature
    what = ", ".join(f"{i.name} {i.dtype or '?'}"
                     + ("" if i.shape is None else f" rank {len(i.shape)}") for i in inf.inputs)
    if sig is None:
        res.findings.append(_f("KD811", "warning",
                               f"kdiag had no signature and could not infer one from the "
                               f"endpoint's answers ({len(inf.requests)} requests): "
                               + ("; ".join(inf.notes) or "no usable answer"),
                               "Pass --signature (kdiag inspect MODEL --format json), "
                               "--model, or --fetch-model."))
        return None
    res.signature_source = "inferred"
    res.findings.append(_f("KD810", "info",
                           f"No signature was given: kdiag inferred it from TF Serving's error "
                           f"messages with {len(inf.requests)} minimal requests: {what}. Names "
                           "and dtypes come from TF Serving's parser; sizes of 1 prove nothing "
                           "and are shown as unknown.",
                           "Pass --signature or --model for exact shapes."))
    if not inf.complete:
        res.findings.append(_f("KD811", "warning",
                               "The inferred signature is incomplete: " + "; ".join(inf.notes),
                               "Pass --signature or --model."))
    return Target(signatures=[sig])


def _payloads(res: ProbeResult, opts: ProbeOptions, sig: Signature | None) -> list[PayloadResult]:
    from kdiag.payloads.files import iter_bodies

    out: list[PayloadResult] = []
    if opts.payloads:
        ct = opts.content_types[0] if len(opts.content_types) == 1 else None
        for path in opts.payloads:
            for name, body, content_type in iter_bodies(path, each_line=False, content_type=ct):
                out.append(PayloadResult(name, "file", Request(
                    body, content_type, opts.accept, opts.custom_attributes)))
        return out
    if sig is None:
        res.findings.append(_f("KD811", "warning",
                               "Nothing to send: no signature to generate payloads from and no "
                               "--payload.",
                               "Pass --payload FILE, --signature, --model or --fetch-model."))
        return out
    if any(s is None for s in (sig.inputs[n].shape for n in sig.inputs)):
        res.findings.append(_f("KD811", "warning",
                               "The signature has inputs of unknown rank: kdiag cannot generate "
                               "payloads for them.", "Pass --payload FILE."))
        return out
    from kdiag.payloads.sample import SampleOptions, generate

    for ct in opts.content_types or ["application/json"]:
        try:
            sample = generate(sig, SampleOptions(content_type=ct, batch=opts.batch,
                                                 seed=opts.seed))
        except KdiagError as e:
            res.findings.append(_f("KD813", "info", f"No {ct} payload generated: {e}"))
            continue
        out.append(PayloadResult(f"generated {sample.content_type}", "generated", Request(
            sample.body.encode("utf-8"), sample.content_type, opts.accept,
            opts.custom_attributes)))
    return out


def _predict(res: ProbeResult, opts: ProbeOptions, target: Target | None, fv: str | None,
             model_name: str) -> None:
    if target is None:
        return
    from kdiag.diagnosis.validation import ValidateOptions, validate

    vopts = ValidateOptions(framework_version=fv, signature_name=opts.signature_name,
                            model_name=model_name, versions=target.versions,
                            has_requirements=target.has_requirements, has_lib=target.has_lib,
                            artifact_findings=[f for f in target.findings if f.code != "KD230"])
    for p in res.payloads:
        p.prediction = validate(p.request, target.signatures, vopts, name=p.name)


def _send(res: ProbeResult, opts: ProbeOptions, clients: AwsClients, endpoint_name: str,
          budget: Budget, limiter: RateLimiter) -> None:
    if not res.payloads:
        return
    fatal: list[BaseException] = []
    lock = threading.Lock()

    def one(p: PayloadResult) -> None:
        if fatal:
            return
        try:
            p.live = invoke(clients, endpoint_name, p.request, budget=budget, limiter=limiter,
                            policy=opts.retry, target_variant=opts.target_variant)
        except KdiagError as e:
            with lock:
                fatal.append(e)

    if opts.concurrency == 1:
        for p in res.payloads:
            one(p)
    else:
        with ThreadPoolExecutor(max_workers=opts.concurrency) as pool:
            list(pool.map(one, res.payloads))
    if fatal:
        raise fatal[0]
    skipped = [p.name for p in res.payloads if p.live is not None and p.live.kind == "budget"]
    if skipped:
        res.findings.append(_f("KD809", "info",
                               f"{len(skipped)} payload(s) not sent: --max-requests "
                               f"({opts.max_requests}) reached: {', '.join(skipped[:5])}.",
                               "Raise --max-requests."))


# ---- analysis -------------------------------------------------------------------------------

def diagnose_message(message: str) -> list[Finding]:
    """The diagnosis rules (TF Serving's parse messages, known graph failures) on a live error
    text: the root cause in plain words, as `kdiag validate` would name it."""
    from kdiag.diagnosis.diagnose import STAGE as DSTAGE
    from kdiag.diagnosis.diagnose import TFS_RULES
    from kdiag.replays.replay import MODEL_RULES

    for pattern, code, text, fix in TFS_RULES:
        if pattern.search(message):
            return [Finding(code, "error", DSTAGE[code[2]], text, fix)]
    for needle, code, text, fix in MODEL_RULES:
        if needle in message:
            return [Finding(code, "error", "model", text, fix)]
    return []


def _analyse(res: ProbeResult, opts: ProbeOptions, clients: AwsClients,
             desc: EndpointDescription, runs_here: bool = False) -> None:
    failures: list[PayloadResult] = []
    for p in res.payloads:
        live = p.live
        if live is None or live.kind == "budget":
            continue
        p.findings += _live_findings(p, live)
        _agreement(p, res, runs_here)
        if live.kind in ("model-error", "timeout", "service"):
            failures.append(p)
    if failures and opts.logs:
        _attach_logs(failures, opts, clients, desc)


def _live_findings(p: PayloadResult, live: InvokeOutcome) -> list[Finding]:
    out: list[Finding] = []
    if live.retried:
        out.append(_f("KD836", "info" if live.ok else "warning",
                      f"{p.name}: retried {len(live.retried)} time(s) after "
                      f"{', '.join(sorted(set(live.retried)))}, {live.backoff_seconds:.1f} s of "
                      f"backoff in all" + ("; then answered." if live.ok else "."),
                      "Lower --rate, or raise the endpoint's capacity.", stage="runtime"))
    if live.ok:
        return out
    if live.kind == "model-error":
        msg = live.container_message or ""
        out.append(_f("KD830", "error",
                      f"{p.name}: ModelError: the container answered "
                      f"{live.original_status_code}: {excerpt(msg, 300)}",
                      "The diagnosis findings and the endpoint's log lines say why.",
                      stage="runtime"))
        out += diagnose_message(msg)
    elif live.kind == "validation":
        out.append(_f("KD831", "error",
                      f"{p.name}: SageMaker Runtime refused the request before the container "
                      f"(ValidationError): {live.message}",
                      "Check the body size (6 MiB), the header values and TargetVariant.",
                      stage="runtime"))
    elif live.kind in ("throttled", "not-ready"):
        out.append(_f("KD832" if live.kind == "throttled" else "KD834", "warning",
                      f"{p.name}: {live.error_code} after {live.attempts} attempt(s) "
                      f"({live.backoff_seconds:.1f} s of backoff): {live.message}",
                      "Probe again later or with a lower --rate; for ModelNotReady, wait for "
                      "the model to load.", stage="runtime"))
    elif live.kind == "timeout":
        out.append(_f("KD833", "error",
                      f"{p.name}: no answer in time: {live.message}",
                      "The model takes longer than the limit (60 s at SageMaker, --timeout "
                      "here): send smaller batches, or check the instance's CPU/GPU.",
                      stage="runtime"))
    else:
        out.append(_f("KD835", "error",
                      f"{p.name}: {live.error_code or live.kind}: {live.message}",
                      "Probe again; if it persists, check the AWS Health Dashboard.",
                      stage="runtime"))
    return out


def _agreement(p: PayloadResult, res: ProbeResult, runs_here: bool = False) -> None:
    """The prediction against the live answer. The deployment is blamed only by the local run
    of the same model (KD823 in _replay) when there is one: a prediction made without the
    model cannot tell a graph that decides otherwise from another deployment."""
    pred, live = p.prediction, p.live
    if pred is None or live is None or live.kind not in ("ok", "model-error"):
        return
    live_status = live.status if live.ok else live.original_status_code
    if pred.status is None and pred.status_candidates:
        # The graph decides: any of its answers agrees with the prediction.
        p.agreement = "agree" if live_status in pred.status_candidates else "disagree"
        if p.agreement == "agree" or runs_here:
            return
    elif runs_here and (pred.accepted != live.ok or (not live.ok and pred.status != live_status)):
        p.agreement = "disagree"
        return
    pred_ok = pred.accepted
    told = {"--signature": "the signature given", "--model": "the model given",
            "s3": "the endpoint's own model.tar.gz", "inferred": "the inferred signature"}.get(
        res.signature_source or "", "what kdiag was told")
    if pred_ok == live.ok and (live.ok or pred.status == live_status):
        p.agreement = "agree"
        if not live.ok:
            exp = _error_text(pred.error)
            got = (live.container_message or "").strip()
            if exp and got and exp != got:
                p.findings.append(_f("KD821", "info",
                                     f"{p.name}: same status as predicted, different text: "
                                     f"predicted {excerpt(exp, 160)!r}, live "
                                     f"{excerpt(got, 160)!r}.",
                                     "A different TF Serving release words it differently; "
                                     "--framework-version pins the one kdiag models."))
        return
    p.agreement = "disagree"
    # Not confirmed by a run of the model: say what differs and what would tell, blame nothing.
    p.findings.append(_f(
        "KD820", "error",
        f"{p.name}: kdiag predicted {p.predicted_text} from {told}, the endpoint answered "
        f"{p.live_text}. Without running the model kdiag cannot tell whether the endpoint "
        "serves something else (another model or version, another container, an inference.py) "
        "or the graph itself answers otherwise.",
        "Run the probe with --model MODEL (the artifact you deployed) or --fetch-model (the "
        "endpoint's own): the local run of the same model names the cause."))


def _root_cause(p: PayloadResult) -> None:
    """Name the payload's root cause in its findings (the local run's, else the prediction's)
    and mark the other request-path errors as its consequences."""
    from kdiag.diagnosis.findings import assign_root_cause

    pred = p.prediction
    code = p.root_cause or (pred.root_cause if pred is not None else None)
    if code is None:
        return
    p.root_cause = code
    source = pred.findings if pred is not None else []
    root = next((f for f in source if f.code == code), None)
    have = {f.code for f in p.findings}
    if root is not None and code not in have:
        root = Finding(root.code, root.severity, root.stage, f"{p.name}: {root.message}",
                       root.fix)
        p.findings.insert(0, root)
    preferred = [f for f in p.findings if f.code == code]
    _, p.findings = assign_root_cause(p.findings, preferred=preferred[:1])


def _error_text(body: str | None) -> str | None:
    if not body:
        return None
    from kdiag.replays.outputs import loads

    try:
        doc = loads(body)
    except ValueError:
        return body.strip()
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return doc["error"].strip()
    return body.strip()


def _attach_logs(failures: list[PayloadResult], opts: ProbeOptions, clients: AwsClients,
                 desc: EndpointDescription) -> None:
    from kdiag.live.logs import (
        WINDOW_AFTER_MS,
        WINDOW_BEFORE_MS,
        LogLocation,
        log_group,
        parse_log_stream_arn,
        poll_events,
        relevant_lines,
    )

    variant = opts.target_variant or (desc.variants[0].name if len(desc.variants) == 1 else None)
    prefix = f"{variant}/" if variant else None
    groups: dict[tuple[str, str | None], list[PayloadResult]] = {}
    for p in failures:
        loc = parse_log_stream_arn(p.live.log_stream_arn) if p.live else None
        key = (loc.group, loc.stream) if loc else (log_group(desc.name), None)
        groups.setdefault(key, []).append(p)
    for (group, stream), items in groups.items():
        start = min(p.live.t_sent_ms for p in items) - WINDOW_BEFORE_MS
        end = max(p.live.t_done_ms for p in items) + WINDOW_AFTER_MS
        got = poll_events(clients, LogLocation(group, stream), start, end,
                          prefix=None if stream else prefix, wait=opts.log_wait)
        for p in items:
            lo, hi = p.live.t_sent_ms - WINDOW_BEFORE_MS, p.live.t_done_ms + WINDOW_AFTER_MS
            lines = relevant_lines(got.events, lo, hi)
            p.logs = {"group": group, "stream": stream, "stream_prefix": got.prefix,
                      "window_ms": [lo, hi], "events_read": len(got.events),
                      "error": got.error, "lines": [e.to_json() for e in lines]}
            if got.error:
                p.findings.append(_f("KD841", "info",
                                     f"{p.name}: the endpoint's logs could not be read: "
                                     f"{got.error}.",
                                     "Grant logs:FilterLogEvents on the log group, or read it "
                                     "in the CloudWatch console.", stage="runtime"))
            elif lines:
                first = next((e.message for e in lines if "Traceback" in e.message
                              or "rror" in e.message), lines[0].message)
                p.findings.append(_f("KD840", "info",
                                     f"{p.name}: {len(lines)} relevant line(s) in {group}"
                                     f"{'/' + stream if stream else ''} around the request, "
                                     f"e.g. {excerpt(first, 200)!r}.", "", stage="runtime"))
            else:
                p.findings.append(_f("KD841", "info",
                                     f"{p.name}: no error lines in {group} within the request's "
                                     f"window ({len(got.events)} events read; logs can lag).",
                                     "Look again in a minute (--log-wait), or in the console.",
                                     stage="runtime"))


# ---- local replay ---------------------------------------------------------------------------

def _replay(res: ProbeResult, opts: ProbeOptions, model: str, fv: str | None,
            model_name: str) -> None:
    from kdiag.model.runner import tensorflow_available

    todo = [p for p in res.payloads if p.live is not None and p.live.kind in ("ok", "model-error")]
    if not todo:
        return
    if not tensorflow_available():
        res.findings.append(_f("KD822", "info",
                               "TensorFlow is not installed: live outputs were not compared "
                               "with a local replay.", "pip install tensorflow"))
        return
    from kdiag.comparison import CompareConfig, compare_outputs
    from kdiag.model.graph_trust import UntrustedGraph
    from kdiag.path.local_endpoint import LocalEndpoint
    from kdiag.replays.replay import decode_response, replay_one

    try:
        endpoint = LocalEndpoint(model, framework_version=fv, model_name=model_name)
    except UntrustedGraph:
        raise  # running the model is the user's call (--trust-model): exit 2, not a finding
    except KdiagError as e:
        res.findings.append(_f("KD822", "warning", f"No local replay: {e}"))
        return
    with endpoint:
        sig = pick_signature(endpoint.signatures, opts.signature_name)
        names = list(sig.outputs)
        config = CompareConfig(atol=opts.atol, rtol=opts.rtol,
                               atol_by_output=opts.atol_by_output,
                               rtol_by_output=opts.rtol_by_output)
        for p in todo:
            t0 = time.monotonic()
            try:
                rep = replay_one(endpoint, p.request, p.name)
            except KdiagError as e:
                p.replay = {"error": str(e)}
                continue
            live = p.live
            doc: dict[str, Any] = {"accepted": rep.accepted, "status": rep.status,
                                   "stage": rep.stage,
                                   "seconds": round(time.monotonic() - t0, 3)}
            p.replay = doc
            live_status = live.status if live.ok else live.original_status_code
            p.root_cause = rep.root_cause
            p.findings += [f for f in rep.findings if f.code == "KD420"]
            if rep.accepted != live.ok or (not live.ok and rep.status != live_status):
                p.findings.append(_f(
                    "KD823", "error",
                    f"{p.name}: the local replay answers {rep.status}"
                    f"{'' if rep.accepted else ' at ' + str(rep.stage)}, the endpoint "
                    f"{p.live_text}: the endpoint does not run this model as kdiag runs it.",
                    "Compare the endpoint's ModelDataUrl and image with the local model."))
                continue
            p.agreement = "agree"  # the local run of the same model answers as the endpoint
            if not live.ok:
                continue
            try:
                live_out = decode_response(live.body, names)
            except (ValueError, UnicodeDecodeError) as e:
                p.findings.append(_f("KD822", "warning",
                                     f"{p.name}: the live response is not JSON kdiag can "
                                     f"decode ({e}).", "", stage="compare"))
                continue
            cmp = compare_outputs(rep.decoded, live_out, config=config,
                                  a_label="local replay", b_label="live")
            doc["comparison"] = cmp.to_dict()
            doc["ok"] = cmp.ok
            p.findings += cmp.findings
            if not cmp.ok:
                p.findings.append(_f("KD822", "error",
                                     f"{p.name}: the live outputs differ from the local replay "
                                     f"of the same request (atol {opts.atol:g}, rtol "
                                     f"{opts.rtol:g}).",
                                     "The endpoint serves other weights or another version: "
                                     "check ModelDataUrl, or pass --fetch-model.",
                                     stage="compare"))

