"""TF Serving behind the container: parse, servable lookup, signature check, and the model.

One object answers for TF Serving everywhere: `validate` (no model: zeros of the output shape
stand in for predictions), `replay` and `serve` (a SavedModelRunner runs the signature).
The two-phase form (`prepare`, then `finish` with the model's result) lets batch replay stack
many requests into one model call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from kdiag.diagnosis.findings import Finding
from kdiag.model.signature import Signature, format_shape, pick_signature
from kdiag.path import tfserving
from kdiag.path.container_common import TfsTarget
from kdiag.path.signature_stage import check_tensors, dtype_name
from kdiag.path.trace import StageRecord, excerpt

# TF Serving's checks before the servable lookup (json_tensor.cc FillPredictRequestFromJson,
# errata §13): a body failing these gets 400 even for an unknown model.
_PARSE_PHASE = ("JSON Parse error", "not formatted correctly", "signature_name")


@dataclass
class TfsAnswer:
    status: int
    body: str
    parse: tfserving.TfsParse | None = None
    findings: list[Finding] = field(default_factory=list)
    stage: str | None = None  # failing stage when TF Serving or the graph rejects
    outputs: dict[str, np.ndarray] | None = None  # the model's outputs (replay only)
    model_error: str | None = None  # TensorFlow's message when the graph failed


@dataclass
class Prepared:
    """A request parsed and checked, waiting for the model (or already answered)."""

    answer: TfsAnswer | None  # set when TF Serving answers without running the model
    parse: tfserving.TfsParse | None = None
    signature: Signature | None = None
    findings: list[Finding] = field(default_factory=list)
    shape_ok: bool = True


def parse_record(parse: tfserving.TfsParse) -> StageRecord:
    if not parse.ok:
        return StageRecord("tfs-parse", "fail", f"HTTP {parse.status} {parse.code}",
                           excerpt=excerpt(parse.message or ""))
    shapes = "; ".join(f"{k} {format_shape(tuple(np.shape(v)))}" for k, v in parse.tensors.items())
    dtypes = sorted({dtype_name(v) for v in parse.tensors.values()})
    return StageRecord("tfs-parse", "warn" if parse.warnings else "ok",
                       f"{len(parse.tensors)} tensor(s), {parse.format} format",
                       dtype=", ".join(dtypes), shape=shapes)


def zeros_for(sig: Signature, batch: int) -> dict[str, np.ndarray]:
    """Stand-in outputs of the signature's shape, for answers predicted without the model."""
    out = {}
    for name, spec in sig.outputs.items():
        shape = tuple(batch if i == 0 and d == -1 else max(d, 1)
                      for i, d in enumerate(spec.shape if spec.shape is not None else (batch,)))
        if spec.dtype == "string":
            out[name] = np.full(shape, b"", dtype=object)
        else:
            try:
                out[name] = np.zeros(shape, dtype="bool" if spec.dtype == "bool" else spec.dtype)
            except TypeError:
                out[name] = np.zeros(shape, dtype=np.float32)
    return out


def placeholder_response(sig: Signature, batch: int, fmt: str) -> str:
    """A 200 answer of the right structure when no model runs (validate): zeros, written fast.

    Only its shape matters downstream (Accept handling, sizes); replay writes the real answer
    with TF Serving's exact number formatting.
    """
    import orjson

    outs = {k: v.tolist() if v.dtype != object else [""] * len(v)
            for k, v in zeros_for(sig, batch).items()}
    key = "predictions" if fmt == "row" else "outputs"
    if len(outs) == 1:
        doc = {key: next(iter(outs.values()))}
    elif fmt == "row":
        doc = {key: [{k: v[i] for k, v in outs.items()} for i in range(batch)]}
    else:
        doc = {key: outs}
    return orjson.dumps(doc).decode()


