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
fail_on_option = click.option(
    "--fail-on", type=click.Choice(["error", "warning", "info"]), default="error",
    show_default=True, help="Exit 1 when a finding is at or above this severity.",
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


def engine_options(f):
    """--engine/--address/--workers: where a many-record job runs (commands that offer Ray)."""
    f = click.option("--workers", type=click.IntRange(1, 1024), default=1, show_default=True,
                     help="--engine ray: parallel workers (for a model: actors, each loading "
                          "it once).")(f)
    f = click.option("--address", metavar="ray://HOST:10001",
                     help="--engine ray: an existing Ray cluster (default: RAY_ADDRESS, else "
                          "Ray started on this machine).")(f)
    return click.option("--engine", type=click.Choice(["in-process", "ray"]),
                        default="in-process", show_default=True,
                        help="in-process: stream on this machine (no Ray needed); ray: run as "
                             "a Ray Data job (pip install 'kdiag[ray]').")(f)


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
