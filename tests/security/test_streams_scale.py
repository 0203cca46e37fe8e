"""Streams stay flat: `validate --each-line` over 80,000 lines and `replay --capture` (the
in-process engine) over 20,000 records peak at the memory of a small run (2,000), within a few
MiB: each result is written and dropped, nothing kept per line.

Every line differs (a per-line leak of a string, a result or a cache entry shows up), and the
peak is the child's own VmHWM (tests/security/_run.py). Bounds: 15 MiB more for 40x the lines
(a leak of 200 bytes a line would show), 40 MiB for 10x the records (a kept result, about 4 KiB,
would add 70 MiB).
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import MODELS
from tests.security._run import assert_no_traceback, run

pytestmark = pytest.mark.slow

TOKENS = str(MODELS / "tokens" / "1")
CUSTOM = str(MODELS / "custom" / "export" / "1")


def _lines(path, n: int) -> None:
    with open(path, "w") as fh:
        fh.writelines(f'{{"instances": [[{i % 9973}, 2, 3, 4, 5, 6, 7, 8, 9, {i}]]}}\n'
                      for i in range(n))


def test_validate_each_line_memory_is_flat_from_2k_to_80k_lines(tmp_path):
    peaks, seconds = {}, {}
    for n in (2_000, 80_000):  # 80k: ~30 s in CI; the bound still sees a small leak
        p = tmp_path / f"{n}.jsonl"
        _lines(p, n)
        r = run(["validate", str(p), "--each-line", "--signature", TOKENS], timeout=600)
        assert_no_traceback(r)
        assert r.rc == 0 and f"{n} payloads: {n} accepted" in r.out, r.out[-500:]
        peaks[n], seconds[n] = r.peak_mb, r.seconds
    assert peaks[80_000] - peaks[2_000] < 15, (peaks, seconds)


def _capture(root, n: int) -> None:
    d = root / "ep" / "AllTraffic" / "2024" / "05" / "01" / "13"
    d.mkdir(parents=True)
    w = (0.1, 0.2, 0.3, 0.4, 0.5)
    with open(d / "00-00-000-abc.jsonl", "w") as fh:
        for i in range(n):
            x = [float(i % 97), 1.0, 2.0, 0.5, float(i % 3)]
            y = sum(a * b for a, b in zip(x, w, strict=True)) + 1
            fh.write(json.dumps({"captureData": {
                "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                                  "data": json.dumps({"instances": [x]}), "encoding": "JSON"},
                "endpointOutput": {"observedContentType": "application/json",
                                   "mode": "OUTPUT", "data": json.dumps({"predictions": [[y]]}),
                                   "encoding": "JSON"}},
                "eventMetadata": {"eventId": f"ev-{i}", "inferenceId": f"req-{i}",
                                  "inferenceTime": "2024-05-01T13:00:00Z"},
                "eventVersion": "0"}) + "\n")


@pytest.mark.tf
def test_replay_capture_memory_is_flat_from_2k_to_20k_records(tmp_path):
    pytest.importorskip("tensorflow")
    peaks, seconds = {}, {}
    for n in (2_000, 20_000):
        cap = tmp_path / f"cap{n}"
        _capture(cap, n)
        out = tmp_path / f"out{n}.jsonl"
        r = run(["replay", "--capture", str(cap), "--model", CUSTOM, "--out", str(out)],
                timeout=600)
        assert_no_traceback(r)
        assert r.rc == 0, r.err[-1500:]
        with open(out) as fh:
            assert sum(1 for _ in fh) == n
        peaks[n], seconds[n] = r.peak_mb, r.seconds
    assert peaks[20_000] - peaks[2_000] < 40, (peaks, seconds)
