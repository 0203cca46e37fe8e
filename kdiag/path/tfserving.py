"""TF Serving's REST predict API: the JSON body -> named tensors, and tensors -> response JSON.

This is the `tfs-parse` and `tfs-response` stages. It reproduces, per TF Serving release,
tensorflow_serving/util/json_tensor.cc (FillPredictRequestFromJson, MakeJsonFromTensors,
MakeJsonFromStatus), the lookups in model_servers/http_rest_api_handler.cc and the status ->
HTTP code table of model_servers/http_server.cc, including the exact error message texts, so
that kdiag can say "TF Serving X.Y answers 400 with this body" without running TF Serving.

Two paths give the same answers: a fast one (orjson + numpy, for bodies that are plainly
valid numeric requests) and an exact one (a rapidjson emulation walked like json_tensor.cc
walks its DOM). Every rejected body, and every body orjson reads differently from rapidjson,
goes through the exact path, so error texts always come from the exact path.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from kdiag.errors import KdiagError
from kdiag.model.signature import DEFAULT_SIGNATURE, JSON_DTYPES, Signature
from kdiag.path.tfs_rapidjson import (
    JObj,
    PrettyWriter,
    RapidJsonError,
    base64_unescape,
    c_escape,
    decode_str,
    encode_str,
    parse,
    write_string,
)

# ---------------------------------------------------------------------------------------------
# Versions
# ---------------------------------------------------------------------------------------------

TFS_VERSIONS: tuple[str, ...] = (
    "1.11", "1.12", "1.13", "1.14", "1.15",
    *(f"2.{m}" for m in range(21)),
)
DEFAULT_TFS_VERSION: tuple[int, int] = (2, 20)
_OLDEST = (1, 11)

_VERSION_RE = re.compile(r"\s*v?(\d+)\.(\d+)(?:\.\d+)?(?:[-.+]?\w*)*\s*")


def parse_tfs_version(version: str | tuple[int, int] | None) -> tuple[int, int]:
    """'2.19', '2.19.1', '2.19.0-rc0' or (2, 19) -> (2, 19); None -> the newest modelled.

    Releases newer than the newest modelled behave like it (json_tensor.cc is unchanged since
    2.18). Releases before 1.11 predate the columnar format and are refused.
    """
    if version is None:
        return DEFAULT_TFS_VERSION
    if isinstance(version, tuple):
        v = (int(version[0]), int(version[1]))
    else:
        m = _VERSION_RE.fullmatch(str(version))
        if not m:
            raise KdiagError(f"Cannot read TF Serving version {version!r}: write it as X.Y, "
                             "for example 2.19.")
        v = (int(m.group(1)), int(m.group(2)))
    if v < _OLDEST:
        raise KdiagError(f"TF Serving {v[0]}.{v[1]} is older than kdiag models (1.11 and "
                         "later); pick --tfs-version 1.11 or newer.")
    return v


@dataclass(frozen=True)
class _Features:
    """What changed in json_tensor.cc and around it, by release (git log of tensorflow/serving)."""

    version: tuple[int, int]

    @property
    def generic_format_error(self) -> bool:  # a17c8920 (1.12) split the one FormatError
        return self.version < (1, 12)

    @property
    def float_check(self) -> str | None:
        # 1.11: rapidjson IsLosslessFloat/IsLosslessDouble; 01c2fb80 (1.12): integers up to
        # 2^24-1 / 2^53-1 and range; 57dac6cd (2.5): no check at all.
        if self.version < (1, 12):
            return "lossless"
        if self.version < (2, 5):
            return "int_range"
        return None

    @property
    def instances_verb(self) -> str:  # a0a9d143 (2.5) fixed the "Excepting" typo
        return "Excepting" if self.version < (2, 5) else "Expecting"

    @property
    def keys_phrase(self) -> str:  # 83863b8f (2.3)
        return " must only have keys: " if self.version < (2, 3) else " keys must be equal to: "

    @property
    def decimal_roundtrip(self) -> bool:  # d7c3b3de (1.14)
        return self.version >= (1, 14)

    @property
    def json_error_body(self) -> bool:  # e1ceccbd, cherry-picked to 2.2.0 as 1ff4d31c
        return self.version >= (2, 2)

    @property
    def zero_batch_response(self) -> bool:  # fee9d120, also in 2.2.0
        return self.version >= (2, 2)

    @property
    def upper_status_names(self) -> bool:
        # Status::ToString() (nested in "Failed to process element ... Error: ") prints
        # "INVALID_ARGUMENT:" in TensorFlow's absl-based status, "Invalid argument:" before.
        # The TF release that switched is not pinned down from the sources kdiag read; 2.11 is
        # the assumed boundary.
        return self.version >= (2, 11)

    @property
    def iterative(self) -> bool:  # 6cb01316 (2.18): iterative + stop-when-done, bounded debug
        return self.version >= (2, 18)


_FEATURES = {v: _Features(v) for v in [DEFAULT_TFS_VERSION]}

# ---------------------------------------------------------------------------------------------
# Status codes
# ---------------------------------------------------------------------------------------------

# model_servers/http_server.cc ToHTTPStatusCode (same table from 1.12 to 2.20).
_HTTP_STATUS = {
    "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429, "FAILED_PRECONDITION": 400, "ABORTED": 409, "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501, "INTERNAL": 500, "UNAVAILABLE": 503, "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}
# TensorFlow's pre-absl error_name() spellings, used by Status::ToString() in old releases.
_OLD_STATUS_NAMES = {
    "CANCELLED": "Cancelled", "UNKNOWN": "Unknown", "INVALID_ARGUMENT": "Invalid argument",
    "DEADLINE_EXCEEDED": "Deadline exceeded", "NOT_FOUND": "Not found",
    "ALREADY_EXISTS": "Already exists", "PERMISSION_DENIED": "Permission denied",
    "UNAUTHENTICATED": "Unauthenticated", "RESOURCE_EXHAUSTED": "Resource exhausted",
    "FAILED_PRECONDITION": "Failed precondition", "ABORTED": "Aborted",
    "OUT_OF_RANGE": "Out of range", "UNIMPLEMENTED": "Unimplemented", "INTERNAL": "Internal",
    "UNAVAILABLE": "Unavailable", "DATA_LOSS": "Data loss",
}


def http_status(code: str) -> int:
    """The HTTP status TF Serving's REST server answers for a canonical error code."""
    return _HTTP_STATUS.get(code.upper(), 500)


