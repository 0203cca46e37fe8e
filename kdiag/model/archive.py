"""model.tar.gz: read and extract without ever writing outside the target.

SageMaker extracts model.tar.gz into /opt/ml/model. kdiag reads member names for the layout lint
without extracting anything, and extracts (for running the model) only after every member has
been checked: no absolute paths, no `..`, no links that lead out, no device files, bounded size
and count. Extraction goes to a fresh temporary folder that is renamed into place at the end, so
a failure never leaves a partial tree behind.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kdiag.errors import KdiagError

MAX_TOTAL_BYTES = 20 << 30  # uncompressed; SageMaker's own limit for model data is far lower
MAX_MEMBERS = 200_000
MAX_READ_BYTES = 512 << 20  # any one member kdiag reads into memory (saved_model.pb, code)


@dataclass
class Unsafe:
    name: str
    reason: str


@dataclass
class ArchiveScan:
    files: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    contents: dict[str, bytes] = field(default_factory=dict)
    unsafe: list[Unsafe] = field(default_factory=list)
    total_bytes: int = 0


def _norm(name: str) -> str:
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name


def member_problem(m: tarfile.TarInfo) -> str | None:
    """Why extracting this member could write outside the target, or None when it is safe."""
    name = _norm(m.name)
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return "path goes up with '..'"
    if m.issym():
        target = m.linkname.replace("\\", "/")
        if target.startswith("/"):
            return f"symbolic link to absolute path {m.linkname}"
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        if resolved == ".." or resolved.startswith("../"):
            return f"symbolic link leading out of the archive ({m.linkname})"
    elif m.islnk():
        target = _norm(m.linkname)
        if target.startswith("/") or ".." in target.split("/"):
            return f"hard link leading out of the archive ({m.linkname})"
    elif not (m.isfile() or m.isdir()):
        return "device, FIFO or other special file"
    return None


def _open(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r|*")  # streaming: one pass, no seeking
    except FileNotFoundError:
        raise KdiagError(f"{path} does not exist.") from None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise KdiagError(f"{path} is not a readable tar archive ({e}). Build it with "
                         "tar -czf model.tar.gz 1 code (from the folder holding them).") from None


def scan_archive(path: Path, want: Callable[[str], bool] = lambda n: False) -> ArchiveScan:
    """List members (for the layout lint) and read the ones `want` asks for into memory."""
    scan = ArchiveScan()
    tf = _open(path)
    try:
        with tf:
            for count, m in enumerate(tf, 1):
                if count > MAX_MEMBERS:
                    raise KdiagError(f"{path} has more than {MAX_MEMBERS} members; kdiag stops "
                                     "there rather than exhaust the disk or memory.")
                name = _norm(m.name).rstrip("/")
                problem = member_problem(m)
                if problem:
                    scan.unsafe.append(Unsafe(m.name, problem))
                    continue
                if m.isdir():
                    scan.dirs.append(name)
                    continue
                scan.files.append(name)
                scan.total_bytes += max(m.size, 0)
                if scan.total_bytes > MAX_TOTAL_BYTES:
                    raise KdiagError(f"{path} unpacks to more than {MAX_TOTAL_BYTES >> 30} GiB; "
                                     "kdiag stops there.")
                if m.isfile() and want(name):
                    if m.size > MAX_READ_BYTES:
                        raise KdiagError(f"{name} in {path} is larger than "
                                         f"{MAX_READ_BYTES >> 20} MiB; kdiag will not read it.")
                    fh = tf.extractfile(m)
                    if fh is not None:
                        scan.contents[name] = fh.read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise KdiagError(f"{path} is truncated or corrupt ({e or type(e).__name__}): "
                         "the upload or the tar command did not finish. Build it again.") from None
    return scan


def extract_archive(path: Path, dest: Path | None = None) -> Path:
    """Extract a checked archive into `dest` (a new folder) or a new temporary folder.

    Refuses the whole archive when any member is unsafe, so nothing is written at all.
    """
    scan = scan_archive(path)
    if scan.unsafe:
        bad = "; ".join(f"{u.name}: {u.reason}" for u in scan.unsafe[:3])
        raise KdiagError(f"{path} contains members that would write outside the extraction "
                         f"folder ({bad}). kdiag refuses to extract it; rebuild the archive "
                         "from the model folder with relative paths.")
    if dest is not None and dest.exists():
        raise KdiagError(f"{dest} already exists; kdiag extracts only into a new folder.")
    parent = dest.parent if dest is not None else Path(tempfile.gettempdir())
    staging = Path(tempfile.mkdtemp(prefix=".kdiag-extract-", dir=parent))
    try:
        with tarfile.open(path, mode="r:*") as tf:  # random access: hard links need seeking
            # Python's "data" filter repeats the checks above and also strips set-uid bits
            # and unsafe permissions; kdiag's own pass made the refusal explicit and early.
            tf.extractall(staging, filter="data")
        if dest is None:
            return staging
        os.replace(staging, dest)
        return dest
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise KdiagError(f"Extracting {path} failed ({e}); nothing was left behind.") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
