"""Run kdiag (or a Python snippet) in a child process and measure what it cost: exit code,
output, wall time and the child's own peak memory (os.wait4's rusage, not the whole family's)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KDIAG = "import sys; from kdiag.cli import main; sys.argv[0] = 'kdiag'; main()"
# Written by the child at exit: its own peak RSS in KiB. /proc's VmHWM belongs to the process's
# memory map since exec; getrusage's ru_maxrss would also count the parent's pages at fork time
# (Linux carries the pre-exec high-water mark over), i.e. pytest's own size.
PEAK_PRELUDE = """
import atexit as _a, os as _o, resource as _r
def _kdiag_peak():
    kib = None
    try:
        with open("/proc/self/status") as f:
            kib = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    except (OSError, StopIteration):
        kib = _r.getrusage(_r.RUSAGE_SELF).ru_maxrss
    with open(_o.environ["SECIO_PEAK_FILE"], "w") as f:
        f.write(str(kib))
_a.register(_kdiag_peak)
"""


@dataclass
class Run:
    rc: int
    out: str
    err: str
    seconds: float
    peak_mb: float


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("COLUMNS", "200")
    env.update(extra or {})
    return env


def start(args: list[str], *, code: str = KDIAG, env: dict[str, str] | None = None,
          cwd: str | Path | None = None) -> tuple[subprocess.Popen, Path]:
    out_dir = Path(tempfile.mkdtemp(prefix="secio-run-"))
    env = {**(env or {}), "SECIO_PEAK_FILE": str(out_dir / "peak")}
    with open(out_dir / "out", "wb") as out, open(out_dir / "err", "wb") as err:
        p = subprocess.Popen([sys.executable, "-c", PEAK_PRELUDE + code, *args],
                             cwd=cwd or ROOT, env=_env(env), stdin=subprocess.DEVNULL,
                             stdout=out, stderr=err)
    return p, out_dir


def finish(p: subprocess.Popen, out_dir: Path, t0: float, timeout: float) -> Run:
    timer = threading.Timer(timeout, lambda: os.kill(p.pid, signal.SIGKILL))
    timer.start()
    try:
        _, status, _usage = os.wait4(p.pid, 0)
    finally:
        timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    out = (out_dir / "out").read_text(errors="replace")
    err = (out_dir / "err").read_text(errors="replace")
    peak = out_dir / "peak"
    peak_mb = int(peak.read_text()) / 1024 if peak.exists() else float("nan")
    for f in out_dir.iterdir():
        f.unlink()
    out_dir.rmdir()
    return Run(p.returncode, out, err, seconds, peak_mb)


def run(args: list[str], *, code: str = KDIAG, env: dict[str, str] | None = None,
        timeout: float = 120, cwd: str | Path | None = None) -> Run:
    """`kdiag ARGS` (or `python -c CODE ARGS`); killed after `timeout` seconds."""
    t0 = time.perf_counter()
    p, out_dir = start(args, code=code, env=env, cwd=cwd)
    return finish(p, out_dir, t0, timeout)


def assert_no_traceback(r: Run) -> None:
    assert "Traceback" not in r.err and "Traceback" not in r.out, r.err[-2000:]
