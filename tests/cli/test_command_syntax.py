"""Every command line kdiag shows a person is real: the examples of every `--help` run on
stand-ins for their placeholder files, and every `kdiag ...` advice in a message, a fix or the
README parses with the real click command (its options exist, its required ones are there)."""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kdiag.cli import COMMANDS, cli
from tests.conftest import ARCHIVES, FIXTURES, MODELS, ROOT

NAMES = "|".join(COMMANDS)


def help_examples(text: str) -> list[str]:
    """`kdiag ...` lines of a help text, continuation lines joined, trailing comments cut."""
    out, buf = [], ""
    for raw in text.replace("\b", "").splitlines():
        t = raw.strip()
        if "| kdiag " in t and not buf:
            t = t[t.index("| kdiag ") - len(t):]  # keep the pipe: `echo X | kdiag ...`
            t = raw.strip()
        if buf:
            buf += " " + t
        elif t.startswith("kdiag ") or re.match(r"echo .* \| kdiag ", t):
            buf = t
        else:
            continue
        if buf.endswith("\\"):
            buf = buf[:-1].rstrip()
            continue
        out.append(re.split(r"\s{2,}|\s+\((?!\[)", buf)[0])
        buf = ""
    return out


def all_help_examples() -> list[str]:
    ctx = click.Context(cli)
    found = help_examples(cli.help or "")
    for name in COMMANDS:
        cmd = cli.get_command(ctx, name)
        found += help_examples((cmd.help or "") + "\n" + (cmd.epilog or ""))
    return sorted(set(found))


# ---- stand-ins for the placeholder files of the examples ------------------------------------

def capture_line(i: int, y: float) -> str:
    out = json.dumps({"predictions": [[y]]})
    return json.dumps({"captureData": {
        "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                          "data": json.dumps({"instances": [[1.0, 1.0, 1.0, 1.0, 1.0]]}),
                          "encoding": "JSON"},
        "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                           "data": base64.b64encode(out.encode()).decode(),
                           "encoding": "BASE64"}},
        "eventMetadata": {"eventId": f"e{i}", "inferenceId": f"r{i}",
                          "inferenceTime": "2024-05-01T13:00:00Z"}, "eventVersion": "0"})


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    w = tmp_path_factory.mktemp("examples")
    export = MODELS / "custom/export"
    for name in ("export", "my_model", "model"):
        shutil.copytree(export, w / name)
    shutil.copytree(FIXTURES / "code", w / "model/code")
    shutil.copytree(FIXTURES / "code", w / "code")
    shutil.copy(ARCHIVES / "good.tar.gz", w / "model.tar.gz")
    shutil.copy(MODELS / "custom/custom.keras", w / "model.keras")
    shutil.copy(FIXTURES / "custom_model.py", w / "my_model.py")
    r = CliRunner().invoke(cli, ["inspect", str(export / "1"), "--format", "json"])
    for name in ("sig.json", "signature.json"):
        (w / name).write_text(r.output)
    for name, inp, dtype, shape in (("images.json", "pixels", "float32", [-1, -1, -1, 3]),
                                    ("text.json", "token_ids", "int32", [-1, 16])):
        (w / name).write_text(json.dumps({
            "signature_name": "serving_default",
            "inputs": {inp: {"dtype": dtype, "shape": shape}},
            "outputs": {"y": {"dtype": "float32", "shape": [-1, 1]}}}))
    for name in ("body.json", "payload.json"):
        (w / name).write_text("[[1, 2, 3, 4, 5]]")
    (w / "examples").mkdir()
    (w / "examples/a.json").write_text('{"instances": [[1, 2, 3, 4, 5]]}')
    (w / "body.csv").write_text("1,2,3,4,5\n")
    (w / "rows.csv").write_text("1,2,3,4,5\n5,4,3,2,1\n")
    (w / "bodies/more").mkdir(parents=True)
    (w / "bodies/a.json").write_text("[[1, 2, 3, 4, 5]]")
    (w / "bodies/more/b.json").write_text('{"instances": [[1, 1, 1, 1, 1]]}')
    (w / "bodies.jsonl").write_text("[1, 2, 3, 4, 5]\n[5, 4, 3, 2, 1]\n")
    (w / "expected.json").write_text(json.dumps(
        {"predictions": [{"logits": [0.1, 0.9], "score": [0.5]}] * 3}))
    (w / "got.json").write_text(json.dumps(
        {"predictions": [{"logits": [0.1, 0.9005], "score": [0.5]}] * 3}))
    import numpy as np

    np.savez(w / "local.npz", predictions=np.array([[2.5], [3.5]], dtype=np.float32))
    (w / "endpoint.json").write_text('{"predictions": [[2.5], [3.5]]}')
    np.save(w / "keras.npy", np.array([[2.5], [3.5]], dtype=np.float32))
    np.save(w / "savedmodel.npy", np.array([[2.5], [3.5000001]], dtype=np.float32))
    cap = w / "capture/ep/AllTraffic/2024/05/01/13"
    cap.mkdir(parents=True)
    (cap / "x.jsonl").write_text("\n".join(capture_line(i, 2.5) for i in range(3)) + "\n")
    lines = [json.dumps({"id": f"r{i}", "outputs": {"predictions": [[2.5]]}}) for i in range(3)]
    (w / "replay.jsonl").write_text("\n".join(lines) + "\n")
    (w / "results.jsonl").write_text("\n".join(lines) + "\n")
    golden = [json.dumps({"id": "request.json", "outputs": {"output_0": [[2.5]]}})]
    (w / "golden.jsonl").write_text("\n".join(golden) + "\n")
    (w / ".git").mkdir()
    (w / "pyproject.toml").write_text('[tool.kdiag]\nmodel = "model.tar.gz"\nreplay = false\n')
    return w


