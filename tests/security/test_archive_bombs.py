"""Resource bombs in model.tar.gz stop at a cap checked before the work, with a message naming
the cap and the measured size: declared sizes, real decompression bombs, long-name and pax
headers, member counts, many highly compressible saved_model.pb members, a bad gzip CRC."""

from __future__ import annotations

import gzip
import struct
import time
import zlib

import pytest

from kdiag.errors import KdiagError
from kdiag.limits import Limits
from kdiag.model.archive import _pax_records, extract_archive, scan_archive
from tests.security._hostile import pad, run_kdiag, tar_end, tar_header, tar_member


def _gz(path, raw: bytes):
    path.write_bytes(gzip.compress(raw, compresslevel=9))
    return path


def _zeros_gz(path, header: bytes, size: int, tail: bytes = b"") -> None:
    """A gzip stream of header + `size` zero bytes (+ tail), compressed chunk by chunk."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(path, "wb") as fh:
        fh.write(comp.compress(header))
        zero = bytes(1 << 20)
        left = size
        while left:
            n = min(left, len(zero))
            fh.write(comp.compress(zero[:n]))
            left -= n
        fh.write(comp.compress(b"\x00" * (-size % 512) + tail) + comp.flush())


def test_a_declared_30_gib_member_stops_at_the_header(tmp_path):
    arc = tmp_path / "model.tar.gz"
    _zeros_gz(arc, tar_header("1/saved_model.pb", 30 << 30), 1 << 20)
    res = run_kdiag(["inspect", str(arc)], tmp_path)
    assert res.code == 2
    assert "member-bytes cap (20 GiB)" in res.stderr and "30 GiB" in res.stderr
    assert "--cap member-bytes=" in res.stderr
    assert res.seconds < 5 and res.peak_mib < 250


def test_a_real_decompression_bomb_stops_at_the_total_cap_not_after(tmp_path):
    arc = tmp_path / "model.tar.gz"
    size = 300 << 20  # 300 MiB of zeros, ~300 KB compressed
    _zeros_gz(arc, tar_header("1/variables/variables.data-00000-of-00001", size), size,
              tar_end())
    assert arc.stat().st_size < 1 << 20
    out = tmp_path / "tmp"
    out.mkdir()
    (tmp_path / "b.json").write_text('{"instances": [1.0]}')
    res = run_kdiag(["replay", "b.json", "--model", str(arc), "--cap", "archive-bytes=100MiB"],
                    tmp_path, tmpdir=out)
    assert res.code == 2
    assert "archive-bytes cap (100 MiB)" in res.stderr and "300 MiB" in res.stderr
    # inspect reads the member list only: never more than one chunk of it in memory
    res = run_kdiag(["inspect", str(arc)], tmp_path)
    assert res.code in (0, 1), res.stderr
    assert res.peak_mib < 250
    with pytest.raises(KdiagError, match="archive-bytes"):
        extract_archive(arc, tmp_path / "x", limits=Limits(archive_bytes=100 << 20))
    written = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()) \
        - arc.stat().st_size - (tmp_path / "b.json").stat().st_size
    assert written < 1 << 20  # the cap was checked from the header, before any byte was written
    assert list(out.iterdir()) == []


def _multi_member_zeros_gz(path, header: bytes, size: int, tail: bytes) -> None:
    """header + `size` zero bytes + tail as concatenated gzip members (valid gzip, as
    `cat a.gz b.gz` makes): one compressed 64 MiB block of zeros written again and again, so a
    19 GiB bomb costs seconds to build, not minutes."""
    block = 64 << 20
    assert size % block == 0
    zeros = gzip.compress(bytes(block), compresslevel=9)
    with open(path, "wb") as fh:
        fh.write(gzip.compress(header))
        for _ in range(size // block):
            fh.write(zeros)
        fh.write(gzip.compress(tail))


def test_a_19_gib_bomb_stops_at_the_ratio_cap_before_decompressing(tmp_path):
    arc = tmp_path / "model.tar.gz"
    size = 19 << 30
    _multi_member_zeros_gz(arc, tar_header("1/variables/variables.data-00000-of-00001", size),
                           size, tar_end())
    assert arc.stat().st_size < 40 << 20  # ~19 MB on disk, 19 GiB declared and real
    out = tmp_path / "tmp"
    out.mkdir()
    for argv in (["inspect", str(arc)], ["check", str(arc)]):
        res = run_kdiag(argv, tmp_path, tmpdir=out)
        assert res.code == 2, res.stderr
        assert "archive-ratio cap (200:1)" in res.stderr and "19 GiB" in res.stderr
        assert "--cap archive-ratio=" in res.stderr
        assert res.seconds < 10 and res.peak_mib < 250
    assert list(out.iterdir()) == []  # nothing extracted
    # a user who trusts the file raises the cap; the total cap still holds
    res = run_kdiag(["inspect", str(arc), "--cap", "archive-ratio=100000",
                     "--cap", "archive-bytes=2GiB"], tmp_path)
    assert res.code == 2 and "archive-bytes cap (2 GiB)" in res.stderr


def test_a_huge_gnu_long_name_header_is_capped(tmp_path):
    name = b"1/" + b"a" * (2 << 20)
    raw = tar_header("././@LongLink", len(name), b"L") + pad(name) + tar_member("x", b"1")
    arc = _gz(tmp_path / "model.tar.gz", raw + tar_end())
    res = run_kdiag(["inspect", str(arc)], tmp_path)
    assert res.code == 2 and "header-bytes cap (1 MiB)" in res.stderr
    assert res.peak_mib < 250


def test_a_1_mb_long_name_under_the_cap_is_refused_not_expanded(tmp_path):
    name = b"1/" + b"a/" * 500_000
    raw = tar_header("././@LongLink", len(name), b"L") + pad(name) + tar_member("x", b"1")
    arc = _gz(tmp_path / "model.tar.gz", raw + tar_end())
    t0 = time.perf_counter()
    scan = scan_archive(arc)
    assert time.perf_counter() - t0 < 2
    assert "longer than 4096" in scan.unsafe[0].reason
    res = run_kdiag(["inspect", str(arc), "--format", "json"], tmp_path)
    assert res.code == 1 and "KD012" in res.stdout and res.peak_mib < 250


def test_pax_headers_parse_in_linear_time(tmp_path):
    # CVE-2024-6232: tarfile's pax regex backtracks; here 60,000 records in ~1 MB parse at once
    rec = b"17 comment=xxxxx\n"  # LEN counts the whole record, itself included
    body = rec * 60_000
    t0 = time.perf_counter()
    assert _pax_records(body) == {"comment": "xxxxx"}
    assert time.perf_counter() - t0 < 1
    raw = tar_header("pax", len(body), b"x") + pad(body) + tar_member("1/saved_model.pb", b"x")
    arc = _gz(tmp_path / "model.tar.gz", raw + tar_end())
    t0 = time.perf_counter()
    assert scan_archive(arc).files == ["1/saved_model.pb"]
    assert time.perf_counter() - t0 < 2


def test_member_count_cap(tmp_path):
    raw = b"".join(tar_member(f"f{i}", b"") for i in range(2_000))
    arc = _gz(tmp_path / "model.tar.gz", raw + tar_end())
    res = run_kdiag(["inspect", str(arc), "--cap", "archive-members=1000"], tmp_path)
    assert res.code == 2 and "archive-members cap (1,000)" in res.stderr
    assert "more than 1,000" in res.stderr


def test_many_compressible_saved_model_members_stay_within_the_read_budget(tmp_path):
    # 12 x 40 MiB of zeros named saved_model.pb (the issue: 3 MB reaching 3.6 GB of memory)
    arc = tmp_path / "model.tar.gz"
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    zero = bytes(40 << 20)
    with open(arc, "wb") as fh:
        for i in range(12):
            fh.write(comp.compress(tar_header(f"m{i}/1/saved_model.pb", len(zero)) + zero))
        fh.write(comp.compress(tar_end()) + comp.flush())
    assert arc.stat().st_size < 2 << 20
    res = run_kdiag(["inspect", str(arc)], tmp_path, timeout=180)
    assert res.code == 2 and "not a readable SavedModel" in res.stderr
    assert "Traceback" not in res.stderr
    assert res.peak_mib < 600, res.peak_mib  # the 256 MiB read budget plus one member, not 480 MiB x2


@pytest.mark.parametrize("damage", ["crc", "truncated", "trailing"])
def test_a_damaged_gzip_stream_is_reported(tmp_path, damage):
    good = gzip.compress(tar_member("1/saved_model.pb", b"x" * 1000) + tar_end())
    if damage == "crc":
        data = good[:-8] + struct.pack("<I", (zlib.crc32(b"") ^ 0xDEAD) & 0xFFFFFFFF) + good[-4:]
    elif damage == "truncated":
        data = good[:-6]
    else:
        data = good + b"garbage after the gzip member"
    arc = tmp_path / "model.tar.gz"
    arc.write_bytes(data)
    res = run_kdiag(["inspect", str(arc)], tmp_path)
    assert res.code == 2, (res.code, res.stdout)
    assert "truncated or corrupt" in res.stderr
    assert "Traceback" not in res.stderr


def test_extraction_stops_before_filling_the_disk(tmp_path, monkeypatch):
    from kdiag.model import archive

    arc = _gz(tmp_path / "model.tar.gz", tar_member("1/saved_model.pb", b"x" * 1000) + tar_end())
    monkeypatch.setattr(archive, "DISK_RESERVE", 1 << 62)  # as if the disk were nearly full
    with pytest.raises(KdiagError, match="free; kdiag stops rather than fill it"):
        extract_archive(arc, tmp_path / "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tar.gz"]
