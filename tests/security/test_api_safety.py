"""The Python API takes the CLI's safety settings per call: `limits=` (--cap) and `trust_model=`
(--trust-model). A call's settings hold for that call only: the next call, and the process-wide
setting the CLI uses, are untouched."""

from __future__ import annotations

import gzip
import json
import threading

import pytest

import kdiag
from kdiag.errors import KdiagError
from kdiag.limits import DEFAULT, LimitExceeded, Limits, active_limits
from kdiag.model.graph_trust import UntrustedGraph, trusted
from tests.conftest import MODELS
from tests.security._hostile import pad, saved_model_pb, tar_end, tar_header, tar_member
from tests.security._run import assert_no_traceback, run

FILE_IO = MODELS / "file_io" / "1"
WRITTEN = "kdiag_file_io_written.txt"


def _long_name_archive(path):
    """A 2 MiB GNU long-name header: over the 1 MiB header-bytes default."""
    name = b"1/" + b"a" * (2 << 20)
    raw = tar_header("././@LongLink", len(name), b"L") + pad(name) + tar_member("x", b"1")
    path.write_bytes(gzip.compress(raw + tar_end()))
    return path


def test_limits_hold_for_one_call_and_never_leak(tmp_path):
    arc = _long_name_archive(tmp_path / "model.tar.gz")
    with pytest.raises(LimitExceeded, match=r"header-bytes cap \(1 MiB\)"):
        kdiag.inspect(arc)
    # raised for this call only (a dict of --cap names, sizes as --cap writes them) ...
    report = kdiag.inspect(arc, limits={"header-bytes": "4MiB"})
    assert "KD012" in {f["code"] for f in report.to_dict()["findings"]}  # the name is refused
    # ... so the next call is back at the default, and so is the process-wide setting
    with pytest.raises(LimitExceeded, match="header-bytes"):
        kdiag.inspect(arc)
    assert active_limits() == DEFAULT
    # a Limits lowers a cap just as well, and an error inside the call restores it too
    with pytest.raises(LimitExceeded, match=r"header-bytes cap \(512 KiB\)"):
        kdiag.inspect(arc, limits=Limits(header_bytes=512 << 10))
    assert active_limits() == DEFAULT


def test_a_call_in_another_thread_keeps_its_own_limits(tmp_path):
    arc = _long_name_archive(tmp_path / "model.tar.gz")
    seen: list[str] = []
    started, release = threading.Event(), threading.Event()

    def other() -> None:
        started.wait(10)
        try:
            kdiag.inspect(arc)
        except LimitExceeded as e:
            seen.append(e.attr)
        release.set()

    t = threading.Thread(target=other)
    t.start()
    from kdiag.limits import limits_for_call

    with limits_for_call({"header-bytes": "4MiB"}):  # what kdiag.inspect(limits=) does
        started.set()
        release.wait(30)
    t.join(30)
    assert seen == ["header_bytes"]  # the other thread was not raised by this one's block


def test_sample_and_validate_take_limits(tmp_path):
    model = tmp_path / "m" / "1"
    model.mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(saved_model_pb([-1, 1000, 1000]))
    with pytest.raises(KdiagError, match=r"Too large to sample.*sample-elements"):
        kdiag.sample(model, limits={"sample-elements": 100_000})
    assert len(kdiag.sample(model, limits={"sample-elements": "2M"})) == 1
    arc = _long_name_archive(tmp_path / "model.tar.gz")
    with pytest.raises(LimitExceeded, match="header-bytes"):
        kdiag.validate('{"instances": [1]}', arc)


def test_unknown_caps_and_bad_sizes_are_named():
    with pytest.raises(KdiagError, match="unknown cap 'archive-size'.*archive-bytes"):
        kdiag.inspect(FILE_IO, limits={"archive-size": "1GiB"})
    with pytest.raises(KdiagError, match=r"limits\.archive-bytes: '40 gigs' is not a size"):
        kdiag.inspect(FILE_IO, limits={"archive-bytes": "40 gigs"})
    assert active_limits() == DEFAULT


API_BOMB = """
import json, sys, kdiag
from kdiag.errors import KdiagError
try:
    kdiag.inspect(sys.argv[1], limits={"archive-bytes": "100MiB"})
except KdiagError as e:
    print(json.dumps({"error": str(e)})); sys.exit(2)
print(json.dumps({"error": None}))
"""


def test_an_api_call_with_a_lowered_cap_stops_a_bomb_early(tmp_path):
    import zlib

    arc = tmp_path / "model.tar.gz"
    size = 300 << 20
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(arc, "wb") as fh:
        fh.write(comp.compress(tar_header("1/variables/variables.data-00000-of-00001", size)))
        zero = bytes(1 << 20)
        for _ in range(size >> 20):
            fh.write(comp.compress(zero))
        fh.write(comp.compress(tar_end()) + comp.flush())
    out = tmp_path / "tmp"
    out.mkdir()
    r = run([str(arc)], code=API_BOMB, env={"TMPDIR": str(out)}, timeout=120)
    assert_no_traceback(r)
    assert r.rc == 2 and "archive-bytes cap (100 MiB)" in json.loads(r.out)["error"]
    assert r.seconds < 10 and r.peak_mb < 250, (r.seconds, r.peak_mb)
    assert list(out.iterdir()) == []


def test_trust_model_is_per_call_for_check(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UntrustedGraph, match="WriteFile.*trust"):
        kdiag.check(FILE_IO)
    assert not (tmp_path / WRITTEN).exists()
    report = kdiag.check(FILE_IO, trust_model=True)
    assert report.result.replayed and (tmp_path / WRITTEN).exists()
    (tmp_path / WRITTEN).unlink()
    assert trusted() is False  # the process-wide setting is the CLI's, untouched
    with pytest.raises(UntrustedGraph):
        kdiag.check(FILE_IO)
    with pytest.raises(UntrustedGraph):
        kdiag.replay('{"instances": [1.0]}', FILE_IO, content_type="application/json")
    assert not (tmp_path / WRITTEN).exists()
