"""Writing output files atomically: a temporary file in the same folder renamed into place.

A reader (CI, kdiag diff) never sees half a file, and a failed run leaves any previous file
intact. Every command that writes a file goes through here, and checks its output paths with
`check_output_path` before the run, so a typo'd or read-only folder fails in a second, not after
an hour of replay.

What an existing path gets:
- a regular file is replaced, keeping its permission bits (a 0600 report stays 0600);
- a symlink is refused: replacing it would silently break the link, writing through it would
  write wherever the link points; give the target's path instead;
- a FIFO or a character device (/dev/null, /dev/stdout) is written through, never replaced;
  a FIFO without a reader is an error instead of a hang. Other special files are refused.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from kdiag.errors import KdiagError


def _existing(p: Path) -> os.stat_result | None:
    try:
        return os.lstat(p)
    except (FileNotFoundError, NotADirectoryError):
        return None


def check_output_path(path: str | Path, *, what: str = "", create_parents: bool = False) -> None:
    """Raise KdiagError now when `path` cannot be written later (missing or read-only folder,
    a symlink, a folder or a socket in the way). Creates nothing."""
    p = Path(path)
    st = _existing(p)
    if st is not None:
        _refuse_special(p, st, what)
        if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
            if not os.access(p, os.W_OK):
                raise KdiagError(f"Cannot write {what}{p}: permission denied.")
            return
    folder = p.parent if str(p.parent) else Path(".")
    probe = folder
    while not probe.exists() and not probe.is_symlink():
        if not create_parents:
            raise KdiagError(f"Cannot write {what}{p}: the folder {folder} does not exist.")
        probe = probe.parent
    if not probe.is_dir():
        raise KdiagError(f"Cannot write {what}{p}: {probe} is not a folder.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise KdiagError(f"Cannot write {what}{p}: the folder {probe} is not writable.")


def _refuse_special(p: Path, st: os.stat_result, what: str) -> None:
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        target = os.readlink(p)
        raise KdiagError(f"Cannot write {what}{p}: it is a symlink (to {target}); kdiag does not "
                         "replace or write through links. Give the path of the file itself.")
    if stat.S_ISDIR(mode):
        raise KdiagError(f"Cannot write {what}{p}: it is a folder.")
    if stat.S_ISSOCK(mode) or stat.S_ISBLK(mode):
        kind = "a socket" if stat.S_ISSOCK(mode) else "a block device"
        raise KdiagError(f"Cannot write {what}{p}: it is {kind}.")


def _write_through(p: Path, raw: bytes, what: str) -> None:
    """A FIFO or character device: open it as it is (never created, truncated or replaced)."""
    try:
        fd = os.open(p, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        if e.errno == 6:  # ENXIO: a FIFO nobody reads
            raise KdiagError(f"Cannot write {what}{p}: it is a FIFO with no reader.") from None
        raise KdiagError(f"Cannot write {what}{p}: {e.strerror or e}.") from None
    try:
        os.set_blocking(fd, True)
        view = memoryview(raw)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    except OSError as e:
        raise KdiagError(f"Cannot write {what}{p}: {e.strerror or e}.") from None
    finally:
        os.close(fd)


def write_atomically(path: str | Path, data: bytes | str, *, what: str = "",
                     create_parents: bool = False) -> None:
    """Write `data` to `path`; `what` names the file in the error ("the JUnit report ").

    Without `create_parents` a missing folder is an error: a typo in --out should not make
    folders. Raises KdiagError (exit 2) when the file cannot be written.
    """
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    st = _existing(p)
    if st is not None:
        _refuse_special(p, st, what)
        if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
            _write_through(p, raw, what)
            return
    tmp_name = None
    try:
        if create_parents:
            folder.mkdir(parents=True, exist_ok=True)
        elif not folder.is_dir():
            raise KdiagError(f"Cannot write {what}{p}: the folder {folder} does not exist.")
        with tempfile.NamedTemporaryFile("wb", dir=folder, prefix=f".{p.name}.",
                                         suffix=".tmp", delete=False) as tmp:
            tmp_name = tmp.name
            tmp.write(raw)
            tmp.flush()
            os.fsync(tmp.fileno())
        if st is not None:
            mode = stat.S_IMODE(st.st_mode)  # the existing file's mode is kept
        else:
            # NamedTemporaryFile creates the file 0600; give it the mode a plain open() would.
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, p)
        tmp_name = None
    except OSError as e:
        raise KdiagError(f"Cannot write {what}{p}: {e.strerror or e}.") from None
    finally:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)


@contextmanager
def open_atomically(path: str | Path, *, what: str = "") -> Iterator[BinaryIO]:
    """A binary file to stream into (results of a long replay, one line at a time); it
    replaces `path` only when the block ends without an error, else it is removed."""
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise KdiagError(f"Cannot write {what}{p}: the folder {folder} does not exist.")
    try:
        tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by `with tmp` below
            "wb", dir=folder, prefix=f".{p.name}.", suffix=".tmp", delete=False)
    except OSError as e:
        raise KdiagError(f"Cannot write {what}{p}: {e.strerror or e}.") from None
    done = False
    try:
        with tmp:
            yield tmp
            tmp.flush()
            os.fsync(tmp.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp.name, 0o666 & ~umask)
        os.replace(tmp.name, p)
        done = True
    except OSError as e:
        raise KdiagError(f"Cannot write {what}{p}: {e.strerror or e}.") from None
    finally:
        if not done:
            Path(tmp.name).unlink(missing_ok=True)
