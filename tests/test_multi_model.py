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
