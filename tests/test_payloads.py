"""kdiag.payloads: the canonical request builders and the seeded sample generator."""

from __future__ import annotations

import ast
import base64
import json
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kdiag.errors import KdiagError
from kdiag.model.signature import Signature
from kdiag.payloads.build import (
    as_signature_dtype,
    boto3_snippet,
    csv_allowed,
    csv_request,
    jsonlines_request,
    tfs_request,
)
from kdiag.payloads.sample import (
    Sample,
    SampleOptions,
    generate,
    normalise_content_type,
    parse_dim,
    parse_image_size,
    parse_range,
)
from tests.conftest import MODELS


def sig(inputs: dict, name: str = "serving_default", notes: tuple[str, ...] = ()) -> Signature:
    s = Signature.from_json({"signature_name": name, "inputs": {
        k: {"dtype": d, "shape": shape} for k, (d, shape) in inputs.items()}})
    return Signature(s.name, s.method_name, s.inputs, s.outputs, notes)


F5 = sig({"x": ("float32", [-1, 5])})
TWO = sig({"features": ("float32", [-1, 2]), "ids": ("int64", [-1, 1])})


# --------------------------------------------------------------------------- body parsing helpers

def leaf(v):
    """A JSON leaf as TF Serving stores it: strings as bytes, b64 objects decoded."""
    if isinstance(v, dict):
        assert set(v) == {"b64"}
        return base64.b64decode(v["b64"])
    return v.encode("utf-8") if isinstance(v, str) else v


def to_array(value) -> np.ndarray:
    """Nested JSON lists -> array, with the shape taken from the first elements (as TF Serving
    does) and a check that every leaf sits at that depth."""
    shape, v = [], value
    while isinstance(v, list):
        shape.append(len(v))
        v = v[0] if v else None
    flat: list = []

    def walk(x, depth):
        if isinstance(x, list):
            assert len(x) == shape[depth], "ragged"
            for y in x:
                walk(y, depth + 1)
        else:
            assert depth == len(shape), "leaf at the wrong level"
            flat.append(leaf(x))

    walk(value, 0)
    if any(isinstance(x, bytes) for x in flat):
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(shape)
    return np.array(flat).reshape(shape)


def instances_of(sample: Sample, signature: Signature) -> list[dict[str, np.ndarray]]:
    """Parse a generated body the way the container and TF Serving read it: a list of
    instances, each {input name: array of that instance}. Columnar bodies give one entry
    holding the whole tensors."""
    body = sample.body
    if sample.content_type == "text/csv":
        rows = [line.split(",") for line in body.strip().splitlines()]
        ((name, spec),) = signature.inputs.items()
        assert spec.shape is not None
        vals = [[json.loads(f) for f in r] for r in rows]
        return [{name: np.array(v if len(spec.shape) == 2 else v[0])} for v in vals]
    if sample.content_type == "application/json":
        doc = json.loads(body)  # Python's json accepts NaN and Infinity, like TF Serving
        if "inputs" in doc:
            value = doc["inputs"]
            if len(signature.inputs) == 1:
                value = {next(iter(signature.inputs)): value}
            return [{k: to_array(v) for k, v in value.items()}]
        items = doc["instances"]
    else:
        items = [json.loads(line) for line in body.splitlines() if line.strip()]
    if len(signature.inputs) == 1:
        name = next(iter(signature.inputs))
        return [{name: to_array(i)} for i in items]
    return [{k: to_array(v) for k, v in i.items()} for i in items]


def assert_body_matches_tensors(sample: Sample, signature: Signature) -> None:
    """The body carries exactly sample.tensors: instance count, per-instance shapes, values."""
    got = instances_of(sample, signature)
    if sample.columnar:
        (only,) = got
        for name, arr in sample.tensors.items():
            assert only[name].shape == arr.shape
        return
    n = {a.shape[0] for a in sample.tensors.values()}
    assert len(n) == 1
    assert len(got) == n.pop()
    for i, inst in enumerate(got):
        assert set(inst) == set(signature.inputs)
        for name, arr in sample.tensors.items():
            assert inst[name].shape == arr[i, ...].shape
            if arr.dtype != object:
                np.testing.assert_array_equal(inst[name].astype(arr.dtype), arr[i, ...])
            else:
                assert inst[name].ravel().tolist() == arr[i, ...].ravel().tolist()


