"""SageMaker Data Capture: read captured invocations from a folder, a file or S3, one at a time.

A capture destination holds JSON-lines files under
`<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<MM>-<SS>-<mmm>-<uuid>.jsonl`, one invocation
per line:

    {"captureData": {"endpointInput":  {"observedContentType": ..., "mode": "INPUT",
                                         "data": "...", "encoding": "JSON" | "CSV" | "BASE64"},
                     "endpointOutput": {... "mode": "OUTPUT" ...}},
     "eventMetadata": {"eventId": ..., "inferenceId": ... (when the caller set one),
                       "inferenceTime": "2024-05-01T13:12:34Z" or with milliseconds},
     "eventVersion": "0"}

`data` is always a string: the payload text for JSON and CSV, base64 for BASE64 (what the endpoint
config's CaptureContentTypeHeader did not list). Decoding keys on `encoding` and keeps
`observedContentType` for whoever interprets the bytes; an unknown encoding is tried as base64,
else kept as text, and never stops the read.

`iter_capture` streams: files are listed (S3: paginated listing), then read line by line, so
memory stays bounded whatever the number of records. `--shard K/N` assigns whole files by a
stable hash of their path below the given prefix, so N machines reading the same prefix with
the same --since/--until split it without overlap. Replay plugs in here: each CaptureRecord has
an id, the decoded input (bytes + content type), the decoded output and the metadata.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from kdiag.errors import KdiagError
from kdiag.safe_io import (
    MAX_LINE_BYTES,
    LineTooLong,
    bounded_lines,
    file_size,
    list_regular_files,
    open_regular,
)

CAPTURE_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")
_HOUR_DIRS = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]*$")


@dataclass(frozen=True)
class CapturedPayload:
    """One side of an invocation, decoded to the bytes the endpoint saw or sent."""

    data: bytes
    content_type: str  # observedContentType as captured (parameters kept)
    encoding: str  # as captured: JSON, CSV, BASE64, or an unknown value
    decode_error: str | None = None  # set when the data could not be decoded as its encoding says

    @property
    def media_type(self) -> str:
        return self.content_type.split(";", 1)[0].strip().lower()

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class CaptureRecord:
    id: str  # inferenceId when the caller set one, else eventId, else "<source>:<line>"
    event_id: str | None
    inference_id: str | None
    inference_time: datetime | None
    input: CapturedPayload | None
    output: CapturedPayload | None
    source: str  # file path or s3:// URI
    line: int  # 1-based line number within the file
    metadata: dict = field(default_factory=dict)  # eventMetadata as captured, plus eventVersion


@dataclass
class CaptureStats:
    """What a read saw; skipped lines are counted by reason, with the first few places."""

    files: int = 0
    files_listed: int = 0
    lines: int = 0
    records: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    filtered_out: int = 0
    # (file, why) for files that could not be read to their end (their records before the
    # damage were kept): reported by name (KD881) while the other files are read.
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    def skip(self, reason: str, where: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if len(self.examples) < 5:
            self.examples.append(f"{where}: {reason}")


@dataclass(frozen=True)
class CaptureFile:
    path: str  # local path or s3://bucket/key
    relative: str  # path below the given prefix (what --shard hashes)
    hour: datetime | None  # from the yyyy/mm/dd/hh folders


# ---- decoding ------------------------------------------------------------------------------

def decode_payload(side: Any) -> CapturedPayload | None:
    """Decode captureData.endpointInput/endpointOutput; None when the side is absent."""
    if not isinstance(side, dict):
        return None
    data = side.get("data")
    ctype = str(side.get("observedContentType") or "")
    enc = str(side.get("encoding") or "")
    if not isinstance(data, str):
        return CapturedPayload(b"", ctype, enc, "no 'data' string")
    if enc in ("JSON", "CSV"):
        return CapturedPayload(data.encode("utf-8"), ctype, enc)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        if enc == "BASE64":
            return CapturedPayload(data.encode("utf-8"), ctype, enc, "invalid base64")
        # An encoding this reader does not know and that is not base64: keep the text.
        return CapturedPayload(data.encode("utf-8"), ctype, enc, f"unknown encoding {enc!r}")
    return CapturedPayload(raw, ctype, enc)


def parse_time(text: str) -> datetime:
    """ISO-8601, with or without milliseconds and Z; naive times are UTC."""
    t = datetime.fromisoformat(text.strip())
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def parse_line(line: bytes, source: str, lineno: int) -> CaptureRecord | str:
    """One capture line -> a record, or the reason it is skipped."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "not JSON (truncated or corrupt line)"
    if not isinstance(obj, dict) or not isinstance(obj.get("captureData"), dict):
        return "no captureData object"
    cd = obj["captureData"]
    meta = obj.get("eventMetadata") if isinstance(obj.get("eventMetadata"), dict) else {}
    inp, out = decode_payload(cd.get("endpointInput")), decode_payload(cd.get("endpointOutput"))
    if inp is None and out is None:
        return "neither endpointInput nor endpointOutput"
    when = None
    if isinstance(meta.get("inferenceTime"), str):
        try:
            when = parse_time(meta["inferenceTime"])
        except ValueError:
            when = None
    event_id = meta.get("eventId")
    inference_id = meta.get("inferenceId")
    rid = inference_id or event_id or f"{source}:{lineno}"
    md = dict(meta)
    if "eventVersion" in obj:
        md["eventVersion"] = obj["eventVersion"]
    return CaptureRecord(id=str(rid), event_id=event_id, inference_id=inference_id,
                         inference_time=when, input=inp, output=out, source=source, line=lineno,
                         metadata=md)


