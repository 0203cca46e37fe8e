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
  kdiag serve --multi-model models/         a multi-model endpoint: POST /models, TargetModel
  kdiag serve --multi-model opt_ml/models --run-archive-code
                                            ... running opt_ml/code/inference.py and each
                                            model's own code/inference.py, as the container

\b
Then, unmodified:
  boto3.client("sagemaker-runtime", endpoint_url="http://127.0.0.1:8080",
               region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
               ).invoke_endpoint(EndpointName="local", ContentType="application/json", Body=b)
  curl -d '{"instances": [...]}' -H 'Content-Type: application/json' localhost:8080/invocations
  curl localhost:8080/v1/models/model/metadata
""")
@click.argument("model", required=False)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but a loopback address exposes the model to "
                   "your network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on; 0 picks a free one and prints it.")
@framework_version_option
@click.option("--code", "code_dir", type=existing_dir(),
              help="The model's code/ folder: runs YOUR inference.py handlers, as the container "
                   "would. Only with this option is user code executed. With --multi-model: "
                   "the universal code folder (/opt/ml/code) every model without its own uses.")
@click.option("--model-name", help="The name the container serves the model under. Default: "
              "from the archive's layout; 'model' for a version folder packed at the archive root.")
@click.option("--endpoint-name", default="local", show_default=True,
              help="The EndpointName boto3 must send; any other name gets the Runtime's "
                   "'Endpoint ... not found' ValidationError.")
@click.option("--max-body-mb", type=click.IntRange(1, 4096), default=100, show_default=True,
              help="Largest body /invocations and /v1/ accept (413 above). The Runtime API "
                   "route always applies SageMaker's 6 MiB limit, with its ValidationError.")
@click.option("--max-connections", type=click.IntRange(1, 4096), default=64, show_default=True,
              help="Open connections at most; the longest-idle one is closed to make room, and "
                   "a new one gets 503 when all are busy.")
@click.option("--header-timeout", type=click.FloatRange(0.1, 3600), default=10.0,
              show_default=True, help="Seconds a connection has to send a complete request "
                                      "head before it is closed.")
@click.option("--run-archive-code", is_flag=True,
              help="Run the model's own code/inference.py (inside model.tar.gz or the model "
                   "folder), as the container does. Like --code, this executes user code; "
                   "without it kdiag says the endpoint will run that code and does not run it. "
                   "With --multi-model: the universal DIR/../code (1.x images: DIR/code) and "
                   "each model's own DIR/NAME/model/code or TargetModel archive's code/.")
@click.option("--install-requirements", is_flag=True,
              help="Install code/requirements.txt (pip install -r, as the container does at "
                   "start-up) into a cached folder of its own, keyed by the file's hash. It "
                   "downloads and runs code. Without it, requirements this environment lacks "
                   "make kdiag serve answer as the container that failed to start: 502.")
@click.option("--multi-model", "models_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Serve a multi-model endpoint (SAGEMAKER_MULTI_MODEL=true) over this folder "
                   "(SageMaker's /opt/ml/models): the model management API (POST/GET/DELETE "
                   "/models, /models/NAME/invoke), and invoke_endpoint(TargetModel=\"a.tar.gz\") "
                   "loading DIR/a.tar.gz on first use.")
@format_option
@cap_option
@trust_model_option
def command(model: str | None, host: str, port: int, framework_version: str | None,
            code_dir: Path | None, model_name: str | None, endpoint_name: str,
            run_archive_code: bool, install_requirements: bool,
            models_dir: Path | None, max_body_mb: int, max_connections: int,
            header_timeout: float, fmt: str) -> None:
    """Serve a model locally as a SageMaker TensorFlow Serving endpoint, for real clients.

    One server speaks the container contract (GET /ping, POST /invocations), the SageMaker
    Runtime API (boto3 invoke_endpoint with endpoint_url, ModelError and ValidationError as on
    AWS) and TF Serving's REST API (/v1/models/...). Requests go through the same stages as
    `kdiag validate`, with the real model running. One log line per request goes to stderr;
    Ctrl-C stops it.
    """
    from kdiag.errors import KdiagError
    from kdiag.path.local_endpoint import LocalEndpoint
    from kdiag.serve.requirements import prepare_startup
    from kdiag.serve.server import load_model, start_server

    if models_dir is not None:
        if model is not None or model_name is not None:
            raise KdiagError("--multi-model DIR serves the models in DIR: give no MODEL or "
                             "--model-name with it (POST /models and TargetModel name them).")
        _serve_multi_model(models_dir, host, port, framework_version, endpoint_name,
                           code=dict(code_dir=code_dir, run_model_code=run_archive_code),
                           install_requirements=install_requirements,
                           limits=dict(max_body=max_body_mb << 20,
                                       max_connections=max_connections,
                                       header_timeout=header_timeout))
        return
    if model is None:
        raise KdiagError("Give the MODEL to serve (or --multi-model DIR).")
    if run_archive_code and code_dir is not None:
        raise KdiagError("--run-archive-code runs the model's own code/; --code names another "
                         "code/ folder: give one of them.")
    endpoint = LocalEndpoint(model, framework_version=framework_version, code_dir=code_dir,
                             model_name=model_name, artifact_code=run_archive_code)
    for f in endpoint.target_findings:  # e.g. KD230: the model's inference.py is not run
        _log(f"kdiag serve: {f.code} {f.severity}: {f.message} {f.fix}".rstrip())
    if run_archive_code:
        where = endpoint.artifact_code_dir
        _log(f"kdiag serve: running the model's own {where / 'inference.py'}" if where and
             (where / "inference.py").is_file() else
             "kdiag serve: --run-archive-code: the model has no code/inference.py")
        code_dir = where
    try:
        endpoint.startup_failure = prepare_startup(
            endpoint, code_dir, install=install_requirements, log=_log
        ) or _container_startup(endpoint)
        if endpoint.startup_failure is not None:
            _log("kdiag serve: the container would not start: " + endpoint.startup_failure)
            seconds = 0.0
        else:
            seconds = load_model(endpoint)
        server = start_server(endpoint, host, port, endpoint_name, log=_log,
                              max_body=max_body_mb << 20, max_connections=max_connections,
                              header_timeout=header_timeout)
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


def _container_startup(endpoint) -> str | None:
    """The container's start-up configuration from this process's SAGEMAKER_* environment,
    logged in its terms; SAGEMAKER_TFS_DEFAULT_MODEL_NAME routes requests without
    tfs-model-name. Returns the start-up failure, if any."""
    from kdiag.path.container import select_path
    from kdiag.serve.startup import container_startup

    path = select_path(endpoint.gen, has_inference=endpoint.handlers is not None,
                       has_requirements=endpoint.has_requirements, has_lib=endpoint.has_lib)
    startup = container_startup(endpoint.discovered_models(), uses_gunicorn=path != "njs")
    for line in startup.lines:
        _log("kdiag serve: container: " + line.rstrip("\n"))
    if startup.failure is None and startup.default_model is not None:
        endpoint.route_default_to(startup.default_model)
    return startup.failure


def _serve_multi_model(models_dir: Path, host: str, port: int, framework_version: str | None,
                       endpoint_name: str, code: dict, install_requirements: bool,
                       limits: dict) -> None:
    from kdiag.serve.multi_model import ModelManager
    from kdiag.serve.server import start_server

    manager = ModelManager(models_dir, framework_version=framework_version, log=_log, **code)
    try:
        if manager.start(install_requirements=install_requirements) is not None:
            _log("kdiag serve: the container would not start: " + manager.startup_failure)
        server = start_server(manager, host, port, endpoint_name, log=_log, **limits)
    except BaseException:
        manager.close()
        raise
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        click.echo(f"kdiag serve: {server.url} multi-model endpoint {endpoint_name!r} over "
                   f"{models_dir} ({manager.gen.name}, no model loaded); routes: GET /ping, "
                   "POST /models, GET /models[/NAME], DELETE /models/NAME, POST "
                   f"/models/NAME/invoke, POST /endpoints/{endpoint_name}/invocations with "
                   "TargetModel. Ctrl-C stops.")
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        manager.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    click.echo("kdiag serve: stopped")


def _log(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
