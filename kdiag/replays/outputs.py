"""Load an output set (records of named outputs) from a file, a folder or S3, for `kdiag diff`.

What each input holds, and what a record is:

- TF Serving / endpoint response, one JSON document: row format `{"predictions": [...]}` (one
  value per instance, or one object keyed by output name per instance when the signature has
  several outputs), columnar `{"outputs": ...}` (a value for one output, an object of name ->
  value for several), `{"results": [...]}` (regress), or a bare list (what `.tolist()` of a
  prediction gives). A record is an instance: the first axis. A one-output response carries no
  output name; it pairs with the other side's single output.
- `.npy`: one output, records along the first axis. `.npz`: one output per array, records along
  the first axis; an optional `__ids__` array holds the record ids.
- JSON lines of results (replay and probe write these; `result_line` builds one), one invocation
  per line, keys:
      "id"          record id (also read: "inferenceId", "eventId", "record_id")
      "outputs"     {name: nested list} (TF Serving columnar), or one nested list
      "predictions" TF Serving row format for the invocation's instances
      "response"    the TF Serving response body, as an object or a JSON string
      "dtypes"      optional {name: dtype}: the exact dtypes, when the writer knew them
      "error"       why this invocation has no outputs (its outputs are then absent)
  A record is an invocation; each output keeps the batch axis of the response.
- SageMaker Data Capture: a folder, a .jsonl file, or s3://bucket/prefix. A record is an
  invocation (id: inferenceId, else eventId); its outputs are decoded from endpointOutput (JSON,
  CSV or BASE64) and keep their batch axis.

Every loader returns kdiag.comparison.OutputSet; unreadable input ends in KdiagError.
"""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from kdiag.comparison.types import OutputSet
from kdiag.diagnosis.findings import Finding
from kdiag.errors import KdiagError
from kdiag.safe_io import file_size

ID_KEYS = ("id", "inferenceId", "eventId", "record_id")
NPZ_IDS_KEY = "__ids__"
UNNAMED = {"predictions": "predictions", "outputs": "outputs", "results": "results"}


class ResponseError(ValueError):
    """A TF Serving error body ({"error": ...}) where outputs were expected."""


# ---- JSON ----------------------------------------------------------------------------------

