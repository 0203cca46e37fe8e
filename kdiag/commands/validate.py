"""`kdiag validate PAYLOAD --signature SIG`."""

from __future__ import annotations

from pathlib import Path

import click

from kdiag.commands._common import (
    cap_option,
    emit_json,
    existing_dir,
    exit_with,
    fail_on_option,
    format_option,
    framework_version_option,
    signature_option,
)

EPILOG = """\b
Examples:
  kdiag validate body.json --signature model.tar.gz
  kdiag validate body.csv --signature sig.json --content-type text/csv
  echo '[[1,2,3,4,5]]' | kdiag validate - --signature export/1
  kdiag validate body.json --signature export/1 --framework-version 2.11
  kdiag validate body.json --signature export/1 --code model/code   (runs your inference.py)
  kdiag validate bodies/ --signature export/1          every file in a folder, recursively
  kdiag validate bodies.jsonl --each-line --signature export/1

\b
JSON output (one payload): accepted, status, stage, error, tfs_request, tfs_target, tensors,
findings[] (code, severity, stage, message, fix), fixed_payload {content_type, body, changes},
stages[]. Several payloads: {"results": [...], "accepted": n, "rejected": n}.
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
@click.option("--endpoint-kind", type=click.Choice(["realtime", "serverless", "async"]),
              default="realtime", show_default=True, help="Sets the request-size limit.")
@click.option("--each-line", is_flag=True, help="PAYLOAD is a JSON-lines file of bodies: "
              "validate every line as its own request.")
@click.option("-v", "--verbose", is_flag=True, help="Several payloads: list every payload, "
              "not only the rejected ones.")
@format_option
@fail_on_option
@cap_option
def command(payload: str, signature: str, content_type: str | None, accept: str | None,
            custom_attributes: str | None, framework_version: str | None, via: str,
            code_dir: Path | None, signature_name: str | None, model_name: str | None,
            endpoint_kind: str, each_line: bool, verbose: bool, fmt: str, fail_on: str) -> None:
    """Predict what the endpoint answers to PAYLOAD, stage by stage, without the model and
    without TensorFlow: the exact text forwarded to TF Serving, the tensors it builds, the
    status and error text, the root cause in plain words, and a corrected payload.

    PAYLOAD is a file, - for stdin, or a folder of payload files (read recursively;
    hidden files and folders are skipped).
    """
    import kdiag
    from kdiag.diagnosis.findings import fails
    from kdiag.model.target import resolve_target
    from kdiag.payloads.files import iter_bodies, payload_files
    from kdiag.report import console, progress_bar, render_validation, render_validation_batch
    from kdiag.results import batch_document

    # Resolved once: a folder of payloads does not read (or decompress) the model per body.
    target = resolve_target(signature, signature_name=signature_name, model_name=model_name,
                            code_dir=code_dir)
    folder = payload != "-" and Path(payload).is_dir()
    total = len(payload_files(Path(payload))) if folder else None
    diagnoses = []
    with progress_bar("validating", total=total,
                      quiet=fmt == "json" or not (folder or each_line)) as advance:
        for name, body, ct in iter_bodies(payload, each_line=each_line,
                                          content_type=content_type):
            diagnoses.append(kdiag.validate(
                body, target, content_type=ct, framework_version=framework_version,
                accept=accept, custom_attributes=custom_attributes, via=via, code=code_dir,
                signature_name=signature_name, endpoint_kind=endpoint_kind, name=name))
            advance(1)
    results = [d.result for d in diagnoses]
    single = len(results) == 1 and not (folder or each_line)
    if fmt == "json":
        emit_json(diagnoses[0].to_dict() if single else batch_document(results))
    else:
        con = console()
        if single:
            render_validation(results[0], con)
        else:
            render_validation_batch(results, con, verbose=verbose)
    bad = any(not r.accepted or fails(r.findings, fail_on) for r in results)
    exit_with(1 if bad else 0)
