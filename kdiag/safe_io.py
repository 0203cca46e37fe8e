"""Reading input files an attacker may have shaped: regular files only, bounded reads and lines.

kdiag reads payload files, payload folders, capture folders and output folders that may come from
places the user does not control. A symlink to /dev/zero or a FIFO in such a folder must not hang
the run, a link must not lead out of the folder, and one 2 GiB line must not be held in memory.
Every input read goes through here:

- `list_regular_files` lists a folder's regular files, skipping (and naming) special files and
  symlinks that lead out of the folder;
- `open_regular` opens one file without blocking on a FIFO (O_NONBLOCK) and refuses anything but
  a regular file (fstat after open, so a swapped path cannot slip a device in);
- `read_regular` reads at most `limit` bytes, after checking the size;
- `bounded_lines` splits a stream into lines in fixed-size chunks, so a line over the cap is
  reported and skipped, never assembled.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from kdiag.errors import KdiagError

CHUNK = 1 << 16
MAX_LINE_BYTES = 64 << 20  # per line of a JSON-lines or capture file; --max-line-bytes raises it


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


@dataclass
class FolderListing:
    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "name (why)"

    def skipped_note(self, folder: str | Path) -> str | None:
        """One sentence naming what was skipped, or None."""
        if not self.skipped:
            return None
        shown = ", ".join(self.skipped[:10]) + (f" and {len(self.skipped) - 10} more"
                                                if len(self.skipped) > 10 else "")
        return (f"skipped {len(self.skipped)} entr{'y' if len(self.skipped) == 1 else 'ies'} of "
                f"{folder} that kdiag does not read (only regular files inside the folder): "
                f"{shown}.")


def list_regular_files(folder: str | Path, *, recursive: bool = False,
                       suffixes: tuple[str, ...] | None = None,
                       hidden: bool = False) -> FolderListing:
    """The regular files of `folder` (sorted), never opening anything.

    A symlink is followed only when its target is a regular file inside `folder`; special files
    (FIFO, device, socket) and links out of the folder are skipped and named in `skipped`.
    Sub-folders are walked when `recursive`, never through a symlink.
    """
    root = Path(folder)
    try:
        real_root = root.resolve(strict=True)
    except OSError as e:
        raise KdiagError(f"Cannot read the folder {root}: {e.strerror or e}.") from None
    out = FolderListing()
    pending = [root]
    while pending:
        d = pending.pop()
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as e:
            raise KdiagError(f"Cannot read the folder {d}: {e.strerror or e}.") from None
        for e in entries:
            rel = Path(e.path).relative_to(root).as_posix()
            if not hidden and e.name.startswith("."):
                continue
            try:
                st = os.lstat(e.path)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                try:
                    target = Path(e.path).resolve(strict=True)
                    tst = os.stat(target)
                except (OSError, RuntimeError):
                    out.skipped.append(f"{rel} (broken symlink)")
                    continue
                if not target.is_relative_to(real_root):
                    out.skipped.append(f"{rel} (symlink to {target}, outside the folder)")
                    continue
                if stat.S_ISDIR(tst.st_mode):
                    out.skipped.append(f"{rel} (symlink to a folder)")
                    continue
                if not stat.S_ISREG(tst.st_mode):
                    out.skipped.append(f"{rel} (symlink to {_kind(tst.st_mode)})")
                    continue
            elif stat.S_ISDIR(st.st_mode):
                if recursive:
                    pending.append(Path(e.path))
                continue
            elif not stat.S_ISREG(st.st_mode):
                out.skipped.append(f"{rel} ({_kind(st.st_mode)})")
                continue
            if suffixes is not None and not e.name.endswith(suffixes):
                continue
            out.files.append(Path(e.path))
    out.files.sort()
    return out


def open_regular(path: str | Path, *, what: str = "") -> BinaryIO:
    """Open a regular file for reading; anything else is a KdiagError naming what it is.

    O_NONBLOCK keeps open() from waiting for a FIFO's writer; the type is checked on the open
    descriptor, so the file read is the file checked.
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise KdiagError(f"{what}{p} does not exist.") from None
    except IsADirectoryError:
        raise KdiagError(f"{what}{p} is a folder.") from None
    except OSError as e:
        raise KdiagError(f"Cannot read {what}{p}: {e.strerror or e}.") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KdiagError(f"{what}{p} is {_kind(st.st_mode)}, not a regular file: kdiag "
                             "reads regular files only.")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return io.FileIO(fd, "rb", closefd=True)  # type: ignore[return-value]
    except BaseException:
        os.close(fd)
        raise


def file_size(path: str | Path, *, what: str = "") -> int:
    """The size of a regular file (following links), refusing special files without opening."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise KdiagError(f"{what}{p} does not exist.") from None
    except OSError as e:
        raise KdiagError(f"Cannot read {what}{p}: {e.strerror or e}.") from None
    if stat.S_ISDIR(st.st_mode):
        raise KdiagError(f"{what}{p} is a folder.")
    if not stat.S_ISREG(st.st_mode):
        raise KdiagError(f"{what}{p} is {_kind(st.st_mode)}, not a regular file: kdiag reads "
                         "regular files only.")
    return st.st_size


def read_regular(path: str | Path, limit: int, *, what: str = "") -> bytes:
    """The whole file, when it is a regular file of at most `limit` bytes."""
    with open_regular(path, what=what) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise KdiagError(f"{what}{path} is larger than the {limit} bytes kdiag reads from it.")
    return data


@dataclass(frozen=True)
class LineTooLong:
    """A line over the cap: its number and size, never its bytes."""

    lineno: int
    size: int


def bounded_lines(fh: BinaryIO, max_line: int = MAX_LINE_BYTES
                  ) -> Iterator[tuple[int, bytes | LineTooLong]]:
    """(line number, line without its newline) for every line of `fh`, read in chunks.

    A line longer than `max_line` comes back as LineTooLong after being skipped chunk by chunk:
    memory stays within max_line + one chunk whatever the file holds.
    """
    lineno = 0
    parts: list[bytes] = []
    held = 0
    over = False
    while True:
        chunk = fh.read(CHUNK)
        if not chunk:
            break
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            piece = chunk[start:] if nl < 0 else chunk[start:nl]
            if not over:
                if held + len(piece) > max_line:
                    over = True
                    parts = []
                else:
                    parts.append(piece)
            held += len(piece)
            if nl < 0:
                break
            lineno += 1
            yield lineno, (LineTooLong(lineno, held) if over else b"".join(parts))
            parts, held, over = [], 0, False
            start = nl + 1
    if held:
        lineno += 1
        yield lineno, (LineTooLong(lineno, held) if over else b"".join(parts))
