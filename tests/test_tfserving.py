"""TF Serving's REST predict emulation: body -> tensors, outputs -> response, per release.

Expected texts come from tensorflow_serving/util/json_tensor.cc (the release named in each
test), rapidjson 1.1.0's error/en.h and writer behaviour, and http_server.cc's status table.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdiag.errors import KdiagError
from kdiag.model.signature import Signature, TensorSpec
from kdiag.path import tfserving as tfs
from kdiag.path.tfs_rapidjson import RapidJsonError, base64_unescape, dtoa, parse
from kdiag.path.tfserving import (
    DEFAULT_TFS_VERSION,
    TfsResponseError,
    error_body,
    http_status,
    make_predict_response,
    parse_predict_request,
    parse_tfs_version,
    predict_response,
)


def sig(name: str = "serving_default", **inputs: tuple[str, tuple[int, ...]]) -> Signature:
    return Signature(name, "tensorflow/serving/predict",
                     {k: TensorSpec(d, s) for k, (d, s) in inputs.items()}, {})


ARGS0 = [sig(args_0=("float32", (-1, 5)))]
TWO = [sig(features=("float32", (-1, 5)), ids=("int64", (-1, 1)))]
IMAGE = [sig(image_bytes=("string", (-1,)))]
TOKENS = [sig(tokens=("int32", (-1, 10)))]
SCALAR = [sig(x=("float32", (-1,)))]


def p(body, sigs=ARGS0, v=DEFAULT_TFS_VERSION):
    return parse_predict_request(body, sigs, tfs_version=v)


def fails(body, sigs=ARGS0, v=DEFAULT_TFS_VERSION, status=400):
    r = p(body, sigs, v)
    assert not r.ok and r.status == status, r
    assert r.tensors == {}
    return r.message


VERSIONS = ["1.11", "1.14", "2.2", "2.4", "2.10", "2.17", "2.18", "2.20"]
ROW5 = b'{"instances": [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10.5]]}'


# --- versions -------------------------------------------------------------------------------

def test_versions_parse_from_strings_and_tuples():
    assert parse_tfs_version("2.19") == (2, 19)
    assert parse_tfs_version("2.19.1") == (2, 19)
    assert parse_tfs_version("2.18.0-rc0") == (2, 18)
    assert parse_tfs_version((1, 15)) == (1, 15)
    assert parse_tfs_version(None) == DEFAULT_TFS_VERSION
    assert f"{DEFAULT_TFS_VERSION[0]}.{DEFAULT_TFS_VERSION[1]}" == tfs.TFS_VERSIONS[-1]


def test_versions_before_columnar_format_and_garbage_are_refused():
    with pytest.raises(KdiagError, match="1.11 and later"):
        parse_tfs_version("1.10")
    with pytest.raises(KdiagError, match="X.Y"):
        parse_tfs_version("latest")


# --- JSON parse errors (ParseJson, json_tensor.cc; texts from rapidjson error/en.h) ----------

def test_empty_body_is_tf_servings_own_message_without_offset():
    assert fails(b"") == "JSON Parse error: The document is empty"


def test_whitespace_only_body_is_rapidjsons_message_with_offset():
    assert fails(b"  \n") == "JSON Parse error: The document is empty. at offset: 3"


def test_syntax_error_reports_rapidjson_text_and_byte_offset():
    assert fails(b'{"instances": [1,]}') == "JSON Parse error: Invalid value. at offset: 17"
    assert fails(b'{"instances" [1]}') == ("JSON Parse error: Missing a colon after a name of "
                                           "object member. at offset: 13")
    assert fails(b'{"instances": [1 2]}') == ("JSON Parse error: Missing a comma or ']' after an "
                                              "array element. at offset: 17")
    assert fails(b'{"a": 1 "b"}') == ("JSON Parse error: Missing a comma or '}' after an object "
                                      "member. at offset: 8")
    assert fails(b"{'a': 1}") == ("JSON Parse error: Missing a name for object member. at "
                                  "offset: 1")
    assert fails(b'{"a": "x') == ("JSON Parse error: Missing a closing quotation mark in "
                                  "string. at offset: 8")
    assert fails(b'{"a": "\\q"}') == ("JSON Parse error: Invalid escape character in string. "
                                      "at offset: 7")
    assert fails(b'{"a": 1.}') == "JSON Parse error: Miss fraction part in number. at offset: 8"
    assert fails(b'{"a": 1e400}') == ("JSON Parse error: Number too big to be stored in double. "
                                      "at offset: 6")


def test_invalid_utf8_is_kept_inside_strings_and_rejected_outside():
    # rapidjson is not given kParseValidateEncodingFlag: string bytes are copied as they are.
    r = p(b'{"instances": ["\xff\xfe"]}', IMAGE)
    assert r.ok and r.tensors["image_bytes"].tolist() == [b"\xff\xfe"]
    assert fails(b'{"instances": [\xff]}', IMAGE) == ("JSON Parse error: Invalid value. at "
                                                      "offset: 15")


def test_utf8_byte_order_mark_is_skipped():
    assert p(b'\xef\xbb\xbf{"instances": [1]}', SCALAR).ok


def test_nan_and_infinity_tokens_are_accepted_for_float_inputs():
    r = p(b'{"instances": [NaN, Infinity, -Infinity, -Inf]}', SCALAR)
    x = r.tensors["x"]
    assert r.ok and math.isnan(x[0]) and x[1] == np.inf and x[2] == -np.inf and x[3] == -np.inf


def test_second_document_is_rejected_before_2_18():
    body = b'{"instances": [[1]]} {"instances": [[2]]}'
    msg = ("JSON Parse error: The document root must not be followed by other values. at "
           "offset: 21")
    assert fails(body, SCALAR, "2.17") == msg
    assert fails(body, SCALAR, "2.5") == msg


def test_second_document_is_silently_ignored_from_2_18_with_a_warning():
    # 6cb01316 (2.18) parses with kParseStopWhenDoneFlag.
    r = p(b'{"instances": [[1]]} {"instances": [[2]]}', [sig(x=("float32", (-1, 1)))], "2.18")
    assert r.ok and r.tensors["x"].tolist() == [[1.0]]
    assert any("ignores the 21 bytes" in w for w in r.warnings)


def test_a_stray_closing_bracket_reads_as_an_empty_document_in_the_iterative_parser():
    assert fails(b"]", v="2.18") == "JSON Parse error: The document is empty. at offset: 0"
    assert fails(b"]", v="2.17") == "JSON Parse error: Invalid value. at offset: 0"


# --- top level, signature and key checks (FillPredictRequestFromJson) -----------------------

def test_top_level_array_is_not_object_quoted_single_line_from_2_18():
    assert fails(b"[1,2]", v="2.18") == "JSON Value: [1, 2] Is not object"
    # Before 2.18, JsonValueToString uses PrettyWriter's default (one element per line).
    assert fails(b"[1,2]", v="2.17") == "JSON Value: [\n    1,\n    2\n] Is not object"


def test_1_11_reports_one_generic_format_error():
    generic = ("not formatted correctly. Expecting object with 'instances' or 'input' key and a "
               "list/array or object as the value respectively.")
    assert fails(b"5", v="1.11") == f"JSON Value: 5 {generic}"
    assert fails(b'{"instances": []}', v="1.11") == \
        f'JSON Value: {{\n    "instances": []\n}} {generic}'


def test_signature_name_must_be_a_string():
    assert fails(b'{"signature_name": 5, "instances": [1]}') == (
        'JSON Value: {\n    "signature_name": 5,\n    "instances": [1]\n} not formatted '
        "correctly. 'signature_name' key must be a string value.")


def test_unknown_signature_name_is_not_found_in_signature_def():
    r = p(b'{"signature_name": "predict", "instances": [[1, 2, 3, 4, 5]]}')
    assert r.status == 400 and r.code == "INVALID_ARGUMENT"
    assert r.message == 'Serving signature name: "predict" not found in signature def'
    assert r.signature_name == "predict"


def test_empty_signature_name_means_serving_default():
    r = p(b'{"signature_name": "", "instances": [[1, 2, 3, 4, 5]]}')
    assert r.ok and r.signature_name == "serving_default"


def test_named_signature_is_used():
    sigs = [*ARGS0, sig("scores", x=("int64", (-1,)))]
    r = p(b'{"signature_name": "scores", "inputs": [1, 2]}', sigs)
    assert r.ok and r.tensors["x"].dtype == np.int64


def test_signature_without_inputs_fails_to_get_input_map():
    assert fails(b'{"instances": [1]}', [sig()]) == ("Failed to get input map for signature: "
                                                    "DEFAULT")


def test_parse_errors_come_before_the_signature_lookup():
    # errata §13: ParseJson, "Is not object" and FillSignature run before get_tensorinfo_map.
    nosig = [sig("other", x=("float32", (-1,)))]
    assert fails(b'{"signature_name": "nope", ', nosig).startswith("JSON Parse error")
    assert fails(b'[]', nosig).endswith("Is not object")
    assert "must be a string value" in fails(b'{"signature_name": 1}', nosig)
    # ...and the instances/inputs checks come after it.
    assert fails(b'{"signature_name": "nope"}', nosig).startswith("Serving signature name")


def test_missing_instances_and_inputs():
    assert fails(b'{"signature_name": "serving_default"}') == \
        "Missing 'inputs' or 'instances' key"


def test_instances_and_inputs_together_are_refused():
    assert fails(b'{"instances": [1], "inputs": [1]}', v="2.18") == (
        'JSON Value: {\n    "instances": [1],\n    "inputs": [1]\n} Not formatted correctly '
        "expecting only one of 'inputs' or 'instances' keys to exist ")


def test_instances_must_be_a_list_with_the_old_typo_before_2_5():
    # a0a9d143 (2.5) fixed "Excepting".
    body = b'{"instances": {"x": 1}}'
    assert fails(body, v="2.5") == ('JSON Value: {\n    "instances": {\n        "x": 1\n    }\n} '
                                    "Expecting 'instances' to be an list/array")
    assert "Excepting 'instances' to be an list/array" in fails(body, v="2.4")


def test_empty_instances_list():
    assert fails(b'{"instances": []}') == ('JSON Value: {\n    "instances": []\n} No values in '
                                           "'instances' array")


def test_first_instances_key_wins_when_repeated():
    r = p(b'{"instances": [[1]], "instances": [[2, 3]]}', [sig(x=("float32", (-1, 1)))])
    assert r.ok and r.tensors["x"].tolist() == [[1.0]]


def test_unknown_top_level_keys_are_ignored_with_a_warning():
    r = p(b'{"instances": [[1, 2, 3, 4, 5]], "signature": "scores"}')
    assert r.ok and any("'signature'" in w for w in r.warnings)


# --- row format -----------------------------------------------------------------------------

def test_bare_rows_for_a_single_input_stack_into_a_batch():
    r = p(ROW5)
    assert r.ok and r.format == "row" and r.status == 200
    t = r.tensors["args_0"]
    assert t.dtype == np.float32 and t.shape == (2, 5) and t[1, 4] == np.float32(10.5)


def test_scalar_instances_make_a_vector():
    r = p(b'{"instances": [1, 2.5, 3]}', SCALAR)
    assert r.tensors["x"].tolist() == [1.0, 2.5, 3.0]


def test_objects_keyed_by_input_name_for_multi_input_signatures():
    r = p(b'{"instances": [{"features": [1,2,3,4,5], "ids": [7]}, '
          b'{"ids": [8], "features": [6,7,8,9,0]}]}', TWO)
    assert r.ok and r.tensors["ids"].tolist() == [[7], [8]]
    assert r.tensors["ids"].dtype == np.int64 and r.tensors["features"].shape == (2, 5)


def test_single_input_may_also_be_given_as_named_objects():
    r = p(b'{"instances": [{"args_0": [1, 2, 3, 4, 5]}]}')
    assert r.ok and r.tensors["args_0"].shape == (1, 5)


def test_plain_list_for_a_multi_input_signature():
    assert fails(b'{"instances": [[1, 2]]}', TWO) == (
        "instances is a plain list, but expecting list of objects as multiple input tensors "
        "required as per tensorinfo_map")


def test_missing_input_name_in_an_instance_object():
    body = b'{"instances": [{"features": [1, 2]}]}'
    assert fails(body, TWO) == (
        "Failed to process element: 0 of 'instances' list. JSON object: {\n    \"features\": "
        "[1, 2]\n} keys must be equal to: features,ids")
    # 83863b8f (2.3) changed the wording; before 2.18 arrays are printed one element per line.
    assert fails(body, TWO, "2.2") == (
        "Failed to process element: 0 of 'instances' list. JSON object: {\n    \"features\": "
        "[\n        1,\n        2\n    ]\n} must only have keys: features,ids")


def test_unknown_input_name_in_an_instance_object():
    assert fails(b'{"instances": [{"features": [1], "ids": [1], "extra": 1}]}', TWO) == (
        "Failed to process element: 0 key: extra of 'instances' list. Error: INVALID_ARGUMENT: "
        "JSON object: does not have named input: extra")


def test_objects_and_lists_cannot_be_mixed():
    assert fails(b'{"instances": [{"args_0": [1]}, [2]]}') == (
        "Expecting object but got list at item 1 of input list")
    assert fails(b'{"instances": [[1], {"args_0": [2]}]}') == (
        "Expecting value/list but got object at item 1 of input list")


def test_instances_of_different_sizes():
    assert fails(b'{"instances": [[1, 2, 3, 4, 5], [1, 2, 3]]}') == (
        "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Expecting "
        "tensor size: 5 but got: 3")


def test_instances_of_different_shapes_with_the_same_size():
    assert fails(b'{"instances": [[[1, 2]], [[1], [2]]]}') == (
        "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Expecting "
        "shape [1,2] but got: [2,1]")


def test_ragged_rows_inside_one_instance():
    assert fails(b'{"instances": [[[1, 2], [3]]]}') == (
        "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: Encountered "
        "list at unexpected size: 1 at level: 1 expected size: 2")


def test_value_at_the_wrong_depth_is_found_at_incorrect_level():
    assert fails(b'{"instances": [[[1, 2], 3]]}') == (
        "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: "
        "3 found at incorrect level: 2 in the JSON DOM. Expected at level: 2")


def test_list_deeper_than_the_first_element_says():
    assert fails(b'{"instances": [[[1], [[2]]]]}') == (
        "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: Encountered "
        "list at unexpected level: 2 expected < 2")


def test_nested_status_prefix_is_old_style_before_2_11():
    msg = fails(b'{"instances": [[1, 2, 3, 4, 5], [1]]}', v="2.10")
    assert "Error: Invalid argument: Expecting tensor size" in msg


def test_repeated_key_in_an_instance_object_shifts_values_with_a_warning():
    r = p(b'{"instances": [{"x": [1], "x": [2]}, {"x": [3]}]}', [sig(x=("float32", (-1, 1)))])
    assert r.ok and r.tensors["x"].tolist() == [[1.0], [2.0]]
    assert any("repeats the key 'x'" in w for w in r.warnings)


# --- columnar format ------------------------------------------------------------------------

def test_columnar_bare_value_adds_no_batch_axis():
    r = p(b'{"inputs": [1, 2, 3, 4, 5]}')
    assert r.ok and r.format == "columnar" and r.tensors["args_0"].shape == (5,)


def test_columnar_scalar_is_a_rank_0_tensor():
    r = p(b'{"inputs": 3.5}', SCALAR)
    assert r.tensors["x"].shape == () and r.tensors["x"] == np.float32(3.5)


def test_columnar_named_inputs_may_have_different_batch_sizes():
    r = p(b'{"inputs": {"features": [[1, 2, 3, 4, 5]], "ids": [[1], [2]]}}', TWO)
    assert r.ok and r.tensors["features"].shape == (1, 5) and r.tensors["ids"].shape == (2, 1)


def test_columnar_missing_named_input():
    assert fails(b'{"inputs": {"features": [[1]]}}', TWO) == (
        "Missing named input: ids in 'inputs' object.")


def test_columnar_plain_value_for_a_multi_input_signature():
    assert fails(b'{"inputs": [[1]]}', TWO) == (
        "inputs is a plain value/list, but expecting an object as multiple input tensors "
        "required as per tensorinfo_map")


def test_columnar_object_for_a_single_input_must_name_it():
    assert fails(b'{"inputs": {"x": [1]}}') == "Missing named input: args_0 in 'inputs' object."


def test_columnar_extra_keys_are_ignored_with_a_warning():
    r = p(b'{"inputs": {"features": [[1]], "ids": [[1]], "mask": [1]}}', TWO)
    assert r.ok and any("'mask'" in w for w in r.warnings)


def test_columnar_errors_are_not_wrapped():
    assert fails(b'{"inputs": [1, "a"]}') == (
        'JSON Value: "a" Type: String is not of expected type: float')


def test_columnar_b64_object_for_a_single_string_input():
    r = p(b'{"inputs": {"b64": "aGVsbG8="}}', IMAGE)
    assert r.ok and r.tensors["image_bytes"].shape == () and r.tensors["image_bytes"][()] == \
        b"hello"


# --- dtype coercion (AddValueToTensor) ------------------------------------------------------

def test_decimal_for_an_int_input_is_a_type_error():
    assert fails(b'{"instances": [[1.0]]}', TOKENS) == (
        "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: "
        "1.0 Type: Number is not of expected type: int32")


def test_int_range_is_rapidjsons_isint():
    assert "JSON Value: 2147483648 Type: Number is not of expected type: int32" in \
        fails(b'{"instances": [[2147483648]]}', TOKENS)
    r = p(b'{"instances": [[-2147483648, 2147483647]]}', TOKENS)
    assert r.ok and r.tensors["tokens"].dtype == np.int32
    assert "Type: Number is not of expected type: int64" in \
        fails(b'{"instances": [9223372036854775808]}', [sig(x=("int64", (-1,)))])
    assert "is not of expected type: uint32" in \
        fails(b'{"instances": [-1]}', [sig(x=("uint32", (-1,)))])


def test_narrow_int_inputs_wrap_like_int_val():
    # int8/int16/uint8 travel in int_val (int32) and are narrowed by Tensor::FromProto.
    r = p(b'{"instances": [300, -1]}', [sig(x=("uint8", (-1,)))])
    assert r.tensors["x"].dtype == np.uint8 and r.tensors["x"].tolist() == [44, 255]


def test_integer_beyond_64_bits_is_a_double():
    body = b'{"instances": [18446744073709551616]}'
    i64 = [sig(x=("int64", (-1,)))]
    # 2.18+: rapidjson Writer::Double (Grisu + Prettify); before: WriteDecimal<float>.
    assert "JSON Value: 18446744073709552000.0 Type: Number" in fails(body, i64, "2.18")
    assert "JSON Value: 1.84467441e+19 Type: Number" in fails(body, i64, "2.17")
    assert p(body, SCALAR).tensors["x"][0] == np.float32(2.0 ** 64)


def test_float_inputs_take_any_number_from_2_5():
    r = p(b'{"instances": [16777217, 1e39, 1435774380]}', SCALAR, "2.5")
    assert r.ok and r.tensors["x"][1] == np.inf and r.tensors["x"][2] == np.float32(1435774380)


def test_float_inputs_refuse_big_integers_from_1_12_to_2_4():
    # 01c2fb80 (1.12) .. 57dac6cd (2.5): LossyDecimalError.
    assert fails(b'{"instances": [16777216]}', SCALAR, "2.4") == (
        "Failed to process element: 0 of 'instances' list. Error: Invalid argument: Cannot "
        "convert JSON value: 16777216 to float without loss of precision.")
    assert p(b'{"instances": [16777215, -16777215, 16777216.0]}', SCALAR, "2.4").ok
    assert "Cannot convert JSON value: 1e+39 to float without loss of precision." in \
        fails(b'{"instances": [1e39]}', SCALAR, "2.4")
    f64 = [sig(x=("float64", (-1,)))]
    assert "9007199254740992 to double without" in \
        fails(b'{"instances": [9007199254740992]}', f64, "1.12")
    assert p(b'{"instances": [9007199254740991]}', f64, "1.12").ok


def test_1_11_refuses_decimals_not_exact_in_float32():
    # 1.11 used rapidjson's IsLosslessFloat, so 0.1 fails and 0.5 or 1 pass.
    assert "Cannot convert JSON value: 0.1 to float without loss of precision." in \
        fails(b'{"instances": [0.1]}', SCALAR, "1.11")
    assert p(b'{"instances": [0.5, 1]}', SCALAR, "1.11").ok


def test_bool_inputs_take_only_true_and_false():
    b = [sig(flag=("bool", (-1,)))]
    assert p(b'{"instances": [true, false]}', b).tensors["flag"].tolist() == [True, False]
    assert "JSON Value: 1 Type: Number is not of expected type: bool" in \
        fails(b'{"instances": [true, 1]}', b)


def test_true_among_floats_is_a_type_error():
    assert "JSON Value: true Type: True is not of expected type: float" in \
        fails(b'{"instances": [1.5, true]}', SCALAR)
    assert "JSON Value: null Type: Null is not of expected type: float" in \
        fails(b'{"instances": [1.5, null]}', SCALAR)


def test_numbers_sent_as_strings_are_type_errors():
    assert 'JSON Value: "3" Type: String is not of expected type: float' in \
        fails(b'{"instances": [[1, 2, "3", 4, 5]]}')


def test_object_where_a_number_is_expected():
    assert ('JSON Value: {\n    "a": 1\n} Type: Object is not of expected type: float') in \
        fails(b'{"instances": [[{"a": 1}]]}', [sig(x=("float32", (-1, 1)))])


def test_b64_object_for_a_float_input_is_a_type_error():
    assert ('JSON Value: {\n    "b64": "aGk="\n} Type: Object is not of expected type: float') in \
        fails(b'{"instances": [{"b64": "aGk="}]}', SCALAR)


def test_strings_take_text_or_b64_objects():
    r = p(b'{"instances": [{"b64": "aGVsbG8="}, "caf\xc3\xa9", "\\u00e9"]}', IMAGE)
    assert r.tensors["image_bytes"].tolist() == [b"hello", "café".encode(), "é".encode()]


def test_number_for_a_string_input_is_a_type_error():
    assert "JSON Value: 1 Type: Number is not of expected type: string" in \
        fails(b'{"instances": [1]}', IMAGE)


def test_bad_base64_is_unable_to_base64_decode():
    assert fails(b'{"instances": [{"b64": "!!"}]}', IMAGE) == (
        "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: Unable to "
        "base64 decode")


def test_b64_object_with_a_non_string_is_not_formatted_for_base64():
    assert ('JSON Value: {\n    "b64": 1\n} not formatted correctly for base64 data') in \
        fails(b'{"instances": [[{"b64": 1}]]}', [sig(x=("string", (-1, 1)))])


def test_absl_base64_rules():
    assert base64_unescape(b"aGVsbG8") == b"hello"  # padding optional
    assert base64_unescape(b"aGVs\nbG8=") == b"hello"  # whitespace skipped
    assert base64_unescape(b"aGVsbG8.") == b"hello"  # '.' pads too
    assert base64_unescape(b"aGVsbG8==") is None  # wrong number of pads
    assert base64_unescape(b"aGVsbG8_") is None  # web-safe alphabet refused
    assert base64_unescape(b"a") is None


def test_nan_for_an_int_input_quotes_differently_by_release():
    body = b'{"instances": [[NaN]]}'
    # 2.18+: Writer::Double refuses NaN and the quoted value is empty.
    assert "JSON Value:  Type: Number is not of expected type: int32" in fails(body, TOKENS)
    assert "JSON Value: NaN Type: Number is not of expected type: int32" in \
        fails(body, TOKENS, "2.17")


def test_unsupported_dtype_is_unimplemented():
    half = [sig(x=("float16", (-1,)))]
    # Row format wraps the UNIMPLEMENTED status in an INVALID_ARGUMENT one (400)...
    assert fails(b'{"instances": [1.5]}', half) == (
        "Failed to process element: 0 of 'instances' list. Error: UNIMPLEMENTED: Conversion of "
        "JSON Value: 1.5 to type: half")
    # ...columnar returns it as it is: 501.
    r = p(b'{"inputs": [1.5]}', half)
    assert r.status == 501 and r.code == "UNIMPLEMENTED"
    assert r.message == "Conversion of JSON Value: 1.5 to type: half"


# --- quoted JSON values (JsonValueToString / JsonValueToDebugString) ------------------------

def test_quoted_values_are_cut_near_256_bytes_from_2_18():
    body = b"[" + b",".join(str(i).encode() for i in range(300)) + b"]"
    quoted = fails(body, v="2.18").removeprefix("JSON Value: ").removesuffix(" Is not object")
    assert 256 <= len(quoted) < 262 and not quoted.endswith("]")
    assert len(fails(body, v="2.17")) > 1000


def test_long_string_is_quoted_whole_even_from_2_18():
    # JsonWriterWithLimit checks the size before each token, never inside one.
    long = "A" * 1000
    msg = fails(f'{{"instances": [[{{"b64": "{long}", "x": 1}}]]}}'.encode(),
                [sig(x=("float32", (-1, 1)))])
    assert f'JSON Value: {{\n    "b64": "{long}" Type: Object is not of expected type' in msg


# --- nesting --------------------------------------------------------------------------------

def test_deep_nesting_outside_the_tensors_parses_from_2_18():
    # json_tensor_test.cc DeeplyNestedWellFormed (2.18).
    body = b'{"instances":[1], "nested":' + b"[" * 500000 + b"]" * 500000 + b"}"
    r = p(body, [sig(x=("int32", (-1,)))], "2.18")
    assert r.ok and r.tensors["x"].tolist() == [1]


def test_deep_nesting_in_signature_name_is_reported_truncated():
    # json_tensor_test.cc DeeplyNestedMalformed (2.18).
    body = b'{"signature_name":' + b"[" * 500000 + b"]" * 500000 + b"}"
    assert "key must be a string value" in fails(body, v="2.18")


def test_deep_nesting_crashes_releases_before_2_18():
    body = b'{"instances":[1], "nested":' + b"[" * 200000 + b"]" * 200000 + b"}"
    r = p(body, [sig(x=("int32", (-1,)))], "2.17")
    assert not r.ok and r.status == 0 and r.body is None
    assert any("no HTTP answer" in w for w in r.warnings)


# --- fast path == exact path ----------------------------------------------------------------

@pytest.mark.parametrize("body,sigs", [
    (ROW5, ARGS0),
    (b'{"inputs": {"features": [[1, 2, 3, 4, 5]], "ids": [[3]]}}', TWO),
    (b'{"instances": [{"features": [1, 2, 3, 4, 5], "ids": [3]}]}', TWO),
    (b'{"instances": [[0.1, 1e-7, 3.4028235e38, 1e39, -0.0]]}', [sig(x=("float32", (-1, 5)))]),
    (b'{"instances": [[0.1, 0.25, 123456.5]]}', [sig(x=("float64", (-1, 3)))]),
    (b'{"instances": [[1, -7, 255]]}', [sig(x=("uint8", (-1, 3)))]),
    (b'{"instances": [[true, false]]}', [sig(x=("bool", (-1, 2)))]),
    (b'{"instances": [[]]}', [sig(x=("int32", (-1, 0)))]),
])
def test_fast_path_gives_the_exact_paths_tensors(body, sigs):
    feats = tfs._Features(DEFAULT_TFS_VERSION)
    fast = tfs._fast(body, sigs, feats)
    exact = tfs._exact(body, sigs, feats)
    assert fast is not None and exact.ok
    assert fast.tensors.keys() == exact.tensors.keys()
    for k in fast.tensors:
        assert fast.tensors[k].dtype == exact.tensors[k].dtype
        np.testing.assert_array_equal(fast.tensors[k], exact.tensors[k])


def test_long_float64_decimals_are_rounded_as_rapidjson_rounds_them():
    # reader.h without kParseFullPrecisionFlag: the 17th digit is added in floating point, so
    # the double can be an ulp away from the correctly rounded one Python's json gives.
    r = p(b'{"instances": [0.914177763170669074]}', [sig(x=("float64", (-1,)))])
    assert r.tensors["x"][0] == 0.914177763170669 != float("0.914177763170669074")


@pytest.mark.parametrize("body", [
    b'{"instances": [[1, 2, "3", 4, 5]]}',  # numpy would read "3" as 3.0
    b'{"instances": [[1, 2, true, 4, 5]]}',  # and true as 1.0
    b'{"instances": [[1, 2, null, 4, 5]]}',  # and null as nan
    b'{"instances": [[1, 2, 3, 4, 5]], "instances": [[1]]}',  # orjson keeps the last
])
def test_fast_path_declines_what_numpy_or_orjson_would_read_differently(body):
    assert tfs._fast(body, ARGS0, tfs._Features(DEFAULT_TFS_VERSION)) is None


leafs = (st.integers(-(2 ** 65), 2 ** 65) | st.floats(width=32, allow_nan=False)
         | st.floats(allow_nan=False, allow_infinity=False) | st.booleans() | st.none()
         | st.sampled_from(["1.5", "a"]))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(leafs, min_size=2, max_size=2) | leafs, min_size=1, max_size=3),
       st.sampled_from(["float32", "float64", "int32", "uint8", "int64", "uint64", "bool"]),
       st.booleans(), st.sampled_from(VERSIONS))
def test_fast_path_never_disagrees_with_the_exact_path(rows, dtype, columnar, version):
    key = "inputs" if columnar else "instances"
    try:
        body = orjson.dumps({key: rows})
    except orjson.JSONEncodeError:
        return
    sigs = [sig(x=(dtype, (-1, 2)))]
    feats = tfs._Features(parse_tfs_version(version))
    fast = tfs._fast(body, sigs, feats)
    if fast is None:
        return
    exact = tfs._exact(body, sigs, feats)
    assert exact.ok, exact.message
    for k, t in exact.tensors.items():
        assert fast.tensors[k].dtype == t.dtype
        np.testing.assert_array_equal(fast.tensors[k], t)


# --- responses (MakeJsonFromTensors) --------------------------------------------------------

def test_row_response_keeps_rows_on_one_line():
    out = {"output_0": np.array([[0.1, 0.2], [0.3, 0.4]], dtype=np.float32)}
    assert predict_response(out, format="row") == (
        '{\n    "predictions": [[0.1, 0.2], [0.3, 0.4]\n    ]\n}')


def test_row_response_with_several_outputs_writes_one_object_per_instance():
    out = {"a": np.array([[1.5], [2]], dtype=np.float32), "n": np.array([1, 2], dtype=np.int64)}
    assert predict_response(out, format="row") == (
        '{\n    "predictions": [\n        {\n            "a": [1.5],\n            "n": 1\n'
        '        },\n        {\n            "a": [2.0],\n            "n": 2\n        }\n    ]\n}')


def test_columnar_response_is_fully_pretty_printed():
    out = {"a": np.array([[1.5], [2]], dtype=np.float32)}
    assert predict_response(out, format="columnar") == (
        '{\n    "outputs": [\n        [\n            1.5\n        ],\n        [\n'
        '            2.0\n        ]\n    ]\n}')
    assert predict_response({"a": np.array(3.5, dtype=np.float32)}, format="columnar") == \
        '{\n    "outputs": 3.5\n}'


def test_response_writes_nan_and_infinity_as_bare_tokens():
    out = {"x": np.array([[np.nan, np.inf], [3, -np.inf]], dtype=np.float32)}
    assert predict_response(out, format="row") == (
        '{\n    "predictions": [[NaN, Infinity], [3.0, -Infinity]\n    ]\n}')


def test_response_number_text_is_six_digits_unless_that_does_not_round_trip():
    # json_tensor_test.cc FromJsonSingleFloatTensorSixDigitPrecision; d7c3b3de (1.14).
    out = {"f": np.array([[9000000, 999999, 0.5], [0.0003, 0.00003, 555557.5]], np.float32)}
    assert predict_response(out, format="row") == (
        '{\n    "predictions": [[9e+06, 999999.0, 0.5], [0.0003, 3e-05, 555557.5]\n    ]\n}')
    assert "555558.0" in predict_response(out, format="row", tfs_version="1.13")
    assert "0.333333343" in predict_response({"f": np.array([1 / 3], np.float32)}, format="row")
    assert "0.33333333333333331" in predict_response({"f": np.array([1 / 3])}, format="row")


def test_bytes_outputs_are_b64_objects():
    out = {"s_bytes": np.array([[b"hello", b"world"]], dtype=object)}
    assert predict_response(out, format="row") == (
        '{\n    "predictions": [[{\n                "b64": "aGVsbG8="\n            }, {\n'
        '                "b64": "d29ybGQ="\n            }]\n    ]\n}')
    assert '"hello"' in predict_response({"s": np.array([b"hello"], dtype=object)}, format="row")


def test_string_outputs_escape_like_rapidjson():
    out = {"s": np.array(['a"b\\c\n\x01/é'], dtype=object)}
    assert predict_response(out, format="row") == (
        '{\n    "predictions": ["a\\"b\\\\c\\n\\u0001/é"\n    ]\n}')


def test_response_errors():
    with pytest.raises(TfsResponseError) as e:
        predict_response({}, format="row")
    assert e.value.response.message == "Cannot convert empty tensor map to JSON"
    r = make_predict_response({"t": np.array(1.0, np.float32)}, format="row")
    assert r.status == 400 and r.message == "Tensor name: t has no shape information "
    r = make_predict_response({"a": np.zeros(2, np.float32), "b": np.zeros(3, np.float32)},
                              format="row")
    assert r.message == "Tensor name: b has inconsistent batch size: 3 expecting: 2"
    r = make_predict_response({"c": np.zeros(2, np.complex64)}, format="row")
    assert r.message == "Failed to write JSON value for tensor type: complex64"


def test_zero_batch_response_is_allowed_from_2_2():
    out = {"a": np.zeros((0, 3), np.float32)}
    assert predict_response(out, format="row") == '{\n    "predictions": []\n}'
    r = make_predict_response(out, format="row", tfs_version="2.1")
    assert r.message == "Tensor name: a has invalid batch size: 0"


def test_signature_output_dtype_decides_number_format():
    s = Signature("serving_default", "p", {}, {"y": TensorSpec("float64", (-1,))})
    assert predict_response({"y": np.array([0.1], np.float32)}, format="row", signature=s) == \
        '{\n    "predictions": [0.10000000149011612\n    ]\n}'


# --- error bodies and statuses --------------------------------------------------------------

def test_error_body_is_pretty_json_from_2_2():
    assert error_body("No values in 'instances' array", tfs_version="2.2") == \
        '{\n    "error": "No values in \'instances\' array"\n}'
    assert json.loads(error_body('a "quoted"\nline')) == {"error": 'a "quoted"\nline'}


def test_error_body_is_c_escaped_before_2_2():
    # http_rest_api_handler.cc FillJsonErrorMsg (absl::CEscape): not valid JSON.
    assert error_body("No values in 'instances' array", tfs_version="2.1") == \
        '{ "error": "No values in \\\'instances\\\' array" }'
    assert error_body("é\n", tfs_version="1.15") == '{ "error": "\\303\\251\\n" }'


def test_parse_result_body_matches_error_body():
    r = p(b'{"instances": []}', v="2.1")
    assert r.body == error_body(r.message, tfs_version="2.1")


def test_http_status_table():
    assert http_status("INVALID_ARGUMENT") == 400
    assert http_status("FAILED_PRECONDITION") == 400
    assert http_status("NOT_FOUND") == 404
    assert http_status("RESOURCE_EXHAUSTED") == 429
    assert http_status("UNIMPLEMENTED") == 501
    assert http_status("UNAVAILABLE") == 503
    assert http_status("DEADLINE_EXCEEDED") == 504
    assert http_status("CANCELLED") == 499
    assert http_status("INTERNAL") == 500


# --- the rapidjson emulation itself ---------------------------------------------------------

def test_rapidjson_number_quirks():
    assert parse(b"-0", iterative=False)[0] == 0 and isinstance(parse(b"-0", iterative=False)[0],
                                                                int)
    assert parse(b"NInf", iterative=False)[0] == math.inf  # Consume() keeps what matched
    assert parse(b"NaN.5", iterative=False)[0] == 0.5
    assert parse(b"10e308", iterative=False)[0] == math.inf
    with pytest.raises(RapidJsonError, match="Number too big"):
        parse(b"1" * 400, iterative=False)


def test_rapidjson_dtoa_prettify():
    assert [dtoa(x) for x in (1.0, 0.1, 1e21, 1e22, 1.5e-7, 1e-6, -0.0, 1e300)] == \
        ["1.0", "0.1", "1e21", "1e22", "1.5e-7", "0.000001", "-0.0", "1e300"]


# --- properties -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(["instances", "inputs", "signature_name", "b64",
                                       "features", "ids", "args_0", "x"]), children, max_size=4),
    max_leaves=30,
)
ALL_SIGS = [ARGS0, TWO, IMAGE, TOKENS, SCALAR, [sig(x=("bool", (-1,)))]]


def check_result(r):
    assert isinstance(r, tfs.TfsParse)
    if r.ok:
        assert r.status == 200 and r.message is None
        assert all(isinstance(t, (np.ndarray, tfs.TooManyDims)) for t in r.tensors.values())
    elif r.status:
        assert r.status in (400, 501) and r.message and r.body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, st.sampled_from(range(len(ALL_SIGS))), st.sampled_from(VERSIONS))
def test_random_json_never_raises(value, which, version):
    body = json.dumps(value).encode()
    check_result(parse_predict_request(body, ALL_SIGS[which], tfs_version=version))
    wrapped = json.dumps({"instances": [value]}).encode()
    check_result(parse_predict_request(wrapped, ALL_SIGS[which], tfs_version=version))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(VERSIONS))
def test_random_bytes_never_raise(data, version):
    check_result(parse_predict_request(data, ARGS0, tfs_version=version))
    check_result(parse_predict_request(b'{"instances": [' + data, IMAGE, tfs_version=version))


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=3000), st.sampled_from(["[", "{\"a\":", "[{\"x\":"]),
       st.booleans(), st.sampled_from(VERSIONS))
def test_deep_nesting_never_raises_or_hangs(depth, opener, closed, version):
    body = '{"instances":' + opener * depth + "1"
    if closed:
        body += "".join("]" if o == "[" else "}" for o in reversed(opener)) * depth
    body += "}"
    t = time.perf_counter()
    check_result(parse_predict_request(body, ARGS0, tfs_version=version))
    assert time.perf_counter() - t < 5


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=400), st.integers(min_value=-400, max_value=400),
       st.booleans(), st.sampled_from(VERSIONS))
def test_huge_numbers_never_raise(digits, exponent, minus, version):
    number = ("-" if minus else "") + "9" * digits + f"e{exponent}"
    for n in (number, "9" * digits, "0." + "1" * digits):
        body = f'{{"instances": [{n}]}}'.encode()
        for sigs in ([sig(x=("float32", (-1,)))], [sig(x=("int64", (-1,)))],
                     [sig(x=("float64", (-1,)))]):
            check_result(parse_predict_request(body, sigs, tfs_version=version))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False)
                         | st.integers(-(2 ** 31), 2 ** 31 - 1), min_size=5, max_size=5),
                min_size=1, max_size=4))
def test_valid_float_rows_match_numpy(rows):
    r = parse_predict_request(orjson.dumps({"instances": rows}), ARGS0)
    assert r.ok
    np.testing.assert_array_equal(r.tensors["args_0"], np.array(rows, dtype=np.float32))


def same_value(got, expected):
    if isinstance(got, tfs.JObj):
        return isinstance(expected, dict) and len(got) == len(expected) and all(
            k in expected and same_value(v, expected[k]) for k, v in got.members)
    if isinstance(got, list):
        return isinstance(expected, list) and len(got) == len(expected) and all(
            same_value(a, b) for a, b in zip(got, expected, strict=True))
    if isinstance(got, float) and not isinstance(expected, bool):
        # rapidjson's normal-precision strtod may be a few ulps off for long numbers.
        return isinstance(expected, (int, float)) and math.isclose(got, expected, rel_tol=1e-14)
    return type(got) is type(expected) and got == expected


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_rapidjson_parse_agrees_with_python_json_on_valid_documents(value):
    body = json.dumps(value).encode()
    for iterative in (False, True):
        assert same_value(parse(body, iterative=iterative)[0], json.loads(body))


@settings(max_examples=500, deadline=None)
@given(st.from_regex(rb"\A-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,16})?\Z"))
def test_whole_token_number_reading_matches_rapidjsons_digit_loop(token):
    from kdiag.path import tfs_rapidjson as rj

    def read(fn):
        try:
            return repr(fn(token, 0))
        except RapidJsonError as e:
            return (e.text, e.offset)

    assert read(rj._parse_number) == read(rj._parse_number_slow)


# --- performance ----------------------------------------------------------------------------

@pytest.mark.slow
def test_validating_float_bodies_stays_close_to_bare_orjson():
    rng = np.random.default_rng(0)
    sigs = [sig(args_0=("float32", (-1, 784)))]
    bodies = [orjson.dumps({"instances": rng.random((4, 784), dtype=np.float32).tolist()})
              for _ in range(1000)]

    def best(fn):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            for b in bodies:
                fn(b)
            times.append(time.perf_counter() - t)
        return min(times)

    base = best(orjson.loads)
    ours = best(lambda b: parse_predict_request(b, sigs))
    assert ours < 3 * base, f"{ours / base:.2f}x bare orjson"