def error_body(message: str, *, tfs_version: str | tuple[int, int] | None = DEFAULT_TFS_VERSION
               ) -> str:
    """The error body TF Serving writes for `message` (the status message, no code prefix).

    2.2 and later: rapidjson PrettyWriter, `{\\n    "error": "..."\\n}` (json_tensor.cc
    MakeJsonFromStatus). Before: `{ "error": "<absl::CEscape(message)>" }`, which is not valid
    JSON when the message holds a quote character (http_rest_api_handler.cc FillJsonErrorMsg).
    """
    raw = _error_body_bytes(encode_str(message), _Features(parse_tfs_version(tfs_version)))
    return raw.decode("utf-8", "replace")


def _error_body_bytes(raw_message: bytes, feats: _Features) -> bytes:
    if feats.json_error_body:
        return b'{\n    "error": ' + write_string(raw_message) + b"\n}"
    return b'{ "error": "' + c_escape(raw_message).encode() + b'" }'


# ---------------------------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------------------------

@dataclass
class TfsParse:
    """What TF Serving makes of one predict body: the tensors, or its error answer."""

    ok: bool
    status: int
    code: str | None
    message: str | None
    body: str | None
    format: str | None
    signature_name: str | None
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class TfsResponse:
    """The HTTP answer TF Serving writes for a predict call's outputs."""

    ok: bool
    status: int
    code: str | None
    message: str | None
    body: str
    body_bytes: bytes


class TfsResponseError(KdiagError):
    """TF Serving could not write the outputs as JSON; carries the error answer it sends."""

    def __init__(self, response: TfsResponse) -> None:
        super().__init__(f"TF Serving cannot write these outputs as JSON and answers "
                         f"{response.status}: {response.message}")
        self.response = response


class _Crash(Exception):
    """TF Serving is predicted to overflow its stack: no HTTP answer at all."""


