"""The AWS containers' (upstream) local integration tests, adapted: the `docker run` fixture is replaced by
`kdiag serve` (kdiag.serve.server.start_server) on an equivalent model, given as a folder or as a
model.tar.gz; the requests and assertions are the public tests', rewritten.

Sources: aws/sagemaker-tensorflow-serving-container test/integration/local/ (the G1 images) and
aws/deep-learning-containers test/sagemaker_tests/tensorflow/inference/test/integration/local/
(the 2.2-2.19 images, at 6712253d). The models are rebuilt by fixtures/build.py (tfs_models: the
half_plus_three model folder the tests mount at /opt/ml/model; mme: the /opt/ml/models folder).

(The folder sorts after tests/security on purpose: these tests load TensorFlow in the pytest
process, and a forked child inherits its parent's peak RSS, which the security tests measure.)
"""

from __future__ import annotations

import http.client
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, MODELS

TFS_MODELS = MODELS / "tfs_models"
MME_MODELS = MODELS / "mme"
FIXTURES_ARCHIVES = FIXTURES / "archives"
MODES = ("folder", "archive")


def pack(folder: Path, out: Path) -> Path:
    """model.tar.gz with the folder's content at its root, as SageMaker extracts it to
    /opt/ml/model."""
    with tarfile.open(out, "w:gz") as tar:
        for p in sorted(folder.iterdir()):
            tar.add(p, arcname=p.name)
    return out


@pytest.fixture(scope="session")
def tfs_model_archive(tmp_path_factory) -> Path:
    return pack(TFS_MODELS, tmp_path_factory.mktemp("tfs_models") / "model.tar.gz")


@dataclass
class Http:
    """A plain HTTP client of one server (what `requests` does in the public tests)."""

    host: str
    port: int

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict | None = None) -> tuple[int, dict, bytes]:
        if isinstance(body, str):
            body = body.encode("utf-8")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def post(self, path: str, body, headers: dict | None = None) -> tuple[int, dict, bytes]:
        return self.request("POST", path, body, headers)

    def get(self, path: str) -> tuple[int, dict, bytes]:
        return self.request("GET", path)

    def json(self, method: str, path: str, body=None, headers=None):
        status, _, raw = self.request(method, path, body, headers)
        return status, json.loads(raw.decode("utf-8"))


def serve(model: Path, framework_version: str | None, **kwargs):
    """Start `kdiag serve` on `model` as the fixture's container (with the model's own code/
    when `artifact_code=True`, as --run-archive-code); returns (server, endpoint)."""
    from kdiag.path.local_endpoint import LocalEndpoint
    from kdiag.serve.requirements import prepare_startup
    from kdiag.serve.server import load_model, start_server

    ep = LocalEndpoint(model, framework_version=framework_version, **kwargs)
    code = ep.artifact_code_dir if kwargs.get("artifact_code") else None
    ep.startup_failure = prepare_startup(ep, code)
    if ep.startup_failure is None:
        load_model(ep)
    return start_server(ep), ep
