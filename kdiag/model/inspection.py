"""`kdiag inspect`: what a model artifact will expect at the endpoint, and what is wrong with it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kdiag.diagnosis.findings import Finding
from kdiag.model.artifact import ModelArtifact, read_model
from kdiag.model.custom_objects import scan_module
from kdiag.model.signature import JSON_DTYPES, Signature


@dataclass
class NameMapping:
    """Keras's own input names versus what each export path writes into the signature."""

    keras_inputs: list[str]
    export_inputs: list[str]  # model.export() (Keras 3)
    tf_saved_model_inputs: list[str]  # tf.saved_model.save


@dataclass
class InspectResult:
    artifact: ModelArtifact
    example_request: str | None = None
    boto3_call: str | None = None
    names: NameMapping | None = None
    findings: list[Finding] = field(default_factory=list)


_ZERO = {"bool": False}


def _zeros_example(sig: Signature) -> str | None:
    """One row-format instance of zeros, for the usual signature (numeric inputs with a batch
    axis and known inner sizes), written without numpy so inspect starts fast. None: ask the
    sample generator, which knows the unusual cases (strings, scalars, unknown sizes)."""
    import json

    values = {}
    elements = 0
    for name, spec in sig.inputs.items():
        if spec.dtype not in _NUMERIC or not spec.has_batch_dim or \
                any(d < 1 for d in spec.shape[1:]):
            return None
        count = 1
        for d in spec.shape[1:]:
            count *= d
        elements += count
        if elements > 100_000:
            return None  # the sample generator bounds it (and says "too large to sample")
        zero = _ZERO.get(spec.dtype, 0.0 if spec.dtype.startswith("float") else 0)
        value: object = zero
        for d in reversed(spec.shape[1:]):
            value = [value] * d
        values[name] = value
    instance = next(iter(values.values())) if len(values) == 1 else values
    body = {"instances": [instance]}
    if sig.name != "serving_default":
        body = {"signature_name": sig.name, **body}
    return json.dumps(body, separators=(",", ":"))


_NUMERIC = JSON_DTYPES - {"string"}


def _example(sig: Signature, endpoint: str) -> tuple[str | None, str | None, list[Finding]]:
    from kdiag.errors import KdiagError
    from kdiag.payloads.snippet import boto3_snippet

    body = _zeros_example(sig)
    if body is None:
        from kdiag.payloads.sample import SampleOptions, generate

        try:
            body = generate(sig, SampleOptions(batch=1, seed=0)).body
        except KdiagError as e:
            return None, None, [Finding("KD026", "info", "artifact",
                                        f"No example request: {e}", "")]
    return body, boto3_snippet(endpoint, body, "application/json"), []


def _name_mapping(art: ModelArtifact, custom_objects: Path | None) -> tuple[NameMapping | None, list[Finding]]:
    k = art.keras
    if k is None:
        return None, []
    findings: list[Finding] = []
    keras_names = [i.name for i in k.inputs]
    if k.subclassed:
        # A subclassed model has no Input layers: Keras 3's export() traces call() with
        # positional TensorSpecs (args_0, args_1, ...); tf.saved_model.save names the
        # serving input after call()'s argument (`inputs` for the usual signature).
        export = [f"args_{i}" for i in range(max(1, len(keras_names)))]
        tfsave = keras_names or ["inputs"]
    else:
        export = keras_names
        tfsave = keras_names
    overrides = []
    if custom_objects is not None:
        wanted = (k.registered_name or "").split(">")[-1] or k.class_name
        scanned = scan_module(custom_objects)
        match = [c for c in scanned if c.class_name == wanted]
        if k.subclassed and match and match[0].call_args:
            keras_names = match[0].call_args[: max(1, len(keras_names))]
            tfsave = keras_names
        overrides = [c for c in (match or scanned) if c.methods]
        if not match and k.subclassed:
            findings.append(Finding(
                "KD032", "warning", "artifact",
                f"{custom_objects} defines no class named {wanted!r}, the class stored in "
                f"{Path(k.path).name}: loading the model with these custom objects fails.",
                "Pass the module that defines the registered class.",
            ))
    for c in overrides:
        findings.append(Finding(
            "KD031", "warning", "artifact",
            f"{c.class_name} overrides {', '.join(c.methods)}: that Python code runs in the "
            "notebook only. The exported SavedModel holds call() alone, so whatever "
            f"{c.methods[0]}() does to the input (parsing, scaling, reshaping) never happens at "
            "the endpoint.",
            "Move the preprocessing into call() (or a layer) before exporting, or do it in the "
            "client / code/inference.py; confirm with kdiag replay PAYLOAD --model EXPORT "
            "--keras MODEL.keras --custom-objects MODULE.py --client-input INPUT.",
        ))
    if export != keras_names or tfsave != keras_names:
        findings.append(Finding(
            "KD030", "info", "artifact",
            f"Keras calls the input(s) {', '.join(keras_names)}; model.export() names them "
            f"{', '.join(export)} and tf.saved_model.save names them {', '.join(tfsave)}. "
            "Named requests must use the exported names.",
            "Use the names kdiag inspect shows for the exported SavedModel, or send unnamed "
            "row-format instances for a single-input model.",
        ))
    return NameMapping(keras_names, export, tfsave), findings


def inspect_model(path: str | Path, *, custom_objects: Path | None = None,
                  endpoint_name: str = "my-endpoint") -> InspectResult:
    art = read_model(path)
    result = InspectResult(artifact=art, findings=list(art.findings))
    sig = art.default_signature
    if sig is not None and sig.inputs:
        result.example_request, result.boto3_call, extra = _example(sig, endpoint_name)
        result.findings += extra
    result.names, extra = _name_mapping(art, custom_objects)
    result.findings += extra
    return result
