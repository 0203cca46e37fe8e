"""kdiag.live.probe against moto (control plane, S3, logs) and kdiag's local runtime, on loopback."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from kdiag.errors import KdiagError
from kdiag.live.invoke import RetryPolicy
from kdiag.live.probe import ProbeOptions, probe
from kdiag.live.session import AwsOptions
from tests._aws_rig import (
    ThrottlingRuntime,
    deploy,
    put_logs,
    set_endpoint_status,
    tar_bytes,
    upload,
)
from tests.conftest import MODELS

pytestmark = pytest.mark.tf

NAME = "kdiag-ep"
CUSTOM = MODELS / "custom" / "export" / "1"


def opts(moto_url: str, runtime_url: str, **kw) -> ProbeOptions:
    aws = AwsOptions(endpoint_url=moto_url, runtime_endpoint_url=runtime_url, timeout=30)
    kw.setdefault("log_wait", 0)
    kw.setdefault("rate", 50)
    return ProbeOptions(aws=aws, **kw)


def codes(res) -> set[str]:
    return {f.code for f in res.all_findings}


def test_healthy_endpoint_with_model_agrees_and_matches_local_replay(env, runtime_url):
    deploy(env, NAME)
    res = probe(NAME, opts(env, runtime_url, model=str(CUSTOM)))
    assert res.endpoint.status == "InService"
    assert res.framework_version == "2.13" and res.generation.startswith("G2")
    assert res.signature_source == "--model"
    [p] = res.payloads
    assert p.live.ok and p.prediction.accepted and p.agreement == "agree"
    assert p.replay["ok"] is True and p.replay["comparison"]["records_aligned"] == 1
    assert res.requests_sent == 1
    assert not res.failed("error")
    json.dumps(res.to_json())  # serialisable


def test_fetch_model_reads_the_signature_from_the_s3_artifact(env, runtime_url):
    url = upload(env, "models", "ep/model.tar.gz", tar_bytes(CUSTOM))
    deploy(env, NAME, model_data_url=url)
    res = probe(NAME, opts(env, runtime_url, fetch_model=True))
    assert res.signature_source == "s3"
    assert list(res.signature.inputs) == ["args_0"]
    assert res.model_artifact["bytes"] > 0
    assert res.payloads[0].live.ok and res.payloads[0].replay["ok"] is True


def test_fetch_model_refuses_an_artifact_over_the_size_limit_and_infers_instead(env, runtime_url):
    url = upload(env, "models", "ep/model.tar.gz", tar_bytes(CUSTOM))
    deploy(env, NAME, model_data_url=url)
    res = probe(NAME, opts(env, runtime_url, fetch_model=True, max_model_bytes=100))
    assert any(f.code == "KD812" and "over --max-model-bytes" in f.message
               for f in res.all_findings)
    assert res.signature_source == "inferred"


def test_rejected_payload_is_classified_diagnosed_and_shows_log_lines(env, runtime_url,
                                                                      tmp_path: Path):
    deploy(env, NAME)
    put_logs(env, NAME, [
        '10.0.0.1 - - "GET /ping HTTP/1.1" 200 0',
        "2024-01-01 12:00:00 [error] 12#12: *3 upstream returned 400",
        "Traceback (most recent call last):",
        '  File "/sagemaker/python_service.py", line 1, in handler',
        "ValueError: Type: String is not of expected type: float",
    ])
    body = tmp_path / "strings.json"
    body.write_text('{"instances": [["1", "2", "3", "4", "5"]]}')
    res = probe(NAME, opts(env, runtime_url, signature=str(CUSTOM), payloads=[str(body)]))
    [p] = res.payloads
    assert p.live.kind == "model-error" and p.live.original_status_code == 400
    assert "String is not of expected type: float" in p.live.container_message
    assert {"KD830", "KD301"} <= {f.code for f in p.findings}
    assert p.agreement == "agree"  # kdiag predicted the same 400
    lines = [e["message"] for e in p.logs["lines"]]
    assert any("Traceback" in m for m in lines)
    assert not any("/ping" in m for m in lines)
    assert "KD840" in {f.code for f in p.findings}
    assert res.failed("error")


def test_signature_is_inferred_from_tf_serving_messages_when_nothing_is_given(env, runtime_url):
    deploy(env, NAME)
    res = probe(NAME, opts(env, runtime_url))
    assert res.signature_source == "inferred"
    inf = res.inference
    assert [(i.name, i.dtype, i.shape) for i in inf.inputs] == [("args_0", "float32", (-1, 5))]
    assert inf.complete
    assert "KD810" in codes(res)
    # the generated payload, built from the inferred signature, is accepted live
    assert res.payloads[0].live.ok
    assert res.requests_sent == len(inf.requests) + 1 <= 10


def test_disagreement_between_prediction_and_live_answer_is_a_finding(env, runtime_url,
                                                                      tmp_path: Path):
    deploy(env, NAME)
    sig = tmp_path / "sig.json"  # what kdiag is told: 4 features; the endpoint wants 5
    sig.write_text(json.dumps({"inputs": {"args_0": {"dtype": "float32", "shape": [-1, 4]}},
                               "outputs": {"output_0": {"dtype": "float32", "shape": [-1, 1]}}}))
    res = probe(NAME, opts(env, runtime_url, signature=str(sig)))
    [p] = res.payloads
    assert p.prediction.accepted and not p.live.ok
    assert p.agreement == "disagree"
    [f] = [f for f in p.findings if f.code == "KD820"]
    # without a local run of the model, the deployment is not blamed: the way to know is named
    assert "cannot tell" in f.message and "--fetch-model" in f.fix


def test_endpoint_not_in_service_reports_the_failure_reason_and_sends_nothing(env):
    deploy(env, NAME)
    set_endpoint_status(NAME, "Failed", "The primary container did not pass the ping check.")
    with ThrottlingRuntime(0) as rt:
        res = probe(NAME, opts(env, rt.url, signature=str(CUSTOM)))
        assert rt.calls == 0
    assert res.endpoint.status == "Failed"
    f = next(f for f in res.all_findings if f.code == "KD800")
    assert f.severity == "error" and "ping check" in f.message
    assert res.requests_sent == 0 and res.failed("error")


def test_missing_endpoint_is_one_clear_error(env, runtime_url):
    with pytest.raises(KdiagError, match="was not found in region us-east-1"):
        probe("no-such-endpoint", opts(env, runtime_url))


def test_throttling_is_retried_with_bounded_backoff_then_succeeds(env):
    deploy(env, NAME)
    with ThrottlingRuntime(2) as rt:
        res = probe(NAME, opts(env, rt.url, signature=str(CUSTOM),
                               retry=RetryPolicy(retries=3, base_delay=0.05, max_delay=0.2)))
        assert rt.calls == 3
        gaps = [b - a for a, b in zip(rt.times, rt.times[1:], strict=False)]
    [p] = res.payloads
    assert p.live.ok and p.live.attempts == 3
    assert p.live.retried == ["ThrottlingException", "ThrottlingException"]
    assert all(g >= 0.02 for g in gaps)  # it waited between tries
    assert "KD836" in {f.code for f in p.findings}


def test_persistent_throttling_gives_up_after_the_retry_budget(env):
    deploy(env, NAME)
    with ThrottlingRuntime(1000, status=429) as rt:
        t0 = time.monotonic()
        res = probe(NAME, opts(env, rt.url, signature=str(CUSTOM),
                               retry=RetryPolicy(retries=2, base_delay=0.05, max_delay=0.1)))
        assert rt.calls == 3  # one try and two retries, no more
        assert time.monotonic() - t0 < 10
    [p] = res.payloads
    assert p.live.kind == "throttled" and p.live.attempts == 3
    assert "KD832" in {f.code for f in p.findings}


def test_max_requests_caps_every_runtime_call_including_retries(env):
    deploy(env, NAME)
    with ThrottlingRuntime(1000) as rt:
        res = probe(NAME, opts(env, rt.url, signature=str(CUSTOM), max_requests=2,
                               content_types=["json", "csv"],
                               retry=RetryPolicy(retries=5, base_delay=0.01, max_delay=0.02)))
        assert rt.calls == 2
    assert res.requests_sent == 2
    assert any(f.code == "KD809" for f in res.all_findings)


def test_dry_run_makes_no_runtime_call(env):
    deploy(env, NAME)
    with ThrottlingRuntime(0) as rt:
        res = probe(NAME, opts(env, rt.url, dry_run=True, content_types=["json", "csv"],
                               signature=str(CUSTOM)))
        assert rt.calls == 0
    assert res.dry_run and len(res.payloads) == 2
    assert all(p.live is None and p.prediction is not None for p in res.payloads)


def test_data_capture_and_environment_are_described(env, runtime_url):
    deploy(env, NAME, env={"SAGEMAKER_TFS_DEFAULT_MODEL_NAME": "model", "MY_API_KEY": "s3cr3t"},
           capture={"EnableCapture": True, "InitialSamplingPercentage": 50,
                    "DestinationS3Uri": "s3://cap/prefix",
                    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}]})
    res = probe(NAME, opts(env, runtime_url, signature=str(CUSTOM), dry_run=True))
    m = res.endpoint.primary_model
    assert m.default_model_name == "model"
    assert m.environment["MY_API_KEY"] == "***"
    assert res.endpoint.data_capture["DestinationS3Uri"] == "s3://cap/prefix"
    assert "KD805" in codes(res)  # no CaptureContentTypeHeader: everything BASE64


def test_concurrent_sends_share_the_budget_and_the_rate(env):
    deploy(env, NAME)
    with ThrottlingRuntime(0) as rt:
        res = probe(NAME, opts(env, rt.url, signature=str(CUSTOM), concurrency=2, rate=4,
                               content_types=["json", "jsonlines", "csv"], max_requests=2))
        assert rt.calls == 2
        # 4/s: sends start 250 ms apart; arrivals at the server jitter on a loaded machine
        assert rt.times[1] - rt.times[0] >= 0.15
    assert sorted(p.live.kind for p in res.payloads) == ["budget", "ok", "ok"]
