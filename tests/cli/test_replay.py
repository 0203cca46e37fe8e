"""`kdiag replay` of several payloads: a summary, the rejected payloads, every one with -v,
and findings that promise a fixed payload deliver one (needs TensorFlow)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kdiag.cli import cli
from tests.conftest import FIXTURES, MODELS, ROOT

pytestmark = pytest.mark.tf
pytest.importorskip("tensorflow")

CUSTOM = str(MODELS / "custom/export/1")


def test_batch_replay_prints_a_summary_and_the_rejected_payloads(tmp_path):
    (tmp_path / "sub").mkdir()
    for i in range(3):
        (tmp_path / f"ok{i}.json").write_text("[1, 2, 3, 4, 5]")
    (tmp_path / "sub" / "bad.json").write_text('{"instances": [["1", "2", "3", "4", "5"]]}')
    r = CliRunner().invoke(cli, ["replay", str(tmp_path), "--model", CUSTOM])
    assert r.exit_code == 1, r.output
    assert "4 payloads: 3 accepted, 1 rejected" in r.output
    assert "sub/bad.json" in r.output and "Numbers were sent as strings" in r.output
    assert "ok0.json" not in r.output and "-v lists every payload" in r.output
    r = CliRunner().invoke(cli, ["replay", str(tmp_path), "--model", CUSTOM, "-v"])
    assert all(f"ok{i}.json" in r.output for i in range(3)) and "sub/bad.json" in r.output


def test_a_finding_that_promises_the_fixed_payload_comes_with_it():
    r = CliRunner().invoke(cli, [
        "replay", str(ROOT / "examples/notebook_style.json"), "--model", CUSTOM,
        "--keras", str(MODELS / "custom/custom.keras"),
        "--custom-objects", str(FIXTURES / "custom_model.py"),
        "--client-input", str(ROOT / "examples/notebook_style.json"), "--format", "json"])
    doc = json.loads(r.output)
    promised = [f for f in doc["findings"] if "fixed payload" in (f["fix"] or "")]
    assert promised and doc["fixed_payload"] is not None
