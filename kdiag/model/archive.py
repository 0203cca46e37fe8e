"""model.tar.gz: read and extract in one streaming pass, never writing outside the target.

SageMaker extracts model.tar.gz into /opt/ml/model; kdiag reads member names for the layout lint
without extracting anything, and extracts (to run the model) into a fresh private folder.

Why not `tarfile`: on the Python releases people run (3.11.7 here) its pax parsing is quadratic
(CVE-2024-6232) and its `data` extraction filter can be walked around with link chains (the
CVE-2025-4517 class). A model archive needs none of that: tar headers are simple 512-byte
blocks (ustar, GNU long name/link, pax), so this module reads them itself, streaming over the
decompressor, with every cap checked from the header before the bytes are read:
- only regular files and folders are ever written; symbolic links, hard links, devices and
  FIFOs are reported (`ArchiveScan.skipped`), never materialised;
- names that are absolute, go up with `..`, hold NUL or have an over-long part refuse the
  whole archive;
- files are created with O_CREAT|O_EXCL|O_NOFOLLOW relative to a folder descriptor opened with
  O_NOFOLLOW|O_DIRECTORY, so no path ever goes through a link;
- the compressed stream is read to its real end, so a bad CRC or a truncated stream is caught.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import posixpath
import shutil
import stat
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from kdiag.errors import KdiagError
from kdiag.limits import RATIO_FLOOR, LimitExceeded, Limits, active_limits, human

BLOCK = 512
CHUNK = 1 << 20
NAME_MAX = 255  # bytes in one path part (Linux)
PATH_MAX = 4096  # bytes in a whole name

_REGULAR, _CONTIGUOUS, _HARDLINK, _SYMLINK = b"0", b"7", b"1", b"2"
_CHAR, _BLOCKDEV, _DIR, _FIFO = b"3", b"4", b"5", b"6"
_GNU_LONGNAME, _GNU_LONGLINK, _PAX, _PAX_GLOBAL = b"L", b"K", b"x", b"g"
_KIND = {_HARDLINK: "hard link", _SYMLINK: "symbolic link", _CHAR: "character device",
         _BLOCKDEV: "block device", _FIFO: "FIFO", b"S": "GNU sparse file",
         b"V": "volume label", b"M": "multi-volume continuation"}


class ArchiveRefused(KdiagError):
    """The archive holds a member name that would write outside the target."""


@dataclass(frozen=True)
class Unsafe:
    """A member kdiag does not materialise (a link or special file) or refuses (a bad name)."""

    name: str
    reason: str
    kind: str  # "link" | "special" | "name"
    target: str = ""  # a link's target, as stored


@dataclass
class ArchiveScan:
    files: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    contents: dict[str, bytes] = field(default_factory=dict)
    unsafe: list[Unsafe] = field(default_factory=list)
    total_bytes: int = 0
    not_kept: list[str] = field(default_factory=list)  # wanted, but over the read budget


@dataclass(frozen=True)
class Member:
    name: str  # normalised (no leading ./, no trailing /)
    raw_name: str  # as stored, for messages
    type: bytes
    size: int
    linkname: str
    problem: str | None  # why the name is refused


# -- names -----------------------------------------------------------------------------------
def _norm(name: str) -> str:
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def name_problem(name: str) -> str | None:
    """Why writing a member of this name could escape the target, or None."""
    if "\x00" in name:
        return "name holds a NUL byte"
    n = _norm(name)
    if n.startswith("/") or (len(n) > 1 and n[1] == ":"):
        return "absolute path"
    parts = n.split("/")
    if ".." in parts:
        return "path goes up with '..'"
    if len(n.encode("utf-8", "surrogateescape")) > PATH_MAX:
        return f"name longer than {PATH_MAX} bytes"
    if any(len(p.encode("utf-8", "surrogateescape")) > NAME_MAX for p in parts):
        return f"a path part longer than {NAME_MAX} bytes"
    return None


def _clean(name: str) -> str:
    return "/".join(p for p in _norm(name).split("/") if p not in ("", "."))


# -- the compressed stream -------------------------------------------------------------------
def _open_stream(path: Path) -> BinaryIO:
    try:
        fh = open(path, "rb")  # noqa: SIM115 - handed to the decompressor, closed by _walk
    except FileNotFoundError:
        raise KdiagError(f"{path} does not exist.") from None
    except IsADirectoryError:
        raise KdiagError(f"{path} is a folder, not a tar archive.") from None
    except OSError as e:
        raise KdiagError(f"Cannot read {path}: {e.strerror}.") from None
    try:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise KdiagError(f"{path} is not a regular file; kdiag reads archives from files only.")
        magic = fh.read(6)
        fh.seek(0)
    except BaseException:
        fh.close()
        raise
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    if magic[:3] == b"BZh":
        return bz2.BZ2File(fh)  # type: ignore[return-value]
    if magic == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(fh)  # type: ignore[return-value]
    return fh


_STREAM_ERRORS = (EOFError, OSError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)


class _Reader:
    """Exact reads from a decompressing stream, counting what was decompressed."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def read_exact(self, n: int) -> bytes:
        data = self.stream.read(n)
        if len(data) < n:
            more = [data]
            got = len(data)
            while got < n:
                chunk = self.stream.read(n - got)
                if not chunk:
                    raise _Truncated()
                more.append(chunk)
                got += len(chunk)
            data = b"".join(more)
        return data

    def chunks(self, n: int) -> Iterator[bytes]:
        left = n
        while left > 0:
            chunk = self.stream.read(min(CHUNK, left))
            if not chunk:
                raise _Truncated()
            left -= len(chunk)
            yield chunk
        pad = -n % BLOCK
        if pad:
            self.read_exact(pad)


