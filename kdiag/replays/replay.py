"""`kdiag replay`: the payload through the real model, exactly as the endpoint would run it.

Stages: wire, container, tfs-parse, signature, model, tfs-response, container-response,
runtime (what boto3 returns or raises) and client-decode (what json.loads hands the caller, as
numpy). Many payloads are replayed in a few stacked model calls (kdiag.replays.batching).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kdiag.diagnosis.findings import Finding
from kdiag.diagnosis.validation import (
    ValidateOptions,
    ValidationResult,
    attach_fixed_payload,
)
from kdiag.model.signature import format_shape, pick_signature
from kdiag.path.container import Request
from kdiag.path.local_endpoint import LocalEndpoint
from kdiag.path.request_path import Invocation, caller_view, tensor_summary
from kdiag.path.trace import StageRecord
from kdiag.payloads.recover import requested_signature

# Graph failures that say more than "the graph failed": (substring, code, cause, fix).
MODEL_RULES = [
    ("Could not find variable", "KD501",
     "TF Serving's loader cannot restore this SavedModel's variables: it was written by "
     "tf.saved_model.save from a Keras 3 model, whose variables only the TF2 object loader finds "
     "(tensorflow/serving#2250). Every request fails.",
     "Export with model.export('export/1') (Keras 3), which writes a serving-ready SavedModel."),
    ("but string is provided", "KD502",
     "A string reached a numeric input of the graph: in the notebook a Python predict() "
     "override converted it, the exported graph does not.",
     "Send numbers; do the conversion in the client or in code/inference.py."),
    ("Unknown image file format", "KD504",
     "The graph's image decoder got bytes that are not an image (for base64 text sent as a "
     "plain string, the decoder sees the base64 characters).",
     "Send images as {\"b64\": base64.b64encode(image_bytes).decode()}."),
    ("is not in [", "KD503",
     "An index is outside its table (e.g. a token id beyond the embedding's vocabulary).",
     "Map the ids with the same vocabulary the model was trained with."),
]


@dataclass
class ReplayResult(ValidationResult):
    response: dict | None = None  # status, content_type, body, boto3 (what the caller sees)
    outputs: dict[str, dict] = field(default_factory=dict)  # the model's, dtype and shape
    decoded: dict[str, np.ndarray] = field(default_factory=dict)  # what the client gets
    notebook: dict | None = None  # the notebook-versus-endpoint comparison, when asked

    def to_json(self) -> dict:
        doc = super().to_json()
        doc["response"] = self.response
        doc["outputs"] = self.outputs
        doc["client_decode"] = {k: {"dtype": str(v.dtype), "shape": list(v.shape)}
                                for k, v in self.decoded.items()}
        if self.notebook is not None:
            doc["notebook"] = self.notebook
        return doc


def decode_response(body: bytes, signature_outputs: list[str]) -> dict[str, np.ndarray]:
    """What the client decodes from TF Serving's answer, as numpy, read the way kdiag diff and
    capture replay read responses ({"b64": ...} outputs as bytes); a single unnamed output takes
    the signature's output name. Raises ValueError for a body that is not a response."""
    from kdiag.replays.outputs import loads, response_tensors

    tensors, unnamed = response_tensors(loads(body))
    if unnamed and len(tensors) == 1 and len(signature_outputs) == 1:
        return {signature_outputs[0]: next(iter(tensors.values()))}
    return tensors


def _client_decode(inv: Invocation, out_names: list[str]) -> tuple[StageRecord, dict, list[Finding]]:
    try:
        decoded = decode_response(inv.body, out_names)
    except (ValueError, UnicodeDecodeError) as e:
        return (StageRecord("client-decode", "fail", "not JSON", excerpt=str(e)[:120]), {},
                [Finding("KD670", "warning", "client-decode",
                         f"The response body is not JSON ({e}); a JSONDeserializer raises.",
                         "Send Accept: application/json, or decode the body as text.")])
    findings = []
    for name, arr in decoded.items():
        model = (inv.outputs or {}).get(name)
        if model is not None and np.asarray(model).dtype == np.float32 and arr.dtype == np.float64:
            findings.append(Finding(
                "KD671", "info", "client-decode",
                f"{name!r}: the model returns float32, the client decodes float64 from JSON "
                "(values are equal; compare with a float32 tolerance).",
                "np.asarray(result, dtype=np.float32) when comparing with notebook outputs."))
    rec = StageRecord("client-decode", "ok", "json.loads -> numpy",
                      dtype=", ".join(sorted({str(a.dtype) for a in decoded.values()})),
                      shape="; ".join(f"{k} {format_shape(a.shape)}" for k, a in decoded.items()))
    return rec, decoded, findings


