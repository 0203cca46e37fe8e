"""test_pre_post_processing.py of both public suites, against `kdiag serve --run-archive-code`.

The public fixture copies test/resources/models plus one of five code/ examples into the model
folder. The examples are rewritten here (same contract, own code): an input/output handler pair,
a `handler` calling TF Serving with requests, a handler needing a package from
requirements.txt (the public one needs Pillow; here a package this environment has, since the
container installs it and kdiag does not), and a handler importing a module from code/lib with a
requirements.txt the container ignores because lib/ exists (the public test checks that Pillow
was not installed: here the requirement cannot be installed at all, and the endpoint starts).
Each example is served as a folder and as a model.tar.gz.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.upstream_suites.conftest import TFS_MODELS, Http, pack, serve

pytestmark = pytest.mark.tf

CHECKS = '''
def _input(data, context):
    if context.request_content_type == "application/json":
        text = data.read().decode("utf-8")
        return text if text else ""
    if context.request_content_type == "text/csv":
        values = [float(v) for v in data.read().decode("utf-8").split(",")]
        return json.dumps({"instances": values})
    raise ValueError(json.dumps({"error": "unsupported content type %s"
                                 % (context.request_content_type or "unknown")}))


def _output(response, context):
    if response.status_code != 200:
        raise ValueError(response.content.decode("utf-8"))
    return response.content, context.accept_header
'''

EXAMPLES = {
    "io-handlers": {"inference.py": "import json\n" + CHECKS + '''
def input_handler(data, context):
    return _input(data, context)


def output_handler(response, context):
    return _output(response, context)
'''},
    "handler": {"inference.py": "import json\n\nimport requests\n" + CHECKS + '''
def handler(data, context):
    return _output(requests.post(context.rest_uri, data=_input(data, context)), context)
'''},
    "requirements": {"requirements.txt": "numpy>=1.0\n",
                     "inference.py": "import json\n\nimport numpy\nimport requests\n" + CHECKS
                     + '''
def handler(data, context):
    assert numpy.__version__
    return _output(requests.post(context.rest_uri, data=_input(data, context)), context)
'''},
    "lib": {"requirements.txt": "kdiag-no-such-package-xyz==1.0\n",
            "lib/helper_module/__init__.py": "VERSION = '1.0'\n",
            "inference.py": "import json\n\nimport helper_module\nimport requests\n" + CHECKS
            + '''
def handler(data, context):
    assert helper_module.VERSION == "1.0"
    return _output(requests.post(context.rest_uri, data=_input(data, context)), context)
'''},
}


@pytest.fixture(scope="module", params=[(e, m) for e in EXAMPLES for m in ("folder", "archive")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def container(request, tmp_path_factory):
    example, mode = request.param
    root = tmp_path_factory.mktemp(example) / "model"
    shutil.copytree(TFS_MODELS, root)
    for rel, text in EXAMPLES[example].items():
        (root / "code" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "code" / rel).write_text(text)
    model = root if mode == "folder" else pack(root, root.parent / "model.tar.gz")
    server, ep = serve(model, "2.19", artifact_code=True)
    client = Http(server.host, server.port)
    client.case = request.param
    yield client
    server.stop()
    ep.close()


def headers(content_type, version=None):
    attrs = "tfs-model-name=half_plus_three,tfs-method=predict"
    if version:
        attrs += f",tfs-model-version={version}"
    return {"Content-Type": content_type, "X-Amzn-SageMaker-Custom-Attributes": attrs}


def test_predict_json(container):
    status, _, body = container.post("/invocations", '{"instances": [1.0, 2.0, 5.0]}',
                                     headers("application/json"))
    assert json.loads(body) == {"predictions": [3.5, 4.0, 5.5]}


def test_zero_content(container):
    status, _, body = container.post("/invocations", "", headers("application/json"))
    assert status == 500 and "document is empty" in body.decode()


def test_large_input(container):
    if container.case != ("io-handlers", "folder"):
        # ~8 s per server for 753936 values (kdiag writes TF Serving's JSON value by value):
        # one server proves the path; the other examples share it.
        pytest.skip("large input: run once, on the io-handlers folder")
    values = ",".join(["1.0", "0.0", "2.0"] * 251312)  # 753936 values, as the public file
    status, _, body = container.post("/invocations", values, headers("text/csv"))
    assert status == 200 and len(json.loads(body)["predictions"]) == 753936


def test_csv_input(container):
    _, _, body = container.post("/invocations", "1.0,2.0,5.0", headers("text/csv"))
    assert json.loads(body) == {"predictions": [3.5, 4.0, 5.5]}


def test_predict_specific_versions(container):
    for version in ("123", "124"):
        _, _, body = container.post("/invocations", '{"instances": [1.0, 2.0, 5.0]}',
                                    headers("application/json", version))
        assert json.loads(body) == {"predictions": [3.5, 4.0, 5.5]}


def test_unsupported_content_type(container):
    status, _, body = container.post("/invocations", "aW1hZ2UgYnl0ZXM=",
                                     headers("unsupported-type"))
    assert status == 500 and "unsupported content type" in body.decode()


def test_ping_service(container):
    assert container.get("/ping")[0] == 200
