"""`kdiag inspect` versus `saved_model_cli show --all` on the same SavedModel, whole processes.

Both are timed in this run (several runs each, median); the ratio is what is reported.
Also prints `kdiag --help` wall time (target: well under 0.5 s).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import kdiag_argv, median, time_process  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "fixtures" / "models" / "image" / "1"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    quiet = {"TF_CPP_MIN_LOG_LEVEL": "3"}
    help_t = median(time_process(kdiag_argv("--help"), args.runs))
    ours = median(time_process(kdiag_argv("inspect", str(MODEL)), args.runs))
    print(f"kdiag --help                     median {help_t * 1000:7.1f} ms  (target < 500 ms)")
    print(f"kdiag inspect {MODEL.relative_to(ROOT)}  median {ours * 1000:7.1f} ms")
    cli = shutil.which("saved_model_cli")
    if cli is None:
        print("saved_model_cli not found (install tensorflow): no baseline, no ratio")
        return 0
    theirs = median(time_process([cli, "show", "--all", "--dir", str(MODEL)], args.runs, quiet))
    print(f"saved_model_cli show --all       median {theirs * 1000:7.1f} ms")
    ratio = theirs / ours
    print(f"ratio: kdiag inspect is {ratio:.1f}x faster than saved_model_cli (target >= 10x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
