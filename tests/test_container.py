"""The container stage per generation. Expected strings are from the container sources:
G1 aws/sagemaker-tensorflow-serving-container@da192561 docker/build_artifacts/sagemaker/,
G2 aws/deep-learning-containers@6712253d3b tensorflow/inference/docker/build_artifacts/sagemaker/,
G3 aws/deep-learning-containers@e0ecedea6a scripts/docker/tensorflow/inference/sagemaker/.
"""

import json
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdiag.errors import KdiagError
from kdiag.path.container import (
    AttrError,
    container_request,
    container_response,
    parse_custom_attributes,
    run_python_path,
    select_path,
)
from kdiag.path.container_common import GUNICORN_500, nginx_error_page
from kdiag.path.container_python import encode_requests_data, load_handlers
from kdiag.path.generations import Request, generation_for

G1 = generation_for("2.1")
G2 = generation_for("2.13")
G3 = generation_for("2.20")
G2_OLD = generation_for("2.4", image_date="2021-01-15")  # before db4dc591dc and 92bac823de
ALL = [G1, G2, G3]


def fwd(body, ct="application/json", gen=G2, **kw):
    res = container_request(Request(body if isinstance(body, bytes) else body.encode(), ct, **kw),
                            gen, model_name="model")
    return res


def codes(res):
    return [f.code for f in res.findings]


# --- generations ---------------------------------------------------------------------------------

@pytest.mark.parametrize("version,name", [("1.15", "G1"), ("2.1", "G1"), ("2.1.0", "G1"),
                                          ("2.2", "G2"), ("2.13", "G2"), ("2.19", "G2"),
                                          ("2.20", "G3"), ("2.21", "G3"), (None, "G3"),
                                          ("g2", "G2")])
def test_framework_version_selects_generation(version, name):
    assert generation_for(version).name == name


def test_tfs_version_follows_framework_minor():
    assert generation_for("2.13.1").tfs_version == "2.13"


def test_bad_framework_version_is_a_usage_error():
    with pytest.raises(KdiagError):
        generation_for("latest")


def test_old_g2_image_has_pre_2021_accept_rule_and_json_lines_first():
    assert G2_OLD.accept_rule == "exact-jsonlines"
    assert not G2_OLD.tfs_check_first
    assert G2_OLD.python_triggers == ("inference.py",)


def test_falcon_major_follows_errata_14():
    assert generation_for("2.6").falcon_major == 2
    assert generation_for("2.7").falcon_major == 3
    assert G1.falcon_major == 2


# --- content-type gate ---------------------------------------------------------------------------

@pytest.mark.parametrize("gen", [G1, G2])
@pytest.mark.parametrize("ct", ["application/json; charset=utf-8", "Application/JSON",
                                "application/x-npy", "application/octet-stream"])
def test_g1_g2_gate_compares_the_raw_header(gen, ct):
    res = fwd("[1]", ct, gen)
    # return_error(r, 415, 'Unsupported Media Type: ' + (ct || 'Unknown'))
    assert res.status == 415
    assert res.body == '{"error": "Unsupported Media Type: ' + ct + '"}'
    assert "KD201" in codes(res)


@pytest.mark.parametrize("gen", [G1, G2])
def test_g1_g2_missing_content_type_is_unknown(gen):
    assert fwd("[1]", None, gen).body == '{"error": "Unsupported Media Type: Unknown"}'


def test_g1_415_body_is_not_escaped():
    body = fwd("[1]", 'x/"y', G1).body
    assert body == '{"error": "Unsupported Media Type: x/"y"}'
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


def test_g3_gate_normalises_and_stringifies():
    assert fwd("[1]", "Application/JSON; charset=utf-8", G3).forwarded == '{"instances":[[1]]}'
    # JSON.stringify({error: ...}) has no space after the colon
    assert fwd("[1]", " Application/X-NPY ; q=1", G3).body == \
        '{"error":"Unsupported Media Type: application/x-npy"}'
    assert fwd("[1]", None, G3).body == '{"error":"Unsupported Media Type: Unknown"}'