def _model_findings(inv: Invocation) -> list[Finding]:
    if not inv.model_error:
        return []
    for needle, code, cause, fix in MODEL_RULES:
        if needle in inv.model_error:
            return [Finding(code, "error", "model", cause, fix)]
    if inv.stage == "model":
        return [Finding("KD500", "error", "model",
                        f"The graph failed on a request TF Serving accepted: {inv.model_error}",
                        "Compare the request with what the model was trained on; the notebook's "
                        "side: kdiag replay PAYLOAD --model EXPORT --keras MODEL.keras "
                        "--client-input INPUT.")]
    return []


def to_result(inv: Invocation, req: Request, endpoint: LocalEndpoint, name: str | None,
              *, endpoint_name: str = "endpoint") -> ReplayResult:
    from kdiag.diagnosis.diagnose import diagnose, wants_fix

    records = list(inv.records)
    model = _model_findings(inv)
    # KD501 read from the file and KD501 seen by running are one finding.
    same = {f.code for f in model}
    findings = [*(f for f in endpoint.target_findings if f.code not in same), *inv.findings]
    rt = caller_view(inv, endpoint_name=endpoint_name)
    records += [rt.record] if rt.record else []
    findings += [f for f in rt.findings if f.code != "KD660" or not inv.ok]
    accepted = inv.ok and rt.ok
    sig = pick_signature(endpoint.signatures, inv.signature_name or requested_signature(
        req.body_bytes, req.content_type, endpoint.signatures))
    decoded: dict[str, np.ndarray] = {}
    if accepted:
        rec, decoded, extra = _client_decode(inv, list(sig.outputs))
        records.append(rec)
        findings += extra
    body_text = inv.body.decode("utf-8", "replace")
    res = ReplayResult(
        accepted=accepted, status=inv.status, stage=inv.stage,
        error=None if accepted else (rt.message if inv.wire_rejected else body_text),
        tfs_request=inv.tfs_request, tfs_target=inv.tfs_target,
        tensors=tensor_summary(inv.tensors), findings=model + findings,
        records=records, content_type=inv.content_type, response_body=body_text, name=name,
        response={"status": inv.status, "content_type": inv.content_type, "body": body_text,
                  "boto3": ({"returns": {"ContentType": inv.content_type,
                                         "InvokedProductionVariant": "AllTraffic"}}
                            if rt.ok else {"raises": rt.error_code,
                                           "message": rt.message,
                                           "OriginalStatusCode": rt.original_status_code,
                                           "OriginalMessage": rt.original_message})},
        outputs=tensor_summary(inv.outputs or {}), decoded=decoded,
    )
    opts = ValidateOptions(framework_version=endpoint.gen.framework_version,
                           model_name=endpoint.model_name, versions=endpoint.versions,
                           code_dir=endpoint.code_dir)
    res.container_mode = inv.container_mode
    # Always: an accepted answer can still have a root cause (a shape the graph broadcast).
    diagnose(res, req, endpoint.signatures, opts, sig)
    if wants_fix(res):
        attach_fixed_payload(res, req, endpoint.signatures, opts, sig,
                             run_graph=lambda fixed: _graph_refuses(endpoint, fixed))
        if res.fixed_payload and res.fixed_payload.get("per_length"):
            effect = padding_effect(endpoint, res.fixed_payload)
            if effect is not None:
                res.findings.append(effect)
    return res


def _request(part: dict, like: Request) -> Request:
    return Request(body=part["body"].encode("utf-8"), content_type=part["content_type"],
                   accept=like.accept, custom_attributes=like.custom_attributes)


