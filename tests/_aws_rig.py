"""Offline AWS for probe tests: moto's server (SageMaker control plane, S3, CloudWatch Logs) and
kdiag's own local runtime on loopback, plus a throttling stand-in. Nothing here calls AWS."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests._moto import free_port, moto_server  # noqa: F401 (re-exported)
from tests.conftest import MODELS

ACCOUNT = "123456789012"
REGION = "us-east-1"
IMAGE_213 = "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference:2.13-cpu"
FAKE_KEY_ID = "AKIAKDIAGTESTFAKE123"
FAKE_SECRET = "kdiagFakeSecretKey/DoNotPrint+0123456789ab"
FAKE_TOKEN = "kdiagFakeSessionTokenValue0123456789"
CREDS_ENV = {"AWS_ACCESS_KEY_ID": FAKE_KEY_ID, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
             "AWS_SESSION_TOKEN": FAKE_TOKEN, "AWS_DEFAULT_REGION": REGION,
             "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
             "AWS_CONFIG_FILE": "/nonexistent/kdiag-config",
             "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/kdiag-credentials"}
CLEARED_ENV = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
               "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
               "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", "AWS_DEFAULT_PROFILE")


def set_fake_env(mp) -> None:
    for k, v in CREDS_ENV.items():
        mp.setenv(k, v)
    for k in CLEARED_ENV:
        mp.delenv(k, raising=False)


def reset_moto(url: str) -> None:
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"),
                           timeout=10).read()


def client(service: str, url: str):
    import boto3

    return boto3.client(service, endpoint_url=url, region_name=REGION)


def pack_model(savedmodel_version_dir: Path, dest: Path) -> Path:
    """model.tar.gz with the version folder at the root (1/saved_model.pb ...)."""
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(savedmodel_version_dir, arcname=savedmodel_version_dir.name)
    return dest


def deploy(url: str, name: str, *, image: str = IMAGE_213, model_data_url: str | None = None,
           env: dict | None = None, capture: dict | None = None,
           variant: str = "AllTraffic") -> None:
    """create_model, create_endpoint_config, create_endpoint in moto."""
    sm = client("sagemaker", url)
    container = {"Image": image, "Environment": env or {}}
    if model_data_url:
        container["ModelDataUrl"] = model_data_url
    sm.create_model(ModelName=f"{name}-model", PrimaryContainer=container,
                    ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/sm")
    cfg = {"EndpointConfigName": f"{name}-config",
           "ProductionVariants": [{"VariantName": variant, "ModelName": f"{name}-model",
                                   "InstanceType": "ml.m5.large", "InitialInstanceCount": 1,
                                   "InitialVariantWeight": 1.0}]}
    if capture:
        cfg["DataCaptureConfig"] = capture
    sm.create_endpoint_config(**cfg)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")


def upload(url: str, bucket: str, key: str, data: bytes) -> str:
    s3 = client("s3", url)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    return f"s3://{bucket}/{key}"


def put_logs(url: str, endpoint: str, lines: list[str], *, stream: str = "AllTraffic/i-0kdiag"
             ) -> None:
    logs = client("logs", url)
    group = f"/aws/sagemaker/Endpoints/{endpoint}"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=group, logStreamName=stream,
                        logEvents=[{"timestamp": now + i, "message": m}
                                   for i, m in enumerate(lines)])


def set_endpoint_status(name: str, status: str, reason: str | None = None) -> None:
    """moto creates endpoints InService and has no UpdateEndpoint; its backend is in this
    process (ThreadedMotoServer), so the status is set there directly."""
    from moto.sagemaker.models import sagemaker_backends

    ep = sagemaker_backends[ACCOUNT][REGION].endpoints[name]
    ep.endpoint_status = status
    ep.failure_reason = reason


class ThrottlingRuntime:
    """A SageMaker Runtime stand-in: the first `throttle` calls are throttled (400
    ThrottlingException, or 429 when `status` is 429), then it answers `answer`."""

    def __init__(self, throttle: int, *, status: int = 400,
                 answer: bytes = b'{"predictions": [[2.5]]}') -> None:
        self.throttle, self.status, self.answer = throttle, status, answer
        self.calls = 0
        self.times: list[float] = []
        self.headers: list[dict] = []
        self.lock = threading.Lock()
        rig = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with rig.lock:
                    rig.calls += 1
                    rig.times.append(time.monotonic())
                    rig.headers.append(dict(self.headers))
                    n = rig.calls
                if n <= rig.throttle:
                    code = "ThrottlingException" if rig.status == 400 else "TooManyRequests"
                    body = json.dumps({"message": "Rate exceeded"}).encode()
                    self.send_response(rig.status)
                    self.send_header("x-amzn-ErrorType", code)
                else:
                    body = rig.answer
                    self.send_response(200)
                    self.send_header("x-Amzn-Invoked-Production-Variant", "AllTraffic")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> ThrottlingRuntime:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def tar_bytes(path: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(path, arcname=path.name)
    return buf.getvalue()


# ---- pytest fixtures of the probe tests (registered by tests/conftest.py's pytest_plugins) ----
# A requesting module's NAME is the endpoint the local runtime serves.

@pytest.fixture(scope="module")
def moto_url():
    with pytest.MonkeyPatch.context() as mp:
        set_fake_env(mp)
        with moto_server() as url:
            yield url


@pytest.fixture(scope="module")
def runtime_url(moto_url, request):
    from kdiag.path.local_endpoint import LocalEndpoint
    from kdiag.serve.server import load_model, start_server

    model = MODELS / "custom" / "export" / "1"
    with LocalEndpoint(model, framework_version="2.13") as ep:
        load_model(ep)
        with start_server(ep, endpoint_name=request.module.NAME, runtime_deadline=None) as srv:
            yield srv.url


@pytest.fixture
def env(moto_url, monkeypatch):
    set_fake_env(monkeypatch)
    reset_moto(moto_url)
    return moto_url