# --------------------------------------------------------------------------- tfs_request

def test_single_input_row_format_is_one_bare_list_per_instance():
    x = np.array([[0.5, 1, 2, 3, 4], [5, 6, 7, 8, 9]], dtype=np.float32)
    assert tfs_request({"x": x}, F5) == (
        '{"instances":[[0.5,1.0,2.0,3.0,4.0],[5.0,6.0,7.0,8.0,9.0]]}')


def test_multi_input_row_format_is_one_object_per_instance_keyed_by_input_name():
    body = tfs_request({"features": [[0.25, 0.5], [1, 2]], "ids": [[3], [4]]}, TWO)
    assert body == ('{"instances":[{"features":[0.25,0.5],"ids":[3]},'
                    '{"features":[1.0,2.0],"ids":[4]}]}')


def test_columnar_single_input_is_the_bare_tensor_and_multi_input_an_object():
    assert tfs_request({"x": np.zeros((1, 5), np.float32)}, F5, columnar=True) == (
        '{"inputs":[[0.0,0.0,0.0,0.0,0.0]]}')
    assert tfs_request({"features": [[1, 2]], "ids": [[7]]}, TWO, columnar=True) == (
        '{"inputs":{"features":[[1.0,2.0]],"ids":[[7]]}}')


def test_columnar_takes_a_scalar_input_as_written():
    s = sig({"t": ("float32", [])})
    assert tfs_request({"t": np.float32(0.1)}, s, columnar=True) == '{"inputs":0.1}'


def test_signature_name_is_written_only_when_not_serving_default():
    x = {"x": np.ones((1, 5), np.float32)}
    assert "signature_name" not in tfs_request(x, F5)
    assert "signature_name" not in tfs_request(x, F5, signature_name="serving_default")
    assert tfs_request(x, F5, signature_name="logits").startswith(
        '{"signature_name":"logits","instances":')
    named = sig({"x": ("float32", [-1, 5])}, name="serve")
    assert tfs_request(x, named).startswith('{"signature_name":"serve","instances":')


def test_float32_values_are_written_in_their_shortest_float32_spelling():
    x = np.array([[0.1, 0.2, 1e-7, 3.4028235e38, 16777216]], dtype=np.float32)
    assert tfs_request({"x": x}, F5) == '{"instances":[[0.1,0.2,1e-7,3.4028235e+38,16777216.0]]}'


def test_float64_client_data_for_a_float32_input_is_rounded_as_tf_serving_would():
    body = tfs_request({"x": [[0.1, 1 / 3, 2.5, -0.0, 1e20]]}, F5)
    assert body == '{"instances":[[0.1,0.33333334,2.5,-0.0,1e+20]]}'


def test_float64_inputs_keep_float64_shortest_repr():
    s = sig({"x": ("float64", [-1])})
    assert tfs_request({"x": [0.1 + 0.2, 0.1]}, s) == '{"instances":[0.30000000000000004,0.1]}'


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.just(5)),
                  elements=st.floats(width=32, allow_nan=False, allow_infinity=False)))
def test_float32_values_round_trip_through_the_body_exactly(x):
    # TF Serving reads a double and casts it to float (rapidjson GetFloat), as numpy does here.
    back = np.array(json.loads(tfs_request({"x": x}, F5))["instances"], dtype=np.float64)
    np.testing.assert_array_equal(back.astype(np.float32), x)


def test_nan_and_infinities_are_bare_tokens_that_parse_back():
    x = np.array([[np.nan, np.inf, -np.inf, 1.5, np.nan]], dtype=np.float32)
    body = tfs_request({"x": x}, F5)
    assert body == '{"instances":[[NaN,Infinity,-Infinity,1.5,NaN]]}'
    back = np.array(json.loads(body)["instances"], dtype=np.float32)
    np.testing.assert_array_equal(back, x)


def test_a_scalar_nan_is_a_token_too():
    s = sig({"t": ("float64", [])})
    assert tfs_request({"t": np.nan}, s, columnar=True) == '{"inputs":NaN}'