# ---- listing -------------------------------------------------------------------------------

def parse_s3_uri(uri: str) -> tuple[str, str]:
    m = re.match(r"^s3://([^/]+)/?(.*)$", uri)
    if not m or not m.group(1):
        raise KdiagError(f"{uri!r} is not an S3 URI: write s3://bucket/prefix.")
    return m.group(1), m.group(2)


def date_in_path(pattern: re.Pattern[str], rel: str) -> datetime | None:
    """The UTC date/hour that `pattern`'s number groups (yyyy, mm, dd[, hh]) spell in a path,
    or None (no match, or not a real date such as 2024/02/31)."""
    m = pattern.search(rel)
    if not m:
        return None
    try:
        return datetime(*(int(x) for x in m.groups()), tzinfo=UTC)
    except ValueError:
        return None


def hour_of(rel: str) -> datetime | None:
    """The hour folder (yyyy/mm/dd/hh/) a capture file sits in."""
    return date_in_path(_HOUR_DIRS, rel)


def in_hour_window(hour: datetime | None, since: datetime | None, until: datetime | None) -> bool:
    """A file's hour folder can only hold records of that hour (margin: one hour each side)."""
    if hour is None:
        return True
    if since is not None and hour + timedelta(hours=2) <= since:
        return False
    return not (until is not None and hour - timedelta(hours=1) > until)


def list_capture_files(path: str, *, endpoint_url: str | None = None,
                       since: datetime | None = None, until: datetime | None = None
                       ) -> list[CaptureFile]:
    """Capture files under a local folder, a local file, or an s3:// prefix, in key order
    (which is time order within one endpoint/variant)."""
    if path.startswith("s3://"):
        files = _list_s3(path, endpoint_url)
    else:
        p = Path(path)
        if not p.exists():
            raise KdiagError(f"{path}: no such file or folder.")
        if not p.is_dir():
            file_size(p, what="Capture file ")
            files = [CaptureFile(str(p), p.name, hour_of(p.as_posix()))]
        else:
            listing = list_regular_files(p, recursive=True, suffixes=CAPTURE_SUFFIXES)
            note = listing.skipped_note(p)
            if note:
                _warn(note)
            files = []
            for f in listing.files:
                rel = f.relative_to(p).as_posix()
                files.append(CaptureFile(str(f), rel, hour_of(rel)))
    return [f for f in files if in_hour_window(f.hour, since, until)]


def _s3_client(endpoint_url: str | None) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as e:  # pragma: no cover - boto3 is a dependency
        raise KdiagError("reading s3:// needs boto3: pip install boto3.") from e
    return boto3.client("s3", endpoint_url=endpoint_url,
                        config=Config(retries={"max_attempts": 3, "mode": "standard"},
                                      connect_timeout=10, read_timeout=60))


