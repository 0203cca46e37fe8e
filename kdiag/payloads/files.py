"""Reading payloads from files: one body, a directory of bodies, or a JSON-lines file of bodies."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from kdiag.errors import KdiagError

MAX_BODY_BYTES = 64 << 20  # well past any endpoint limit; larger files are refused, not read

CONTENT_TYPE_BY_SUFFIX = {".json": "application/json", ".jsonl": "application/jsonlines",
                          ".jsonlines": "application/jsonlines", ".csv": "text/csv"}


def content_type_for(path: Path, given: str | None) -> str:
    if given:
        return given
    return CONTENT_TYPE_BY_SUFFIX.get(path.suffix.lower(), "application/json")


def read_body(path: str) -> bytes:
    if path == "-":
        data = sys.stdin.buffer.read(MAX_BODY_BYTES + 1)
    else:
        p = Path(path)
        try:
            if p.stat().st_size > MAX_BODY_BYTES:
                raise KdiagError(f"{p} is larger than {MAX_BODY_BYTES >> 20} MiB; no endpoint "
                                 "accepts such a body (real-time: 6 MiB).")
            data = p.read_bytes()
        except FileNotFoundError:
            raise KdiagError(f"Payload {p} does not exist.") from None
        except IsADirectoryError:
            raise KdiagError(f"{p} is a directory: pass it as PAYLOAD to validate every "
                             "file in it.") from None
        except OSError as e:
            raise KdiagError(f"Cannot read payload {p}: {e.strerror}.") from None
    if len(data) > MAX_BODY_BYTES:
        raise KdiagError(f"The payload is larger than {MAX_BODY_BYTES >> 20} MiB.")
    return data


def payload_files(folder: Path) -> list[Path]:
    """Every payload file under `folder`, recursively, like every other folder argument of
    kdiag (Data Capture folders too); hidden files and folders (.git, .ipynb_checkpoints) are
    skipped. Sorted by relative path, so results and golden files pair up run after run."""
    return sorted(f for f in folder.rglob("*") if f.is_file() and not any(
        part.startswith(".") for part in f.relative_to(folder).parts))


def iter_bodies(path: str, *, each_line: bool, content_type: str | None
                ) -> Iterator[tuple[str, bytes, str]]:
    """Yield (name, body, content type) for every payload PATH stands for."""
    p = Path(path)
    if path != "-" and p.is_dir():
        files = payload_files(p)
        if not files:
            raise KdiagError(f"{p} holds no payload files (subfolders included).")
        for f in files:
            yield f.relative_to(p).as_posix(), read_body(str(f)), content_type_for(f, content_type)
        return
    data = read_body(path)
    ct = content_type_for(p, content_type) if path != "-" else (content_type or "application/json")
    if not each_line:
        yield ("-" if path == "-" else p.name), data, ct
        return
    if content_type is None and ct == "application/jsonlines":
        ct = "application/json"  # each line is one JSON body
    for i, line in enumerate(data.splitlines(), 1):
        if line.strip():
            yield f"line {i}", line, ct