def test_ints_are_written_as_integers_and_integral_floats_are_converted():
    s = sig({"ids": ("int32", [-1, 3])})
    assert tfs_request({"ids": [[1.0, 2.0, 3.0]]}, s) == '{"instances":[[1,2,3]]}'
    u = sig({"ids": ("uint64", [-1])})
    assert tfs_request({"ids": np.array([2**64 - 1], np.uint64)}, u) == (
        '{"instances":[18446744073709551615]}')


def test_a_fractional_value_for_an_int_input_is_refused_not_truncated():
    s = sig({"ids": ("int32", [-1])})
    with pytest.raises(KdiagError, match="1.5.*whole number.*JSON integers"):
        tfs_request({"ids": [1.0, 1.5]}, s)


def test_a_value_outside_the_int_dtype_is_refused():
    s = sig({"px": ("uint8", [-1])})
    with pytest.raises(KdiagError, match="300.*uint8"):
        tfs_request({"px": [1, 300]}, s)


def test_bools_are_true_and_false():
    s = sig({"mask": ("bool", [-1, 2])})
    assert tfs_request({"mask": [[True, False]]}, s) == '{"instances":[[true,false]]}'
    assert tfs_request({"mask": [[1, 0]]}, s) == '{"instances":[[true,false]]}'
    with pytest.raises(KdiagError, match="true/false"):
        tfs_request({"mask": [[2, 0]]}, s)


def test_utf8_strings_are_json_strings():
    s = sig({"text": ("string", [-1])})
    assert tfs_request({"text": ["héllo", b"w\"x"]}, s) == '{"instances":["héllo","w\\"x"]}'


def test_bytes_that_are_not_utf8_make_the_whole_input_b64():
    s = sig({"blob": ("string", [-1])})
    body = tfs_request({"blob": [b"\xff\x00", b"ok"]}, s)
    assert body == '{"instances":[{"b64":"/wA="},{"b64":"b2s="}]}'


def test_inputs_named_bytes_and_forced_b64_inputs_are_b64():
    s = sig({"image_bytes": ("string", [-1]), "tag": ("string", [-1]), "raw": ("string", [-1])})
    body = tfs_request({"image_bytes": ["a"], "tag": ["b"], "raw": ["c"]}, s, b64={"raw"})
    assert body == ('{"instances":[{"image_bytes":{"b64":"YQ=="},"tag":"b",'
                    '"raw":{"b64":"Yw=="}}]}')
    assert tfs_request({"image_bytes": ["a"], "tag": ["b"], "raw": ["c"]}, s, b64=True) == (
        '{"instances":[{"image_bytes":{"b64":"YQ=="},"tag":{"b64":"Yg=="},'
        '"raw":{"b64":"Yw=="}}]}')


def test_trailing_nul_bytes_survive_in_b64():
    s = sig({"blob": ("string", [-1])})
    body = tfs_request({"blob": [b"\x89\x00\x00"]}, s)
    assert base64.b64decode(json.loads(body)["instances"][0]["b64"]) == b"\x89\x00\x00"


def test_row_format_refuses_a_scalar_input_and_points_to_columnar():
    s = sig({"t": ("float32", [])})
    with pytest.raises(KdiagError, match="columnar"):
        tfs_request({"t": 1.0}, s)


def test_row_format_refuses_inputs_with_different_axis0_sizes():
    with pytest.raises(KdiagError, match="same axis-0 size.*features: 2, ids: 1"):
        tfs_request({"features": [[1, 2], [3, 4]], "ids": [[1]]}, TWO)


def test_an_empty_batch_is_refused_with_tf_serving_words():
    with pytest.raises(KdiagError, match="No values in 'instances' array"):
        tfs_request({"x": np.zeros((0, 5), np.float32)}, F5)


def test_tensor_names_must_match_the_signature_inputs():
    with pytest.raises(KdiagError, match="takes the inputs features, ids.*given are features, id"):
        tfs_request({"features": [[1, 2]], "id": [[1]]}, TWO)


def test_text_for_a_numeric_input_is_refused():
    with pytest.raises(KdiagError, match="text"):
        as_signature_dtype("x", np.array(["1"]), F5.inputs["x"])


# --------------------------------------------------------------------------- JSON lines and CSV

def test_jsonlines_single_input_is_one_json_value_per_line():
    x = np.array([[1, 2, 3, 4, 5], [6, 7, 8, 9, 0.5]], dtype=np.float32)
    assert jsonlines_request({"x": x}, F5) == "[1.0,2.0,3.0,4.0,5.0]\n[6.0,7.0,8.0,9.0,0.5]\n"


