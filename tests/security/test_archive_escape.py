"""Crafted model.tar.gz files (symlink chains, a link through an earlier link, a hard link to a
symlink: the CVE-2025-4517 class, names with '..', absolute paths, NUL, over-long parts) never
write outside the extraction folder; links are reported by inspect and never materialised."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from kdiag.errors import KdiagError
from kdiag.model.archive import extract_archive, scan_archive
from tests.conftest import MODELS
from tests.security._hostile import run_kdiag, tar_end, tar_header, tar_member

SCALAR = MODELS / "scalar" / "1"


def _model_members() -> bytes:
    """The real scalar SavedModel under 1/: a replay of the archive works."""
    out = b""
    for p in sorted(SCALAR.rglob("*")):
        rel = "1/" + p.relative_to(SCALAR).as_posix()
        out += tar_member(rel, typ=b"5") if p.is_dir() else tar_member(rel, p.read_bytes())
    return out


def _write(path: Path, members: bytes) -> Path:
    path.write_bytes(gzip.compress(members + tar_end()))
    return path


def _attacks(outside: Path) -> dict[str, bytes]:
    o = str(outside)
    return {
        # a symlink to a folder outside, then a file written "through" it
        "link_then_write": tar_member("1/esc", typ=b"2", linkname=o)
        + tar_member("1/esc/pwned.txt", b"owned"),
        # a chain: a -> . , b -> a/.. , c -> b/.. ..., then through the last one
        "symlink_chain": tar_member("1/a", typ=b"2", linkname=".")
        + tar_member("1/a/b", typ=b"2", linkname="..")
        + tar_member("1/a/b/c", typ=b"2", linkname="../" * 8 + o.lstrip("/"))
        + tar_member("1/a/b/c/pwned.txt", b"owned"),
        # CVE-2025-4517 class: a hard link to a symlink that points out, then a file of its name
        "hardlink_to_symlink": tar_member("1/sym", typ=b"2", linkname=o + "/pwned.txt")
        + tar_member("1/hard", typ=b"1", linkname="1/sym")
        + tar_member("1/hard", b"owned"),
        # a hard link straight to a file outside, then content for it
        "hardlink_out": tar_member("1/h", typ=b"1", linkname=o + "/victim.txt")
        + tar_member("1/h", b"owned"),
    }


@pytest.mark.parametrize("attack", ["link_then_write", "symlink_chain", "hardlink_to_symlink",
                                    "hardlink_out"])
def test_link_attacks_write_nothing_outside_and_are_reported(tmp_path, attack):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("original")
    arc = _write(tmp_path / "model.tar.gz", _model_members() + _attacks(outside)[attack])

    out = extract_archive(arc, tmp_path / "x")
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]
    assert (outside / "victim.txt").read_text() == "original"
    assert not any(p.is_symlink() for p in out.rglob("*"))  # nothing but files and folders
    assert (out / "1" / "saved_model.pb").is_file()

    res = run_kdiag(["inspect", str(arc), "--format", "json"], tmp_path)
    codes = [f["code"] for f in json.loads(res.stdout)["findings"]]
    assert "KD050" in codes or "KD012" in codes, res.stdout
    assert sorted(p.name for p in outside.iterdir()) == ["victim.txt"]


@pytest.mark.tf
def test_replay_of_a_link_attack_runs_the_model_and_writes_nothing_outside(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    arc = _write(tmp_path / "model.tar.gz",
                 _model_members() + _attacks(outside)["hardlink_to_symlink"])
    (tmp_path / "body.json").write_text('{"instances": [1.0]}')
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    res = run_kdiag(["replay", "body.json", "--model", str(arc), "--format", "json"], tmp_path,
                    timeout=300, tmpdir=tmp)
    assert res.code == 0, res.stderr
    assert list(outside.iterdir()) == []
    assert list(tmp.iterdir()) == []  # the extraction folder is gone


@pytest.mark.parametrize("name,why", [
    ("../escape.txt", "'..'"),
    ("1/../../escape.txt", "'..'"),
    ("/tmp/escape.txt", "absolute"),
    ("1/" + "a" * 300, "longer than 255"),
])
def test_escaping_names_refuse_extraction_with_a_message(tmp_path, name, why):
    raw = _model_members()
    if len(name) > 100:  # needs a GNU long name
        data = name.encode() + b"\x00"
        raw += tar_header("././@LongLink", len(data), b"L") + data + b"\x00" * (-len(data) % 512)
        raw += tar_header("x", 5) + b"owned".ljust(512, b"\x00")
    else:
        raw += tar_member(name, b"owned")
    arc = _write(tmp_path / "model.tar.gz", raw)
    with pytest.raises(KdiagError, match="refuses to extract") as e:
        extract_archive(arc, tmp_path / "x")
    assert why in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tar.gz"]
    assert [u.kind for u in scan_archive(arc).unsafe] == ["name"]


def test_a_nul_in_a_pax_name_is_refused(tmp_path):
    rec = b"path=1/evil\x00.txt\n"
    rec = str(len(rec) + 3).encode() + b" " + rec
    raw = _model_members() + tar_header("pax", len(rec), b"x") + rec.ljust(512, b"\x00") \
        + tar_member("1/evil.txt", b"owned")
    arc = _write(tmp_path / "model.tar.gz", raw)
    assert "NUL" in scan_archive(arc).unsafe[0].reason
    with pytest.raises(KdiagError, match="NUL"):
        extract_archive(arc, tmp_path / "x")


def test_cli_refusal_is_exit_2_and_leaves_no_temporary_folder(tmp_path):
    arc = _write(tmp_path / "model.tar.gz", _model_members() + tar_member("../evil.txt", b"x"))
    (tmp_path / "body.json").write_text('{"instances": [1.0]}')
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    res = run_kdiag(["replay", "body.json", "--model", str(arc)], tmp_path, tmpdir=tmp)
    assert res.code == 2
    assert "refuses to extract" in res.stderr and "../evil.txt" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path.parent / "evil.txt").exists()
    assert list(tmp.iterdir()) == []
