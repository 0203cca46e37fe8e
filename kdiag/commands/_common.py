"""Options and output helpers shared by commands, so that options are named the same everywhere.

One vocabulary: `--format {text,json}` is what goes to stdout; `--json FILE`/`--junit FILE` write
files; `--atol`/`--rtol` take `[OUTPUT=]X`, repeatable; `--content-type` is the request's
Content-Type header. Values that can be checked without doing the work (a framework version, a
file that must exist, a signature file) are checked here, at parse time, with the valid choices.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

format_option = click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="What goes to stdout. text: tables for people; json: one object for machines (keys "
         "documented in the README and below).",
)
FAIL_ON_CHOICES = ("error", "warning", "info", "never")
fail_on_option = click.option(
    "--fail-on", type=click.Choice(FAIL_ON_CHOICES), default="error",
    show_default=True, help="Exit 1 exactly when a finding is at or above this severity "
    "(never: always 0 once the command ran). --debug never changes the exit code.",
)


# ---- safety caps and graph trust (eager: set before any other option is read) ----------

def _set_limits(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> None:
    from kdiag.errors import KdiagError
    from kdiag.limits import parse_limit_options, set_limits

    try:  # always set: an in-process caller (tests, CliRunner) never inherits a previous run's
        set_limits(parse_limit_options(value))
    except KdiagError as e:
        raise click.BadParameter(str(e)) from None
    ctx.meta[CAPS_GIVEN] = tuple(value)  # for a command that layers them over a config file


CAPS_GIVEN = "kdiag.caps"  # ctx.meta keys: what --cap and --trust-model said on the command line
TRUST_GIVEN = "kdiag.trust_model"


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
    ctx.meta[TRUST_GIVEN] = value  # None when neither --trust-model nor --no-trust-model


trust_model_option = click.option(
    "--trust-model/--no-trust-model", default=None, expose_value=False, callback=_set_trust,
    help="Run a SavedModel whose serving functions write, delete or list files (KD052). "
         "Without it kdiag refuses, before anything runs.",
)


# ---- tolerances: --atol [OUTPUT=]X, repeatable --------------------------------------------

@dataclass(frozen=True)
class Tolerance:
    """What `--atol`/`--rtol` said: a default for every output (None when not given) and
    overrides per output name."""

    default: float | None = None
    by_output: dict[str, float] = field(default_factory=dict)

    def value(self, fallback: float) -> float:
        return fallback if self.default is None else self.default


def parse_tolerance(values: tuple[str, ...], opt: str) -> Tolerance:
    """'1e-5' sets the default, 'OUTPUT=1e-3' an override for one output. 'OUTPUT:1e-3' (the
    old spelling) is still read."""
    default: float | None = None
    overrides: dict[str, float] = {}
    for v in values:
        name, sep, num = v.rpartition("=")
        if not sep:
            name, _, num = v.rpartition(":")
        try:
            x = float(num)
        except ValueError:
            raise click.BadParameter(f"{v!r}: write a number X, or OUTPUT=X for one output "
                                     "(e.g. 1e-4 or logits=1e-3)", param_hint=opt) from None
        if not (x >= 0 and math.isfinite(x)):
            raise click.BadParameter(f"{v!r}: a tolerance is a finite number >= 0",
                                     param_hint=opt)
        if name:
            overrides[name] = x
        else:
            default = x
    return Tolerance(default, overrides)


def tolerance_option(name: str, what: str, default: float | None = 1e-5):
    label = "Absolute" if name == "--atol" else "Relative"
    shown = f" (default {default:g})" if default is not None else ""
    return click.option(
        name, multiple=True, metavar="[OUTPUT=]X",
        callback=lambda ctx, param, values: parse_tolerance(values, name),
        help=f"{label} tolerance for {what}{shown}; OUTPUT=X sets it for one output. "
             "Repeatable. A value passes when within atol or rtol.")


# ---- values checked at parse time -----------------------------------------------------------

def _framework_version(ctx: click.Context, param: click.Parameter, value: str | None
                       ) -> str | None:
    if value is None:
        return None
    from kdiag.path.generations import check_framework_version

    try:
        return check_framework_version(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


framework_version_option = click.option(
    "--framework-version", callback=_framework_version, metavar="X.Y",
    help="The TensorFlow version of the serving image (e.g. 2.13; or G1, G2, G3 for a container "
         "generation); it picks the container generation and TF Serving release. "
         "Default: newest.")

MODEL_KINDS = ("a SavedModel folder, a folder of numeric version folders, a model.tar.gz, "
               "a .keras/.h5 file")
MODEL_SUFFIXES = (".tar.gz", ".tgz", ".keras", ".h5", ".hdf5", ".pb")


def _signature(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A signature JSON file is read here (it is small); a model only has to look like one,
    reading it is the command's work."""
    if value is None:
        return None
    p = Path(value)
    choices = f"give {MODEL_KINDS}, or a signature JSON file (kdiag inspect MODEL --format json)"
    if not p.exists():
        raise click.BadParameter(f"{value} does not exist: {choices}.")
    if p.is_file() and p.suffix.lower() == ".json":
        from kdiag.errors import KdiagError
        from kdiag.model.target import load_signatures

        try:
            load_signatures(value)
        except KdiagError as e:
            raise click.BadParameter(f"{value} is not a signature file: {e} ({choices})") \
                from None
    elif p.is_file() and not p.name.lower().endswith(MODEL_SUFFIXES):
        raise click.BadParameter(f"{value} is neither a model nor a signature file: {choices}.")
    return value


def signature_option(*decls: str, **kwargs):
    return click.option(*(decls or ("--signature",)), callback=_signature, metavar="SIG",
                        **kwargs)


def existing_file(**kwargs) -> click.Path:
    """A path that must be an existing file (refused at parse time, before any work)."""
    return click.Path(exists=True, dir_okay=False, path_type=Path, **kwargs)


def existing_dir(**kwargs) -> click.Path:
    return click.Path(exists=True, file_okay=False, path_type=Path, **kwargs)


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
    """--since/--until: an ISO-8601 time (UTC unless it has an offset)."""
    if text is None:
        return None
    from kdiag.replays.capture import parse_time

    try:
        return parse_time(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: write an ISO-8601 time, e.g. 2024-05-01T13:00 "
                                 "or 2024-05-01 (UTC unless it has an offset)",
                                 param_hint=opt) from None


# ---- output -----------------------------------------------------------------------------

def emit_json(doc: Any) -> None:
    """The JSON report on stdout, secrets masked (kdiag.redact)."""
    from kdiag.redact import mask

    sys.stdout.write(mask(json.dumps(doc, indent=2, ensure_ascii=False)) + "\n")


def exit_with(code: int) -> None:
    """Leave a command with `code` (0 clean, 1 findings) without click's own handling."""
    raise click.exceptions.Exit(code)