def test_jsonlines_multi_input_is_one_object_per_line():
    body = jsonlines_request({"features": [[1, 2], [3, 4]], "ids": [[5], [6]]}, TWO)
    assert body == '{"features":[1.0,2.0],"ids":[5]}\n{"features":[3.0,4.0],"ids":[6]}\n'


def test_jsonlines_cannot_name_a_signature():
    s = sig({"x": ("float32", [-1, 5])}, name="logits")
    with pytest.raises(KdiagError, match="serving_default"):
        jsonlines_request({"x": np.zeros((1, 5))}, s)


def test_csv_is_one_row_per_instance_without_header():
    x = np.array([[0.1, 2, -3, 1e-7, 5], [6, 7, 8, 9, 10]], dtype=np.float32)
    assert csv_request({"x": x}, F5) == "0.1,2.0,-3.0,1e-7,5.0\n6.0,7.0,8.0,9.0,10.0\n"


def test_csv_scalar_instances_are_one_value_per_line():
    s = sig({"n": ("int64", [-1])})
    assert csv_request({"n": [3, -4, 5]}, s) == "3\n-4\n5\n"


def test_csv_numbers_match_the_strict_json_number_grammar_of_the_newer_converter():
    # tensorflowServing.js (TF 2.20+ images): only fields matching this stay numbers.
    import re
    number = re.compile(r"^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$")
    x = np.array([[1e-30, -2.5e12, 3.4028235e38, 0.0, -0.0]], dtype=np.float32)
    fields = csv_request({"x": x}, F5).strip().split(",")
    assert all(number.match(f) for f in fields), fields


def test_csv_refuses_nan():
    with pytest.raises(KdiagError, match="NaN"):
        csv_request({"x": np.full((1, 5), np.nan, np.float32)}, F5)


@pytest.mark.parametrize("inputs, allowed, why", [
    ({"x": ("float32", [-1, 5])}, True, ""),
    ({"x": ("int32", [-1])}, True, ""),
    ({"x": ("float64", [1, 3])}, True, ""),
    ({"x": ("float32", [-1, 1])}, False, "one-column CSV line becomes a scalar"),
    ({"x": ("float32", [-1, -1])}, False, "unknown"),
    ({"x": ("float32", [-1, 28, 28])}, False, "nested lists"),
    ({"x": ("float32", [])}, False, "scalar"),
    ({"x": ("float32", None)}, False, "unknown rank"),
    ({"x": ("string", [-1])}, False, "string"),
    ({"x": ("bool", [-1, 3])}, False, "bool"),
    ({"a": ("float32", [-1, 2]), "b": ("float32", [-1, 2])}, False, "2 inputs"),
])
def test_csv_allowed_only_for_a_single_numeric_input_with_flat_known_rows(inputs, allowed, why):
    ok, reason = csv_allowed(sig(inputs))
    assert ok is allowed
    assert why in reason


def test_boto3_snippet_is_runnable_python_that_sends_the_exact_body():
    body = '{"instances":[[1.0,2.0]]}\n'
    code = boto3_snippet("my-endpoint", body, "application/json")
    tree = ast.parse(code)
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, "attr", "") == "invoke_endpoint")
    kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    assert kwargs == {"EndpointName": "my-endpoint", "ContentType": "application/json",
                      "Accept": "application/json", "Body": body}
    assert 'boto3.client("sagemaker-runtime")' in code
    assert 'json.loads(response["Body"].read())' in code


# --------------------------------------------------------------------------- option parsing

def test_parse_range_and_dim():
    assert parse_range("x:0,255") == ("x", (0, 255))
    assert parse_range("x:-1.5,1e3") == ("x", (-1.5, 1000.0))
    assert parse_range("0,1") == ("", (0, 1))
    assert parse_range("serving_default_x:0:0,1") == ("serving_default_x:0", (0, 1))
    assert parse_dim("image:1=224") == ("image", 1, 224)
    assert parse_dim("image:-1=3") == ("image", -1, 3)
    assert parse_image_size("224x200") == (224, 200)


@pytest.mark.parametrize("spec", ["x", "x:1", "x:a,b", "x:1,0", "x:1,1", "x:0,inf", "x:1,2,3"])
def test_bad_range_specs_say_how_to_write_one(spec):
    with pytest.raises(KdiagError, match="--range"):
        parse_range(spec)


