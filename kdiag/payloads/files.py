"""Reading payloads from files: one body, a folder of bodies, or a JSON-lines file of bodies.

Sizes are checked before reading: a body over `read_limit` (by default the endpoint's own body
limit, which the platform never lets through) is not read at all; the caller reports it as the
wire finding it is. JSON-lines files are streamed line by line with a per-line cap, and folders
yield regular files only (kdiag.safe_io), so neither a huge file nor a FIFO in a folder can stall
a run.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kdiag.errors import KdiagError
from kdiag.safe_io import (
    MAX_LINE_BYTES,
    LineTooLong,
    bounded_lines,
    file_size,
    list_regular_files,
    open_regular,
)

MAX_BODY_BYTES = 64 << 20  # well past any endpoint limit; larger files are refused, not read

CONTENT_TYPE_BY_SUFFIX = {".json": "application/json", ".jsonl": "application/jsonlines",
                          ".jsonlines": "application/jsonlines", ".csv": "text/csv"}


@dataclass(frozen=True)
class Payload:
    """One request body to check. `body` is None when it was over the read limit: `size`
    says how large it is, and nothing of it was read."""

    name: str
    body: bytes | None
    content_type: str
    size: int


def content_type_for(path: Path, given: str | None) -> str:
    if given:
        return given
    return CONTENT_TYPE_BY_SUFFIX.get(path.suffix.lower(), "application/json")


def read_body(path: str, limit: int = MAX_BODY_BYTES) -> bytes:
    """One body, refused (KdiagError) when over `limit` bytes: the size is checked first."""
    if path == "-":
        data = sys.stdin.buffer.read(limit + 1)
        if len(data) > limit:
            raise KdiagError(f"The payload on stdin is larger than {limit} bytes "
                             f"({limit >> 20} MiB); no endpoint accepts such a body.")
        return data
    size = file_size(path, what="Payload ")
    if size > limit:
        raise KdiagError(f"Payload {path} is {size} bytes, larger than {limit} bytes "
                         f"({limit >> 20} MiB); no endpoint accepts such a body (real-time: "
                         "6 MiB).")
    with open_regular(path, what="Payload ") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise KdiagError(f"Payload {path} grew past {limit} bytes while being read.")
    return data


def _one(name: str, path: str, ct: str, read_limit: int, hard_limit: int) -> Payload:
    if path == "-":
        data = sys.stdin.buffer.read(max(read_limit, 0) + 1)
        if len(data) > read_limit:
            # Over the limit: measure the rest without keeping it.
            size = len(data)
            while True:
                chunk = sys.stdin.buffer.read(1 << 20)
                if not chunk:
                    break
                size += len(chunk)
            return Payload(name, None, ct, size)
        return Payload(name, data, ct, len(data))
    size = file_size(path, what="Payload ")
    if size > read_limit:
        return Payload(name, None, ct, size)
    return Payload(name, read_body(path, hard_limit), ct, size)


def iter_payloads(path: str, *, each_line: bool, content_type: str | None,
                  read_limit: int = MAX_BODY_BYTES, max_line: int = MAX_LINE_BYTES,
                  on_skip: Callable[[str], None] | None = None) -> Iterator[Payload]:
    """Every payload PATH stands for, streamed: a file, - (stdin), a folder's regular files, or
    (each_line) every non-blank line of a file. Bodies over `read_limit` come back unread
    (body None); a line over `max_line` as well (lines are never assembled past the cap).
    `on_skip` receives the sentence naming folder entries that were not read."""
    hard_limit = max(read_limit, MAX_BODY_BYTES)
    p = Path(path)
    if path != "-" and p.is_dir():
        # Recursive, like every folder argument of kdiag; hidden files and folders (.git,
        # .ipynb_checkpoints) skipped; names are relative paths, so results and golden files
        # pair up run after run.
        listing = list_regular_files(p, recursive=True)
        note = listing.skipped_note(p)
        if note:
            (on_skip or _warn)(note)
        if not listing.files:
            raise KdiagError(f"{p} holds no payload files (subfolders included).")
        for f in listing.files:
            yield _one(f.relative_to(p).as_posix(), str(f), content_type_for(f, content_type),
                       read_limit, hard_limit)
        return
    ct = content_type_for(p, content_type) if path != "-" else (content_type or "application/json")
    if not each_line:
        yield _one("-" if path == "-" else p.name, path, ct, read_limit, hard_limit)
        return
    if content_type is None and ct == "application/jsonlines":
        ct = "application/json"  # each line is one JSON body
    cap = min(max_line, read_limit)
    if path == "-":
        yield from _lines(sys.stdin.buffer, ct, cap)
        return
    file_size(path, what="Payload ")
    with open_regular(path, what="Payload ") as fh:
        yield from _lines(fh, ct, cap)


def _lines(fh, ct: str, cap: int) -> Iterator[Payload]:
    for lineno, line in bounded_lines(fh, cap):
        if isinstance(line, LineTooLong):
            yield Payload(f"line {lineno}", None, ct, line.size)
        elif line.strip():
            yield Payload(f"line {lineno}", line.rstrip(b"\r"), ct, len(line))


def payload_files(folder: Path) -> list[Path]:
    """Every payload file iter_payloads reads under `folder` (to size a progress bar)."""
    return list_regular_files(folder, recursive=True).files


def iter_bodies(path: str, *, each_line: bool, content_type: str | None,
                max_line: int = MAX_LINE_BYTES) -> Iterator[tuple[str, bytes, str]]:
    """Yield (name, body, content type) for every payload PATH stands for; a body or line over
    the caps is a KdiagError naming the cap."""
    for pl in iter_payloads(path, each_line=each_line, content_type=content_type,
                            max_line=max_line):
        if pl.body is None:
            cap = min(max_line, MAX_BODY_BYTES) if each_line else MAX_BODY_BYTES
            raise KdiagError(f"{path}: {pl.name} is {pl.size} bytes, over kdiag's cap of {cap} "
                             "bytes per payload" + (" line (raise it with --max-line-bytes)"
                                                    if each_line else "")
                             + "; no endpoint accepts such a body (real-time: 6 MiB).")
        yield pl.name, pl.body, pl.content_type


def _warn(note: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"kdiag: {note}\n")