class _Truncated(Exception):
    pass


# -- headers ---------------------------------------------------------------------------------
def _number(field_: bytes) -> int:
    if field_[:1] in (b"\x80", b"\xff"):  # base-256 (GNU) for sizes over 8 GiB
        value = int.from_bytes(field_[1:], "big")
        return -value if field_[:1] == b"\xff" else value
    text = field_.split(b"\x00", 1)[0].strip(b" \x00")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise _Corrupt(f"a header number is not octal ({text[:20]!r})") from None


def _checksum_ok(block: bytes) -> bool:
    stored = _number(block[148:156])
    rest = block[:148] + block[156:]
    unsigned = sum(rest) + 8 * 32
    signed = unsigned - 256 * sum(1 for b in rest if b > 127)  # some old tars summed signed chars
    return stored in (unsigned, signed)


class _Corrupt(Exception):
    pass


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _cstr(raw: bytes) -> str:
    return _text(raw.split(b"\x00", 1)[0])


def _pax_records(data: bytes) -> dict[str, str]:
    """`LEN KEY=VALUE\\n` records, read in one linear pass."""
    out: dict[str, str] = {}
    pos, n = 0, len(data)
    while pos < n:
        if data[pos] == 0:  # NUL padding after the last record
            break
        space = data.find(b" ", pos, min(n, pos + 20))
        if space < 0:
            raise _Corrupt("malformed pax record")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise _Corrupt("malformed pax record length") from None
        end = pos + length
        if length <= space - pos + 1 or end > n or data[end - 1:end] != b"\n":
            raise _Corrupt("malformed pax record")
        key, eq, value = data[space + 1:end - 1].partition(b"=")
        if not eq:
            raise _Corrupt("pax record without '='")
        out[_text(key)] = _text(value)
        pos = end
    return out


def _check_ratio(path: Path, total: int, packed: int, limits: Limits) -> None:
    """A few MB that declare tens of GiB are a bomb: stop before decompressing them."""
    if total > RATIO_FLOOR and total > limits.archive_ratio * max(packed, 1):
        raise LimitExceeded(
            f"{path} declares more than {human(total)} from {human(packed)} compressed: its "
            "compression ratio", f"over {total // max(packed, 1):,}:1", "archive_ratio", limits)