@pytest.mark.parametrize("gen", ALL)
@pytest.mark.parametrize("ct", ["application/json", "application/jsonlines", "application/jsons"])
def test_all_json_types_use_the_same_dispatcher(gen, ct):
    assert fwd("[1,2]", ct, gen).forwarded == '{"instances":[[1,2]]}'


# --- JSON dispatcher -----------------------------------------------------------------------------

@pytest.mark.parametrize("gen", ALL)
def test_tfs_json_is_forwarded_byte_for_byte(gen):
    body = '{"signature_name": "s", "instances" :\n [[1, 2]]}'
    res = fwd(body, gen=gen)
    assert res.forwarded == body and res.mode == "tfs-json"


def test_nested_inputs_key_also_triggers_pass_through():
    body = '{"x": {"inputs": 1}}'
    assert fwd(body).forwarded == body


def test_signature_name_alone_is_wrapped():
    body = '{"signature_name": "s"}'
    assert fwd(body).forwarded == '{"instances":[' + body + "]}"


def test_bare_list_is_wrapped_as_one_instance():
    res = fwd("[1,2,3]")
    assert res.forwarded == '{"instances":[[1,2,3]]}' and "KD203" in codes(res)


def test_list_of_lists_is_the_instances_list():
    assert fwd(" [ \n[1,2],[3,4]]").forwarded == '{"instances": [ \n[1,2],[3,4]]}'


def test_list_of_objects_is_one_instance():
    assert fwd('[{"x":1},{"x":2}]').forwarded == '{"instances":[[{"x":1},{"x":2}]]}'


def test_object_is_wrapped_as_one_instance():
    assert fwd('{"x": [1]}').forwarded == '{"instances":[{"x": [1]}]}'


def test_empty_json_body_becomes_undefined():
    res = fwd(b"")
    assert res.forwarded == '{"instances":[undefined]}' and "KD207" in codes(res)


def test_json_lines_are_merged():
    res = fwd("[1,2]\r\n\r\n[3,4]\n", "application/jsonlines")
    assert res.forwarded == '{"instances":[[1,2],[3,4]]}' and res.mode == "json-lines"


def test_json_lines_of_objects_are_merged():
    assert fwd('{"a":1}\n {"a":2} ').forwarded == '{"instances":[{"a":1},{"a":2}]}'


def test_one_line_json_lines_keep_no_brackets():
    res = fwd("[1] [2]")
    assert res.forwarded == '{"instances":[1] [2]}' and "KD205" in codes(res)


def test_string_content_can_trigger_json_lines_on_one_line():
    assert fwd('{"a": "] ["}').forwarded == '{"instances":{"a": "] ["}}'


def test_json_lines_of_tfs_requests_pass_through_unmerged():
    body = '{"instances": [1]}\n{"instances": [2]}'
    res = fwd(body)
    assert res.forwarded == body and "KD206" in codes(res)


def test_before_july_2022_json_lines_were_checked_first():
    body = '{"instances": [1]}\n{"instances": [2]}'
    assert fwd(body, gen=G2_OLD).forwarded == '{"instances":[{"instances": [1]},{"instances": [2]}]}'


def test_javascript_whitespace_is_not_pythons():
    # \x1c is whitespace for Python's str.strip and re \s, not for JavaScript.
    assert fwd("\x1c[[1]]").forwarded == '{"instances":[\x1c[[1]]]}'
    assert fwd("\u00a0[[1]]").forwarded == '{"instances":\u00a0[[1]]}'


