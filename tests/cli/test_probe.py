"""`kdiag probe` end to end: moto (control plane, S3, logs) and kdiag's runtime on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from kdiag.cli import cli
from tests._aws_rig import (
    FAKE_KEY_ID,
    FAKE_SECRET,
    FAKE_TOKEN,
    ThrottlingRuntime,
    deploy,
    put_logs,
)
from tests._moto import free_port
from tests.conftest import MODELS, ROOT

pytestmark = pytest.mark.tf

NAME = "kdiag-cli-ep"
CUSTOM = str(MODELS / "custom" / "export" / "1")
SECRETS = (FAKE_KEY_ID, FAKE_SECRET, FAKE_TOKEN)


def run(moto, runtime, *args):
    argv = ["probe", NAME, "--endpoint-url", moto, "--runtime-endpoint-url", runtime,
            "--log-wait", "0", "--rate", "50", *map(str, args)]
    return CliRunner().invoke(cli, argv)


def test_healthy_endpoint_exits_0_with_json_report(env, runtime_url):
    deploy(env, NAME)
    r = run(env, runtime_url, "--model", CUSTOM, "--format", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["healthy"] is True and doc["endpoint"]["status"] == "InService"
    assert doc["framework_version"] == "2.13"
    [p] = doc["payloads"]
    assert p["live"]["ok"] and p["agreement"] == "agree" and p["replay"]["ok"] is True
    assert doc["requests_sent"] == 1


def test_rejected_payload_exits_1_with_diagnosis_and_log_lines(env, runtime_url, tmp_path):
    deploy(env, NAME)
    put_logs(env, NAME, ["Traceback (most recent call last):", "ValueError: boom"])
    body = tmp_path / "b.json"
    body.write_text('{"instances": [["1", "2", "3", "4", "5"]]}')
    r = run(env, runtime_url, "--signature", CUSTOM, "--payload", body)
    assert r.exit_code == 1, r.output
    out = r.stdout
    assert "ModelError 400" in out and "KD301" in out and "KD830" in out
    assert "Traceback (most recent call last):" in out and "ValueError: boom" in out


def test_missing_endpoint_exits_2_with_one_paragraph(env, runtime_url):
    r = CliRunner().invoke(cli, ["probe", "nope", "--endpoint-url", env])
    assert r.exit_code == 2
    assert "Endpoint 'nope' was not found" in r.stderr
    assert "Traceback" not in r.output


def test_unreachable_control_plane_exits_2(env):
    dead = f"http://127.0.0.1:{free_port()}"
    r = CliRunner().invoke(cli, ["probe", NAME, "--sagemaker-endpoint-url", dead,
                                 "--connect-timeout", "1"])
    assert r.exit_code == 2
    assert "Cannot reach sagemaker at " + dead in r.stderr


def test_unreachable_runtime_exits_2(env):
    deploy(env, NAME)
    dead = f"http://127.0.0.1:{free_port()}"
    r = run(env, dead, "--signature", CUSTOM, "--connect-timeout", "1", "--retries", "0")
    assert r.exit_code == 2
    assert "Cannot reach sagemaker-runtime" in r.stderr


def test_no_credentials_exits_2(env, monkeypatch):
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k)
    r = CliRunner().invoke(cli, ["probe", NAME, "--endpoint-url", env])
    assert r.exit_code == 2
    assert "No AWS credentials found" in r.stderr


def test_dry_run_shows_payloads_and_sends_nothing(env):
    deploy(env, NAME)
    with ThrottlingRuntime(0) as rt:
        r = run(env, rt.url, "--signature", CUSTOM, "--dry-run", "--content-type", "json",
                "--content-type", "csv")
        assert rt.calls == 0
    assert r.exit_code == 0, r.output
    assert "would send 2 payload(s), 0 of at most 10" in " ".join(r.stdout.split())


def test_throttled_endpoint_still_answers_after_backoff(env):
    deploy(env, NAME)
    with ThrottlingRuntime(1) as rt:
        r = run(env, rt.url, "--signature", CUSTOM, "--format", "json")
        assert rt.calls == 2
    doc = json.loads(r.stdout)
    assert doc["payloads"][0]["live"]["retried"] == ["ThrottlingException"]
    assert r.exit_code == 0


def _subprocess(args, moto_url):
    env = {**os.environ, "AWS_ACCESS_KEY_ID": FAKE_KEY_ID, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
           "AWS_SESSION_TOKEN": FAKE_TOKEN, "AWS_REGION": "us-east-1",
           "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
           "AWS_EC2_METADATA_DISABLED": "true", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "kdiag", "probe", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def test_credentials_never_appear_in_output_even_on_errors(env, runtime_url, tmp_path):
    deploy(env, NAME)
    put_logs(env, NAME, ["Traceback (most recent call last):", "ValueError: boom"])
    body = tmp_path / "b.json"
    body.write_text('{"instances": [["1", "2", "3", "4", "5"]]}')
    dead = f"http://127.0.0.1:{free_port()}"
    runs = [
        _subprocess([NAME, "--endpoint-url", env, "--runtime-endpoint-url", runtime_url,
                     "--signature", CUSTOM, "--payload", body, "--log-wait", "0",
                     "--format", fmt], env) for fmt in ("json", "text")
    ] + [
        _subprocess([NAME, "--endpoint-url", env, "--runtime-endpoint-url", runtime_url,
                     "--log-wait", "0", "--format", "json"], env),  # inference path
        _subprocess(["nope", "--endpoint-url", env], env),
        _subprocess([NAME, "--endpoint-url", env, "--runtime-endpoint-url", dead,
                     "--signature", CUSTOM, "--retries", "0"], env),
    ]
    assert [r.returncode for r in runs] == [1, 1, 0, 2, 2], [r.stderr[-500:] for r in runs]
    for r in runs:
        for secret in SECRETS:
            assert secret not in r.stdout and secret not in r.stderr
        assert "Signature=" not in r.stdout + r.stderr
        assert "Traceback (most recent call last):\n  File" not in r.stderr
