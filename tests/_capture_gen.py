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
