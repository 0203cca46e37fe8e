"""Property tests: random tar members and random protobuf bytes thrown at the readers
(scan_archive, extract_archive, parse_saved_model) give a result or a KdiagError, never another
exception, and extraction never writes outside its folder. Fixed small budget, no deadline."""

from __future__ import annotations

import contextlib
import gzip
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdiag.errors import KdiagError
from kdiag.limits import Limits
from kdiag.model.archive import extract_archive, scan_archive
from kdiag.model.savedmodel import parse_saved_model
from tests.conftest import MODELS
from tests.security._hostile import field, pad, tar_end, tar_header

BUDGET = settings(max_examples=120, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow])
SMALL = Limits(archive_bytes=1 << 20, member_bytes=1 << 19, header_bytes=4096,
               archive_members=200, read_bytes=1 << 18)

_names = st.one_of(
    st.sampled_from(["1/saved_model.pb", "1", "../x", "/abs", "./1/./a", "a//b", "1/..",
                     "code/inference.py", "a\\..\\b", "x" * 120, "é/ü", ""]),
    st.text(min_size=0, max_size=40),
)
_types = st.sampled_from([b"0", b"\x00", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"L", b"K",
                          b"x", b"g", b"S", b"V", b"Z"])


@st.composite
def _member(draw) -> bytes:
    typ = draw(_types)
    name = draw(_names)
    data = draw(st.binary(max_size=700))
    if typ == b"x" and draw(st.booleans()):
        key = draw(st.sampled_from(["path", "linkpath", "size", "GNU.sparse.map", "junk"]))
        value = draw(st.text(max_size=30)).encode("utf-8", "surrogateescape")
        rec = b" " + key.encode() + b"=" + value + b"\n"
        data = str(len(rec) + len(str(len(rec))) + draw(st.integers(-1, 1))).encode() + rec
    link = draw(st.sampled_from(["", "1/saved_model.pb", "../../etc", "/etc/passwd", "a"]))
    try:
        header = tar_header(name, len(data), typ, link)
    except (ValueError, UnicodeEncodeError):
        header = tar_header("x", len(data), typ, link)
    if draw(st.booleans()):  # corrupt a byte of the header
        i = draw(st.integers(0, 511))
        header = header[:i] + bytes([draw(st.integers(0, 255))]) + header[i + 1:]
    return header + pad(data)


@st.composite
def _archive(draw) -> bytes:
    raw = b"".join(draw(st.lists(_member(), max_size=6)))
    raw += draw(st.sampled_from([tar_end(), b"", b"\x00" * 512, b"junk"]))
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut]
    return gzip.compress(raw) if draw(st.booleans()) else raw


@BUDGET
@given(data=_archive())
def test_random_archives_give_a_scan_or_a_kdiag_error(data):
    tmp = Path(tempfile.mkdtemp(prefix="kdiag-fuzz-"))
    try:
        arc = tmp / "model.tar.gz"
        arc.write_bytes(data)
        with contextlib.suppress(KdiagError):
            scan_archive(arc, want=lambda n: True, limits=SMALL)
        out = tmp / "out" / "x"
        (tmp / "out").mkdir()
        try:
            extract_archive(arc, out, limits=SMALL)
        except KdiagError:
            assert not out.exists()
        else:
            assert not any(p.is_symlink() for p in out.rglob("*"))
            for p in out.rglob("*"):
                assert p.resolve().is_relative_to(out.resolve())
        assert sorted(p.name for p in tmp.iterdir()) == ["model.tar.gz", "out"]
        assert [p.name for p in (tmp / "out").iterdir()] in ([], ["x"])
    finally:
        shutil.rmtree(tmp)


_REAL_PB = (MODELS / "scalar" / "1" / "saved_model.pb").read_bytes()


@st.composite
def _protobuf(draw) -> bytes:
    kind = draw(st.sampled_from(["random", "mutated", "nested"]))
    if kind == "random":
        return draw(st.binary(max_size=300))
    if kind == "mutated":
        data = bytearray(_REAL_PB)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        cut = draw(st.integers(1, len(data)))
        return bytes(data[:cut]) if draw(st.booleans()) else bytes(data)
    leaf = st.one_of(st.integers(0, 2 ** 64 - 1), st.binary(max_size=20), st.text(max_size=10))
    value = draw(st.recursive(leaf, lambda inner: st.lists(
        st.tuples(st.integers(1, 12), inner), max_size=4), max_leaves=20))

    def enc(v) -> bytes:
        if isinstance(v, list):
            return b"".join(field(n, enc(x) if isinstance(x, list) else x) for n, x in v)
        return v if isinstance(v, bytes) else field(1, v)

    return field(2, enc(value)) if draw(st.booleans()) else enc(value)


@BUDGET
@given(data=_protobuf())
def test_random_protobuf_bytes_give_a_result_or_a_kdiag_error(data):
    with contextlib.suppress(KdiagError):
        parse_saved_model(data, "fuzz.pb")
