"""kdiag's public Python API: the functions `import kdiag` exposes, and the commands call.

    import kdiag
    report = kdiag.inspect("export/1")
    d = kdiag.validate(x, "export/1", serializer=predictor.serializer)
    d.accepted, d.root_cause, d.fixed_payload, d.to_dict()

Each function turns Python values into the library's inputs, makes the one library call the
matching command makes, and wraps the result in a frozen type from kdiag.results. Errors a
caller can cause raise kdiag.errors.KdiagError with one plain paragraph. Payload arguments
follow kdiag.payloads.adapt's rule (bytes, str body or path, Path, numpy array, dict of arrays,
DataFrame, Payload, or any object with the SDK serializer that sends it).

Safety, per call: `limits=` (a kdiag.limits.Limits, or a dict of cap names as `--cap` takes
them, e.g. {"archive-bytes": "40GiB"}, applied over the caps in effect) and, where a graph may
run, `trust_model=` (None: the process-wide setting). Both hold for that call only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdiag.errors import KdiagError
from kdiag.results import (
    CheckReport,
    Comparison,
    Diagnosis,
    ModelReport,
    Payload,
    ProbeReport,
    Replay,
)

if TYPE_CHECKING:
    from kdiag.limits import Limits
    from kdiag.model.signature import Signature
    from kdiag.model.target import Target
    from kdiag.path.local_endpoint import LocalEndpoint

    Caps = Limits | Mapping[str, int | str] | None


@contextmanager
def _safety(limits: Caps, trust_model: bool | None = None) -> Iterator[None]:
    """One call's caps and trust (kdiag.limits.limits_for_call, graph_trust.trust_for_call):
    in effect for everything the call does, gone when it returns or raises."""
    from kdiag.limits import limits_for_call

    with limits_for_call(limits):
        if trust_model is None:
            yield
            return
        from kdiag.model.graph_trust import trust_for_call

        with trust_for_call(trust_model):
            yield


def inspect(model: str | Path, *, custom_objects: str | Path | None = None,
            endpoint_name: str = "my-endpoint", limits: Caps = None) -> ModelReport:
    """The serving signatures of a SavedModel folder, version parent, model.tar.gz, .keras or
    .h5 file, the request the endpoint expects, and what would break the deployment. Reads the
    files only: no TensorFlow. `limits`: this call's safety caps (see the module docstring)."""
    from kdiag.model.inspection import inspect_model

    with _safety(limits):
        return ModelReport(inspect_model(Path(model), endpoint_name=endpoint_name,
                                         custom_objects=_path(custom_objects)))


def sample(model_or_signature: Any, *, content_type: str = "application/json", n: int = 1,
           seed: int = 0, batch: int = 1, signature_name: str | None = None,
           columnar: bool = False, ranges: Mapping[str, tuple[float, float]] | None = None,
           dims: Mapping[str, Mapping[int, int]] | None = None,
           image_size: tuple[int, int] | None = None, limits: Caps = None) -> list[Payload]:
    """`n` request bodies the signature accepts (seeds seed, seed+1, ...), each with `batch`
    instances. `content_type`: json, jsonlines, csv or a full MIME type. `limits`: this
    call's caps (sample-elements and sample-bytes bound each body)."""
    from kdiag.payloads.sample import SampleOptions, generate

    if n < 1:
        raise KdiagError(f"n must be at least 1 (got {n}).")
    with _safety(limits):
        sig = _signature(model_or_signature, signature_name)
        out = []
        for i in range(n):
            opts = SampleOptions(batch=batch, seed=seed + i, ranges=dict(ranges or {}),
                                 dims={k: dict(v) for k, v in (dims or {}).items()},
                                 columnar=columnar, content_type=content_type,
                                 image_size=image_size)
            s = generate(sig, opts)
            out.append(Payload(s.content_type, s.body, tuple(s.notes)))
    return out