@pytest.mark.parametrize("spec", ["x", "x:1", "x:a=1", ":1=2", "x:1=0", "x:1=b"])
def test_bad_dim_specs_say_how_to_write_one(spec):
    with pytest.raises(KdiagError, match="--dim"):
        parse_dim(spec)


def test_content_type_shorthands_and_refusals():
    assert normalise_content_type("json") == "application/json"
    assert normalise_content_type("JSONLINES") == "application/jsonlines"
    assert normalise_content_type("text/csv") == "text/csv"
    assert normalise_content_type("application/jsons") == "application/jsons"
    with pytest.raises(KdiagError, match="415.*'application/json' without parameters"):
        normalise_content_type("application/json; charset=utf-8")
    with pytest.raises(KdiagError, match="415"):
        normalise_content_type("application/x-npy")


# --------------------------------------------------------------------------- generator

def test_same_seed_same_body_and_another_seed_another_body():
    a = generate(F5, SampleOptions(batch=3, seed=4))
    b = generate(F5, SampleOptions(batch=3, seed=4))
    c = generate(F5, SampleOptions(batch=3, seed=5))
    assert a.body == b.body
    assert a.body != c.body


def test_each_input_draws_from_its_own_stream():
    a = generate(TWO, SampleOptions(batch=2))
    b = generate(TWO, SampleOptions(batch=2, ranges={"ids": (100, 200)}))
    np.testing.assert_array_equal(a.tensors["features"], b.tensors["features"])
    assert (b.tensors["ids"] >= 100).all()


def test_default_ranges_are_unit_floats_and_small_ints():
    s = generate(TWO, SampleOptions(batch=200))
    f, i = s.tensors["features"], s.tensors["ids"]
    assert f.dtype == np.float32 and i.dtype == np.int64
    assert (f >= 0).all() and (f <= 1).all()
    assert (i >= 0).all() and (i < 10).all() and len(np.unique(i)) == 10


def test_ranges_are_half_open_and_a_nameless_range_applies_to_every_numeric_input():
    s = generate(TWO, SampleOptions(batch=300, ranges={"": (-3, 3), "ids": (5, 7)}))
    assert (s.tensors["features"] >= -3).all() and (s.tensors["features"] < 3).all()
    assert set(np.unique(s.tensors["ids"])) == {5, 6}


@pytest.mark.parametrize("ranges, match", [
    ({"nope": (0, 1)}, "does not have.*features, ids"),
    ({"ids": (0.5, 3)}, "whole numbers"),
    ({"ids": (0, 2**70)}, "does not fit int64"),
])
def test_bad_ranges_are_refused(ranges, match):
    with pytest.raises(KdiagError, match=match):
        generate(TWO, SampleOptions(ranges=ranges))


def test_a_range_on_a_string_input_is_refused():
    with pytest.raises(KdiagError, match="numeric inputs only"):
        generate(sig({"t": ("string", [-1])}), SampleOptions(ranges={"t": (0, 1)}))


def test_batch_sets_the_instance_count():
    s = generate(F5, SampleOptions(batch=4))
    assert s.tensors["x"].shape == (4, 5)
    assert len(json.loads(s.body)["instances"]) == 4


def test_a_fixed_axis0_overrides_batch_with_a_note():
    s = generate(sig({"x": ("float32", [32, 5])}), SampleOptions(batch=2))
    assert s.tensors["x"].shape == (32, 5)
    assert any("not --batch 2" in n and "fixed at 32" in n for n in s.notes)


def test_unknown_inner_dims_default_to_one_with_a_note_and_dims_set_them():
    s3 = sig({"img": ("float32", [-1, -1, -1, 3])})
    d = generate(s3, SampleOptions())
    assert d.tensors["img"].shape == (1, 1, 1, 3)
    assert any("--dim img:1=SIZE" in n for n in d.notes)
    g = generate(s3, SampleOptions(batch=2, dims={"img": {1: 4, -2: 6}}))
    assert g.tensors["img"].shape == (2, 4, 6, 3)
    assert not g.notes


