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


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def exit_with(code: int) -> None:
    """Leave a command with `code` (0 clean, 1 findings) without click's own handling."""
    raise click.exceptions.Exit(code)
