"""The wire stage: SageMaker Runtime limits (botocore sagemaker-runtime 2017-05-13 service model)
and the header/body checks the container needs."""

import gzip
import json
from pathlib import Path

import botocore
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdiag.errors import KdiagError
from kdiag.path.generations import Request
from kdiag.path.wire import BODY_LIMITS, HEADER_LIMIT, check_wire


def codes(result):
    return [f.code for f in result.findings]


def test_limits_match_the_botocore_service_model():
    path = Path(botocore.__file__).parent / "data/sagemaker-runtime/2017-05-13/service-2.json.gz"
    with gzip.open(path) as fh:
        model = json.loads(fh.read())
    shapes = model["shapes"]
    members = shapes["InvokeEndpointInput"]["members"]
    assert shapes[members["Body"]["shape"]]["max"] == BODY_LIMITS["realtime"] == 6291456
    for name in ("ContentType", "Accept", "CustomAttributes"):
        assert shapes[members[name]["shape"]]["max"] == HEADER_LIMIT


def test_body_at_the_realtime_limit_is_accepted():
    res = check_wire(Request(b"1" * 6291456, "text/csv"))
    assert res.accepted and "KD101" not in codes(res)


def test_body_one_byte_over_the_realtime_limit_is_refused():
    res = check_wire(Request(b"1" * 6291457, "text/csv"))
    assert not res.accepted and "KD101" in codes(res)
    assert res.record.verdict == "fail"


def test_serverless_limit_is_4_mib():
    body = b"1" * (4 * 1024 * 1024 + 1)
    assert not check_wire(Request(body, "text/csv"), endpoint_kind="serverless").accepted
    assert check_wire(Request(body, "text/csv"), endpoint_kind="realtime").accepted


def test_unknown_endpoint_kind_is_a_usage_error():
    with pytest.raises(KdiagError):
        check_wire(Request(b"[]", "application/json"), endpoint_kind="batch")


@pytest.mark.parametrize("field", ["content_type", "accept", "custom_attributes"])
def test_header_over_1024_characters_is_refused(field):
    kwargs = {"content_type": "application/json", field: "a" * 1025}
    res = check_wire(Request(b"[1]", **kwargs))
    assert not res.accepted and "KD102" in codes(res)


def test_header_of_1024_characters_is_accepted():
    res = check_wire(Request(b"[1]", "application/json", custom_attributes="a" * 1024))
    assert res.accepted and "KD102" not in codes(res)


def test_non_ascii_header_is_refused():
    res = check_wire(Request(b"[1]", "application/json", custom_attributes="tfs-model-name=modèle"))
    assert not res.accepted and "KD103" in codes(res)


def test_control_characters_in_custom_attributes_warn():
    assert "KD112" in codes(check_wire(Request(b"[1]", "application/json",
                                               custom_attributes="a\tb")))


def test_missing_content_type_warns_about_njs_415():
    res = check_wire(Request(b"[1]", None))
    assert "KD104" in codes(res) and res.accepted


def test_charset_parameter_warns():
    res = check_wire(Request(b"[1]", "application/json; charset=utf-8"))
    assert "KD106" in codes(res)
    assert res.media_type == "application/json"


def test_uppercase_content_type_warns():
    assert "KD107" in codes(check_wire(Request(b"[1]", "Application/JSON")))


def test_malformed_content_type_warns():
    assert "KD105" in codes(check_wire(Request(b"[1]", "json")))


def test_binary_content_type_is_flagged_as_not_converted():
    res = check_wire(Request(b"\x93NUMPY", "application/x-npy"))
    assert "KD108" in codes(res) and "KD109" not in codes(res)


def test_non_utf8_json_is_an_error():
    res = check_wire(Request(b"\x93NUMPY", "application/json"))
    assert "KD109" in codes(res)
    assert res.record.verdict == "fail"


def test_byte_order_mark_warns():
    assert "KD111" in codes(check_wire(Request("\ufeff[1]".encode(), "application/json")))


def test_empty_body_warns():
    assert "KD110" in codes(check_wire(Request(b"", "application/json")))


def test_clean_request_has_no_findings():
    res = check_wire(Request(b'{"instances": [[1.0, 2.0]]}', "application/json",
                             accept="application/json"))
    assert res.findings == [] and res.record.verdict == "ok" and res.record.size == 27


def test_str_body_is_taken_as_utf8():
    assert check_wire(Request("[1, 2]", "application/json")).size == 6


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=512),
       ct=st.one_of(st.none(), st.text(max_size=40)),
       accept=st.one_of(st.none(), st.text(max_size=40)),
       ca=st.one_of(st.none(), st.text(max_size=60)),
       kind=st.sampled_from(sorted(BODY_LIMITS)))
def test_random_requests_never_raise(body, ct, accept, ca, kind):
    res = check_wire(Request(body, ct, accept, ca), endpoint_kind=kind)
    assert res.record is not None and res.size == len(body)