def test_a_dim_that_contradicts_the_signature_is_refused():
    with pytest.raises(KdiagError, match="fixed at 5"):
        generate(F5, SampleOptions(dims={"x": {1: 6}}))
    with pytest.raises(KdiagError, match="axis must be 0 to 1"):
        generate(F5, SampleOptions(dims={"x": {2: 6}}))
    with pytest.raises(KdiagError, match="does not have"):
        generate(F5, SampleOptions(dims={"y": {1: 6}}))


def test_unknown_rank_asks_for_dims_and_uses_them():
    s = sig({"x": ("float32", None)})
    with pytest.raises(KdiagError, match="unknown rank.*--dim x:1="):
        generate(s, SampleOptions())
    with pytest.raises(KdiagError, match="Missing: axis 1"):
        generate(s, SampleOptions(dims={"x": {2: 3}}))
    g = generate(s, SampleOptions(batch=2, dims={"x": {1: 4, 2: 3}}))
    assert g.tensors["x"].shape == (2, 4, 3)


def test_a_scalar_input_is_sent_columnar_with_a_note():
    s = generate(sig({"t": ("float32", [])}), SampleOptions())
    assert s.columnar and s.body.startswith('{"inputs":')
    assert any("columnar" in n and "scalar" in n for n in s.notes)


def test_inputs_with_different_fixed_axis0_are_sent_columnar():
    s = sig({"a": ("float32", [2, 3]), "b": ("float32", [4])})
    g = generate(s, SampleOptions())
    assert g.columnar
    assert {k: np.array(v).shape for k, v in json.loads(g.body)["inputs"].items()} == {
        "a": (2, 3), "b": (4,)}


def test_columnar_option_sends_inputs_with_the_batch_on_axis0():
    g = generate(TWO, SampleOptions(batch=3, columnar=True))
    doc = json.loads(g.body)
    assert np.array(doc["inputs"]["features"]).shape == (3, 2)
    assert np.array(doc["inputs"]["ids"]).shape == (3, 1)


def test_columnar_is_json_only():
    with pytest.raises(KdiagError, match="application/json only"):
        generate(F5, SampleOptions(columnar=True, content_type="csv"))


def test_bool_and_string_inputs_get_random_bools_and_words():
    s = sig({"flag": ("bool", [-1]), "word": ("string", [-1, 2])})
    g = generate(s, SampleOptions(batch=50))
    assert g.tensors["flag"].dtype == bool and 0 < g.tensors["flag"].sum() < 50
    words = g.tensors["word"]
    assert words.shape == (50, 2) and all(isinstance(w, bytes) and w.isalpha() for w in words.flat)
    assert '"word":["' in g.body


