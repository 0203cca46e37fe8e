"""Data Capture files through pyarrow's filesystems, for engines that read them on many workers.

`CaptureSource` names where the capture lives (a local folder or file, or s3://bucket/prefix,
with an optional endpoint URL for a local S3 such as moto or MinIO); it is a small picklable
value, and each process builds its own pyarrow filesystem from it, with the credentials it
finds itself (the environment, the shared config files, an instance role: boto3's session), so
no secret travels with the job.

`list_files` walks the folders level by level and drops the `yyyy/mm/dd` and `yyyy/mm/dd/hh`
partitions outside --since/--until before listing them: a day out of a year of capture costs a
few dozen LIST calls, not a listing of every key. The rule for which hour folder can hold a
record of the window is capture.in_hour_window, the one the in-process reader applies.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from kdiag.errors import KdiagError
from kdiag.replays.capture import (
    CAPTURE_SUFFIXES,
    CaptureFile,
    date_in_path,
    hour_of,
    in_hour_window,
    parse_s3_uri,
    shard_of,
)
from kdiag.safe_io import MAX_LINE_BYTES, LineTooLong, bounded_lines

_DAY_DIR = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})$")
_HOUR_DIR = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})$")
_FILESYSTEMS: dict[tuple[str, str | None], Any] = {}  # one per process and source


@dataclass(frozen=True)
class CaptureSource:
    uri: str  # local path or s3://bucket/prefix
    endpoint_url: str | None = None

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    @property
    def root(self) -> str:
        """The path pyarrow's filesystem knows the source by (bucket/prefix for S3)."""
        if self.is_s3:
            bucket, prefix = parse_s3_uri(self.uri)
            return f"{bucket}/{prefix}".rstrip("/")
        from pathlib import Path

        return str(Path(self.uri).absolute())

    def filesystem(self) -> Any:
        key = (self.uri if not self.is_s3 else "s3", self.endpoint_url)
        if key not in _FILESYSTEMS:
            _FILESYSTEMS[key] = _s3_filesystem(self.endpoint_url) if self.is_s3 else _local()
        return _FILESYSTEMS[key]

    def display(self, path: str) -> str:
        """A filesystem path as the user names it (s3://... for S3)."""
        return f"s3://{path}" if self.is_s3 else path


def _local() -> Any:
    from pyarrow import fs

    return fs.LocalFileSystem()


def _s3_filesystem(endpoint_url: str | None) -> Any:
    """pyarrow's S3 filesystem with boto3's view of credentials and region."""
    import boto3
    from pyarrow import fs

    session = boto3.Session()
    kwargs: dict[str, Any] = {"region": session.region_name or "us-east-1"}
    creds = session.get_credentials()
    if creds is not None:
        frozen = creds.get_frozen_credentials()
        kwargs.update(access_key=frozen.access_key, secret_key=frozen.secret_key,
                      session_token=frozen.token)
    if endpoint_url:
        u = urlparse(endpoint_url)
        kwargs.update(endpoint_override=u.netloc or u.path, scheme=u.scheme or "https")
    return fs.S3FileSystem(**kwargs)


def _day_of(rel: str) -> datetime | None:
    return date_in_path(_DAY_DIR, rel)


def _hour_dir(rel: str) -> datetime | None:
    return date_in_path(_HOUR_DIR, rel)


def partition_in_window(rel: str, since: datetime | None, until: datetime | None) -> bool:
    """False for a day or hour folder none of whose hours can hold a record of the window."""
    hour = _hour_dir(rel)
    if hour is not None:
        return in_hour_window(hour, since, until)
    day = _day_of(rel)
    if day is not None:  # its first hour decides the `until` side, its last the `since` side
        return (in_hour_window(day + timedelta(hours=23), since, None)
                and in_hour_window(day, None, until))
    return True


def _error(e: Exception, what: str) -> KdiagError:
    return KdiagError(f"{what}: {e}. Check the path, --endpoint-url and your credentials.")


def list_files(src: CaptureSource, *, since: datetime | None = None,
               until: datetime | None = None, shard: tuple[int, int] | None = None
               ) -> list[CaptureFile]:
    """Capture files under the source in path order, partitions outside the window pruned
    before they are listed, files outside it dropped before they are read."""
    from pyarrow import fs as pafs

    fs, root = src.filesystem(), src.root
    try:
        info = fs.get_file_info(root)
    except OSError as e:
        raise _error(e, f"listing {src.uri}") from e
    if info.type == pafs.FileType.File:
        files = [CaptureFile(src.display(root), info.base_name, hour_of(root))]
    elif info.type == pafs.FileType.NotFound:
        raise KdiagError(f"{src.uri}: no such file or folder.")
    else:
        files = []
        _walk(src, root, "", since, until, files)
    files = [f for f in files if in_hour_window(f.hour, since, until)]
    if shard is not None:
        k, n = shard
        files = [f for f in files if shard_of(f.relative, n) == k]
    return files


def _walk(src: CaptureSource, folder: str, rel: str, since: datetime | None,
          until: datetime | None, out: list[CaptureFile]) -> None:
    from pyarrow import fs as pafs

    try:
        entries = src.filesystem().get_file_info(pafs.FileSelector(folder, recursive=False))
    except OSError as e:
        raise _error(e, f"listing {src.display(folder)}") from e
    for entry in sorted(entries, key=lambda e: e.path):
        sub = f"{rel}/{entry.base_name}" if rel else entry.base_name
        if entry.type == pafs.FileType.Directory:
            if partition_in_window(sub, since, until):
                _walk(src, entry.path, sub, since, until, out)
        elif entry.type == pafs.FileType.File and entry.base_name.endswith(CAPTURE_SUFFIXES):
            out.append(CaptureFile(src.display(entry.path), sub, hour_of(sub)))


def read_lines(src: CaptureSource, f: CaptureFile, max_line: int = MAX_LINE_BYTES
               ) -> Iterator[bytes | LineTooLong]:
    """The lines of one capture file (gunzipped for .gz), read as a stream in chunks: a line
    over `max_line` comes back as LineTooLong, never assembled (the in-process reader's rule)."""
    path = f.path[len("s3://"):] if src.is_s3 else f.path
    try:
        stream = src.filesystem().open_input_stream(
            path, compression="gzip" if path.endswith(".gz") else None)
        with io.BufferedReader(stream, buffer_size=1 << 16) as fh:
            for _, line in bounded_lines(fh, max_line):
                yield line
    except (OSError, EOFError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise KdiagError(f"{f.path}: cannot read ({e}).") from e
