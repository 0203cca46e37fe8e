"""Small helpers shared by the benchmarks: wall time of whole processes, medians, ratios."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time


def time_process(argv: list[str], runs: int, env: dict | None = None) -> list[float]:
    """Wall time of `runs` complete runs of argv (stdout/stderr discarded)."""
    times = []
    full_env = {**os.environ, **(env or {})}
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=full_env)
        times.append(time.perf_counter() - t0)
        if p.returncode not in (0, 1):
            raise SystemExit(f"benchmark command failed ({p.returncode}): {' '.join(argv)}")
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def kdiag_argv(*args: str) -> list[str]:
    exe = shutil.which("kdiag")
    return [exe, *args] if exe else [sys.executable, "-m", "kdiag", *args]