def _real_part(padded: np.ndarray, alone: np.ndarray, rows: list[int]) -> np.ndarray | None:
    """The padded answer's rows that the unpadded request answers: the same rows, and for an
    output with a position axis the row's own positions. None when the shapes do not say."""
    mine = padded[np.asarray(rows)]
    if mine.shape == alone.shape:
        return mine
    if mine.ndim >= 2 and mine.ndim == alone.ndim and mine.shape[0] == alone.shape[0] and \
            mine.shape[2:] == alone.shape[2:] and alone.shape[1] <= mine.shape[1]:
        return mine[:, :alone.shape[1]]
    return None


def padding_effect(endpoint: LocalEndpoint, fixed: dict) -> Finding | None:
    """Ragged rows, with the model at hand: does the padded payload give the real rows the
    outputs they get alone, one request per length? That is what a mask input is for, and a
    model without one decides it in its graph (KD356 when the numbers change, KD357 when not).
    None when an answer is missing or the outputs cannot be lined up."""
    like = Request(body=b"", content_type=fixed["content_type"])
    padded = endpoint.invoke(_request(fixed, like))
    if not padded.ok or not padded.outputs:
        return None
    changed: dict[int, float] = {}
    worst = ("", 0.0)
    for part in fixed["per_length"]:
        alone = endpoint.invoke(_request(part, like))
        if not alone.ok or not alone.outputs or set(alone.outputs) != set(padded.outputs):
            return None
        for name, got in alone.outputs.items():
            got = np.asarray(got)
            mine = _real_part(np.asarray(padded.outputs[name]), got, part["rows"])
            if mine is None or got.dtype.kind not in "fiub":
                return None
            a, b = mine.astype(np.float64), got.astype(np.float64)
            diff = np.abs(a - b) > 1e-5 + 1e-5 * np.abs(b)
            if diff.any():
                per_row = np.where(diff.reshape(len(b), -1).any(axis=1),
                                   np.abs(a - b).reshape(len(b), -1).max(axis=1), 0.0)
                for r, d in zip(part["rows"], per_row.tolist(), strict=True):
                    if d:
                        changed[r] = max(changed.get(r, 0.0), d)
                        if d > worst[1]:
                            worst = (name, d)
    if not changed:
        return Finding(
            "KD357", "info", "model",
            "Checked with the model: the padded payload gives every real row the outputs it "
            "gets alone (one request per length): the padding does not change the answer.")
    rows = sorted(changed)
    return Finding(
        "KD356", "warning", "model",
        f"Padding changes the model's answer: row(s) {', '.join(map(str, rows[:8]))}"
        f"{' ...' if len(rows) > 8 else ''} give other outputs padded than sent alone at "
        f"their own length (largest difference {worst[1]:.4g} on `{worst[0]}`): the model has "
        "no mask input and does not ignore the padding.",
        "Send one request per row length (listed with the fixed payload), or export the model "
        "with a mask input (or masking inside, e.g. Embedding(mask_zero=True)).")


def _graph_refuses(endpoint: LocalEndpoint, req: Request) -> str | None:
    """Run a fixed payload through the whole local endpoint, model included: None when the
    caller would get a 2xx answer, else the reason."""
    inv = endpoint.invoke(req)
    if inv.ok:
        return None
    return inv.model_error or inv.body.decode("utf-8", "replace")[:200]


def replay_one(endpoint: LocalEndpoint, req: Request, name: str | None = None) -> ReplayResult:
    return to_result(endpoint.invoke(req), req, endpoint, name)


# Payloads replayed per block. The model's stacked calls are formed within a block, and float
# rounding can depend on the batch, so every engine that replays the same blocks (in-process,
# --engine ray) gets bit-identical outputs; it also bounds what one block holds in memory.
BLOCK = 2000


def replay_many(endpoint: LocalEndpoint, items: Iterable[tuple[str, Request]], *,
                max_batch: int = 256, progress: Callable[[int], None] | None = None
                ) -> list[ReplayResult]:
    """Replay many payloads, BLOCK at a time: the container and parse stages per payload, then
    the model in stacked calls of at most `max_batch` instances, then each answer split back."""
    items = list(items)
    out: list[ReplayResult] = []
    for start in range(0, len(items), BLOCK):
        out += _replay_block(endpoint, items[start:start + BLOCK], max_batch, progress)
    return out