def _aws_error(e: Exception, what: str) -> KdiagError:
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(e, NoCredentialsError):
        return KdiagError(f"{what}: no AWS credentials found. Configure them (aws configure, "
                          "AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY).")
    if isinstance(e, ClientError):
        err = e.response.get("Error", {})
        return KdiagError(f"{what}: S3 answered {err.get('Code', '?')}: "
                          f"{err.get('Message', '')}. Check the bucket name, the prefix and "
                          "that your credentials may read it.")
    return KdiagError(f"{what}: {type(e).__name__}: {e}. Check --endpoint-url and the network.")


def _list_s3(uri: str, endpoint_url: str | None) -> list[CaptureFile]:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = parse_s3_uri(uri)
    client = _s3_client(endpoint_url)
    files = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                     Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith(CAPTURE_SUFFIXES):
                    rel = key[len(prefix):].lstrip("/")
                    files.append(CaptureFile(f"s3://{bucket}/{key}", rel, hour_of(key)))
    except (BotoCoreError, ClientError) as e:
        raise _aws_error(e, f"listing {uri}") from e
    return sorted(files, key=lambda f: f.path)


# ---- reading -------------------------------------------------------------------------------

def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' with 1 <= K <= N: this run reads shard K of N."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m:
        raise KdiagError(f"--shard {text!r}: write K/N, e.g. 2/4 for the second of four shards.")
    k, n = int(m.group(1)), int(m.group(2))
    if not 1 <= k <= n:
        raise KdiagError(f"--shard {text}: K must be between 1 and N (shards are numbered "
                         "from 1).")
    return k, n


def shard_of(relative: str, n: int) -> int:
    """The 1-based shard a file belongs to: stable across machines and Python runs."""
    return zlib.crc32(relative.encode("utf-8")) % n + 1


def _warn(note: str) -> None:
    import sys

    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"kdiag: {note}\n")


def _lines(f: CaptureFile, endpoint_url: str | None, max_line: int
           ) -> Iterator[tuple[int, bytes | LineTooLong]]:
    """(line number, line) in chunks: a line over `max_line` is skipped, never assembled. A gzip
    file that is truncated or fails its CRC check is an error naming the file (after the lines
    that were read), not a silent end."""
    gz = f.path.endswith(".gz")
    if f.path.startswith("s3://"):
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = parse_s3_uri(f.path)
        try:
            body = _s3_client(endpoint_url).get_object(Bucket=bucket, Key=key)["Body"]
            yield from bounded_lines(gzip.GzipFile(fileobj=body) if gz else body, max_line)
        except (BotoCoreError, ClientError) as e:
            raise _aws_error(e, f"reading {f.path}") from e
        except (OSError, EOFError, zlib.error) as e:
            raise KdiagError(f"{f.path}: not a readable gzip file ({e}).") from e
        return
    with open_regular(f.path, what="Capture file ") as raw:
        try:
            yield from bounded_lines(gzip.GzipFile(fileobj=raw) if gz else raw, max_line)
        except (OSError, EOFError, zlib.error) as e:
            what = "a corrupt or truncated gzip file" if gz else "unreadable"
            raise KdiagError(f"{f.path}: {what} ({e}); the records before the damage were "
                             "read, the rest of the file was not.") from e


