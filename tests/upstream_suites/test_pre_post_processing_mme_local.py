"""test_pre_post_processing_mme*.py of both public suites, against `kdiag serve --multi-model
--run-archive-code`.

The public fixtures mount a folder at /opt/ml holding a universal code/ folder and
models/<name>/model/ (the SavedModel versions, maybe a model-specific code/), start the image
with SAGEMAKER_MULTI_MODEL=true, load half_plus_three and half_plus_two with POST /models and
invoke each through /models/<name>/invoke. Here the same tree is built in a temporary folder from
fixtures' mme models, with handlers rewritten (same contract, own code), and the ModelManager
serves its models/ folder, running the code the container would find (--run-archive-code):

- mme1: a universal inference.py (JSON and CSV) with a requirements.txt, no model code;
- mme2: a universal script (which must never run) and a script for each model (half_plus_three:
  JSON only; half_plus_two: CSV only);
- mme3: a universal CSV-only script and a JSON-only script for half_plus_three;
- mme4: no universal script; a JSON-and-CSV script for half_plus_three, the default handler for
  half_plus_two.

The public mme1 requirement (Pillow) is replaced by one this environment has, since kdiag
checks rather than installs. The 2.2-2.19 images' answers are the public assertions; for the
2.20+ images (whose public suite has no such test) the answers follow its source: TF Serving's
status instead of 200 from the default handler and instead of the output handler's 500, and 415
for an unknown Content-Type from the default handler. fixtures'
half_plus_two has version 123 only, so the version test asks it for 123 alone. The 1.x suite's
test_pre_post_processing_mme.py (universal script under /opt/ml/models/code, the model under
models/half_plus_three/model/half_plus_three) runs as "g1".
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.upstream_suites.conftest import MME_MODELS, Http

pytestmark = pytest.mark.tf

_TFS = '''
def _tfs(response, context):
    if response.status_code != 200:
        raise ValueError(response.content.decode("utf-8"))
    return response.content, context.accept_header


def output_handler(response, context):
    return _tfs(response, context)
'''


def _handlers(json_ok: bool, csv_ok: bool) -> str:
    """An input/output handler pair accepting JSON and/or CSV (the public examples' contract)."""
    return f'''import json

JSON_OK, CSV_OK = {json_ok}, {csv_ok}


def input_handler(data, context):
    kind = context.request_content_type
    if kind == "application/json" and JSON_OK:
        text = data.read().decode("utf-8")
        return text if text else ""
    if kind == "text/csv" and CSV_OK:
        values = [float(v) for v in data.read().decode("utf-8").split(",")]
        return json.dumps({{"instances": values}})
    raise ValueError(json.dumps({{"error": "unsupported content type %s" % (kind or "unknown")}}))
''' + _TFS


JSON_CSV, JSON_ONLY, CSV_ONLY = _handlers(True, True), _handlers(True, False), _handlers(False, True)
NEVER = '''def handler(data, context):
    raise RuntimeError("the universal script ran although the model has its own")
'''
# scenario: (universal inference.py, {model: its own inference.py}), then the handler kind
# each model is answered by.
SCENARIOS = {
    "mme1": ((JSON_CSV, {}), {"half_plus_three": "json+csv", "half_plus_two": "json+csv"}),
    "mme2": ((NEVER, {"half_plus_three": JSON_ONLY, "half_plus_two": CSV_ONLY}),
             {"half_plus_three": "json", "half_plus_two": "csv"}),
    "mme3": ((CSV_ONLY, {"half_plus_three": JSON_ONLY}),
             {"half_plus_three": "json", "half_plus_two": "csv"}),
    "mme4": ((None, {"half_plus_three": JSON_CSV}),
             {"half_plus_three": "json+csv", "half_plus_two": "default"}),
    "g1": ((JSON_CSV, {"half_plus_three": NEVER}), {"half_plus_three": "json+csv"}),
}
# 2.16: a 2.2-2.19 image whose TF Serving (before 2.18) rejects text after the first JSON value,
# as the images the public assertions were written against.
CASES = [(s, v) for s in SCENARIOS if s != "g1" for v in ("2.16", "2.20")] + [("g1", "1.15")]
EXPECTED = {"half_plus_three": [3.5, 4.0, 5.5], "half_plus_two": [2.5, 3.0, 4.5]}
VERSIONS = {"half_plus_three": ("123", "124"), "half_plus_two": ("123",)}


def opt_ml(root, scenario: str):
    """The /opt/ml folder of the public fixture; returns the models folder (DIR)."""
    (universal, own), kinds = SCENARIOS[scenario]
    models = root / "models"
    for name in kinds:
        model = models / name / "model"
        # g1: the 1.x test keeps the versions one level down and loads that folder
        shutil.copytree(MME_MODELS / name, model / name if scenario == "g1" else model)
        if name in own:
            (model / "code").mkdir()
            (model / "code" / "inference.py").write_text(own[name])
    if universal is not None:
        code = models / "code" if scenario == "g1" else root / "code"
        code.mkdir()
        (code / "inference.py").write_text(universal)
        if scenario == "mme1":
            (code / "requirements.txt").write_text("numpy>=1.0\n")
    return models


@pytest.fixture(scope="module", params=CASES, ids=[f"{s}-{v}" for s, v in CASES])
def mme(request, tmp_path_factory):
    from kdiag.serve.multi_model import ModelManager
    from kdiag.serve.server import start_server

    scenario, version = request.param
    lines: list[str] = []
    manager = ModelManager(opt_ml(tmp_path_factory.mktemp(scenario), scenario),
                           framework_version=version, run_model_code=True, log=lines.append)
    assert manager.start() is None, lines
    server = start_server(manager)
    client = Http(server.host, server.port)
    kinds = SCENARIOS[scenario][1]
    for name in kinds:  # the public `models` fixture
        url = (f"/opt/ml/models/{name}/model/{name}" if scenario == "g1"
               else f"/opt/ml/models/{name}/model")
        status, _, body = client.post("/models", json.dumps({"model_name": name, "url": url}),
                                      {"Content-Type": "application/json"})
        assert status == 200, body
    yield scenario, version, client, kinds, lines
    server.stop()
    manager.close()


def invoke(client, name, data, content_type="application/json", version=None):
    attrs = "tfs-method=predict" + (f",tfs-model-version={version}" if version else "")
    status, _, body = client.post(f"/models/{name}/invoke", data, {
        "Content-Type": content_type, "X-Amzn-SageMaker-Custom-Attributes": attrs})
    return status, body.decode()


def rejected_by_tfs(version: str, status: int, text: str, message: str) -> bool:
    """The default handler relays TF Serving's error: with 200 on 2.2-2.19, with TF Serving's
    status (400) on 2.20+."""
    return status == (400 if version == "2.20" else 200) and message in text


def handler_relays_tfs_error(version: str, status: int, text: str, message: str) -> bool:
    """An input/output handler pair after TF Serving's error: the output handler raises (500)
    on 2.2-2.19; on 2.20+ the service raises falcon.HTTPError with TF Serving's status first."""
    return status == (400 if version == "2.20" else 500) and message in text


def csv_as_json_error(version: str) -> str:
    """TF Serving's answer to the raw CSV `1.0,2.0,5.0` read as JSON: before 2.18 the parse
    fails after the first value; 2.18+ stops there and finds a number, not an object."""
    return ("JSON Value: 1.0 Is not object" if version == "2.20"
            else "document root must not be followed by other values")


def test_ping_service(mme):
    assert mme[2].get("/ping")[0] == 200


def test_predict_json(mme):
    _, _, client, kinds, _ = mme
    for name, kind in kinds.items():
        status, text = invoke(client, name, '{"instances": [1.0, 2.0, 5.0]}')
        if kind == "csv":
            assert status == 500 and "unsupported content type application/json" in text
        else:
            assert json.loads(text) == {"predictions": EXPECTED[name]}


def test_zero_content(mme):
    _, version, client, kinds, _ = mme
    for name, kind in kinds.items():
        status, text = invoke(client, name, "")
        if kind == "csv":
            assert status == 500 and "unsupported content type application/json" in text
        elif kind == "default":
            assert rejected_by_tfs(version, status, text, "document is empty")
        else:
            assert handler_relays_tfs_error(version, status, text, "document is empty")


def test_csv_input(mme):
    _, version, client, kinds, _ = mme
    for name, kind in kinds.items():
        status, text = invoke(client, name, "1.0,2.0,5.0", "text/csv")
        if kind == "json":
            assert status == 500 and "unsupported content type text/csv" in text
        elif kind == "default":
            assert rejected_by_tfs(version, status, text,
                                   csv_as_json_error(version))
        else:
            assert json.loads(text) == {"predictions": EXPECTED[name]}


def test_specific_versions(mme):
    _, version, client, kinds, _ = mme
    for name, kind in kinds.items():
        for v in VERSIONS[name]:
            status, text = invoke(client, name, "1.0,2.0,5.0", "text/csv", v)
            if kind == "json":
                assert "unsupported content type text/csv" in json.loads(text)["error"]
            elif kind == "default":
                assert rejected_by_tfs(version, status, text,
                                       csv_as_json_error(version))
            else:
                assert json.loads(text) == {"predictions": EXPECTED[name]}


def test_unsupported_content_type(mme):
    _, version, client, kinds, _ = mme
    for name, kind in kinds.items():
        status, text = invoke(client, name, "aW1hZ2UgYnl0ZXM=", "unsupported-type")
        if kind != "default":
            assert status == 500 and "unsupported content type" in text
        elif version == "2.20":  # the 2.20+ default handler's own gate
            assert status == 415 and "Unsupported Media Type: unsupported-type" in text
        else:
            assert status == 200 and "Invalid value" in text


def test_large_input(mme):
    scenario, version, client, kinds, _ = mme
    values = ",".join(["1.0", "0.0", "2.0"] * 251312)  # 753936 values, as the public file
    for name, kind in kinds.items():
        if kind in ("json+csv", "csv") and (scenario, version, name) != (
                "mme1", "2.16", "half_plus_three"):
            continue  # ~8 s per answer of 753936 predictions: one proves the path
        status, text = invoke(client, name, values, "text/csv")
        if kind == "json":
            assert "unsupported content type text/csv" in json.loads(text)["error"]
        elif kind == "default":
            assert rejected_by_tfs(version, status, text,
                                   csv_as_json_error(version))
        else:
            assert status == 200 and len(json.loads(text)["predictions"]) == 753936


def test_the_log_names_the_handlers_each_model_runs(mme):
    scenario, _, _, kinds, lines = mme
    for name, kind in kinds.items():
        line = next(x for x in lines if x.startswith(f"kdiag serve: model {name}: "))
        own = scenario != "g1" and name in SCENARIOS[scenario][0][1]
        if own:
            assert "its own" in line and f"{name}/model/code/inference.py" in line
        elif kind == "default":
            assert "the default handler" in line
        else:
            assert "the universal" in line
