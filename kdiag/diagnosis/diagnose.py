"""Rules over a validation trace: name the root cause in plain words, and write the fix.

The stage findings say what each stage saw ("TF Serving: Type: String is not of expected type:
float"); the rules here say why it happened and what to send ("numbers sent as strings"), using
the payload itself, the container's rewrite and the signature. The corrected request is only
offered after it has itself been validated as accepted.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from kdiag.diagnosis.families import family_finding
from kdiag.diagnosis.findings import Finding, assign_root_cause
from kdiag.model.signature import Signature, format_shape

if TYPE_CHECKING:
    from kdiag.diagnosis.validation import ValidateOptions, ValidationResult
    from kdiag.path.generations import Request

STAGE = {"3": "tfs-parse", "4": "signature", "2": "container", "1": "wire", "5": "model"}


def _f(code: str, message: str, fix: str, severity: str = "error") -> Finding:
    return Finding(code, severity, STAGE[code[2]], message, fix)


# (pattern on TF Serving's message, code, plain-words cause, fix); first match wins.
TFS_RULES: list[tuple[re.Pattern, str, str, str]] = [
    (re.compile(r"Type: String is not of expected type: (float|double|u?int\d*|int)"), "KD301",
     "Numbers were sent as strings (\"1.5\" instead of 1.5): TF Serving takes only JSON numbers "
     "for a numeric input.",
     "Send the values as JSON numbers: json.dumps(array.tolist()) of a numeric array, not of "
     "strings."),
    (re.compile(r"Type: Number is not of expected type: u?int"), "KD303",
     "A decimal number (e.g. 1.0) was sent to an integer input: TF Serving accepts only whole "
     "JSON integers for int inputs, 1.0 included.",
     "Send integers: array.astype('int64').tolist() (no '.0')."),
    (re.compile(r"is not of expected type: bool"), "KD311",
     "A non-boolean value was sent to a bool input: only true/false are accepted.",
     "Send true/false."),
    (re.compile(r"without loss of precision"), "KD312",
     "An integer too large for a float input was sent: this TF Serving version rejects integers "
     "that float32/float64 cannot hold exactly.",
     "Write the numbers as decimals (1.0) or upgrade the container."),
    (re.compile(r"Encountered list at unexpected size|Expecting tensor size|Expecting shape"),
     "KD304",
     "Ragged rows: the instances (or rows inside one) have different lengths; a tensor must be "
     "rectangular.",
     "Pad or trim every row to the same length before sending."),
    (re.compile(r"found at incorrect level|Encountered list at unexpected level"), "KD305",
     "Mixed nesting depth: some values sit deeper in the lists than others.",
     "Give every instance the same nesting (the signature's instance shape)."),
    (re.compile(r"does not have named input|Missing named input|keys? .*(must|should)|expecting list of objects as multiple|expecting an object as multiple"),
     "KD306",
     "The input names do not match the signature (or a multi-input signature got unnamed "
     "values).",
     "Send one object per instance keyed by the signature's input names."),
    (re.compile(r"Serving signature name: .* not found"), "KD307",
     "The \"signature_name\" in the body names no signature of the model.",
     "Use a signature the model has (kdiag inspect lists them) or leave signature_name out for "
     "serving_default."),
    (re.compile(r"Missing 'inputs' or 'instances' key|Is not object"), "KD308",
     "The request has no \"instances\" or \"inputs\" key: TF Serving cannot tell where the data is.",
     "Wrap the data: {\"instances\": [...]} (one entry per instance)."),
    (re.compile(r"base64|b64"), "KD309",
     "Binary data for a string input must be sent as {\"b64\": \"<base64>\"}.",
     "Send {\"instances\": [{\"b64\": base64.b64encode(data).decode()}]}."),
    (re.compile(r"tensor parsing error: "), "KD330",
     "An input has more than 254 dimensions, TensorFlow's limit: TF Serving parses the JSON, "
     "then cannot make a tensor of it and answers 400 \"tensor parsing error: <input>\".",
     "Send the input with the signature's rank (kdiag inspect shows it)."),
    (re.compile(r"JSON Parse error"), "KD310",
     "The body is not valid JSON where TF Serving parses it.",
     "Send the output of json.dumps(...); check quoting and trailing commas."),
    (re.compile(r"Servable not found"), "KD314",
     "The request names a model or version that TF Serving does not have loaded.",
     "Fix tfs-model-name / tfs-model-version in CustomAttributes, or drop them to use the default "
     "model."),
    (re.compile(r"Expecting object but got list|Expecting value/list but got object|Failed to process element"),
     "KD306",
     "The instances do not fit the signature's inputs (objects where values are expected, or the "
     "reverse).",
     "For one input send plain values per instance; for several, one object per instance keyed "
     "by input name."),
]


def _wrapped_by_container(res: ValidationResult) -> str | None:
    r"""How the njs dispatcher treated a bare body: 'list' ([[ ...), 'one' (wrapped), or None.

    Read from the container stage's own decision, never from the text again. The njs
    dispatcher (tensorflowServing.js json_request) is the one place that reads the raw text:
    is_tfs_json /"(instances|inputs|examples)"\s*:/, is_json_lines /[}\]]\s*[\[{]/ and
    generic_json_request's /^\s*\[\s*\[/, which kdiag.path.container_njs applies exactly; the
    Python path's default_handler (python_service.py) forwards the body untouched. Everywhere
    else whitespace and key order must not change a diagnosis.
    """
    return {"instances-list": "list", "wrapped": "one"}.get(res.container_mode or "")


def _body_json(req: Request):
    """The body as one JSON value, or None when it is not one JSON document."""
    from kdiag.replays.outputs import loads

    try:
        return loads(req.body_bytes)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _sent_and_declared(res: ValidationResult, sig: Signature):
    """(name, spec, shape sent, shape declared) for each tensor whose input declares a shape."""
    for name, t in res.tensors.items():
        spec = sig.inputs.get(name)
        if spec is not None and spec.shape is not None:
            yield name, spec, tuple(t["shape"]), spec.shape


def _shape_rules(res: ValidationResult, sig: Signature) -> list[Finding]:
    out = []
    wrapped = _wrapped_by_container(res)
    for name, spec, got, exp in _sent_and_declared(res, sig):
        inst = spec.instance_shape or ()
        if len(got) == len(exp) - 1 and len(inst) >= 2 and got == tuple(
                g if e == -1 else e for g, e in zip(got, inst, strict=True)) and wrapped == "list":
            out.append(_f("KD410",
                          f"One {format_shape(inst)} instance was sent without its batch axis, "
                          f"as a bare nested list: the container takes a body starting with '[[' "
                          f"as the list of instances, so its {got[0]} rows became {got[0]} "
                          f"instances of {format_shape(got[1:])} (the SDK's JSONSerializer does "
                          "this to a numpy array of one image).",
                          "Send {\"instances\": [image]} or the array with a batch axis: "
                          "array[None].tolist()."))
        elif len(got) == len(exp) - 1:
            out.append(_f("KD411",
                          f"Input {name!r} is missing the batch axis: TF Serving built "
                          f"{format_shape(got)} and the signature takes {format_shape(exp)}. "
                          "In row format every element of \"instances\" is one instance.",
                          f"Send a list of instances, each of shape {format_shape(inst)}: "
                          "[[...values...]] for one instance."))
        elif len(got) == len(exp) + 1 and 1 in got[:2]:
            out.append(_f("KD412",
                          f"Input {name!r} has one level of nesting too many: TF Serving built "
                          f"{format_shape(got)} for a {format_shape(exp)} input (the batch axis "
                          "was added twice: a list inside \"instances\" around the instances).",
                          "Remove one pair of brackets: {\"instances\": [[...], [...]]}."))
        elif len(got) == len(exp) and any(e not in (-1, g) for e, g in zip(exp[1:], got[1:], strict=True)):
            axis = next(i for i, (e, g) in enumerate(zip(exp, got, strict=True), 0) if i and e not in (-1, g))
            out.append(_f("KD413",
                          f"Input {name!r} has {got[axis]} values on axis {axis} where the model "
                          f"takes {exp[axis]}: wrong feature count or image size for this model.",
                          f"Send instances of shape {format_shape(inst)}; check the preprocessing "
                          "that builds them matches training."))
    return out


def _holds_json_text(value, depth: int = 0) -> bool:
    """A string whose text is a JSON array or object, in the body's first levels."""
    if depth > 3:
        return False
    if isinstance(value, str):
        if value.lstrip()[:1] not in ("[", "{"):
            return False
        from kdiag.replays.outputs import loads

        try:
            return isinstance(loads(value), (list, dict))
        except (ValueError, RecursionError):
            return False
    if isinstance(value, dict):
        return any(_holds_json_text(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_holds_json_text(v, depth + 1) for v in value[:8])
    return False


def _json_string_rule(req: Request) -> Finding | None:
    """{"input_data": "[[1.0, 2.0]]"}: a whole array JSON-encoded into a string. Read from the
    parsed body, so the rendering (spaces, line breaks, key order) does not matter."""
    if (req.content_type or "").split(";")[0].strip().lower() == "text/csv":
        return None
    if _holds_json_text(_body_json(req)):
        return _f("KD302",
                  "The array was JSON-encoded twice: the body holds a JSON string whose text is "
                  "the array (\"[[1.0, 2.0]]\"), so TF Serving sees one string, not numbers.",
                  "Serialise once: json.dumps({\"instances\": array.tolist()}), not "
                  "json.dumps(json.dumps(...)).")
    return None


def _csv_header_rule(req: Request) -> Finding | None:
    if (req.content_type or "").split(";")[0].strip().lower() != "text/csv":
        return None
    first = req.body_bytes.decode("utf-8", "replace").lstrip().splitlines()[:1]
    if not first:
        return None
    try:
        [float(x) for x in first[0].split(",")]
    except ValueError:
        return _f("KD313",
                  "The CSV body starts with a header row: the container converts every line, "
                  "the header too, into an instance, and the names arrive as strings.",
                  "Drop the header row and keep text/csv: "
                  "DataFrame.to_csv(header=False, index=False).")
    return None


def _wrapper_key_rule(res: ValidationResult, req: Request, sig: Signature) -> Finding | None:
    """{"data": [...]} or {"input_data": ...}: a top-level key TF Serving does not know, which
    the container wrapped as one instance (it found no "instances"/"inputs"/"examples" key)."""
    if _wrapped_by_container(res) != "one":
        return None
    doc = _body_json(req)
    if not isinstance(doc, dict):
        return None
    unknown = [k for k in doc if k not in sig.inputs]
    if unknown:
        return _f("KD308",
                  f"The body's top-level key {unknown[0]!r} is neither \"instances\" nor "
                  "\"inputs\": the container wraps the whole object as one instance, whose key "
                  f"matches no input of the signature ({', '.join(sig.inputs)}).",
                  "Send {\"instances\": [...]} (row format) or {\"inputs\": ...} (columnar).")
    return None


def _broadcast_rule(res: ValidationResult, sig: Signature, root: Finding | None
                    ) -> Finding | None:
    """The graph answered 200 to tensors the signature does not take: an op broadcast them
    (a Normalization, an add), so the numbers were computed from a malformed input."""
    import numpy as np

    if not res.accepted:
        return None
    for name, _spec, got, exp in _sent_and_declared(res, sig):
        if len(got) == len(exp) and all(e in (-1, g) for e, g in zip(exp, got, strict=True)):
            continue
        try:
            wide = np.broadcast_shapes(got, tuple(1 if d == -1 else d for d in exp))
            into = f" broadcast to {format_shape(tuple(wide))}"
        except ValueError:
            into = ""
        return Finding("KD420", "error", "model",
                       f"{res.status}, but computed from a {format_shape(got)} input{into}: "
                       f"{name!r} takes {format_shape(exp)}, and the graph broadcast it instead "
                       "of failing, so the answer is wrong without any error.",
                       root.fix if root is not None else f"Send {name!r} as {format_shape(exp)}.",
                       consequence_of=root.code if root is not None else None)
    return None


# Root causes no request can fix: the artifact or the model must change.
MODEL_MUST_CHANGE = ("KD0", "KD5")


def wants_fix(res: ValidationResult) -> bool:
    """A fixed payload is worth proposing: the payload has a root cause a request can fix."""
    return bool(res.root_cause) and not res.root_cause.startswith(MODEL_MUST_CHANGE)


def diagnose(res: ValidationResult, req: Request, signatures: list[Signature],
             opts: ValidateOptions, sig: Signature | None) -> None:
    """Add root-cause findings to `res` and name its one root cause (`res.root_cause`: the
    first failing stage owns it, the other errors become its consequences). The verified fixed
    payload is kdiag.diagnosis.validation.attach_fixed_payload's (see wants_fix)."""
    roots: list[Finding] = []
    shape_errors = any(f.stage == "signature" and f.code in ("KD401", "KD402")
                       for f in res.findings)
    if sig is not None and (not res.accepted or shape_errors):
        roots = _root_rules(res, req, opts, sig)
    known = {f.code for f in res.findings}
    roots = [f for f in roots if f.code not in known]
    res.root_cause, res.findings = assign_root_cause(roots + res.findings, preferred=roots)
    if not res.accepted and res.root_cause is None:
        # Every rejection carries an error, so the exit code follows the findings alone.
        res.findings.insert(0, Finding("KD680", "error", res.stage or "container",
                                       f"The request is rejected ({res.status} at stage "
                                       f"{res.stage}) and no rule names why: {res.error or ''}"
                                       [:400], "Read the error body above."))
        res.root_cause = "KD680"
    if sig is not None and shape_errors:
        root = next((f for f in res.findings if f.code == res.root_cause), None)
        broadcast = _broadcast_rule(res, sig, root)
        if broadcast is not None:
            res.findings.append(broadcast)


def _root_rules(res: ValidationResult, req: Request, opts: ValidateOptions, sig: Signature
                ) -> list[Finding]:
    roots: list[Finding] = []
    message = res.error or ""
    # The body-shape rules that read the text itself come first; then the failure families.
    special = (_json_string_rule(req) or _csv_header_rule(req) or
               _wrapper_key_rule(res, req, sig)) if res.stage == "tfs-parse" else None
    family = None if special or res.accepted else family_finding(res, req, sig)
    if family is not None:
        roots.append(family)
    if res.stage == "container" and res.status == 415 and opts.misplaced_code:
        # field-notes §1: the 415 names the content type, but the cause is the artifact.
        roots.append(_f("KD231",
                        f"The 415 comes from the container's default path: your handler "
                        f"{opts.misplaced_code} is never loaded (code/ is not at the archive "
                        "root), so content types only your handler understands are refused.",
                        "Put code/ at the top level of model.tar.gz: tar -czf model.tar.gz 1 "
                        "code"))
    if family is not None:
        pass
    elif res.stage == "tfs-parse":
        if special:
            roots.append(special)
        else:
            for pattern, code, text, fix in TFS_RULES:
                if pattern.search(message):
                    roots.append(_f(code, text, fix))
                    break
    elif res.stage in ("signature", "model", None):
        roots += _shape_rules(res, sig)
    return roots
