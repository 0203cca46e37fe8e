"""model.tar.gz handling never writes outside its target and reports corrupt archives clearly."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from kdiag.errors import KdiagError
from kdiag.model.archive import extract_archive, scan_archive
from tests.conftest import ARCHIVES


def _tar(path, members):
    """members: list of (name, kind, payload) with kind file|dir|sym|lnk|fifo."""
    with tarfile.open(path, "w:gz") as tf:
        for name, kind, payload in members:
            ti = tarfile.TarInfo(name)
            if kind == "file":
                data = payload.encode() if isinstance(payload, str) else payload
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
                continue
            ti.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
                       "lnk": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            if kind in ("sym", "lnk"):
                ti.linkname = payload
            tf.addfile(ti)
    return path


@pytest.mark.parametrize("member,reason", [
    (("../evil.txt", "file", "x"), "'..'"),
    (("/etc/evil.txt", "file", "x"), "absolute"),
])
def test_names_that_escape_are_reported_and_refuse_the_whole_archive(tmp_path, member, reason):
    arc = _tar(tmp_path / "m.tar.gz", [("1/saved_model.pb", "file", "x"), member])
    scan = scan_archive(arc)
    assert [u.name for u in scan.unsafe] == [member[0]]
    assert reason in scan.unsafe[0].reason
    dest = tmp_path / "out"
    with pytest.raises(KdiagError, match="refuses to extract"):
        extract_archive(arc, dest)
    assert not dest.exists()
    assert not (tmp_path / "evil.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tar.gz"]


@pytest.mark.parametrize("member,reason", [
    (("1/link", "sym", "../../etc/passwd"), "symbolic link leading out"),
    (("1/abs", "sym", "/etc/passwd"), "absolute"),
    (("1/hard", "lnk", "../outside"), "hard link leading out"),
    (("1/fifo", "fifo", None), "special file"),
])
def test_links_and_special_files_are_reported_and_never_materialised(tmp_path, member, reason):
    arc = _tar(tmp_path / "m.tar.gz", [("1/saved_model.pb", "file", "x"), member])
    scan = scan_archive(arc)
    assert [u.name for u in scan.unsafe] == [member[0]]
    assert reason in scan.unsafe[0].reason
    out = extract_archive(arc, tmp_path / "out")
    assert (out / "1" / "saved_model.pb").read_text() == "x"
    assert not os.path.lexists(out / member[0])


def test_links_inside_the_archive_are_reported_not_extracted(tmp_path):
    arc = _tar(tmp_path / "m.tar.gz", [("1/saved_model.pb", "file", "pb"),
                                       ("1/alias.pb", "sym", "saved_model.pb")])
    assert [(u.name, u.kind) for u in scan_archive(arc).unsafe] == [("1/alias.pb", "link")]
    out = extract_archive(arc, tmp_path / "out")
    assert not os.path.lexists(out / "1" / "alias.pb")
    assert (out / "1" / "saved_model.pb").read_text() == "pb"


def test_good_archive_extracts_into_a_new_folder(tmp_path):
    out = extract_archive(ARCHIVES / "good.tar.gz", tmp_path / "model")
    assert (out / "1" / "saved_model.pb").is_file()
    assert (out / "code" / "inference.py").is_file()


def test_extraction_refuses_an_existing_destination(tmp_path):
    (tmp_path / "model").mkdir()
    with pytest.raises(KdiagError, match="already exists"):
        extract_archive(ARCHIVES / "good.tar.gz", tmp_path / "model")


def test_truncated_archive_is_a_clear_error_and_leaves_nothing(tmp_path):
    data = (ARCHIVES / "good.tar.gz").read_bytes()
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(KdiagError, match="truncated or corrupt|not a readable"):
        scan_archive(bad)
    with pytest.raises(KdiagError):
        extract_archive(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.tar.gz"]


def test_not_an_archive_is_a_clear_error(tmp_path):
    bad = tmp_path / "model.tar.gz"
    bad.write_text("hello")
    with pytest.raises(KdiagError, match="not a readable tar archive"):
        scan_archive(bad)


def test_scan_reads_only_the_members_asked_for():
    scan = scan_archive(ARCHIVES / "good.tar.gz", want=lambda n: n == "code/inference.py")
    assert list(scan.contents) == ["code/inference.py"]
    assert "1/saved_model.pb" in scan.files


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT],
                         ids=["ustar-prefix", "gnu-longname", "pax"])
def test_long_and_non_ascii_names_read_alike_in_every_tar_format(tmp_path, fmt):
    name = "deep/" + "x" * 90 + "/" + "y" * 60 + "/saved_model.pb"
    arc = tmp_path / "m.tar.gz"
    with tarfile.open(arc, "w:gz", format=fmt) as tf:
        for n, data in ((name, b"hello"), ("é/ü.txt", b"hi")):
            ti = tarfile.TarInfo(n)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    assert scan_archive(arc).files == [name, "é/ü.txt"]
    out = extract_archive(arc, tmp_path / "out")
    assert (out / name).read_bytes() == b"hello" and (out / "é" / "ü.txt").read_bytes() == b"hi"