def loads(data: bytes | str) -> Any:
    """orjson, falling back to the json module for the bare NaN/Infinity tokens that TF Serving
    writes for non-finite floats (json_tensor.cc WriteDecimal) and orjson rejects."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        try:
            return json.loads(data)
        except RecursionError:  # deeper than any output: a ValueError like any bad JSON
            raise ValueError("the JSON nests too deep to be outputs") from None


def _decode_b64(v: Any) -> Any:
    if isinstance(v, dict) and set(v) == {"b64"} and isinstance(v["b64"], str):
        return base64.b64decode(v["b64"])
    if isinstance(v, list):
        return [_decode_b64(x) for x in v]
    return v


def _array(value: Any) -> np.ndarray:
    """A JSON value -> array; b64 objects ({"b64": ...}, `_bytes` outputs) become bytes."""
    try:
        arr = np.asarray(value)
    except ValueError as e:
        raise ValueError(f"ragged nested lists ({e})") from None
    if arr.dtype == object:
        dec = _decode_b64(value)
        arr = np.empty(np.shape(dec) if not isinstance(dec, bytes) else (), dtype=object)
        if isinstance(dec, bytes):
            arr[()] = dec
        else:
            try:
                arr[...] = dec
            except ValueError as e:
                raise ValueError(f"ragged or mixed nested lists ({e})") from None
        if any(isinstance(x, dict | list) or x is None for x in arr.reshape(-1)):
            raise ValueError("values that are neither numbers, booleans nor strings")
    return arr


def response_tensors(doc: Any) -> tuple[dict[str, np.ndarray], bool]:
    """A TF Serving response -> ({name: array with the batch axis first}, unnamed).

    Raises ResponseError for an error body, ValueError for anything else unreadable.
    """
    if isinstance(doc, list):
        return {"predictions": _array(doc)}, True
    if not isinstance(doc, dict):
        raise ValueError(f"a JSON {type(doc).__name__}, not a response object")
    if "error" in doc and not ({"predictions", "outputs", "results"} & set(doc)):
        raise ResponseError(str(doc["error"]))
    if "predictions" in doc:
        preds = doc["predictions"]
        if not isinstance(preds, list):
            raise ValueError("'predictions' is not a list")
        if preds and all(isinstance(p, dict) for p in preds) and not _is_b64(preds[0]):
            names = list(preds[0])
            for p in preds:
                if set(p) != set(names):
                    raise ValueError("instances of 'predictions' have different output names")
            return {n: _array([p[n] for p in preds]) for n in names}, False
        return {"predictions": _array(preds)}, True
    if "outputs" in doc:
        outs = doc["outputs"]
        if isinstance(outs, dict) and not _is_b64(outs):
            return {n: _array(v) for n, v in outs.items()}, False
        return {"outputs": _array(outs)}, True
    if "results" in doc:
        return {"results": _array(doc["results"])}, True
    raise ValueError("no 'predictions', 'outputs' or 'results' key (keys: "
                     f"{', '.join(sorted(map(str, doc))) or 'none'})")


def _is_b64(v: Any) -> bool:
    return isinstance(v, dict) and set(v) == {"b64"}


def csv_tensor(text: str) -> np.ndarray:
    """A CSV response body: one row per instance, numbers (a single column gives shape (n,))."""
    try:
        rows = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
    except csv.Error as e:
        raise ValueError(f"CSV that does not parse ({e})") from None
    if not rows:
        raise ValueError("empty CSV")
    try:
        arr = np.array([[float(x) for x in r] for r in rows])
    except ValueError as e:
        raise ValueError(f"CSV that is not rows of numbers of one length ({e})") from None
    return arr[:, 0] if arr.shape[1] == 1 else arr


# ---- building sets from per-record tensors -------------------------------------------------

class _Builder:
    """Collects per-record outputs, then stacks each column that has one shape and dtype."""

    def __init__(self, source: str, kind: str) -> None:
        self.source, self.kind = source, kind
        self.ids: list[str] = []
        self.cols: dict[str, list] = {}
        self.errors: dict[int, str] = {}
        self.unnamed = True
        self.exact = True
        self.notes: list[Finding] = []

    def add(self, rid: str, tensors: dict[str, np.ndarray] | None, *, error: str | None = None,
            unnamed: bool = True, exact: bool = False) -> None:
        i = len(self.ids)
        self.ids.append(rid)
        if tensors is None:
            self.errors[i] = error or "no outputs"
            tensors = {}
        else:
            self.unnamed = self.unnamed and unnamed
            self.exact = self.exact and exact
        for name in tensors.keys() - self.cols.keys():
            self.cols[name] = [None] * i
        for name, col in self.cols.items():
            col.append(tensors.get(name))

    def build(self) -> OutputSet:
        out: dict[str, Any] = {}
        for name, col in self.cols.items():
            out[name] = _stack(col)
        if not self.cols:
            self.unnamed = False
        return OutputSet(outputs=out, ids=np.asarray(self.ids, dtype=object), source=self.source,
                         kind=self.kind, exact_dtypes=self.exact and bool(self.cols),
                         unnamed=self.unnamed, errors=self.errors, notes=self.notes,
                         n=len(self.ids))


def _stack(col: list) -> Any:
    first = next((c for c in col if c is not None), None)
    if first is None or any(c is None or c.shape != first.shape or c.dtype != first.dtype
                            for c in col):
        return col
    return np.stack(col) if col else np.empty((0,))


# ---- loaders -------------------------------------------------------------------------------

def load_output_set(path: str, *, endpoint_url: str | None = None, limit: int | None = None,
                    since: datetime | None = None, until: datetime | None = None,
                    shard: tuple[int, int] | None = None) -> OutputSet:
    """Load any supported input (see the module docstring); the kind is detected from the path
    and the first line. since/until/shard apply to Data Capture; limit to every kind."""
    if path.startswith("s3://") or Path(path).is_dir():
        return load_capture(path, endpoint_url=endpoint_url, limit=limit, since=since,
                            until=until, shard=shard)
    p = Path(path)
    if not p.exists():
        raise KdiagError(f"{path}: no such file or folder.")
    file_size(p)  # a FIFO or a device is refused here, before any open() could wait on it
    name = p.name.lower()
    if name.endswith(".npy"):
        return _limit(load_npy(p), limit)
    if name.endswith(".npz"):
        return _limit(load_npz(p), limit)
    head = _first_line(p)
    if head is None:
        raise KdiagError(f"{path}: the file is empty; expected outputs (a TF Serving response, "
                         ".npy/.npz, JSON lines or Data Capture).")
    if b'"captureData"' in head:
        return load_capture(path, limit=limit, since=since, until=until, shard=shard)
    if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        return load_result_lines(p, limit=limit)
    data = p.read_bytes()
    try:
        doc = loads(data)
    except ValueError:
        # Not one document: JSON lines (one response or result per line)?
        return load_result_lines(p, limit=limit)
    return _limit(response_set(doc, str(p)), limit)


def _first_line(p: Path) -> bytes | None:
    try:
        opener = gzip.open if p.name.endswith(".gz") else open
        with opener(p, "rb") as fh:
            for line in fh:
                if line.strip():
                    return line
    except OSError as e:
        raise KdiagError(f"{p}: cannot read ({e}).") from e
    return None


def _limit(s: OutputSet, limit: int | None) -> OutputSet:
    if limit is None or limit >= s.n:
        return s
    outs = {k: v[:limit] for k, v in s.outputs.items()}
    return OutputSet(outputs=outs, ids=None if s.ids is None else s.ids[:limit], source=s.source,
                     kind=s.kind, exact_dtypes=s.exact_dtypes, unnamed=s.unnamed,
                     errors={i: e for i, e in s.errors.items() if i < limit}, notes=s.notes,
                     n=limit)


def response_set(doc: Any, source: str) -> OutputSet:
    """One TF Serving response: a record per instance (first axis)."""
    try:
        tensors, unnamed = response_tensors(doc)
    except ResponseError as e:
        raise KdiagError(f"{source} is a TF Serving error response, not outputs: {e}") from e
    except ValueError as e:
        raise KdiagError(f"{source}: not a TF Serving response: {e}.") from e
    lengths = {t.shape[0] if t.ndim else None for t in tensors.values()}
    if None in lengths:
        raise KdiagError(f"{source}: an output is a scalar, so there is no record axis.")
    if len(lengths) > 1:
        raise KdiagError(f"{source}: outputs have different numbers of instances "
                         f"({sorted(lengths)}).")
    kind = "tfs-row" if isinstance(doc, list) or "predictions" in doc else \
        "tfs-columnar" if "outputs" in doc else "tfs-results"
    return OutputSet(outputs=dict(tensors), source=source, kind=kind, exact_dtypes=False,
                     unnamed=unnamed)


def load_npy(p: Path) -> OutputSet:
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise KdiagError(f"{p}: cannot load as .npy ({e}); object arrays (pickles) are not "
                         "loaded.") from e
    except OSError as e:
        raise KdiagError(f"{p}: not a .npy file ({e}).") from e
    if arr.ndim == 0:
        raise KdiagError(f"{p}: a scalar array has no record axis; save an array whose first "
                         "axis is the record.")
    return OutputSet(outputs={p.name.rsplit(".", 1)[0]: arr}, source=str(p), kind="npy",
                     unnamed=True)


def load_npz(p: Path) -> OutputSet:
    try:
        z = np.load(p, allow_pickle=False)
        arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise KdiagError(f"{p}: cannot load as .npz ({e}).") from e
    ids = arrays.pop(NPZ_IDS_KEY, None)
    if not arrays:
        raise KdiagError(f"{p}: the .npz holds no output arrays.")
    lengths = {}
    for k, v in arrays.items():
        if v.ndim == 0:
            raise KdiagError(f"{p}: array '{k}' is a scalar, so it has no record axis.")
        lengths[k] = v.shape[0]
    if len(set(lengths.values())) > 1:
        raise KdiagError(f"{p}: arrays have different numbers of records: "
                         + ", ".join(f"{k} {n}" for k, n in lengths.items()) + ".")
    n = next(iter(lengths.values()))
    if ids is not None:
        if ids.ndim != 1 or len(ids) != n:
            raise KdiagError(f"{p}: {NPZ_IDS_KEY} must be one id per record ({n}), got shape "
                             f"{ids.shape}.")
        ids = np.asarray([x.decode() if isinstance(x, bytes) else str(x) for x in ids.tolist()],
                         dtype=object)
    return OutputSet(outputs=arrays, ids=ids, source=str(p), kind="npz")


def result_line(rid: str, outputs: dict[str, Any] | None = None, *, error: str | None = None,
                ) -> bytes:
    """One line of a results file (replay/probe write these): id, outputs with dtypes, or error.

    NaN/Inf are written as TF Serving writes them (bare NaN/Infinity tokens), which `loads`
    reads back.
    """
    doc: dict[str, Any] = {"id": rid}
    if error is not None:
        doc["error"] = error
    if outputs is not None:
        arrs = {k: np.asarray(v) for k, v in outputs.items()}
        doc["outputs"] = {k: _jsonable(a) for k, a in arrs.items()}
        doc["dtypes"] = {k: str(a.dtype) for k, a in arrs.items()}
    return json.dumps(doc, separators=(",", ":")).encode("utf-8") + b"\n"


def _jsonable(a: np.ndarray) -> Any:
    if a.dtype.kind in "SO":
        return _b64_tree(a.tolist())
    return a.tolist()


def _b64_tree(v: Any) -> Any:
    if isinstance(v, bytes):
        return {"b64": base64.b64encode(v).decode("ascii")}
    if isinstance(v, list):
        return [_b64_tree(x) for x in v]
    return v


def _iter_lines(p: Path) -> Iterator[tuple[int, bytes]]:
    opener = gzip.open if p.name.endswith(".gz") else open
    try:
        with opener(p, "rb") as fh:
            for i, line in enumerate(fh, start=1):
                if line.strip():
                    yield i, line
    except (OSError, EOFError) as e:
        raise KdiagError(f"{p}: cannot read ({e}).") from e


def load_result_lines(p: Path, *, limit: int | None = None) -> OutputSet:
    """JSON lines of results (replay/probe) or of bare TF Serving responses: one invocation each."""
    b = _Builder(str(p), "jsonl")
    skipped: list[str] = []
    any_id = False
    for lineno, line in _iter_lines(p):
        if limit is not None and len(b.ids) >= limit:
            break
        try:
            doc = loads(line)
        except ValueError:
            skipped.append(f"line {lineno}: not JSON")
            if not b.ids and len(skipped) >= 20:
                break
            continue
        if not isinstance(doc, dict | list):
            skipped.append(f"line {lineno}: a JSON {type(doc).__name__}")
            continue
        rid = None
        if isinstance(doc, dict):
            rid = next((str(doc[k]) for k in ID_KEYS if doc.get(k) is not None), None)
        any_id = any_id or rid is not None
        rid = rid if rid is not None else f"#{len(b.ids)}"
        _add_result(b, rid, doc)
    if not b.ids:
        why = skipped[0] if skipped else "no lines"
        raise KdiagError(f"{p}: no readable records ({why}); expected a TF Serving response, "
                         "JSON lines of results, or Data Capture.")
    if skipped:
        b.notes.append(Finding(
            "KD715", "warning", "compare",
            f"{p}: {len(skipped)} lines skipped ({'; '.join(skipped[:3])}).",
            "A truncated last line is usual for a file still being written; otherwise check "
            "the writer."))
    s = b.build()
    if not any_id:
        s.ids = None
    return s


def _add_result(b: _Builder, rid: str, doc: Any) -> None:
    if isinstance(doc, dict) and doc.get("error") is not None and not (
            {"outputs", "predictions", "response", "body"} & set(doc)):
        b.add(rid, None, error=_error_text(doc["error"]))
        return
    body = doc
    if isinstance(doc, dict):
        for key in ("response", "body"):
            if key in doc:
                body = doc[key]
                if isinstance(body, str | bytes):
                    try:
                        body = loads(body)
                    except ValueError:
                        b.add(rid, None, error=f"{key} is not JSON")
                        return
                break
    try:
        tensors, unnamed = response_tensors(body)
    except ResponseError as e:
        b.add(rid, None, error=f"TF Serving error: {e}")
        return
    except ValueError as e:
        b.add(rid, None, error=f"unreadable outputs: {e}")
        return
    exact = False
    dtypes = doc.get("dtypes") if isinstance(doc, dict) else None
    if isinstance(dtypes, dict) and set(dtypes) >= set(tensors):
        try:
            tensors = {k: v.astype(np.dtype(dtypes[k])) for k, v in tensors.items()}
            exact = True
        except (TypeError, ValueError):
            exact = False
    b.add(rid, tensors, unnamed=unnamed, exact=exact)


def _error_text(e: Any) -> str:
    return e if isinstance(e, str) else json.dumps(e)[:300]


def load_capture(path: str, *, endpoint_url: str | None = None, limit: int | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 shard: tuple[int, int] | None = None) -> OutputSet:
    """Data Capture: one record per invocation, outputs decoded from endpointOutput."""
    from kdiag.replays.capture import CaptureStats, iter_capture

    stats = CaptureStats()
    b = _Builder(path, "capture")
    for rec in iter_capture(path, endpoint_url=endpoint_url, limit=limit, since=since,
                            until=until, shard=shard, stats=stats):
        tensors, unnamed, error = capture_output_tensors(rec.output)
        b.add(rec.id, tensors, error=error, unnamed=unnamed)
    if stats.skipped:
        total = sum(stats.skipped.values())
        reasons = ", ".join(f"{n} {r}" for r, n in stats.skipped.items())
        b.notes.append(Finding(
            "KD715", "warning", "compare",
            f"{path}: {total} capture lines skipped ({reasons}); first: {stats.examples[0]}.",
            "A truncated last line happens when a capture file is cut; other reasons point at "
            "files that are not Data Capture output."))
    return b.build()


def capture_output_tensors(out: Any) -> tuple[dict[str, np.ndarray] | None, bool, str | None]:
    """endpointOutput -> (tensors, unnamed, error). JSON is read as a TF Serving response, CSV
    as rows of numbers; anything else is an error record."""
    if out is None:
        return None, True, "no endpointOutput captured (capture mode Input only?)"
    if out.decode_error:
        return None, True, f"endpointOutput: {out.decode_error}"
    media = out.media_type
    if media == "text/csv" or (out.encoding == "CSV" and "json" not in media):
        try:
            return {"predictions": csv_tensor(out.text())}, True, None
        except ValueError as e:
            return None, True, f"endpointOutput CSV: {e}"
    try:
        doc = loads(out.data)
    except ValueError:
        return None, True, (f"endpointOutput ({out.content_type or 'no content type'}, "
                            f"{out.encoding}) is not JSON")
    try:
        tensors, unnamed = response_tensors(doc)
    except ResponseError as e:
        return None, True, f"TF Serving error: {e}"
    except ValueError as e:
        return None, True, f"endpointOutput: {e}"
    return tensors, unnamed, None
