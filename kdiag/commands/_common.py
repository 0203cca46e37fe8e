"""Options and output helpers shared by commands, so that options are named the same everywhere."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

format_option = click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="text: tables for people; json: one object for machines (keys documented in the README).",
)
FAIL_ON_CHOICES = ("error", "warning", "info", "never")
fail_on_option = click.option(
    "--fail-on", type=click.Choice(FAIL_ON_CHOICES), default="error",
    show_default=True, help="Exit 1 exactly when a finding is at or above this severity "
    "(never: always 0 once the command ran). --debug never changes the exit code.",
)


def _set_limits(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> None:
    from kdiag.errors import KdiagError
    from kdiag.limits import parse_limit_options, set_limits

    try:  # always set: an in-process caller (tests, CliRunner) never inherits a previous run's
        set_limits(parse_limit_options(value))
    except KdiagError as e:
        raise click.BadParameter(str(e)) from None


def _cap_help() -> str:
    from kdiag.limits import limits_help

    return ("Raise (or lower) a safety cap, e.g. --cap archive-bytes=40GiB. Repeatable. "
            "Caps: " + limits_help() + ".")


cap_option = click.option(
    "--cap", "caps", multiple=True, metavar="NAME=SIZE", expose_value=False,
    callback=_set_limits, is_eager=True, help=_cap_help(),
)


def _set_trust(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    from kdiag.model.graph_trust import set_trust

    set_trust(bool(value))


trust_model_option = click.option(
    "--trust-model", is_flag=True, expose_value=False, callback=_set_trust,
    help="Run a SavedModel whose serving functions write, delete or list files (KD052). "
         "Without it kdiag refuses, before anything runs.",
)


def emit_json(doc: Any) -> None:
    """The JSON report on stdout, secrets masked (kdiag.redact)."""
    from kdiag.redact import mask

    sys.stdout.write(mask(json.dumps(doc, indent=2, ensure_ascii=False)) + "\n")


def exit_with(code: int) -> None:
    """Leave a command with `code` (0 clean, 1 findings) without click's own handling."""
    raise click.exceptions.Exit(code)


def parse_when(text: str | None, opt: str):
    """--since/--until: an ISO-8601 time, or a usage error naming the option."""
    if text is None:
        return None
    from kdiag.replays.capture import parse_time

    try:
        return parse_time(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: write an ISO-8601 time, e.g. 2024-05-01T13:00 "
                                 "or 2024-05-01 (UTC unless it has an offset)",
                                 param_hint=opt) from None
