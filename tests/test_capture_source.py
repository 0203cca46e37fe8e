"""Capture files through pyarrow's filesystems: hour partitions outside --since/--until are
pruned before they are listed or read, locally and on S3 (moto's server)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kdiag.replays.capture import CaptureStats, iter_capture, records_in_file
from kdiag.replays.capture_source import (
    CaptureSource,
    list_files,
    partition_in_window,
    read_lines,
)
from tests import _capture_gen as gen
from tests._moto import moto_s3, s3_client

pytest.importorskip("pyarrow")

SINCE = datetime(2024, 5, 1, 10, tzinfo=UTC)
UNTIL = datetime(2024, 5, 1, 15, tzinfo=UTC)


def test_day_and_hour_folders_outside_the_window_are_pruned():
    assert not partition_in_window("ep/v/2024/04/30", SINCE, UNTIL)
    assert not partition_in_window("ep/v/2024/05/02", SINCE, UNTIL)
    assert partition_in_window("ep/v/2024/05/01", SINCE, UNTIL)
    # an hour folder keeps the in-process reader's one-hour margins
    assert partition_in_window("ep/v/2024/05/01/09", SINCE, UNTIL)
    assert not partition_in_window("ep/v/2024/05/01/08", SINCE, UNTIL)
    assert partition_in_window("ep/v/2024/05/01/16", SINCE, UNTIL)
    assert not partition_in_window("ep/v/2024/05/01/17", SINCE, UNTIL)
    # not a date: never pruned
    assert partition_in_window("ep/2024", SINCE, UNTIL)
    assert partition_in_window("ep/v/2024/13/45", SINCE, UNTIL)


def test_local_listing_prunes_and_reads_like_the_in_process_reader(tmp_path):
    gen.write_capture(tmp_path, 300)
    src = CaptureSource(str(tmp_path))
    files = list_files(src, since=SINCE, until=UNTIL)
    assert len(files) == 10 and not any("04/30" in f.path or "05/02" in f.path for f in files)
    assert [f.path for f in files] == sorted(f.path for f in files)
    stats = CaptureStats()
    ours = [r for f in files for r in records_in_file(f.path, read_lines(src, f), since=SINCE,
                                                      until=UNTIL, stats=stats)]
    theirs_stats = CaptureStats()
    theirs = list(iter_capture(str(tmp_path), since=SINCE, until=UNTIL, stats=theirs_stats))
    assert ours == theirs and stats.skipped == theirs_stats.skipped


def test_s3_listing_through_pyarrow_with_an_endpoint_override(monkeypatch):
    with moto_s3(monkeypatch) as url:
        gen.upload_capture(s3_client(url), "capture", "cap", 100)
        src = CaptureSource("s3://capture/cap", url)
        files = list_files(src, since=SINCE, until=UNTIL)
        assert len(files) == 10
        assert all(f.path.startswith("s3://capture/cap/ep/AllTraffic/2024/05/01/") for f in files)
        gz = next(f for f in files if f.path.endswith(".gz"))
        assert sum(1 for _ in read_lines(src, gz)) == 10
        halves = list_files(src, shard=(1, 2)) + list_files(src, shard=(2, 2))
        assert sorted(f.path for f in halves) == sorted(f.path for f in list_files(src))


def test_a_missing_source_is_one_clear_error(tmp_path):
    from kdiag.errors import KdiagError

    with pytest.raises(KdiagError, match="no such file or folder"):
        list_files(CaptureSource(str(tmp_path / "nope")))


def test_the_ray_read_stage_names_unreadable_files_and_reads_the_others(tmp_path):
    """Ray's read task (run here as a plain function): a file that is not capture and a
    corrupt gzip each give a row naming the file; the good files' records come through, in
    blocks of one file, in line order."""
    import pickle

    from kdiag.replays.ray_engine import RayCaptureResult, read_capture_rows

    gen.write_capture(tmp_path, 200)
    hour = tmp_path / "ep/AllTraffic/2024/05/01/11"
    (hour / "zz-not-capture.jsonl").write_text("not a capture line\n" * 25)
    (hour / "zz-broken.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    src = CaptureSource(str(tmp_path))
    files = list_files(src, since=SINCE, until=UNTIL)
    assert len(files) == 12
    rows = read_capture_rows({"index": list(range(len(files))),
                              "file": [pickle.dumps(f) for f in files]},
                             src=src, since=SINCE, until=UNTIL)
    errors, records = {}, []
    for kind, payload in zip(rows["kind"], rows["payload"], strict=True):
        if kind == "file":
            name, _stats, error = pickle.loads(payload)
            if error:
                errors[name.rsplit("/", 1)[-1]] = error
        else:
            records += pickle.loads(payload)
    assert set(errors) == {"zz-not-capture.jsonl", "zz-broken.jsonl.gz"}
    assert "is this a capture file?" in errors["zz-not-capture.jsonl"]
    good = [f.path for f in files if not f.path.rsplit("/", 1)[-1].startswith("zz-")]
    assert records == [r for path in good
                       for r in iter_capture(path, since=SINCE, until=UNTIL)]

    from kdiag.replays.capture import CaptureStats
    from kdiag.replays.capture_replay import CaptureReplayResult

    result = RayCaptureResult(CaptureReplayResult(
        comparison=None, stats=CaptureStats(unreadable=sorted(errors.items()))))
    assert [f.code for f in result.findings] == ["KD881", "KD881"]
    assert "zz-broken.jsonl.gz" in result.findings[0].message


def test_both_engines_count_a_shards_files_alike(tmp_path):
    """files_listed is the files this run reads: with --shard K/N, that shard's files, on the
    in-process reader and on the Ray driver's listing alike."""
    from kdiag.replays.capture import CaptureStats

    gen.write_capture(tmp_path, 200)
    for shard in ((1, 2), (2, 2), (3, 3)):  # K/N, K from 1
        stats = CaptureStats()
        for _ in iter_capture(str(tmp_path), since=SINCE, until=UNTIL, shard=shard,
                              stats=stats):
            pass
        ray_files = list_files(CaptureSource(str(tmp_path)), since=SINCE, until=UNTIL,
                               shard=shard)
        assert stats.files_listed == len(ray_files) == stats.files
    total = len(list_files(CaptureSource(str(tmp_path)), since=SINCE, until=UNTIL))
    assert sum(len(list_files(CaptureSource(str(tmp_path)), since=SINCE, until=UNTIL,
                              shard=(k, 2))) for k in (1, 2)) == total