# --- CSV -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("body,expected", [
    ("1,2,3\n4,5,6", '{"instances":[[1,2,3],[4,5,6]]}'),
    ("1\n2\n3", '{"instances":[1,2,3]}'),
    ("a,b,c\n1,2,3", '{"instances":[["a","b,c"],["1","2,3"]]}'),
    ("iris,0.5,1.0,1.5", '{"instances":[["iris","0.5,1.0,1.5"]]}'),
    ("east,1", '{"instances":[[east,1]]}'),
    ('x"y"z,1', '{"instances":[["x\\"y"z","1"]]}'),
    ('"a",1', '{"instances":[["a",1]]}'),
    ("1,2\r\n\r\n 3,4 \r\n", '{"instances":[[1,2],[3,4]]}'),
    ("NaN,1", '{"instances":[["NaN","1"]]}'),
    ("-1,+2,.5,1e3", '{"instances":[[-1,+2,.5,1e3]]}'),
    ("1,,3", '{"instances":[[1,,3]]}'),
])
@pytest.mark.parametrize("gen", [G1, G2])
def test_legacy_csv_converter(gen, body, expected):
    assert fwd(body, "text/csv", gen).forwarded == expected


def test_legacy_csv_header_row_is_flagged():
    res = fwd("a,b,c\n1,2,3", "text/csv", G2)
    assert {"KD208", "KD210"} <= set(codes(res))


def test_single_column_csv_gives_scalars():
    assert "KD209" in codes(fwd("1\n2", "text/csv"))


@pytest.mark.parametrize("body,expected", [
    ("a,b,c\n1,2,3", '{"instances":[["a","b","c"],[1,2,3]]}'),
    ('"x,y",2', '{"instances":[["x,y",2]]}'),
    ('"He said ""hi""",1', '{"instances":[["He said \\"hi\\"",1]]}'),
    ("1 , 2", '{"instances":[[1,2]]}'),
    ("a , b", '{"instances":[["a "," b"]]}'),
    ("NaN,1.,.5,+1,007,-0,1e5", '{"instances":[["NaN","1.",".5","+1","007",-0,1e5]]}'),
    ("a\\b,1", '{"instances":[["a\\\\b",1]]}'),
    ("x", '{"instances":["x"]}'),
    ("1,,3", '{"instances":[[1,"",3]]}'),
    ("5\n6", '{"instances":[5,6]}'),
])
def test_g3_csv_converter(body, expected):
    out = fwd(body, "text/csv", G3).forwarded
    assert out == expected
    json.loads(out)  # G3 always produces valid JSON


@pytest.mark.parametrize("gen", ALL)
def test_empty_csv_body_throws_in_njs(gen):
    res = fwd(b"", "text/csv", gen)
    assert res.status == 500 and res.body == nginx_error_page(500) and "KD212" in codes(res)
    assert res.body.startswith("<html>\r\n<head><title>500 Internal Server Error</title>")


# --- custom attributes ---------------------------------------------------------------------------

@pytest.mark.parametrize("gen", ALL)
def test_model_version_and_method_route_the_call(gen):
    res = fwd("[1]", gen=gen,
              custom_attributes="trace=7,tfs-model-name=m2,tfs-model-version=3,tfs-method=classify")
    assert res.target.uri == "/v1/models/m2/versions/3:classify"
    assert res.target.version == 3


def test_default_model_without_attributes():
    assert fwd("[1]").target.uri == "/v1/models/model:predict"


def test_values_are_not_trimmed():
    res = fwd("[1]", custom_attributes="tfs-model-name= m2, tfs-method=regress")
    assert res.target.uri == "/v1/models/ m2:regress" and "KD218" in codes(res)


def test_keys_are_case_sensitive():
    assert fwd("[1]", custom_attributes="TFS-MODEL-NAME=x").target.model == "model"


def test_last_duplicate_wins():
    assert fwd("[1]", custom_attributes="tfs-model-name=a,tfs-model-name=b").target.model == "b"


@pytest.mark.parametrize("gen", ALL)
def test_njs_drops_a_value_containing_equals(gen):
    res = fwd("[1]", gen=gen, custom_attributes="tfs-model-name=a=b")
    assert res.target.model == "model" and "KD213" in codes(res)


def test_unknown_tfs_attribute_is_flagged():
    assert "KD216" in codes(fwd("[1]", custom_attributes="tfs-signature=serving_default"))


