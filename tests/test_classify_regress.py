"""kdiag.path.classify_regress: TF Serving's Classify/Regress REST handling (json_tensor.cc,
classifier.cc, regressor.cc), in validate (no model), and with the model through kdiag serve."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kdiag.model.signature import Signature, TensorSpec
from kdiag.path import tfserving
from kdiag.path.classify_regress import (
    ExamplesRequest,
    ResultError,
    classify_json,
    example_bytes,
    parse_examples_request,
    regress_json,
    signature_problem,
)
from kdiag.path.container import Request
from kdiag.path.generations import generation_for
from kdiag.path.request_path import RequestPath
from tests.conftest import MODELS

HALF_PLUS_THREE = MODELS / "tfs_models"


def error_of(body, method="regress", version="2.19") -> str:
    out = parse_examples_request(body, method, tfs_version=version)
    assert isinstance(out, tfserving.TfsParse) and out.status == 400
    return out.message


def test_examples_become_one_serialized_example_each_with_the_context_first():
    req = parse_examples_request('{"context": {"c": "a"}, "examples": [{"x": 1.0}, {"x": [2, 3]}]}',
                                 "classify")
    assert isinstance(req, ExamplesRequest) and req.signature_name == "serving_default"
    ctx = example_bytes({"c": ("bytes", [b"a"])})
    assert req.serialized == [ctx + example_bytes({"x": ("float", [1.0])}),
                              ctx + example_bytes({"x": ("int64", [2, 3])})]


@pytest.mark.parametrize(("body", "message"), [
    ('{"instances": [1.0]}', "JSON Value: {\n    \"instances\": [1.0]\n} When method is classify, "
                             "key 'examples' is expected and was not found"),
    ('{"examples": {}}', "Expecting 'examples' value to be an list/array"),
    ('{"examples": []}', "'examples' value is an empty array"),
    ('{"examples": [1]}', "Example must be JSON object but got JSON Number"),
    ('{"examples": [{"x": [1.0, "a"]}]}', "Unexpected element type in feature: x expecting type: "
                                          "float"),
    ('{"examples": [{"x": null}]}', "Feature: x has element with unexpected JSON type: Null"),
    ('{"examples": [{"x": [[1]]}]}', "Feature: x has element with unexpected JSON type: Array"),
    ('{"examples": [{"x": {"b64": "!!"}}]}', "Unable to base64 decode"),
    ('{"signature_name": 1, "examples": [{}]}', "'signature_name' key must be a string value."),
    ('{"examples": [{"x": 18446744073709551615}]}', "Feature: x has uint64_t element. Only "
                                                    "int64_t is supported."),
    ("", "JSON Parse error: The document is empty"),
])
def test_bad_bodies_get_tf_servings_texts(body, message):
    assert message in error_of(body)


def test_older_releases_word_the_uint64_error_and_format_errors_differently():
    assert error_of('{"examples": [{"x": 18446744073709551615}]}', version="2.7") == \
        "Feature: x has uint64 element. Only int64 is supported."
    assert "Expecting object with 'instances' or 'input' key" in error_of('{"examples": []}',
                                                                          version="1.11")


PREDICT = Signature("serving_default", "tensorflow/serving/predict",
                    {"x": TensorSpec("float32", (-1, 3), "x:0")},
                    {"y": TensorSpec("float32", (-1, 1), "y:0")})
REGRESS = Signature("r", "tensorflow/serving/regress",
                    {"inputs": TensorSpec("string", (-1,), "in:0")},
                    {"outputs": TensorSpec("float32", (-1, 1), "out:0")})


def test_a_predict_signature_through_regress_fails_as_tf_serving_does():
    text = signature_problem(PREDICT, "serving_default", "regress", tfs_version="2.19")
    assert text.startswith('No regression inputs found in SignatureDef: inputs {\n  key: "x"\n'
                           '  value {\n    name: "x:0"\n    dtype: DT_FLOAT\n    tensor_shape {\n'
                           "      dim {\n        size: -1\n      }\n")
    assert text.endswith('method_name: "tensorflow/serving/predict"\n')
    # before TF Serving 2.4 the method_name itself was checked first
    assert signature_problem(PREDICT, "serving_default", "classify", tfs_version="2.3") == (
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict")
    assert signature_problem(None, "nope", "classify") == "No signature was found with the name: nope"
    assert signature_problem(REGRESS, "r", "regress") is None
    assert "at least one of \"classes\" or \"scores\"" in signature_problem(REGRESS, "r", "classify")


def test_results_are_written_as_tf_serving_writes_them():
    assert regress_json({"outputs": np.array([[3.5], [4.0]], np.float32)}, 2) == \
        '{\n    "results": [3.5, 4.0]\n}'
    scores = np.array([[0.25, 0.75]], np.float32)
    classes = np.array([[b"a", b"b"]], dtype=object)
    assert json.loads(classify_json({"scores": scores, "classes": classes}, 1)) == {
        "results": [[["a", 0.25], ["b", 0.75]]]}
    with pytest.raises(ResultError, match="Input batch size did not match output batch size: 3"):
        regress_json({"outputs": np.zeros((2,), np.float32)}, 3)
    with pytest.raises(ResultError, match="Expected output Tensor of DT_FLOAT.  Got: DT_DOUBLE"):
        regress_json({"outputs": np.zeros((1,), np.float64)}, 1)


def test_validate_predicts_the_structure_without_the_model():
    from kdiag.model.artifact import read_model

    sigs = read_model(HALF_PLUS_THREE).signatures
    rp = RequestPath(sigs, generation_for("2.19"), model_name="half_plus_three")
    body = b'{"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}, {"x": 2.0}]}'
    inv = rp.invoke(Request(body, "application/json", None, "tfs-method=regress"))
    assert inv.status == 200 and json.loads(inv.body) == {"results": [0.0, 0.0]}
    inv = rp.invoke(Request(b'{"instances": [1.0]}', "application/json", None,
                            "tfs-method=regress"))
    assert inv.status == 400 and "key 'examples' is expected" in json.loads(inv.body)["error"]
    inv = rp.invoke(Request(b'{"examples": [{"x": 1.0}]}', "application/json", None,
                            "tfs-method=classify"))
    assert inv.status == 400 and any(f.code == "KD322" for f in inv.findings)


@pytest.mark.tf
def test_example_bytes_are_what_tensorflow_serializes():
    tf = pytest.importorskip("tensorflow")
    ex = tf.train.Example(features=tf.train.Features(feature={
        "f": tf.train.Feature(float_list=tf.train.FloatList(value=[1.5, -2.0])),
        "i": tf.train.Feature(int64_list=tf.train.Int64List(value=[-1, 2 ** 40])),
        "b": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x", b""]))}))
    mine = example_bytes({"f": ("float", [1.5, -2.0]), "i": ("int64", [-1, 2 ** 40]),
                          "b": ("bytes", [b"x", b""])})
    assert tf.train.Example.FromString(mine) == ex


@pytest.mark.tf
def test_tf_serving_routes_classify_and_regress_with_the_model():
    from tests.upstream_suites.conftest import Http, serve

    server, ep = serve(HALF_PLUS_THREE, "2.19")
    try:
        c = Http(server.host, server.port)
        body = '{"signature_name": "tensorflow/serving/classify", "examples": [{"x": 1.0}]}'
        status, doc = c.json("POST", "/v1/models/half_plus_three:classify", body)
        assert status == 200 and doc == {"results": [[["", 3.5]]]}
        status, doc = c.json("POST", "/v1/models/half_plus_three/versions/123:regress",
                             '{"signature_name": "tensorflow/serving/regress", '
                             '"context": {"x": 4.0}, "examples": [{}]}')
        assert status == 200 and doc == {"results": [5.0]}
        # the body is parsed before the servable is looked up: 400 beats 404
        assert c.json("POST", "/v1/models/nope:regress", "{}")[0] == 400
        status, doc = c.json("POST", "/v1/models/nope:regress", body)
        assert status == 404 and "Servable not found" in doc["error"]
    finally:
        server.stop()
        ep.close()


@pytest.mark.parametrize(("version", "status", "error"), [
    ("2.19", 400, "Malformed request: POST /v1/models/half_plus_three:foo"),  # forwarded by njs
    ("1.15", 400, None),
    ("2.20", 400, "invalid tfs-method"),  # the 2.20+ njs refuses it itself
])
def test_an_unknown_tfs_method_gets_tf_servings_malformed_request(version, status, error):
    from kdiag.model.artifact import read_model

    rp = RequestPath(read_model(HALF_PLUS_THREE).signatures, generation_for(version),
                     model_name="half_plus_three")
    inv = rp.invoke(Request(b'{"instances": [1.0]}', "application/json", None, "tfs-method=foo"))
    assert inv.status == status
    assert b"Malformed request: POST /v1/models/half_plus_three:foo" in inv.body or (
        error is not None and json.loads(inv.body)["error"] == error)


@pytest.mark.parametrize("version", ["1.11", "2.19"])
def test_integers_for_a_float_input_are_accepted_from_tf_serving_1_11_on(version):
    # json_tensor.cc at 1.11.0 tests IsNumber() (plus a lossless check) for DT_FLOAT; the
    # IsDouble() test that refused integers ("is not of expected type: float") is 1.10's.
    from kdiag.model.artifact import read_model

    sigs = read_model(HALF_PLUS_THREE).signatures
    parse = tfserving.parse_predict_request(b'{"instances": [1, 2]}', sigs, tfs_version=version)
    assert parse.ok and parse.tensors["x"].dtype == np.float32
