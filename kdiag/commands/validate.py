"""`kdiag validate PAYLOAD --signature SIG`."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import click

from kdiag.commands._common import (
    cap_option,
    emit_json,
    engine_options,
    existing_dir,
    exit_with,
    fail_on_option,
    format_option,
    framework_version_option,
    signature_option,
)
from kdiag.safe_io import MAX_LINE_BYTES

EPILOG = """\b
Examples:
  kdiag validate body.json --signature model.tar.gz
  kdiag validate body.csv --signature sig.json --content-type text/csv
  echo '[[1,2,3,4,5]]' | kdiag validate - --signature export/1
  kdiag validate body.json --signature export/1 --framework-version 2.11
  kdiag validate body.json --signature export/1 --code model/code   (runs your inference.py)
  kdiag validate bodies/ --signature export/1          every file in a folder, recursively
  kdiag validate bodies.jsonl --each-line --signature export/1
  kdiag validate bodies/ --signature export/1 --engine ray     a Ray Data job (kdiag[ray])

\b
JSON output (one payload): accepted, status, stage, error, tfs_request, tfs_target, tensors,
findings[] (code, severity, stage, message, fix), fixed_payload {content_type, body, changes,
verified, per_length (ragged rows: one unpadded request per row length)}, stages[]. Several payloads: {"results": [...], "accepted": n, "rejected": n}.
Exit codes: 0 accepted, 1 rejected (or findings at --fail-on), 2 usage error or unreadable input.
"""


@click.command("validate", epilog=EPILOG)
@click.argument("payload")
@signature_option("--signature", "signature", required=True,
                 help="A model (SavedModel folder, version folder, model.tar.gz) or a signature "
                      "JSON file from `kdiag inspect MODEL --format json`.")
@click.option("--content-type", help="The request's Content-Type header exactly as the client "
              "sends it. Default: from the file suffix (.json, .jsonl, .csv), else "
              "application/json.")
@click.option("--accept", help="The Accept header the client sends.")
@click.option("--custom-attributes", help="The X-Amzn-SageMaker-Custom-Attributes header, e.g. "
              "'tfs-model-name=model,tfs-model-version=2'.")
@framework_version_option
@click.option("--via", type=click.Choice(["container", "tfs"]), default="container",
              show_default=True, help="container: through the SageMaker container (InvokeEndpoint); "
              "tfs: straight to TF Serving's REST API (as from inference.py or tensorflow/serving).")
@click.option("--code", "code_dir", type=existing_dir(),
              help="The model's code/ folder: runs YOUR inference.py handlers, as the container "
                   "would. Only with this option is user code executed.")
@click.option("--signature-name", help="Which signature to check against (default serving_default).")
@click.option("--model-name", help="The name the container serves the model under. Default: "
              "from the archive's layout; 'model' for a version folder packed at the archive root.")
@click.option("--target-model", help="Send as invoke_endpoint(TargetModel=...) to a multi-model "
              "endpoint (the model is that archive): the container's multi-model path (Python "
              "service, no njs conversions), the model loaded under the platform's name.")
@click.option("--endpoint-kind", type=click.Choice(["realtime", "serverless", "async"]),
              default="realtime", show_default=True, help="Sets the request-size limit.")
@click.option("--each-line", is_flag=True, help="PAYLOAD is a JSON-lines file of bodies: "
              "validate every line as its own request (streamed: memory stays flat).")
@click.option("--parse-oversized", is_flag=True, help="Also parse bodies over the endpoint's "
              "size limit (up to 64 MiB). By default such a body is reported from its size alone "
              "and never read: SageMaker Runtime refuses it before the container.")
@click.option("--max-line-bytes", type=click.IntRange(1), default=MAX_LINE_BYTES,
              show_default=True, help="With --each-line and --parse-oversized: the longest line "
              "read; longer lines are reported from their size.")
@click.option("-v", "--verbose", is_flag=True, help="Several payloads: list every payload, "
              "not only the rejected ones.")
@engine_options
@format_option
@fail_on_option
@cap_option
def command(payload: str, signature: str, content_type: str | None, accept: str | None,
            custom_attributes: str | None, framework_version: str | None, via: str,
            code_dir: Path | None, signature_name: str | None, model_name: str | None,
            target_model: str | None, endpoint_kind: str, each_line: bool,
            parse_oversized: bool, max_line_bytes: int, verbose: bool, engine: str,
            address: str | None, workers: int, fmt: str, fail_on: str) -> None:
    """Predict what the endpoint answers to PAYLOAD, stage by stage, without the model and
    without TensorFlow: the exact text forwarded to TF Serving, the tensors it builds, the
    status and error text, the root cause in plain words, and a corrected payload.

    PAYLOAD is a file, - for stdin, or a folder of payload files (read recursively;
    hidden files and folders are skipped).
    """
    from kdiag.diagnosis.findings import fails
    from kdiag.diagnosis.validation import (
        ValidateOptions,
        body_limit,
        oversized,
        validate,
        validate_oversized,
    )
    from kdiag.model.signature import pick_signature
    from kdiag.model.target import resolve_target
    from kdiag.path.container import Request
    from kdiag.path.target_model import served_model_name
    from kdiag.payloads.files import MAX_BODY_BYTES, iter_payloads, payload_files
    from kdiag.report import BatchPrinter, console, progress_bar, render_validation
    from kdiag.results import SCHEMA_VERSION, Diagnosis

    # Resolved once: a folder of payloads does not read (or decompress) the model per body.
    model_name = served_model_name(model_name, target_model)
    target = resolve_target(signature, signature_name=signature_name, model_name=model_name,
                            code_dir=code_dir)
    opts = ValidateOptions.for_target(
        target, framework_version=framework_version, via=via, code_dir=code_dir,
        signature_name=signature_name, endpoint_kind=endpoint_kind,
        multi_model=target_model is not None)
    read_limit = MAX_BODY_BYTES if parse_oversized else body_limit(opts)

    def payloads():
        return iter_payloads(payload, each_line=each_line, content_type=content_type,
                             read_limit=read_limit, max_line=max_line_bytes,
                             on_skip=lambda note: click.echo(f"kdiag: {note}", err=True))

    def check_one(pl):
        if pl.body is None:
            res = oversized(pl.size, opts, name=pl.name)
            res.findings = target.findings + res.findings
        else:
            req = Request(body=pl.body, content_type=pl.content_type, accept=accept,
                          custom_attributes=custom_attributes)
            check = validate_oversized if pl.size > body_limit(opts) else validate
            res = check(req, target.signatures, opts, name=pl.name)
        return res

    def results():
        return (check_one(pl) for pl in payloads())

    single = not ((payload != "-" and Path(payload).is_dir()) or each_line)
    if single:
        res = next(iter(results()))
        if fmt == "json":
            sig = pick_signature(target.signatures, signature_name) if target.signatures else None
            emit_json(Diagnosis(res, sig).to_dict())
        else:
            render_validation(res, console())
        # A rejected payload always carries its root cause as an error finding.
        exit_with(1 if fails(res.findings, fail_on) else 0)
    # Several payloads: each result is written as soon as it is known and then dropped, so
    # memory stays flat whatever the number of lines or files.
    printer = BatchPrinter(fmt, console() if fmt == "text" else None,
                           schema_version=SCHEMA_VERSION, verbose=verbose)
    bad = False
    folder = payload != "-" and Path(payload).is_dir()
    total = len(payload_files(Path(payload))) if folder else None
    stream = (_results_on_ray(list(payloads()), check_one, address, workers)
              if engine == "ray" else results())
    with progress_bar("validating", total=total, quiet=fmt == "json") as advance:
        for res in stream:
            bad |= fails(res.findings, fail_on)
            printer.add(res)
            advance(1)
    printer.close()
    exit_with(1 if bad else 0)


def _results_on_ray(payloads: list, check_one, address: str | None, workers: int) -> list:
    """The payloads validated in Ray tasks, by the same function as in process, in input
    order (Ray changes where the work runs, never what it decides)."""
    from kdiag.replays.ray_engine import RayOptions, map_payloads_on_ray

    return map_payloads_on_ray(payloads, partial(_check_block, check_one=check_one),
                               opts=RayOptions(address, workers))


def _check_block(payloads: list, *, check_one) -> list:
    return [check_one(pl) for pl in payloads]
