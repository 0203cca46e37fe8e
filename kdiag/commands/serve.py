"""`kdiag serve MODEL`."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from kdiag.commands._common import (
    cap_option,
    emit_json,
    existing_dir,
    format_option,
    framework_version_option,
    trust_model_option,
)


@click.command("serve", epilog="""\b
Examples:
  kdiag serve export/1                      http://127.0.0.1:8080, endpoint name "local"
  kdiag serve model.tar.gz --port 0         any free port (printed)
  kdiag serve model.tar.gz --code code/     run YOUR inference.py handlers, as the container would

\b
Then, unmodified:
  boto3.client("sagemaker-runtime", endpoint_url="http://127.0.0.1:8080",
               region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
               ).invoke_endpoint(EndpointName="local", ContentType="application/json", Body=b)
  curl -d '{"instances": [...]}' -H 'Content-Type: application/json' localhost:8080/invocations
  curl localhost:8080/v1/models/model/metadata
""")
@click.argument("model")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but a loopback address exposes the model to "
                   "your network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on; 0 picks a free one and prints it.")
@framework_version_option
@click.option("--code", "code_dir", type=existing_dir(),
              help="The model's code/ folder: runs YOUR inference.py handlers, as the container "
                   "would. Only with this option is user code executed.")
@click.option("--model-name", help="The name the container serves the model under. Default: "
              "from the archive's layout; 'model' for a version folder packed at the archive root.")
@click.option("--endpoint-name", default="local", show_default=True,
              help="The EndpointName boto3 must send; any other name gets the Runtime's "
                   "'Endpoint ... not found' ValidationError.")
@format_option
@cap_option
@trust_model_option
def command(model: str, host: str, port: int, framework_version: str | None,
            code_dir: Path | None, model_name: str | None, endpoint_name: str, fmt: str) -> None:
    """Serve a model locally as a SageMaker TensorFlow Serving endpoint, for real clients.

    One server speaks the container contract (GET /ping, POST /invocations), the SageMaker
    Runtime API (boto3 invoke_endpoint with endpoint_url, ModelError and ValidationError as on
    AWS) and TF Serving's REST API (/v1/models/...). Requests go through the same stages as
    `kdiag validate`, with the real model running. One log line per request goes to stderr;
    Ctrl-C stops it.
    """
    from kdiag.path.local_endpoint import LocalEndpoint
    from kdiag.serve.server import load_model, start_server

    endpoint = LocalEndpoint(model, framework_version=framework_version, code_dir=code_dir,
                             model_name=model_name)
    try:
        seconds = load_model(endpoint)
        server = start_server(endpoint, host, port, endpoint_name, log=_log)
    except BaseException:
        endpoint.close()
        raise
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        versions = ", ".join(map(str, server.app.versions))
        if fmt == "json":  # one object on stdout for scripts; request log lines stay on stderr
            emit_json({"url": server.url, "model_name": endpoint.model_name,
                       "versions": list(server.app.versions), "generation": endpoint.gen.name,
                       "load_seconds": round(seconds, 3), "endpoint_name": endpoint_name,
                       "routes": list(server.routes)})
            sys.stdout.flush()
        else:
            click.echo(f"kdiag serve: {server.url} model {endpoint.model_name!r} (version "
                       f"{versions}, {endpoint.gen.name}, loaded in {seconds:.1f} s), "
                       f"endpoint {endpoint_name!r}; routes: {', '.join(server.routes)}. Ctrl-C stops.")
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        endpoint.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    click.echo("kdiag serve: stopped", err=fmt == "json")


def _log(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
