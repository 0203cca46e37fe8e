"""A SavedModel is a program: file-touching ops reachable from a serving signature are reported
(op, function) by inspect/check, and no command runs a graph that writes, deletes or lists
files unless --trust-model is given (exit 2 naming the op, the function and the flag)."""

from __future__ import annotations

import json

import pytest

from kdiag.model.artifact import read_model
from kdiag.model.graph_trust import UntrustedGraph, require_trusted
from tests.conftest import MODELS
from tests.security._hostile import run_kdiag

FILE_IO = MODELS / "file_io" / "1"
WRITTEN = "kdiag_file_io_written.txt"


def _savedmodels():
    return sorted(p.parent for p in MODELS.rglob("saved_model.pb") if "file_io" not in p.parts)


@pytest.mark.parametrize("model", _savedmodels(), ids=lambda p: str(p.relative_to(MODELS)))
def test_no_committed_fixture_is_flagged(model):
    art = read_model(model)
    assert art.file_ops == []  # the saver's SaveV2/RestoreV2 hang off no signature
    assert not {f.code for f in art.findings} & {"KD052", "KD053"}


def test_the_file_io_model_reports_each_op_and_its_function():
    art = read_model(FILE_IO)
    ops = {(o.op, o.access, o.reached_from) for o in art.file_ops}
    assert ops == {("WriteFile", "write", "serving_default"), ("MatchingFiles", "list", "listing"),
                   ("ReadFile", "read", "reading")}
    write = next(o for o in art.file_ops if o.op == "WriteFile")
    assert "_log" in write.function  # found through the nested tf.function call
    with pytest.raises(UntrustedGraph, match="WriteFile.*--trust-model"):
        require_trusted(art.file_ops, str(FILE_IO))
    require_trusted([o for o in art.file_ops if o.access == "read"], str(FILE_IO))  # a warning only


def test_inspect_shows_the_findings_and_runs_nothing(tmp_path):
    res = run_kdiag(["inspect", str(FILE_IO), "--format", "json"], tmp_path)
    assert res.code == 1
    found = {(f["code"], f["severity"]) for f in json.loads(res.stdout)["findings"]}
    assert {("KD052", "error"), ("KD053", "warning")} <= found
    assert not (tmp_path / WRITTEN).exists()


@pytest.mark.parametrize("args", [
    ["replay", "body.json", "--model", str(FILE_IO)],
    ["check", str(FILE_IO), "--no-config"],
    ["serve", str(FILE_IO), "--port", "0"],
], ids=["replay", "check", "serve"])
def test_commands_that_run_the_graph_refuse_without_the_trust_flag(tmp_path, args):
    (tmp_path / "body.json").write_text('{"instances": [1.0, 2.0]}')
    res = run_kdiag(args, tmp_path, timeout=120)
    assert res.code == 2, (res.stdout, res.stderr)
    assert "WriteFile" in res.stderr and "__inference__log" in res.stderr
    assert "--trust-model" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / WRITTEN).exists()
    assert res.peak_mib < 400  # refused before TensorFlow was even imported


@pytest.mark.tf
def test_the_trust_flag_runs_it(tmp_path):
    (tmp_path / "body.json").write_text('{"instances": [1.0, 2.0]}')
    res = run_kdiag(["replay", "body.json", "--model", str(FILE_IO), "--trust-model",
                     "--format", "json"], tmp_path, timeout=300)
    assert res.code == 0, res.stderr
    assert (tmp_path / WRITTEN).read_text() == "1.000000,2.000000"


@pytest.mark.tf
def test_the_python_api_refuses_unless_trust_model(tmp_path, monkeypatch):
    import kdiag

    monkeypatch.chdir(tmp_path)
    with pytest.raises(UntrustedGraph, match="WriteFile"):
        kdiag.replay('{"instances": [1.0]}', FILE_IO, content_type="application/json")
    assert not (tmp_path / WRITTEN).exists()
    r = kdiag.replay('{"instances": [1.0]}', FILE_IO, content_type="application/json",
                     trust_model=True)
    assert r.results[0].accepted and (tmp_path / WRITTEN).exists()