class TfServingEmulator:
    """Callable as the Python path's `send_to_tfs(body, target)`; every call appends its stage
    records to `records` and leaves its full answer in `last`.

    `run(tensors, signature_name)` is the model (a SavedModelRunner's `run`); without it the
    answer to a valid request holds zeros of the output shapes.
    """

    def __init__(self, signatures: list[Signature], *, model_name: str = "model",
                 versions: tuple[int, ...] | None = None, tfs_version: str | None = None,
                 run: Callable | None = None):
        self.signatures = signatures
        self.model_name = model_name
        self.versions = versions
        self.kwargs = {} if tfs_version is None else {"tfs_version": tfs_version}
        self.run = run
        self.records: list[StageRecord] = []
        self.last: TfsAnswer | None = None

    def __call__(self, body: bytes, target: TfsTarget | None) -> tuple[int, str]:
        self.last = self.answer(body, target)
        return self.last.status, self.last.body

    def answer(self, body: bytes | str, target: TfsTarget | None) -> TfsAnswer:
        prep = self.prepare(body, target)
        if prep.answer is not None:
            return prep.answer
        result = self.run(prep.parse.tensors, prep.signature.name) if self.run else None
        return self.finish(prep, result)

    def prepare(self, body: bytes | str, target: TfsTarget | None) -> Prepared:
        # Without a model only shapes and dtypes matter: let the parser skip building values.
        parse = tfserving.parse_predict_request(body, self.signatures, lazy=self.run is None,
                                                **self.kwargs)
        missing = self._missing_servable(target)
        if missing and (parse.ok or not (parse.message or "").startswith(_PARSE_PHASE)):
            self.records.append(StageRecord("tfs-parse", "fail", "HTTP 404 NOT_FOUND",
                                            excerpt=missing))
            return Prepared(TfsAnswer(404, tfserving.error_body(missing, **self.kwargs),
                                      stage="tfs-parse"))
        if target is not None and target.method != "predict" and parse.ok:
            self.records.append(StageRecord("tfs-parse", "skip", f"{target.method} request"))
            return Prepared(TfsAnswer(200, "{}", parse, [Finding(
                "KD320", "info", "tfs-parse",
                f"tfs-method={target.method}: kdiag checks predict requests only; this one was "
                "not checked against the signature.", "")]))
        self.records.append(parse_record(parse))
        if not parse.ok:
            crash = [parse_warning_finding(w) for w in parse.warnings if _CRASH_TEXT in w]
            return Prepared(TfsAnswer(parse.status, parse.body or "", parse, crash, "tfs-parse"))
        found = [parse_warning_finding(w) for w in parse.warnings]
        sig = pick_signature(self.signatures, parse.signature_name)
        check = check_tensors(parse.tensors, sig)
        self.records.append(check.record)
        found += check.findings
        return Prepared(None, parse, sig, found, check.ok)

    def finish(self, prep: Prepared, result=None) -> TfsAnswer:
        """The answer once the model ran (`result`: a RunResult), or predicted without it."""
        if prep.answer is not None:
            return prep.answer
        parse, sig = prep.parse, prep.signature
        if result is None:
            if not prep.shape_ok:
                # TF Serving hands the tensors to the graph, whose op then fails with 400
                # (INVALID_ARGUMENT); the op's words depend on the graph, the cause does not.
                text = tfserving.error_body(
                    f"(predicted graph error) {prep.findings[-1].message}", **self.kwargs)
                return TfsAnswer(400, text, parse, prep.findings, "signature")
            batch = next((int(np.shape(a)[0]) for a in parse.tensors.values() if np.ndim(a)), 1)
            return TfsAnswer(200, placeholder_response(sig, batch, parse.format or "row"), parse,
                             prep.findings, None)
        if not result.ok:
            status = tfserving.http_status(result.code or "UNKNOWN")
            message = result.detail or result.message or "unknown error"
            self.records.append(StageRecord("model", "fail", f"{result.code}",
                                            excerpt=excerpt(result.message or "")))
            return TfsAnswer(status, tfserving.error_body(message, **self.kwargs), parse,
                             prep.findings, "signature" if not prep.shape_ok else "model",
                             model_error=result.message)
        outs = result.outputs
        self.records.append(StageRecord(
            "model", "ok", f"{len(outs)} output(s)", detail={"seconds": result.seconds},
            dtype=", ".join(sorted({dtype_name(v) for v in outs.values()})),
            shape="; ".join(f"{k} {format_shape(tuple(np.shape(v)))}" for k, v in outs.items())))
        try:
            text = tfserving.predict_response(outs, format=parse.format or "row", signature=sig,
                                              **self.kwargs)
        except tfserving.TfsResponseError as e:
            r = e.response
            self.records.append(StageRecord("tfs-response", "fail", f"HTTP {r.status}",
                                            excerpt=excerpt(r.message or "")))
            return TfsAnswer(r.status, r.body, parse, prep.findings, "tfs-response", outs)
        self.records.append(StageRecord("tfs-response", "ok",
                                        "predictions" if parse.format == "row" else "outputs",
                                        size=len(text), excerpt=excerpt(text)))
        return TfsAnswer(200, text, parse, prep.findings, None, outs)

    def _missing_servable(self, target: TfsTarget | None) -> str | None:
        if target is None:
            return None
        if target.model != self.model_name or (
                target.version is not None and self.versions is not None
                and target.version not in self.versions):
            which = (f"Latest({target.model})" if target.version is None
                     else f"Specific({target.model}, {target.version})")
            return f"Servable not found for request: {which}"
        return None


_CRASH_TEXT = "overflows its stack"


def parse_warning_finding(warning: str) -> Finding:
    """A TF Serving parse warning as a finding: deep nesting and too many dimensions have
    their own codes (KD331, KD332), the rest is KD321."""
    if _CRASH_TEXT in warning:
        return Finding("KD332", "error", "tfs-parse", warning,
                       "Send the input with the signature's rank; no real tensor nests this deep.")
    if "levels deep" in warning:
        return Finding("KD332", "warning", "tfs-parse", warning,
                       "Send the input with the signature's rank; no real tensor nests this deep.")
    if "kdiag (numpy) cannot hold" in warning:
        return Finding("KD331", "warning", "tfs-parse", warning,
                       "Send the input with the signature's rank.")
    return Finding("KD321", "warning", "tfs-parse", warning, "")
