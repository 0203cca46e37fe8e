"""validate(): the request path without the model, the diagnosis rules and their fixes.

Expected texts come from TF Serving's json_tensor.cc (via kdiag.path.tfserving, which cites the
lines) and from the SageMaker container's tensorflowServing.js; here they are pinned end to end.
"""

from __future__ import annotations

import json

import pytest

from kdiag.diagnosis.validation import ValidateOptions, validate
from kdiag.model.signature import Signature, TensorSpec
from kdiag.model.target import load_signatures
from kdiag.path.container import Request
from tests.conftest import MODELS

CUSTOM = load_signatures(str(MODELS / "custom/export/1"))
TWO = load_signatures(str(MODELS / "two_inputs/1"))
IMAGE = load_signatures(str(MODELS / "image/1"))
TOKENS = load_signatures(str(MODELS / "tokens/1"))
BYTES = load_signatures(str(MODELS / "image_bytes/1"))


def run(body, sigs=CUSTOM, ct="application/json", **kw):
    attrs = kw.pop("custom_attributes", None)
    accept = kw.pop("accept", None)
    req = Request(body.encode() if isinstance(body, str) else body, ct, accept, attrs)
    return validate(req, sigs, ValidateOptions(**kw))


def codes(res):
    return [f.code for f in res.findings]


def fix_is_accepted(res, sigs):
    assert res.fixed_payload is not None, codes(res)
    again = run(res.fixed_payload["body"], sigs, res.fixed_payload["content_type"])
    assert again.accepted, again.findings
    return json.loads(res.fixed_payload["body"])


def test_bare_list_is_wrapped_as_one_instance_and_accepted():
    res = run("[1,2,3,4,5]")
    assert res.accepted and res.status == 200 and res.stage is None
    assert res.tfs_request == '{"instances":[[1,2,3,4,5]]}'
    assert res.tensors == {"args_0": {"dtype": "float32", "shape": [1, 5]}}
    assert res.tfs_target == {"model": "model", "version": None, "method": "predict"}
    assert res.fixed_payload is None


def test_tfs_request_passes_through_unchanged():
    body = '{"instances": [[1,2,3,4,5],[6,7,8,9,10]]}'
    res = run(body)
    assert res.accepted and res.tfs_request == body
    assert res.tensors["args_0"]["shape"] == [2, 5]


def test_numbers_sent_as_strings_are_named_and_fixed():
    res = run('{"instances": [["1","2","3","4","5"]]}')
    assert not res.accepted and res.status == 400 and res.stage == "tfs-parse"
    assert codes(res)[0] == "KD301"
    # json_tensor.cc: "JSON Value: ... Type: String is not of expected type: float"
    assert 'Type: String is not of expected type: float' in res.error
    assert fix_is_accepted(res, CUSTOM) == {"instances": [[1.0, 2.0, 3.0, 4.0, 5.0]]}


def test_array_serialised_as_a_json_string_is_named_and_fixed():
    res = run('{"input_data": "[[1.0, 2.0, 3.0, 4.0, 5.0]]"}')
    assert not res.accepted and codes(res)[0] == "KD302"
    assert fix_is_accepted(res, CUSTOM)["instances"] == [[1.0, 2.0, 3.0, 4.0, 5.0]]


def test_unknown_top_level_key_is_named_and_fixed():
    res = run('{"data": [[1, 2, 3, 4, 5]]}')
    assert not res.accepted and codes(res)[0] == "KD308"
    assert "does not have named input: data" in res.error
    fix_is_accepted(res, CUSTOM)


def test_missing_batch_axis_is_named_and_fixed():
    res = run('{"instances": [1, 2, 3, 4, 5]}')
    assert not res.accepted and res.stage == "signature"
    assert "KD411" in codes(res)
    assert fix_is_accepted(res, CUSTOM)["instances"] == [[1.0, 2.0, 3.0, 4.0, 5.0]]


def test_extra_nesting_is_named_and_fixed():
    res = run('{"instances": [[[1, 2, 3, 4, 5]]]}')
    assert "KD412" in codes(res)
    fix_is_accepted(res, CUSTOM)


