"""kdiag.serve.server: a local endpoint answered by the real model, talked to by real clients (boto3,
http.client, urllib) over real sockets on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.request

import numpy as np
import pytest

from kdiag.errors import KdiagError
from kdiag.model.signature import Signature, TensorSpec
from kdiag.path.local_endpoint import LocalEndpoint
from kdiag.serve.server import load_model, metadata_json, start_server, status_json
from tests.conftest import MODELS

FIVE_ONES = b'{"instances": [[1, 1, 1, 1, 1]]}'
ACCESS_KEY = "AKIAKDIAGTESTACCESS1"
SECRET_KEY = "kdiag-secret-never-logged"


@pytest.fixture(scope="module")
def custom_endpoint():
    ep = LocalEndpoint(MODELS / "custom/export/1")
    load_model(ep)
    yield ep
    ep.close()


@pytest.fixture(scope="module")
def served(custom_endpoint):
    logs: list[str] = []
    server = start_server(custom_endpoint, log=logs.append)
    server.logs = logs
    yield server
    server.stop()


@pytest.fixture(scope="module")
def two_inputs():
    ep = LocalEndpoint(MODELS / "two_inputs/1")
    load_model(ep)
    server = start_server(ep, endpoint_name="two-inputs")
    yield ep, server
    server.stop()
    ep.close()


def runtime_client(url: str, **config):
    import boto3
    from botocore.config import Config

    return boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        config=Config(**config) if config else None)


def call(server, method: str, path: str, body: bytes | None = None,
         headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------------
# SageMaker Runtime API through unmodified boto3
# ------------------------------------------------------------------------------------------------

@pytest.mark.tf
def test_boto3_invoke_endpoint_returns_the_models_predictions(served):
    import boto3

    client = boto3.client("sagemaker-runtime", endpoint_url=served.url, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    r = client.invoke_endpoint(EndpointName="local", ContentType="application/json",
                               Accept="application/json", Body=FIVE_ONES)
    assert json.loads(r["Body"].read()) == {"predictions": [[2.5]]}
    assert r["ContentType"] == "application/json"
    assert r["InvokedProductionVariant"] == "AllTraffic"
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert r["ResponseMetadata"]["RequestId"]
    assert "CustomAttributes" not in r  # the container sets none; the Runtime does not echo


@pytest.mark.tf
def test_boto3_csv_and_bare_list_go_through_the_njs_conversions(served):
    client = runtime_client(served.url)
    csv = client.invoke_endpoint(EndpointName="local", ContentType="text/csv",
                                 Body=b"1,1,1,1,1\n0,0,0,0,0")
    assert json.loads(csv["Body"].read()) == {"predictions": [[2.5], [1.0]]}
    bare = client.invoke_endpoint(EndpointName="local", ContentType="application/json",
                                  Body=b"[1,1,1,1,1]")
    assert json.loads(bare["Body"].read()) == {"predictions": [[2.5]]}


@pytest.mark.tf
def test_string_values_raise_model_error_with_tf_servings_text(served):
    client = runtime_client(served.url)
    with pytest.raises(client.exceptions.ModelError) as info:
        client.invoke_endpoint(EndpointName="local", ContentType="application/json",
                               Body=b'{"instances": [["1","2","3","4","5"]]}')
    resp = info.value.response
    assert resp["Error"]["Code"] == "ModelError"
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert resp["OriginalStatusCode"] == 400
    assert "Type: String is not of expected type: float" in resp["OriginalMessage"]
    assert resp["LogStreamArn"].endswith(":log-group:/aws/sagemaker/Endpoints/local")
    assert resp["Message"].startswith("Received client error (400) from primary with message")
    assert resp["ResponseMetadata"]["RetryAttempts"] == 0


@pytest.mark.tf
def test_wrong_content_type_gives_original_status_415(served):
    client = runtime_client(served.url)
    with pytest.raises(client.exceptions.ModelError) as info:
        client.invoke_endpoint(EndpointName="local", ContentType="application/x-npy",
                               Body=b"\x93NUMPY")
    assert info.value.response["OriginalStatusCode"] == 415
    assert json.loads(info.value.response["OriginalMessage"]) == {
        "error": "Unsupported Media Type: application/x-npy"}


@pytest.mark.tf
def test_oversize_body_raises_validation_error(served):
    client = runtime_client(served.url)
    with pytest.raises(client.exceptions.ValidationError) as info:
        client.invoke_endpoint(EndpointName="local", ContentType="application/json",
                               Body=b" " * (6291456 + 1))
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "less than or equal to 6291456" in info.value.response["Error"]["Message"]


@pytest.mark.tf
def test_body_of_exactly_6_mib_is_accepted_by_the_runtime(served):
    body = FIVE_ONES + b" " * (6291456 - len(FIVE_ONES))
    r = runtime_client(served.url).invoke_endpoint(
        EndpointName="local", ContentType="application/json", Body=body)
    assert json.loads(r["Body"].read()) == {"predictions": [[2.5]]}


@pytest.mark.tf
def test_unknown_endpoint_name_raises_the_services_not_found_error(served):
    client = runtime_client(served.url)
    with pytest.raises(client.exceptions.ValidationError) as info:
        client.invoke_endpoint(EndpointName="my-endpoint", ContentType="application/json",
                               Body=FIVE_ONES)
    assert info.value.response["Error"]["Message"] == (
        "Endpoint my-endpoint of account 123456789012 not found.")


@pytest.mark.tf
def test_header_constraints_botocore_leaves_to_the_service_are_checked(served):
    client = runtime_client(served.url)
    with pytest.raises(client.exceptions.ValidationError) as info:
        client.invoke_endpoint(EndpointName="local", ContentType="application/json",
                               Body=FIVE_ONES, CustomAttributes="a" * 1025)
    msg = info.value.response["Error"]["Message"]
    assert msg.startswith("1 validation error detected: Value at 'customAttributes'")
    assert "a" * 1025 not in msg  # CustomAttributes is a sensitive member
    with pytest.raises(client.exceptions.ValidationError):
        client.invoke_endpoint(EndpointName="bad_name", ContentType="application/json",
                               Body=FIVE_ONES)
    with pytest.raises(client.exceptions.ValidationError):
        client.invoke_endpoint(EndpointName="local", ContentType="application/json",
                               Body=FIVE_ONES, InferenceId="x" * 65)


@pytest.mark.tf
def test_target_variant_must_name_the_endpoints_variant(served):
    client = runtime_client(served.url)
    ok = client.invoke_endpoint(EndpointName="local", ContentType="application/json",
                                Body=FIVE_ONES, TargetVariant="AllTraffic", InferenceId="req-1")
    assert ok["InvokedProductionVariant"] == "AllTraffic"
    with pytest.raises(client.exceptions.ValidationError):
        client.invoke_endpoint(EndpointName="local", ContentType="application/json",
                               Body=FIVE_ONES, TargetVariant="Canary")


@pytest.mark.tf
def test_custom_attributes_pick_the_tf_serving_version(served):
    client = runtime_client(served.url)
    r = client.invoke_endpoint(EndpointName="local", ContentType="application/json",
                               Body=FIVE_ONES, CustomAttributes="tfs-model-version=1")
    assert json.loads(r["Body"].read()) == {"predictions": [[2.5]]}
    with pytest.raises(client.exceptions.ModelError) as info:
        client.invoke_endpoint(EndpointName="local", ContentType="application/json",
                               Body=FIVE_ONES, CustomAttributes="tfs-model-version=7")
    assert info.value.response["OriginalStatusCode"] == 404
    assert "Servable not found for request: Specific(model, 7)" in (
        info.value.response["OriginalMessage"])


@pytest.mark.tf
def test_two_input_model_answers_what_tensorflow_computes(two_inputs):
    ep, server = two_inputs
    features = [[0.1, 0.2, 0.3, 0.4, 0.5], [1.0, -1.0, 2.0, 0.0, 3.0]]
    ids = [[3], [7]]
    body = json.dumps({"inputs": {"features": features, "ids": ids}}).encode()
    r = runtime_client(server.url).invoke_endpoint(
        EndpointName="two-inputs", ContentType="application/json", Body=body)
    got = json.loads(r["Body"].read())["outputs"]
    want = ep.run({"features": np.array(features, np.float32), "ids": np.array(ids, np.int64)})
    assert want.ok
    for name in ("score", "probs"):
        np.testing.assert_allclose(np.array(got[name]), want.outputs[name], rtol=1e-6)


@pytest.mark.tf
def test_model_error_on_the_wire_is_the_runtimes_424(served):
    status, headers, body = call(served, "POST", "/endpoints/local/invocations",
                                 b'{"instances": [["1","2","3","4","5"]]}',
                                 {"Content-Type": "application/json"})
    assert status == 424
    assert headers["x-amzn-errortype"] == "ModelError"
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["OriginalStatusCode"] == 400 and doc["ErrorCode"] == "CLIENT_ERROR_FROM_MODEL"


@pytest.mark.tf
def test_other_runtime_operations_are_refused_with_an_error_code(served):
    client = runtime_client(served.url, retries={"total_max_attempts": 1})
    with pytest.raises(client.exceptions.ClientError) as info:
        client.invoke_endpoint_async(EndpointName="local", InputLocation="s3://b/k")
    assert info.value.response["Error"]["Code"] == "UnknownOperationException"


@pytest.mark.tf
def test_credentials_never_reach_the_log(served):
    runtime_client(served.url).invoke_endpoint(
        EndpointName="local", ContentType="application/json", Body=FIVE_ONES)
    call(served, "POST", "/endpoints/local/invocations?X-Amz-Credential=AKIAQUERYKEY",
         FIVE_ONES, {"Content-Type": "application/json"})
    text = "\n".join(served.logs)
    assert "POST /endpoints/local/invocations 200" in text
    for secret in (ACCESS_KEY, SECRET_KEY, "AKIAQUERYKEY", "Authorization", "Signature="):
        assert secret not in text


# ------------------------------------------------------------------------------------------------
# The container contract over plain HTTP
# ------------------------------------------------------------------------------------------------

@pytest.mark.tf
def test_ping_answers_200_with_an_empty_body(served):
    status, _, body = call(served, "GET", "/ping")
    assert (status, body) == (200, b"")


@pytest.mark.tf
def test_invocations_answers_as_the_container(served):
    req = urllib.request.Request(served.url + "/invocations", data=FIVE_ONES,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "application/json"
        assert json.loads(r.read()) == {"predictions": [[2.5]]}


@pytest.mark.tf
def test_invocations_answers_container_errors_as_they_are(served):
    status, headers, body = call(served, "POST", "/invocations", b"\x93NUMPY",
                                 {"Content-Type": "application/x-npy"})
    assert status == 415
    assert json.loads(body) == {"error": "Unsupported Media Type: application/x-npy"}
    status, _, body = call(served, "POST", "/invocations",
                           b'{"instances": [["1","2","3","4","5"]]}',
                           {"Content-Type": "application/json"})
    assert status == 400 and b"Type: String is not of expected type: float" in body


@pytest.mark.tf
def test_unknown_path_is_nginxs_404(served):
    status, headers, body = call(served, "GET", "/favicon.ico")
    assert (status, body) == (404, b'{"error": "Not Found"}')
    assert headers["content-type"] == "application/json"


# ------------------------------------------------------------------------------------------------
# TF Serving's REST API
# ------------------------------------------------------------------------------------------------

@pytest.mark.tf
@pytest.mark.parametrize("path", ["/v1/models/model:predict", "/v1/models/model/versions/1:predict",
                                  "/V1/Models/model/Versions/1:predict",
                                  "/tfs/v1/models/model:predict"])
def test_tf_serving_predict_routes(served, path):
    status, headers, body = call(served, "POST", path, FIVE_ONES)
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"predictions": [[2.5]]}


@pytest.mark.tf
def test_tf_serving_unknown_model_is_404_with_its_error_body(served):
    status, _, body = call(served, "POST", "/v1/models/nope:predict", FIVE_ONES)
    assert status == 404
    assert body == b'{\n    "error": "Servable not found for request: Latest(nope)"\n}'
    status, _, body = call(served, "GET", "/v1/models/nope")
    assert status == 404
    assert json.loads(body) == {"error": "Could not find any versions of model nope"}
    status, _, body = call(served, "GET", "/v1/models/model/versions/9")
    assert status == 404
    assert json.loads(body) == {"error": "Could not find version 9 of model model"}
    status, _, body = call(served, "GET", "/v1/models/nope/metadata")
    assert status == 404
    assert json.loads(body) == {"error": "Servable not found for request: Latest(nope)"}


@pytest.mark.tf
def test_tf_serving_parse_errors_come_before_the_model_lookup(served):
    status, _, body = call(served, "POST", "/v1/models/nope:predict", b"{not json")
    assert status == 400 and b"JSON Parse error" in body


@pytest.mark.tf
def test_tf_serving_route_quirks(served):
    # The verb is matched case-insensitively but dispatched case-sensitively.
    status, _, body = call(served, "POST", "/v1/models/model:PREDICT", FIVE_ONES)
    assert status == 400
    assert json.loads(body) == {"error": "Malformed request: POST /v1/models/model:PREDICT"}
    status, _, body = call(served, "POST", "/v1/models/model/labels/stable:predict", FIVE_ONES)
    assert status == 400
    assert json.loads(body) == {"error": "Unrecognized servable version label: stable"}
    status, _, body = call(served, "GET", "/v1/models")
    assert status == 400 and json.loads(body) == {"error": "Missing model name in request."}
    status, _, body = call(served, "POST", f"/v1/models/model/versions/{1 << 64}:predict",
                           FIVE_ONES)
    assert status == 400 and b"Failed to convert version" in body


@pytest.mark.tf
def test_tf_serving_model_status(served):
    for path in ("/v1/models/model", "/v1/models/model/versions/1"):
        status, _, body = call(served, "GET", path)
        assert status == 200
        assert body.decode() == (
            '{\n "model_version_status": [\n  {\n   "version": "1",\n   "state": "AVAILABLE",\n'
            '   "status": {\n    "error_code": "OK",\n    "error_message": ""\n   }\n  }\n ]\n}\n')


@pytest.mark.tf
def test_tf_serving_metadata_lists_every_signature_def(served):
    status, _, body = call(served, "GET", "/v1/models/model/metadata")
    assert status == 200
    text = body.decode()
    assert text.startswith('{\n"model_spec":{\n "name": "model",\n "signature_name": "",\n'
                           ' "version": "1"\n}\n,\n"metadata": {"signature_def": {\n')
    doc = json.loads(text)
    sigs = doc["metadata"]["signature_def"]["signature_def"]
    assert set(sigs) == {"serving_default", "serve", "__saved_model_init_op"}
    arg = sigs["serving_default"]["inputs"]["args_0"]
    assert arg == {"dtype": "DT_FLOAT", "tensor_shape": {
        "dim": [{"size": "-1", "name": ""}, {"size": "5", "name": ""}], "unknown_rank": False},
        "name": "serving_default_args_0:0"}
    assert sigs["serving_default"]["method_name"] == "tensorflow/serving/predict"
    init = sigs["__saved_model_init_op"]["outputs"]["__saved_model_init_op"]
    assert init["dtype"] == "DT_INVALID" and init["tensor_shape"]["unknown_rank"] is True


def test_metadata_json_matches_tf_servings_layout():
    sig = Signature("serving_default", "tensorflow/serving/predict",
                    {"x": TensorSpec("float64", (-1,), "x:0")},
                    {"y": TensorSpec("int64", None, "y:0")})
    old = metadata_json("m", 3, [sig], tfs_version=(2, 11))
    assert old.endswith('   "method_name": "tensorflow/serving/predict"\n  }\n }\n}\n}\n}\n')
    assert '"dtype": "DT_DOUBLE"' in old and '"dim": [],\n      "unknown_rank": true' in old
    new = json.loads(metadata_json("m", 3, [sig], tfs_version=(2, 20)))
    assert new["metadata"]["signature_def"]["signature_def"]["serving_default"]["defaults"] == {}
    assert json.loads(status_json([1, 3]))["model_version_status"][0]["version"] == "3"


# ------------------------------------------------------------------------------------------------
# Operations: limits, concurrency, shutdown
# ------------------------------------------------------------------------------------------------

@pytest.mark.tf
def test_body_over_the_limit_is_refused_with_413_before_it_is_read(served):
    with socket.create_connection((served.host, served.port), timeout=10) as s:
        s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 209715200\r\n\r\n")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413")


@pytest.mark.tf
def test_expect_100_continue_with_a_huge_body_gets_413_instead_of_continue(served):
    with socket.create_connection((served.host, served.port), timeout=10) as s:
        s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  b"Content-Length: 209715200\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 413")


@pytest.mark.tf
def test_a_stalled_client_loses_its_connection(custom_endpoint):
    with start_server(custom_endpoint, socket_timeout=0.5) as server, \
            socket.create_connection((server.host, server.port), timeout=10) as s:
        s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        t0 = time.monotonic()
        assert s.recv(4096) == b""  # closed by the server, no answer
        assert time.monotonic() - t0 < 5


@pytest.mark.tf
def test_load_eight_concurrent_clients(served):
    errors: list[str] = []
    answers: list[float] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        rt = runtime_client(served.url)
        for j in range(25):
            x = float((i * 25 + j) % 7)
            body = json.dumps({"instances": [[x] * 5]}).encode()
            want = x * 1.5 + 1  # x @ [0.1 .. 0.5] + 1
            try:
                if j % 2:
                    got = json.loads(rt.invoke_endpoint(
                        EndpointName="local", ContentType="application/json",
                        Body=body)["Body"].read())
                else:
                    status, _, raw = call(served, "POST", "/invocations", body,
                                          {"Content-Type": "application/json"})
                    assert status == 200, raw
                    got = json.loads(raw)
                value = got["predictions"][0][0]
                assert abs(value - want) < 1e-5, (value, want)
                with lock:
                    answers.append(value)
            except Exception as e:  # collected, asserted below
                with lock:
                    errors.append(f"client {i} request {j}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:5]
    assert len(answers) == 200


@pytest.mark.tf
def test_stop_closes_the_port_and_is_idempotent(custom_endpoint):
    server = start_server(custom_endpoint)
    assert call(server, "GET", "/ping")[0] == 200
    # A keep-alive connection left open must not keep the server alive.
    idle = http.client.HTTPConnection(server.host, server.port, timeout=10)
    idle.request("GET", "/ping")
    idle.getresponse().read()
    t0 = time.monotonic()
    server.stop()
    server.stop()
    assert time.monotonic() - t0 < 5 and not server.running
    with pytest.raises(OSError):
        socket.create_connection((server.host, server.port), timeout=2).close()
    idle.close()


@pytest.mark.tf
def test_runtime_deadline_gives_the_timeout_model_error(tmp_path):
    # A handler slower than the deadline (a real inference.py that sleeps), so the outcome
    # does not depend on how fast this machine answers.
    (tmp_path / "inference.py").write_text(
        "import time\n\n\ndef input_handler(data, context):\n    time.sleep(1.0)\n"
        "    return data.read().decode('utf-8')\n\n\n"
        "def output_handler(response, context):\n"
        "    return response.content, context.accept_header\n")
    with LocalEndpoint(MODELS / "custom/export/1", code_dir=tmp_path) as ep, \
            start_server(ep, runtime_deadline=0.2) as server:
        status, _, body = call(server, "POST", "/endpoints/local/invocations", FIVE_ONES,
                               {"Content-Type": "application/json"})
    doc = json.loads(body)
    assert status == 424 and "Your invocation timed out" in doc["Message"]


def test_busy_port_is_a_clear_error():
    ep = LocalEndpoint(MODELS / "custom/export/1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(KdiagError, match="in use"):
            start_server(ep, port=port)
    with pytest.raises(KdiagError, match="endpoint name"):
        start_server(ep, endpoint_name="bad_name")
    ep.close()
