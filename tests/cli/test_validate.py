"""`kdiag validate` end to end through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from kdiag.cli import cli
from tests.conftest import ARCHIVES, MODELS

SIG = str(MODELS / "custom/export/1")


def run(*args, input=None):
    return CliRunner().invoke(cli, ["validate", *map(str, args)], input=input)


def test_accepted_payload_exits_0_and_shows_the_stage_table(tmp_path):
    p = tmp_path / "body.json"
    p.write_text("[1,2,3,4,5]")
    r = run(p, "--signature", SIG)
    assert r.exit_code == 0, r.output
    for stage in ("wire", "container", "tfs-parse", "signature", "runtime"):
        assert stage in r.output
    assert "accepted" in r.output and '{"instances":[[1,2,3,4,5]]}' in r.output


def test_rejected_payload_exits_1_with_cause_and_fix_in_json():
    r = run("-", "--signature", SIG, "--format", "json",
            input='{"instances": [["1","2","3","4","5"]]}')
    assert r.exit_code == 1
    doc = json.loads(r.output)
    assert doc["accepted"] is False and doc["status"] == 400 and doc["stage"] == "tfs-parse"
    assert doc["findings"][0]["code"] == "KD301"
    assert json.loads(doc["fixed_payload"]["body"]) == {"instances": [[1.0, 2.0, 3.0, 4.0, 5.0]]}


def test_signature_json_file_works_like_the_model(tmp_path):
    sig = tmp_path / "sig.json"
    inspect = CliRunner().invoke(cli, ["inspect", SIG, "--format", "json"])
    sig.write_text(inspect.output)
    r = run("-", "--signature", sig, "--format", "json", input="[[1,2,3]]")
    assert r.exit_code == 1 and json.loads(r.output)["stage"] == "signature"


def test_archive_with_inference_py_warns_that_handlers_were_not_run():
    r = run("-", "--signature", ARCHIVES / "good.tar.gz", "--format", "json",
            input="[1,2,3,4,5]")
    doc = json.loads(r.output)
    assert any(f["code"] == "KD230" for f in doc["findings"])


def test_code_option_runs_the_handlers(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "inference.py").write_text(
        "import json\n"
        "def input_handler(data, context):\n"
        "    rows = [[float(x) for x in line.split(',')] for line in data.read().decode().splitlines()]\n"
        "    return json.dumps({'instances': rows})\n"
        "def output_handler(response, context):\n"
        "    return response.content, context.accept_header\n")
    r = run("-", "--signature", SIG, "--code", code, "--content-type", "text/csv",
            "--format", "json", input="1,2,3,4,5\n")
    doc = json.loads(r.output)
    assert doc["accepted"] and doc["tensors"]["args_0"]["shape"] == [1, 5]
    assert doc["tfs_request"] == '{"instances": [[1.0, 2.0, 3.0, 4.0, 5.0]]}'


def test_directory_of_payloads_reports_each(tmp_path):
    (tmp_path / "a.json").write_text("[1,2,3,4,5]")
    (tmp_path / "b.json").write_text('{"instances": [["x"]]}')
    (tmp_path / "c.csv").write_text("1,2,3,4,5\n")
    r = run(tmp_path, "--signature", SIG, "--format", "json")
    doc = json.loads(r.output)
    assert r.exit_code == 1
    assert [x["payload"] for x in doc["results"]] == ["a.json", "b.json", "c.csv"]
    assert [x["accepted"] for x in doc["results"]] == [True, False, True]
    assert doc["accepted"] == 2 and doc["rejected"] == 1


def test_each_line_validates_every_line(tmp_path):
    p = tmp_path / "bodies.jsonl"
    p.write_text("[1,2,3,4,5]\n[[1,2]]\n")
    r = run(p, "--each-line", "--signature", SIG)
    assert r.exit_code == 1
    # The summary and the rejected payloads; -v lists the accepted ones too.
    assert "2 payloads: 1 accepted, 1 rejected" in r.output
    assert "line 2" in r.output and "line 1" not in r.output
    r = run(p, "--each-line", "--signature", SIG, "-v")
    assert "line 1" in r.output and "line 2" in r.output


def test_missing_payload_exits_2():
    p = subprocess.run([sys.executable, "-m", "kdiag", "validate", "/no/such.json",
                        "--signature", SIG], capture_output=True, text=True)
    assert p.returncode == 2 and "does not exist" in p.stderr and "Traceback" not in p.stderr


def test_bad_framework_version_exits_2():
    r = run("-", "--signature", SIG, "--framework-version", "banana", input="[1]")
    assert r.exit_code == 2


def test_validate_never_imports_tensorflow():
    code = ("import sys, io; sys.stdin = io.TextIOWrapper(io.BytesIO(b'[1,2,3,4,5]'))\n"
            "from kdiag.cli import main\n"
            "try:\n    main(['validate', '-', '--signature', sys.argv[1]])\n"
            "except SystemExit:\n    pass\n"
            "assert 'tensorflow' not in sys.modules, 'tf imported'\n")
    p = subprocess.run([sys.executable, "-c", code, SIG], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_415_from_an_archive_with_misplaced_code_names_the_artifact_as_cause(tmp_path):
    png = tmp_path / "digit.png"
    png.write_bytes((MODELS.parent / "data" / "digit.png").read_bytes())
    r = run(png, "--signature", ARCHIVES / "code_in_version.tar.gz", "--content-type",
            "application/x-image", "--format", "json")
    doc = json.loads(r.output)
    assert r.exit_code == 1 and doc["status"] == 415
    assert doc["findings"][0]["code"] == "KD231"
    assert "1/code/inference.py" in doc["findings"][0]["message"]


def test_a_folder_is_validated_recursively_skipping_hidden_entries(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "deep").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "top.json").write_text("[1,2,3,4,5]")
    (tmp_path / "a" / "deep" / "nested.json").write_text('{"instances": [["1", "2"]]}')
    (tmp_path / ".git" / "HEAD.json").write_text("not a payload")
    (tmp_path / "a" / ".hidden.json").write_text("not a payload")
    r = run(tmp_path, "--signature", SIG, "--format", "json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.output)
    assert [x["payload"] for x in doc["results"]] == ["a/deep/nested.json", "top.json"]
    assert (doc["accepted"], doc["rejected"]) == (1, 1)
