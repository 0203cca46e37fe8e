"""Regenerate the command examples in README.md from real runs, or check that they are current.

An example is written in the README as

    <!-- example: kdiag inspect fixtures/models/custom/export/1 -->
    ```
    ...output...
    ```

and this script replaces the fenced block with what the command prints now (run from the
repository root, 100 columns, no colour). `--check` exits 1 when any block is stale, which the
test suite runs so the README cannot drift from the tool.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- example: (?P<cmd>.+?) -->\n```[a-z]*\n)(?P<out>.*?)(```)", re.S)
CODES_BLOCK = re.compile(r"(<!-- codes -->\n)(.*?)(<!-- /codes -->)", re.S)


def run_example(cmd: str) -> str:
    argv = shlex.split(cmd)
    if argv[0] != "kdiag":
        raise SystemExit(f"README example must start with kdiag: {cmd}")
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb",
           "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    p = subprocess.run([sys.executable, "-m", "kdiag", *argv[1:]], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    out = p.stdout + (p.stderr if p.returncode == 2 else "")
    out = "\n".join(line.rstrip() for line in out.splitlines())
    return f"$ {cmd}\n{out}\n" + (f"(exit code {p.returncode})\n" if p.returncode else "")


def codes_table() -> str:
    sys.path.insert(0, str(ROOT))
    from kdiag.diagnosis.codes import CODES

    rows = ["| code | meaning |", "|---|---|"]
    rows += [f"| {code} | {meaning.replace('|', '/')} |" for code, meaning in CODES.items()]
    return "\n".join(rows) + "\n"


def render(text: str) -> str:
    text = CODES_BLOCK.sub(lambda m: m.group(1) + codes_table() + m.group(3), text)
    return BLOCK.sub(lambda m: m.group(1) + run_example(m.group("cmd")) + m.group(4), text)


def main() -> int:
    text = README.read_text()
    new = render(text)
    if "--check" in sys.argv:
        if new != text:
            print("README.md examples are stale: run python scripts/readme_examples.py")
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
