"""JSON-lines payloads and capture files are streamed: flat memory, a per-line cap, and a
damaged gzip reported."""

from __future__ import annotations

import gzip
import json

from tests.conftest import MODELS
from tests.security._run import assert_no_traceback, run

SIG = str(MODELS / "tokens" / "1")
LINE = json.dumps({"instances": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]})

CAPTURE_READ = """
import json, sys
from kdiag.errors import KdiagError
from kdiag.replays.capture import CaptureStats, iter_capture
st = CaptureStats()
try:
    n = sum(1 for _ in iter_capture(sys.argv[1], stats=st))
except KdiagError as e:
    print(json.dumps({"error": str(e)})); sys.exit(2)
print(json.dumps({"records": n, "skipped": st.skipped}))
"""


def _record(i: int, data: str) -> bytes:
    return json.dumps({"captureData": {"endpointInput": {
        "observedContentType": "application/json", "mode": "INPUT", "data": data,
        "encoding": "JSON"}}, "eventMetadata": {"eventId": f"e{i}"},
        "eventVersion": "0"}).encode() + b"\n"


def test_each_line_memory_is_flat_and_capture_lines_are_capped_and_crc_checked(tmp_path):
    # validate --each-line: 20,000 lines cost what 2,000 do (results are written and dropped).
    peaks = {}
    for n in (2_000, 20_000):
        p = tmp_path / f"{n}.jsonl"
        p.write_text((LINE + "\n") * n)
        r = run(["validate", str(p), "--each-line", "--signature", SIG, "--format", "json"],
                timeout=240)
        assert_no_traceback(r)
        doc = json.loads(r.out)
        assert r.rc == 0 and doc["accepted"] == n and len(doc["results"]) == n
        peaks[n] = r.peak_mb
    assert peaks[20_000] - peaks[2_000] < 25, peaks

    # A capture line of 200 MiB (200 KB gzipped) is skipped by the 64 MiB per-line cap,
    # chunk by chunk: memory stays far below the line's size.
    cap = tmp_path / "capture"
    cap.mkdir()
    with gzip.open(cap / "00-00-000-x.jsonl.gz", "wb", compresslevel=1) as fh:
        fh.write(_record(1, "[1]"))
        fh.write(b'{"captureData": "')
        for _ in range(200):
            fh.write(b"a" * (1 << 20))
        fh.write(b'"}\n')
        fh.write(_record(3, "[3]"))
    r = run([str(cap)], code=CAPTURE_READ, timeout=120)
    assert_no_traceback(r)
    doc = json.loads(r.out)
    assert r.rc == 0 and doc["records"] == 2
    (reason,) = doc["skipped"]
    assert "per-line cap of 67108864 bytes" in reason and "--max-line-bytes" in reason
    assert r.peak_mb < 200, r.peak_mb

    # A gzip member whose CRC does not match is reported (exit 2), not read as complete.
    good = gzip.compress(_record(1, "[1]") + _record(2, "[2]"))
    bad = good[:-8] + bytes([good[-8] ^ 0xFF]) + good[-7:]
    (cap / "00-00-000-x.jsonl.gz").write_bytes(bad)
    r = run([str(cap)], code=CAPTURE_READ, timeout=60)
    assert r.rc == 2 and "corrupt or truncated gzip" in json.loads(r.out)["error"]
