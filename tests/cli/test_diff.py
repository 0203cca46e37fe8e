"""`kdiag diff A B` through click's CliRunner (and kdiag.cli.main for exit codes)."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

from kdiag.cli import cli, main
from kdiag.replays.outputs import result_line
from tests._moto import moto_s3, s3_client
from tests.test_capture import capture_line, write_capture_tree


def run(*args: str) -> tuple[int, str, str]:
    """Through kdiag.cli.main, so KdiagError becomes exit 2 as for a user."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as e:
            code = e.code or 0
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def sets(tmp_path):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((50, 4)).astype(np.float32)
    b = a.copy()
    b[7, 3] += 0.01
    ids = np.array([f"r{i}" for i in range(50)])
    np.savez(tmp_path / "a.npz", probs=a, __ids__=ids)
    np.savez(tmp_path / "b.npz", probs=b, __ids__=ids)
    np.savez(tmp_path / "same.npz", probs=a, __ids__=ids)
    return tmp_path


def test_help_teaches_every_input_kind_and_the_json_keys():
    res = CliRunner().invoke(cli, ["diff", "--help"])
    assert res.exit_code == 0
    for needle in ('{"predictions"', '{"outputs"', ".npy", ".npz", "__ids__", "results.jsonl",
                   "Data Capture", "s3://", "--endpoint-url", "--shard", "quantile:0.99",
                   "JSON keys: passed", "mismatches[]", "atol logits=1e-3"):
        assert needle in res.output, needle


def test_identical_sets_exit_0(sets):
    code, out, _ = run("diff", str(sets / "a.npz"), str(sets / "same.npz"))
    assert code == 0 and "PASS" in out


def test_a_value_beyond_tolerance_exits_1_and_names_the_record(sets):
    code, out, _ = run("diff", str(sets / "a.npz"), str(sets / "b.npz"))
    assert code == 1
    assert "KD701" in out and "r7" in out and "Histogram" in out and "█" in out


def test_override_by_output_name_makes_it_pass(sets):
    code, _, _ = run("diff", str(sets / "a.npz"), str(sets / "b.npz"), "--atol", "probs:0.02")
    assert code == 0


def test_fail_on_warning_fails_on_a_dtype_warning(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((3, 2), dtype=np.float32))
    np.save(tmp_path / "b.npy", np.zeros((3, 2), dtype=np.float64))
    args = ("diff", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"))
    assert run(*args)[0] == 0
    assert run(*args, "--fail-on", "warning")[0] == 1


def test_json_output_has_the_documented_keys(sets):
    code, out, _ = run("diff", str(sets / "a.npz"), str(sets / "b.npz"), "--format", "json",
                       "--stat", "quantile:0.9", "--rtol", "0")
    doc = json.loads(out)
    assert code == 1
    assert set(doc) == {"schema_version", "passed", "fail_on", "a", "b", "aligned_by",
                        "records_aligned", "config",
                        "outputs", "mismatches", "findings"}
    assert doc["config"]["stat"] == "quantile" and doc["config"]["quantile"] == 0.9
    o = doc["outputs"][0]
    assert set(o) >= {"name", "dtype_a", "shape_a", "compared", "failed", "abs", "rel",
                      "required", "worst", "histogram"}
    assert doc["passed"] is False and doc["a"]["kind"] == "npz"


def test_endpoint_response_against_npz_by_order(tmp_path):
    a = np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32)
    np.save(tmp_path / "local.npy", a)
    (tmp_path / "endpoint.json").write_text(json.dumps({"predictions": a.tolist()}))
    code, out, _ = run("diff", str(tmp_path / "local.npy"), str(tmp_path / "endpoint.json"))
    assert code == 0, out


def test_count_mismatch_is_a_finding(tmp_path):
    (tmp_path / "a.json").write_text('{"predictions": [1.0, 2.0, 3.0]}')
    (tmp_path / "b.json").write_text('{"predictions": [1.0, 2.0]}')
    code, out, _ = run("diff", str(tmp_path / "a.json"), str(tmp_path / "b.json"))
    assert code == 1 and "KD706" in out


