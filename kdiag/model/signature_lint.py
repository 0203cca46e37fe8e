"""Findings about the signatures themselves: what TF Serving will require of every request."""

from __future__ import annotations

from kdiag.diagnosis.findings import Finding
from kdiag.model.signature import (
    DEFAULT_SIGNATURE,
    PREDICT_METHOD,
    Signature,
    TensorSpec,
    format_shape,
)


def _input_findings(tag: str, name: str, spec: TensorSpec) -> list[Finding]:
    if spec.shape is None:
        return [Finding(
            "KD024", "info", "artifact",
            f"{tag}: input {name!r} has an unknown rank: TF Serving accepts any nesting and "
            "only the graph can fail.",
            "Export with an explicit input_signature to get shape checks.",
        )]
    if not spec.shape:
        return [Finding(
            "KD025", "warning", "artifact",
            f"{tag}: input {name!r} is a scalar (shape ()): row-format requests "
            "({\"instances\": ...}) add a batch axis, and the container's JSON wrapping always "
            "produces row format, so the graph receives shape (n,) instead.",
            "Re-export with a batch axis (shape [None]), or send columnar {\"inputs\": value} "
            "straight to TF Serving.",
        )]
    if not spec.has_batch_dim:
        return [Finding(
            "KD025", "warning", "artifact",
            f"{tag}: input {name!r} has shape {format_shape(spec.shape)}: the batch axis is "
            f"pinned to {spec.shape[0]} (tf.saved_model.save records the first shape the model "
            "was built or called with, e.g. the fit batch size). TF Serving does not enforce it "
            "and most graphs still run, but graphs that reshape with that size fail for other "
            "batch sizes.",
            "Build the model with a None batch axis before saving (model.build((None, ...))) or "
            "use model.export(), which always leaves the batch axis unknown.",
        )]
    return []


def lint_signatures(sigs: list[Signature], have_savedmodel: bool = True) -> list[Finding]:
    out: list[Finding] = []
    if not have_savedmodel:
        return out
    names = [s.name for s in sigs]
    if DEFAULT_SIGNATURE not in names:
        out.append(Finding(
            "KD020", "error", "artifact",
            f"No {DEFAULT_SIGNATURE!r} signature (signatures: {', '.join(names) or 'none'}): "
            "every request without \"signature_name\" fails with TF Serving's \"Serving signature "
            f"name: \\\"{DEFAULT_SIGNATURE}\\\" not found in signature def\".",
            "Export with model.export(path) (Keras 3) or pass signatures={'serving_default': fn} "
            "to tf.saved_model.save; or send \"signature_name\" in every request.",
        ))
    for s in sigs:
        tag = f"signature {s.name!r}"
        method = s.method_name.rsplit("/", 1)[-1]
        if s.method_name and s.method_name != PREDICT_METHOD:
            out.append(Finding(
                "KD021", "info", "artifact",
                f"{tag} is a {method} signature: call it with tfs-method={method} and "
                "{\"examples\": [...]}, not predict.",
                f"Send CustomAttributes='tfs-method={method}'.",
            ))
        strings = s.b64_inputs()
        if any("tf.Example" in n for n in s.notes) and len(s.inputs) == 1 and strings:
            out.append(Finding(
                "KD022", "warning", "artifact",
                f"{tag} takes serialized tf.Example protos ({strings[0]!r}, string): the feature "
                "names live inside the graph's parser, not in the signature, so sending feature "
                "names or raw numbers fails (\"does not have named input\")."
                + (" The parser reads " + ", ".join(
                    f"{f.key} ({f.dtype}"
                    + (f" {list(f.shape)}" if f.shape is not None else ", variable length")
                    + ("" if f.required else ", optional") + ")"
                    for f in s.example_features)
                   + "; kdiag validate turns {\"instances\": [{feature: value}]} into the "
                   "Examples." if s.example_features else ""),
                "Send base64 serialized tf.Example: {\"instances\": [{\"b64\": \"...\"}]}, or use "
                "tfs-method=classify/regress with {\"examples\": [{\"feature\": value}]}.",
            ))
        elif strings:
            decodes = any("decodes images" in n for n in s.notes)
            out.append(Finding(
                "KD023", "info", "artifact",
                f"{tag}: string input(s) {', '.join(strings)} "
                + ("receive image bytes decoded in the graph: " if decodes else "")
                + "binary data must be sent as {\"b64\": \"<base64>\"} in TF Serving JSON.",
                "Send {\"instances\": [{\"b64\": base64.b64encode(data).decode()}]}",
            ))
        for name, spec in s.inputs.items():
            out += _input_findings(tag, name, spec)
    return out
