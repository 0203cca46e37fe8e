"""Run every benchmark in bench/ (bench_*.py), one after the other, with their default sizes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    only = sys.argv[1:]
    rc = 0
    for script in sorted(HERE.glob("bench_*.py")):
        if only and not any(o in script.stem for o in only):
            continue
        print(f"== {script.stem}", flush=True)
        rc |= subprocess.run([sys.executable, str(script)]).returncode
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