def validate(payload: Any, model_or_signature: Any, *, content_type: str | None = None,
             framework_version: str | None = None, serializer: Any = None,
             deserializer: Any = None, accept: str | None = None,
             custom_attributes: str | None = None, via: str = "container", code: str | Path | None = None,
             signature_name: str | None = None, model_name: str | None = None,
             endpoint_kind: str = "realtime", name: str | None = None,
             target_model: str | None = None, limits: Caps = None) -> Diagnosis:
    """What the endpoint answers to `payload`, stage by stage, without the model and without
    TensorFlow: the status and error text, the root cause, and a corrected payload.

    `model_or_signature`: a model path, a signature JSON file, a ModelReport, a Signature (or a
    list of them), or a kdiag.model.target.Target. `serializer`: the SageMaker SDK serializer
    the client uses (predictor.serializer), so the body checked is the body it sends;
    `deserializer` (predictor.deserializer) sets Accept as the SDK does, from its ACCEPT.
    `target_model`: sent as invoke_endpoint(TargetModel=...) to a multi-model endpoint.
    `limits`: this call's safety caps (reading the model, the request's size)."""
    with _safety(limits):
        return _validate(payload, model_or_signature, content_type=content_type,
                         framework_version=framework_version, serializer=serializer,
                         deserializer=deserializer, accept=accept,
                         custom_attributes=custom_attributes, via=via, code=code,
                         signature_name=signature_name, model_name=model_name,
                         endpoint_kind=endpoint_kind, name=name, target_model=target_model)


def _validate(payload: Any, model_or_signature: Any, *, content_type: str | None,
              framework_version: str | None, serializer: Any, deserializer: Any,
              accept: str | None, custom_attributes: str | None, via: str,
              code: str | Path | None, signature_name: str | None, model_name: str | None,
              endpoint_kind: str, name: str | None, target_model: str | None) -> Diagnosis:
    from kdiag.diagnosis.validation import ValidateOptions
    from kdiag.diagnosis.validation import validate as validate_request
    from kdiag.model.signature import pick_signature
    from kdiag.path.container import Request
    from kdiag.path.target_model import served_model_name
    from kdiag.payloads.adapt import to_body

    code_dir = _path(code)
    model_name = served_model_name(model_name, target_model)
    target = _target(model_or_signature, signature_name=signature_name,
                     model_name=model_name, code_dir=code_dir)
    body = to_body(payload, content_type=content_type, serializer=serializer, name=name)
    opts = ValidateOptions.for_target(
        target, framework_version=framework_version, via=via, code_dir=code_dir,
        signature_name=signature_name, endpoint_kind=endpoint_kind,
        multi_model=target_model is not None)
    req = Request(body=body.body, content_type=body.content_type,
                  accept=accept or accept_of(deserializer), custom_attributes=custom_attributes)
    res = validate_request(req, target.signatures, opts, name=body.name)
    return Diagnosis(res, pick_signature(target.signatures, signature_name))


def replay(payload_or_payloads: Any, model: str | Path | LocalEndpoint, *,
           content_type: str | None = None, serializer: Any = None, deserializer: Any = None,
           accept: str | None = None,
           custom_attributes: str | None = None, framework_version: str | None = None,
           code: str | Path | None = None, model_name: str | None = None,
           max_batch: int = 256, progress: Callable[[int], None] | None = None,
           keras: str | Path | None = None, client_input: Any = None,
           custom_objects: str | Path | None = None, unsafe_keras: bool = False,
           trust_model: bool | None = None, atol: float = 1e-5,
           rtol: float = 1e-5, target_model: str | None = None, limits: Caps = None) -> Replay:
    """Payloads through the real model exactly as the endpoint runs them (needs TensorFlow).

    A list or tuple is several payloads (replayed in stacked model calls); anything else is one
    payload (to replay a Python list as one JSON body, pass it as text or an array). `model` is
    a model path, or a LocalEndpoint you opened (kept open). With `keras` and `client_input`,
    the notebook's own predict() runs on client_input and is compared with the endpoint.
    A model whose serving graph writes, deletes or lists files runs only with trust_model
    (None: the process-wide setting, graph_trust.set_trust, which --trust-model sets).
    `limits`: this call's safety caps (extracting model.tar.gz, reading .keras files)."""
    with _safety(limits, trust_model):
        return _replay(payload_or_payloads, model, content_type=content_type,
                       serializer=serializer, accept=accept or accept_of(deserializer),
                       custom_attributes=custom_attributes,
                       framework_version=framework_version, code=code, model_name=model_name,
                       max_batch=max_batch, progress=progress, keras=keras,
                       client_input=client_input, custom_objects=custom_objects,
                       unsafe_keras=unsafe_keras, trust_model=trust_model, atol=atol,
                       rtol=rtol, target_model=target_model)


