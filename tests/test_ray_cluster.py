"""--engine ray --address ray://host:port: a real Ray cluster started for the test (`ray start
--head --block` in its own session and temp folder, free ports), reached through the Ray
Client; validate of a folder and a capture replay give the in-process summaries.

One combined test: starting the cluster and loading TensorFlow in its workers costs ~20 s on a
2-core machine. The cluster is stopped by signalling the process group it was started in (never
`ray stop`, which stops every Ray on the machine).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest
from click.testing import CliRunner

from kdiag.cli import cli
from tests import _capture_gen as gen
from tests._moto import free_port
from tests.conftest import MODELS, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.tf]
pytest.importorskip("tensorflow")
pytest.importorskip("ray")
pytest.importorskip("grpc")  # the Ray Client (ray[client])

CUSTOM = str(MODELS / "custom/export/1")
PORT_OPTIONS = ("port", "ray-client-server-port", "node-manager-port", "object-manager-port",
                "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                "runtime-env-agent-port", "metrics-export-port")


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_BACKEND_LOG_LEVEL": "fatal",
           # A test cluster without token auth (Ray may turn it on for local clusters).
           "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    return env


@pytest.fixture(scope="module")
def ray_cluster():
    """A one-node cluster of 2 CPUs on free ports; yields its ray:// address."""
    ports = {name: free_port() for name in PORT_OPTIONS}
    # Ray's socket paths must stay short: a temp folder of its own, directly under /tmp.
    temp = tempfile.mkdtemp(prefix="kdiag-ray-", dir="/tmp" if os.path.isdir("/tmp") else None)
    log = open(os.path.join(temp, "ray-start.log"), "wb")  # noqa: SIM115 - closed below
    head = subprocess.Popen(
        ["ray", "start", "--head", "--block", "--num-cpus=2", "--include-dashboard=false",
         "--disable-usage-stats", "--node-ip-address=127.0.0.1", f"--temp-dir={temp}",
         *[f"--{name}={port}" for name, port in ports.items()]],
        env=_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        client_port = ports["ray-client-server-port"]
        deadline = time.monotonic() + 120
        while True:
            if head.poll() is not None:
                pytest.fail(f"ray start exited with {head.returncode}: see {temp}/ray-start.log")
            try:
                socket.create_connection(("127.0.0.1", client_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the Ray Client port did not open within 120 s")
                time.sleep(0.3)
        yield f"ray://127.0.0.1:{client_port}", temp
    finally:
        _stop(head)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _stop(head: subprocess.Popen) -> None:
    """The cluster's processes only: its session's process group, SIGTERM (a few seconds to
    leave) then SIGKILL for whatever is left in the group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(5)
        os.killpg(head.pid, signal.SIGKILL)
    head.wait(30)


def kdiag_json(cluster: tuple[str, str], *args: str) -> tuple[int, dict]:
    """kdiag in a child process (a Ray Client connection is per process) on the cluster."""
    address, temp = cluster
    p = subprocess.run([sys.executable, "-m", "kdiag", *args, "--engine", "ray", "--address",
                        address, "--format", "json"],
                       capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=300)
    assert p.returncode in (0, 1), p.stderr[-3000:] + _client_server_logs(temp)
    return p.returncode, json.loads(p.stdout)


def _client_server_logs(temp: str) -> str:
    """What the cluster's Ray Client servers said (why a connection failed)."""
    from pathlib import Path

    return "".join(f"\n--- {f.name}\n{f.read_text(errors='replace')[-3000:]}"
                   for f in sorted(Path(temp).glob("session_*/logs/ray_client_server*")))


def in_process(*args: str) -> tuple[int, dict]:
    r = CliRunner().invoke(cli, [*args, "--format", "json"])
    assert r.exit_code in (0, 1), r.output
    return r.exit_code, json.loads(r.stdout)


def test_validate_and_capture_replay_on_a_cluster_match_in_process(ray_cluster, tmp_path):
    bodies = tmp_path / "bodies"
    bodies.mkdir()
    for i in range(6):
        row = ["x", 2, 3, 4, 5] if i == 4 else [i, 2.5, 3, 4, 5]
        (bodies / f"b{i}.json").write_text(json.dumps({"instances": [row]}))
    validate = ["validate", str(bodies), "--signature", CUSTOM]
    assert kdiag_json(ray_cluster, *validate) == in_process(*validate)

    gen.write_capture(tmp_path / "cap", 200)  # the cluster runs here: it reads the same path
    replay = ["replay", "--capture", str(tmp_path / "cap"), "--model", CUSTOM,
              "--since", gen.SINCE, "--until", gen.UNTIL, "--atol", "1e-4"]
    code_ray, doc_ray = kdiag_json(ray_cluster, *replay)
    code_in, doc_in = in_process(*replay)
    assert code_ray == code_in == 1 and doc_ray["engine"] == "ray"
    assert {k: doc_ray[k] for k in doc_in} == doc_in
    assert doc_in["records"] > 150 and doc_in["findings"]
