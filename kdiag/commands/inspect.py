"""`kdiag inspect PATH`."""

from __future__ import annotations

from pathlib import Path

import click

from kdiag.commands._common import (
    cap_option,
    emit_json,
    existing_file,
    exit_with,
    fail_on_option,
    format_option,
)


@click.command("inspect", epilog="""\b
Examples:
  kdiag inspect export/1                 a SavedModel folder
  kdiag inspect my_model/                a folder of numeric version folders (1/, 2/, ...)
  kdiag inspect model.tar.gz             the archive you upload to S3 (read, never extracted)
  kdiag inspect model.keras --custom-objects my_model.py
                                          Keras names vs exported names, predict() overrides
  kdiag inspect export/1 --format json > signature.json
                                          the portable signature every --signature accepts

\b
JSON keys: path, kind, model_name, version, tensorflow_version, tag_sets, default_signature,
signatures[] (signature_name, method_name, default, inputs, outputs, notes), example_request,
boto3, layout, keras, names, findings[] (code, severity, stage, message, fix).
""")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--custom-objects", type=existing_file(),
              help="The Python module defining your custom Keras classes. It is read, not run: "
                   "kdiag reports predict()/predict_step()/__call__ overrides that the exported "
                   "SavedModel will not contain.")
@click.option("--endpoint-name", default="my-endpoint", show_default=True,
              help="Endpoint name used in the boto3 example.")
@format_option
@fail_on_option
@cap_option
def command(path: Path, custom_objects: Path | None, endpoint_name: str, fmt: str,
            fail_on: str) -> None:
    """Show the serving signatures of a SavedModel, model.tar.gz, version folder, .keras or
    .h5 file, the request the endpoint expects, and what would break the deployment.

    Reads saved_model.pb directly: no TensorFlow import, answers in milliseconds.
    """
    import kdiag
    from kdiag.diagnosis.findings import fails
    from kdiag.report import console, render_inspect

    report = kdiag.inspect(path, custom_objects=custom_objects, endpoint_name=endpoint_name)
    if fmt == "json":
        emit_json(report.to_dict())
    else:
        render_inspect(report.result, console())
    exit_with(1 if fails(report.findings, fail_on) else 0)
