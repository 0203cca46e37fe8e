"""An oversized request is judged from its size: the platform never delivers it."""

from __future__ import annotations

import json

from tests.conftest import MODELS
from tests.security._run import assert_no_traceback, run

SIG = str(MODELS / "tokens" / "1")


def test_a_57_mb_request_is_refused_from_its_size_without_reading_it(tmp_path):
    body = tmp_path / "big.json"
    row = json.dumps(list(range(10)))
    with body.open("w") as fh:
        fh.write('{"instances": [' + ",".join([row] * 1_900_000) + "]}")
    assert body.stat().st_size > 57_000_000
    r = run(["validate", str(body), "--signature", SIG, "--format", "json"], timeout=60)
    assert_no_traceback(r)
    doc = json.loads(r.out)
    assert r.rc == 1 and doc["stage"] == "wire" and not doc["accepted"]
    assert [f["code"] for f in doc["findings"]] == ["KD101"]
    assert r.seconds < 10 and r.peak_mb < 150, (r.seconds, r.peak_mb)

    # Opt-in: parsed after all, within the 64 MiB read budget.
    r = run(["validate", str(body), "--signature", SIG, "--format", "json",
             "--parse-oversized"], timeout=120)
    doc = json.loads(r.out)
    assert r.rc == 1 and "KD101" in [f["code"] for f in doc["findings"]]
    assert doc["tensors"]["tokens"]["shape"] == [1_900_000, 10]