def _members(reader: _Reader, path: Path, limits: Limits,
             packed: int) -> Iterator[tuple[Member, _Reader]]:
    """Yield each member; the caller must consume (or skip) its data before the next one.
    `packed` is the archive file's size, for the compression-ratio cap."""
    longname = longlink = None
    pax: dict[str, str] = {}
    count = 0
    total = 0
    while True:
        try:
            block = reader.read_exact(BLOCK)
        except _Truncated:
            if count == 0:
                raise _Corrupt("no tar header") from None
            raise
        if block == b"\x00" * BLOCK:
            return
        if not _checksum_ok(block):
            raise _Corrupt("a header checksum does not match" if count else
                           "no tar header (checksum mismatch)")
        typ = block[156:157]
        if typ == b"\x00":
            typ = _REGULAR
        size = _number(block[124:136])
        if size < 0:
            raise _Corrupt("negative member size")
        if typ in (_GNU_LONGNAME, _GNU_LONGLINK, _PAX, _PAX_GLOBAL):
            if size > limits.header_bytes:
                raise LimitExceeded(f"A long-name/pax header in {path}", size, "header_bytes",
                                    limits)
            data = b"".join(reader.chunks(size))
            if typ == _GNU_LONGNAME:
                longname = _text(data.rstrip(b"\x00"))
            elif typ == _GNU_LONGLINK:
                longlink = _text(data.rstrip(b"\x00"))
            elif typ == _PAX:
                pax = _pax_records(data)
            else:
                _pax_records(data)  # validated; global records change nothing kdiag reads
            continue
        count += 1
        if count > limits.archive_members:
            raise LimitExceeded(f"The number of members in {path}",
                                f"more than {limits.archive_members:,}", "archive_members", limits)
        name = _cstr(block[0:100])
        # POSIX ustar only: GNU headers ("ustar  ") keep other fields where the prefix would be
        if block[257:263] == b"ustar\x00" and block[345:346] != b"\x00" and longname is None:
            name = _cstr(block[345:500]) + "/" + name
        linkname = _cstr(block[157:257])
        if longname is not None:
            name = longname
        if longlink is not None:
            linkname = longlink
        if "path" in pax:
            name = pax["path"]
        if "linkpath" in pax:
            linkname = pax["linkpath"]
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError:
                raise _Corrupt("pax size is not a number") from None
            if size < 0:
                raise _Corrupt("negative member size")
        if any(k.startswith("GNU.sparse") for k in pax):
            typ = b"S"
        longname = longlink = None
        pax = {}
        # Links, folders, devices and FIFOs carry no data blocks, whatever their size field says.
        data_size = 0 if typ in (_HARDLINK, _SYMLINK, _CHAR, _BLOCKDEV, _DIR, _FIFO) else size
        if data_size > limits.member_bytes:
            raise LimitExceeded(f"Member {name!r} of {path}", data_size, "member_bytes", limits)
        total += data_size
        if total > limits.archive_bytes:
            raise LimitExceeded(f"{path} uncompressed", f"more than {human(total)}",
                                "archive_bytes", limits)
        _check_ratio(path, total, packed, limits)
        member = Member(name=_clean(name), raw_name=name, type=typ, size=data_size,
                        linkname=linkname, problem=name_problem(name))
        yield member, reader


def _drain(reader: _Reader, path: Path, limits: Limits, seen: int, packed: int) -> None:
    """Read the compressed stream to its real end, so its CRC and length are checked."""
    total = seen
    while True:
        chunk = reader.stream.read(CHUNK)
        if not chunk:
            return
        total += len(chunk)
        if total > limits.archive_bytes + (1 << 20):
            raise LimitExceeded(f"{path} uncompressed (with what follows the tar end marker)",
                                f"more than {human(total)}", "archive_bytes", limits)
        _check_ratio(path, total, packed, limits)