def png_info(data: bytes) -> tuple[int, int, bytes]:
    """Check a PNG's structure and CRCs; return (height, width, decompressed IDAT)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks.append((kind, body))
        pos += 12 + length
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    w, h, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (depth, colour) == (8, 2)
    return h, w, zlib.decompress(chunks[1][1])


def test_image_inputs_get_valid_png_files_as_b64():
    s = sig({"image_bytes": ("string", [-1])})
    g = generate(s, SampleOptions(batch=2, image_size=(5, 7)))
    items = json.loads(g.body)["instances"]
    assert len(items) == 2 and all(set(i) == {"b64"} for i in items)
    for item in items:
        h, w, raw = png_info(base64.b64decode(item["b64"]))
        assert (h, w) == (5, 7) and len(raw) == 5 * (1 + 7 * 3)
    assert any("PNG" in n for n in g.notes)


def test_a_graph_that_decodes_images_makes_its_string_input_an_image():
    s = sig({"data": ("string", [-1])}, notes=("decodes images in the graph (DecodeJpeg)",))
    g = generate(s, SampleOptions())
    png_info(base64.b64decode(json.loads(g.body)["instances"][0]["b64"]))


def test_a_tf_example_signature_gets_a_note():
    s = sig({"examples": ("string", [-1])},
            notes=("parses tf.Example protos in the graph (ParseExampleV2)",))
    assert any("tf.train.Example" in n for n in generate(s, SampleOptions()).notes)


def test_a_dtype_the_rest_api_cannot_fill_is_refused_with_tf_servings_words():
    with pytest.raises(KdiagError, match="to type: half"):
        generate(sig({"x": ("float16", [-1, 2])}), SampleOptions())


def test_csv_for_a_signature_it_cannot_carry_says_why_and_what_to_use():
    with pytest.raises(KdiagError, match="text/csv cannot carry.*2 inputs.*--content-type json"):
        generate(TWO, SampleOptions(content_type="csv"))
    with pytest.raises(KdiagError, match=r"\(N,\) instead of \(N, 1\)"):
        generate(sig({"x": ("float32", [-1, 1])}), SampleOptions(content_type="csv"))


def test_jsonlines_of_bare_scalars_is_refused_because_the_container_would_not_merge_them():
    with pytest.raises(KdiagError, match="bare values.*--content-type json"):
        generate(sig({"x": ("float32", [-1])}), SampleOptions(batch=3, content_type="jsonlines"))


def test_one_line_of_nested_lists_is_refused_because_the_container_takes_it_as_the_list():
    # One line [[a,b],[c,d]] has no "]" directly followed by "[", so it is not JSON lines to
    # the container; starting with [[ it becomes the instances list: 2 instances of (2,).
    s = sig({"img": ("float32", [-1, 2, 2])})
    with pytest.raises(KdiagError, match=r"starting with \[\[.*--batch 2"):
        generate(s, SampleOptions(content_type="jsonlines"))
    assert generate(s, SampleOptions(batch=2, content_type="jsonlines")).body.count("\n") == 2


def test_jsonlines_with_an_input_named_inputs_is_refused():
    s = sig({"inputs": ("float32", [-1, 2]), "b": ("float32", [-1, 2])})
    with pytest.raises(KdiagError, match="forwards the body unchanged"):
        generate(s, SampleOptions(batch=2, content_type="jsonlines"))


def test_a_body_over_the_invoke_limit_gets_a_note():
    g = generate(sig({"x": ("float64", [-1, 400_000])}), SampleOptions())
    assert len(g.body) > 6 * 1024 * 1024
    assert any("6 MiB" in n for n in g.notes)


CASES = {
    "single": sig({"x": ("float32", [-1, 5])}),
    "scalar_instances": sig({"x": ("int32", [-1])}),
    "image_tensor": sig({"image": ("float32", [-1, 4, 4, 3])}),
    "multi": sig({"features": ("float32", [-1, 2]), "ids": ("int64", [-1, 1]),
                  "flag": ("bool", [-1]), "word": ("string", [-1, 3])}),
    "image_bytes": sig({"image_bytes": ("string", [-1])}),
    "uint8_pixels": sig({"px": ("uint8", [-1, 3, 3])}),
    "fixed_batch": sig({"x": ("float32", [1, 3])}),
    "named": sig({"x": ("float64", [-1, 2])}, name="logits"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("content_type, batch, columnar", [
    ("application/json", 1, False), ("application/json", 3, False),
    ("application/json", 2, True), ("application/jsonlines", 3, False),
    ("text/csv", 3, False),
])
def test_every_generated_body_parses_and_carries_its_tensors(case, content_type, batch, columnar):
    signature = CASES[case]
    opts = SampleOptions(batch=batch, content_type=content_type, columnar=columnar,
                         image_size=(3, 3))
    try:
        sample = generate(signature, opts)
    except KdiagError as e:
        # Refusals are fine, but only the documented ones.
        assert content_type != "application/json", e
        return
    assert sample.content_type == content_type
    assert_body_matches_tensors(sample, signature)


@pytest.mark.tf
@pytest.mark.parametrize("model", ["image_bytes/1", "tokens/1", "scalar/1", "two_inputs/1",
                                   "image/1", "custom/export/1"])
def test_generated_bodies_run_through_the_real_model(model):
    tf = pytest.importorskip("tensorflow")
    from kdiag.model.target import load_signature

    signature = load_signature(str(MODELS / model))
    sample = generate(signature, SampleOptions(batch=2))
    parsed = instances_of(sample, signature)
    feeds = {}
    for name, spec in signature.inputs.items():
        value = parsed[0][name] if sample.columnar else np.stack([i[name] for i in parsed])
        if spec.dtype == "string":
            value = value.tolist()
        feeds[name] = tf.constant(value, dtype=tf.as_dtype(spec.dtype))
    fn = tf.saved_model.load(str(MODELS / model)).signatures[signature.name]
    outputs = fn(**feeds)
    assert all(v.shape[0] == 2 for v in outputs.values())
