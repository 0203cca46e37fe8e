"""Recover what the client meant from a payload the endpoint rejects, as tensors of the signature.

This is how kdiag writes the corrected request: undo the usual client mistakes (a JSON string
holding JSON, numbers as strings, a wrapper key, a missing or extra batch axis, an image sent
without its batch axis, `1.0` for an int input, base64 text without {"b64": ...}, a CSV header),
then let the payload builder spell the request the signature takes. When the values cannot be
recovered without guessing (a wrong inner size, non-integral values for an int input), there is
no fix, and the finding says what to change instead.
"""

from __future__ import annotations

import base64
import binascii
import csv
import difflib
import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from kdiag.model.signature import Signature, TensorSpec

WRAPPER_KEYS = ("instances", "inputs", "data", "input_data", "input", "features", "x", "body",
                "payload", "values")


@dataclass
class Recovered:
    tensors: dict[str, np.ndarray]
    steps: list[str]  # what was undone, in words


class NoFix(Exception):
    """The payload cannot be turned into the signature's tensors without guessing."""


def _loads(text: str) -> Any:
    return json.loads(text)  # Python's json accepts NaN/Infinity like TF Serving


def _parse_body(body: str, content_type: str, steps: list[str]) -> Any:
    ct = (content_type or "").split(";")[0].strip().lower()
    if ct == "text/csv":
        rows = [r for r in csv.reader(io.StringIO(body)) if r]
        if not rows:
            raise NoFix("the CSV body is empty")
        try:
            [float(x) for x in rows[0]]
        except ValueError:
            rows = rows[1:]
            steps.append("dropped the CSV header row")
        try:
            return [[float(x) for x in r] for r in rows]
        except ValueError:
            raise NoFix("the CSV rows hold values that are not numbers") from None
    try:
        return _loads(body)
    except json.JSONDecodeError:
        pass
    except RecursionError:
        raise NoFix("the body nests too deep to be a tensor") from None
    lines = [ln for ln in body.splitlines() if ln.strip()]
    try:
        values = [_loads(ln) for ln in lines]
    except (json.JSONDecodeError, RecursionError):
        raise NoFix("the body is not JSON") from None
    steps.append("merged the JSON lines into one list of instances")
    return values


def _unjson(value: Any, steps: list[str]) -> Any:
    """A JSON string holding JSON: the client serialised twice."""
    for _ in range(3):
        if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
            try:
                value = _loads(value)
            except json.JSONDecodeError:
                return value
            steps.append("parsed the JSON text that was sent as a string (serialised twice)")
        else:
            break
    return value


def _match_names(keys: list[str], sig: Signature) -> dict[str, str] | None:
    """Map the client's keys to the signature's input names (exact, case, or close spelling)."""
    wanted = list(sig.inputs)
    out: dict[str, str] = {}
    for name in wanted:
        if name in keys:
            out[name] = name
            continue
        lower = {k.lower(): k for k in keys}
        if name.lower() in lower:
            out[name] = lower[name.lower()]
            continue
        close = difflib.get_close_matches(name, [k for k in keys if k not in out.values()], n=1,
                                          cutoff=0.6)
        if close:
            out[name] = close[0]
    if len(out) == len(wanted):
        return out
    if len(wanted) == 1 and len(keys) == 1:
        return {wanted[0]: keys[0]}
    return None


MAX_RANK = 64  # numpy's limit; deeper values cannot be a tensor kdiag rewrites


