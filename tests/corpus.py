"""The project's corpus of request bodies, as JSON values, for tests that must hold for every
body a user may send: the README's examples, bodies the tests pin, one generated sample per
fixture signature, and the usual broken variants of each sample (issue 12).

Every entry is (label, model folder under fixtures/models, JSON value). The value, not a text:
tests render it themselves (compact, spaced, pretty, keys reordered).
"""

from __future__ import annotations

import json
from functools import cache

from kdiag.model.signature import Signature
from kdiag.model.target import load_signatures
from tests.conftest import MODELS, ROOT

# Every SavedModel fixture that has a signature kdiag can sample.
MODEL_DIRS = ("custom/export/1", "custom/tfsave/1", "two_inputs/1", "two_inputs_tfsave/1",
              "image/1", "multi_sig/1", "image_bytes/1", "example_parser/1", "tokens/1",
              "scalar/1", "versions/my_model/2", "normalized/1")

# Bodies from the tests and from real threads (field notes): wrong names, wrappers, nesting.
PINNED = [
    ("compact wrong name (issue 12)", "custom/export/1", {"instances": [{"x": [1.0]}]}),
    ("wrong name, right size", "custom/export/1", {"instances": [{"x": [1.0, 2, 3, 4, 5]}]}),
    ("notebook style", "custom/export/1", {"data": [[1, 2, 3, 4, 5]]}),
    ("input_data wrapper", "custom/export/1", {"input_data": [[1, 2, 3, 4, 5]]}),
    ("double encoded", "custom/export/1", {"input_data": "[[1.0, 2.0, 3.0, 4.0, 5.0]]"}),
    ("numbers as strings", "custom/export/1", {"instances": [["1.0", "2.0", "3.0", "4.0", "5.0"]]}),
    ("columnar", "custom/export/1", {"inputs": [[1, 2, 3, 4, 5]]}),
    ("columnar named", "two_inputs/1", {"inputs": {"features": [[1, 2, 3, 4, 5]], "ids": [[1]]}}),
    ("one input missing", "two_inputs/1", {"instances": [{"features": [1, 2, 3, 4, 5]}]}),
    ("ids as decimals", "two_inputs/1",
     {"instances": [{"features": [0.5, 1.5, 2.5, 3.5, 4.5], "ids": [7.0]}]}),
    ("bare object of columns", "two_inputs/1", {"features": [[1, 2, 3, 4, 5]], "ids": [[1]]}),
    ("keras 3 names to export()", "two_inputs/1",
     {"instances": [{"inputs": [1, 2, 3, 4, 5], "inputs_1": [1]}]}),
    ("signature_name", "multi_sig/1",
     {"signature_name": "logits", "instances": [[[[0.0]] * 28] * 28]}),
    ("unknown signature_name", "multi_sig/1",
     {"signature_name": "nope", "instances": [[[[0.0]] * 28] * 28]}),
    ("b64 missing", "image_bytes/1", {"instances": ["aGVsbG8gd29ybGQgdGhpcyBpcyBub3Q="]}),
    ("feature names to a tf.Example signature", "example_parser/1",
     {"instances": [{"age": 30, "income": 2.5}]}),
    ("(1, 1) to (?, 4)", "normalized/1", {"instances": [[1.0]]}),
    ("missing batch axis", "normalized/1", {"instances": [1, 2, 3, 4]}),
    ("wrong inner size", "normalized/1", {"instances": [[1, 2, 3]]}),
    ("scalar rows", "scalar/1", {"instances": [1.0, 2.0]}),
    ("scalar nested", "scalar/1", {"instances": [[1.0], [2.0]]}),
    ("tokens ragged", "tokens/1", {"instances": [[1, 2, 3], [1, 2]]}),
    ("empty instances", "custom/export/1", {"instances": []}),
    ("null", "custom/export/1", None),
    ("a number", "custom/export/1", 3),
]

# The examples/ bodies, each sent to the model it was written for and to one it was not.
EXAMPLE_MODELS = {"double_encoded.json": "custom/export/1", "five_features.json": "custom/export/1",
                  "ids_as_decimals.json": "two_inputs/1", "image_bare.json": "image/1",
                  "notebook_style.json": "custom/export/1",
                  "numbers_as_strings.json": "custom/export/1",
                  "wrong_width.json": "custom/export/1", "endpoint_response.json": "scalar/1",
                  "local_response.json": "scalar/1"}


@cache
def signatures(model: str) -> list[Signature]:
    return load_signatures(str(MODELS / model))


def _to_strings(v):
    if isinstance(v, list):
        return [_to_strings(x) for x in v]
    if isinstance(v, dict):
        return {k: _to_strings(x) for k, x in v.items()}
    return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def _to_floats(v):
    if isinstance(v, list):
        return [_to_floats(x) for x in v]
    if isinstance(v, dict):
        return {k: _to_floats(x) for k, x in v.items()}
    return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


def _first_inner(v):
    """One instance's value with its innermost axis cut to one element (wrong inner size)."""
    if isinstance(v, list) and v and isinstance(v[0], list):
        return [_first_inner(x) for x in v]
    return v[:1] if isinstance(v, list) else v


def broken_variants(body: dict, sig: Signature) -> list[tuple[str, object]]:
    """The mistakes users make with a body that works (field notes §3, issue 12 item 2)."""
    inst = body.get("instances")
    out: list[tuple[str, object]] = []
    if not isinstance(inst, list) or not inst:
        return out
    one = inst[0]
    out.append(("missing batch axis", {"instances": one}))
    out.append(("bare list", inst))
    out.append(("wrapper key", {"data": inst}))
    out.append(("strings for numbers", {"instances": _to_strings(inst)}))
    out.append(("floats for ints", {"instances": _to_floats(inst)}))
    out.append(("wrong inner size", {"instances": [_first_inner(x) for x in inst]}))
    if isinstance(one, dict):
        out.append(("wrong names", {"instances": [{f"{k}_": v for k, v in x.items()}
                                                  for x in inst]}))
        out.append(("bare object", one))
    else:
        out.append(("named wrongly", {"instances": [{"input": x} for x in inst]}))
    return out


@cache
def corpus() -> tuple[tuple[str, str, object], ...]:
    from kdiag.payloads.sample import SampleOptions, generate

    items: list[tuple[str, str, object]] = list(PINNED)
    for name, model in EXAMPLE_MODELS.items():
        value = json.loads((ROOT / "examples" / name).read_text())
        items.append((f"examples/{name}", model, value))
        items.append((f"examples/{name} (other model)", "normalized/1", value))
    for model in MODEL_DIRS:
        sig = signatures(model)[0]
        try:
            body = json.loads(generate(sig, SampleOptions(batch=2, seed=1)).body)
        except Exception:  # a signature the REST API cannot carry: nothing to generate
            continue
        items.append((f"sample {model}", model, body))
        items += [(f"{what} {model}", model, v) for what, v in broken_variants(body, sig)]
    return tuple(items)
