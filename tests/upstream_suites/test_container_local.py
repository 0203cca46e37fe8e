"""test_container.py of both public suites (G1 repo and DLC 2.2-2.19), against `kdiag serve`.

The public fixture runs the image on test/resources/models mounted at /opt/ml/model (with and
without SAGEMAKER_TFS_ENABLE_BATCHING); here kdiag serve runs on the rebuilt folder
(fixtures/models/tfs_models) and on the same folder packed as model.tar.gz, for a G1 image
(TF 1.15) and a 2.2-2.19 image (TF 2.19). Batching changes nothing a request can see here.
"""

from __future__ import annotations

import json

import pytest

from tests.upstream_suites.conftest import MODES, TFS_MODELS, Http, serve

pytestmark = pytest.mark.tf

# (framework version, which public file's assertions): G1 repo runs 1.x images, DLC runs 2.x.
IMAGES = {"g1": "1.15", "dlc": "2.19"}


@pytest.fixture(scope="module", params=[(img, mode) for img in IMAGES for mode in MODES],
                ids=lambda p: f"{p[0]}-{p[1]}")
def container(request, tfs_model_archive):
    image, mode = request.param
    model = TFS_MODELS if mode == "folder" else tfs_model_archive
    server, ep = serve(model, IMAGES[image])
    yield image, Http(server.host, server.port)
    server.stop()
    ep.close()


def make_request(container, data, content_type="application/json", method="predict",
                 version=None):
    _, client = container
    attrs = f"tfs-model-name=half_plus_three,tfs-method={method}"
    if version:
        attrs += f",tfs-model-version={version}"
    _, _, body = client.post("/invocations", data, {
        "Content-Type": content_type, "X-Amzn-SageMaker-Custom-Attributes": attrs})
    return json.loads(body.decode("utf-8"))


THREE = json.dumps({"instances": [1.0, 2.0, 5.0]})


def test_predict(container):
    assert make_request(container, THREE) == {"predictions": [3.5, 4.0, 5.5]}


def test_predict_twice(container):
    assert make_request(container, THREE) == {"predictions": [3.5, 4.0, 5.5]}
    assert make_request(container, THREE) == {"predictions": [3.5, 4.0, 5.5]}


def test_predict_specific_versions(container):
    for version in (123, 124):
        assert make_request(container, THREE, version=version) == {
            "predictions": [3.5, 4.0, 5.5]}


def test_predict_two_instances(container):
    y = make_request(container, json.dumps({"instances": [[1.0, 2.0, 5.0], [1.0, 2.0, 5.0]]}))
    assert y == {"predictions": [[3.5, 4.0, 5.5], [3.5, 4.0, 5.5]]}


def test_predict_instance_jsonlines_input_error(container):
    y = make_request(container, json.dumps({"instances": ["]["]}))
    tail = 'JSON Value: "][" Type: String is not of expected type: float'
    if container[0] == "g1":
        assert y["error"] == ("Failed to process element: 0 of 'instances' list. Error: "
                              "Invalid argument: " + tail)
    else:
        assert y["error"].endswith(tail)


@pytest.mark.parametrize("content_type", ["application/json", "application/jsonlines",
                                          "application/jsons"])
def test_predict_json_lines_of_lists(container, content_type):
    y = make_request(container, "[1.0, 2.0, 5.0]\n[1.0, 2.0, 5.0]", content_type)
    assert y == {"predictions": [[3.5, 4.0, 5.5], [3.5, 4.0, 5.5]]}


def test_predict_jsons_2(container):
    y = make_request(container, '{"x": [1.0, 2.0, 5.0]}\n{"x": [1.0, 2.0, 5.0]}')
    assert y == {"predictions": [[3.5, 4.0, 5.5], [3.5, 4.0, 5.5]]}


def test_predict_generic_json(container):
    assert make_request(container, "[1.0, 2.0, 5.0]") == {"predictions": [[3.5, 4.0, 5.5]]}


def test_predict_generic_json_two_instances(container):
    y = make_request(container, "[[1.0, 2.0, 5.0], [1.0, 2.0, 5.0]]")
    assert y == {"predictions": [[3.5, 4.0, 5.5], [3.5, 4.0, 5.5]]}


@pytest.mark.parametrize(("csv", "expected"), [
    ("1.0", [3.5]),
    ("0.0", [3.0]),
    ("0.0,2.0,5.0", [[3.0, 4.0, 5.5]]),
    ("1.0,2.0,5.0", [[3.5, 4.0, 5.5]]),
    ("1.0,2.0,5.0\n1.0,2.0,5.0", [[3.5, 4.0, 5.5], [3.5, 4.0, 5.5]]),
    ("1.0\n2.0\n5.0", [3.5, 4.0, 5.5]),
])
def test_predict_csv(container, csv, expected):
    assert make_request(container, csv, "text/csv") == {"predictions": expected}


def test_predict_csv_wide_categorical_input(container):
    row1 = ",".join(["0.0", "1.0"] * 5 + ["1.0", "0.0"] * 5 + ["0.0", "1.0"] * 4 + ["0.0", "0.0"])
    row2 = ",".join(["0.0", "1.0"] * 5 + ["1.0", "0.0"] * 9 + ["6.0", "0.0"])
    y = make_request(container, row1 + "\n" + row2 + "\n", "text/csv")
    predictions = y["predictions"]
    assert len(predictions) == 2 and len(predictions[0]) == 30
    assert sum(predictions[0]) == 97  # row sum 14: 14/2 + 3*30
    assert sum(predictions[1]) == 100  # row sum 20


def test_regress(container):
    x = {"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}, {"x": 2.0}]}
    assert make_request(container, json.dumps(x), method="regress") == {"results": [3.5, 4.0]}


def test_regress_one_instance(container):
    x = {"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}]}
    assert make_request(container, json.dumps(x), method="regress") == {"results": [3.5]}


def test_predict_bad_input(container):
    assert "error" in make_request(container, "whatever")


def test_predict_bad_input_instances(container):
    y = make_request(container, json.dumps({"junk": "data"}))
    assert y["error"].startswith("Failed to process element: 0 key: junk of 'instances' list.")


def test_predict_no_custom_attributes_header(container):
    _, client = container
    _, _, body = client.post("/invocations", THREE, {"Content-Type": "application/json"})
    assert json.loads(body) == {"predictions": [3.5, 4.0, 5.5]}


@pytest.mark.parametrize(("accept", "content_type"), [
    ("application/jsonlines", "application/jsonlines"),
    ("application/json, application/jsonlines", "application/json"),  # G1 repo only
])
def test_predict_with_accept(container, accept, content_type):
    image, client = container
    if image == "dlc" and "," in accept:
        pytest.skip("test_predict_with_multiple_accept_types is in the G1 repo's suite only")
    _, headers, body = client.post("/invocations", THREE, {"Content-Type": "application/json",
                                                           "Accept": accept})
    assert headers["content-type"] == content_type
    assert body.decode("utf-8") == '{    "predictions": [3.5, 4.0, 5.5    ]}'
