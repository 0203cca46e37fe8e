"""`kdiag check` on the clean fixture archive, whole processes: without and with the model run.

Targets (issue): without a model run about a second; with one, a time dominated by loading
TensorFlow once, which is printed alongside (a bare `import tensorflow` in a fresh process).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import kdiag_argv, median, time_process  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "fixtures" / "archives" / "good.tar.gz"
TYPES = ["--content-type", "application/json", "--content-type", "text/csv",
         "--content-type", "application/jsonlines"]


def _import_seconds() -> float:
    """`import tensorflow` timed inside a fresh process, with oneDNN off as kdiag imports it
    (kdiag/model/runner.py); process start-up and shutdown are left out, as they are paid anyway."""
    code = ("import os, time; os.environ['TF_ENABLE_ONEDNN_OPTS'] = '0'; "
            "t = time.perf_counter(); import tensorflow; print(time.perf_counter() - t)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, check=True)
    return float(p.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    quiet = {"TF_CPP_MIN_LOG_LEVEL": "3"}
    rel = MODEL.relative_to(ROOT)
    base = ["check", str(MODEL), "--no-config", *TYPES, "--expect-output", "output_0:float32:-1,1"]
    lint = median(time_process(kdiag_argv(*base, "--no-replay"), args.runs, quiet))
    print(f"kdiag check {rel} --no-replay  median {lint:6.2f} s  (target about 1 s)")
    try:
        import importlib.util

        has_tf = importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        has_tf = False
    if not has_tf:
        print("TensorFlow not installed: no model-run timing")
        return 0
    runs = max(3, args.runs // 2)
    full = median(time_process(kdiag_argv(*base, "--replay"), runs, quiet))
    tf = median([_import_seconds() for _ in range(runs)])
    print(f"kdiag check {rel} (model run)   median {full:6.2f} s  (+{full - lint:.2f} s over "
          f"--no-replay; importing TensorFlow alone takes {tf:.2f} s in-process)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
