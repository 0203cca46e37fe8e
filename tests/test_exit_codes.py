"""The README's exit-code table, run against every command (issue 12 item 2).

The table is parsed from README.md: each row names a command and what makes it exit 0, 1 or 2
("—" where a command cannot exit with that code). For each command this runs a clean case, a
failing case (when 1 is possible), the failing case with `--fail-on never` (0) and with
`--debug` (the same code), and a usage error with and without `--debug` (2). Commands run
through `kdiag.cli.main`, the entry point the console script calls, in this process.
"""

from __future__ import annotations

import re
import signal

import pytest

from kdiag.cli import main
from tests._aws_rig import deploy
from tests.conftest import MODELS, ROOT

NAME = "kdiag-exit-ep"  # the endpoint the probe rig's local runtime serves
CUSTOM = str(MODELS / "custom/export/1")
EX = ROOT / "examples"


def readme_table() -> dict[str, dict[int, str]]:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- exit-codes -->", 1)[1].strip().split("\n\n", 1)[0]
    rows = [line for line in block.splitlines() if line.startswith("|")][2:]
    out = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        command = re.sub(r"[`\s]", "", cells[0])
        out[command] = {code: cell for code, cell in zip((0, 1, 2), cells[1:4], strict=True)}
    return out


TABLE = readme_table()


def run(*argv: str) -> int:
    try:
        main(list(argv))
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def good_body(tmp_path) -> str:
    p = tmp_path / "good.json"
    p.write_text('{"instances": [[1.0, 2.0, 3.0, 4.0, 5.0]]}')
    return str(p)


# command -> (clean argv, failing argv or None, usage-error argv), given tmp_path
def recipes(tmp_path) -> dict[str, tuple[list[str], list[str] | None, list[str]]]:
    good = good_body(tmp_path)
    bad = str(EX / "numbers_as_strings.json")
    missing = str(tmp_path / "missing.json")
    return {
        "inspect": (["inspect", CUSTOM], ["inspect", str(MODELS / "two_inputs_tfsave/1")],
                    ["inspect", str(tmp_path / "nothing")]),
        "validate": (["validate", good, "--signature", CUSTOM],
                     ["validate", bad, "--signature", CUSTOM],
                     ["validate", missing, "--signature", CUSTOM]),
        "replay": (["replay", good, "--model", CUSTOM], ["replay", bad, "--model", CUSTOM],
                   ["replay", missing, "--model", CUSTOM]),
        "diff": (["diff", str(EX / "endpoint_response.json"), str(EX / "endpoint_response.json")],
                 ["diff", str(EX / "endpoint_response.json"), str(EX / "local_response.json")],
                 ["diff", missing, str(EX / "local_response.json")]),
        "check": (["check", CUSTOM, "--no-config", "--no-replay", "--payload", good],
                  ["check", CUSTOM, "--no-config", "--no-replay", "--payload", bad],
                  ["check", str(tmp_path / "nothing"), "--no-config"]),
        "sample": (["sample", "--signature", CUSTOM, "--out", str(tmp_path / "s.json")], None,
                   ["sample", "--signature", str(tmp_path / "nothing")]),
        "serve": ([], None, ["serve", str(tmp_path / "nothing")]),
        "probe": (["probe", NAME, "--signature", CUSTOM, "--payload", good],
                  ["probe", NAME, "--signature", CUSTOM, "--payload", bad],
                  ["probe", NAME, "--signature", CUSTOM, "--max-requests", "-1"]),
    }


def test_the_table_lists_every_command():
    from kdiag.cli import COMMANDS

    assert set(TABLE) == set(COMMANDS)


def _probe_argv(argv: list[str], moto: str, runtime: str) -> list[str]:
    return [*argv, "--endpoint-url", moto, "--runtime-endpoint-url", runtime, "--log-wait", "0",
            "--rate", "50"]


@pytest.mark.parametrize("command", sorted(TABLE))
def test_each_command_exits_as_the_readme_table_says(command, tmp_path, request, capsys):
    clean, failing, usage = recipes(tmp_path)[command]
    row = TABLE[command]
    if command in ("replay", "probe", "serve"):
        pytest.importorskip("tensorflow")
    if command == "probe":
        env = request.getfixturevalue("env")
        runtime = request.getfixturevalue("runtime_url")
        deploy(env, NAME)
        clean, failing, usage = (_probe_argv(a, env, runtime) for a in (clean, failing, usage))
    if command == "serve":
        _serve_stops_with_0()
    else:
        assert run(*clean) == 0, capsys.readouterr()
    if row[1].startswith("—"):
        assert failing is None
    else:
        assert run(*failing) == 1, capsys.readouterr()
        assert run(*failing, "--fail-on", "never") == 0
        assert run("--debug", *failing) == 1
    assert run(*usage) == 2
    capsys.readouterr()
    assert run("--debug", *usage) == 2
    err = capsys.readouterr().err
    if "Usage:" not in err:  # click's own usage errors (checked at parse time) have none
        assert "Traceback" in err


def _serve_stops_with_0() -> None:
    from tests.cli.test_serve import Served

    s = Served(CUSTOM, "--port", "0")
    try:
        s.url()
        s.proc.send_signal(signal.SIGINT)
        assert s.proc.wait(30) == 0
    finally:
        s.stop()
