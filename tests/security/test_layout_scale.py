"""Layout analysis is linear in members: 10,000 model folders in one archive in under 2 s."""

from __future__ import annotations

import gzip
import json
import time

from kdiag.model.layout import analyse
from tests.conftest import MODELS
from tests.security._hostile import run_kdiag, tar_end, tar_member


def test_ten_thousand_model_folders_are_analysed_in_under_2_s():
    files = [f"m{i}/{v}/saved_model.pb" for i in range(10_000) for v in (1, 2)]
    files += [f"m{i}/{v}/variables/variables.index" for i in range(10_000) for v in (1, 2)]
    t0 = time.process_time()  # CPU time: the bound holds on a loaded shared machine too
    lay = analyse(files)
    assert time.process_time() - t0 < 2
    assert len(lay.models) == 10_000
    assert lay.models[0].versions == ["1", "2"]


def test_ten_thousand_model_folders_in_an_archive_end_to_end(tmp_path):
    pb = (MODELS / "scalar" / "1" / "saved_model.pb").read_bytes()
    raw = b"".join(tar_member(f"m{i:05d}/1/saved_model.pb", pb if i == 0 else b"x")
                   for i in range(10_000))
    arc = tmp_path / "model.tar.gz"
    arc.write_bytes(gzip.compress(raw + tar_end()))
    res = run_kdiag(["inspect", str(arc), "--format", "json"], tmp_path)
    assert res.code == 0, res.stderr  # KD004 (several models, no default) is a warning
    doc = json.loads(res.stdout)
    assert "KD004" in {f["code"] for f in doc["findings"]}
    assert res.seconds < 10, res.seconds
