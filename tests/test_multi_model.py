"""kdiag.serve.multi_model and the TargetModel path of validate/replay (multi-model mode)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from kdiag.cli import cli
from kdiag.serve.multi_model import ModelManager, target_model_name
from tests.conftest import MODELS


def test_container_paths_map_into_the_folder_and_nowhere_else(tmp_path):
    (tmp_path / "m").mkdir()
    mgr = ModelManager(tmp_path)
    assert mgr.local_path("/opt/ml/models/m") == (tmp_path / "m").resolve()
    assert mgr.local_path("m") == (tmp_path / "m").resolve()
    for outside in ("/etc", "/opt/ml/models/../../etc", "../x", "/opt/ml/modelsX"):
        assert mgr.local_path(outside) is None


def test_management_answers_without_loading_anything(tmp_path):
    mgr = ModelManager(MODELS / "mme", framework_version="2.19")
    ans = mgr.load(b'{"model_name": "x", "url": "/opt/ml/models/invalid_version"}')
    assert ans.status == 404 and json.loads(ans.body) == {
        "error": "Could not find valid base path /opt/ml/models/invalid_version for servable x"}
    assert mgr.load(b"not json").status == 500
    assert mgr.unload("x").status == 404
    g3 = ModelManager(MODELS / "mme", framework_version="2.20")
    ans = g3.load(b'{"model_name": "../x", "url": "/opt/ml/models/half_plus_two"}')
    assert ans.status == 400 and "invalid model_name" in json.loads(ans.body)["error"]


def test_validate_target_model_takes_the_multi_model_path(tmp_path):
    payload = tmp_path / "p.csv"
    payload.write_text("1.0,2.0\n")
    res = CliRunner().invoke(cli, ["validate", str(payload), "--signature",
                                   str(MODELS / "mme/half_plus_two"), "--target-model",
                                   "two.tar.gz", "--framework-version", "2.19", "--format",
                                   "json"])
    doc = json.loads(res.output)
    # No njs CSV conversion in multi-model mode: the raw CSV reaches TF Serving, which fails,
    # and the 2.2-2.19 default handler still answers 200 with the error body.
    assert doc["tfs_request"] == "1.0,2.0\n"
    assert doc["tfs_target"]["model"] == target_model_name("two.tar.gz")
    assert any(f["code"] == "KD640" for f in doc["findings"])


# -- user code in multi-model mode (python_service.py: universal and per-model inference.py) --

JSON_ONLY = '''import json


def input_handler(data, context):
    if context.request_content_type != "application/json":
        raise ValueError("json only")
    return data.read().decode("utf-8")


def output_handler(response, context):
    return response.content, "application/json"
'''
X = json.dumps({"instances": [1.0, 2.0, 5.0]})


def _opt_ml(tmp_path, *, universal=None, own=None, archive_code=None):
    """tmp_path as /opt/ml: models/half_plus_two/model (+ code/), code/ (universal), and
    models/two.tar.gz (+ code/ inside) for TargetModel."""
    import shutil
    import tarfile

    models = tmp_path / "models"
    shutil.copytree(MODELS / "mme/half_plus_two", models / "half_plus_two" / "model")
    if own is not None:
        (models / "half_plus_two/model/code").mkdir()
        (models / "half_plus_two/model/code/inference.py").write_text(own)
    if universal is not None:
        (tmp_path / "code").mkdir()
        (tmp_path / "code/inference.py").write_text(universal)
    src = tmp_path / "archive_src"
    shutil.copytree(MODELS / "mme/half_plus_two", src / "half_plus_two")
    if archive_code is not None:
        (src / "code").mkdir()
        (src / "code/inference.py").write_text(archive_code)
    with tarfile.open(models / "two.tar.gz", "w:gz") as tar:
        for p in sorted(src.iterdir()):
            tar.add(p, arcname=p.name)
    return models


def _load(mgr, name="half_plus_two"):
    return mgr.load(json.dumps({"model_name": name,
                                "url": f"/opt/ml/models/{name}/model"}).encode())


def _csv(mgr, name="half_plus_two"):
    from kdiag.path.container import Request

    return mgr.invoke(name, Request(b"1.0,2.0,5.0", "text/csv"))


def test_model_code_is_reported_and_not_run_without_the_opt_in(tmp_path):
    lines = []
    mgr = ModelManager(_opt_ml(tmp_path, universal=JSON_ONLY, own=JSON_ONLY),
                       framework_version="2.19", log=lines.append)
    assert mgr.start() is None
    assert any("KD230" in x and "universal inference.py" in x for x in lines)
    assert _load(mgr).status == 200
    assert any("KD230" in x and "this model's own inference.py" in x for x in lines)
    # the default handler answered (raw CSV to TF Serving, relayed with 200 on 2.2-2.19),
    # not the JSON-only handlers the container would run
    inv = _csv(mgr)
    assert inv.status == 200 and b"json only" not in inv.body
    mgr.close()


def test_a_models_own_code_wins_over_the_universal_script(tmp_path):
    lines = []
    never = "def handler(data, context):\n    raise RuntimeError('universal ran')\n"
    mgr = ModelManager(_opt_ml(tmp_path, universal=never, own=JSON_ONLY),
                       framework_version="2.20", run_model_code=True, log=lines.append)
    assert mgr.start() is None and any("running the universal" in x for x in lines)
    assert _load(mgr).status == 200
    inv = _csv(mgr)
    assert inv.status == 500 and b"json only" in inv.body
    mgr.close()


def test_on_1x_images_the_universal_script_lives_in_the_models_folder(tmp_path):
    models = _opt_ml(tmp_path, own="raise RuntimeError('1.x ignores model code')\n")
    (models / "code").mkdir()
    (models / "code/inference.py").write_text(JSON_ONLY)
    lines = []
    mgr = ModelManager(models, framework_version="1.15", run_model_code=True, log=lines.append)
    assert mgr.universal_code_dir == models / "code" and mgr.start() is None
    assert _load(mgr).status == 200
    assert any("is ignored (the 1.x images" in x for x in lines)
    assert b"json only" in _csv(mgr).body  # the universal script, the model's code ignored
    mgr.close()


def test_code_that_fails_at_import_fails_as_the_container_does(tmp_path):
    broken = "import no_such_module_kdiag\n"
    mgr = ModelManager(_opt_ml(tmp_path / "a", own=broken), framework_version="2.19",
                       run_model_code=True)
    assert mgr.start() is None
    ans = _load(mgr)  # imported inside POST /models: falcon's 500, nothing loaded
    assert ans.status == 500 and b"500 Internal Server Error" in ans.body and not mgr.names
    mgr = ModelManager(_opt_ml(tmp_path / "b", universal=broken), framework_version="2.19",
                       code_dir=tmp_path / "b" / "code")
    failure = mgr.start()  # the universal script: the service never becomes healthy
    assert failure and "no_such_module_kdiag" in failure and mgr.startup_failure == failure


def test_universal_requirements_the_environment_lacks_stop_the_start(tmp_path):
    models = _opt_ml(tmp_path, universal=JSON_ONLY)
    (tmp_path / "code/requirements.txt").write_text("kdiag-no-such-package-xyz==1.0\n")
    mgr = ModelManager(models, framework_version="2.19")  # checked even without the opt-in
    failure = mgr.start()
    assert failure and "kdiag-no-such-package-xyz" in failure


def test_a_target_model_archive_brings_its_own_code(tmp_path):
    from kdiag.path.container import Request

    mgr = ModelManager(_opt_ml(tmp_path, archive_code=JSON_ONLY), framework_version="2.20",
                       run_model_code=True)
    assert mgr.start() is None
    name, problem = mgr.target_model("two.tar.gz")
    assert problem is None
    inv = mgr.invoke(name, Request(b"1.0,2.0,5.0", "text/csv"))
    assert inv.status == 500 and b"json only" in inv.body
    ok = mgr.invoke(name, Request(X.encode(), "application/json"))
    assert ok.status == 200 and json.loads(ok.body) == {"predictions": [2.5, 3.0, 4.5]}
    mgr.close()


def test_serve_multi_model_refuses_a_model_name(tmp_path):
    res = CliRunner().invoke(cli, ["serve", "--multi-model", str(MODELS / "mme"),
                                   "--model-name", "x"])
    assert res.exit_code == 2 and "--multi-model DIR serves the models in DIR" in res.output
