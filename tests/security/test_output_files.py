"""Output files: special files written through, symlinks refused, modes kept, and the output
path checked before the run."""

from __future__ import annotations

import os
import stat
import threading

from tests.conftest import ARCHIVES, MODELS
from tests.security._run import assert_no_traceback, run

SIG = str(MODELS / "tokens" / "1")


def test_output_files_respect_links_special_files_modes_and_fail_before_the_run(tmp_path):
    # A symlink is refused (exit 2), and what it points to is left alone.
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "out.json"
    link.symlink_to(target)
    r = run(["sample", "--signature", SIG, "--out", str(link)], timeout=60)
    assert_no_traceback(r)
    assert r.rc == 2 and "symlink" in r.err
    assert link.is_symlink() and target.read_text() == "keep me"

    # An existing 0600 file keeps its mode.
    private = tmp_path / "private.json"
    private.write_text("old")
    private.chmod(0o600)
    r = run(["sample", "--signature", SIG, "--out", str(private)], timeout=60)
    assert r.rc == 0 and stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_text().startswith("{")

    # A FIFO is written through (it stays a FIFO); /dev/null stays a device.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    r = run(["sample", "--signature", SIG, "--out", str(fifo)], timeout=60)
    reader.join(30)
    assert r.rc == 0 and stat.S_ISFIFO(os.lstat(fifo).st_mode) and got[0].startswith(b"{")
    r = run(["sample", "--signature", SIG, "--out", "/dev/null"], timeout=60)
    assert r.rc == 0 and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    # A FIFO nobody reads: an error, not a hang.
    r = run(["sample", "--signature", SIG, "--out", str(fifo)], timeout=60)
    assert r.rc == 2 and "no reader" in r.err and r.seconds < 20

    # The output path is checked before the run: the report's folder cannot be made (a file is
    # in the way), so check stops at once with exit 2, before any model is loaded or written.
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    r = run(["check", str(ARCHIVES / "good.tar.gz"), "--no-config",
             "--junit", str(blocker / "reports" / "junit.xml")], timeout=120)
    assert_no_traceback(r)
    assert r.rc == 2 and "not a folder" in r.err and r.seconds < 15, (r.seconds, r.err)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "blocker", "out.json", "pipe", "precious.txt", "private.json"]
