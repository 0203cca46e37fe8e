"""kdiag.replays.capture: SageMaker Data Capture files, local and in S3 (moto), streamed."""

from __future__ import annotations

import base64
import gzip
import json
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kdiag.errors import KdiagError
from kdiag.replays.capture import (
    CaptureStats,
    decode_payload,
    iter_capture,
    list_capture_files,
    parse_line,
    parse_shard,
    shard_of,
)
from tests._moto import moto_s3, s3_client

# The three record shapes of aws-apis-detail.md §4.5 (SDK defaults, CSV in + inferenceId,
# everything BASE64 when the endpoint config has no CaptureContentTypeHeader).
LINE_A = ('{"captureData":{"endpointInput":{"observedContentType":"application/json","mode":"INPUT",'
          '"data":"{\\"instances\\": [[5.1, 3.5, 1.4, 0.2]]}","encoding":"JSON"},"endpointOutput":'
          '{"observedContentType":"application/json","mode":"OUTPUT","data":"{\\"predictions\\": '
          '[[0.97, 0.02, 0.01]]}","encoding":"JSON"}},"eventMetadata":{"eventId":'
          '"0f5c2c1e-8d0a-4c1b-9f7e-3b2a1d4c5e6f","inferenceTime":"2024-05-01T13:12:34Z"},'
          '"eventVersion":"0"}')
LINE_B = ('{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT","data":'
          '"5.1,3.5,1.4,0.2","encoding":"CSV"},"endpointOutput":{"observedContentType":'
          '"application/json","mode":"OUTPUT","data":"{\\"predictions\\": [[0.97, 0.02, 0.01]]}",'
          '"encoding":"JSON"}},"eventMetadata":{"eventId":"7d1e9a40-2b6c-4f3e-8a51-c0d9e8f7a6b5",'
          '"inferenceId":"batch-42-row-7","inferenceTime":"2024-05-01T13:12:35Z"},'
          '"eventVersion":"0"}')
LINE_C = ('{"captureData":{"endpointInput":{"observedContentType":"application/json","mode":"INPUT",'
          '"data":"eyJpbnN0YW5jZXMiOiBbWzUuMSwgMy41LCAxLjQsIDAuMl1dfQ==","encoding":"BASE64"},'
          '"endpointOutput":{"observedContentType":"application/json","mode":"OUTPUT","data":'
          '"eyJwcmVkaWN0aW9ucyI6IFtbMC45NywgMC4wMiwgMC4wMV1dfQ==","encoding":"BASE64"}},'
          '"eventMetadata":{"eventId":"c3b2a190-5e4d-4c3b-a2f1-0e9d8c7b6a54","inferenceTime":'
          '"2024-05-01T13:12:36Z"},"eventVersion":"0"}')


