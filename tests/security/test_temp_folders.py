"""Temporary folders are removed on Ctrl-C and SIGTERM too (success and errors are covered by
the session check in tests/conftest.py)."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

from tests.conftest import ARCHIVES
from tests.security._run import finish, start


def test_sigint_and_sigterm_during_a_replay_remove_the_extraction_folder(tmp_path):
    body = tmp_path / "body.json"
    body.write_text('{"instances": [[1, 2, 3, 4, 5]]}')
    for sig, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        tmp = tmp_path / f"tmp-{sig.name}"
        tmp.mkdir()
        t0 = time.perf_counter()
        p, out_dir = start(["replay", str(body), "--model", str(ARCHIVES / "good.tar.gz")],
                           env={"TMPDIR": str(tmp)})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(tmp.iterdir()):
            time.sleep(0.01)
        assert any(x.name.startswith((".kdiag-", "kdiag-")) for x in tmp.iterdir())
        os.kill(p.pid, sig)
        r = finish(p, out_dir, t0, timeout=60)
        assert r.rc == code, (sig, r.rc, r.err[-800:])
        assert "Traceback" not in r.err
        assert list(tmp.iterdir()) == [], list(tmp.iterdir())
    assert Path(tempfile.gettempdir()).is_dir()