def iter_capture(path: str, *, endpoint_url: str | None = None, limit: int | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 shard: tuple[int, int] | None = None, stats: CaptureStats | None = None,
                 max_line: int = MAX_LINE_BYTES, keep_going: bool = False
                 ) -> Iterator[CaptureRecord]:
    """Decoded capture records, streamed in file then line order.

    `since`/`until` filter on inferenceTime (records without one are skipped when a window is
    given); `shard` = (K, N) keeps the files of shard K; `limit` stops after that many records.
    Unreadable lines, and lines over `max_line` bytes (never held in memory), are skipped and
    counted in `stats`; a file with no capture record at all
    among its first lines is an error (it is not a capture file). With `keep_going`, a file that
    cannot be read is listed in `stats.unreadable` and the next file is read instead.
    """
    st = stats if stats is not None else CaptureStats()
    files = list_capture_files(path, endpoint_url=endpoint_url, since=since, until=until)
    if not files:
        raise KdiagError(f"{path}: no Data Capture files (*.jsonl) found"
                         + (" in the --since/--until window" if since or until else "") + ".")
    if shard is not None:
        k, n = shard
        files = [f for f in files if shard_of(f.relative, n) == k]
    st.files_listed = len(files)  # this run's files (its shard's), as the Ray engine counts
    yield from records_of_files(
        files, lambda f: (line for _, line in _lines(f, endpoint_url, max_line)), limit=limit,
        since=since, until=until, stats=st, max_line=max_line, keep_going=keep_going)


def records_of_files(files: Iterable[CaptureFile],
                     lines_of: Callable[[CaptureFile], Iterable[bytes | LineTooLong]], *,
                     limit: int | None = None, since: datetime | None = None,
                     until: datetime | None = None, stats: CaptureStats | None = None,
                     max_line: int = MAX_LINE_BYTES, keep_going: bool = False
                     ) -> Iterator[CaptureRecord]:
    """The records of `files` in file then line order, each file's lines from `lines_of` (the
    in-process reader's boto3/local files, or pyarrow's filesystems on a Ray driver): the one
    place for --limit (the first N records) and for what an unreadable file does."""
    st = stats if stats is not None else CaptureStats()
    emitted = 0
    for f in files:
        st.files += 1
        try:
            for rec in records_in_file(f.path, lines_of(f), since=since, until=until,
                                       stats=st, max_line=max_line):
                yield rec
                emitted += 1
                if limit is not None and emitted >= limit:
                    return
        except KdiagError as e:
            if not keep_going:
                raise
            st.unreadable.append((f.path, str(e)))


def require_some_readable(stats: CaptureStats) -> None:
    """A capture none of whose files could be read is bad input (exit 2), whatever the
    engine; when some could, the unreadable ones are findings (KD881) and the run goes on."""
    if stats.unreadable and len(stats.unreadable) >= stats.files:
        first = stats.unreadable[0][1]
        raise KdiagError(first if stats.files == 1 else
                         f"None of the {stats.files} capture files could be read; first: {first}")


def records_in_file(source: str, lines: Iterable[bytes | LineTooLong], *,
                    since: datetime | None = None, until: datetime | None = None,
                    stats: CaptureStats | None = None, max_line: int = MAX_LINE_BYTES
                    ) -> Iterator[CaptureRecord]:
    """The capture records of one file's lines, in line order (the rules of `iter_capture`,
    which every reader of capture files shares: skipped lines counted in `stats`, the
    --since/--until filter, and the error for a file that holds no capture record)."""
    st = stats if stats is not None else CaptureStats()
    good = 0
    bad_head = 0
    for lineno, raw in enumerate(lines, start=1):
        if isinstance(raw, LineTooLong):  # never assembled: counted and skipped
            st.lines += 1
            st.skip(f"line of {raw.size} bytes, over the per-line cap of {max_line} bytes "
                    "(raise it with --max-line-bytes)", f"{source}:{lineno}")
            continue
        line = raw.strip()
        if not line:
            continue
        st.lines += 1
        rec = parse_line(line, source, lineno)
        if isinstance(rec, str):
            st.skip(rec, f"{source}:{lineno}")
            if good == 0:
                bad_head += 1
                if bad_head >= 20:
                    raise KdiagError(f"{source}: the first 20 lines are not Data Capture "
                                     f"records ({rec}); is this a capture file?")
            continue
        good += 1
        if since is not None or until is not None:
            t = rec.inference_time
            if t is None:
                st.skip("no inferenceTime (outside --since/--until)", f"{source}:{lineno}")
                continue
            if (since is not None and t < since) or (until is not None and t >= until):
                st.filtered_out += 1
                continue
        st.records += 1
        yield rec
    if good == 0 and bad_head:
        raise KdiagError(f"{source}: no Data Capture record in it "
                         f"({st.examples[-1] if st.examples else 'no readable line'}).")