def _replay(payload_or_payloads: Any, model: str | Path | LocalEndpoint, *,
            content_type: str | None, serializer: Any, accept: str | None,
            custom_attributes: str | None, framework_version: str | None,
            code: str | Path | None, model_name: str | None, max_batch: int,
            progress: Callable[[int], None] | None, keras: str | Path | None,
            client_input: Any, custom_objects: str | Path | None, unsafe_keras: bool,
            trust_model: bool | None, atol: float, rtol: float,
            target_model: str | None) -> Replay:
    from kdiag.model.runner import require_tensorflow
    from kdiag.path.container import Request
    from kdiag.path.local_endpoint import LocalEndpoint
    from kdiag.path.target_model import served_model_name
    from kdiag.payloads.adapt import to_body
    from kdiag.replays.replay import notebook_versus_endpoint, replay_many, replay_one

    require_tensorflow("kdiag.replay")
    if (keras is None) != (client_input is None):
        raise KdiagError("keras and client_input go together: the notebook's model and what "
                         "the notebook passed to its predict().")
    single = not isinstance(payload_or_payloads, list | tuple)
    payloads = [payload_or_payloads] if single else list(payload_or_payloads)
    if not payloads:
        raise KdiagError("No payloads to replay.")
    items = []
    for i, p in enumerate(payloads):
        b = to_body(p, content_type=content_type, serializer=serializer)
        items.append((b.name or ("payload" if single else f"payload {i + 1}"),
                      Request(body=b.body, content_type=b.content_type, accept=accept,
                              custom_attributes=custom_attributes)))
    own = not isinstance(model, LocalEndpoint)
    if not own and target_model is not None and not model.multi_model:
        raise KdiagError("target_model configures the endpoint kdiag opens: pass the model "
                         "path, or open the LocalEndpoint with multi_model=True and the "
                         "target's model_name.")
    endpoint = LocalEndpoint(model, framework_version=framework_version, code_dir=_path(code),
                             model_name=served_model_name(model_name, target_model),
                             multi_model=target_model is not None,
                             trust_model=trust_model) if own else model
    try:
        if single:
            results = [replay_one(endpoint, items[0][1], items[0][0])]
        else:
            results = replay_many(endpoint, items, max_batch=max_batch, progress=progress)
        sig = _default_signature(endpoint.signatures)
    finally:
        if own:
            endpoint.close()
    if keras is not None:
        notebook_versus_endpoint(results[0], Path(keras), client_input,
                                 custom_objects=_path(custom_objects), safe_mode=not unsafe_keras,
                                 atol=atol, rtol=rtol)
    return Replay(tuple(results), single, sig)


def probe(endpoint_name: str, *, limits: Caps = None, trust_model: bool | None = None,
          **options: Any) -> ProbeReport:
    """A live SageMaker endpoint, end to end: status and model, signature, what it answers to
    payloads next to what kdiag predicts, root causes, log lines, a local replay.

    Options are kdiag.live.probe.ProbeOptions' fields (signature, model, payloads,
    content_types, max_requests, rate, dry_run, ...), AwsOptions' fields (profile, region,
    endpoint_url, runtime_endpoint_url, timeout, ...), and `retries`. Credentials never appear
    in the result or in an error message. `limits` and `trust_model`: this call's caps (the
    fetched model.tar.gz) and whether the local replay may run a graph that writes files."""
    with _safety(limits, trust_model):
        return _probe(endpoint_name, options)


