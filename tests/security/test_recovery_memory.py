"""The fixed-payload recovery works within memory proportional to the request."""

from __future__ import annotations

import json

from tests.conftest import MODELS
from tests.security._run import assert_no_traceback, run

SIG = str(MODELS / "tokens" / "1")


def test_a_300_kb_request_with_mixed_rows_stays_within_a_small_memory_budget(tmp_path):
    # 2,000 rows of 10 values, one of them a 280 KB string: numpy would make a fixed-width text
    # array of 20,000 x 280,000 characters (22 GB) to "recover" it.
    rows: list[list] = [[i % 10] * 10 for i in range(2000)]
    rows[1999][9] = "7" * 280_000
    body = tmp_path / "mixed.json"
    body.write_text(json.dumps({"instances": rows}))
    assert body.stat().st_size < 400_000
    r = run(["validate", str(body), "--signature", SIG, "--format", "json"], timeout=60)
    assert_no_traceback(r)
    assert r.rc == 1, r.err
    assert r.peak_mb < 250, f"peak {r.peak_mb:.0f} MB"
    assert r.seconds < 30
