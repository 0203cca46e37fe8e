"""Folder inputs never open special files and follow no symlink out of the folder."""

from __future__ import annotations

import json
import os

from tests.conftest import MODELS
from tests.security._run import assert_no_traceback, run

SIG = str(MODELS / "tokens" / "1")


def test_a_folder_with_dev_zero_a_fifo_and_an_outside_link_finishes_fast(tmp_path):
    bodies = tmp_path / "bodies"
    bodies.mkdir()
    (bodies / "ok.json").write_text(json.dumps({"instances": [list(range(10))]}))
    (bodies / "zero.json").symlink_to("/dev/zero")
    os.mkfifo(bodies / "pipe.json")
    secret = tmp_path / "outside.json"
    secret.write_text("{}")
    (bodies / "outside.json").symlink_to(secret)
    (bodies / "inside.json").symlink_to(bodies / "ok.json")

    r = run(["validate", str(bodies), "--signature", SIG, "--format", "json"], timeout=60)
    assert_no_traceback(r)
    assert r.seconds < 30 and r.rc == 0, r.err
    assert [x["payload"] for x in json.loads(r.out)["results"]] == ["inside.json", "ok.json"]
    for name in ("zero.json", "pipe.json", "outside.json"):
        assert name in r.err
    assert "outside the folder" in r.err and "FIFO" in r.err

    # The same entries in a capture folder, and a FIFO given directly: refused, never opened.
    r = run(["diff", str(bodies / "pipe.json"), str(bodies / "ok.json")], timeout=60)
    assert r.rc == 2 and "FIFO" in r.err and r.seconds < 30
    r = run(["validate", str(bodies / "zero.json"), "--signature", SIG], timeout=60)
    assert r.rc == 2 and "character device" in r.err and r.seconds < 30
