"""Canonical request bodies for a signature: TF Serving REST JSON, JSON lines and CSV.

Every command that shows a payload which works (the sample generator, the "send this instead"
fix of a finding) writes it here, so there is one spelling of each body. The rules come from
TF Serving's JSON parser (tensorflow_serving/util/json_tensor.cc) and from the SageMaker TF
Serving container's request converter (tensorflowServing.js in aws/deep-learning-containers):

- numbers are written so that TF Serving rebuilds exactly the tensor given: float32 values in
  their shortest float32 spelling (`0.1`, not `0.10000000149011612`), float64 in the shortest
  spelling that round-trips, integers as integers (an int input takes only JSON integers);
- NaN and infinities as the bare tokens `NaN`, `Infinity`, `-Infinity`, which TF Serving's parser
  accepts (rapidjson kParseNanAndInfFlag) although strict JSON does not;
- strings as JSON strings, or as `{"b64": "..."}` when they are not valid UTF-8, when the input's
  name ends in `_bytes`, or when the caller asks for it.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import orjson

from kdiag.errors import KdiagError
from kdiag.model.signature import DEFAULT_SIGNATURE, Signature, TensorSpec, format_shape
from kdiag.payloads.snippet import boto3_snippet  # noqa: F401 (part of this module's API)

FLOAT_JSON_DTYPES = frozenset({"float32", "float64"})
INT_JSON_DTYPES = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint32", "uint64"})
NUMERIC_JSON_DTYPES = FLOAT_JSON_DTYPES | INT_JSON_DTYPES

# The Content-Type values the container's njs gate lets through (tensorflowServing.js); any
# other value gets 415 unless a custom inference.py handles the request.
CONTAINER_CONTENT_TYPES = ("application/json", "application/jsonlines", "application/jsons",
                           "text/csv")

# TF Serving's convention for binary string tensors (json_tensor.cc, kBytesTensorNameSuffix).
BYTES_SUFFIX = "_bytes"

_NUMPY_DTYPES: dict[str, np.dtype] = {
    n: np.dtype(n) for n in ("float16", "float32", "float64", "int8", "int16", "int32", "int64",
                             "uint8", "uint16", "uint32", "uint64", "bool", "complex64",
                             "complex128")
}
_OPT_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def numpy_dtype(dtype: str) -> np.dtype | None:
    """The numpy dtype for a TensorFlow dtype name, or None (string, bfloat16, quantised types)."""
    return _NUMPY_DTYPES.get(dtype)


def as_signature_dtype(name: str, value: Any, spec: TensorSpec) -> np.ndarray:
    """Return `value` as an array of `spec`'s dtype, refusing conversions that change values.

    The request text depends on the dtype (an int32 input takes only JSON integers; float32 values
    are best written in float32's shortest spelling), so client data such as float64 arrays or
    Python lists is converted first. A float64 -> float32 conversion rounds exactly as TF Serving
    would (it reads a double and casts it). A conversion that would lose information (1.5 for an
    int input, 300 for uint8, text for a number) raises instead of silently sending other numbers.
    """
    dtype = spec.dtype
    if dtype == "string":
        # dtype=object keeps bytes whole: numpy's fixed-width "S" type drops trailing NUL bytes.
        arr = value if isinstance(value, np.ndarray) else np.array(value, dtype=object)
        if arr.dtype.kind in "SUO":
            return arr
        raise KdiagError(f"Input {name!r} is a string input, but the value holds {arr.dtype} "
                         "numbers: send text, or bytes (they travel as {\"b64\": ...}).")
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    kind = arr.dtype.kind
    target = _NUMPY_DTYPES.get(dtype)
    if target is None:
        return arr
    if kind in "SUO":
        raise KdiagError(f"Input {name!r} is {dtype}, but the value holds text or objects "
                         f"({arr.dtype}): send numbers.")
    if dtype == "bool":
        if kind == "b":
            return arr
        if kind in "iuf" and np.isin(arr, (0, 1)).all():
            return arr.astype(bool)
        raise KdiagError(f"Input {name!r} is bool, but the value holds {arr.dtype} values other "
                         "than 0 and 1: TF Serving takes only true/false for it.")
    if kind == "c" and target.kind != "c":
        raise KdiagError(f"Input {name!r} is {dtype}, but the value holds complex numbers.")
    if target.kind in "iu" and arr.size:
        if kind == "f":
            bad = ~np.isfinite(arr) | (arr != np.round(arr))
            if bad.any():
                example = arr[bad].flat[0]
                raise KdiagError(
                    f"Input {name!r} is {dtype}, but the value holds {example!r}, which is not a "
                    f"whole number: TF Serving accepts only JSON integers for an {dtype} input "
                    "(json_tensor.cc). Round or cast the data on the client.")
        info = np.iinfo(target)
        lo, hi = arr.min(), arr.max()
        if lo < info.min or hi > info.max:
            raise KdiagError(f"Input {name!r} is {dtype}, but the value holds "
                             f"{lo if lo < info.min else hi}, outside {dtype}'s range "
                             f"[{info.min}, {info.max}].")
    if arr.dtype == target:
        return arr
    return arr.astype(target)


def _numeric_json(arr: np.ndarray) -> bytes:
    """JSON text of a numeric or bool array, with NaN/Infinity tokens where orjson writes null."""
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.ndim and not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    # orjson writes float32 values in their shortest float32 spelling, float64 likewise.
    out = orjson.dumps(arr[()] if arr.ndim == 0 else arr, option=_OPT_NUMPY)
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            # orjson writes every non-finite float as `null`, and a numeric array yields no other
            # `null`, so the n-th `null` is the n-th non-finite value in C order.
            vals = np.atleast_1d(arr)[np.atleast_1d(bad)]
            tokens = np.where(np.isnan(vals), "NaN", np.where(vals > 0, "Infinity", "-Infinity"))
            parts = out.split(b"null")
            pieces: list[bytes] = [b""] * (2 * len(parts) - 1)
            pieces[0::2] = parts
            pieces[1::2] = [t.encode() for t in tokens.tolist()]
            out = b"".join(pieces)
    return out


def _string_values(name: str, arr: np.ndarray, force_b64: bool) -> np.ndarray:
    """An object array of JSON-ready leaves: str, or {"b64": ...} for binary data.

    One decision per input: if any element is not valid UTF-8 (or b64 is forced) every element
    is sent as b64, so an input's values do not switch form from one instance to the next.
    """
    data: list[bytes] = []
    for x in arr.ravel().tolist():
        if isinstance(x, str):
            try:
                data.append(x.encode("utf-8"))
            except UnicodeEncodeError:
                raise KdiagError(f"Input {name!r} holds a string that cannot be encoded as "
                                 "UTF-8 (a lone surrogate); send bytes instead.") from None
        elif isinstance(x, bytes | bytearray | memoryview):
            data.append(bytes(x))
        else:
            raise KdiagError(f"Input {name!r} is a string input, but holds a "
                             f"{type(x).__name__} value ({x!r}): send text or bytes.")
    leaves: list[Any] = []
    if not force_b64:
        try:
            leaves = [b.decode("utf-8") for b in data]
        except UnicodeDecodeError:
            force_b64 = True
    if force_b64:
        leaves = [{"b64": base64.b64encode(b).decode("ascii")} for b in data]
    out = np.empty(len(leaves), dtype=object)
    out[:] = leaves
    return out.reshape(arr.shape)


def _wants_b64(name: str, b64: bool | Collection[str]) -> bool:
    if isinstance(b64, bool):
        return b64 or name.endswith(BYTES_SUFFIX)
    return name in b64 or name.endswith(BYTES_SUFFIX)


def _prepare(tensors: Mapping[str, Any], signature: Signature,
             b64: bool | Collection[str]) -> dict[str, np.ndarray]:
    """Check the names, convert dtypes, and turn string inputs into JSON-ready leaves."""
    missing = [k for k in signature.inputs if k not in tensors]
    extra = [k for k in tensors if k not in signature.inputs]
    if missing or extra:
        want = ", ".join(signature.inputs) or "none"
        got = ", ".join(map(str, tensors)) or "none"
        raise KdiagError(f"Signature {signature.name!r} takes the inputs {want}; the tensors given "
                         f"are {got}. Name one tensor per input, exactly.")
    out: dict[str, np.ndarray] = {}
    for name, spec in signature.inputs.items():
        arr = as_signature_dtype(name, tensors[name], spec)
        if spec.dtype == "string":
            arr = _string_values(name, arr, _wants_b64(name, b64))
        out[name] = arr
    return out


def _value_json(arr: np.ndarray) -> bytes:
    if arr.dtype == object:
        try:
            return orjson.dumps(arr.tolist())
        except orjson.JSONEncodeError as e:
            raise KdiagError(f"Cannot write the value as JSON: {e}.") from None
    return _numeric_json(arr)


def _instance_count(prepared: Mapping[str, np.ndarray]) -> int:
    """Row format splits every input along axis 0, so all must have one and share its size."""
    sizes: dict[str, int] = {}
    for name, arr in prepared.items():
        if arr.ndim == 0:
            raise KdiagError(f"Input {name!r} is a scalar, and row format (\"instances\") always "
                             "adds a batch axis: send it columnar (\"inputs\") instead.")
        sizes[name] = arr.shape[0]
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{k}: {v}" for k, v in sizes.items())
        raise KdiagError("Row format (\"instances\") needs the same axis-0 size for every input, "
                         f"since each instance holds one slice of each ({listing}): send the "
                         "tensors columnar (\"inputs\") instead.")
    n = next(iter(sizes.values()), 0)
    if n == 0:
        # json_tensor.cc: FormatError "No values in 'instances' array"
        raise KdiagError("There are no instances (axis 0 has size 0): TF Serving rejects an "
                         "empty list with \"No values in 'instances' array\".")
    return n


def _instance_json(prepared: Mapping[str, np.ndarray], i: int) -> bytes:
    """One row-format instance: a bare value (one input) or an object keyed by input name."""
    if len(prepared) == 1:
        (arr,) = prepared.values()
        return _value_json(arr[i, ...])
    return b"{" + b",".join(orjson.dumps(k) + b":" + _value_json(v[i, ...])
                            for k, v in prepared.items()) + b"}"


def tfs_request(tensors: Mapping[str, Any], signature: Signature, *, columnar: bool = False,
                signature_name: str | None = None, b64: bool | Collection[str] = False) -> str:
    """The TF Serving REST predict body that carries `tensors` (full tensors, batch axis included).

    Row format `{"instances": [...]}` splits every tensor along axis 0: one bare value per
    instance for a single-input signature, one object keyed by input name otherwise. Columnar
    `{"inputs": ...}` sends each tensor as written. `signature_name` (default: the signature's
    own name) is written only when it is not serving_default, the one TF Serving picks without
    it. `b64` forces {"b64": ...} for all string inputs (True) or for the named ones.
    """
    prepared = _prepare(tensors, signature, b64)
    head = b"{"
    name = signature_name or signature.name
    if name != DEFAULT_SIGNATURE:
        head += b'"signature_name":' + orjson.dumps(name) + b","
    if columnar:
        if len(prepared) == 1:
            payload = _value_json(next(iter(prepared.values())))
        else:
            payload = b"{" + b",".join(orjson.dumps(k) + b":" + _value_json(v)
                                      for k, v in prepared.items()) + b"}"
        return (head + b'"inputs":' + payload + b"}").decode("utf-8")
    n = _instance_count(prepared)
    if len(prepared) == 1:
        # The instances list of a single input is the tensor itself, axis 0 first.
        payload = _value_json(next(iter(prepared.values())))
    else:
        payload = b"[" + b",".join(_instance_json(prepared, i) for i in range(n)) + b"]"
    return (head + b'"instances":' + payload + b"}").decode("utf-8")


def _require_default_signature(signature: Signature, content_type: str) -> None:
    if signature.name != DEFAULT_SIGNATURE:
        raise KdiagError(
            f"{content_type} cannot choose signature {signature.name!r}: the container wraps "
            "the body as {\"instances\": ...} without a \"signature_name\", so TF Serving runs "
            "serving_default. Send application/json with a TF Serving body that names it.")


def jsonlines_request(tensors: Mapping[str, Any], signature: Signature, *,
                      b64: bool | Collection[str] = False) -> str:
    """One instance per line: a JSON value (single input) or an object keyed by input name.

    The container merges the lines into `{"instances": [...]}`, so this is row format; it
    cannot carry a signature_name. Ends with a newline.
    """
    _require_default_signature(signature, "application/jsonlines")
    prepared = _prepare(tensors, signature, b64)
    n = _instance_count(prepared)
    return b"\n".join(_instance_json(prepared, i) for i in range(n)).decode("utf-8") + "\n"


def csv_allowed(signature: Signature) -> tuple[bool, str]:
    """Whether text/csv can carry this signature, and if not, why (empty reason when it can).

    The container's CSV converter (tensorflowServing.js, csv_request) makes each line one
    instance: a line with commas becomes a flat list, a line without one a bare scalar, and only
    number-looking fields stay numbers. So CSV fits a single numeric input whose instances are
    scalars (shape (N,)) or flat rows of a known length of at least 2 (shape (N, F)).
    """
    if len(signature.inputs) != 1:
        names = ", ".join(signature.inputs) or "none"
        return False, (f"the signature has {len(signature.inputs)} inputs ({names}), and a CSV "
                       "line is one unnamed row for a single input")
    ((name, spec),) = signature.inputs.items()
    if spec.dtype not in NUMERIC_JSON_DTYPES:
        return False, (f"input {name!r} is {spec.dtype}, and the CSV converter makes number-like "
                       "fields numbers and quotes the rest differently by container generation, "
                       "so only numeric inputs travel reliably")
    if spec.shape is None:
        return False, f"input {name!r} has an unknown rank, so the row length cannot be checked"
    if len(spec.shape) == 0:
        return False, (f"input {name!r} is a scalar (shape ()), and every CSV line becomes one "
                       "instance along a batch axis the signature does not have")
    if len(spec.shape) == 1:
        return True, ""
    if len(spec.shape) == 2:
        width = spec.shape[1]
        if width == -1:
            return False, (f"the length of input {name!r}'s rows is unknown in the signature "
                           f"(shape {format_shape(spec.shape)}), so kdiag cannot tell how many "
                           "columns each line needs")
        if width == 1:
            return False, (f"input {name!r} has shape {format_shape(spec.shape)}: a one-column "
                           "CSV line becomes a scalar instance, so TF Serving builds shape (N,) "
                           "instead of (N, 1)")
        return True, ""
    return False, (f"input {name!r} has instances of shape {format_shape(spec.instance_shape)}, "
                   "which need nested lists, and a CSV line is one flat row")


def csv_request(tensors: Mapping[str, Any], signature: Signature) -> str:
    """One line per instance, comma-separated numbers, no header; ends with a newline.

    Raises KdiagError when csv_allowed() says no, and for NaN or infinities: the newer converter
    turns `NaN` into the string "NaN" and the older one quotes every line when the first field is
    not a number, so CSV cannot carry them on any container generation.
    """
    ok, why = csv_allowed(signature)
    if not ok:
        raise KdiagError(f"text/csv cannot carry signature {signature.name!r}: {why}. "
                         "Send application/json instead.")
    _require_default_signature(signature, "text/csv")
    prepared = _prepare(tensors, signature, False)
    ((name, arr),) = prepared.items()
    spec = signature.inputs[name]
    assert spec.shape is not None
    if arr.ndim != len(spec.shape) or (arr.ndim == 2 and arr.shape[1] != spec.shape[1]):
        raise KdiagError(f"Input {name!r} has shape {format_shape(arr.shape)}, but the "
                         f"signature says {format_shape(spec.shape)}.")
    _instance_count(prepared)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise KdiagError(f"Input {name!r} holds NaN or infinite values, which CSV cannot carry "
                         "(the container turns them into strings or quotes the whole body): "
                         "send application/json, where TF Serving accepts NaN and Infinity.")
    text = _numeric_json(arr).decode("ascii")
    # The rows are the JSON text of the array without its brackets, one line per instance.
    rows = text[1:-1].replace(",", "\n") if arr.ndim == 1 else text[2:-2].replace("],[", "\n")
    return rows + "\n"
