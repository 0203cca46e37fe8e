"""`kdiag replay` of several payloads: a summary, the rejected payloads, every one with -v,
and findings that promise a fixed payload deliver one (needs TensorFlow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from kdiag.model.runner import tensorflow_available
from tests.conftest import FIXTURES, MODELS, ROOT

# Not importorskip: importing TensorFlow here would load it into the test process.
pytestmark = [pytest.mark.tf, pytest.mark.skipif(not tensorflow_available(),
                                                 reason="needs TensorFlow")]

CUSTOM = str(MODELS / "custom/export/1")


def kdiag(*args: str) -> SimpleNamespace:
    """In a child process: TensorFlow loaded into the test process would inflate the peak
    memory later tests measure in their children (Linux carries ru_maxrss over fork)."""
    p = subprocess.run([sys.executable, "-m", "kdiag", *args], capture_output=True, text=True,
                       timeout=300, cwd=ROOT, env={**os.environ, "COLUMNS": "120"})
    return SimpleNamespace(exit_code=p.returncode, output=p.stdout + p.stderr, stdout=p.stdout)


def test_batch_replay_prints_a_summary_and_the_rejected_payloads(tmp_path):
    (tmp_path / "sub").mkdir()
    for i in range(3):
        (tmp_path / f"ok{i}.json").write_text("[1, 2, 3, 4, 5]")
    (tmp_path / "sub" / "bad.json").write_text('{"instances": [["1", "2", "3", "4", "5"]]}')
    r = kdiag("replay", str(tmp_path), "--model", CUSTOM)
    assert r.exit_code == 1, r.output
    assert "4 payloads: 3 accepted, 1 rejected" in r.output
    assert "sub/bad.json" in r.output and "Numbers were sent as strings" in r.output
    assert "ok0.json" not in r.output and "-v lists every payload" in r.output
    r = kdiag("replay", str(tmp_path), "--model", CUSTOM, "-v")
    assert all(f"ok{i}.json" in r.output for i in range(3)) and "sub/bad.json" in r.output


def test_a_finding_that_promises_the_fixed_payload_comes_with_it():
    r = kdiag(
        "replay", str(ROOT / "examples/notebook_style.json"), "--model", CUSTOM,
        "--keras", str(MODELS / "custom/custom.keras"),
        "--custom-objects", str(FIXTURES / "custom_model.py"),
        "--client-input", str(ROOT / "examples/notebook_style.json"), "--format", "json")
    doc = json.loads(r.stdout)
    promised = [f for f in doc["findings"] if "fixed payload" in (f["fix"] or "")]
    assert promised and doc["fixed_payload"] is not None


def test_a_payload_whose_replay_crashes_is_its_finding_and_the_others_are_replayed(tmp_path):
    """A crash in the local path (here the container's answer cannot be encoded) is KD880 for
    that payload; the folder's other payloads are replayed as usual (--engine ray agrees:
    tests/test_ray_engine.py)."""
    from tests import _capture_gen as gen

    gen.write_crashing_code(tmp_path / "code")
    bodies = tmp_path / "bodies"
    bodies.mkdir()
    for i in range(4):
        x = gen.CRASH_X if i == 2 else [i, 1, 2, 3, 4]
        (bodies / f"b{i}.json").write_text(json.dumps({"instances": [x]}))
    r = kdiag("replay", str(bodies), "--model", CUSTOM, "--code", str(tmp_path / "code"),
              "--format", "json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert (doc["accepted"], doc["rejected"]) == (3, 1)
    crash = doc["results"][2]
    assert crash["accepted"] is False and crash["status"] == 500
    assert [f["code"] for f in crash["findings"]] == ["KD880"]
    assert "UnicodeEncodeError" in crash["error"]
