"""Root causes of the failure families people hit most, named in the user's words.

Each rule reads the request as the client wrote it (kdiag.payloads.recover.read_sent), the
signature and what the path did, and returns one finding or None. The fixed payload itself is
written by kdiag.payloads.recover and only offered after it passed the same path.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING, Any

from kdiag.diagnosis.findings import Finding
from kdiag.model.signature import Signature, TensorSpec, format_shape
from kdiag.path.signature_stage import IMAGE_MAGIC
from kdiag.payloads import recover as rc
from kdiag.payloads.remedies import (
    client_pixels_snippet,
    reexport_bytes_snippet,
    tokenizer_export_snippet,
)

if TYPE_CHECKING:
    from kdiag.diagnosis.validation import ValidationResult
    from kdiag.path.generations import Request

# Causes that no payload can fix: diagnose says so instead of offering one.
NO_PAYLOAD_CODES = frozenset({"KD355", "KD441"})


def _q(names: list[str]) -> str:
    quoted = [f"`{n}`" for n in names]
    if not quoted:
        return "no named values"
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _spec(spec: TensorSpec) -> str:
    return f"{spec.dtype} {format_shape(spec.shape)}"


def _leaves(v: Any, depth: int = 0):
    if depth > 64:
        return
    if isinstance(v, list):
        for x in v:
            yield from _leaves(x, depth + 1)
    elif isinstance(v, dict):
        if set(v) == {"b64"}:
            yield v
        else:
            for x in v.values():
                yield from _leaves(x, depth + 1)
    else:
        yield v


# -- image bytes sent to a pixel input ------------------------------------------------------

def _is_image(data: bytes) -> bool:
    return data.startswith(IMAGE_MAGIC)


def _b64_is_image(text: str) -> bool:
    head, _ = rc.standard_b64(text[:200])
    head = head[:64]
    try:
        return _is_image(base64.b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError):
        return False


def _image_evidence(req: Request, sent: rc.Sent | None) -> str | None:
    """How image bytes travel in this request, in words; None when they do not. The first value
    decides: a request carries one kind of data."""
    ct = (req.content_type or "").split(";")[0].strip().lower()
    if _is_image(req.body_bytes):
        return f"the image file's bytes as {ct or 'the body'}"
    first = next(_leaves(sent.data), None) if sent is not None else None
    if isinstance(first, dict) and _b64_is_image(str(first["b64"])):
        return "image bytes as {\"b64\": ...}"
    if isinstance(first, str):
        if re.match(r"data:image/", first, re.I):
            return "the image as a data: URL"
        if len(first) >= 16 and _b64_is_image(first):
            return "the image as base64 text"
    return None


def _pixel_input(sig: Signature) -> tuple[str, TensorSpec] | None:
    for name, spec in sig.inputs.items():
        if (spec.dtype.startswith("float") or spec.dtype == "uint8") and spec.shape is not None \
                and len(spec.shape) in (3, 4):
            return name, spec
    return None


def image_bytes_rule(res: ValidationResult, req: Request, sig: Signature,
                     sent: rc.Sent | None) -> Finding | None:
    pixel = _pixel_input(sig)
    if pixel is None or any(s.dtype == "string" for s in sig.inputs.values()):
        return None
    how = _image_evidence(req, sent)
    if how is None:
        return None
    name, spec = pixel
    return Finding(
        "KD441", "error", res.stage or "container",
        f"You sent {how}, and the model's input `{name}` takes {spec.dtype} pixels "
        f"{format_shape(spec.shape)}. The decoding and resizing that turned bytes into pixels "
        "lived in Python (a predict() override, a notebook helper or a Lambda outside the "
        "graph) and is not in the exported SavedModel: TF Serving hands the graph exactly the "
        "tensor the request spells out. That is why it works in the notebook and not on the "
        "endpoint. No payload of image bytes can work for this model as exported.",
        client_pixels_snippet(name, spec) + "\n" + reexport_bytes_snippet(name, spec))


# -- base64 in another alphabet ---------------------------------------------------------------

def b64_alphabet_rule(res: ValidationResult, req: Request, sig: Signature,
                      sent: rc.Sent | None) -> Finding | None:
    if "base64 decode" not in (res.error or "") or sent is None:
        return None
    what: list[str] = []
    for leaf in _leaves(sent.data):
        if isinstance(leaf, dict):
            what += rc.standard_b64(str(leaf["b64"]))[1]
    if not what:
        return None
    kinds = []
    if any("data:" in w for w in what):
        kinds.append("a data: URL prefix (data:image/...;base64,)")
    if any("url-safe" in w for w in what):
        kinds.append("the url-safe alphabet (- and _)")
    return Finding(
        "KD352", "error", "tfs-parse",
        "The {\"b64\": ...} values hold " + " and ".join(kinds) + ": TF Serving decodes only "
        "standard base64 (A-Z a-z 0-9 + /), so it answers \"Unable to base64 decode\".",
        "Send base64.b64encode(data).decode() (not urlsafe_b64encode, no data: prefix); the "
        "fixed payload below changes only the b64 strings.")


# -- tf.Example signatures ---------------------------------------------------------------------

def example_rule(res: ValidationResult, req: Request, sig: Signature,
                 sent: rc.Sent | None) -> Finding | None:
    if not sig.example_features or res.stage not in ("tfs-parse", "signature"):
        return None
    (name,) = sig.inputs
    feats = ", ".join(f"`{f.key}` ({f.dtype}"
                      + (f" {list(f.shape)}" if f.shape is not None else ", variable length")
                      + ")" for f in sig.example_features)
    return Finding(
        "KD353", "error", res.stage,
        f"This model takes serialized tf.Example protos in its one string input `{name}` and "
        f"parses the features {feats} inside the graph (a ParseExample op): the feature names "
        "are not input names, so plain JSON features get \"does not have named input\" or a "
        "type error. saved_model_cli --input_examples builds the Examples for you, which is "
        "why it works there.",
        "Send each instance as a serialized tf.train.Example in {\"b64\": ...}: "
        "{\"instances\": [{\"b64\": base64.b64encode(example.SerializeToString()).decode()}]}.")


# -- text sent to a token-id input: the model must change --------------------------------------

def text_to_ids_rule(res: ValidationResult, req: Request, sig: Signature,
                     sent: rc.Sent | None) -> Finding | None:
    if sent is None or res.stage != "tfs-parse" or "is not of expected type" not in (res.error or ""):
        return None
    ids = [(n, s) for n, s in sig.inputs.items() if s.dtype.startswith(("int", "uint"))]
    if len(ids) != 1:
        return None
    texts = [x for x in _leaves(sent.data) if isinstance(x, str)]
    if not texts or not any(re.search(r"[A-Za-z]{2,}", t) for t in texts):
        return None
    if any(re.match(r"data:", t) for t in texts):
        return None
    name, spec = ids[0]
    return Finding(
        "KD355", "error", "tfs-parse",
        f"You sent text (\"{texts[0][:40]}\") to `{name}`, which takes {_spec(spec)} token "
        "ids: the tokenizer (a TextVectorization layer or tokenizer applied in the notebook) is "
        "not in the exported graph. No payload can carry text to this model; only a client "
        "that reproduces the exact vocabulary and padding could send ids. The model must "
        "change: export it with the tokenizer inside the serving signature.",
        tokenizer_export_snippet(name, spec))


# -- unnamed values for several inputs ---------------------------------------------------------

def positional_rule(res: ValidationResult, req: Request, sig: Signature,
                    sent: rc.Sent | None) -> Finding | None:
    if sent is None or len(sig.inputs) < 2 or res.stage != "tfs-parse":
        return None
    data = sent.data
    if not isinstance(data, list) or (data and all(isinstance(v, dict) for v in data)):
        return None
    takes = ", ".join(f"`{n}` {_spec(s)}" for n, s in sig.inputs.items())
    readings = rc.positional(data, sig)
    head = (f"The model takes {len(sig.inputs)} named inputs ({takes}) and the body gives the "
            "values by position (a plain list, or rows holding all inputs side by side): TF "
            "Serving takes several inputs only by name.")
    if len(readings) == 1:
        order = ", ".join(f"`{n}`" for n in readings[0].columns)
        tail = (f" Matched by shape and dtype, the values are {order} in that order "
                "(the only fit).")
    elif readings:
        tail = (f" By shape and dtype the values fit the inputs in {len(readings)} ways, so "
                "kdiag cannot tell which is which: name them yourself.")
    else:
        tail = " The values fit the inputs in no order by shape and dtype."
    return Finding("KD351", "error", "tfs-parse", head + tail,
                   "Send one object per instance keyed by input name: {\"instances\": [{"
                   + ", ".join(f"\"{n}\": ..." for n in sig.inputs) + "}]}, or columnar "
                   "{\"inputs\": {" + ", ".join(f"\"{n}\": [...]" for n in sig.inputs) + "}}.")


# -- a bare object of batched columns ----------------------------------------------------------

def bare_columns_rule(res: ValidationResult, req: Request, sig: Signature,
                      sent: rc.Sent | None) -> Finding | None:
    if sent is None or sent.form != "bare" or res.stage != "signature":
        return None
    data = sent.data
    names = [n for n in sig.inputs if n in data]
    if len(names) != len(sig.inputs):
        return None
    if not all(rc.fits(data[n], sig.inputs[n], True) for n in names):
        return None
    shapes = ", ".join(f"`{n}` became {format_shape(tuple(res.tensors[n]['shape']))}"
                       for n in names if n in res.tensors)
    return Finding(
        "KD440", "error", "signature",
        "The body is an object of batched columns without \"inputs\": the container wraps any "
        "object that has neither \"instances\" nor \"inputs\" as ONE instance "
        "({\"instances\": [<body>]}), so every column gained a batch axis (" + shapes + ").",
        "Send the same object as columnar: {\"inputs\": <your object>}.")


# -- wrong input names -------------------------------------------------------------------------

_NAME_ERRORS = re.compile(r"does not have named input|Missing named input|keys must be equal")


def names_rule(res: ValidationResult, req: Request, sig: Signature,
               sent: rc.Sent | None) -> Finding | None:
    if sent is None or not _NAME_ERRORS.search(res.error or ""):
        return None
    check = rc.check_names(sent.data, sig)
    if check is None:
        return None
    parts = [f"the model takes {_q(list(sig.inputs))}", f"you sent {_q(check.sent)}"]
    if check.missing:
        parts.append(f"{_q(check.missing)} {'is' if len(check.missing) == 1 else 'are'} missing")
    text = "; ".join(parts) + "."
    text = text[0].upper() + text[1:]
    if check.keras_names:
        text += (" These are names Keras 3 wrote at export (tf.saved_model.save names inputs "
                 "`inputs`, `inputs_1`; model.export() names unnamed keras.Input()s "
                 "`keras_tensor_N` or `input_layer_N` and a subclassed model's input "
                 "`args_0`), not the names in your notebook.")
    if len(check.mappings) == 1:
        m = check.mappings[0]
        text += " By shape and dtype the mapping is " + ", ".join(
            f"`{k}` -> `{v}`" for k, v in m.items()) + "."
        left = [n for n in check.missing if n not in m.values()]
        if left:
            text += f" {_q(left)} still has no value."
    elif len(check.mappings) > 1:
        text += (f" By shape and dtype {_q(check.unexpected)} fit {_q(check.missing)} in "
                 f"{len(check.mappings)} ways: kdiag cannot tell which is which.")
    fix = ("Key each value by the signature's input names (kdiag inspect lists them), or "
           "export with named inputs: keras.Input(shape, name=\"...\").")
    masks = [n for n in check.missing if n in rc.mask_inputs(sig)]
    if masks:
        # Equal-length rows may be padded already: only the client knows where the padding is.
        only_masks = len(masks) == len(check.missing) and not check.unexpected
        fix = (f"Send {_q(masks)} with each instance: 1 where a value is real, 0 where it is "
               "padding, one entry per position. kdiag writes it only for ragged rows (there the "
               "padding is its own); for rows of equal length it cannot tell padding from "
               "values." + ("" if only_masks else " " + fix))
    return Finding("KD350", "error", res.stage or "tfs-parse", text, fix)


# -- ragged rows ---------------------------------------------------------------------------------

def _sent_columns(sent: rc.Sent, sig: Signature) -> dict[str, Any]:
    """The client's values per key, batch axis first (a plain list: the one input that is not
    a mask)."""
    data = sent.data
    if sent.form in ("instances", "list", "bare") and isinstance(data, list):
        if data and all(isinstance(v, dict) for v in data):
            return {k: [v.get(k) for v in data] for k in dict.fromkeys(k for v in data for k in v)}
        unmasked = [n for n in sig.inputs if n not in rc.mask_inputs(sig)]
        return {unmasked[0]: data} if len(unmasked) == 1 else {}
    return dict(data) if isinstance(data, dict) else {}


def _rows_text(by: dict[int, list[int]]) -> str:
    return "; ".join(f"row{'s' if len(rows) > 1 else ''} {', '.join(map(str, rows[:8]))}"
                     f"{' ...' if len(rows) > 8 else ''} "
                     f"{'have' if len(rows) > 1 else 'has'} {n} values"
                     for n, rows in sorted(by.items(), key=lambda kv: (-len(kv[1]), kv[1][0])))


def ragged_rule(res: ValidationResult, req: Request, sig: Signature,
                sent: rc.Sent | None) -> Finding | None:
    """Rows of different lengths. TF Serving names the first row that differs, or (before
    that) the mask input the client left out; the finding names every row by length and offers
    the choice: pad (with the mask when the model takes one) or one request per length."""
    if sent is None:
        return None
    columns = _sent_columns(sent, sig)
    masks = rc.mask_inputs(sig)
    missing = [n for n in sig.inputs if n not in columns]
    size_error = re.search(r"Expecting tensor size|Encountered list at unexpected size|"
                           r"Expecting shape", res.error or "")
    masks_left_out = bool(missing) and set(missing) <= set(masks) and set(columns) <= set(sig.inputs)
    if not (size_error or masks_left_out):
        return None
    details = []
    n_lengths = 0
    for name, col in columns.items():
        by = rc.ragged_lengths(col)
        if by:
            details.append(f"`{name}`: {_rows_text(by)}")
            n_lengths = max(n_lengths, len(by))
    if not details:
        return None
    text = "Ragged rows: " + " | ".join(details) + ". A tensor must be rectangular, so TF " \
        "Serving rejects the request"
    if masks_left_out:
        text += f"; and the mask input {_q(missing)} was not sent"
    widths = {n: s.shape[1] for n, s in sig.inputs.items() if s.shape and len(s.shape) >= 2}
    fixed = [f"`{n}` takes exactly {w}" for n, w in widths.items() if w != -1 and n in columns]
    pad = "pad every row to " + ("the model's length" if fixed else "the longest") + " with 0"
    if masks:
        pad += (f" and set {_q(masks)} to 1 on the real values and 0 on the padding, so the "
                "model ignores it (the fixed payload below does this)")
    else:
        pad += (" (the fixed payload below does this): the model has no mask input, so padding "
                "changes the numbers unless the model masks internally (e.g. "
                "Embedding(mask_zero=True)); the graph decides, and replay with the model shows it")
    if fixed:
        per_length = "one request per length does not work here, since " + ", ".join(fixed)
    elif n_lengths > rc.MAX_LENGTH_GROUPS:
        per_length = (f"send one request per row length ({n_lengths} lengths, too many to list: "
                      "group the rows by length in the client; each gives the notebook's numbers)")
    else:
        per_length = ("send one request per row length (listed below; each gives the notebook's "
                      "numbers)")
    return Finding("KD304", "error", "tfs-parse", text + ".", f"Choose: {pad}; or {per_length}.")


# ragged_rule before the name and position rules: rows without the mask input they need are
# ragged rows first (TF Serving names the missing mask before it sees the lengths).
RULES = (image_bytes_rule, b64_alphabet_rule, example_rule, text_to_ids_rule, ragged_rule,
         positional_rule, bare_columns_rule, names_rule)


def family_finding(res: ValidationResult, req: Request, sig: Signature) -> Finding | None:
    """The first family rule that recognises this failure, or None."""
    if res.accepted:
        return None
    sent = rc.read_sent(req.body_bytes, req.content_type)
    for rule in RULES:
        found = rule(res, req, sig, sent)
        if found is not None:
            return found
    return None