class _Fail(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_string(self, feats: _Features) -> str:
        name = self.code if feats.upper_status_names else _OLD_STATUS_NAMES.get(self.code,
                                                                                 self.code)
        return f"{name}: {self.message}"


def _invalid(message: str) -> _Fail:
    return _Fail("INVALID_ARGUMENT", message)


def _public(text: str) -> str:
    """Messages keep raw request bytes as surrogate escapes; show them as U+FFFD."""
    return encode_str(text).decode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------------

# DataTypeString() names where they differ from kdiag's (types.cc).
_TF_TYPE_NAMES = {"float32": "float", "float64": "double", "float16": "half"}
_NP_TYPES: dict[str, Any] = {
    "float32": np.float32, "float64": np.float64, "float16": np.float16, "int32": np.int32,
    "int16": np.int16, "int8": np.int8, "uint8": np.uint8, "uint16": np.uint16,
    "int64": np.int64, "uint32": np.uint32, "uint64": np.uint64, "bool": np.bool_,
    "complex64": np.complex64, "complex128": np.complex128, "string": object,
}
# AddValueToTensor handles these; any other dtype is UNIMPLEMENTED (json_tensor.cc).
_INT32_VAL = frozenset({"int32", "int16", "int8", "uint8"})
_CONVERTIBLE = JSON_DTYPES
_FAST_TYPES = _CONVERTIBLE - {"string"}
_FLT_MAX = float(np.finfo(np.float32).max)
_IS_FLOAT_BOUND = 3.4028234e38  # rapidjson Value::IsFloat's literal bound, below FLT_MAX
_MAX_NDIM = 64  # numpy's limit; TensorFlow allows 254
TF_MAX_DIMS = 254  # TensorShape::MaxDimensions()


def _tf_type(dtype: str) -> str:
    return _TF_TYPE_NAMES.get(dtype, dtype)


def json_type(v: Any) -> str:
    """rapidjson's name for a value's type, as TF Serving's error texts print it."""
    if v is None:
        return "Null"
    if v is True:
        return "True"
    if v is False:
        return "False"
    if isinstance(v, JObj):
        return "Object"
    if isinstance(v, list):
        return "Array"
    if isinstance(v, str):
        return "String"
    return "Number"


def write_decimal(value: float, *, float32: bool, roundtrip: bool = True) -> str:
    """json_tensor.cc WriteDecimal: `%g` with 6 digits, full precision if that does not
    round-trip (from 1.14), '.0' appended to whole numbers, NaN/Infinity as bare tokens."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = format(value, ".6g")
    if roundtrip:
        back = float(np.float32(float(text))) if float32 else float(text)
        if back != value:
            text = format(value, ".9g" if float32 else ".17g")
    if "." not in text and "e" not in text:
        text += ".0"
    return text


_DEBUG_CAP = 1 << 22


def _debug_string(val: Any, feats: _Features, warnings: list[str] | None = None) -> str:
    """JsonValueToString (before 2.18) / JsonValueToDebugString (2.18+)."""
    if feats.iterative:
        w = PrettyWriter(single_line_arrays=True, limit=256)
    else:
        if isinstance(val, float):
            if -_IS_FLOAT_BOUND <= val <= _IS_FLOAT_BOUND:
                return write_decimal(float(np.float32(val)), float32=True,
                                     roundtrip=feats.decimal_roundtrip)
            return write_decimal(val, float32=False, roundtrip=feats.decimal_roundtrip)
        w = PrettyWriter(cap=_DEBUG_CAP)
    w.accept(val)
    if w.capped and warnings is not None:
        warnings.append(f"TF Serving quotes the whole JSON value in this message; kdiag cut "
                        f"its copy at {_DEBUG_CAP} bytes.")
    return decode_str(bytes(w.buf))


# ---------------------------------------------------------------------------------------------
# Exact path: json_tensor.cc's walk over the rapidjson DOM
# ---------------------------------------------------------------------------------------------

class _Ctx:
    def __init__(self, feats: _Features) -> None:
        self.feats = feats
        self.warnings: list[str] = []
        self.unparsable: list[str] = []  # inputs of more dimensions than TensorFlow allows

    def dbg(self, val: Any) -> str:
        return _debug_string(val, self.feats, self.warnings)

    def format_error(self, doc: Any, text: str) -> _Fail:
        if self.feats.generic_format_error:
            text = ("not formatted correctly. Expecting object with 'instances' or 'input' key "
                    "and a list/array or object as the value respectively.")
        return _invalid(f"JSON Value: {self.dbg(doc)} {text}")

    def type_error(self, val: Any, dtype: str) -> _Fail:
        return _invalid(f"JSON Value: {self.dbg(val)} Type: {json_type(val)} is not of "
                        f"expected type: {_tf_type(dtype)}")


def _is_b64_object(v: Any) -> bool:
    return isinstance(v, JObj) and len(v.members) == 1 and v.members[0][0] == "b64" and \
        isinstance(v.members[0][1], str)


def _dense_shape(val: Any) -> list[int]:
    shape = []
    while isinstance(val, list):
        shape.append(len(val))
        if not val:
            break
        val = val[0]
    return shape


def _float_ok(val: int | float, double: bool, check: str | None) -> bool:
    if check is None or (isinstance(val, float) and not math.isfinite(val)):
        return True
    if check == "int_range":
        kmax = (1 << 53) - 1 if double else (1 << 24) - 1
        if isinstance(val, int):
            if val >= 0:
                return val <= kmax
            # std::abs(INT64_MIN) overflows to itself, which passes the comparison.
            return val == -(1 << 63) or -val <= kmax
        return double or -_FLT_MAX <= val <= _FLT_MAX
    # "lossless" (1.11): rapidjson IsLosslessFloat / IsLosslessDouble
    d = float(val)
    if not double:
        if d < -_FLT_MAX or d > _FLT_MAX:
            return False
        return float(np.float32(d)) == d
    if isinstance(val, int):
        if val >= 0:
            return d < 2.0 ** 64 and int(d) == val
        return d >= -(2.0 ** 63) and int(d) == val
    return True


def _leaf(val: Any, dtype: str, ctx: _Ctx) -> Any:
    """AddValueToTensor for one JSON value; returns the Python value to store."""
    t = type(val)
    if dtype in ("float32", "float64"):
        if t is not int and t is not float:
            raise ctx.type_error(val, dtype)
        double = dtype == "float64"
        if not _float_ok(val, double, ctx.feats.float_check):
            raise _invalid(f"Cannot convert JSON value: {ctx.dbg(val)} to "
                           f"{'double' if double else 'float'} without loss of precision.")
        return val
    if dtype in _INT32_VAL:
        if t is not int or not -(1 << 31) <= val < (1 << 31):
            raise ctx.type_error(val, dtype)
        return val
    if dtype == "int64":
        if t is not int or not -(1 << 63) <= val < (1 << 63):
            raise ctx.type_error(val, dtype)
        return val
    if dtype == "uint32":
        if t is not int or not 0 <= val < (1 << 32):
            raise ctx.type_error(val, dtype)
        return val
    if dtype == "uint64":
        if t is not int or not 0 <= val < (1 << 64):
            raise ctx.type_error(val, dtype)
        return val
    if dtype == "string":
        if t is not str:
            raise ctx.type_error(val, dtype)
        return encode_str(val)
    if dtype == "bool":
        if t is not bool:
            raise ctx.type_error(val, dtype)
        return val
    raise _Fail("UNIMPLEMENTED",
                f"Conversion of JSON Value: {ctx.dbg(val)} to type: {_tf_type(dtype)}")


def _fill(item: Any, shape: list[int], dtype: str, ctx: _Ctx, out: list) -> None:
    """FillTensorProto: every leaf at depth == rank, every list of the expected size."""
    rank = len(shape)
    if rank > _CRASH_NESTING:
        raise _Crash(f"A tensor value nests {rank} levels deep: TF Serving walks tensor values "
                     "recursively and overflows its stack, so the server crashes and its client "
                     "gets no HTTP answer; behind the container, what the caller receives then "
                     "is not predicted (status 0 here means no answer).")
    stack: list[tuple[Any, int]] = [(iter((item,)), 0)]
    while stack:
        it, level = stack[-1]
        val = next(it, _END)
        if val is _END:
            stack.pop()
            continue
        if not isinstance(val, list):
            if level != rank:
                raise _invalid(f"JSON Value: {ctx.dbg(val)} found at incorrect level: "
                               f"{level + 1} in the JSON DOM. Expected at level: {rank}")
            if isinstance(val, JObj):
                if dtype != "string":
                    raise ctx.type_error(val, dtype)
                if not _is_b64_object(val):
                    raise _invalid(f"JSON Value: {ctx.dbg(val)} not formatted correctly for "
                                   "base64 data")
                decoded = base64_unescape(encode_str(val.members[0][1]))
                if decoded is None:
                    raise _invalid("Unable to base64 decode")
                out.append(decoded)
            else:
                out.append(_leaf(val, dtype, ctx))
            continue
        if level >= rank:
            raise _invalid(f"Encountered list at unexpected level: {level} expected < {rank}")
        if len(val) != shape[level]:
            raise _invalid(f"Encountered list at unexpected size: {len(val)} at level: {level} "
                           f"expected size: {shape[level]}")
        stack.append((iter(val), level + 1))


_END = object()


def _shape_str(shape: list[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _ndarray(values: list, shape: list[int], dtype: str, name: str, ctx: _Ctx
             ) -> np.ndarray | None:
    if len(shape) > TF_MAX_DIMS:
        # json_tensor.cc builds the TensorProto happily; the predict call's Tensor::FromProto
        # then refuses the shape (TensorShape allows 254 dimensions) with INVALID_ARGUMENT
        # "tensor parsing error: <input>", after the whole body has been parsed.
        ctx.unparsable.append(name)
        return None
    if len(shape) > _MAX_NDIM:
        ctx.warnings.append(f"Input {name!r} has rank {len(shape)}: TF Serving accepts it and "
                            "hands it to the graph, which decides; kdiag (numpy) cannot hold "
                            f"more than {_MAX_NDIM} dimensions, so it checks only the shape.")
        return TooManyDims(tuple(shape), np.dtype(_NP_TYPES.get(dtype, object)), name)
    n = math.prod(shape)
    if len(values) > n:
        values = values[:n]  # Tensor::FromProto copies the first n values
    np_type = _NP_TYPES.get(dtype, object)
    if dtype == "string":
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
    elif dtype in ("int16", "int8", "uint8"):
        arr = np.array(values, dtype=np.int64).astype(np_type)  # int_val narrowed: wraps
    elif not values:
        arr = np.zeros(0, dtype=np_type)
    else:
        with np.errstate(over="ignore"):
            arr = np.array(values, dtype=np_type)
    return arr.reshape(shape)


class _RowAcc:
    __slots__ = ("values", "size", "shape")

    def __init__(self) -> None:
        self.values: list = []
        self.size: int | None = None
        self.shape: list[int] = []


def _add_instance_item(item: Any, name: str, sig: Signature, accs: dict[str, _RowAcc],
                       ctx: _Ctx) -> None:
    if name not in sig.inputs:
        raise _invalid(f"JSON object: does not have named input: {name}")
    dtype = sig.inputs[name].dtype
    shape = _dense_shape(item)
    out: list = []
    _fill(item, shape, dtype, ctx, out)
    acc = accs.setdefault(name, _RowAcc())
    if acc.size is None:
        acc.size, acc.shape = len(out), shape
    elif acc.size != len(out):
        raise _invalid(f"Expecting tensor size: {acc.size} but got: {len(out)}")
    elif acc.shape != shape:
        raise _invalid(f"Expecting shape {_shape_str(acc.shape)} but got: {_shape_str(shape)}")
    acc.values.extend(out)


def _rows(instances: list, sig: Signature, ctx: _Ctx) -> dict[str, np.ndarray]:
    """FillTensorMapFromInstancesList."""
    feats = ctx.feats
    if not isinstance(instances[0], JObj) and len(sig.inputs) > 1:
        raise _invalid("instances is a plain list, but expecting list of objects as multiple "
                       "input tensors required as per tensorinfo_map")

    def is_element_object(v: Any) -> bool:
        return isinstance(v, JObj) and not _is_b64_object(v)

    objects = is_element_object(instances[0])
    names = sorted(sig.inputs)  # std::set<string>
    accs: dict[str, _RowAcc] = {}
    for index, elem in enumerate(instances):
        if objects:
            if not is_element_object(elem):
                raise _invalid(f"Expecting object but got list at item {index} of input list")
            keys = set()
            seen: set[str] = set()
            for key, value in elem.members:
                keys.add(key)
                if key in seen:
                    ctx.warnings.append(
                        f"Instance {index} repeats the key {key!r}: TF Serving adds both values "
                        "to the batch, so the tensor's values shift (from the first duplicate "
                        "on, rows hold the wrong instance's data).")
                seen.add(key)
                try:
                    _add_instance_item(value, key, sig, accs, ctx)
                except _Fail as e:
                    raise _invalid(f"Failed to process element: {index} key: {key} of "
                                   f"'instances' list. Error: {e.to_string(feats)}") from None
            if keys != set(names):
                raise _invalid(f"Failed to process element: {index} of 'instances' list. JSON "
                               f"object: {ctx.dbg(elem)}{feats.keys_phrase}{','.join(names)}")
        else:
            if is_element_object(elem):
                raise _invalid(f"Expecting value/list but got object at item {index} of input "
                               "list")
            try:
                _add_instance_item(elem, next(iter(sig.inputs)), sig, accs, ctx)
            except _Fail as e:
                raise _invalid(f"Failed to process element: {index} of 'instances' list. "
                               f"Error: {e.to_string(feats)}") from None
    tensors = {}
    for name, acc in accs.items():
        arr = _ndarray(acc.values, [len(instances), *acc.shape], sig.inputs[name].dtype, name,
                       ctx)
        if arr is not None:
            tensors[name] = arr
    return tensors


def _columns(val: Any, sig: Signature, ctx: _Ctx) -> dict[str, np.ndarray]:
    """FillTensorMapFromInputsMap: tensors exactly as written, no batch axis added."""
    if not isinstance(val, JObj) or _is_b64_object(val):
        if len(sig.inputs) > 1:
            raise _invalid("inputs is a plain value/list, but expecting an object as multiple "
                           "input tensors required as per tensorinfo_map")
        items = [(next(iter(sig.inputs)), val)]
    else:
        items = []
        for name in sig.inputs:
            if not val.has(name):
                raise _invalid(f"Missing named input: {name} in 'inputs' object.")
            items.append((name, val.find(name)))
        ignored = [k for k, _ in val.members if k not in sig.inputs]
        if ignored:
            ctx.warnings.append("TF Serving ignores 'inputs' keys that are not signature inputs: "
                                + ", ".join(repr(_public(k)) for k in ignored))
    tensors = {}
    for name, item in items:
        dtype = sig.inputs[name].dtype
        shape = _dense_shape(item)
        out: list = []
        _fill(item, shape, dtype, ctx, out)
        arr = _ndarray(out, shape, dtype, name, ctx)
        if arr is not None:
            tensors[name] = arr
    return tensors


_KNOWN_TOP = ("signature_name", "instances", "inputs")
# rapidjson's recursive parser (before 2.18) and json_tensor.cc's recursive tensor walks use
# one or two stack frames per nesting level; the thresholds are estimates for 8 MiB stacks.
_DEEP_NESTING = 10_000
_CRASH_NESTING = 100_000


def _find_signature(signatures: list[Signature], name: str) -> Signature | None:
    for s in signatures:
        if s.name == name:
            return s
    return None


def _unknown_keys_warning(keys: list[str]) -> str:
    return ("TF Serving ignores top-level keys other than signature_name, instances and inputs: "
            + ", ".join(repr(_public(k)) for k in keys))


def _exact(body: bytes, signatures: list[Signature], feats: _Features) -> TfsParse:
    ctx = _Ctx(feats)
    state: dict[str, Any] = {"format": None, "signature_name": None}
    try:
        tensors = _exact_walk(body, signatures, ctx, state)
        if ctx.unparsable:
            raise _invalid(f"tensor parsing error: {ctx.unparsable[0]}")
    except _Crash as e:
        ctx.warnings.append(str(e))
        return TfsParse(ok=False, status=0, code=None, message=None, body=None,
                        format=state["format"], signature_name=state["signature_name"],
                        tensors={}, warnings=ctx.warnings)
    except _Fail as e:
        return _error_result(e.code, e.message, feats, state["format"], state["signature_name"],
                             ctx.warnings)
    return TfsParse(ok=True, status=200, code=None, message=None, body=None,
                    format=state["format"], signature_name=state["signature_name"],
                    tensors=tensors, warnings=ctx.warnings)


def _error_result(code: str, message: str, feats: _Features, fmt: str | None,
                  signature_name: str | None, warnings: list[str]) -> TfsParse:
    body = _error_body_bytes(encode_str(message), feats).decode("utf-8", "replace")
    return TfsParse(ok=False, status=http_status(code), code=code, message=_public(message),
                    body=body, format=fmt, signature_name=signature_name, tensors={},
                    warnings=warnings)


def _read_document(body: bytes, ctx: _Ctx) -> Any:
    """json_tensor.cc ParseJson, shared by predict, classify and regress: the parse, the
    nesting hazards, and "Is not object"."""
    feats = ctx.feats
    if not body:
        raise _invalid("JSON Parse error: The document is empty")
    try:
        doc, end, depth = parse(body, iterative=feats.iterative)
    except RapidJsonError as e:
        raise _invalid(f"JSON Parse error: {e.text} at offset: {e.offset}") from None
    if feats.iterative and body[end:].strip(b" \t\n\r"):
        ctx.warnings.append(
            f"TF Serving {feats.version[0]}.{feats.version[1]} stops reading at byte {end}, the "
            f"end of the first JSON value, and silently ignores the {len(body) - end} bytes "
            "after it (earlier releases reject such a body).")
    if depth > _CRASH_NESTING and not feats.iterative:
        raise _Crash(f"The body nests {depth} levels deep: TF Serving before 2.18 parses JSON "
                     "recursively and overflows its stack on such a body, so the server crashes "
                     "and its client gets no HTTP answer; behind the container, what the caller "
                     "receives then is not predicted (status 0 here means no answer).")
    if depth >= _DEEP_NESTING:
        ctx.warnings.append(
            f"The body nests {depth} levels deep. TF Serving walks nested lists recursively "
            "(and before 2.18 parses them recursively too), so nesting this deep can crash the "
            "server instead of getting an answer.")
    if not isinstance(doc, JObj):
        raise ctx.format_error(doc, "Is not object")
    return doc


def _exact_walk(body: bytes, signatures: list[Signature], ctx: _Ctx, state: dict
                ) -> dict[str, np.ndarray]:
    feats = ctx.feats
    doc = _read_document(body, ctx)
    if doc.has("signature_name"):
        sig_val = doc.find("signature_name")
        if not isinstance(sig_val, str):
            raise _invalid(f"JSON Value: {ctx.dbg(doc)} not formatted correctly. "
                           "'signature_name' key must be a string value.")
        requested = sig_val
    else:
        requested = ""
    lookup = requested or DEFAULT_SIGNATURE
    state["signature_name"] = lookup
    unknown = [k for k, _ in doc.members if k not in _KNOWN_TOP]
    if unknown:
        ctx.warnings.append(_unknown_keys_warning(unknown))
    sig = _find_signature(signatures, lookup)
    if sig is None:
        raise _invalid(f'Serving signature name: "{lookup}" not found in signature def')
    if not sig.inputs:
        raise _invalid(f"Failed to get input map for signature: {requested or 'DEFAULT'}")
    if doc.has("instances"):
        instances = doc.find("instances")
        if doc.has("inputs"):
            raise ctx.format_error(doc, "Not formatted correctly expecting only one of 'inputs' "
                                        "or 'instances' keys to exist ")
        if not isinstance(instances, list):
            raise ctx.format_error(doc, f"{feats.instances_verb} 'instances' to be an list/array")
        if not instances:
            raise ctx.format_error(doc, "No values in 'instances' array")
        state["format"] = "row"
        return _rows(instances, sig, ctx)
    if doc.has("inputs"):
        state["format"] = "columnar"
        return _columns(doc.find("inputs"), sig, ctx)
    raise _invalid("Missing 'inputs' or 'instances' key")


# ---------------------------------------------------------------------------------------------
# Fast path: orjson + numpy for plainly valid numeric bodies
# ---------------------------------------------------------------------------------------------

# Everything a numeric tensor body is made of; what is left is keys and literals.
_NUMERIC_BYTES = b"0123456789.,[] -+eE\n\r\t"
# Numbers rapidjson (kParseFullPrecisionFlag off) may round differently from a correctly
# rounded parser: 16+ significant digits or an exponent. Matters only for float64 inputs.
_RISKY_FLOAT64 = re.compile(rb"\d[\d.]{15}|\d[eE]")


class _NotFast(Exception):
    pass


def _fast_array(data: Any, dtype: str, feats: _Features) -> np.ndarray:
    try:
        if dtype in ("float32", "float64"):
            if feats.float_check == "lossless":
                raise _NotFast
            with np.errstate(over="ignore"):  # beyond float32's range becomes inf, as in TF
                arr = np.array(data, dtype=np.float32 if dtype == "float32" else np.float64)
            if feats.float_check == "int_range" and arr.size and \
                    float(np.abs(arr).max()) >= (2.0 ** 24 if dtype == "float32" else 2.0 ** 53):
                raise _NotFast
            return arr
        arr = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise _NotFast from None
    if arr.dtype == object:
        raise _NotFast
    if arr.size == 0:
        return np.zeros(arr.shape, dtype=_NP_TYPES[dtype])
    kind = arr.dtype.kind
    if dtype == "bool":
        if kind != "b":
            raise _NotFast
        return arr
    if kind not in "iu":
        raise _NotFast
    lo, hi = int(arr.min()), int(arr.max())
    if dtype in _INT32_VAL:
        if lo < -(1 << 31) or hi >= (1 << 31):
            raise _NotFast
        return arr.astype(np.int64).astype(_NP_TYPES[dtype])
    bounds = {"int64": (-(1 << 63), 1 << 63), "uint32": (0, 1 << 32), "uint64": (0, 1 << 64)}
    low, high = bounds[dtype]
    if lo < low or hi >= high:
        raise _NotFast
    return arr.astype(_NP_TYPES[dtype])


_PLANS: dict[int, tuple[Signature, dict[str, str] | None, bool, bool]] = {}


def _plan(sig: Signature) -> tuple[dict[str, str] | None, bool, bool]:
    """Per signature, once: input dtypes if all are fast-path types, any numeric, any float64."""
    hit = _PLANS.get(id(sig))
    if hit is not None and hit[0] is sig:
        return hit[1], hit[2], hit[3]
    dtypes: dict[str, str] | None = {n: s.dtype for n, s in sig.inputs.items()}
    if not dtypes or not all(d in _FAST_TYPES for d in dtypes.values()):
        dtypes = None
    numeric = dtypes is not None and any(d != "bool" for d in dtypes.values())
    float64 = dtypes is not None and "float64" in dtypes.values()
    if len(_PLANS) > 256:
        _PLANS.clear()
    _PLANS[id(sig)] = (sig, dtypes, numeric, float64)
    return dtypes, numeric, float64


def _count_upto(body: bytes, byte: bytes, limit: int) -> int:
    """Occurrences of one byte, stopping past `limit` (bytes.find is memchr-fast)."""
    n = 0
    i = body.find(byte)
    while i != -1:
        n += 1
        if n > limit:
            break
        i = body.find(byte, i + 1)
    return n


def _only_expected_tokens(body: bytes, keys: list[str], signame: str | None,
                          numeric: bool) -> bool:
    """True when the text holds no strings, no duplicate or nested object members and (for
    numeric inputs) no true/false/null beyond the members orjson returned.

    numpy would silently coerce "1.5", true or null inside a numeric list, and orjson merges
    duplicate keys that rapidjson keeps; counting the bytes that such tokens need catches them.
    With no backslash in the text, every '"', ':', 'u' and 'l' byte is either in a key, in the
    signature_name value, or in a token that disqualifies the body.
    """
    if body.find(b"\\") != -1:
        return False
    texts = keys if signame is None else [*keys, signame]
    joined = "".join(texts)
    expected = {b'"': 2 * len(texts), b":": len(keys) + joined.count(":")}
    if numeric:
        expected[b"u"] = joined.count("u")
        expected[b"l"] = joined.count("l")
    if sum(expected.values()) > 256:
        rest = body.translate(None, _NUMERIC_BYTES)
        return all(rest.count(c) == n for c, n in expected.items()) and b"null" not in rest \
            and (not numeric or (b"tru" not in rest and b"fals" not in rest))
    return all(_count_upto(body, c, n) == n for c, n in expected.items())


class ShapeOnly:
    """A tensor known by its shape and dtype; the values are built only if asked for.

    validate needs shapes and dtypes, not values, and building a float array from nested lists
    costs about as much as parsing the JSON. np.shape/np.ndim read `shape`/`ndim`;
    np.asarray(t) builds the real array (with the fast path's own conversion).
    """

    __slots__ = ("shape", "dtype", "_data")

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, data: Any) -> None:
        self.shape = shape
        self.dtype = dtype
        self._data = data

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        with np.errstate(over="ignore"):  # beyond float32's range becomes inf, as in TF
            return np.array(self._data, dtype=dtype or self.dtype)

    def __repr__(self) -> str:
        return f"ShapeOnly(shape={self.shape}, dtype={self.dtype})"


class TooManyDims(ShapeOnly):
    """A tensor TF Serving builds (65 to 254 dimensions) that numpy cannot hold: its shape and
    dtype are known, its values are not kept. Turning it into an array is a KdiagError."""

    __slots__ = ()

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        raise KdiagError(f"Input {self._data!r} has {len(self.shape)} dimensions; numpy (and so "
                         f"kdiag) holds at most {_MAX_NDIM}, so kdiag cannot run the model on it. "
                         "TF Serving hands such a tensor to the graph, which decides.")

    def __repr__(self) -> str:
        return f"TooManyDims(ndim={len(self.shape)}, dtype={self.dtype})"


def _rectangular_shape(value: Any, brackets: int) -> tuple[int, ...] | None:
    """The shape of nested lists of numbers, or None unless provably rectangular.

    The caller has established that every leaf is a number or a list (no strings, objects,
    booleans or nulls in the text). Lengths are checked list by list down to the innermost
    level; the innermost lists' elements are proved to be numbers by counting: the text holds
    exactly as many '[' as the lists visited, so no list hides among them.
    """
    dims: list[int] = []
    x = value
    while type(x) is list:
        if not x:
            return None  # empty lists: the exact path decides
        dims.append(len(x))
        x = x[0]
    if not dims:
        return () if brackets == 0 else None
    level = [value]
    lists = 1
    for d in dims[:-1]:
        nxt: list = []
        for lst in level:
            if len(lst) != d:
                return None
            nxt.extend(lst)
        for e in nxt:
            if type(e) is not list:
                return None
        level = nxt
        lists += len(nxt)
    last = dims[-1]
    for lst in level:
        if len(lst) != last:
            return None
    return tuple(dims) if lists == brackets else None


def _fast(body: bytes, signatures: list[Signature], feats: _Features,
          lazy: bool = False) -> TfsParse | None:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict:
        return None
    signame = doc.get("signature_name")
    if signame is not None and type(signame) is not str:
        return None
    requested = signame or ""
    sig = _find_signature(signatures, requested or DEFAULT_SIGNATURE)
    if sig is None:
        return None
    dtypes, numeric, float64 = _plan(sig)
    if dtypes is None:
        return None
    has_instances, has_inputs = "instances" in doc, "inputs" in doc
    if has_instances == has_inputs:
        return None
    keys = list(doc)
    columns: dict[str, Any]
    if has_instances:
        fmt = "row"
        instances = doc["instances"]
        if type(instances) is not list or not instances:
            return None
        if type(instances[0]) is dict:
            names = dtypes.keys()
            rows: dict[str, list] = {n: [] for n in dtypes}
            for elem in instances:
                if type(elem) is not dict or elem.keys() != names:
                    return None
                keys.extend(elem)
                for n in dtypes:
                    rows[n].append(elem[n])
            columns = rows
        elif len(dtypes) == 1:
            columns = {next(iter(dtypes)): instances}
        else:
            return None
    else:
        fmt = "columnar"
        value = doc["inputs"]
        if type(value) is dict:
            keys.extend(value)
            if not all(n in value for n in dtypes):
                return None
            columns = {n: value[n] for n in dtypes}
        elif len(dtypes) == 1:
            columns = {next(iter(dtypes)): value}
        else:
            return None
    if not _only_expected_tokens(body, keys, signame, numeric):
        return None
    if float64 and _RISKY_FLOAT64.search(body):
        return None
    tensors: dict[str, Any] | None = None
    if lazy and feats.float_check is None and len(dtypes) == 1:
        ((name, dtype),) = dtypes.items()
        if dtype in ("float32", "float64"):
            brackets = body.count(b"[") - sum(k.count("[") for k in keys) - \
                (signame or "").count("[")
            shape = _rectangular_shape(columns[name], brackets)
            if shape is not None and len(shape) <= _MAX_NDIM:
                tensors = {name: ShapeOnly(shape, np.dtype(dtype), columns[name])}
    if tensors is None:
        try:
            tensors = {n: _fast_array(columns[n], d, feats) for n, d in dtypes.items()}
        except _NotFast:
            return None
    if any(t.ndim > _MAX_NDIM for t in tensors.values()):
        return None
    warnings: list[str] = []
    unknown = [k for k in doc if k not in _KNOWN_TOP]
    if unknown:
        warnings.append(_unknown_keys_warning(unknown))
    if fmt == "columnar" and type(doc["inputs"]) is dict:
        ignored = [k for k in doc["inputs"] if k not in dtypes]
        if ignored:
            warnings.append("TF Serving ignores 'inputs' keys that are not signature inputs: "
                            + ", ".join(repr(k) for k in ignored))
    return TfsParse(ok=True, status=200, code=None, message=None, body=None, format=fmt,
                    signature_name=requested or DEFAULT_SIGNATURE, tensors=tensors,
                    warnings=warnings)


def parse_predict_request(body: str | bytes, signatures: list[Signature], *,
                          tfs_version: str | tuple[int, int] | None = DEFAULT_TFS_VERSION,
                          lazy: bool = False) -> TfsParse:
    """What TF Serving's :predict REST handler makes of `body` for a model with `signatures`.

    The order of checks is TF Serving's: JSON parse errors, "Is not object" and a non-string
    signature_name come before the signature lookup; the instances/inputs checks after it.
    (The servable lookup, a 404, sits between the two and is not modelled here: the model is
    assumed to be loaded.) Never raises for any body.

    `lazy=True` lets float tensors of a proven rectangular body come back as ShapeOnly (shape
    and dtype, values on demand): what validate needs, at half the cost.
    """
    feats = _FEATURES.get(tfs_version) if isinstance(tfs_version, tuple) else None
    if feats is None:
        feats = _Features(parse_tfs_version(tfs_version))
    raw = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else bytes(body)
    fast = _fast(raw, signatures, feats, lazy)
    if fast is not None:
        return fast
    return _exact(raw, signatures, feats)


@dataclass
class JsonDocument:
    """A request body read as TF Serving's ParseJson reads it, for the handlers other than
    predict (classify, regress): the document, or the error answer (`error`, a failed TfsParse;
    status 0 when TF Serving is predicted to crash)."""

    doc: Any
    error: TfsParse | None
    warnings: list[str]
    tfs_version: tuple[int, int]

    def debug(self, val: Any) -> str:
        """JsonValueToString / JsonValueToDebugString of `val`, as error messages quote it."""
        return _debug_string(val, _Features(self.tfs_version), self.warnings)

    def format_error(self, text: str) -> str:
        """FormatError(doc, text): the message (1.11 has one generic text for every case)."""
        if _Features(self.tfs_version).generic_format_error:
            text = ("not formatted correctly. Expecting object with 'instances' or 'input' key "
                    "and a list/array or object as the value respectively.")
        return f"JSON Value: {self.debug(self.doc)} {text}"


def read_json_document(body: str | bytes, *,
                       tfs_version: str | tuple[int, int] | None = DEFAULT_TFS_VERSION
                       ) -> JsonDocument:
    """ParseJson for `body` (never raises)."""
    version = parse_tfs_version(tfs_version)
    feats = _Features(version)
    ctx = _Ctx(feats)
    raw = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else bytes(body)
    try:
        doc = _read_document(raw, ctx)
    except _Crash as e:
        ctx.warnings.append(str(e))
        return JsonDocument(None, TfsParse(ok=False, status=0, code=None, message=None, body=None,
                                           format=None, signature_name=None,
                                           warnings=ctx.warnings), ctx.warnings, version)
    except _Fail as e:
        return JsonDocument(None, _error_result(e.code, e.message, feats, None, None,
                                                ctx.warnings), ctx.warnings, version)
    return JsonDocument(doc, None, ctx.warnings, version)


def invalid_argument(message: str, *, tfs_version: str | tuple[int, int] | None = None,
                     signature_name: str | None = None, fmt: str | None = None,
                     warnings: list[str] | None = None) -> TfsParse:
    """TF Serving's 400 INVALID_ARGUMENT answer for `message`, as a failed TfsParse."""
    return _error_result("INVALID_ARGUMENT", message, _Features(parse_tfs_version(tfs_version)),
                         fmt, signature_name, list(warnings or []))


def status_prefix(code: str, *, tfs_version: str | tuple[int, int] | None = None) -> str:
    """How Status::ToString() names `code` in nested messages ("INVALID_ARGUMENT" or, in old
    releases, "Invalid argument")."""
    feats = _Features(parse_tfs_version(tfs_version))
    return code if feats.upper_status_names else _OLD_STATUS_NAMES.get(code, code)


# ---------------------------------------------------------------------------------------------
# Response: MakeJsonFromTensors
# ---------------------------------------------------------------------------------------------

_NP_KIND_TO_DTYPE = {"b": "bool", "O": "string", "S": "string", "U": "string"}


def _output_dtype(name: str, arr: np.ndarray, signature: Signature | None) -> str:
    if signature is not None and name in signature.outputs:
        return signature.outputs[name].dtype
    kind = arr.dtype.kind
    if kind in _NP_KIND_TO_DTYPE:
        return _NP_KIND_TO_DTYPE[kind]
    return str(arr.dtype)


class _WriteFail(Exception):
    pass


def _to_bytes(v: Any) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8", "surrogateescape")
    return str(v).encode()


def _value_writer(dtype: str, as_bytes: bool, feats: _Features):
    roundtrip = feats.decimal_roundtrip
    if dtype == "float32":
        return lambda w, v: w.raw(write_decimal(float(v), float32=True,
                                                roundtrip=roundtrip).encode())
    if dtype == "float64":
        return lambda w, v: w.raw(write_decimal(float(v), float32=False,
                                                roundtrip=roundtrip).encode())
    if dtype in _INT32_VAL or dtype in ("int64", "uint32", "uint64"):
        return lambda w, v: w.raw(str(int(v)).encode())
    if dtype == "bool":
        return lambda w, v: w.raw(b"true" if v else b"false")
    if dtype == "string":
        if as_bytes:
            def write_b64(w: PrettyWriter, v: Any) -> None:
                w.start(False)
                w.string(b"b64")
                w.string(base64.b64encode(_to_bytes(v)))
                w.end(False)
            return write_b64
        return lambda w, v: w.string(_to_bytes(v))

    def unsupported(w: PrettyWriter, v: Any) -> None:
        raise _WriteFail(f"Failed to write JSON value for tensor type: {_tf_type(dtype)}")
    return unsupported


def _write_tensor(w: PrettyWriter, arr: np.ndarray, write_value) -> None:
    """AddTensorValues: nested arrays, a scalar written bare."""
    if arr.ndim == 0:
        write_value(w, arr.item() if arr.dtype != object else arr[()])
        return
    w.start(True)
    if arr.ndim == 1:
        for v in (arr.tolist() if arr.dtype != object else arr):
            write_value(w, v)
    else:
        for sub in arr:
            _write_tensor(w, sub, write_value)
    w.end(True)


def make_predict_response(outputs: dict[str, np.ndarray], *, format: str,
                          signature: Signature | None = None,
                          tfs_version: str | tuple[int, int] | None = DEFAULT_TFS_VERSION
                          ) -> TfsResponse:
    """The answer TF Serving writes for predict outputs, or its error answer.

    Output order follows `outputs`; TF Serving iterates a protobuf map there, whose order is
    unspecified, so clients must not rely on the key order of multi-output answers.
    """
    feats = _Features(parse_tfs_version(tfs_version))
    tensors = []
    for name, value in outputs.items():
        arr = np.asarray(value)
        dtype = _output_dtype(name, arr, signature)
        as_bytes = dtype == "string" and name.endswith("_bytes")
        tensors.append((name, arr, _value_writer(dtype, as_bytes, feats)))
    try:
        if not tensors:
            raise _WriteFail("Cannot convert empty tensor map to JSON")
        if format == "row":
            text = _row_json(tensors, feats)
        elif format == "columnar":
            text = _columnar_json(tensors)
        else:
            raise _WriteFail("Invalid request format")
    except _WriteFail as e:
        message = str(e)
        raw = _error_body_bytes(message.encode(), feats)
        return TfsResponse(ok=False, status=400, code="INVALID_ARGUMENT", message=message,
                           body=raw.decode("utf-8", "replace"), body_bytes=raw)
    return TfsResponse(ok=True, status=200, code=None, message=None,
                       body=text.decode("utf-8", "replace"), body_bytes=text)


def predict_response(outputs: dict[str, np.ndarray], *, format: str,
                     signature: Signature | None = None,
                     tfs_version: str | tuple[int, int] | None = DEFAULT_TFS_VERSION) -> str:
    """The exact response text TF Serving writes; raises TfsResponseError when it cannot."""
    resp = make_predict_response(outputs, format=format, signature=signature,
                                 tfs_version=tfs_version)
    if not resp.ok:
        raise TfsResponseError(resp)
    return resp.body


def _row_json(tensors: list, feats: _Features) -> bytes:
    batch = -1
    for name, arr, _ in tensors:
        if arr.ndim == 0:
            raise _WriteFail(f"Tensor name: {name} has no shape information ")
        current = arr.shape[0]
        if not feats.zero_batch_response:
            if current < 1:
                raise _WriteFail(f"Tensor name: {name} has invalid batch size: {current}")
            if batch > 0 and batch != current:
                raise _WriteFail(f"Tensor name: {name} has inconsistent batch size: {current} "
                                 f"expecting: {batch}")
        elif batch >= 0 and batch != current:
            raise _WriteFail(f"Tensor name: {name} has inconsistent batch size: {current} "
                             f"expecting: {batch}")
        batch = current
    objects = len(tensors) > 1
    w = PrettyWriter()
    w.start(False)
    w.string(b"predictions")
    w.start(True)
    for item in range(batch):
        if objects:
            w.start(False)
        w.single_line = True
        for name, arr, write_value in tensors:
            if objects:
                w.string(encode_str(name))
            _write_tensor(w, arr[item, ...], write_value)
        w.single_line = False
        if objects:
            w.end(False)
    w.end(True)
    w.end(False)
    return bytes(w.buf)


def _columnar_json(tensors: list) -> bytes:
    objects = len(tensors) > 1
    w = PrettyWriter()
    w.start(False)
    w.string(b"outputs")
    if objects:
        w.start(False)
    for name, arr, write_value in tensors:
        if objects:
            w.string(encode_str(name))
        _write_tensor(w, arr, write_value)
    if objects:
        w.end(False)
    w.end(False)
    return bytes(w.buf)