def _replay_block(endpoint: LocalEndpoint, items: list[tuple[str, Request]], max_batch: int,
                  progress: Callable[[int], None] | None) -> list[ReplayResult]:
    from kdiag.replays.batching import run_batched

    pending = []
    for name, req in items:
        pending.append((name, req, endpoint.begin(req)))
        if progress:
            progress(1)
    waiting = [i for i, (_, _, p) in enumerate(pending) if p.done is None]
    by_sig: dict[str, list[int]] = {}
    for i in waiting:
        by_sig.setdefault(pending[i][2].prep.signature.name, []).append(i)
    results_at: dict[int, object] = {}
    for sig_name, idx in by_sig.items():
        runs = run_batched([pending[i][2].prep.parse.tensors for i in idx],
                           lambda t, s=sig_name: endpoint.run(t, s), max_batch=max_batch)
        results_at.update(zip(idx, runs, strict=True))
    out = []
    for i, (name, req, p) in enumerate(pending):
        inv = p.done if p.done is not None else endpoint.complete(p, results_at[i])
        out.append(to_result(inv, req, endpoint, name))
    return out


def notebook_versus_endpoint(res: ReplayResult, keras_path: Path, client_input: object, *,
                             custom_objects: Path | None, safe_mode: bool,
                             atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """Run the Keras model's own predict() on the client input and diff it with the endpoint."""
    from kdiag.comparison import CompareConfig, compare_outputs
    from kdiag.model.custom_objects import scan_module
    from kdiag.model.runner import keras_predict

    nb = keras_predict(keras_path, client_input, custom_objects=custom_objects,
                       safe_mode=safe_mode)
    overrides = []
    if custom_objects is not None:
        overrides = [c for c in scan_module(custom_objects) if c.methods]
    why = ""
    if overrides:
        c = overrides[0]
        why = (f" {c.class_name}.{c.methods[0]}() runs only in the notebook: whatever it does to "
               "the input (parsing a JSON string, scaling, reshaping) is not in the exported "
               "SavedModel.")
    doc: dict = {"keras": str(keras_path), "notebook_ok": nb.ok, "endpoint_ok": res.accepted}
    if not nb.ok:
        doc["verdict"] = "notebook-failed"
        res.findings.insert(0, Finding("KD720", "warning", "client",
                                       f"The notebook's predict() failed too: {nb.error}", ""))
    elif not res.accepted:
        doc["verdict"] = "endpoint-rejects"
        res.findings.insert(0, Finding(
            "KD721", "error", res.stage or "model",
            f"The notebook's predict() accepts the client input but the endpoint rejects the "
            f"payload at stage {res.stage}.{why}",
            "Send the endpoint what the notebook's predict() passes to call()"
            + (" (the fixed payload below)" if res.fixed_payload else "")
            + ", or move that preprocessing into call() and export again."))
    else:
        a = {k: np.asarray(v) for k, v in nb.outputs.items()}
        b = dict(res.decoded)
        if len(a) == 1 and len(b) == 1:
            b = {next(iter(a)): next(iter(b.values())).astype(next(iter(a.values())).dtype)}
        cmp = compare_outputs(a, b, config=CompareConfig(atol=atol, rtol=rtol),
                              a_label="notebook", b_label="endpoint")
        doc["verdict"] = "agree" if cmp.ok else "differ"
        doc["comparison"] = cmp.to_dict()
        if not cmp.ok:
            worst = cmp.outputs[0] if cmp.outputs else None
            res.findings.insert(0, Finding(
                "KD722", "error", "model",
                "The endpoint answers, but not what the notebook predicts"
                + (f" (max abs error {worst.to_dict()['abs']['max']})" if worst else "")
                + f": a preprocessing step differs between the two.{why}",
                "Apply the notebook's preprocessing before sending, or export it into the "
                "graph."))
    doc["notebook_outputs"] = {k: {"dtype": str(np.asarray(v).dtype),
                                   "shape": list(np.shape(v))} for k, v in nb.outputs.items()}
    res.notebook = doc