def test_capture_against_replay_results_by_id(tmp_path):
    cap = tmp_path / "capture"
    write_capture_tree(cap, [(1, 13), (1, 14)])
    with (tmp_path / "replay.jsonl").open("wb") as fh:
        for i in range(12):
            out = np.array([[i, i + 0.5 + (0.1 if i == 5 else 0)]], dtype=np.float64)
            fh.write(result_line(f"ev-{i:06d}", {"predictions": out}))
    code, out, _ = run("diff", str(cap), str(tmp_path / "replay.jsonl"), "--format", "json")
    doc = json.loads(out)
    assert code == 1 and doc["aligned_by"] == "id" and doc["records_aligned"] == 12
    assert [(m["kind"], m["first_ids"]) for m in doc["mismatches"]] == [("value", ["ev-000005"])]


def test_sharded_capture_is_a_subset_and_missing_ids_are_not_findings(tmp_path):
    cap = tmp_path / "capture"
    write_capture_tree(cap, [(1, h) for h in range(6)])
    with (tmp_path / "replay.jsonl").open("wb") as fh:
        for i in range(36):
            fh.write(result_line(f"ev-{i:06d}", {"predictions": np.array([[i, i + 0.5]])}))
    code, out, _ = run("diff", str(cap), str(tmp_path / "replay.jsonl"), "--shard", "1/2",
                       "--format", "json")
    doc = json.loads(out)
    assert code == 0, doc["findings"]
    assert 0 < doc["records_aligned"] < 36


def test_s3_capture_through_endpoint_url(tmp_path, monkeypatch):
    cap = tmp_path / "capture"
    write_capture_tree(cap, [(1, 13)])
    with moto_s3(monkeypatch) as url:
        c = s3_client(url)
        c.create_bucket(Bucket="caps")
        for f in sorted(cap.rglob("*.jsonl")):
            c.put_object(Bucket="caps", Key=f"dc/{f.relative_to(cap).as_posix()}",
                         Body=f.read_bytes())
        code, out, err = run("diff", "s3://caps/dc/my-endpoint/AllTraffic", str(cap),
                             "--endpoint-url", url, "--since", "2024-05-01T13:00",
                             "--until", "2024-05-01T14:00")
    assert code == 0, out + err
    assert "6 record pairs, aligned by id" in out


def test_truncated_capture_line_warns_but_compares(tmp_path):
    lines = [capture_line(i) for i in range(3)]
    (tmp_path / "a.jsonl").write_text("\n".join(lines) + "\n" + lines[0][:40])
    (tmp_path / "b.jsonl").write_text("\n".join(lines) + "\n")
    code, out, _ = run("diff", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"))
    assert code == 0 and "KD715" in out


@pytest.mark.parametrize("args,needle", [
    (("missing.npz", "b.npz"), "no such file"),
    (("bad.npz", "b.npz"), "cannot load as .npz"),
    (("b.npz", "b.npz", "--stat", "p99"), "--stat"),
    (("b.npz", "b.npz", "--atol", "x=abc"), "OUTPUT=X"),
    (("b.npz", "b.npz", "--shard", "0/2"), "numbered from 1"),
    (("b.npz", "b.npz", "--since", "yesterday"), "ISO-8601"),
    (("err.json", "b.npz"), "TF Serving error response"),
])
def test_unreadable_inputs_and_bad_options_exit_2_with_one_paragraph(sets, monkeypatch, args,
                                                                     needle):
    (sets / "bad.npz").write_bytes(b"not a zip")
    (sets / "err.json").write_text('{"error": "Servable not found for request"}')
    monkeypatch.chdir(sets)
    code, out, err = run("diff", *args)
    assert code == 2
    assert needle in err and "Traceback" not in err