def test_g2_forwards_any_version_and_method():
    res = fwd("[1]", custom_attributes="tfs-model-version=v1,tfs-method=explain")
    assert res.target.uri == "/v1/models/model/versions/v1:explain"
    assert res.target.version is None and "KD217" in codes(res)


@pytest.mark.parametrize("attr,message", [
    ("tfs-model-name=bad/name", "invalid tfs-model-name"),
    ("tfs-model-version=v1", "invalid tfs-model-version"),
    ("tfs-method=explain", "invalid tfs-method"),
])
def test_g3_njs_rejects_bad_attributes(attr, message):
    res = fwd("[1]", gen=G3, custom_attributes=attr)
    assert res.status == 400 and res.body == '{"error":"' + message + '"}'


@pytest.mark.parametrize("attr,message", [
    ("tfs-model-name=bad/name", "invalid tfs-model-name"),
    ("tfs-model-name=a=b", "invalid tfs-model-name"),
    ("tfs-model-version=v1", "invalid tfs-model-version: must be a positive integer"),
    ("tfs-method=explain", "invalid tfs-method: must be one of predict|classify|regress"),
])
def test_g3_python_rejects_bad_attributes(attr, message):
    err = parse_custom_attributes(attr, G3, "python")
    assert isinstance(err, AttrError) and err.status == 400
    assert err.body == json.dumps({"error": message})


def test_g3_python_splits_on_the_first_equals_only():
    assert parse_custom_attributes("tfs-model-version=1,x=y,tfs-method=predict", G3, "python") \
        == {"tfs-model-version": "1", "tfs-method": "predict"}
    assert parse_custom_attributes("tfs-model-name=m==", G3, "njs") == {}


def test_g1_python_fails_with_gunicorn_500_on_equals():
    err = parse_custom_attributes("tfs-model-name=a=b", G1, "python")
    assert err.status == 500 and err.body == GUNICORN_500 and err.content_type == "text/html"
    assert err.message == "dictionary update sequence element #0 has length 3; 2 is required"


def test_g2_falcon3_python_fails_with_falcon_500_on_equals():
    err = parse_custom_attributes("tfs-model-name=a=b", G2, "python", accept="application/json")
    assert err.status == 500 and err.body == '{"title": "500 Internal Server Error"}'


# --- which path ----------------------------------------------------------------------------------

@pytest.mark.parametrize("gen,req_only,expected", [
    (G1, True, "njs"), (G2, True, "python-default"), (G3, True, "python-default"),
    (G2_OLD, True, "njs"), (G2, False, "njs"),
])
def test_requirements_without_inference_switch_path_per_generation(gen, req_only, expected):
    assert select_path(gen, has_inference=False, has_requirements=req_only) == expected


def test_inference_py_selects_python_and_mme_selects_default():
    assert select_path(G1, has_inference=True) == "python"
    assert select_path(G1, has_inference=False, multi_model=True) == "python-default"


def test_requirements_only_forwards_csv_raw(tmp_path):
    (tmp_path / "requirements.txt").write_text("numpy\n")
    res = container_request(Request(b"1,2,3", "text/csv"), G2, model_name="m", code_dir=tmp_path)
    assert res.path == "python-default" and res.forwarded == "1,2,3" and res.mode == "raw"
    assert "KD202" in codes(res)


def test_lib_only_in_g1_still_uses_njs(tmp_path):
    (tmp_path / "lib").mkdir()
    res = container_request(Request(b"1,2,3", "text/csv"), G1, model_name="m", code_dir=tmp_path)
    assert res.path == "njs" and res.forwarded == '{"instances":[[1,2,3]]}'


def test_g3_default_handler_415s_unknown_types():
    res = container_request(Request(b"\xff\xd8", "image/jpeg"), G3, model_name="m",
                            has_requirements=True)
    assert res.status == 415 and res.body == '{"error": "Unsupported Media Type: image/jpeg"}'


def test_g3_default_handler_forwards_without_content_type():
    res = container_request(Request(b"[1]", None), G3, model_name="m", has_requirements=True)
    assert res.forwarded == "[1]"


