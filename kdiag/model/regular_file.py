"""Read a model's file from disk: a regular file only, within a cap checked before reading.

A model folder may hold a symbolic link named saved_model.pb (git-annex and DVC store files that
way), so links are followed, but what they lead to must be a regular file: a FIFO or a device
(/dev/zero) would hang or never end. The size is checked on the open descriptor, then the read
stops at the cap whatever the file does meanwhile.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from kdiag.errors import KdiagError
from kdiag.limits import LimitExceeded, Limits, active_limits


def read_regular_file(path: Path, cap: str, limits: Limits | None = None) -> bytes:
    """The bytes of `path`; KdiagError when it is missing, special or over `limits.<cap>`."""
    limits = limits or active_limits()
    limit = getattr(limits, cap)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise KdiagError(f"{path} does not exist (or is a link to nothing).") from None
    except OSError as e:
        raise KdiagError(f"Cannot read {path}: {e.strerror}.") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KdiagError(f"{path} is not a regular file (a folder, FIFO or device): kdiag "
                             "does not read it.")
        if st.st_size > limit:
            raise LimitExceeded(str(path), st.st_size, cap, limits)
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise LimitExceeded(str(path), f"more than {len(data) - 1} bytes", cap, limits)
    return data
