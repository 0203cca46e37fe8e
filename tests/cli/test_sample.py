"""`kdiag sample` end to end: the body on stdout, notes on stderr, JSON output, --out, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from kdiag.cli import cli, main
from tests.conftest import MODELS


@pytest.fixture
def sig_file(tmp_path):
    def write(inputs: dict, name: str = "serving_default"):
        path = tmp_path / f"sig_{len(list(tmp_path.iterdir()))}.json"
        path.write_text(json.dumps({"signature_name": name, "inputs": {
            k: {"dtype": d, "shape": s} for k, (d, s) in inputs.items()}, "outputs": {}}))
        return path
    return write


def run(*args):
    return CliRunner().invoke(cli, ["sample", *map(str, args)], catch_exceptions=False)


def run_main(capsys, *args):
    """Through kdiag.cli.main, which turns KdiagError into exit code 2 and one paragraph."""
    with pytest.raises(SystemExit) as e:
        main(["sample", *map(str, args)])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_text_output_is_only_the_body_so_it_can_be_redirected(sig_file):
    r = run("--signature", sig_file({"x": ("float32", [-1, 3])}), "--batch", "2")
    assert r.exit_code == 0
    assert r.stdout.endswith("}\n") and r.stderr == ""
    doc = json.loads(r.stdout)
    assert [len(i) for i in doc["instances"]] == [3, 3]


def test_notes_go_to_stderr(sig_file):
    r = run("--signature", sig_file({"x": ("float32", [-1, -1])}))
    assert r.exit_code == 0
    assert [len(i) for i in json.loads(r.stdout)["instances"]] == [1]
    assert r.stderr.startswith("note: input 'x' has unknown size on axis 1")


def test_json_format_gives_content_type_body_and_notes(sig_file):
    r = run("--signature", sig_file({"x": ("float32", [])}), "--format", "json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert set(doc) == {"schema_version", "content_type", "body", "notes"}
    assert doc["content_type"] == "application/json"
    assert json.loads(doc["body"])["inputs"] >= 0
    assert any("columnar" in n for n in doc["notes"])


def test_same_seed_same_output_other_seed_other_output(sig_file):
    s = sig_file({"x": ("float64", [-1, 4])})
    a, b = run("--signature", s, "--seed", "3"), run("--signature", s, "--seed", "3")
    c = run("--signature", s, "--seed", "4")
    assert a.stdout == b.stdout != c.stdout


def test_ranges_dims_and_batch_shape_the_instances(sig_file):
    s = sig_file({"img": ("int32", [-1, -1, -1, 3]), "scale": ("float32", [-1])})
    r = run("--signature", s, "--batch", "3", "--dim", "img:1=4", "--dim", "img:2=2",
            "--range", "img:250,256", "--range", "scale:-2,-1")
    assert r.exit_code == 0, r.output
    items = json.loads(r.stdout)["instances"]
    assert len(items) == 3
    for item in items:
        assert len(item["img"]) == 4 and all(len(row) == 2 for row in item["img"])
        assert all(250 <= v < 256 for row in item["img"] for px in row for v in px)
        assert -2 <= item["scale"] < -1


def test_csv_content_type_writes_rows(sig_file):
    r = run("--signature", sig_file({"x": ("int64", [-1, 3])}), "--content-type", "csv",
            "--batch", "2")
    assert r.exit_code == 0
    rows = r.stdout.splitlines()
    assert len(rows) == 2 and all(len(row.split(",")) == 3 for row in rows)
    assert all(v.isdigit() for row in rows for v in row.split(","))


def test_jsonlines_content_type_writes_one_instance_per_line(sig_file):
    s = sig_file({"a": ("float32", [-1, 2]), "b": ("bool", [-1])})
    r = run("--signature", s, "--content-type", "application/jsonlines", "--batch", "3")
    assert r.exit_code == 0
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(lines) == 3 and all(set(line) == {"a", "b"} for line in lines)


def test_columnar_flag(sig_file):
    r = run("--signature", sig_file({"x": ("float32", [-1, 2])}), "--columnar", "--batch", "2")
    assert [len(row) for row in json.loads(r.stdout)["inputs"]] == [2, 2]


def test_signature_name_picks_the_signature_and_is_written_into_the_body(tmp_path):
    doc = {"signatures": [
        {"signature_name": "serving_default", "inputs": {"x": {"dtype": "float32", "shape": [-1, 2]}}},
        {"signature_name": "logits", "inputs": {"y": {"dtype": "int32", "shape": [-1, 3]}}},
    ]}
    path = tmp_path / "sigs.json"
    path.write_text(json.dumps(doc))
    body = json.loads(run("--signature", path, "--signature-name", "logits").stdout)
    assert body["signature_name"] == "logits"
    assert len(body["instances"][0]) == 3


def test_image_size_option_sizes_the_png(sig_file):
    import base64
    import struct

    r = run("--signature", sig_file({"image_bytes": ("string", [-1])}), "--image-size", "6x9")
    png = base64.b64decode(json.loads(r.stdout)["instances"][0]["b64"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (9, 6)  # IHDR holds width, then height


def test_out_writes_the_body_atomically_and_replaces_an_old_file(sig_file, tmp_path):
    s = sig_file({"x": ("float32", [-1, 2])})
    out = tmp_path / "payload.json"
    out.write_text("old")
    r = run("--signature", s, "--out", out)
    assert r.exit_code == 0
    assert r.stdout == ""
    assert "wrote" in r.stderr and str(out) in r.stderr
    assert json.loads(out.read_text()) == json.loads(run("--signature", s).stdout)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_out_with_json_format_still_writes_the_body_to_the_file(sig_file, tmp_path):
    out = tmp_path / "rows.csv"
    r = run("--signature", sig_file({"x": ("float32", [-1, 2])}), "--content-type", "csv",
            "--out", out, "--format", "json")
    doc = json.loads(r.stdout)
    assert out.read_text() == doc["body"] and doc["content_type"] == "text/csv"


def test_a_model_path_works_as_signature():
    r = run("--signature", MODELS / "two_inputs/1", "--batch", "2")
    assert r.exit_code == 0
    items = json.loads(r.stdout)["instances"]
    assert [sorted(i) for i in items] == [["features", "ids"]] * 2


@pytest.mark.parametrize("args, message", [
    (["--content-type", "csv"], "text/csv cannot carry"),
    (["--content-type", "application/x-npy"], "415"),
    (["--range", "nope:0,1"], "does not have"),
    (["--range", "x:1"], "Bad --range"),
    (["--dim", "x=3"], "Bad --dim"),
    (["--dim", "x:1=3"], "fixed at 2"),
    (["--batch", "0"], "--batch must be at least 1"),
    (["--signature-name", "nope"], "No signature named 'nope'"),
])
def test_bad_input_ends_in_one_paragraph_and_exit_code_2(capsys, sig_file, args, message):
    s = sig_file({"x": ("float32", [-1, 2]), "y": ("float32", [-1, 2])})
    code, out, err = run_main(capsys, "--signature", s, *args)
    assert code == 2
    assert out == ""
    assert err.startswith("kdiag: ") and message in err and "Traceback" not in err


def test_out_into_a_missing_folder_is_a_usage_error(capsys, sig_file, tmp_path):
    code, _, err = run_main(capsys, "--signature", sig_file({"x": ("float32", [-1])}),
                            "--out", tmp_path / "no" / "p.json")
    assert code == 2 and "does not exist" in err


def test_help_teaches_with_examples():
    r = CliRunner().invoke(cli, ["sample", "--help"])
    assert r.exit_code == 0
    assert "kdiag sample --signature export/1 > payload.json" in r.stdout
    assert "--content-type csv" in r.stdout and "--dim" in r.stdout


def test_stdout_redirect_gives_a_file_json_can_read(tmp_path, sig_file):
    s = sig_file({"x": ("float32", [-1, 3])})
    out = tmp_path / "p.json"
    with out.open("w") as f:
        p = subprocess.run([sys.executable, "-m", "kdiag", "sample", "--signature", str(s)],
                           stdout=f, stderr=subprocess.PIPE, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert len(json.loads(out.read_text())["instances"][0]) == 3