def capture_line(i: int, *, output: list | None = None, when: str = "2024-05-01T13:12:34.123Z",
                 inference_id: str | None = None, encoding: str = "JSON",
                 out_type: str = "application/json", input_only: bool = False) -> str:
    """One Data Capture line as SageMaker writes it (data is always a string)."""
    out_body = json.dumps({"predictions": output if output is not None else [[i, i + 0.5]]})
    data = base64.b64encode(out_body.encode()).decode() if encoding == "BASE64" else out_body
    cd = {"endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                            "data": json.dumps({"instances": [[i]]}), "encoding": "JSON"}}
    if not input_only:
        cd["endpointOutput"] = {"observedContentType": out_type, "mode": "OUTPUT", "data": data,
                                "encoding": encoding}
    meta = {"eventId": f"ev-{i:06d}", "inferenceTime": when}
    if inference_id:
        meta["inferenceId"] = inference_id
    return json.dumps({"captureData": cd, "eventMetadata": meta, "eventVersion": "0"})


def write_capture_tree(root: Path, hours: list[tuple[int, int]], per_file: int = 3,
                       files_per_hour: int = 2) -> int:
    """<root>/my-endpoint/AllTraffic/2024/05/DD/HH/MM-SS-mmm-uuid.jsonl; returns record count."""
    n = 0
    for day, hour in hours:
        d = root / "my-endpoint" / "AllTraffic" / "2024" / "05" / f"{day:02d}" / f"{hour:02d}"
        d.mkdir(parents=True, exist_ok=True)
        for f in range(files_per_hour):
            lines = []
            for _ in range(per_file):
                when = f"2024-05-{day:02d}T{hour:02d}:{10 + f:02d}:00Z"
                lines.append(capture_line(n, when=when))
                n += 1
            name = f"{10 + f:02d}-00-000-{day:02d}{hour:02d}{f:04d}-uuid.jsonl"
            (d / name).write_text("\n".join(lines) + "\n")
    return n


# ---- decoding ------------------------------------------------------------------------------

def test_json_encoded_sides_decode_to_the_payload_text():
    rec = parse_line(LINE_A.encode(), "f.jsonl", 1)
    assert rec.input.data == b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
    assert rec.output.data == b'{"predictions": [[0.97, 0.02, 0.01]]}'
    assert rec.input.content_type == "application/json"
    assert rec.id == "0f5c2c1e-8d0a-4c1b-9f7e-3b2a1d4c5e6f"
    assert rec.inference_time == datetime(2024, 5, 1, 13, 12, 34, tzinfo=UTC)
    assert rec.metadata["eventVersion"] == "0"


def test_inference_id_is_the_record_id_when_the_caller_set_one():
    rec = parse_line(LINE_B.encode(), "f.jsonl", 1)
    assert rec.id == "batch-42-row-7"
    assert rec.event_id == "7d1e9a40-2b6c-4f3e-8a51-c0d9e8f7a6b5"
    assert rec.input.data == b"5.1,3.5,1.4,0.2" and rec.input.encoding == "CSV"


def test_base64_sides_decode_to_the_original_bytes():
    rec = parse_line(LINE_C.encode(), "f.jsonl", 1)
    assert rec.input.data == b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
    assert rec.output.data == b'{"predictions": [[0.97, 0.02, 0.01]]}'


def test_input_only_capture_has_no_output():
    rec = parse_line(capture_line(1, input_only=True).encode(), "f", 1)
    assert rec.output is None and rec.input is not None


def test_unknown_encoding_is_tried_as_base64_then_kept_as_text():
    as_b64 = decode_payload({"observedContentType": "x/y", "data": base64.b64encode(b"hi").decode(),
                             "encoding": "GZIP"})
    assert as_b64.data == b"hi" and as_b64.decode_error is None
    text = decode_payload({"observedContentType": "x/y", "data": "not base64!", "encoding": "ZZ"})
    assert text.data == b"not base64!" and "unknown encoding" in text.decode_error


def test_invalid_base64_is_flagged_not_raised():
    p = decode_payload({"observedContentType": "application/json", "data": "@@@",
                        "encoding": "BASE64"})
    assert p.decode_error == "invalid base64"


def test_content_type_with_charset_keeps_its_parameters_and_media_type_drops_them():
    line = capture_line(1, out_type="text/csv; charset=utf-8")
    rec = parse_line(line.encode(), "f", 1)
    assert rec.output.content_type == "text/csv; charset=utf-8"
    assert rec.output.media_type == "text/csv"


def test_inference_time_with_and_without_milliseconds():
    a = parse_line(capture_line(1, when="2020-07-30T13:36:30Z").encode(), "f", 1)
    b = parse_line(capture_line(1, when="2020-07-30T13:36:30.250Z").encode(), "f", 1)
    assert a.inference_time == datetime(2020, 7, 30, 13, 36, 30, tzinfo=UTC)
    assert b.inference_time.microsecond == 250000


def test_truncated_last_line_is_skipped_and_counted(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text(LINE_A + "\n" + LINE_B + "\n" + LINE_C[:50])
    st = CaptureStats()
    recs = list(iter_capture(str(f), stats=st))
    assert [r.line for r in recs] == [1, 2]
    assert st.skipped == {"not JSON (truncated or corrupt line)": 1}
    assert st.examples[0].endswith(":3: not JSON (truncated or corrupt line)")


def test_a_file_that_is_not_capture_is_an_error(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text('{"predictions": [1]}\n')
    with pytest.raises(KdiagError, match="no Data Capture record"):
        list(iter_capture(str(f)))


def test_missing_path_and_empty_folder_are_errors(tmp_path):
    with pytest.raises(KdiagError, match="no such file"):
        list(iter_capture(str(tmp_path / "nope")))
    with pytest.raises(KdiagError, match="no Data Capture files"):
        list(iter_capture(str(tmp_path)))


# ---- folders, windows, shards --------------------------------------------------------------

def test_folder_is_read_recursively_in_time_order(tmp_path):
    n = write_capture_tree(tmp_path, [(1, 13), (1, 14), (2, 0)])
    recs = list(iter_capture(str(tmp_path)))
    assert len(recs) == n
    times = [r.inference_time for r in recs]
    assert times == sorted(times)


def test_gzip_capture_files_are_read(tmp_path):
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as fh:
        fh.write(LINE_A + "\n" + LINE_B + "\n")
    assert [r.id for r in iter_capture(str(tmp_path))] == [
        "0f5c2c1e-8d0a-4c1b-9f7e-3b2a1d4c5e6f", "batch-42-row-7"]


def test_since_until_keep_records_in_the_half_open_window(tmp_path):
    write_capture_tree(tmp_path, [(1, 13), (1, 14), (1, 15)])
    since = datetime(2024, 5, 1, 14, tzinfo=UTC)
    until = datetime(2024, 5, 1, 15, tzinfo=UTC)
    recs = list(iter_capture(str(tmp_path), since=since, until=until))
    assert recs and all(since <= r.inference_time < until for r in recs)
    assert len(recs) == 6


def test_hour_folders_outside_the_window_are_not_listed(tmp_path):
    write_capture_tree(tmp_path, [(1, 1), (3, 12)])
    files = list_capture_files(str(tmp_path), since=datetime(2024, 5, 3, tzinfo=UTC))
    assert files and all("/03/12/" in f.relative for f in files)


def test_limit_stops_early(tmp_path):
    write_capture_tree(tmp_path, [(1, 13)], per_file=50)
    assert len(list(iter_capture(str(tmp_path), limit=7))) == 7


def test_shards_partition_the_files_without_overlap(tmp_path):
    n = write_capture_tree(tmp_path, [(1, h) for h in range(8)])
    seen = []
    for k in (1, 2, 3):
        seen += [r.id for r in iter_capture(str(tmp_path), shard=(k, 3))]
    assert sorted(seen) == sorted({r.id for r in iter_capture(str(tmp_path))})
    assert len(seen) == n


def test_shard_assignment_is_stable():
    assert shard_of("my-endpoint/AllTraffic/2024/05/01/13/a.jsonl", 4) == \
        shard_of("my-endpoint/AllTraffic/2024/05/01/13/a.jsonl", 4)


@pytest.mark.parametrize("bad", ["0/3", "4/3", "x", "1-3", ""])
def test_bad_shard_specs_are_errors(bad):
    with pytest.raises(KdiagError, match="--shard"):
        parse_shard(bad)


def test_reading_streams_with_bounded_memory(tmp_path):
    f = tmp_path / "big.jsonl"
    big = [0.125] * 64
    with f.open("w") as fh:
        for i in range(20000):
            fh.write(capture_line(i, output=[big]) + "\n")
    assert f.stat().st_size > 10_000_000
    tracemalloc.start()
    count = sum(1 for _ in iter_capture(str(f)))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 20000
    assert peak < 2_000_000, peak


# ---- S3 (moto server, real boto3) ----------------------------------------------------------

def upload_tree(client, bucket: str, root: Path, prefix: str) -> None:
    for f in sorted(root.rglob("*.jsonl")):
        client.put_object(Bucket=bucket, Key=f"{prefix}/{f.relative_to(root).as_posix()}",
                          Body=f.read_bytes())


def test_s3_prefix_is_listed_and_read_through_boto3(tmp_path, monkeypatch):
    n = write_capture_tree(tmp_path, [(1, h) for h in range(10, 16)])
    with moto_s3(monkeypatch) as url:
        c = s3_client(url)
        c.create_bucket(Bucket="caps")
        upload_tree(c, "caps", tmp_path, "data-capture")
        c.put_object(Bucket="caps", Key="data-capture/README.txt", Body=b"not capture")
        recs = list(iter_capture("s3://caps/data-capture/my-endpoint", endpoint_url=url))
        assert len(recs) == n
        assert recs[0].source.startswith("s3://caps/data-capture/my-endpoint/AllTraffic/2024/")
        local = [r.id for r in iter_capture(str(tmp_path))]
        assert [r.id for r in recs] == local
        shards = [[r.id for r in iter_capture("s3://caps/data-capture/my-endpoint",
                                              endpoint_url=url, shard=(k, 2))] for k in (1, 2)]
        assert sorted(shards[0] + shards[1]) == sorted(local)
        assert all(0 < len(s) < n for s in shards)


def test_s3_missing_bucket_is_a_clear_error(monkeypatch):
    with moto_s3(monkeypatch) as url, pytest.raises(KdiagError, match="NoSuchBucket"):
        list(iter_capture("s3://no-such-bucket/x", endpoint_url=url))


def test_s3_empty_prefix_is_a_clear_error(monkeypatch):
    with moto_s3(monkeypatch) as url:
        s3_client(url).create_bucket(Bucket="empty")
        with pytest.raises(KdiagError, match="no Data Capture files"):
            list(iter_capture("s3://empty/prefix", endpoint_url=url))


def test_not_an_s3_uri_is_rejected():
    from kdiag.replays.capture import parse_s3_uri

    with pytest.raises(KdiagError, match="not an S3 URI"):
        parse_s3_uri("s3:///key")