def test_image_sent_bare_is_split_into_rows_and_fixed():
    image = [[[0.5] for _ in range(28)] for _ in range(28)]
    res = run(json.dumps(image), IMAGE)
    assert not res.accepted and res.stage == "signature"
    assert res.tensors["image"]["shape"] == [28, 28, 1]
    assert codes(res)[0] == "KD410" and "28 instances" in res.findings[0].message
    fixed = fix_is_accepted(res, IMAGE)
    assert len(fixed["instances"]) == 1


def test_wrong_inner_dimension_has_no_fix_but_says_why():
    res = run("[[1, 2, 3]]")
    assert not res.accepted and res.stage == "signature"
    assert "KD413" in codes(res) and res.fixed_payload is None
    assert any(f.code == "KD900" and "wrong size" in f.message for f in res.findings)


def test_ragged_rows_are_named():
    res = run('{"instances": [[1, 2, 3, 4, 5], [1, 2]]}')
    assert not res.accepted and res.stage == "tfs-parse" and codes(res)[0] == "KD304"


def test_decimal_for_int_input_is_named_and_fixed():
    res = run('{"instances": [[1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}', TOKENS)
    assert not res.accepted and codes(res)[0] == "KD303"
    assert "is not of expected type: int32" in res.error
    assert fix_is_accepted(res, TOKENS)["instances"] == [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]


def test_wrong_input_names_are_named_and_fixed():
    res = run('{"instances": [{"Features": [1, 2, 3, 4, 5], "id": [7]}]}', TWO)
    assert not res.accepted and codes(res)[0] == "KD306"
    fixed = fix_is_accepted(res, TWO)
    assert sorted(fixed["instances"][0]) == ["features", "ids"]


def test_unnamed_values_for_two_inputs_are_named():
    res = run("[[1, 2, 3, 4, 5]]", TWO)
    assert not res.accepted and codes(res)[0] == "KD306"
    assert res.fixed_payload is None


def test_wrong_signature_name_is_named():
    res = run('{"signature_name": "nope", "instances": [[1, 2, 3, 4, 5]]}')
    assert not res.accepted and codes(res)[0] == "KD307"
    assert json.loads(res.error)["error"] == \
        'Serving signature name: "nope" not found in signature def'


def test_charset_parameter_gets_415_on_the_njs_path_before_2_20():
    res = run("[[1,2,3,4,5]]", ct="application/json; charset=utf-8", framework_version="2.13")
    assert not res.accepted and res.status == 415 and res.stage == "container"
    assert res.error == '{"error": "Unsupported Media Type: application/json; charset=utf-8"}'
    assert fix_is_accepted(res, CUSTOM)


def test_charset_parameter_is_accepted_by_the_2_20_container():
    assert run("[[1,2,3,4,5]]", ct="application/json; charset=utf-8").accepted


def test_octet_stream_gets_415():
    res = run(b"\x89PNG\r\n", BYTES, ct="application/octet-stream", framework_version="2.13")
    assert res.status == 415 and res.stage == "container"


def test_csv_header_row_is_named_and_fixed():
    res = run("a,b,c,d,e\n1,2,3,4,5\n", ct="text/csv")
    assert not res.accepted and codes(res)[0] == "KD313"
    assert fix_is_accepted(res, CUSTOM)["instances"] == [[1.0, 2.0, 3.0, 4.0, 5.0]]


def test_csv_rows_become_instances():
    res = run("1,2,3,4,5\n6,7,8,9,10\n", ct="text/csv")
    assert res.accepted and res.tensors["args_0"]["shape"] == [2, 5]


def test_image_bytes_need_b64_and_base64_text_is_caught_before_the_graph():
    import base64

    png = (MODELS.parent / "data" / "digit.png").read_bytes()
    good = json.dumps({"instances": [{"b64": base64.b64encode(png).decode()}]})
    assert run(good, BYTES).accepted
    # TF Serving takes base64 text as the string itself; the graph's decoder then fails.
    res = run(json.dumps({"instances": [base64.b64encode(png).decode()]}), BYTES)
    assert not res.accepted and res.stage == "signature" and "KD414" in codes(res)
    fixed = fix_is_accepted(res, BYTES)
    assert base64.b64decode(fixed["instances"][0]["b64"]) == png


def test_payload_too_large_is_refused_at_the_wire():
    body = "[" + ",".join(["[1.0,2.0,3.0,4.0,5.0]"] * 300_000) + "]"
    res = run(body)
    assert not res.accepted and res.stage == "wire" and res.status == 400
    assert "KD101" in codes(res) and res.fixed_payload is None  # integers: nothing to round