def test_default_handler_fails_on_non_utf8():
    res = container_request(Request(b"\x93NUMPY", "application/x-npy"), G2, model_name="m",
                            has_requirements=True)
    assert res.status == 500
    assert res.body == json.dumps(
        {"error": "'utf-8' codec can't decode byte 0x93 in position 0: invalid start byte"})


def test_default_handler_latin1_encoding_fails_in_old_images():
    gen = generation_for("2.11")
    assert gen.str_body_encoding == "latin-1"
    res = container_request(Request("[\"\u2019\"]".encode(), "application/json"), gen,
                            model_name="m", has_requirements=True)
    assert res.status == 500 and "is not valid Latin-1" in json.loads(res.body)["error"]
    ok = container_request(Request("[\"\u2019\"]".encode(), "application/json"), G3,
                           model_name="m", has_requirements=True)
    assert ok.forwarded == "[\"\u2019\"]"


# --- response side -------------------------------------------------------------------------------

TFS_400 = '{\n    "error": "Type: String is not of expected type: float"\n}'


def resp(accept, gen=G2, status=400, body=TFS_400, path="njs"):
    return container_response(status, body, Request(b"[1]", "application/json", accept=accept),
                              gen, path)


def test_njs_accept_json_strips_newlines():
    r = resp("application/json")
    assert r.status == 400 and r.body == '{    "error": "Type: String is not of expected type: float"}'
    assert r.content_type == "application/json"


def test_njs_echoes_the_first_accept_type():
    r = resp("text/csv, application/json")
    assert r.content_type == "text/csv" and "\n" not in r.body and "KD641" in codes(r)


def test_njs_removes_only_the_first_space():
    # "a, b, application/json" -> ["a", "b", " application/json"]: no JSON listed
    assert "\n" in resp("a, b, application/json").body


def test_njs_without_accept_keeps_newlines():
    r = resp(None)
    assert r.body == TFS_400 and r.content_type == "application/json"


def test_g3_accept_always_labels_json():
    r = resp("text/csv, application/json", gen=G3)
    assert r.content_type == "application/json" and "\n" not in r.body


def test_old_accept_rule_only_for_exact_jsonlines():
    assert "\n" in resp("application/json", gen=G2_OLD).body
    r = resp("application/jsonlines", gen=G2_OLD)
    assert r.content_type == "application/jsonlines" and "\n" not in r.body


def test_instances_quote_fix_applies_to_first_occurrence_on_400_only():
    body = "{ \"error\": \"\\'instances\\' \\'instances\\'\" }"
    assert resp(None, body=body).body == "{ \"error\": \"'instances' \\'instances\\'\" }"
    assert resp(None, status=404, body=body).body == body


def test_njs_tfs_down_is_502_html():
    r = container_response(None, "", Request(b"[1]", "application/json"), G2, "njs")
    assert r.status == 502 and r.body == nginx_error_page(502)


def test_g2_default_handler_masks_errors_as_200():
    r = resp("application/json; charset=utf-8", path="python-default")
    assert r.status == 200 and r.body == TFS_400
    assert r.content_type == "application/json; charset=utf-8" and "KD640" in codes(r)


@pytest.mark.parametrize("accept,ct,body", [
    (None, "application/json",
     json.dumps({"title": "400 Bad Request", "description": TFS_400}, ensure_ascii=False)),
    ("*/*", "application/json",
     json.dumps({"title": "400 Bad Request", "description": TFS_400}, ensure_ascii=False)),
    ("text/csv, application/json", "application/json",
     json.dumps({"title": "400 Bad Request", "description": TFS_400}, ensure_ascii=False)),
    ("text/csv", "application/json", ""),
    ("application/x-npy", "application/json", ""),
    ("application/vnd.api+json", "application/json",
     json.dumps({"title": "400 Bad Request", "description": TFS_400}, ensure_ascii=False)),
])
def test_g3_default_handler_error_body_depends_on_accept(accept, ct, body):
    # errata §1 (falcon 3.1.0 default_serialize_error)
    r = resp(accept, gen=G3, path="python-default")
    assert (r.status, r.content_type, r.body) == (400, ct, body)


