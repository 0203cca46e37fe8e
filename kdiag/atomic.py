"""Writing output files atomically: a temporary file in the same folder renamed into place.

A reader (CI, kdiag diff) never sees half a file, and a failed run leaves any previous file
intact. Every command that writes a file goes through here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from kdiag.errors import KdiagError


def write_atomically(path: str | Path, data: bytes | str, *, what: str = "",
                     create_parents: bool = False) -> None:
    """Write `data` to `path`; `what` names the file in the error ("the JUnit report ").

    Without `create_parents` a missing folder is an error: a typo in --out should not make
    folders. Raises KdiagError (exit 2) when the file cannot be written.
    """
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    raw = data.encode("utf-8") if isinstance(data, str) else data
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
        # NamedTemporaryFile creates the file 0600; give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
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
