"""kdiag replay --capture: captured inputs replayed through the real model, diffed with the
captured outputs (needs TensorFlow)."""

from __future__ import annotations

import base64
import json

import pytest
from click.testing import CliRunner

from kdiag.cli import cli
from tests.conftest import MODELS

pytestmark = pytest.mark.tf
pytest.importorskip("tensorflow")

CUSTOM = str(MODELS / "custom/export/1")


def line(i: int, x: list[float], y: float, *, b64: bool = False) -> str:
    """One capture record as SageMaker writes it; the custom model answers x.[.1..5] + 1."""
    out = json.dumps({"predictions": [[y]]})
    return json.dumps({
        "captureData": {
            "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                              "data": json.dumps({"instances": [x]}), "encoding": "JSON"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                               "data": base64.b64encode(out.encode()).decode() if b64 else out,
                               "encoding": "BASE64" if b64 else "JSON"}},
        "eventMetadata": {"eventId": f"ev-{i}", "inferenceId": f"req-{i}",
                          "inferenceTime": f"2024-05-01T13:{i % 60:02d}:00Z"},
        "eventVersion": "0"})


def expected(x):
    return sum(a * w for a, w in zip(x, [0.1, 0.2, 0.3, 0.4, 0.5], strict=True)) + 1


def write_capture(path, n, *, wrong=()):
    d = path / "ep" / "AllTraffic" / "2024" / "05" / "01" / "13"
    d.mkdir(parents=True)
    lines = []
    for i in range(n):
        x = [float(i % 7), 1.0, 2.0, 0.5, float(i % 3)]
        y = expected(x) + (5.0 if i in wrong else 0.0)
        lines.append(line(i, x, y, b64=i % 2 == 0))
    (d / "00-00-000-abc.jsonl").write_text("\n".join(lines) + "\n")
    return path