def _scan(name: str, value: Any) -> tuple[tuple[int, ...], list]:
    """The shape and the leaves (row-major) of nested lists, walked without recursion.

    Ragged rows, lists mixed with values and nesting past MAX_RANK raise NoFix before anything
    is allocated: memory stays proportional to the values the body holds (numpy would build a
    fixed-width text array as wide as the longest string times the number of values).
    """
    shape: list[int] = []
    x = value
    while isinstance(x, list):
        if len(shape) >= MAX_RANK:
            raise NoFix(f"the values for {name!r} nest more than {MAX_RANK} levels deep")
        shape.append(len(x))
        if not x:
            break
        x = x[0]
    leaves: list = []
    level = [value]
    for depth, size in enumerate(shape):
        nxt: list = []
        for lst in level:
            if not isinstance(lst, list):
                raise NoFix(f"the values for {name!r} are ragged or mix lists and numbers")
            if len(lst) != size:
                raise NoFix(f"the values for {name!r} are ragged (rows of different lengths)")
            nxt.extend(lst)
        level = nxt
        if depth == len(shape) - 1:
            leaves = level
    if not shape:
        leaves = [value]
    if any(isinstance(v, list | dict) for v in leaves):
        raise NoFix(f"the values for {name!r} are ragged or mix lists and numbers")
    return tuple(shape), leaves


def _as_array(name: str, value: Any, spec: TensorSpec, steps: list[str]) -> np.ndarray:
    value = _unjson(value, steps)
    if spec.dtype == "string":
        return _as_strings(name, value, spec, steps)
    shape, leaves = _scan(name, value)
    if any(isinstance(v, str) for v in leaves):
        try:
            arr = np.array([float(v) for v in leaves], dtype=np.float64)
        except (ValueError, TypeError):
            raise NoFix(f"{name!r} holds text that is not a number") from None
        steps.append(f"turned the quoted numbers of {name!r} into JSON numbers")
    else:
        if any(v is None for v in leaves):
            raise NoFix(f"{name!r} holds values of type null")
        try:
            arr = np.array(leaves)
        except (OverflowError, ValueError):
            arr = np.array(leaves, dtype=np.float64)
    arr = arr.reshape(shape)
    if arr.dtype.kind == "b" and spec.dtype != "bool":
        arr = arr.astype(np.int64)
    if spec.dtype == "bool":
        if arr.dtype.kind != "b":
            if not np.isin(arr, (0, 1)).all():
                raise NoFix(f"{name!r} is a bool input and the values are not 0/1")
            arr = arr.astype(bool)
            steps.append(f"wrote {name!r} as true/false")
    elif spec.dtype.startswith(("int", "uint")):
        if arr.dtype.kind == "f":
            finite = np.isfinite(arr).all()
            if not finite or not np.equal(np.floor(arr), arr).all():
                raise NoFix(f"{name!r} is an integer input and the values are not whole numbers")
            arr = arr.astype(np.int64)
            steps.append(f"wrote the whole numbers of {name!r} without '.0' (int input)")
    elif arr.dtype.kind not in "fiu":
        raise NoFix(f"{name!r} holds values of type {arr.dtype}")
    return _fit_shape(name, arr, spec, steps)


