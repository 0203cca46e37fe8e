"""Rules over a validation trace: name the root cause in plain words, and write the fix.

The stage findings say what each stage saw ("TF Serving: Type: String is not of expected type:
float"); the rules here say why it happened and what to send ("numbers sent as strings"), using
the payload itself, the container's rewrite and the signature. The corrected request is only
offered after it has itself been validated as accepted.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from kdiag.diagnosis.findings import Finding
from kdiag.model.signature import Signature, format_shape

if TYPE_CHECKING:
    from kdiag.diagnosis.validation import ValidateOptions, ValidationResult
    from kdiag.path.generations import Request

STAGE = {"3": "tfs-parse", "4": "signature", "2": "container", "1": "wire"}


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


def _wrapped_by_container(res: ValidationResult, req: Request) -> str | None:
    """How the njs dispatcher treated a bare body: 'list' ([[ ...), 'one' (wrapped), or None."""
    if res.tfs_request is None:
        return None
    body = req.body_bytes.decode("utf-8", "replace").lstrip()
    fwd = res.tfs_request
    if fwd == '{"instances":' + req.body_bytes.decode("utf-8", "replace") + "}" and body.startswith("[") \
            and body[1:].lstrip().startswith("["):
        return "list"
    if fwd.startswith('{"instances":[') and fwd != req.body_bytes.decode("utf-8", "replace"):
        return "one"
    return None


def _shape_rules(res: ValidationResult, req: Request, sig: Signature) -> list[Finding]:
    out = []
    wrapped = _wrapped_by_container(res, req)
    for name, t in res.tensors.items():
        spec = sig.inputs.get(name)
        if spec is None or spec.shape is None:
            continue
        got = tuple(t["shape"])
        exp = spec.shape
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


def _json_string_rule(res: ValidationResult, req: Request) -> Finding | None:
    """{"input_data": "[[1.0, 2.0]]"}: a whole array JSON-encoded into a string."""
    text = req.body_bytes.decode("utf-8", "replace")
    if re.search(r'"\s*:\s*"\s*\[', text) or re.search(r'^\s*"\s*[\[{]', text):
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
                  "Send the rows without a header (DataFrame.to_csv(header=False, index=False)).")
    return None


def _wrapper_key_rule(res: ValidationResult, req: Request, sig: Signature) -> Finding | None:
    """{"data": [...]} or {"input_data": ...}: a top-level key TF Serving does not know."""
    if res.tfs_request is None or not res.tfs_request.startswith('{"instances":[{'):
        return None
    text = req.body_bytes.decode("utf-8", "replace").lstrip()
    m = re.match(r'\{\s*"([^"]+)"\s*:', text)
    if m and m.group(1) not in sig.inputs:
        return _f("KD308",
                  f"The body's top-level key {m.group(1)!r} is neither \"instances\" nor "
                  "\"inputs\": the container wraps the whole object as one instance, whose key "
                  f"matches no input of the signature ({', '.join(sig.inputs)}).",
                  "Send {\"instances\": [...]} (row format) or {\"inputs\": ...} (columnar).")
    return None


def diagnose(res: ValidationResult, req: Request, signatures: list[Signature],
             opts: ValidateOptions, sig: Signature | None) -> None:
    """Add root-cause findings to `res` (a rejected payload). The verified fixed payload is
    kdiag.diagnosis.validation.propose_fix's: it validates the proposal, so it lives there."""
    if sig is None or res.accepted:
        return
    roots: list[Finding] = []
    message = res.error or ""
    if res.stage == "container" and res.status == 415 and opts.misplaced_code:
        # field-notes §1: the 415 names the content type, but the cause is the artifact.
        roots.append(_f("KD231",
                        f"The 415 comes from the container's default path: your handler "
                        f"{opts.misplaced_code} is never loaded (code/ is not at the archive "
                        "root), so content types only your handler understands are refused.",
                        "Put code/ at the top level of model.tar.gz: tar -czf model.tar.gz 1 "
                        "code"))
    if res.stage == "tfs-parse":
        special = _json_string_rule(res, req) or _csv_header_rule(req) or \
            _wrapper_key_rule(res, req, sig)
        if special:
            roots.append(special)
        else:
            for pattern, code, text, fix in TFS_RULES:
                if pattern.search(message):
                    roots.append(_f(code, text, fix))
                    break
    elif res.stage == "signature":
        roots += _shape_rules(res, req, sig)
    known = {f.code for f in res.findings}
    res.findings = [f for f in roots if f.code not in known] + res.findings
