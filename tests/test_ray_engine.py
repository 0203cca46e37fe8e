"""--engine ray: the capture replay and the folder validate/replay as Ray Data jobs give the
in-process results, record by record (a local Ray, one session for the module; capture served
by moto's S3 server)."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time

import pytest
from click.testing import CliRunner

from kdiag.cli import cli
from tests import _capture_gen as gen
from tests._moto import moto_server, s3_client
from tests.conftest import MODELS

pytestmark = [pytest.mark.slow, pytest.mark.tf]
pytest.importorskip("tensorflow")
ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")

CUSTOM = str(MODELS / "custom/export/1")
RECORDS = 10_000
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_capture():
    """s3://capture/cap/ on a moto server, credentials in the environment (the Ray workers
    started after this inherit them, as on a machine configured for AWS)."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in AWS_ENV.items():
            mp.setenv(k, v)
        for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN",
                  "RAY_ADDRESS"):
            mp.delenv(k, raising=False)
        with moto_server() as url:
            gen.upload_capture(s3_client(url), "capture", "cap", RECORDS)
            yield url


@pytest.fixture(scope="module")
def local_ray(s3_capture):
    """One local Ray for the module; kdiag's engine joins it instead of starting its own."""
    from kdiag.replays.ray_engine import local_worker_env

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False, runtime_env={"env_vars": local_worker_env()})
    yield
    ray.shutdown()


def run(*args: str) -> tuple[int, dict]:
    r = CliRunner().invoke(cli, [*args, "--format", "json"])
    assert r.exit_code in (0, 1), r.output
    return r.exit_code, json.loads(r.stdout)


def test_capture_on_ray_matches_in_process_record_by_record(s3_capture, local_ray, tmp_path):
    common = ["replay", "--capture", "s3://capture/cap/ep", "--model", CUSTOM,
              "--endpoint-url", s3_capture, "--since", gen.SINCE, "--until", gen.UNTIL,
              "--atol", "1e-4"]
    code_in, doc_in = run(*common, "--out", str(tmp_path / "in"))
    code_ray, doc_ray = run(*common, "--engine", "ray", "--workers", "2",
                            "--out", str(tmp_path / "ray"))

    # The summary: the same records, counts, verdicts, codes and output differences.
    assert code_in == code_ray == 1
    assert doc_ray["engine"] == "ray" and doc_ray["unreadable_files"] == []
    same = [k for k in doc_in if k != "out"]  # each run names its own output folder
    assert {k: doc_ray[k] for k in same} == {k: doc_in[k] for k in same}
    assert doc_in["rejected"] and doc_in["findings"]  # the comparison is not vacuous

    rows_in = pq.read_table(tmp_path / "in").to_pylist()
    rows_ray = pq.read_table(tmp_path / "ray").to_pylist()
    assert rows_ray == rows_in  # record by record, in file + line order
    assert [(r["source"], r["line"]) for r in rows_ray] == sorted(
        (r["source"], r["line"]) for r in rows_ray)

    # And both are right about the generated troubles.
    ids = {r["id"]: r for r in rows_ray}
    kept = [i for i in range(RECORDS) if not (gen.truncated(i) or gen.not_capture(i))]
    late = {i for i in kept if gen.late(i) and i % 10 >= 8}  # in the last hour's folder
    assert set(ids) == {f"req-{i}" for i in kept if i not in late}
    assert doc_ray["records"] == len(ids)
    for i in kept:
        if i in late:
            continue
        row = ids[f"req-{i}"]
        if gen.bad_base64(i):
            assert row["verdict"] == "error" and "no replayable endpointInput" in row["local_error"]
        elif gen.rejected(i):
            assert row["verdict"] == "error" and row["local_status"] == 400
        elif gen.no_output(i):
            assert row["verdict"] == "error" and "no endpointOutput" in row["captured_error"]
        elif gen.differs(i):
            assert row["verdict"] == "differ" and row["mismatches"] == "value"
        else:
            assert row["verdict"] == "agree", row
    assert doc_ray["rejected_locally"] == sum(1 for i in kept if gen.rejected(i)
                                              and not gen.bad_base64(i) and i not in late)


def test_folder_validate_and_replay_on_ray_match_in_process(local_ray, tmp_path):
    """The replay runs the container's Python path (--code) whose answer to one payload makes
    the local replay crash: that payload is KD880 on both engines, the others unaffected."""
    bodies = tmp_path / "bodies"
    bodies.mkdir()
    for i in range(40):
        row = ["x", 2, 3, 4, 5] if i % 9 == 0 else gen.CRASH_X if i == 20 else [i, 2.5, 3, 4, 5]
        (bodies / f"b{i:02d}.json").write_text(json.dumps({"instances": [row]}))
    gen.write_crashing_code(tmp_path / "code")
    for cmd, rejected in ((["validate", str(bodies), "--signature", CUSTOM], 5),
                          (["replay", str(bodies), "--model", CUSTOM, "--code",
                            str(tmp_path / "code")], 6)):
        code_in, doc_in = run(*cmd)
        code_ray, doc_ray = run(*cmd, "--engine", "ray")
        assert (code_ray, doc_ray) == (code_in, doc_in) and code_in == 1
        assert doc_in["rejected"] == rejected
    crash = doc_ray["results"][20]
    assert [f["code"] for f in crash["findings"]] == ["KD880"] and crash["status"] == 500
    assert "UnicodeEncodeError" in crash["error"]