def _as_strings(name: str, value: Any, spec: TensorSpec, steps: list[str]) -> np.ndarray:
    def leaf(v: Any) -> bytes:
        if isinstance(v, dict) and set(v) == {"b64"} and isinstance(v["b64"], str):
            try:
                return base64.b64decode(v["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise NoFix(f"{name!r} holds a b64 value that is not valid base64") from None
        if isinstance(v, str):
            if len(v) >= 16 and len(v) % 4 == 0:
                try:
                    raw = base64.b64decode(v, validate=True)
                except (binascii.Error, ValueError):
                    return v.encode("utf-8")
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    steps.append(f"wrapped the base64 text of {name!r} as {{\"b64\": ...}}")
                    return raw
            return v.encode("utf-8")
        raise NoFix(f"{name!r} is a string input and holds {type(v).__name__} values")

    shape, leaves = _scan(name, _b64_leaves_as_values(value))
    arr = np.empty(len(leaves), dtype=object)
    arr[:] = [leaf(v.obj if isinstance(v, _Leaf) else v) for v in leaves]
    return _fit_shape(name, arr.reshape(shape), spec, steps)


class _Leaf:
    """A {"b64": ...} object held as one value while the lists around it are scanned."""

    __slots__ = ("obj",)

    def __init__(self, obj: dict) -> None:
        self.obj = obj


def _b64_leaves_as_values(value: Any) -> Any:
    """Copy of the nested lists with each dict wrapped as a _Leaf (iteratively)."""
    if isinstance(value, dict):
        return _Leaf(value)
    if not isinstance(value, list):
        return value
    root: list = []
    stack = [(value, root)]
    while stack:
        src, dst = stack.pop()
        for v in src:
            if isinstance(v, list):
                if len(stack) > MAX_RANK * 4096:
                    raise NoFix("the values nest too deep")
                sub: list = []
                dst.append(sub)
                stack.append((v, sub))
            else:
                dst.append(_Leaf(v) if isinstance(v, dict) else v)
    return root


def _fit_shape(name: str, arr: np.ndarray, spec: TensorSpec, steps: list[str]) -> np.ndarray:
    """Give the values the signature's shape: add a missing batch axis, drop extra ones."""
    if spec.shape is None:
        return arr if arr.ndim else arr.reshape(1)
    inst = spec.instance_shape or ()
    want_rank = len(inst) + 1
    while arr.ndim > want_rank and arr.shape[0] == 1:
        arr = arr[0]
        steps.append(f"removed an extra level of nesting around {name!r}")
    if arr.ndim == want_rank - 1:
        arr = arr[None, ...]
        steps.append(f"added the batch axis to {name!r} (one instance)")
    if arr.ndim != want_rank:
        raise NoFix(f"{name!r} has {arr.ndim} axes and the signature needs {want_rank}")
    for axis, (e, g) in enumerate(zip(inst, arr.shape[1:], strict=True), start=1):
        if e != -1 and e != g:
            raise NoFix(f"{name!r} has {g} values on axis {axis} and the signature needs {e}: "
                        "the data itself is the wrong size")
    return arr


def recover(body: bytes | str, content_type: str | None, sig: Signature) -> Recovered:
    """Raise NoFix when the intended tensors cannot be recovered without guessing."""
    steps: list[str] = []
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    value = _unjson(_parse_body(text, content_type or "application/json", steps), steps)
    names = list(sig.inputs)
    if isinstance(value, dict) and "examples" in value:
        raise NoFix("the body holds tf.Example examples; kdiag does not rewrite those")
    for _ in range(3):  # peel wrappers: {"instances": ...}, {"data": ...}
        if not isinstance(value, dict):
            break
        keys = list(value)
        if _match_names(keys, sig) is not None and not (len(keys) == 1 and keys[0] in WRAPPER_KEYS
                                                         and keys[0] not in sig.inputs):
            break
        key = next((k for k in WRAPPER_KEYS if k in value), keys[0] if len(keys) == 1 else None)
        if key is None:
            raise NoFix(f"the body's keys ({', '.join(keys[:5])}) match no input of the "
                        f"signature ({', '.join(names)})")
        if key not in ("instances", "inputs"):
            steps.append(f"took the values out of the {key!r} wrapper")
        value = _unjson(value[key], steps)
    mapping: dict[str, str] | None = None
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        keys = sorted({k for v in value for k in v})
        mapping = _match_names(keys, sig)
        if mapping is None:
            raise NoFix(f"the instances' keys ({', '.join(keys[:5])}) match no input of the "
                        f"signature ({', '.join(names)})")
        columns = {n: [v.get(mapping[n]) for v in value] for n in names}
        if any(x is None for col in columns.values() for x in col):
            raise NoFix("some instances lack an input")
    elif isinstance(value, dict):
        mapping = _match_names(list(value), sig)
        if mapping is None:
            raise NoFix("the body's keys match no input of the signature")
        columns = {n: value[mapping[n]] for n in names}
    else:
        if len(names) != 1:
            raise NoFix(f"the signature has {len(names)} inputs ({', '.join(names)}) and the body "
                        "gives one unnamed value; name each input")
        columns = {names[0]: value}
    for n, m in (mapping or {}).items():
        if n != m:
            steps.append(f"renamed input {m!r} to {n!r}")
    tensors = {n: _as_array(n, columns[n], sig.inputs[n], steps) for n in names}
    if len({int(a.shape[0]) for a in tensors.values() if a.ndim}) > 1:
        raise NoFix("the inputs hold different numbers of instances")
    return Recovered(tensors=tensors, steps=list(dict.fromkeys(steps)))