def _link_reason(m: Member) -> str:
    kind = _KIND[m.type]
    target = _norm(m.linkname)
    if target.startswith("/") or (len(target) > 1 and target[1] == ":"):
        return f"{kind} to absolute path {m.linkname}"
    base = posixpath.dirname(m.name) if m.type == _SYMLINK else ""
    resolved = posixpath.normpath(posixpath.join(base, target)) if target else "."
    if resolved == ".." or resolved.startswith("../"):
        return f"{kind} leading out of the archive ({m.linkname})"
    return f"{kind} to {m.linkname}"


def _classify(m: Member) -> Unsafe | None:
    if m.problem:
        return Unsafe(m.raw_name, m.problem, "name")
    if m.type in (_SYMLINK, _HARDLINK):
        return Unsafe(m.raw_name, _link_reason(m), "link", m.linkname)
    if m.type in _KIND:
        return Unsafe(m.raw_name, f"{_KIND[m.type]} (device, FIFO or other special file)",
                      "special")
    if m.type not in (_REGULAR, _CONTIGUOUS, _DIR):
        return Unsafe(m.raw_name, f"unknown member type {m.type!r}", "special")
    return None


def _walk(path: Path, limits: Limits, on_member: Callable[[Member, _Reader], None]) -> int:
    """Stream every member of `path` through `on_member`; return the uncompressed size."""
    stream = _open_stream(path)
    try:
        with stream:
            packed = path.stat().st_size
            reader = _Reader(stream)
            total = 0
            for member, rd in _members(reader, path, limits, packed):
                on_member(member, rd)
                total += member.size
            _drain(reader, path, limits, total, packed)
            return total
    except LimitExceeded:
        raise
    except _Corrupt as e:
        raise KdiagError(f"{path} is not a readable tar archive ({e}). Build it with "
                         "tar -czf model.tar.gz 1 code (from the folder holding them).") from None
    except (_Truncated, *_STREAM_ERRORS) as e:
        why = str(e) or "the stream ends before the archive does"
        raise KdiagError(f"{path} is truncated or corrupt ({why}): the upload or the tar "
                         "command did not finish, or the file was damaged. Build it again.") from None


def _skip(member: Member, rd: _Reader) -> None:
    for _ in rd.chunks(member.size):
        pass


# -- scanning --------------------------------------------------------------------------------
def scan_archive(path: Path, want: Callable[[str], bool] = lambda n: False,
                 limits: Limits | None = None) -> ArchiveScan:
    """List members (for the layout lint) and keep the ones `want` asks for in memory, within
    the read-bytes budget (those over it are listed in `not_kept`; `read_member` fetches one)."""
    limits = limits or active_limits()
    scan = ArchiveScan()
    kept = 0

    def on_member(m: Member, rd: _Reader) -> None:
        nonlocal kept
        bad = _classify(m)
        if bad is not None:
            scan.unsafe.append(bad)
            _skip(m, rd)
            return
        if not m.name:
            _skip(m, rd)
            return
        if m.type == _DIR:
            scan.dirs.append(m.name)
            _skip(m, rd)
            return
        scan.files.append(m.name)
        scan.total_bytes += m.size
        if want(m.name):
            if kept + m.size <= limits.read_bytes:
                scan.contents[m.name] = b"".join(rd.chunks(m.size))
                kept += m.size
                return
            scan.not_kept.append(m.name)
        _skip(m, rd)

    _walk(Path(path), limits, on_member)
    return scan


def read_member(path: Path, name: str, limits: Limits | None = None) -> bytes:
    """One regular member's bytes (a second pass, for a member `scan_archive` did not keep),
    within the graph-bytes cap (protobuf's own limit: no saved_model.pb is larger)."""
    limits = limits or active_limits()
    found: list[bytes] = []

    def on_member(m: Member, rd: _Reader) -> None:
        if m.name == name and _classify(m) is None and m.type != _DIR and not found:
            if m.size > limits.graph_bytes:
                raise LimitExceeded(f"{name} in {path}", m.size, "graph_bytes", limits)
            found.append(b"".join(rd.chunks(m.size)))
        else:
            _skip(m, rd)

    _walk(Path(path), limits, on_member)
    if not found:
        raise KdiagError(f"{name} is not a regular file in {path}.")
    return found[0]


