"""`kdiag serve` end to end: a real subprocess, real HTTP, real signals."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from click.testing import CliRunner

from kdiag.cli import cli
from tests.conftest import MODELS, ROOT

MODEL = str(MODELS / "custom/export/1")
FIVE_ONES = b'{"instances": [[1, 1, 1, 1, 1]]}'


class Served:
    """`python -m kdiag serve ...` in a subprocess, its stdout and stderr read by threads."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kdiag", "serve", *args], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout, self.out),
                         daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr, None),
                         daemon=True).start()

    @staticmethod
    def _pump(stream, lines: list[str], q) -> None:
        for line in stream:
            lines.append(line)
            if q is not None:
                q.put(line)

    def url(self, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.out.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            m = re.search(r"http://127\.0\.0\.1:\d+", line)
            if m:
                return m.group()
        raise AssertionError(f"no URL; stdout {self.stdout!r} stderr {self.stderr[-5:]!r}")

    def stop(self) -> None:
        """SIGTERM, as a supervisor stops it: serve removes its extraction folder. SIGKILL
        only if it does not stop (the suite's temp-folder check then names the test)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def served():
    started: list[Served] = []

    def start(*args: str) -> Served:
        s = Served(*args)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.mark.tf
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_answers_then_stops_cleanly_on_a_signal(served, sig):
    s = served(MODEL, "--port", "0")
    url = s.url()
    assert url.endswith(tuple("0123456789")) and not url.endswith(":8080")
    req = urllib.request.Request(url + "/invocations", data=FIVE_ONES,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert json.loads(r.read()) == {"predictions": [[2.5]]}
    with urllib.request.urlopen(url + "/ping", timeout=30) as r:
        assert r.status == 200
    s.proc.send_signal(sig)
    assert s.proc.wait(10) == 0
    time.sleep(0.1)  # let the reader threads drain the pipes
    assert any("stopped" in line for line in s.stdout)
    start_line = next(line for line in s.stdout if url in line)
    for route in ("GET /ping", "POST /invocations", "POST /endpoints/local/invocations",
                  "/v1/models/model"):
        assert route in start_line
    assert any(re.search(r"POST /invocations 200 \d+B [\d.]+ms", line) for line in s.stderr)


@pytest.mark.tf
def test_serve_uses_the_endpoint_name_given(served):
    import boto3

    s = served(MODEL, "--port", "0", "--endpoint-name", "my-endpoint")
    url = s.url()
    client = boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    r = client.invoke_endpoint(EndpointName="my-endpoint", ContentType="text/csv",
                               Body=b"1,1,1,1,1")
    assert json.loads(r["Body"].read()) == {"predictions": [[2.5]]}
    with pytest.raises(client.exceptions.ValidationError):
        client.invoke_endpoint(EndpointName="local", ContentType="text/csv", Body=b"1,1,1,1,1")
    s.proc.send_signal(signal.SIGINT)
    assert s.proc.wait(10) == 0


def test_missing_model_exits_2_with_one_line(tmp_path):
    r = CliRunner().invoke(cli, ["serve", str(tmp_path / "nope"), "--port", "0"])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kdiag: ")


def test_missing_model_exits_2_from_a_real_process(tmp_path):
    p = subprocess.run([sys.executable, "-m", "kdiag", "serve", str(tmp_path / "nope")],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and p.stdout == ""


def test_help_lists_the_options():
    r = CliRunner().invoke(cli, ["serve", "--help"])
    assert r.exit_code == 0
    for opt in ("--host", "--port", "--framework-version", "--code", "--model-name",
                "--endpoint-name"):
        assert opt in r.output
    listing = CliRunner().invoke(cli, ["--help"])
    assert "serve" in listing.output


@pytest.mark.tf
def test_format_json_prints_one_object_on_stdout_and_logs_on_stderr(served):
    s = served(MODEL, "--port", "0", "--format", "json")
    url = s.url()
    with urllib.request.urlopen(url + "/ping", timeout=30) as r:
        assert r.status == 200
    s.proc.send_signal(signal.SIGINT)
    s.proc.wait(30)
    time.sleep(0.2)
    doc = json.loads("".join(s.stdout))
    assert doc["url"] == url and doc["endpoint_name"] == "local"
    assert doc["model_name"] == "model" and doc["versions"] == [1]
    assert doc["generation"] == "G3" and "GET /ping" in doc["routes"]
    assert any("kdiag serve: stopped" in line for line in s.stderr)
