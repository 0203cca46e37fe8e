"""Output files are written whole or not at all, with one clear error."""

from __future__ import annotations

import os
import stat

import pytest

from kdiag.atomic import write_atomically
from kdiag.errors import KdiagError


def test_writes_the_data_with_a_normal_file_mode(tmp_path):
    p = tmp_path / "out.json"
    write_atomically(p, "{}\n")
    assert p.read_text() == "{}\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask
    assert [x.name for x in tmp_path.iterdir()] == ["out.json"]


def test_missing_folder_is_an_error_unless_parents_are_wanted(tmp_path):
    with pytest.raises(KdiagError, match="does not exist"):
        write_atomically(tmp_path / "no" / "out.txt", b"x")
    write_atomically(tmp_path / "no" / "out.txt", b"x", create_parents=True)
    assert (tmp_path / "no" / "out.txt").read_bytes() == b"x"


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "report.xml"
    p.write_text("old")
    target = tmp_path / "dir-in-the-way"
    target.mkdir()
    with pytest.raises(KdiagError, match="Cannot write the report"):
        write_atomically(target, b"new", what="the report ")
    assert p.read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["dir-in-the-way", "report.xml"]
