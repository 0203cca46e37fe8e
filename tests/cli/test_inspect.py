"""`kdiag inspect` end to end: printed signatures, JSON, findings and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from kdiag.cli import cli
from kdiag.model.signature import signatures_from_json
from tests.conftest import ARCHIVES, FIXTURES, MODELS


def run(*args):
    return CliRunner().invoke(cli, ["inspect", *map(str, args)], catch_exceptions=False)


def run_json(*args):
    r = run(*args, "--format", "json")
    return r, json.loads(r.output)


def test_savedmodel_signature_is_printed_with_dtype_shape_and_default_mark():
    r = run(MODELS / "custom/export/1")
    assert r.exit_code == 0
    assert "serving_default  (default)" in r.output
    assert "args_0" in r.output and "float32" in r.output and "(?, 5)" in r.output
    assert "output_0" in r.output
    assert "invoke_endpoint" in r.output


def test_json_output_is_the_portable_signature_format(expected_signatures):
    r, doc = run_json(MODELS / "two_inputs/1")
    assert r.exit_code == 0
    sigs = {s.name: s.to_json() for s in signatures_from_json(doc)}
    want = {s["signature_name"]: s for s in expected_signatures["two_inputs/1"]["signatures"]}
    assert sigs == want
    default = [s for s in doc["signatures"] if s["default"]]
    assert [s["signature_name"] for s in default] == ["serving_default"]
    assert doc["signatures"][0]["inputs"]["ids"] == {"dtype": "int64", "shape": [-1, 1],
                                                     "batch_dim": True, "b64": False}


def test_example_request_is_a_valid_row_format_request_for_serving_default():
    _, doc = run_json(MODELS / "two_inputs/1")
    req = json.loads(doc["example_request"])
    assert list(req) == ["instances"]
    (inst,) = req["instances"]
    assert sorted(inst) == ["features", "ids"]
    assert len(inst["features"]) == 5 and all(isinstance(v, int) for v in inst["ids"])
    assert "invoke_endpoint" in doc["boto3"] and "application/json" in doc["boto3"]


def test_string_input_is_marked_as_needing_b64():
    _, doc = run_json(MODELS / "image_bytes/1")
    assert doc["signatures"][0]["inputs"]["image_bytes"]["b64"] is True
    assert any(f["code"] == "KD023" for f in doc["findings"])
    assert '"b64"' in doc["example_request"]


def test_several_signatures_are_all_listed():
    _, doc = run_json(MODELS / "multi_sig/1")
    assert [s["signature_name"] for s in doc["signatures"]] == ["serving_default", "logits"]


def test_version_parent_serves_the_highest_version_under_the_folder_name():
    r, doc = run_json(MODELS / "versions/my_model")
    assert r.exit_code == 0
    assert doc["model_name"] == "my_model" and doc["version"] == 2
    assert doc["layout"]["models"][0]["versions"] == [1, 2]


def test_good_archive_is_clean_and_names_the_model_model():
    r, doc = run_json(ARCHIVES / "good.tar.gz")
    assert r.exit_code == 0
    assert doc["model_name"] == "model" and doc["version"] == 1
    assert doc["layout"]["inference_py"] == "code/inference.py"
    assert not [f for f in doc["findings"] if f["severity"] == "error"]


@pytest.mark.parametrize("archive,code", [
    ("no_version.tar.gz", "KD001"),
    ("code_in_version.tar.gz", "KD002"),
    ("wrapped.tar.gz", "KD002"),
    ("keras_only.tar.gz", "KD003"),
])
def test_broken_archives_exit_1_with_the_layout_finding(archive, code):
    r, doc = run_json(ARCHIVES / archive)
    assert r.exit_code == 1
    assert code in [f["code"] for f in doc["findings"] if f["severity"] == "error"]


def test_two_models_without_default_warn_but_do_not_fail():
    r, doc = run_json(ARCHIVES / "two_models.tar.gz")
    assert r.exit_code == 0
    assert "KD004" in [f["code"] for f in doc["findings"]]
    r2 = run(ARCHIVES / "two_models.tar.gz", "--fail-on", "warning")
    assert r2.exit_code == 1


def test_keras_file_shows_keras_and_exported_names():
    r, doc = run_json(MODELS / "custom/custom.keras")
    assert r.exit_code == 1  # a .keras file cannot be served as it is
    assert doc["keras"]["class_name"] == "CustomModel" and doc["keras"]["subclassed"]
    assert doc["names"]["export"] == ["args_0"]
    assert doc["names"]["tf_saved_model_save"] == ["inputs"]


def test_custom_objects_predict_override_is_reported_without_running_the_module(tmp_path):
    marker = tmp_path / "ran"
    module = tmp_path / "mod.py"
    module.write_text((FIXTURES / "custom_model.py").read_text()
                      + f"\nopen({str(marker)!r}, 'w').write('ran')\n")
    r, doc = run_json(MODELS / "custom/custom.keras", "--custom-objects", module)
    f = [f for f in doc["findings"] if f["code"] == "KD031"]
    assert f and "predict" in f[0]["message"] and "CustomModel" in f[0]["message"]
    assert not marker.exists()


def test_missing_path_exits_2_with_one_line():
    p = subprocess.run([sys.executable, "-m", "kdiag", "inspect", "/no/such/model"],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert "does not exist" in p.stderr and "Traceback" not in p.stderr


def test_corrupt_saved_model_exits_2_without_traceback(tmp_path):
    d = tmp_path / "1"
    d.mkdir()
    (d / "saved_model.pb").write_bytes((MODELS / "image/1/saved_model.pb").read_bytes()[:300])
    p = subprocess.run([sys.executable, "-m", "kdiag", "inspect", str(d)],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert "corrupt or truncated" in p.stderr and "Traceback" not in p.stderr


def test_truncated_archive_exits_2(tmp_path):
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes((ARCHIVES / "good.tar.gz").read_bytes()[:2000])
    p = subprocess.run([sys.executable, "-m", "kdiag", "inspect", str(bad)],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr


def test_inspect_never_imports_tensorflow():
    code = ("import sys; from kdiag.cli import main\n"
            "try:\n    main(['inspect', sys.argv[1], '--format', 'json'])\n"
            "except SystemExit:\n    pass\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'tf imported'\n")
    p = subprocess.run([sys.executable, "-c", code, str(MODELS / "image/1")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def test_tf_example_signature_is_recognised():
    _, doc = run_json(MODELS / "example_parser/1")
    (f,) = [f for f in doc["findings"] if f["code"] == "KD022"]
    assert "tf.Example" in f["message"] and "b64" in f["fix"]
