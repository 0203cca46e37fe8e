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
from kdiag.path import classify_regress, tfserving
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
    # Predicted without the model for a shape TF Serving passes on unchecked: the graph
    # answers one of these (400 if an op checks the axis, else 200 from a malformed input).
    status_candidates: tuple[int, ...] | None = None


@dataclass
class Prepared:
    """A request parsed and checked, waiting for the model (or already answered)."""

    answer: TfsAnswer | None  # set when TF Serving answers without running the model
    parse: tfserving.TfsParse | None = None
    signature: Signature | None = None
    findings: list[Finding] = field(default_factory=list)
    shape_ok: bool = True
    # Only rank/dimension mismatches: whether the graph fails on them depends on its ops
    # (a Dense layer checks the last axis, a Normalization or an add broadcasts).
    graph_decides: bool = False


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
        if target is not None and target.method != "predict":
            return self._prepare_other(body, target)
        # Without a model only shapes and dtypes matter: let the parser skip building values.
        parse = tfserving.parse_predict_request(body, self.signatures, lazy=self.run is None,
                                                **self.kwargs)
        missing = self._missing_servable(target)
        if missing and (parse.ok or not (parse.message or "").startswith(_PARSE_PHASE)):
            self.records.append(StageRecord("tfs-parse", "fail", "HTTP 404 NOT_FOUND",
                                            excerpt=missing))
            return Prepared(TfsAnswer(404, tfserving.error_body(missing, **self.kwargs),
                                      stage="tfs-parse"))
        self.records.append(parse_record(parse))
        if not parse.ok:
            crash = [parse_warning_finding(w) for w in parse.warnings if _CRASH_TEXT in w]
            return Prepared(TfsAnswer(parse.status, parse.body or "", parse, crash, "tfs-parse"))
        found = [parse_warning_finding(w) for w in parse.warnings]
        sig = pick_signature(self.signatures, parse.signature_name)
        check = check_tensors(parse.tensors, sig)
        self.records.append(check.record)
        found += check.findings
        graph_decides = not check.ok and all(m.kind in ("rank", "dim", "batch")
                                             for m in check.mismatches)
        return Prepared(None, parse, sig, found, check.ok, graph_decides)

    def _prepare_other(self, body: bytes | str, target: TfsTarget) -> Prepared:
        """:classify, :regress, or a method TF Serving's route does not know."""
        if target.method not in classify_regress.METHODS or (
                target.raw_version is not None and not (target.raw_version.isascii()
                                                        and target.raw_version.isdigit())):
            # http_rest_api_handler.cc: the route regex (or the case-sensitive dispatch) fails.
            msg = f"Malformed request: POST {target.uri}"
            self.records.append(StageRecord("tfs-parse", "fail", "HTTP 400 INVALID_ARGUMENT",
                                            excerpt=msg))
            return Prepared(TfsAnswer(400, tfserving.error_body(msg, **self.kwargs),
                                      stage="tfs-parse"))
        method = target.method
        req = classify_regress.parse_examples_request(body, method, **self.kwargs)
        if isinstance(req, tfserving.TfsParse):  # the whole body is parsed before the lookup
            if req.status == 0:
                return Prepared(TfsAnswer(0, "", req, [Finding(
                    "KD321", "warning", "tfs-parse", w, "") for w in req.warnings], "tfs-parse"))
            self.records.append(parse_record(req))
            return Prepared(TfsAnswer(req.status, req.body or "", req, [], "tfs-parse"))
        missing = self._missing_servable(target)
        if missing:
            self.records.append(StageRecord("tfs-parse", "fail", "HTTP 404 NOT_FOUND",
                                            excerpt=missing))
            return Prepared(TfsAnswer(404, tfserving.error_body(missing, **self.kwargs),
                                      stage="tfs-parse"))
        sig = next((s for s in self.signatures if s.name == req.signature_name), None)
        problem = classify_regress.signature_problem(sig, req.signature_name, method,
                                                     **self.kwargs)
        if problem is not None:
            self.records.append(StageRecord("signature", "fail", "HTTP 400 INVALID_ARGUMENT",
                                            excerpt=excerpt(problem)))
            return Prepared(TfsAnswer(400, tfserving.error_body(problem, **self.kwargs), None, [
                Finding("KD322", "error", "signature",
                        f"TF Serving cannot {method} with signature {req.signature_name!r}: "
                        f"{problem.splitlines()[0]}",
                        f"call a signature exported for {method} (one string input 'inputs' of "
                        "serialized tf.Example), or use tfs-method=predict with instances")],
                "signature"))
        key = next(iter(sig.inputs))
        parse = tfserving.TfsParse(ok=True, status=200, code=None, message=None, body=None,
                                   format=method, signature_name=sig.name,
                                   tensors={key: req.tensor()})
        self.records.append(StageRecord("tfs-parse", "ok",
                                        f"{len(req.serialized)} example(s), {method} format",
                                        dtype="string", shape=f"{key} ({len(req.serialized)},)"))
        check = check_tensors(parse.tensors, sig)
        self.records.append(check.record)
        return Prepared(None, parse, sig, list(check.findings), check.ok)

    def _finish_other(self, prep: Prepared, result) -> TfsAnswer:
        parse, sig, method = prep.parse, prep.signature, prep.parse.format
        n = len(next(iter(parse.tensors.values())))
        if result is None:
            return TfsAnswer(200, classify_regress.placeholder_json(method, sig, n), parse,
                             prep.findings, None)
        if not result.ok:
            message = result.detail or result.message or "unknown error"
            self.records.append(StageRecord("model", "fail", f"{result.code}",
                                            excerpt=excerpt(result.message or "")))
            return TfsAnswer(tfserving.http_status(result.code or "UNKNOWN"),
                             tfserving.error_body(message, **self.kwargs), parse, prep.findings,
                             "model", model_error=result.message)
        outs = result.outputs
        self.records.append(StageRecord("model", "ok", f"{len(outs)} output(s)",
                                        detail={"seconds": result.seconds}))
        try:
            text = classify_regress.result_json(method, outs, n)
        except classify_regress.ResultError as e:
            self.records.append(StageRecord("tfs-response", "fail", "HTTP 400",
                                            excerpt=excerpt(str(e))))
            return TfsAnswer(400, tfserving.error_body(str(e), **self.kwargs), parse,
                             prep.findings, "tfs-response", outs)
        self.records.append(StageRecord("tfs-response", "ok", "results", size=len(text),
                                        excerpt=excerpt(text)))
        return TfsAnswer(200, text, parse, prep.findings, None, outs)

    def finish(self, prep: Prepared, result=None) -> TfsAnswer:
        """The answer once the model ran (`result`: a RunResult), or predicted without it."""
        if prep.answer is not None:
            return prep.answer
        if prep.parse.format in classify_regress.METHODS:
            return self._finish_other(prep, result)
        parse, sig = prep.parse, prep.signature
        if result is None:
            if not prep.shape_ok:
                # TF Serving hands the tensors to the graph, whose op then fails with 400
                # (INVALID_ARGUMENT); the op's words depend on the graph, the cause does not.
                text = tfserving.error_body(
                    f"(predicted graph error) {prep.findings[-1].message}", **self.kwargs)
                return TfsAnswer(400, text, parse, prep.findings, "signature",
                                 status_candidates=(400, 200) if prep.graph_decides else None)
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
