"""`kdiag check [MODEL]`: the pre-deploy gate for CI."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from kdiag.commands._common import (
    CAPS_GIVEN,
    FAIL_ON_CHOICES,
    TRUST_GIVEN,
    Tolerance,
    cap_option,
    emit_json,
    existing_dir,
    existing_file,
    exit_with,
    format_option,
    framework_version_option,
    tolerance_option,
    trust_model_option,
)
from kdiag.redact import mask

EPILOG = """\b
Examples:
  kdiag check                                   everything from [tool.kdiag] in pyproject.toml
  kdiag check model.tar.gz --no-replay          lint and request path only, no TensorFlow
  kdiag check export/ --payload examples/a.json --payload rows.csv:text/csv \\
      --content-type application/jsonlines --expect-output score:float32:-1,1
  kdiag check model.tar.gz --golden golden.jsonl --atol 1e-4 --junit kdiag.xml

\b
Configuration: [tool.kdiag] in pyproject.toml (or kdiag.toml), found from the working folder
up to the repository root; keys model, framework_version, content_types, payloads ({file,
content_type}), expect_output, golden, atol, rtol (a number, or a table of output names with an
optional default: atol = {default = 1e-5, logits = 1e-3}), fail_on, signature_name, endpoint,
code, custom_objects, replay, trust_model, caps ({archive-bytes = "40GiB", ...}). Options
override the file (a list option replaces the file's list; any --atol replaces the file's atol;
--cap overrides the caps it names).
Paths in the file are relative to the file.

