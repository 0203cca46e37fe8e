"""One vocabulary across commands: the same option means the same thing everywhere, every
option says what it does, and values that can be checked without doing the work are refused
while parsing, with the valid choices."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from kdiag.cli import COMMANDS, cli
from kdiag.commands._common import Tolerance, parse_tolerance
from tests.conftest import MODELS

SIG = str(MODELS / "custom/export/1")


def commands() -> dict[str, click.Command]:
    ctx = click.Context(cli)
    return {name: cli.get_command(ctx, name) for name in COMMANDS}


def options(cmd: click.Command) -> dict[str, click.Option]:
    return {o: p for p in cmd.params if isinstance(p, click.Option) for o in p.opts}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_format_text_or_json_for_stdout(name):
    opt = options(commands()[name])["--format"]
    assert list(opt.type.choices) == ["text", "json"] and opt.default == "text"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_has_help(name):
    for p in commands()[name].params:
        if isinstance(p, click.Option) and not p.hidden:
            assert p.help and len(p.help) > 10, f"{name} {p.opts[0]} has no help"


def test_json_and_junit_options_only_name_files():
    for name, cmd in commands().items():
        for flag in ("--json", "--junit"):
            opt = options(cmd).get(flag)
            if opt is not None:
                assert isinstance(opt.type, click.Path) and not opt.is_flag, (name, flag)


def test_one_tolerance_syntax_in_diff_replay_check_and_probe():
    for name in ("diff", "replay", "check", "probe"):
        opts = options(commands()[name])
        for flag in ("--atol", "--rtol"):
            assert opts[flag].multiple and opts[flag].metavar == "[OUTPUT=]X", (name, flag)
            assert "OUTPUT=X" in opts[flag].help


def test_tolerance_values_default_and_per_output():
    t = parse_tolerance(("1e-4", "logits=1e-3", "score:0.5"), "--atol")
    assert t == Tolerance(1e-4, {"logits": 1e-3, "score": 0.5})
    assert parse_tolerance((), "--atol").value(1e-5) == 1e-5
    for bad in ("abc", "x=-1", "nan", "x=inf"):
        with pytest.raises(click.BadParameter):
            parse_tolerance((bad,), "--atol")


def test_content_type_is_always_the_request_header():
    for name, cmd in commands().items():
        opt = options(cmd).get("--content-type")
        if opt is not None:
            assert "Content-Type header" in opt.help, name


def test_shared_options_read_the_same_everywhere():
    seen: dict[str, set[str]] = {}
    for cmd in commands().values():
        for flag in ("--framework-version", "--signature", "--code", "--custom-objects"):
            opt = options(cmd).get(flag)
            if opt is not None:
                t = opt.type
                seen.setdefault(flag, set()).add((
                    type(t).__name__, getattr(t, "exists", None), getattr(t, "file_okay", None),
                    getattr(t, "dir_okay", None), getattr(opt.callback, "__name__", None)))
    assert all(len(v) == 1 for v in seen.values()), seen


# ---- refused at parse time, with the valid choices -------------------------------------------

def parse(name: str, *args: str) -> None:
    """Parse only: the command's work never starts."""
    cmd = commands()[name]
    cmd.make_context(name, list(args))


@pytest.mark.parametrize("name,args", [
    ("validate", ["b.json", "--signature", SIG]), ("replay", ["b.json", "--model", SIG]),
    ("check", [SIG]), ("probe", ["ep"]), ("serve", [SIG]),
])
def test_unknown_framework_version_is_refused_while_parsing(name, args):
    with pytest.raises(click.BadParameter) as e:
        parse(name, *args, "--framework-version", "9.99")
    assert "2.0 to 2.20" in str(e.value) and "G3" in str(e.value)
    parse(name, *args, "--framework-version", "2.13")


@pytest.mark.parametrize("name,args", [
    ("inspect", [SIG]), ("replay", ["b.json", "--model", SIG]), ("check", [SIG]),
])
def test_missing_custom_objects_file_is_refused_while_parsing(name, args, tmp_path):
    with pytest.raises(click.BadParameter) as e:
        parse(name, *args, "--custom-objects", str(tmp_path / "nope.py"))
    assert "does not exist" in str(e.value)


@pytest.mark.parametrize("name,args", [
    ("validate", ["b.json"]), ("sample", []), ("probe", ["ep"]),
])
def test_a_signature_file_that_is_not_one_is_refused_while_parsing(name, args, tmp_path):
    not_sig = tmp_path / "config.json"
    not_sig.write_text('{"learning_rate": 0.1}')
    with pytest.raises(click.BadParameter) as e:
        parse(name, *args, "--signature", str(not_sig))
    assert "is not a signature file" in str(e.value)
    assert "SavedModel folder" in str(e.value) and "kdiag inspect MODEL --format json" in \
        str(e.value)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(click.BadParameter, match="neither a model nor a signature file"):
        parse(name, *args, "--signature", str(text))
    with pytest.raises(click.BadParameter, match="does not exist"):
        parse(name, *args, "--signature", str(tmp_path / "missing"))
    parse(name, *args, "--signature", SIG)


def test_refusals_end_in_exit_2_with_one_paragraph():
    r = CliRunner().invoke(cli, ["validate", "-", "--signature", SIG,
                                 "--framework-version", "9.99"], input="[1]")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "valid: 1.11 to 1.15, 2.0 to 2.20" in r.output


def test_check_format_json_prints_the_json_file_object(tmp_path):
    from tests.conftest import ARCHIVES

    out = tmp_path / "k.json"
    r = CliRunner().invoke(cli, ["check", str(ARCHIVES / "good.tar.gz"), "--no-replay",
                                 "--no-config", "--format", "json", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == json.loads(out.read_text())
