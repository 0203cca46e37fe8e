"""kdiag.ci.check: the pre-deploy gate's library, on the real fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kdiag.ci.check import (
    CheckOptions,
    OutputExpectation,
    parse_expectation,
    parse_payload_arg,
    run_check,
)
from kdiag.ci.config import PayloadEntry
from kdiag.errors import KdiagError
from kdiag.model.runner import tensorflow_available
from tests.conftest import ARCHIVES, FIXTURES, MODELS

needs_tf = pytest.mark.skipif(not tensorflow_available(), reason="needs TensorFlow")
GOOD = str(ARCHIVES / "good.tar.gz")
CUSTOM_EXPORT = str(MODELS / "custom" / "export" / "1")
TWO_INPUTS = str(MODELS / "two_inputs" / "1")


def codes(result) -> set[str]:
    return {f.code for f in result.findings}


def case(result, name: str):
    return next(c for c in result.cases if c.name == name)


def failed_names(result) -> list[str]:
    return [c.name for c in result.cases if c.status == "failed"]


# ---- parsing ---------------------------------------------------------------------------------

def test_expectation_parses_name_dtype_and_shape_with_minus_one_as_any():
    e = parse_expectation("score:float32:-1,1")
    assert e == OutputExpectation("score", "float32", (-1, 1), "score:float32:-1,1")
    assert e.shape_matches((7, 1)) is True
    assert e.shape_matches((7, 2)) is False
    assert e.shape_matches((7,)) is False


def test_expectation_accepts_brackets_tf_dtype_names_and_wildcards():
    assert parse_expectation("probs:DT_FLOAT:[-1, 3]").shape == (-1, 3)
    assert parse_expectation("probs:DT_FLOAT:[-1, 3]").dtype == "float32"
    assert parse_expectation("x:int64").shape is None
    assert parse_expectation("x::-1").dtype is None
    assert parse_expectation("y:*:()").shape == ()


def test_expectation_against_an_unknown_signature_dim_is_undecided_not_failed():
    assert parse_expectation("o:float32:-1,3").shape_matches((-1, -1)) is None


@pytest.mark.parametrize("text", ["", ":float32", "a:float32:1,x", "a:nosuchtype:-1",
                                  "a:b:c:d", "a:float32:-2"])
def test_bad_expectation_is_a_usage_error(text):
    with pytest.raises(KdiagError, match="expect-output"):
        parse_expectation(text)


def test_payload_arg_takes_a_content_type_after_the_last_colon_only_when_it_looks_like_one():
    assert parse_payload_arg("rows.csv:text/csv") == PayloadEntry("rows.csv", "text/csv")
    assert parse_payload_arg("a.json:json") == PayloadEntry("a.json", "application/json")
    assert parse_payload_arg("a.json:application/json; charset=utf-8") == PayloadEntry(
        "a.json", "application/json; charset=utf-8")
    assert parse_payload_arg(r"C:\data\a.json") == PayloadEntry(r"C:\data\a.json")
    assert parse_payload_arg("a.json") == PayloadEntry("a.json")


# ---- the artifact ----------------------------------------------------------------------------

def test_clean_archive_passes_without_a_model_run():
    r = run_check(CheckOptions(model=GOOD, replay=False))
    assert r.exit_code == 0, failed_names(r)
    assert case(r, "artifact: lint").status == "passed"
    assert case(r, "payload generated [application/json]: validate").status == "passed"
    assert case(r, "replay").status == "skipped"
    assert not r.replayed


@pytest.mark.parametrize("archive,code", [
    ("no_version", "KD001"), ("code_in_version", "KD002"), ("wrapped", "KD002"),
    ("keras_only", "KD003"),
])
def test_each_broken_archive_fails_with_its_artifact_finding(archive, code):
    r = run_check(CheckOptions(model=str(ARCHIVES / f"{archive}.tar.gz"), replay=False))
    assert r.exit_code == 1
    bad = [c for c in r.cases if c.status == "failed"]
    assert bad and bad[0].name.startswith(f"artifact: {code} ")
    assert bad[0].findings[0].code == code
    assert bad[0].file == str(ARCHIVES / f"{archive}.tar.gz")


def test_archive_without_a_readable_signature_skips_the_payload_checks():
    r = run_check(CheckOptions(model=str(ARCHIVES / "keras_only.tar.gz"), replay=False,
                               expect_output=[parse_expectation("output_0:float32:-1,1")]))
    assert case(r, "payloads").status == "skipped"
    assert case(r, "expect-output output_0:float32:-1,1").status == "skipped"


def test_predict_override_in_a_keras_file_is_reported_with_custom_objects():
    r = run_check(CheckOptions(model=str(MODELS / "custom" / "custom.keras"), replay=False,
                               custom_objects=FIXTURES / "custom_model.py"))
    assert {"KD003", "KD031"} <= codes(r)
    assert any(c.name.startswith("artifact: KD031 ") for c in r.cases)
    assert r.exit_code == 1


def test_fail_on_warning_fails_a_model_whose_only_finding_is_a_warning():
    two = str(ARCHIVES / "two_models.tar.gz")  # KD004 warning: no default model named
    assert run_check(CheckOptions(model=two, replay=False)).exit_code == 0
    r = run_check(CheckOptions(model=two, replay=False, fail_on="warning"))
    assert r.exit_code == 1
    assert failed_names(r) == [next(c.name for c in r.cases if "KD004" in c.name)]


# ---- payloads and the request path -----------------------------------------------------------

def test_declared_csv_that_cannot_carry_two_inputs_is_a_finding():
    r = run_check(CheckOptions(model=TWO_INPUTS, replay=False,
                               content_types=["application/json", "text/csv"]))
    c = case(r, "payload generated [text/csv]: generate")
    assert c.status == "failed" and c.findings[0].code == "KD850"
    assert "text/csv" in c.findings[0].message
    assert case(r, "payload generated [application/json]: validate").status == "passed"


def test_content_type_the_container_does_not_know_is_refused_without_handlers():
    r = run_check(CheckOptions(model=CUSTOM_EXPORT, replay=False, content_types=["image/png"]))
    c = case(r, "payload generated [image/png]: validate")
    assert c.status == "failed"
    assert "HTTP 415" in c.detail


def test_content_type_only_inference_py_knows_asks_for_an_example():
    r = run_check(CheckOptions(model=GOOD, replay=False, content_types=["image/png"]))
    c = case(r, "payload generated [image/png]: generate")
    assert c.status == "skipped" and c.findings[0].code == "KD852"
    assert r.exit_code == 0


def test_team_payload_of_the_wrong_width_fails_with_the_request_path_finding(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"instances": [[1, 2, 3]]}')
    r = run_check(CheckOptions(model=CUSTOM_EXPORT, replay=False,
                               payloads=[PayloadEntry(str(bad))], content_types=[]))
    c = case(r, f"payload {bad} [application/json]: validate")
    assert c.status == "failed"
    assert c.file == str(bad)
    assert all(f.message.startswith(f"{bad} [application/json]: ") for f in c.findings)
    assert any(f.severity == "error" for f in c.findings)


def test_content_type_with_charset_depends_on_the_framework_version(tmp_path):
    body = tmp_path / "req.json"
    body.write_text('{"instances": [[1, 1, 1, 1, 1]]}')
    entry = PayloadEntry(str(body), "application/json; charset=utf-8")
    name = f"payload {body} [application/json; charset=utf-8]: validate"
    old = run_check(CheckOptions(model=CUSTOM_EXPORT, replay=False, payloads=[entry],
                                 content_types=[], framework_version="2.16"))
    new = run_check(CheckOptions(model=CUSTOM_EXPORT, replay=False, payloads=[entry],
                                 content_types=[], framework_version="2.20"))
    assert case(old, name).status == "failed" and "415" in case(old, name).detail
    assert case(new, name).status == "passed"


def test_missing_payload_file_is_a_usage_error(tmp_path):
    with pytest.raises(KdiagError, match="does not exist"):
        run_check(CheckOptions(model=GOOD, replay=False,
                               payloads=[PayloadEntry(str(tmp_path / "nope.json"))]))


def test_missing_model_and_bad_framework_version_are_usage_errors(tmp_path):
    with pytest.raises(KdiagError, match="does not exist"):
        run_check(CheckOptions(model=str(tmp_path / "nope.tar.gz")))
    with pytest.raises(KdiagError, match="framework version"):
        run_check(CheckOptions(model=GOOD, framework_version="banana"))


# ---- expectations without the model ----------------------------------------------------------

def test_expectations_are_checked_against_the_signature_without_a_model_run():
    exps = [parse_expectation(t) for t in ("score:float32:-1,1", "probs:float32:-1,3",
                                           "score:int64", "probs:float32:-1,4", "logits")]
    r = run_check(CheckOptions(model=TWO_INPUTS, replay=False, expect_output=exps))
    status = {c.name: (c.status, [f.code for f in c.findings]) for c in r.cases
              if c.group == "expect-output"}
    assert status == {
        "expect-output score:float32:-1,1": ("passed", []),
        "expect-output probs:float32:-1,3": ("passed", []),
        "expect-output score:int64": ("failed", ["KD855"]),
        "expect-output probs:float32:-1,4": ("failed", ["KD856"]),
        "expect-output logits": ("failed", ["KD854"]),
    }
    assert "signature only" in case(r, "expect-output score:float32:-1,1").detail


def test_result_json_lists_cases_findings_and_verdict():
    r = run_check(CheckOptions(model=str(ARCHIVES / "wrapped.tar.gz"), replay=False))
    doc = json.loads(json.dumps(r.to_json()))
    assert doc["passed"] is False and doc["exit_code"] == 1
    assert set(doc) >= {"model", "fail_on", "replayed", "counts", "cases", "findings", "seconds"}
    assert doc["counts"]["failed"] >= 1
    assert {"name", "group", "status", "seconds", "file", "detail", "findings"} <= set(
        doc["cases"][0])


def test_check_codes_are_in_the_check_range_and_documented():
    from kdiag.diagnosis.codes import CODES

    check_codes = [f"KD8{i}" for i in range(50, 61)]
    assert all(c in CODES for c in check_codes)
    doc = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for code in check_codes:
        assert f"| {code} |" in doc


# ---- with the model --------------------------------------------------------------------------

def _team(tmp_path: Path) -> list[PayloadEntry]:
    (tmp_path / "ones.json").write_text('{"instances": [[1, 1, 1, 1, 1]]}')
    (tmp_path / "rows.csv").write_text("1,1,1,1,1\n0,0,0,0,0\n")
    return [PayloadEntry(str(tmp_path / "ones.json")), PayloadEntry(str(tmp_path / "rows.csv"))]


@pytest.mark.tf
@needs_tf
def test_replay_checks_decoded_shapes_and_the_model_dtype(tmp_path):
    exps = [parse_expectation("output_0:float32:-1,1"), parse_expectation("output_0:float32:1,1")]
    r = run_check(CheckOptions(model=GOOD, payloads=_team(tmp_path),
                               content_types=["application/jsonlines"], expect_output=exps))
    assert r.replayed
    assert case(r, f"replay {tmp_path / 'ones.json'} [application/json]").status == "passed"
    assert case(r, "expect-output output_0:float32:-1,1").status == "passed"
    strict = case(r, "expect-output output_0:float32:1,1")
    # rows.csv has two instances, the generated JSON-lines body two: only ones.json is (1, 1).
    assert strict.status == "failed"
    assert {f.code for f in strict.findings} == {"KD856"}
    assert len(strict.findings) == 2


@pytest.mark.tf
@needs_tf
def test_golden_results_file_passes_within_tolerance_and_fails_beyond_it(tmp_path):
    team = _team(tmp_path)
    golden = tmp_path / "golden.jsonl"
    # The fixture computes x @ [.1, .2, .3, .4, .5] + 1: five ones give 2.5, zeros 1.0.
    golden.write_text('{"id": "ones.json", "outputs": {"output_0": [[2.5]]}}\n'
                      '{"id": "rows.csv", "outputs": {"output_0": [[2.5], [1.0]]}}\n')
    ok = run_check(CheckOptions(model=GOOD, payloads=team, golden=str(golden)))
    assert case(ok, f"golden {golden}").status == "passed", case(ok, f"golden {golden}").findings
    assert "2 invocation(s) paired by id" in case(ok, f"golden {golden}").detail
    golden.write_text('{"id": "ones.json", "outputs": {"output_0": [[2.6]]}}\n'
                      '{"id": "rows.csv", "outputs": {"output_0": [[2.5], [1.0]]}}\n')
    bad = run_check(CheckOptions(model=GOOD, payloads=team, golden=str(golden)))
    c = case(bad, f"golden {golden}")
    assert c.status == "failed" and "KD701" in {f.code for f in c.findings}
    loose = run_check(CheckOptions(model=GOOD, payloads=team, golden=str(golden), atol=0.2))
    assert case(loose, f"golden {golden}").status == "passed"


@pytest.mark.tf
@needs_tf
def test_golden_npy_is_paired_by_instance_over_the_team_payloads(tmp_path):
    team = _team(tmp_path)
    npy = tmp_path / "golden.npy"
    np.save(npy, np.array([[2.5], [2.5], [1.0]], dtype=np.float32))
    r = run_check(CheckOptions(model=GOOD, payloads=team, golden=str(npy)))
    c = case(r, f"golden {npy}")
    assert c.status == "passed", c.findings
    assert "3 instance(s) paired by order" in c.detail


@pytest.mark.tf
@needs_tf
def test_golden_ids_missing_from_the_run_fail(tmp_path):
    golden = tmp_path / "golden.jsonl"
    golden.write_text('{"id": "other.json", "outputs": {"output_0": [[2.5]]}}\n')
    r = run_check(CheckOptions(model=GOOD, payloads=_team(tmp_path), golden=str(golden)))
    c = case(r, f"golden {golden}")
    assert c.status == "failed" and "KD707" in {f.code for f in c.findings}


def test_golden_without_a_model_run_is_skipped(tmp_path):
    golden = tmp_path / "golden.jsonl"
    golden.write_text('{"id": "x", "outputs": {"output_0": [[2.5]]}}\n')
    r = run_check(CheckOptions(model=GOOD, replay=False, golden=str(golden)))
    assert case(r, f"golden {golden}").status == "skipped"
    assert r.exit_code == 0


# ---- a staging endpoint (moto's SageMaker, on loopback) --------------------------------------

def _staging(monkeypatch, url: str, body: dict) -> None:
    import urllib.request

    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    sm = boto3.client("sagemaker", region_name="us-east-1")
    sm.create_model(ModelName="m", ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
                    PrimaryContainer={"Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/"
                                               "tensorflow-inference:2.16-cpu",
                                      "ModelDataUrl": "s3://bucket/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "m", "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName="staging", EndpointConfigName="c")
    result = {"Body": json.dumps(body), "ContentType": "application/json",
              "InvokedProductionVariant": "AllTraffic", "CustomAttributes": ""}
    req = urllib.request.Request(f"{url}/moto-api/static/sagemaker/endpoint-results",
                                 data=json.dumps({"results": [result] * 10,
                                                  "region": "us-east-1"}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req).read()


@pytest.mark.slow
def test_endpoint_is_probed_with_the_team_and_generated_payloads(tmp_path, monkeypatch):
    from tests._moto import moto_s3

    body = tmp_path / "ones.json"
    body.write_text('{"instances": [[1, 1, 1, 1, 1]]}')
    with moto_s3(monkeypatch) as url:
        _staging(monkeypatch, url, {"predictions": [[2.5]]})
        r = run_check(CheckOptions(model=GOOD, replay=False, endpoint="staging",
                                   payloads=[PayloadEntry(str(body))]))
        missing = run_check(CheckOptions(model=GOOD, replay=False, endpoint="nope"))
    ep = {c.name: c for c in r.cases if c.group == "endpoint"}
    assert set(ep) == {"endpoint staging: describe",
                       f"endpoint staging: {body} [application/json]",
                       "endpoint staging: generated [application/json]"}
    live = ep[f"endpoint staging: {body} [application/json]"]
    assert live.status == "passed" and "live 200" in live.detail and live.file == str(body)
    assert r.exit_code == 0, failed_names(r)
    gone = next(c for c in missing.cases if c.group == "endpoint")
    assert gone.status == "failed" and gone.findings[0].code == "KD860"


def test_content_type_aliases_are_sent_as_the_container_s_exact_header():
    r = run_check(CheckOptions(model=str(MODELS / "tokens" / "1"), replay=False,
                               content_types=["csv", "jsonlines"]))
    assert case(r, "payload generated [text/csv]: validate").status == "passed"
    assert case(r, "payload generated [application/jsonlines]: validate").status == "passed"


def test_code_dir_runs_the_handlers_so_the_unrun_code_warning_goes():
    without = run_check(CheckOptions(model=GOOD, replay=False))
    with_code = run_check(CheckOptions(model=GOOD, replay=False, code_dir=FIXTURES / "code",
                                       content_types=["application/json", "text/csv"]))
    assert "KD230" in codes(without)
    assert "KD230" not in codes(with_code)
    assert with_code.exit_code == 0, failed_names(with_code)


@pytest.mark.tf
@needs_tf
def test_expectation_on_a_one_output_signature_other_than_the_default():
    # The response of a one-output signature carries no name: it is that output.
    r = run_check(CheckOptions(model=str(MODELS / "multi_sig" / "1"), signature_name="logits",
                               expect_output=[parse_expectation("logits:float32:-1,10")]))
    c = case(r, "expect-output logits:float32:-1,10")
    assert c.status == "passed", c.findings
    assert "generated [application/json]: float32 (2, 10)" in c.detail
