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


def emit_json(doc: Any) -> None:
    """The JSON report on stdout, secrets masked (kdiag.redact)."""
    from kdiag.redact import mask

    sys.stdout.write(mask(json.dumps(doc, indent=2, ensure_ascii=False)) + "\n")


def exit_with(code: int) -> None:
    """Leave a command with `code` (0 clean, 1 findings) without click's own handling."""
    raise click.exceptions.Exit(code)