\b
Outputs: a summary on stdout (--format json: the --json object instead); --junit FILE (one
test case per check); --json FILE (keys: model, passed, exit_code, replayed, counts, cases[]
{name, group, status, seconds, file, detail, findings[]}, findings[]); under GitHub Actions
(GITHUB_ACTIONS=true) one ::error/::warning annotation per finding.
Exit codes: 0 clean, 1 findings at or above --fail-on, 2 usage error.
"""


@click.command("check", epilog=EPILOG)
@click.argument("model", required=False)
@click.option("--config", "config_path", type=existing_file(),
              help="Read settings from this file instead of looking for kdiag.toml / "
                   "pyproject.toml.")
@click.option("--no-config", is_flag=True, help="Ignore configuration files.")
@framework_version_option
@click.option("--content-type", "content_types", multiple=True,
              help="A request Content-Type header your clients send; a payload is generated "
                   "for each. Repeatable. Default: application/json.")
@click.option("--payload", "payloads", multiple=True, metavar="FILE[:CONTENT_TYPE]",
              help="One of your example request bodies, with the Content-Type it is sent with "
                   "(default from the suffix: .json, .jsonl, .csv). Repeatable.")
@click.option("--expect-output", "expect_output", multiple=True, metavar="NAME:DTYPE:SHAPE",
              help="An output your client relies on, e.g. score:float32:-1,1 (-1 any size, * "
                   "any dtype or shape). Repeatable.")
@click.option("--golden", help="Saved outputs to match (JSON lines from kdiag replay DIR "
              "--model MODEL --out FILE, .npy/.npz, or a TF Serving response).")
@tolerance_option("--atol", "--golden (default: atol from the configuration, else 1e-5)",
                  default=None)
@tolerance_option("--rtol", "--golden (default: rtol from the configuration, else 1e-5)",
                  default=None)
@click.option("--fail-on", type=click.Choice(FAIL_ON_CHOICES),
              help="Exit 1 when a finding is at or above this severity [default: error].")
@click.option("--signature-name", help="The signature your clients call (default "
              "serving_default).")
@click.option("--endpoint", help="Also send the same payloads to this staging endpoint "
              "(kdiag probe; AWS credentials and region from the usual boto3 chain).")
@click.option("--code", "code_dir", type=existing_dir(),
              help="The model's code/ folder: run YOUR inference.py handlers, as the container "
                   "would (executes your code).")
@click.option("--custom-objects", type=existing_file(),
              help="Module defining a .keras model's custom classes (read, not imported): "
                   "finds predict() overrides that will not be served.")
@click.option("--replay/--no-replay", default=None,
              help="Run the model (needs TensorFlow) or only lint and validate "
                   "[default: replay when TensorFlow is installed].")
@click.option("--junit", "junit_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write a JUnit XML report (one test case per check).")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the result as JSON to FILE (the same object --format json prints).")
@format_option
@click.option("--quiet", "-q", is_flag=True, help="Only the verdict line (and annotations).")
@cap_option
@trust_model_option
def command(model: str | None, config_path: Path | None, no_config: bool,
            framework_version: str | None, content_types: tuple[str, ...],
            payloads: tuple[str, ...], expect_output: tuple[str, ...], golden: str | None,
            atol, rtol, fail_on: str | None,
            signature_name: str | None, endpoint: str | None, code_dir: Path | None,
            custom_objects: Path | None, replay: bool | None, junit_path: Path | None,
            json_path: Path | None, fmt: str, quiet: bool) -> None:
    """Every check kdiag has, on MODEL, in one run: the gate to put in CI before deploying.

    Lints the artifact, validates your example payloads and one generated payload per declared
    content type through the endpoint's request path, and (with TensorFlow) runs them through
    the model to check output names, dtypes and shapes, and golden outputs.

    MODEL is a SavedModel folder, a version parent, a .keras file or a model.tar.gz; without
    it, `model` from [tool.kdiag].
    """
    import kdiag
    from kdiag.ci.check import parse_expectation, parse_payload_arg
    from kdiag.ci.config import CheckConfig, load_config
    from kdiag.errors import KdiagError

    cfg = CheckConfig() if no_config else load_config(config_path)
    model = model or cfg.model
    if not model:
        raise KdiagError("No model to check: pass MODEL, or set model in [tool.kdiag] "
                         "(pyproject.toml) or kdiag.toml.")
    limits, trust = _safety_settings(cfg)
    from kdiag.atomic import check_output_path

    # Before the run: a report that cannot be written should fail now, not after the replay.
    if junit_path is not None:
        check_output_path(junit_path, what="the JUnit report ", create_parents=True)
    if json_path is not None:
        check_output_path(json_path, what="the JSON report ", create_parents=True)
    report = kdiag.check(
        model,
        framework_version=framework_version or cfg.framework_version,
        content_types=list(content_types) if content_types else (
            cfg.content_types if cfg.content_types is not None else ["application/json"]),
        payloads=[parse_payload_arg(p) for p in payloads] if payloads else list(cfg.payloads),
        expect_output=[parse_expectation(e) for e in (expect_output or cfg.expect_output)],
        golden=golden or cfg.golden,
        **_tolerances("atol", atol, cfg.atol, cfg.atol_by_output),
        **_tolerances("rtol", rtol, cfg.rtol, cfg.rtol_by_output),
        fail_on=fail_on or cfg.fail_on or "error",
        signature_name=signature_name or cfg.signature_name,
        endpoint=endpoint or cfg.endpoint,
        code_dir=code_dir or (Path(cfg.code) if cfg.code else None),
        custom_objects=custom_objects or (Path(cfg.custom_objects) if cfg.custom_objects
                                          else None),
        replay=replay if replay is not None else (cfg.replay if cfg.replay is not None
                                                  else True),
        config_source=cfg.source,
        limits=limits, trust_model=trust,
    )
    result = report.result
    if junit_path is not None:
        from kdiag.ci.junit import check_suite, write_junit

        write_junit(junit_path, [check_suite(result)])
    if json_path is not None:
        _write_json(json_path, report.to_dict())
    if fmt == "json":
        emit_json(report.to_dict())
        exit_with(result.exit_code)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for line in github_annotations(result):
            click.echo(mask(line))
    from kdiag.report import console, render_check

    render_check(result, console(), quiet=quiet)
    sys.stdout.flush()
    exit_with(result.exit_code)


def _safety_settings(cfg):
    """The caps and trust of this run: the file's `caps`/`trust_model`, then --cap and
    --trust-model/--no-trust-model over them."""
    from kdiag.limits import Limits, parse_limit_options

    meta = click.get_current_context().meta
    limits = parse_limit_options(meta.get(CAPS_GIVEN, ()), base=Limits(**cfg.caps))
    given = meta.get(TRUST_GIVEN)
    return limits, given if given is not None else cfg.trust_model


def _tolerances(key: str, given: Tolerance, default: float | None,
                by_output: dict[str, float]) -> dict:
    """CheckOptions' `atol`/`atol_by_output` (or rtol): an --atol on the command line replaces
    the file's atol, number or table, as a repeated option replaces any list of the file."""
    if given.default is not None or given.by_output:
        return {key: given.value(1e-5), f"{key}_by_output": dict(given.by_output)}
    return {key: 1e-5 if default is None else default, f"{key}_by_output": dict(by_output)}


def _write_json(path: Path, doc: dict) -> None:
    import json

    from kdiag.atomic import write_atomically

    write_atomically(path, mask(json.dumps(doc, indent=2, ensure_ascii=False)) + "\n",
                     create_parents=True)


def _escape_data(s: str) -> str:
    # Workflow command escaping, as @actions/core's command.ts does it.
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def github_annotations(result) -> list[str]:
    """`::error file=...,title=KDnnn::message` for every error and warning, once each: GitHub
    shows them on the run's summary and, for files in the repository, on the pull request."""
    level = {"error": "error", "warning": "warning"}
    seen: set[tuple[str, str]] = set()
    lines = []
    for c in result.cases:
        for f in c.findings:
            if f.severity not in level or (f.code, f.message) in seen:
                continue
            seen.add((f.code, f.message))
            props = ([f"file={_escape_property(c.file)}"] if c.file else []) + [
                f"title={_escape_property(f.code)}"]
            text = f.message + (f" Fix: {f.fix}" if f.fix else "")
            lines.append(f"::{level[f.severity]} {','.join(props)}::{_escape_data(text)}")
    return lines