# -- extraction ------------------------------------------------------------------------------
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _open_parent(root_fd: int, parts: list[str]) -> int:
    """A descriptor of the folder `parts` under root, created as needed, never via a link."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o700, dir_fd=fd)
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


DISK_RESERVE = 256 << 20  # left free on the file system, whatever the archive wants


def _check_disk(root_fd: int, m: Member, path: Path) -> None:
    """Refuse a member the disk cannot hold (keeping a reserve), before writing any of it."""
    st = os.fstatvfs(root_fd)
    free = st.f_bavail * st.f_frsize
    if m.size + DISK_RESERVE > free:
        raise KdiagError(f"Extracting {path}: member {m.raw_name!r} is {human(m.size)} and the "
                         f"temporary folder's disk has {human(free)} free; kdiag stops rather "
                         "than fill it. Free space or point TMPDIR at a larger disk.")


def _write_file(root_fd: int, m: Member, rd: _Reader, path: Path) -> None:
    _check_disk(root_fd, m, path)
    parts = m.name.split("/")
    parent = _open_parent(root_fd, parts[:-1])
    try:
        leaf = parts[-1]
        try:
            fd = os.open(leaf, _FILE_FLAGS, 0o600, dir_fd=parent)
        except FileExistsError:
            # A later member of the same name replaces an earlier regular file (as tar does);
            # kdiag created everything in this private folder, so it is a file or a folder.
            st = os.stat(leaf, dir_fd=parent, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise ArchiveRefused(f"member {m.raw_name!r} is a file where the archive "
                                     "already made a folder") from None
            os.unlink(leaf, dir_fd=parent)
            fd = os.open(leaf, _FILE_FLAGS, 0o600, dir_fd=parent)
        with os.fdopen(fd, "wb") as out:
            for chunk in rd.chunks(m.size):
                out.write(chunk)
    finally:
        os.close(parent)


def extract_archive(path: Path, dest: Path | None = None, limits: Limits | None = None) -> Path:
    """Extract the regular files and folders of `path` into `dest` (a new folder) or a new
    private temporary folder, in one streaming pass. Links and special files are skipped
    (scan_archive reports them); a member name that could escape refuses the whole archive and
    removes what was written. Nothing is left behind on any error, Ctrl-C included."""
    limits = limits or active_limits()
    path = Path(path)
    if dest is not None and (dest.exists() or dest.is_symlink()):
        raise KdiagError(f"{dest} already exists; kdiag extracts only into a new folder.")
    parent = dest.parent if dest is not None else None
    staging = Path(tempfile.mkdtemp(prefix="kdiag-extract-", dir=parent))  # mode 0700
    try:
        root_fd = os.open(staging, _DIR_FLAGS)
        try:
            def on_member(m: Member, rd: _Reader) -> None:
                if m.problem:
                    raise ArchiveRefused(f"{path} holds member {m.raw_name!r} ({m.problem}) "
                                         "that would write outside the extraction folder. kdiag "
                                         "refuses to extract it; rebuild the archive from the "
                                         "model folder with relative paths.")
                if not m.name or _classify(m) is not None:
                    _skip(m, rd)
                elif m.type == _DIR:
                    os.close(_open_parent(root_fd, m.name.split("/")))
                    _skip(m, rd)
                else:
                    _write_file(root_fd, m, rd, path)

            _walk(path, limits, on_member)
        finally:
            os.close(root_fd)
        if dest is None:
            return staging
        os.replace(staging, dest)
        return dest
    except KdiagError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise KdiagError(f"Extracting {path} failed ({e.strerror or e}); nothing was left "
                         "behind.") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