def _comparable(doc: dict) -> dict:
    """A capture replay's summary without what names the run (its engine, output folder) and
    with unreadable files by name only (each engine's reader words the I/O error its way)."""
    doc = {k: v for k, v in doc.items() if k not in ("out", "engine", "parquet_files")}
    doc["unreadable_files"] = [u["file"] for u in doc["unreadable_files"]]
    doc["findings"] = [f if f["code"] != "KD881" else f["message"].split(":")[0]
                       for f in doc["findings"]]
    return doc


def test_capture_faults_and_limit_on_ray_match_in_process(local_ray, tmp_path):
    """--limit 45 over a.jsonl (30 records, one crashing), b.jsonl.gz (unreadable) and c.jsonl:
    both engines replay the same first 45 records, the crash is that record's KD880, the
    unreadable file a KD881 by name, and the job goes on past both."""
    gen.write_faulty_capture(tmp_path / "cap")
    gen.write_crashing_code(tmp_path / "code")
    common = ["replay", "--capture", str(tmp_path / "cap"), "--model", CUSTOM, "--code",
              str(tmp_path / "code"), "--limit", "45"]
    code_in, doc_in = run(*common, "--out", str(tmp_path / "in"))
    code_ray, doc_ray = run(*common, "--engine", "ray", "--out", str(tmp_path / "ray"))

    assert code_in == code_ray == 1
    assert _comparable(doc_ray) == _comparable(doc_in)
    assert doc_in["records"] == 45 and doc_in["read"]["files"] == 3
    assert [u["file"].rsplit("/", 1)[-1] for u in doc_ray["unreadable_files"]] == ["b.jsonl.gz"]
    rows_in = pq.read_table(tmp_path / "in").to_pylist()
    rows_ray = pq.read_table(tmp_path / "ray").to_pylist()
    assert rows_ray == rows_in
    assert [r["id"] for r in rows_ray] == [f"req-{i}" for i in range(45)]
    crash = rows_ray[12]
    assert crash["verdict"] == "error" and crash["local_codes"] == "KD880"
    assert "crashed" in crash["local_error"] and "UnicodeEncodeError" in crash["local_error"]
    assert all(r["verdict"] == "agree" for r in rows_ray if r is not crash)


class ActorKiller(threading.Thread):
    """Watches the process table for a capture replay actor at work (Ray titles an actor's
    process after the method it runs: ...(_CaptureReplayActor)).submit) and SIGKILLs the
    first one it sees, once; then notes every replay actor process that runs after it."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.killed: int | None = None
        self.after: set[int] = set()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for pid, title in _ray_titles():
                if "_CaptureReplayActor" not in title or ".submit" not in title:
                    continue
                if self.killed is None:
                    os.kill(pid, signal.SIGKILL)
                    self.killed = pid
                elif pid != self.killed:
                    self.after.add(pid)
            time.sleep(0.02)


def _ray_titles():
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as fh:
                    title = fh.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if title.startswith("ray::"):
                yield int(name), title


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds Ray's actor processes in /proc")
def test_a_replay_actor_killed_mid_job_is_restarted_and_the_results_are_the_same(
        s3_capture, local_ray, tmp_path):
    """SIGKILL the replay actor while it replays a batch: Ray restarts it and retries the
    batch, and the job gives the in-process results record by record."""
    common = ["replay", "--capture", "s3://capture/cap/ep", "--model", CUSTOM,
              "--endpoint-url", s3_capture, "--since", gen.SINCE,
              "--until", "2024-05-01T11:00:00Z", "--atol", "1e-4"]
    code_in, doc_in = run(*common, "--out", str(tmp_path / "in"))
    killer = ActorKiller()
    killer.start()
    try:
        code_ray, doc_ray = run(*common, "--engine", "ray", "--out", str(tmp_path / "ray"))
    finally:
        killer.done.set()
        killer.join()
    assert killer.killed is not None, "never saw a replay actor at work"
    assert killer.after, "no replay actor ran after the kill"
    assert code_ray == code_in
    assert _comparable(doc_ray) == _comparable(doc_in) and doc_in["records"] > 1500
    assert pq.read_table(tmp_path / "ray").to_pylist() == pq.read_table(tmp_path / "in").to_pylist()