def test_g3_default_handler_xml_error():
    r = resp("application/xml", gen=G3, path="python-default", status=404, body="nf")
    assert r.content_type == "application/xml"
    assert r.body == ('<?xml version="1.0" encoding="UTF-8"?><error><title>404 Not Found</title>'
                      "<description>nf</description></error>")


# --- Python path with user code ------------------------------------------------------------------

def write_code(tmp_path, source):
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "inference.py").write_text(textwrap.dedent(source))
    return code


PAIR = """
import json
SEEN = []

def input_handler(data, context):
    SEEN.append(context)
    return data.read().decode("utf-8")

def output_handler(response, context):
    return response.content, context.accept_header
"""


class FakeTfs:
    def __init__(self, status=200, body='{"predictions": [[0.5]]}'):
        self.status, self.body, self.calls = status, body, []

    def __call__(self, wire, target):
        self.calls.append((wire, target.uri))
        return self.status, self.body


def run(code, req, gen=G2, tfs=None):
    tfs = tfs or FakeTfs()
    return run_python_path(req, gen, code_dir=code, model_name="model", send_to_tfs=tfs), tfs


def test_handler_pair_round_trip(tmp_path):
    code = write_code(tmp_path, PAIR)
    res, tfs = run(code, Request(b'{"instances": [[1]]}', "application/json",
                                 custom_attributes="tfs-model-name=m2"))
    assert tfs.calls == [(b'{"instances": [[1]]}', "/v1/models/m2:predict")]
    assert (res.status, res.content_type, res.body) == (200, "application/json",
                                                         '{"predictions": [[0.5]]}')


@pytest.mark.parametrize("gen", [G1, G2])
def test_g1_g2_answer_200_whatever_tfs_said(tmp_path, gen):
    res, _ = run(write_code(tmp_path, PAIR), Request(b"[1]", "application/json"), gen,
                 FakeTfs(400, TFS_400))
    assert res.status == 200 and res.body == TFS_400 and "KD640" in codes(res)


def test_g3_raises_before_output_handler(tmp_path):
    code = write_code(tmp_path, """
        def input_handler(data, context):
            return data.read()
        def output_handler(response, context):
            raise AssertionError("must not run")
    """)
    res, _ = run(code, Request(b"[1]", "application/json", accept="application/json"), G3,
                 FakeTfs(400, TFS_400))
    assert res.status == 400
    assert json.loads(res.body) == {"title": "400 Bad Request", "description": TFS_400}


def test_input_handler_dict_is_form_encoded(tmp_path):
    code = write_code(tmp_path, """
        def input_handler(data, context):
            return {"instances": [1.0, 2.0]}
        def output_handler(response, context):
            return response.content, "application/json"
    """)
    res, tfs = run(code, Request(b"[1]", "application/json"))
    assert tfs.calls[0][0] == b"instances=1.0&instances=2.0" and "KD224" in codes(res)


def test_output_handler_must_return_a_pair(tmp_path):
    code = write_code(tmp_path, """
        def input_handler(data, context):
            return data.read()
        def output_handler(response, context):
            return response.content
    """)
    res, _ = run(code, Request(b"[1]", "application/json"))
    assert res.status == 500
    assert res.body == json.dumps({"error": "too many values to unpack (expected 2)"})
    assert "KD227" in codes(res)


def test_handler_exception_is_500_with_str_of_exception(tmp_path):
    code = write_code(tmp_path, """
        def handler(data, context):
            raise ValueError('bad "input" é')
    """)
    res, _ = run(code, Request(b"[1]", "application/json"))
    # json.dumps({"error": str(e)}) (ensure_ascii) -- python_service.py G2 l.432
    assert res.status == 500 and res.body == '{"error": "bad \\"input\\" \\u00e9"}'


