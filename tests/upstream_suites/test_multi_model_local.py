"""test_multi_model_endpoint.py of both public suites, against `kdiag serve --multi-model`.

The public fixture runs the image with SAGEMAKER_MULTI_MODEL=true and test/resources/mme mounted
at /opt/ml/models; here the ModelManager serves a copy of fixtures/models/mme (plus the same
models as archives, for the Runtime's TargetModel route, driven by real boto3). The G1 repo's
`cifar` model is replaced by half_plus_two loaded under another name (any model will do: the
test loads one model twice). Each test starts from no model loaded, as the public tests' order
assumes nothing either (one server per module, models unloaded after each test).
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.upstream_suites.conftest import MME_MODELS, Http, pack

pytestmark = pytest.mark.tf

X = json.dumps({"instances": [1.0, 2.0, 5.0]})


@pytest.fixture(scope="module", params=["1.15", "2.19", "2.20"], ids=["g1", "dlc", "dlc-2.20"])
def mme(request, tmp_path_factory):
    from kdiag.serve.multi_model import ModelManager
    from kdiag.serve.server import start_server

    root = tmp_path_factory.mktemp("mme") / "models"
    shutil.copytree(MME_MODELS, root)
    for name in ("half_plus_two", "half_plus_three"):
        pack(MME_MODELS / name, root / f"{name}.tar.gz")
    manager = ModelManager(root, framework_version=request.param)
    server = start_server(manager)
    yield request.param, manager, Http(server.host, server.port), server
    server.stop()
    manager.close()


@pytest.fixture
def client(mme):
    yield mme[2]
    for name in mme[1].names:  # unload what the test loaded
        mme[1].unload(name)


def load(client, name, url):
    status, _, body = client.post("/models", json.dumps({"model_name": name, "url": url}),
                                  {"Content-Type": "application/json"})
    return status, body.decode()


def invoke(client, name, data=X, version=None):
    attrs = "tfs-method=predict" + (f",tfs-model-version={version}" if version else "")
    status, _, body = client.post(f"/models/{name}/invoke", data, {
        "Content-Type": "application/json", "X-Amzn-SageMaker-Custom-Attributes": attrs})
    return status, body.decode()


def test_ping(client):
    assert client.get("/ping")[0] == 200


def test_container_start_invocation_fail(client):
    code, y = invoke(client, "half_plus_three")
    assert code == 404 and "Model half_plus_three is not loaded yet." in y


def test_list_models_empty(client):
    code, res = client.json("GET", "/models")
    assert code == 200 and len(res) == 0


def test_delete_unloaded_model(client):
    code, _, res = client.request("DELETE", "/models/non-existing-model")
    assert code == 404 and "Model non-existing-model is not loaded yet" in res.decode()


def test_delete_model(client):
    code, res = load(client, "half_plus_three", "/opt/ml/models/half_plus_three")
    assert code == 200 and "Successfully loaded model half_plus_three" in res
    assert json.loads(invoke(client, "half_plus_three")[1]) == {"predictions": [3.5, 4.0, 5.5]}
    assert client.request("DELETE", "/models/half_plus_three")[0] == 200
    code, y = invoke(client, "half_plus_three")
    assert code == 404 and "Model half_plus_three is not loaded yet." in y


def test_load_two_models(client):
    code, res = load(client, "half_plus_two", "/opt/ml/models/half_plus_two")
    assert code == 200 and "Successfully loaded model half_plus_two" in res
    code, res = load(client, "half_plus_three", "/opt/ml/models/half_plus_three")
    assert code == 200 and "Successfully loaded model half_plus_three" in res
    code, y = invoke(client, "half_plus_two")
    assert code == 200 and json.loads(y) == {"predictions": [2.5, 3.0, 4.5]}
    for version in ("123", "124"):
        code, y = invoke(client, "half_plus_three", version=version)
        assert code == 200 and json.loads(y) == {"predictions": [3.5, 4.0, 5.5]}
    assert len(client.json("GET", "/models")[1]) == 2


def test_load_one_model_two_times(client):
    data = ("half_plus_two_again", "/opt/ml/models/half_plus_two")
    code, res = load(client, *data)
    assert code == 200 and "Successfully loaded model half_plus_two_again" in res
    code, res = load(client, *data)
    assert code == 409 and "Model half_plus_two_again is already loaded" in res


@pytest.mark.parametrize("name", ["non-existing", "invalid_version"])
def test_load_a_folder_without_a_version(client, name):
    base = f"/opt/ml/models/{name}"
    code, res = load(client, name, base)
    assert code == 404
    assert f"Could not find valid base path {base} for servable {name}" in res


def test_bad_model_request(client):
    code, _, _ = client.post("/models", json.dumps({"model_name": "model_name",
                                                    "uri": "/opt/ml/models/non-existing"}))
    assert code == 500


def test_get_one_model(mme, client):
    version = mme[0]
    code, _, body = client.request("GET", "/models/half_plus_two")
    expected = "is not loaded yet." if version == "2.20" else (
        "is loaded yet." if version == "2.19" else "")
    assert code == 404 and expected in json.loads(body)["error"]
    load(client, "half_plus_two", "/opt/ml/models/half_plus_two")
    code, _, body = client.request("GET", "/models/half_plus_two")
    if version == "2.20":
        assert code == 200
        status = json.loads(body)["model"]["model_version_status"]
        assert status[0]["state"] == "AVAILABLE"
    else:  # the 2.2-2.19 handler reads .rest_port off a list: falcon's 500
        assert code == 500


def test_invocations_without_a_model_name(mme, client):
    code, _, body = client.post("/invocations", X, {"Content-Type": "application/json"})
    if mme[0] == "1.15":
        assert code == 500 and "referenced before assignment" in body.decode()
    else:
        assert code == 400
        assert json.loads(body) == {"error": "Invocation request does not contain model name."}


def test_runtime_target_model_loads_the_archive_on_first_use(mme, client):
    import boto3

    server = mme[3]
    rt = boto3.client("sagemaker-runtime", endpoint_url=server.url, region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="x")
    for target, expected in (("half_plus_two.tar.gz", [2.5, 3.0, 4.5]),
                             ("half_plus_three.tar.gz", [3.5, 4.0, 5.5]),
                             ("half_plus_two.tar.gz", [2.5, 3.0, 4.5])):
        r = rt.invoke_endpoint(EndpointName="local", ContentType="application/json", Body=X,
                               TargetModel=target)
        assert json.loads(r["Body"].read()) == {"predictions": expected}
    assert len(mme[1].names) == 2
    with pytest.raises(rt.exceptions.ValidationError) as info:
        rt.invoke_endpoint(EndpointName="local", ContentType="application/json", Body=X,
                           TargetModel="missing.tar.gz")
    assert "Failed to download model data" in str(info.value)
    with pytest.raises(rt.exceptions.ValidationError):
        rt.invoke_endpoint(EndpointName="local", ContentType="application/json", Body=X)