def test_capture_that_matches_the_model_is_clean(tmp_path):
    cap = write_capture(tmp_path / "cap", 50)
    r = CliRunner().invoke(cli, ["replay", "--capture", str(cap), "--model", CUSTOM,
                                 "--format", "json", "--atol", "1e-4"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["records"] == 50 and doc["replayed_ok"] == 50
    assert doc["comparison"]["outputs"][0]["failed"] == 0


def test_records_the_endpoint_answered_differently_are_found_by_id(tmp_path):
    cap = write_capture(tmp_path / "cap", 40, wrong={3, 17})
    r = CliRunner().invoke(cli, ["replay", "--capture", str(cap), "--model", CUSTOM,
                                 "--format", "json", "--atol", "1e-4"])
    assert r.exit_code == 1
    doc = json.loads(r.output)
    out = doc["comparison"]["outputs"][0]
    assert out["failed"] == 2
    assert {w["id"] for w in out["worst"]} >= {"req-3", "req-17"}


def test_limit_and_text_report(tmp_path):
    cap = write_capture(tmp_path / "cap", 30)
    r = CliRunner().invoke(cli, ["replay", "--capture", str(cap), "--model", CUSTOM,
                                 "--limit", "10", "--atol", "1e-4"])
    assert r.exit_code == 0, r.output
    assert "Read 10 capture records from 1 of 1 file(s), 10 non-empty lines." in r.output
    assert "10 records replayed: 10 answered locally, 0 rejected by the local path" in r.output


def test_capture_from_s3_through_a_local_s3(tmp_path, monkeypatch):
    from tests._moto import moto_s3, s3_client

    cap = write_capture(tmp_path / "cap", 12)
    with moto_s3(monkeypatch) as url:
        s3 = s3_client(url)
        s3.create_bucket(Bucket="bucket")
        for f in cap.rglob("*.jsonl"):
            s3.upload_file(str(f), "bucket", "capture/" + f.relative_to(cap).as_posix())
        r = CliRunner().invoke(cli, ["replay", "--capture", "s3://bucket/capture",
                                     "--endpoint-url", url, "--model", CUSTOM, "--format",
                                     "json", "--atol", "1e-4"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["records"] == 12


def test_payload_and_capture_together_is_a_usage_error(tmp_path):
    r = CliRunner().invoke(cli, ["replay", "x.json", "--capture", str(tmp_path), "--model",
                                 CUSTOM])
    assert r.exit_code == 2


def test_out_writes_one_result_line_per_record_that_diff_reads(tmp_path):
    cap = write_capture(tmp_path / "cap", 12, wrong=(4,))
    out = tmp_path / "local.jsonl"
    r = CliRunner().invoke(cli, ["replay", "--capture", str(cap), "--model", CUSTOM,
                                 "--out", str(out), "--atol", "1e-4"])
    assert r.exit_code == 1, r.output
    assert f"wrote 12 result line(s) to {out}" in r.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == [f"req-{i}" for i in range(12)]
    x3 = [3.0, 1.0, 2.0, 0.5, 0.0]
    assert lines[3]["outputs"]["output_0"][0][0] == pytest.approx(expected(x3), rel=1e-5)
    # The file is what kdiag diff compares: the captured outputs against it.
    d = CliRunner().invoke(cli, ["diff", str(cap), str(out), "--atol", "1e-4",
                                 "--format", "json"])
    assert d.exit_code == 1, d.output
    doc = json.loads(d.output)
    assert doc["records_aligned"] == 12 and doc["outputs"][0]["failed"] == 1


def test_truncated_and_invalid_lines_are_counted_and_reported_not_skipped_silently(tmp_path):
    cap = write_capture(tmp_path / "cap", 6)
    f = next(cap.rglob("*.jsonl"))
    good = f.read_text().splitlines()
    # An invalid line in the middle, and a last line cut while being written.
    f.write_text("\n".join(good[:3] + ["{not json"] + good[3:] + [good[0][:40]]) + "\n")
    r = CliRunner().invoke(cli, ["replay", "--capture", str(cap), "--model", CUSTOM,
                                 "--format", "json", "--atol", "1e-4"])
    assert r.exit_code == 0, r.output  # a warning, the records read all agree
    doc = json.loads(r.output)
    assert doc["records"] == 6 and doc["read"]["lines"] == 8
    assert doc["read"]["skipped"] == 2 and doc["read"]["records"] == 6
    assert sum(doc["read"]["skipped_by_reason"].values()) == 2
    (kd715,) = [x for x in doc["findings"] if x["code"] == "KD715"]
    assert kd715["severity"] == "warning" and "2 of 8 capture lines" in kd715["message"]
    t = CliRunner().invoke(cli, ["replay", "--capture", str(cap), "--model", CUSTOM,
                                 "--atol", "1e-4"])
    assert "Read 6 capture records from 1 of 1 file(s), 8 non-empty lines." in t.output
    assert "2 line(s) could not be read and were not replayed" in t.output
    assert "KD715" in t.output


def test_out_is_not_left_half_written_when_the_capture_cannot_be_read(tmp_path):
    bad = tmp_path / "cap"
    bad.mkdir()
    (bad / "x.jsonl").write_text("\n".join(["nonsense"] * 25) + "\n")
    out = tmp_path / "local.jsonl"
    r = CliRunner().invoke(cli, ["replay", "--capture", str(bad), "--model", CUSTOM,
                                 "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_records_rejected_locally_come_with_their_cause_and_a_fix_that_passes(tmp_path):
    from kdiag.diagnosis.validation import ValidateOptions, validate
    from kdiag.model.target import resolve_target
    from kdiag.path.container import Request

    cap = write_capture(tmp_path / "cap", 4)
    f = next(cap.rglob("*.jsonl"))
    rec = json.loads(f.read_text().splitlines()[0])
    rec["captureData"]["endpointInput"]["data"] = json.dumps(
        {"instances": [["1.0", "2.0", "3.0", "4.0", "5.0"]]})
    rec["eventMetadata"]["inferenceId"] = "strings"
    f.write_text(f.read_text() + json.dumps(rec) + "\n")
    r = CliRunner().invoke(cli, ["replay", "--capture", str(cap), "--model", CUSTOM,
                                 "--format", "json", "--atol", "1e-4"])
    doc = json.loads(r.output)
    assert doc["rejected_locally"] == 1
    (rej,) = doc["rejected"]
    assert rej["id"] == "strings" and rej["code"] == "KD301" and rej["status"] == 400
    fixed = rej["fixed_payload"]
    assert fixed is not None
    target = resolve_target(CUSTOM)
    again = validate(Request(fixed["body"].encode(), fixed["content_type"]), target.signatures,
                     ValidateOptions(model_name=target.model_name))
    assert again.accepted
    t = CliRunner().invoke(cli, ["replay", "--capture", str(cap), "--model", CUSTOM])
    assert "Rejected by the local path" in t.output and "send instead" in t.output


def test_a_crashing_record_and_an_unreadable_file_are_findings_and_the_rest_is_replayed(
        tmp_path):
    """In process, as on Ray: the record whose replay raises is that record's KD880, the file
    that cannot be read is a KD881 naming it, and the other records and files are replayed."""
    from tests import _capture_gen as gen

    gen.write_faulty_capture(tmp_path / "cap")
    gen.write_crashing_code(tmp_path / "code")
    r = CliRunner().invoke(cli, ["replay", "--capture", str(tmp_path / "cap"), "--model", CUSTOM,
                                 "--code", str(tmp_path / "code"), "--format", "json"])
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["records"] == 60 and doc["replayed_ok"] == 59 and doc["rejected_locally"] == 1
    assert doc["read"]["files"] == 3
    (crash,) = doc["rejected"]
    assert crash["id"] == "req-12" and crash["code"] == "KD880"
    assert "UnicodeEncodeError" in crash["cause"]
    (bad,) = doc["unreadable_files"]
    assert bad["file"].endswith("b.jsonl.gz")
    (kd881,) = [f for f in doc["findings"] if f["code"] == "KD881"]
    assert "b.jsonl.gz" in kd881["message"]


def test_a_capture_none_of_whose_files_can_be_read_is_a_usage_error(tmp_path):
    hour = tmp_path / "ep/AllTraffic/2024/05/01/10"
    hour.mkdir(parents=True)
    (hour / "a.jsonl.gz").write_bytes(b"not gzip")
    (hour / "b.jsonl").write_text("nonsense\n" * 25)
    r = CliRunner().invoke(cli, ["replay", "--capture", str(tmp_path), "--model", CUSTOM])
    assert r.exit_code == 2
    assert "None of the 2 capture files could be read" in r.output
    assert "Traceback" not in r.output