# Needs AWS or runs until Ctrl-C: only parsed (with every parse-time check).
PARSE_ONLY = re.compile(r"^kdiag (probe|serve) |s3://")


def split(example: str) -> tuple[list[str], str | None, str | None]:
    """argv after `kdiag`, stdin text (`echo X | kdiag`), stdout file (`> FILE`)."""
    stdin = None
    m = re.match(r"echo (.*?) \| (kdiag .*)", example)
    if m:
        stdin, example = shlex.split(m.group(1))[0], m.group(2)
    out = None
    if " > " in example:
        example, out = (x.strip() for x in example.split(" > ", 1))
    return shlex.split(example)[1:], stdin, out


def test_help_examples_are_found():
    examples = all_help_examples()
    assert len(examples) >= 40
    assert any(e.startswith("echo ") for e in examples)
    for name in COMMANDS:
        assert any(e.startswith(f"kdiag {name}") or f"| kdiag {name}" in e
                   for e in examples), name


@pytest.mark.parametrize("example", all_help_examples())
def test_every_help_example_runs(example, workspace, monkeypatch):
    from kdiag.model.runner import tensorflow_available

    monkeypatch.chdir(workspace)
    argv, stdin, out = split(example)
    cmd = cli.get_command(click.Context(cli), argv[0])
    assert cmd is not None, example
    # Parsing runs every parse-time check (files exist, versions, signature files).
    cmd.make_context(argv[0], list(argv[1:]))
    if PARSE_ONLY.search(example):
        return
    runs_model = argv[0] == "replay" or (argv[0] == "check" and "--golden" in argv) or \
        (argv[0] == "check" and "--payload" in argv)
    if runs_model and not tensorflow_available():
        pytest.skip("needs TensorFlow")
    if runs_model:
        # In a child: TensorFlow loaded into the test process would inflate the peak memory
        # that later tests measure in their own children (Linux carries ru_maxrss over fork).
        p = subprocess.run([sys.executable, "-m", "kdiag", *argv], cwd=workspace,
                           input=stdin, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"})
        code, output = p.returncode, p.stdout + p.stderr
    else:
        r = CliRunner().invoke(cli, argv, input=stdin)
        code, output = r.exit_code, r.output
    assert code in (0, 1), f"{example}\n{output}"
    assert "Traceback" not in output and "Usage:" not in output, output
    if out:
        (workspace / out).write_text(output)


# ---- advice: every `kdiag ...` kdiag prints or documents parses ---------------------------

def source_strings(path: Path):
    """String constants of a module (implicit concatenation joined, f-string fields as X)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value
        elif isinstance(node, ast.JoinedStr):
            yield "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)


SPAN = re.compile(rf"\bkdiag ({NAMES})\b([^\n\"`;()\[\]]*)")


def advice_in(text: str) -> list[str]:
    """Command lines in prose: `kdiag CMD` followed by options or PLACEHOLDERS, up to the end
    of the sentence or clause."""
    found = []
    for m in SPAN.finditer(text):
        rest = re.split(r"(?<!\.)\.(?=\s|$)|\s{2,}|, |: |\\", m.group(2))[0].rstrip(".")
        if re.search(r"(^|\s)--[a-z]", rest) or re.match(r"\s+[A-Z][A-Z_.]+(\s|$)", rest):
            found.append(f"kdiag {m.group(1)}{rest}")
    return found


def advice_everywhere() -> list[tuple[str, str]]:
    found = []
    for p in sorted((ROOT / "kdiag").rglob("*.py")):
        for s in source_strings(p):
            found += [(str(p.relative_to(ROOT)), a) for a in advice_in(s)]
    for block in re.findall(r"```[a-z]*\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        for line in re.sub(r"\s*\\\n\s*", " ", block).splitlines():  # continuations joined
            line = line.removeprefix("$ ").strip()
            if re.match(rf"kdiag (--debug )?({NAMES})(\s|$)", line):
                found.append(("README.md", re.split(r"\s{2,}|\s+#|: ", line)[0]))
    # `kdiag diff` alone names the command; anything longer is a command line.
    for span in re.findall(rf"`(kdiag (?:--debug )?(?:{NAMES}) [^`]+)`",
                           (ROOT / "README.md").read_text()):
        found.append(("README.md", span))
    return sorted(set(found))


def parse_with_click(line: str) -> None:
    """click's own parser on `line`: unknown options, options without their value, extra
    arguments and missing required parameters fail. Placeholders (MODEL, ...) are values."""
    argv = shlex.split(line.split(" > ")[0])[1:]
    if argv[0] == "--debug":
        argv = argv[1:]
    ctx = click.Context(cli)
    cmd = cli.get_command(ctx, argv[0])
    assert cmd is not None, line
    sub = click.Context(cmd, info_name=argv[0], parent=ctx)
    opts, rest, _ = cmd.make_parser(sub).parse_args(list(argv[1:]))
    assert not rest, f"{line}: unexpected arguments {rest}"
    for p in cmd.params:
        if p.required:
            value = opts.get(p.name)
            # click 8.2+ marks an absent value with a sentinel instead of None.
            missing = value is None or value == () or type(value).__name__ == "Sentinel"
            assert not missing, f"{line}: {p.opts[0]} is missing"


def test_advice_is_found():
    lines = [a for _, a in advice_everywhere()]
    assert any("--client-input" in a for a in lines)
    assert any(a.startswith("kdiag inspect MODEL --format json") for a in lines)


@pytest.mark.parametrize("where,line", advice_everywhere())
def test_every_kdiag_command_in_messages_and_readme_parses(where, line):
    parse_with_click(line)


def test_a_wrong_advice_would_be_caught():
    for bad in ("kdiag replay --keras X --client-input Y",  # PAYLOAD/--model missing
                "kdiag inspect --format json",  # PATH missing
                "kdiag diff A B --tolerance 1", "kdiag inspect MODEL --format"):
        with pytest.raises((AssertionError, click.UsageError)):
            parse_with_click(bad)
