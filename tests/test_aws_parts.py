"""The pure parts of kdiag.live: image tags, ARNs, S3 URLs, redaction, rate limit, log lines,
error classification (real botocore exceptions)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from kdiag.errors import KdiagError
from kdiag.live.describe import image_info
from kdiag.live.infer_signature import Answer, infer_signature
from kdiag.live.invoke import RateLimiter, classify
from kdiag.live.logs import LogEvent, parse_log_stream_arn, relevant_lines
from kdiag.live.model_fetch import parse_s3_url
from kdiag.live.probe import diagnose_message
from kdiag.live.session import Redactor


@pytest.mark.parametrize("image, kind, version", [
    ("763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference:2.13-cpu",
     "sagemaker-tfs", "2.13"),
    ("763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference:"
     "2.19.0-gpu-py312-cu122-ubuntu22.04-sagemaker", "sagemaker-tfs", "2.19"),
    ("520713654638.dkr.ecr.us-west-2.amazonaws.com/sagemaker-tensorflow-serving:1.15.0-cpu",
     "sagemaker-tfs", "1.15"),
    ("763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference-graviton:"
     "2.9.1-cpu-py38-ubuntu20.04-sagemaker", "sagemaker-tfs", "2.9"),
    ("tensorflow/serving:2.11.0", "tf-serving", "2.11"),
    ("123.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.1-cpu", "other", None),
    ("localhost:5000/tensorflow-inference:2.16-cpu", "sagemaker-tfs", "2.16"),
])
def test_image_tag_gives_the_framework_version(image, kind, version):
    info = image_info(image)
    assert (info.kind, info.framework_version) == (kind, version)


def test_digest_pinned_image_has_no_version_and_says_why():
    info = image_info("763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference"
                      "@sha256:" + "a" * 64)
    assert info.kind == "sagemaker-tfs" and info.framework_version is None
    assert "digest" in info.note


def test_log_stream_arn_with_and_without_a_stream():
    g = parse_log_stream_arn("arn:aws:logs:us-east-1:123456789012:log-group:"
                             "/aws/sagemaker/Endpoints/demo")
    assert (g.group, g.stream, g.region, g.account) == (
        "/aws/sagemaker/Endpoints/demo", None, "us-east-1", "123456789012")
    s = parse_log_stream_arn("arn:aws-cn:logs:cn-north-1:1:log-group:/aws/sagemaker/Endpoints/"
                             "ep:log-stream:AllTraffic/i-0abc")
    assert (s.group, s.stream) == ("/aws/sagemaker/Endpoints/ep", "AllTraffic/i-0abc")
    assert parse_log_stream_arn("arn:aws:logs:us-east-1:1:log-group:/x:*").group == "/x"
    assert parse_log_stream_arn(None) is None


@pytest.mark.parametrize("url, expected", [
    ("s3://bucket/path/model.tar.gz", ("bucket", "path/model.tar.gz")),
    ("https://bucket.s3.us-east-1.amazonaws.com/a/model.tar.gz", ("bucket", "a/model.tar.gz")),
    ("https://bucket.s3.amazonaws.com/model.tar.gz", ("bucket", "model.tar.gz")),
    ("https://s3.eu-west-1.amazonaws.com/bucket/k/model.tar.gz", ("bucket", "k/model.tar.gz")),
])
def test_s3_urls_of_model_data(url, expected):
    assert parse_s3_url(url) == expected


def test_non_s3_model_data_url_is_refused_clearly():
    with pytest.raises(KdiagError, match="not an S3 object URL"):
        parse_s3_url("https://example.com/model.tar.gz")


def test_redactor_removes_known_secrets_and_signature_shapes():
    r = Redactor(["kdiagSecretValue123"])
    text = ("Authorization: AWS4-HMAC-SHA256 Credential=AKIAABCDEFGHIJKLMNOP/20240101/us-east-1/"
            "sagemaker/aws4_request, SignedHeaders=host, Signature=deadbeef01 and "
            "kdiagSecretValue123 and AKIAZZZZZZZZZZZZZZZZ")
    out = r(text)
    for secret in ("kdiagSecretValue123", "AKIAABCDEFGHIJKLMNOP", "deadbeef01",
                   "AKIAZZZZZZZZZZZZZZZZ"):
        assert secret not in out
    assert r.tree({"a": [text], "b": 1})["b"] == 1


def test_rate_limiter_spaces_request_starts():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    lim = RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        lim.wait()
    assert slept == [0.25, 0.25]


def test_relevant_lines_keep_tracebacks_and_drop_pings():
    evs = [LogEvent(t, "AllTraffic/i-1", m) for t, m in enumerate([
        '10.0.0.1 - "GET /ping HTTP/1.1" 200', "all good", "Traceback (most recent call last):",
        '  File "x.py", line 1', "ValueError: bad", "later"])]
    out = [e.message for e in relevant_lines(evs, 0, 100)]
    assert out[0] == "all good" and "Traceback (most recent call last):" in out
    assert not any("/ping" in m for m in out)
    assert relevant_lines(evs, 50, 100) == []


def _client_error(code: str, status: int, **extra) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"},
                        "ResponseMetadata": {"HTTPStatusCode": status}, **extra},
                       "InvokeEndpoint")


@pytest.mark.parametrize("exc, kind", [
    (_client_error("ModelError", 424, OriginalStatusCode=400, OriginalMessage="{}"),
     "model-error"),
    (_client_error("ValidationError", 400), "validation"),
    (_client_error("ThrottlingException", 400), "throttled"),
    (_client_error("429", 429), "throttled"),
    (_client_error("ModelNotReadyException", 429), "not-ready"),
    (_client_error("ServiceUnavailable", 503), "service-transient"),
    (_client_error("InternalDependencyException", 530), "service"),
    (ReadTimeoutError(endpoint_url="http://x"), "timeout"),
    (EndpointConnectionError(endpoint_url="http://x"), "connection"),
])
def test_invoke_errors_are_classified(exc, kind):
    assert classify(exc)[0] == kind


def test_container_timeout_model_error_is_a_timeout():
    e = _client_error("ModelError", 424, OriginalStatusCode=0, OriginalMessage="")
    e.response["Error"]["Message"] = ("Received server error (0) from primary with message "
                                      "\"Your invocation timed out while waiting for a response "
                                      "from container primary. ...\"")
    assert classify(e)[0] == "timeout"


def test_live_messages_get_the_validate_diagnosis():
    [f] = diagnose_message("Failed to process element: 0 of 'instances' list. Error: "
                           "INVALID_ARGUMENT: JSON Value: \"1\" Type: String is not of "
                           "expected type: float")
    assert f.code == "KD301"
    assert diagnose_message("Could not find variable dense/bias.")[0].code == "KD501"
    assert diagnose_message("something else") == []


def test_inference_stops_when_the_answers_are_not_tf_serving_messages():
    calls = []

    def send(body: bytes) -> Answer:
        calls.append(body)
        return Answer(False, "<html>502 Bad Gateway</html>", 502)

    inf = infer_signature(send)
    assert len(calls) == 1 and inf.signature is None and "not TF Serving" in inf.notes[0]


def test_inference_respects_its_request_cap():
    sent = []

    def send(body: bytes) -> Answer:
        sent.append(body)
        if body == b'{"instances":[{}]}':
            return Answer(False, "Failed to process element: 0 of 'instances' list. JSON "
                                 "object: {} keys must be equal to: a,b", 400)
        return Answer(False, "Failed to process element: 0 key: a of 'instances' list. Error: "
                             "JSON Value: \"kdiag\" Type: String is not of expected type: "
                             "float", 400)

    inf = infer_signature(send, max_requests=2)
    assert len(sent) == 2
    assert [i.name for i in inf.inputs] == ["a", "b"] and inf.signature is None


def test_nginx_access_line_of_a_failed_invocation_is_relevant():
    from kdiag.live.logs import LogEvent, relevant_lines

    lines = ['10.0.0.2 - - [25/Nov/2026:17:30:01 +0000] "GET /ping HTTP/1.1" 200 0 "-" "AHC/2.0"',
             '10.0.0.2 - - [25/Nov/2026:17:30:02 +0000] "POST /invocations HTTP/1.1" 400 157 "-" "AHC"',
             '10.0.0.2 - - [25/Nov/2026:17:30:03 +0000] "POST /invocations HTTP/1.1" 200 35 "-" "AHC"']
    events = [LogEvent(timestamp=1000 + i, stream="AllTraffic/i-0", message=m)
              for i, m in enumerate(lines)]
    kept = [e.message for e in relevant_lines(events, 0, 10_000)]
    assert lines[1] in kept and lines[0] not in kept
