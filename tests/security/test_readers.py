"""Model readers never crash and never hang: a symlinked saved_model.pb (in an archive or a
folder, including one leading to a FIFO), wrong protobuf wire types, oversized .keras JSON and a
149-byte graph declaring [-1, 100000, 100000] each end in one clear message or a finding."""

from __future__ import annotations

import gzip
import json
import os
import zipfile

import pytest

from tests.conftest import MODELS
from tests.security._hostile import field, run_kdiag, saved_model_pb, tar_end, tar_member


def test_a_symlinked_saved_model_pb_in_an_archive_is_a_finding(tmp_path):
    pb = (MODELS / "scalar" / "1" / "saved_model.pb").read_bytes()
    raw = tar_member("real/saved_model.pb", pb) + \
        tar_member("1/saved_model.pb", typ=b"2", linkname="../real/saved_model.pb")
    arc = tmp_path / "model.tar.gz"
    arc.write_bytes(gzip.compress(raw + tar_end()))
    res = run_kdiag(["inspect", str(arc), "--format", "json"], tmp_path)
    assert res.code == 1 and "Traceback" not in res.stderr
    codes = {f["code"] for f in json.loads(res.stdout)["findings"]}
    assert {"KD050", "KD001"} <= codes


def test_a_saved_model_pb_leading_to_a_fifo_does_not_hang(tmp_path):
    model = tmp_path / "m" / "1"
    model.mkdir(parents=True)
    os.mkfifo(tmp_path / "fifo")
    (model / "saved_model.pb").symlink_to(tmp_path / "fifo")
    res = run_kdiag(["inspect", str(model.parent)], tmp_path, timeout=30)
    assert res.code == 2 and "not a regular file" in res.stderr, res.stderr
    assert res.seconds < 5
    res = run_kdiag(["inspect", str(model)], tmp_path, timeout=30)  # not a SavedModel folder
    assert res.code == 1 and "Traceback" not in res.stderr and res.seconds < 5


@pytest.mark.parametrize("data", [
    field(2, field(1, field(4, 7))),  # tags given as a number
    field(2, field(5, field(1, "s") + field(2, field(1, field(1, "x") + field(2, field(2, "oops")))))),
    field(2, field(5, field(1, "s") + field(2, field(1, field(2, field(3, field(2, field(1, "n")))))))),
    field(2, field(2, field(1, field(2, 5)))),  # a graph node whose op is a number
    b"\x12\x05\x0a\x03\x22\x01",  # truncated
    b"\x13\x00",  # a group start (wire type 3)
], ids=["tag-number", "dtype-bytes", "dim-bytes", "op-number", "truncated", "group"])
def test_wrong_wire_types_are_a_clear_message(tmp_path, data):
    model = tmp_path / "1"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(data)
    res = run_kdiag(["inspect", str(model)], tmp_path)
    assert "Traceback" not in res.stderr
    assert res.code == 2 and "not a readable SavedModel" in res.stderr or res.code in (0, 1), \
        res.stderr


def test_a_149_byte_graph_with_a_huge_shape_is_too_large_to_sample(tmp_path):
    model = tmp_path / "1"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(saved_model_pb([-1, 100_000, 100_000]))
    assert (model / "saved_model.pb").stat().st_size < 149
    res = run_kdiag(["inspect", str(model), "--format", "json"], tmp_path, timeout=60)
    assert res.code == 0, res.stderr
    kd026 = [f for f in json.loads(res.stdout)["findings"] if f["code"] == "KD026"]
    assert "too large to sample" in kd026[0]["message"].lower()
    assert "10,000,000,000 values" in kd026[0]["message"]
    assert res.seconds < 5 and res.peak_mib < 250
    res = run_kdiag(["sample", "--signature", str(model)], tmp_path, timeout=60)
    assert res.code == 2 and "sample-elements cap" in res.stderr and res.peak_mib < 250
    res = run_kdiag(["check", str(model), "--no-config", "--no-replay"], tmp_path, timeout=60)
    assert res.code in (0, 1) and "Traceback" not in res.stderr and res.seconds < 10


def test_a_keras_file_with_a_huge_config_is_capped(tmp_path):
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", json.dumps({"class_name": "Functional"}) + " " * (80 << 20))
        zf.writestr("metadata.json", "{}")
    res = run_kdiag(["inspect", str(path)], tmp_path)
    assert res.code == 2 and "keras-config-bytes cap (64 MiB)" in res.stderr
    assert res.peak_mib < 250
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", json.dumps({"class_name": "Functional"}))
        zf.writestr("metadata.json", "[" * 100_000)
    res = run_kdiag(["inspect", str(path)], tmp_path)
    assert res.code == 2 and "Traceback" not in res.stderr
