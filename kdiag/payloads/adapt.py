"""Python objects to the request body and Content-Type a client really sends.

The rule, in order (the first that applies wins):

1. `serializer` given: any object with `.serialize(data)` and `.CONTENT_TYPE`, as the SageMaker
   Python SDK's serializers have (v2 `sagemaker.serializers`, v3 `sagemaker.core.serializers`).
   kdiag calls that very object, so the body is exactly what `predictor.predict(data)` sends;
   the SDK is never imported by kdiag. A serializer may return str (sent as UTF-8, as botocore
   encodes it), bytes, or a file-like buffer (v3's RecordSerializer): it is read.
2. bytes / bytearray / memoryview: the body as is.
3. pathlib.Path: the file's bytes; Content-Type from the suffix (.json, .jsonl, .csv).
4. str: a path to an existing file (one line, under 4096 characters) is read like a Path;
   any other string is the body text itself. Pass `Path(...)` to insist on a file, or
   `text.encode()` to insist on a body.
5. a kdiag Payload (what kdiag.sample returns): its body and Content-Type.
6. a pandas DataFrame: CSV rows without header or index, text/csv, as the SDK's CSVSerializer
   writes it (`to_csv(header=False, index=False)`).
7. anything else (a numpy array, a dict of arrays, lists, numbers): JSON as the SDK's
   JSONSerializer writes it, the default serializer of a TensorFlow predictor:
   `json.dumps(array.tolist())`, `json.dumps({k: v.tolist()})`, `json.dumps(obj)`. That is the
   body a client sends, not necessarily one TF Serving accepts: validating it says which.

An explicit `content_type` always wins over the one derived here.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdiag.errors import KdiagError
from kdiag.payloads.files import CONTENT_TYPE_BY_SUFFIX, MAX_BODY_BYTES, read_body

DEFAULT_CONTENT_TYPE = "application/json"
PATH_LIKE_LIMIT = 4096  # longer strings are bodies: no file system has such paths


@dataclass(frozen=True)
class Body:
    """What goes on the wire: the bytes, their Content-Type, and a name for reports."""

    body: bytes
    content_type: str
    name: str | None = None


def to_body(payload: Any, *, content_type: str | None = None, serializer: Any = None,
            name: str | None = None) -> Body:
    """The request `payload` stands for (see the module docstring for the rule)."""
    if serializer is not None:
        return _serialized(payload, serializer, content_type, name)
    if isinstance(payload, bytes | bytearray | memoryview):
        return _sized(Body(bytes(payload), content_type or DEFAULT_CONTENT_TYPE, name))
    if isinstance(payload, Path):
        return _file(payload, content_type, name)
    if isinstance(payload, str):
        if _looks_like_file(payload):
            return _file(Path(payload), content_type, name)
        return _sized(Body(payload.encode("utf-8"), content_type or DEFAULT_CONTENT_TYPE, name))
    if hasattr(payload, "body") and hasattr(payload, "content_type") \
            and isinstance(payload.body, str | bytes):
        raw = payload.body.encode("utf-8") if isinstance(payload.body, str) else payload.body
        return _sized(Body(raw, content_type or payload.content_type,
                           name or getattr(payload, "name", None)))
    if _is_dataframe(payload):
        return _sized(Body(payload.to_csv(header=False, index=False).encode("utf-8"),
                           content_type or "text/csv", name))
    try:
        text = json.dumps(_jsonable(payload))
    except (TypeError, ValueError) as e:
        raise KdiagError(f"Cannot turn a {type(payload).__name__} into a request body: {e}. "
                         "Pass bytes, a str, a file path, a numpy array, a dict of arrays, a "
                         "DataFrame, or the serializer your client uses (serializer=...).") from None
    return _sized(Body(text.encode("utf-8"), content_type or DEFAULT_CONTENT_TYPE, name))


def _serialized(payload: Any, serializer: Any, content_type: str | None,
                name: str | None) -> Body:
    if not callable(getattr(serializer, "serialize", None)):
        raise KdiagError(f"serializer {type(serializer).__name__} has no serialize() method: "
                         "pass a SageMaker SDK serializer such as JSONSerializer().")
    ct = content_type or getattr(serializer, "CONTENT_TYPE", None)
    if not isinstance(ct, str):
        raise KdiagError(f"serializer {type(serializer).__name__} has no CONTENT_TYPE string; "
                         "pass content_type=... as well.")
    try:
        out = serializer.serialize(payload)
    except Exception as e:  # the SDK raises ValueError/TypeError for data it cannot write
        raise KdiagError(f"{type(serializer).__name__}.serialize() refused the payload: "
                         f"{type(e).__name__}: {e}") from None
    if hasattr(out, "read"):
        out = out.read()
    if isinstance(out, str):
        out = out.encode("utf-8")
    if not isinstance(out, bytes | bytearray | memoryview):
        raise KdiagError(f"{type(serializer).__name__}.serialize() returned a "
                         f"{type(out).__name__}; boto3 sends only bytes, str or a file.")
    return _sized(Body(bytes(out), ct, name))


def _looks_like_file(text: str) -> bool:
    if not text or len(text) >= PATH_LIKE_LIMIT or "\n" in text or "\0" in text:
        return False
    try:
        return Path(text).is_file()
    except OSError:  # a name too long for the file system, and the like
        return False


def _file(path: Path, content_type: str | None, name: str | None) -> Body:
    return Body(read_body(str(path)),
                content_type or CONTENT_TYPE_BY_SUFFIX.get(path.suffix.lower(),
                                                           DEFAULT_CONTENT_TYPE),
                name or path.name)


def _sized(body: Body) -> Body:
    if len(body.body) > MAX_BODY_BYTES:
        raise KdiagError(f"The payload is larger than {MAX_BODY_BYTES >> 20} MiB; no endpoint "
                         "accepts such a body (real-time: 6 MiB).")
    return body


def _is_dataframe(obj: Any) -> bool:
    pd = sys.modules.get("pandas")  # a DataFrame exists only if pandas was imported
    return pd is not None and isinstance(obj, pd.DataFrame)


def _jsonable(obj: Any) -> Any:
    """What JSONSerializer hands json.dumps: arrays as lists (at the top level or as a dict's
    values, as the SDK does; nested arrays elsewhere fail there as they fail in the SDK)."""
    np = sys.modules.get("numpy")
    if np is None:
        return obj
    if isinstance(obj, dict):
        return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj
