"""The 2.20+ images' suite (aws/deep-learning-containers test/tensorflow/integration/inference/),
against `kdiag serve --framework-version 2.20` with real boto3 sagemaker-runtime.

The public tests deploy a SageMaker endpoint from a model.tar.gz built by
resources/build_sample_model.py (y = x * 2 on a [None, None] input, output "output"); here the
same model is fixtures/models/multiplier (versions 1 and 2), packed as model.tar.gz with an
optional code/ folder, or served as the folder. The endpoint fixture is kdiag serve.
"""

from __future__ import annotations

import json
import shutil

import pytest
from botocore.exceptions import ClientError

from tests.conftest import MODELS
from tests.upstream_suites.conftest import pack, serve

pytestmark = pytest.mark.tf

MULTIPLIER = MODELS / "multiplier"
MARKER_CODE = '''import json


def input_handler(data, context):
    body = json.loads(data.read().decode("utf-8"))
    body["instances"] = [[9.0, 9.0, 9.0]] + body.get("instances", [])
    return json.dumps(body)


def output_handler(response, context):
    body = json.loads(response.content.decode("utf-8"))
    body["_handler_marker"] = "input_output_ok"
    return json.dumps(body), context.accept_header
'''
RAW_CODE = '''def input_handler(data, context):
    return data.read().decode("utf-8")


def output_handler(response, context):
    return response.content, context.accept_header
'''


def runtime(url: str):
    import boto3

    return boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x")


def build(tmp_path, mode: str, code: str | None = None):
    root = tmp_path / "model"
    shutil.copytree(MULTIPLIER, root)
    if code is not None:
        (root / "code").mkdir()
        (root / "code" / "inference.py").write_text(code)
    return root if mode == "folder" else pack(root, tmp_path / "model.tar.gz")


@pytest.fixture(scope="module", params=["folder", "archive"])
def endpoint(request, tmp_path_factory):
    server, ep = serve(build(tmp_path_factory.mktemp("m"), request.param), "2.20")
    yield runtime(server.url)
    server.stop()
    ep.close()


def predictions(result) -> list:
    body = json.loads(result["Body"].read().decode("utf-8"))
    return body["predictions"]


def test_single_model_predict_and_model_versioning(endpoint):
    # two version folders: TF Serving serves the highest; both compute 2x
    r = endpoint.invoke_endpoint(EndpointName="local", Body=json.dumps(
        {"instances": [[1.0, 2.0, 3.0]]}), ContentType="application/json",
        Accept="application/json")
    assert predictions(r)[0] == pytest.approx([2.0, 4.0, 6.0])


def test_csv_content_type_multi_column(endpoint):
    r = endpoint.invoke_endpoint(EndpointName="local", Body=b"1.0,2.0,3.0\n4.0,5.0,6.0\n",
                                 ContentType="text/csv", Accept="application/json")
    rows = predictions(r)
    assert rows == [pytest.approx([2.0, 4.0, 6.0]), pytest.approx([8.0, 10.0, 12.0])]


def test_csv_mixed_type_produces_valid_error(endpoint):
    with pytest.raises(ClientError) as info:
        endpoint.invoke_endpoint(EndpointName="local", Body=b"1.0,abc,3.0\n",
                                 ContentType="text/csv", Accept="application/json")
    assert 400 <= info.value.response["OriginalStatusCode"] < 500


@pytest.mark.parametrize("mode", ["folder", "archive"])
def test_custom_inference_py_handlers_run(tmp_path, mode):
    server, ep = serve(build(tmp_path, mode, MARKER_CODE), "2.20", artifact_code=True)
    try:
        r = runtime(server.url).invoke_endpoint(
            EndpointName="local", Body=json.dumps({"instances": [[1.0, 2.0, 3.0]]}),
            ContentType="application/json", Accept="application/json")
        body = json.loads(r["Body"].read())
        assert body["_handler_marker"] == "input_output_ok"
        assert body["predictions"] == [[18.0, 18.0, 18.0], [2.0, 4.0, 6.0]]
    finally:
        server.stop()
        ep.close()


@pytest.fixture(scope="module", params=["folder", "archive"])
def error_endpoint(request, tmp_path_factory):
    model = build(tmp_path_factory.mktemp("e"), request.param, RAW_CODE)
    server, ep = serve(model, "2.20", artifact_code=True)
    yield runtime(server.url)
    server.stop()
    ep.close()


@pytest.mark.parametrize(("body", "content_type"), [
    (b"{ this is not valid json", "application/json"),
    (b"", "application/json"),
    (b"anything at all", "application/x-unsupported-mimetype"),
    (json.dumps({"instances": "not_a_list_of_lists"}).encode(), "application/json"),
], ids=["malformed-json", "empty-body", "unsupported-content-type", "wrong-tensor-shape"])
def test_error_scenario(error_endpoint, body, content_type):
    with pytest.raises(ClientError) as info:
        error_endpoint.invoke_endpoint(EndpointName="local", Body=body,
                                       ContentType=content_type, Accept="application/json")
    response = info.value.response
    status = int(response.get("OriginalStatusCode")
                 or response["ResponseMetadata"]["HTTPStatusCode"])
    assert 400 <= status < 600
    assert "<html" not in response.get("OriginalMessage", "").lower()