def _probe(endpoint_name: str, options: dict[str, Any]) -> ProbeReport:
    from kdiag.live.invoke import RetryPolicy
    from kdiag.live.probe import ProbeOptions
    from kdiag.live.probe import probe as probe_endpoint
    from kdiag.live.session import AwsClients, AwsOptions, Redactor

    aws_fields = {f.name for f in dataclasses.fields(AwsOptions)}
    probe_fields = {f.name for f in dataclasses.fields(ProbeOptions)} - {"aws", "retry"}
    unknown = set(options) - aws_fields - probe_fields - {"retries"}
    if unknown:
        raise KdiagError(f"kdiag.probe: unknown option(s) {', '.join(sorted(unknown))}.")
    aws = AwsOptions(**{k: v for k, v in options.items() if k in aws_fields})
    opts = ProbeOptions(aws=aws, retry=RetryPolicy(retries=options.get("retries", 3)),
                        **{k: v for k, v in options.items() if k in probe_fields})
    redact = Redactor()
    clients = AwsClients(aws, redact)
    try:
        result = probe_endpoint(endpoint_name, opts, clients=clients)
    except KdiagError as e:  # the same error (UntrustedGraph, LimitExceeded, ...), redacted
        e.args = (redact(str(e)),)
        raise e from None
    except Exception as e:  # botocore surprises: one redacted paragraph, never a traceback
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(e, BotoCoreError | ClientError):
            raise KdiagError(redact(f"AWS call failed: {type(e).__name__}: {e}")) from None
        raise
    return ProbeReport(result, redact.tree(result.to_json()))


def check(model: str | Path, *, limits: Caps = None, trust_model: bool | None = None,
          **options: Any) -> CheckReport:
    """Every check kdiag has, on `model`, in one run: the pre-deploy gate.

    Options are kdiag.ci.check.CheckOptions' fields (framework_version, content_types,
    payloads as "FILE[:CONTENT_TYPE]" strings, expect_output as "NAME:DTYPE:SHAPE" strings,
    golden, atol, rtol, fail_on, replay, ...). Configuration files are not read: that is the
    command's job. `limits` and `trust_model`: this call's caps, and whether the replay may
    run a graph that writes, deletes or lists files."""
    with _safety(limits, trust_model):
        return _check(model, options)


def _check(model: str | Path, options: dict[str, Any]) -> CheckReport:
    from kdiag.ci.check import CheckOptions, parse_expectation, parse_payload_arg, run_check

    known = {f.name for f in dataclasses.fields(CheckOptions)} - {"model"}
    unknown = set(options) - known
    if unknown:
        raise KdiagError(f"kdiag.check: unknown option(s) {', '.join(sorted(unknown))}.")
    if "payloads" in options:
        options["payloads"] = [parse_payload_arg(p) if isinstance(p, str) else p
                               for p in options["payloads"]]
    if "expect_output" in options:
        options["expect_output"] = [parse_expectation(x) if isinstance(x, str) else x
                                    for x in options["expect_output"]]
    for key in ("code_dir", "custom_objects"):
        if options.get(key) is not None:
            options[key] = Path(options[key])
    for key in ("atol", "rtol"):
        if key in options and not options[key] >= 0:
            raise KdiagError(f"{key} must be >= 0 (got {options[key]}).")
    return CheckReport(run_check(CheckOptions(model=str(model), **options)))