def test_payload_too_large_with_long_floats_is_fixed_by_rounding():
    import numpy as np

    rows = np.random.default_rng(0).random((80_000, 5)).tolist()
    res = run(json.dumps({"instances": rows}))
    assert not res.accepted and res.stage == "wire" and "KD101" in codes(res)
    assert len(res.fixed_payload["body"]) <= 6291456
    assert any("3 decimals" in c for c in res.fixed_payload["changes"])
    fixed = fix_is_accepted(res, CUSTOM)
    assert abs(fixed["instances"][0][0] - rows[0][0]) < 1e-3


def test_unknown_model_name_is_a_404():
    res = run("[[1,2,3,4,5]]", custom_attributes="tfs-model-name=other")
    assert not res.accepted and res.status == 404
    assert "Servable not found for request: Latest(other)" in res.error
    assert "KD314" in codes(res)


def test_via_tfs_skips_the_container_wrapping():
    res = run("[[1,2,3,4,5]]", via="tfs")
    assert not res.accepted and res.stage == "tfs-parse"
    assert codes(res)[0] == "KD308"


def test_json_output_has_the_documented_keys():
    doc = run("[1,2,3,4,5]").to_json()
    for key in ("accepted", "status", "stage", "error", "tfs_request", "tfs_target", "tensors",
                "findings", "fixed_payload"):
        assert key in doc
    json.dumps(doc)


@pytest.mark.parametrize("body", [b"", b"\xff\xfe\x00", b"{", b"[" * 10000, b"null",
                                  b'{"instances": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                                  b"1e999999", b'"just a string"'])
def test_malformed_bodies_yield_a_result_not_an_exception(body):
    res = run(body)
    assert isinstance(res.accepted, bool) and res.status >= 200


def test_scalar_signature_accepts_a_list_of_scalars():
    sig = [Signature("serving_default", "tensorflow/serving/predict",
                     {"x": TensorSpec("float32", (-1,))}, {"y": TensorSpec("float32", (-1,))})]
    res = run('{"instances": [1.5, 2.5]}', sig)
    assert res.accepted and res.tensors["x"]["shape"] == [2]


def test_whole_request_serialised_twice_is_named_and_fixed():
    # field-notes §6: "Failed to process element: 0" was a body JSON-encoded twice.
    body = json.dumps(json.dumps({"instances": [[1, 2, 3, 4, 5]]}))
    res = run(body)
    assert not res.accepted and "Failed to process element: 0" in res.error
    assert codes(res)[0] == "KD302"
    assert fix_is_accepted(res, CUSTOM) == {"instances": [[1.0, 2.0, 3.0, 4.0, 5.0]]}


EXAMPLE = "CiUKEgoGaW5jb21lEggSBgoEAACAQAoPCgNhZ2USCBIGCgQAAPBB"  # tf.train.Example age=30.0, income=4.0, serialized and base64-encoded


def test_tf_example_signature_wants_serialized_examples_not_feature_names():
    sigs = load_signatures(str(MODELS / "example_parser/1"))
    res = run('{"instances": [{"age": 30.0, "income": 4.0}]}', sigs)
    assert not res.accepted and res.stage == "tfs-parse" and codes(res)[0] == "KD306"
    assert "does not have named input: age" in res.error or "keys must be equal to" in res.error
    assert run(json.dumps({"instances": [{"b64": EXAMPLE}]}), sigs).accepted


def test_via_tfs_follows_the_framework_versions_tf_serving_release():
    # json_tensor.cc before 2.5: integers above 2^24-1 do not fit a float input losslessly.
    body = '{"instances": [[16777217, 1, 2, 3, 4]]}'
    old = run(body, via="tfs", framework_version="2.4")
    assert not old.accepted and "without loss of precision" in old.error
    assert run(body, via="tfs", framework_version="2.13").accepted


def test_a_savedmodel_folder_serves_only_its_own_version(tmp_path):
    from kdiag.model.target import resolve_target

    target = resolve_target(str(MODELS / "custom/export/1"))
    assert target.versions == (1,)
    opts = ValidateOptions(model_name=target.model_name, versions=target.versions)
    req = Request(b"[[1,2,3,4,5]]", "application/json", None, "tfs-model-version=2")
    res = validate(req, target.signatures, opts)
    assert res.status == 404 and "Specific(model, 2)" in res.error
