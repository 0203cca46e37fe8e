"""`kdiag serve` options for what the container does beyond one model: the model's own
code/inference.py, code/requirements.txt at start-up, and --multi-model (real subprocesses)."""

from __future__ import annotations

import json
import shutil
import tarfile
import time
import urllib.error
import urllib.request

import pytest

from tests.cli.test_serve import FIVE_ONES, Served, served  # noqa: F401  (fixture)
from tests.conftest import FIXTURES, MODELS

GOOD = str(FIXTURES / "archives/good.tar.gz")


def post(url: str, path: str, body: bytes, headers: dict | None = None):
    req = urllib.request.Request(url + path, data=body,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_for(lines: list[str], text: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in line for line in lines):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.tf
def test_the_models_own_inference_py_is_reported_or_run_on_request(served):  # noqa: F811
    plain = served(GOOD, "--port", "0")
    plain.url()
    assert wait_for(plain.stderr, "KD230")  # said, not run
    ran = served(GOOD, "--port", "0", "--run-archive-code")
    url = ran.url()
    assert wait_for(ran.stderr, "running the model's own")
    # the fixture's input_handler turns CSV rows into instances: only the handler does that
    status, body = post(url, "/invocations", b"1,1,1,1,1", {"Content-Type": "text/csv"})
    assert status == 200 and json.loads(body) == {"predictions": [[2.5]]}


@pytest.mark.tf
def test_unmet_requirements_start_no_healthy_container(served, tmp_path):  # noqa: F811
    code = tmp_path / "code"
    shutil.copytree(FIXTURES / "code", code)
    (code / "requirements.txt").write_text("kdiag-no-such-package-xyz\n")
    s = served(GOOD, "--port", "0", "--code", str(code))
    url = s.url()
    assert wait_for(s.stderr, "the container would not start")
    status, body = post(url, "/invocations", FIVE_ONES)
    assert status == 502 and b"502 Bad Gateway" in body


@pytest.mark.tf
def test_multi_model_serves_the_model_management_api(served, tmp_path):  # noqa: F811
    root = tmp_path / "models"
    shutil.copytree(MODELS / "mme", root)
    with tarfile.open(root / "two.tar.gz", "w:gz") as tar:
        tar.add(MODELS / "mme/half_plus_two/00000123", arcname="1")
    s = served("--multi-model", str(root), "--port", "0")
    url = s.url()
    status, body = post(url, "/models", json.dumps({"model_name": "h3",
                                                    "url": "/opt/ml/models/half_plus_three"}
                                                   ).encode())
    assert status == 200 and b"Successfully loaded model h3" in body
    status, body = post(url, "/models/h3/invoke", b'{"instances": [1.0]}')
    assert status == 200 and json.loads(body) == {"predictions": [3.5]}
    status, body = post(url, "/endpoints/local/invocations", b'{"instances": [2.0]}',
                        {"X-Amzn-SageMaker-Target-Model": "two.tar.gz"})
    assert status == 200 and json.loads(body) == {"predictions": [3.0]}


@pytest.mark.tf
def test_multi_model_user_code_is_said_or_run_on_request(served, tmp_path):  # noqa: F811
    """/opt/ml as the container sees it: code/ (the universal script: the fixture's handlers,
    which turn CSV rows into instances) and models/. Without the opt-in the log says so and the
    default handler forwards the raw CSV; with --run-archive-code the handlers run."""
    shutil.copytree(FIXTURES / "code", tmp_path / "code")
    root = tmp_path / "models"
    shutil.copytree(MODELS / "mme", root)
    load = json.dumps({"model_name": "h2", "url": "/opt/ml/models/half_plus_two"}).encode()
    csv = {"Content-Type": "text/csv"}
    plain = served("--multi-model", str(root), "--port", "0", "--framework-version", "2.20")
    url = plain.url()
    assert wait_for(plain.stderr, "KD230 warning")
    assert post(url, "/models", load)[0] == 200
    status, _ = post(url, "/models/h2/invoke", b"1.0\n2.0", csv)
    assert status == 400  # raw CSV to TF Serving: its 400, relayed by the 2.20+ default handler
    ran = served("--multi-model", str(root), "--port", "0", "--framework-version", "2.20",
                 "--run-archive-code")
    url = ran.url()
    assert wait_for(ran.stderr, "running the universal")
    assert post(url, "/models", load)[0] == 200
    status, body = post(url, "/models/h2/invoke", b"1.0\n2.0", csv)
    assert status == 200 and json.loads(body) == {"predictions": [[2.5], [3.0]]}
