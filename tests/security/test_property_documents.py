"""Property-based: JSON documents of random shape and nesting (up to thousands of levels, past
the json module's stack) at the readers test_property_readers.py does not reach: signature
files (--signature sig.json), .keras config.json/metadata.json, .h5 model_config, output files
(kdiag diff) and a capture record's endpointOutput. Each gives a value or one KdiagError, never
a RecursionError or another traceback."""

from __future__ import annotations

import contextlib
import json
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdiag.errors import KdiagError
from kdiag.model.keras_file import read_h5, read_keras
from kdiag.model.target import load_signatures
from kdiag.replays.outputs import load_output_set

leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
nested = st.recursive(leaves, lambda c: st.lists(c, max_size=3)
                      | st.dictionaries(st.sampled_from(["signatures", "inputs", "outputs",
                                                         "predictions", "config", "layers",
                                                         "dtype", "shape", "class_name"]),
                                        c, max_size=3), max_leaves=20)
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


def _deep(value, depth: int, wrap: str) -> str:
    """`value` inside `depth` lists, or objects {"config": ...}, or both alternating."""
    inner = json.dumps(value, allow_nan=True)
    opens = {"list": "[", "dict": '{"config": '}
    kinds = [wrap] * depth if wrap != "mixed" else ["list" if i % 2 else "dict"
                                                    for i in range(depth)]
    return ("".join(opens[k] for k in kinds) + inner
            + "".join("]" if k == "list" else "}" for k in reversed(kinds)))


DOC = st.tuples(nested, st.sampled_from([0, 1, 50, 900, 995, 1500, 5000]),
                st.sampled_from(["list", "dict", "mixed"])).map(lambda t: _deep(*t))


@SETTINGS
@given(DOC, st.sampled_from(["whole", "signatures", "inputs"]))
def test_signature_files_of_any_shape_and_depth(tmp_path, doc, where):
    text = {"whole": doc, "signatures": '{"signatures": ' + doc + "}",
            "inputs": '{"signature_name": "s", "inputs": ' + doc + ', "outputs": {}}'}[where]
    p = tmp_path / "sig.json"
    p.write_text(text)
    with contextlib.suppress(KdiagError):
        assert isinstance(load_signatures(str(p)), list)


@SETTINGS
@given(DOC, st.sampled_from(["config", "metadata", "model_config"]))
def test_keras_configs_of_any_shape_and_depth(tmp_path, doc, member):
    p = tmp_path / "m.keras"
    with zipfile.ZipFile(p, "w") as zf:
        cfg = '{"class_name": "Functional", "config": ' + doc + "}"
        zf.writestr("config.json", cfg if member != "metadata" else '{"class_name": "X"}')
        zf.writestr("metadata.json", doc if member == "metadata" else '{"keras_version": "3"}')
    with contextlib.suppress(KdiagError):
        read_keras(p)
    with contextlib.suppress(KdiagError):
        read_keras(_write(tmp_path / "raw.keras", doc))


def _write(p, doc: str):
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("config.json", doc)
    return p


@SETTINGS
@given(DOC)
def test_h5_model_configs_of_any_shape_and_depth(tmp_path, doc):
    h5py = pytest.importorskip("h5py")
    p = tmp_path / "m.h5"
    with h5py.File(p, "w") as f:
        f.attrs["model_config"] = doc
    with contextlib.suppress(KdiagError):
        read_h5(p)


@SETTINGS
@given(DOC, st.booleans())
def test_output_files_and_capture_outputs_of_any_shape_and_depth(tmp_path, doc, nan):
    # a bare NaN makes the reader fall back from orjson to the json module, which recurses
    tail = ', "x": NaN' if nan else ""
    response = tmp_path / "r.json"
    response.write_text('{"predictions": ' + doc + tail + "}")
    with contextlib.suppress(KdiagError):
        load_output_set(str(response))
    lines = tmp_path / "r.jsonl"
    lines.write_text('{"id": "a", "outputs": ' + doc + tail + "}\n")
    with contextlib.suppress(KdiagError):
        load_output_set(str(lines))
    cap = tmp_path / "cap.jsonl"
    cap.write_text(json.dumps({"captureData": {
        "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                          "data": '{"instances": [1]}', "encoding": "JSON"},
        "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                           "data": '{"predictions": ' + doc + tail + "}", "encoding": "JSON"}},
        "eventMetadata": {"eventId": "e1"}, "eventVersion": "0"}) + "\n")
    with contextlib.suppress(KdiagError):
        load_output_set(str(cap))
