"""Generated SageMaker Data Capture for the engine tests and the Ray benchmark.

Records are spread over hour partitions `ep/AllTraffic/2024/05/01/HH/` (two files each, one of
them gzipped), with a known share of troubles, chosen by record number so tests can name them:
captured outputs the model does not give (differ), inputs the local path rejects, inputs that are
not valid base64, records without endpointOutput, records whose time is outside the window, and
malformed lines (truncated JSON, no captureData). Two partitions outside the window hold files
that are not capture at all: a reader that does not prune them fails.

The model is fixtures' custom/export/1 (x . [.1 .2 .3 .4 .5] + 1).
"""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta

WEIGHTS = [0.1, 0.2, 0.3, 0.4, 0.5]
HOURS = [datetime(2024, 5, 1, h, tzinfo=UTC) for h in range(10, 15)]
SINCE = "2024-05-01T10:00:00Z"
UNTIL = "2024-05-01T15:00:00Z"
OUTSIDE = ["ep/AllTraffic/2024/04/30/23/00-00-000-old.jsonl",
           "ep/AllTraffic/2024/05/02/03/00-00-000-new.jsonl"]


def differs(i: int) -> bool:
    return i % 997 == 5


def rejected(i: int) -> bool:
    return i % 1009 == 7


def bad_base64(i: int) -> bool:
    return i % 1013 == 11


def no_output(i: int) -> bool:
    return i % 1019 == 13


def late(i: int) -> bool:
    return i % 1021 == 17


def truncated(i: int) -> bool:
    return i % 503 == 3


def not_capture(i: int) -> bool:
    return i % 509 == 9


def _line(i: int, hour: datetime) -> str:
    if truncated(i):
        return '{"captureData": {"endpointInput": {"observedContentType": "applic'
    if not_capture(i):
        return json.dumps({"eventVersion": "0", "note": f"line {i}"})
    x = [float(i % 7), 1.0, 2.0, 0.5, float(i % 3)]
    y = sum(a * w for a, w in zip(x, WEIGHTS, strict=True)) + 1 + (5.0 if differs(i) else 0.0)
    body = json.dumps({"instances": [["a", *x[1:]] if rejected(i) else x]})
    inp = ({"observedContentType": "application/json", "mode": "INPUT",
            "data": "%%%not-base64%%%", "encoding": "BASE64"} if bad_base64(i) else
           {"observedContentType": "application/json", "mode": "INPUT", "data": body,
            "encoding": "JSON"})
    out = json.dumps({"predictions": [[y]]})
    capture = {"endpointInput": inp}
    if not no_output(i):
        capture["endpointOutput"] = {"observedContentType": "application/json",
                                     "mode": "OUTPUT", "encoding": "BASE64",
                                     "data": base64.b64encode(out.encode()).decode()}
    when = hour + timedelta(seconds=(i * 7) % 3600)
    if late(i) and hour == HOURS[-1]:
        when = hour + timedelta(hours=1, seconds=30)  # in the 14h folder, but after --until
    return json.dumps({"captureData": capture,
                       "eventMetadata": {"eventId": f"ev-{i}", "inferenceId": f"req-{i}",
                                         "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ")},
                       "eventVersion": "0"})


def capture_files(n: int) -> dict[str, bytes]:
    """{relative key: file bytes} for n capture lines over the partitions of HOURS."""
    files: dict[str, bytes] = {}
    slots = len(HOURS) * 2
    for slot in range(slots):
        hour = HOURS[slot // 2]
        lines = [_line(i, hour) for i in range(slot, n, slots)]
        data = ("\n".join(lines) + "\n").encode()
        name = f"ep/AllTraffic/{hour:%Y/%m/%d/%H}/00-{slot % 2:02d}-000-part"
        if slot % 2:
            files[name + ".jsonl.gz"] = gzip.compress(data, mtime=0)
        else:
            files[name + ".jsonl"] = data
    for key in OUTSIDE:
        files[key] = b"this is not a capture file\n" * 25
    return files


def write_capture(root, n: int) -> None:
    """The generated capture under a local folder."""
    for key, data in capture_files(n).items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def upload_capture(client, bucket: str, prefix: str, n: int) -> None:
    """The generated capture under s3://bucket/prefix/ (a moto server in tests)."""
    client.create_bucket(Bucket=bucket)
    for key, data in capture_files(n).items():
        client.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=data)


# ---- faults: a record whose replay crashes, a file that cannot be read ----------------------

CRASH_X = [7.0, 7.0, 7.0, 7.0, 7.0]  # the model answers 11.5 to it
CRASHING_HANDLER = '''
def input_handler(data, context):
    return data.read().decode("utf-8")


def output_handler(response, context):
    body = response.content.decode("utf-8")
    if "11.5" in body:
        # A lone surrogate: the container path cannot encode the answer. A real crash in the
        # local replay (not a rejection), the kind --engine ray must isolate to its record.
        return body + "\\ud800", context.accept_header
    return body, context.accept_header
'''


def write_crashing_code(folder) -> None:
    """code/inference.py whose answer to CRASH_X makes the local replay raise."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "inference.py").write_text(CRASHING_HANDLER)


def fault_line(i: int, x: list[float]) -> str:
    y = sum(a * w for a, w in zip(x, WEIGHTS, strict=True)) + 1
    return json.dumps({
        "captureData": {
            "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                              "data": json.dumps({"instances": [x]}), "encoding": "JSON"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                               "data": json.dumps({"predictions": [[y]]}), "encoding": "JSON"}},
        "eventMetadata": {"eventId": f"ev-{i}", "inferenceId": f"req-{i}",
                          "inferenceTime": "2024-05-01T10:00:00Z"},
        "eventVersion": "0"})


def write_faulty_capture(root, crash_at: int = 12) -> None:
    """Three capture files in path order: a.jsonl (30 records, record `crash_at` is CRASH_X),
    b.jsonl.gz (not gzip: unreadable), c.jsonl (30 records)."""
    hour = root / "ep/AllTraffic/2024/05/01/10"
    hour.mkdir(parents=True, exist_ok=True)
    a = [fault_line(i, CRASH_X if i == crash_at else [float(i % 5), 1, 2, 3, 4])
         for i in range(30)]
    (hour / "a.jsonl").write_text("\n".join(a) + "\n")
    (hour / "b.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00 this is not gzip data")
    c = [fault_line(i, [float(i % 3), 2, 2, 2, 2]) for i in range(30, 60)]
    (hour / "c.jsonl").write_text("\n".join(c) + "\n")