def test_missing_handlers_fail_at_startup(tmp_path):
    code = write_code(tmp_path, """
        def input_fn(data, content_type):
            return data
    """)
    res, _ = run(code, Request(b"[1]", "application/json"))
    assert res.status is None
    assert res.startup_error == ("NotImplementedError: Handlers are not implemented correctly "
                                 "in user script.")
    static = container_request(Request(b"[1]", "application/json"), G2, model_name="m",
                               code_dir=code)
    assert {"KD221", "KD223"} <= set(codes(static)) and static.path == "python"


def test_import_error_fails_at_startup(tmp_path):
    code = write_code(tmp_path, "import not_a_module_kdiag\n")
    assert load_handlers(code).startup_error.startswith("ModuleNotFoundError")


@pytest.mark.parametrize("gen,fields", [
    (G2, ("model_name", "model_version", "method", "rest_uri", "grpc_port", "channel",
          "custom_attributes", "request_content_type", "accept_header", "content_length")),
    (G3, ("model_name", "model_version", "method", "rest_uri", "grpc_port", "channel",
          "custom_attributes", "request_content_type", "accept_header", "content_length",
          "timeout")),
])
def test_context_fields_and_defaults(tmp_path, gen, fields):
    code = write_code(tmp_path, PAIR)
    handlers = load_handlers(code)
    run_python_path(Request(b"[1]", None, custom_attributes="x=1"), gen, handlers=handlers,
                    model_name="model", send_to_tfs=FakeTfs())
    ctx = handlers.input_handler.__globals__["SEEN"][0]
    assert ctx._fields == fields
    assert ctx.model_name is None and ctx.method is None and ctx.model_version is None
    assert ctx.request_content_type == "application/json"
    assert ctx.accept_header == "application/json"
    assert ctx.rest_uri == "http://localhost:8501/v1/models/model:predict"
    assert ctx.custom_attributes == "x=1" and ctx.content_length == 3
    if gen is G3:
        assert ctx.timeout == 60


def test_single_handler_requests_post_reaches_emulated_tfs(tmp_path):
    pytest.importorskip("requests")
    code = write_code(tmp_path, """
        import requests
        def handler(data, context):
            r = requests.post(context.rest_uri, data=data.read())
            return r.content, "application/json"
    """)
    res, tfs = run(code, Request(b'{"instances": [1]}', "application/json"))
    assert tfs.calls == [(b'{"instances": [1]}', "/v1/models/model:predict")]
    assert res.status == 200 and res.body == '{"predictions": [[0.5]]}'


def test_stream_can_be_read_once(tmp_path):
    code = write_code(tmp_path, """
        def input_handler(data, context):
            data.read()
            return data.read()
        def output_handler(response, context):
            return response.content, "application/json"
    """)
    _, tfs = run(code, Request(b"[1]", "application/json"))
    assert tfs.calls[0][0] == b""


def test_output_handler_gets_a_response_like_object(tmp_path):
    code = write_code(tmp_path, """
        import json
        def input_handler(data, context):
            return data.read()
        def output_handler(response, context):
            if response.status_code != 200:
                raise ValueError(response.text)
            preds = response.json()["predictions"]
            assert response.headers["content-type"] == "application/json"
            return json.dumps(preds), "application/json"
    """)
    res, _ = run(code, Request(b"[1]", "application/json"))
    assert res.body == "[[0.5]]"
    bad, _ = run(code, Request(b"[1]", "application/json"), tfs=FakeTfs(404, "nf"))
    assert bad.status == 500 and bad.body == '{"error": "nf"}'


def test_non_latin1_str_from_input_handler_fails_in_old_images(tmp_path):
    code = write_code(tmp_path, """
        def input_handler(data, context):
            return '{"instances": ["\u2019"]}'
        def output_handler(response, context):
            return response.content, "application/json"
    """)
    res, _ = run(code, Request(b"[1]", "application/json"), generation_for("2.11"))
    assert res.status == 500 and "is not valid Latin-1" in json.loads(res.body)["error"]
    ok, tfs = run(code, Request(b"[1]", "application/json"), G3)
    assert ok.status == 200 and tfs.calls[0][0] == '{"instances": ["\u2019"]}'.encode()