def compare(expected: Any, actual: Any, *, atol: float = 1e-5, rtol: float = 1e-5,
            atol_by_output: Mapping[str, float] | None = None,
            rtol_by_output: Mapping[str, float] | None = None, stat: str = "elemwise",
            quantile: float = 0.99, worst: int = 5, fail_on: str = "error",
            ids: Sequence[str] | None = None, endpoint_url: str | None = None,
            limit: int | None = None, since: Any = None, until: Any = None,
            shard: tuple[int, int] | None = None) -> Comparison:
    """Compare `actual` with the reference `expected`: a value passes when |a-b| <= atol or
    |a-b|/|a| <= rtol. Each side is a numpy array (one output, records along axis 0), a dict
    of arrays (named outputs), or a path kdiag diff reads (.npy, .npz, a response JSON,
    replay JSON lines, Data Capture, s3://...). since/until/shard/limit filter files."""
    from kdiag.comparison import CompareConfig, compare_sets

    config = CompareConfig(atol=atol, rtol=rtol, atol_by_output=dict(atol_by_output or {}),
                           rtol_by_output=dict(rtol_by_output or {}), stat=stat,
                           quantile=quantile, worst=worst)
    filtered = bool(since or until or shard)
    sets = [_output_set(x, label, ids, endpoint_url=endpoint_url, limit=limit, since=since,
                        until=until, shard=shard)
            for x, label in ((expected, "expected"), (actual, "actual"))]
    # A capture read with a filter is a subset of a full file: ids it lacks are not findings.
    subset = [s.kind == "capture" and filtered for s in sets]
    ignore = {side for side, sub, other in (("a", subset[0], subset[1]),
                                            ("b", subset[1], subset[0])) if sub and not other}
    return Comparison(compare_sets(sets[0], sets[1], config, ignore_missing=ignore), fail_on)


# ---- argument adapters -----------------------------------------------------------------------

def accept_of(deserializer: Any) -> str | None:
    """The Accept header an SDK predictor sends with this deserializer: its ACCEPT, a tuple of
    MIME types joined with ", " (a str is sent as is)."""
    value = getattr(deserializer, "ACCEPT", None)
    if value is None or isinstance(value, str):
        return value
    return ", ".join(value)


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


def _target(value: Any, *, signature_name: str | None, model_name: str | None,
            code_dir: Path | None) -> Target:
    from kdiag.model.signature import Signature, pick_signature
    from kdiag.model.target import Target, resolve_target, target_from_artifact

    if isinstance(value, Target):
        pick_signature(value.signatures, signature_name)
        return value
    if isinstance(value, ModelReport):
        return target_from_artifact(value.result.artifact, code_dir=code_dir,
                                    model_name=model_name)
    if isinstance(value, Signature) or (isinstance(value, list) and value
                                        and all(isinstance(s, Signature) for s in value)):
        target = Target(signatures=[value] if isinstance(value, Signature) else list(value))
        if model_name:
            target.model_name = model_name
        pick_signature(target.signatures, signature_name)
        return target
    if isinstance(value, str | Path):
        return resolve_target(str(value), signature_name=signature_name,
                              model_name=model_name, code_dir=code_dir)
    raise KdiagError(f"Cannot read a signature from a {type(value).__name__}: pass a model "
                     "path, a signature JSON file, a ModelReport or a Signature.")


def _default_signature(signatures: list[Signature]) -> Signature | None:
    from kdiag.model.signature import pick_signature

    try:
        return pick_signature(signatures, None)
    except KdiagError:
        return None


def _signature(value: Any, signature_name: str | None) -> Signature:
    from kdiag.model.signature import pick_signature
    from kdiag.model.target import load_signature

    if isinstance(value, str | Path):
        return load_signature(str(value), signature_name)
    target = _target(value, signature_name=signature_name, model_name=None, code_dir=None)
    return pick_signature(target.signatures, signature_name)


def _output_set(value: Any, label: str, ids: Sequence[str] | None, **load: Any):
    from kdiag.comparison import OutputSet
    from kdiag.replays.outputs import load_output_set

    if isinstance(value, OutputSet):
        return value
    if isinstance(value, str | Path):
        return load_output_set(str(value), **load)
    import numpy as np

    arrays = value if isinstance(value, Mapping) else {"output": value}
    return OutputSet.from_arrays({k: np.asarray(v) for k, v in arrays.items()}, ids,
                                 source=label)