def test_g1_equals_in_attribute_fails_before_handlers(tmp_path):
    res, tfs = run(write_code(tmp_path, PAIR),
                   Request(b"[1]", "application/json", custom_attributes="tfs-model-name=a=b"), G1)
    assert res.status == 500 and res.body == GUNICORN_500 and tfs.calls == []


def test_g3_handler_can_raise_falcon_http_error(tmp_path):
    code = write_code(tmp_path, """
        import falcon
        def handler(data, context):
            raise falcon.HTTPError(422, description="nope")
    """)
    lib = code / "lib"
    lib.mkdir()
    (lib / "falcon.py").write_text(textwrap.dedent("""
        class HTTPError(Exception):
            def __init__(self, status, description=None):
                super().__init__(description)
                self.status, self.description, self.title = status, description, None
    """))
    saved = sys.modules.pop("falcon", None)
    try:
        res3, _ = run(code, Request(b"[1]", "application/json"), G3)
        res2, _ = run(code, Request(b"[1]", "application/json"), G2)
    finally:
        sys.modules.pop("falcon", None)
        if saved is not None:
            sys.modules["falcon"] = saved
    assert res3.status == 422
    assert json.loads(res3.body) == {"title": "422 Unprocessable Entity", "description": "nope"}
    assert res2.status == 500 and res2.body == '{"error": "nope"}'


# --- requests body encoding ----------------------------------------------------------------------

def test_requests_data_encoding():
    assert encode_requests_data(None, G3) == (b"", None)
    assert encode_requests_data(b"x", G3) == (b"x", None)
    assert encode_requests_data({"a": [1, 2], "b": "c"}, G3) == (
        b"a=1&a=2&b=c", "application/x-www-form-urlencoded")
    with pytest.raises(ValueError, match="2-tuples"):
        encode_requests_data(5, G3)


# --- properties ----------------------------------------------------------------------------------

headers = st.one_of(st.none(), st.text(max_size=30),
                    st.sampled_from(["application/json", "text/csv", "application/jsonlines",
                                     "Application/JSON; charset=utf-8"]))
attrs = st.one_of(st.none(), st.text(max_size=40),
                  st.builds(lambda k, v: f"tfs-{k}={v}",
                            st.sampled_from(["model-name", "model-version", "method", "x"]),
                            st.text(max_size=10)))


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=300), ct=headers, accept=st.one_of(st.none(), st.text(max_size=30)),
       ca=attrs, gen=st.sampled_from([G1, G2, G3, G2_OLD]),
       kind=st.sampled_from(["njs", "default", "python"]))
def test_random_requests_never_raise(body, ct, accept, ca, gen, kind):
    req = Request(body, ct, accept, ca)
    res = container_request(req, gen, model_name="model",
                            has_requirements=kind == "default", has_inference=kind == "python")
    assert res.record is not None
    assert (res.forwarded is not None) or (res.status is not None) or res.path == "python"
    if res.forwarded is not None:
        r = container_response(200, '{"predictions": []}', req, gen, res.path)
        assert r.status is not None


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200), gen=st.sampled_from([G1, G3]))
def test_random_text_bodies_never_raise(text, gen):
    for ct in ("application/json", "text/csv"):
        res = container_request(Request(text.encode("utf-8", "surrogatepass"), ct), gen,
                                model_name="m")
        assert res.forwarded is not None or res.status in (500,)


@settings(max_examples=200, deadline=None)
@given(status=st.one_of(st.none(), st.integers(100, 599)), body=st.text(max_size=100),
       accept=st.one_of(st.none(), st.text(max_size=30)), gen=st.sampled_from(ALL),
       path=st.sampled_from(["njs", "python-default"]))
def test_random_responses_never_raise(status, body, accept, gen, path):
    r = container_response(status, body, Request(b"[1]", "application/json", accept), gen, path)
    assert r.status is not None and r.body is not None
