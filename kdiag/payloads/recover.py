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
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kdiag.model.signature import Signature, TensorSpec, format_shape

WRAPPER_KEYS = ("instances", "inputs", "data", "input_data", "input", "features", "x", "body",
                "payload", "values")


@dataclass
class Recovered:
    tensors: dict[str, np.ndarray]
    steps: list[str]  # what was undone, in words
    columnar: bool = False  # send {"inputs": ...}: the client meant whole batched tensors
    b64: tuple[str, ...] = ()  # string inputs that must travel as {"b64": ...}
    body: str | None = None  # a finished body (a minimal in-place edit), sent as is
    # Inputs padded on axis 1 (ragged rows) -> each row's own length: one request per length.
    row_lengths: dict[str, np.ndarray] = field(default_factory=dict)


class NoFix(Exception):
    """The payload cannot be turned into the signature's tensors without guessing."""


def _loads(text: str) -> Any:
    return json.loads(text)  # Python's json accepts NaN/Infinity like TF Serving


def _parse_body(body: str, content_type: str, steps: list[str]) -> Any:
    ct = (content_type or "").split(";")[0].strip().lower()
    if ct == "text/csv":
        try:  # newline="": csv itself splits \r, \n and \r\n rows, as a client's CSV has them
            rows = [r for r in csv.reader(io.StringIO(body, newline="")) if r]
        except csv.Error as e:
            raise NoFix(f"the CSV body does not parse ({e})") from None
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
    except ValueError:
        pass
    except RecursionError:
        raise NoFix("the body nests too deep to be a tensor") from None
    lines = [ln for ln in body.splitlines() if ln.strip()]
    try:
        values = [_loads(ln) for ln in lines]
    except (ValueError, RecursionError):
        raise NoFix("the body is not JSON") from None
    steps.append("merged the JSON lines into one list of instances")
    return values


def _unjson(value: Any, steps: list[str]) -> Any:
    """A JSON string holding JSON: the client serialised twice."""
    for _ in range(3):
        if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
            try:
                value = _loads(value)
            except (ValueError, RecursionError):
                return value
            steps.append("parsed the JSON text that was sent as a string (serialised twice)")
        else:
            break
    return value


KERAS_GENERATED_NAME = re.compile(r"^(inputs|input_layer|keras_tensor|args|input)(_\d+)?$")


def keras_generated(names: list[str]) -> bool:
    """Names Keras 3 writes at export, not the notebook's: `inputs`/`inputs_1`
    (tf.saved_model.save), `keras_tensor_N` and `input_layer_N` (unnamed keras.Input()), `args_0`
    (a subclassed model's export())."""
    return bool(names) and all(KERAS_GENERATED_NAME.match(n) for n in names)


def _value_kind(value: Any) -> tuple[tuple[int, ...] | None, str]:
    """(shape, kind) of a JSON value: kind is int, float, str, bool, b64 or mixed; shape None
    when ragged. An int input takes only JSON integers, so `1.0` makes a value `float`."""
    if isinstance(value, dict):
        return (), "b64" if set(value) == {"b64"} else "mixed"
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError, RecursionError, OverflowError):
        return None, "mixed"
    k = arr.dtype.kind
    if k == "O":
        flat = [x for x in arr.ravel().tolist()] if arr.ndim else [value]
        if flat and all(isinstance(x, dict) and set(x) == {"b64"} for x in flat):
            return arr.shape, "b64"
        return None, "mixed"
    return arr.shape, {"i": "int", "u": "int", "f": "float", "U": "str", "b": "bool"}.get(k, "mixed")


def _kind_fits(kind: str, dtype: str) -> bool:
    if dtype == "string":
        return kind in ("str", "b64")
    if dtype == "bool":
        return kind == "bool"
    if dtype.startswith(("int", "uint")):
        return kind == "int"
    return kind in ("int", "float")


def _shape_fits(shape: tuple[int, ...], spec: TensorSpec, batched: bool | None) -> bool:
    """Does a value of `shape` fit the input as one instance (batched False), as a batch (True),
    or as either (None)?"""
    if spec.shape is None:
        return True
    options = {False: [spec.instance_shape or ()], True: [spec.shape],
               None: [spec.instance_shape or (), spec.shape]}[batched]
    return any(len(shape) == len(want) and all(w in (-1, g) for w, g in zip(want, shape, strict=True))
               for want in options)


def fits(value: Any, spec: TensorSpec, batched: bool | None) -> bool:
    shape, kind = _value_kind(value)
    return shape is not None and _kind_fits(kind, spec.dtype) and _shape_fits(shape, spec, batched)


def assignments(values: dict[str, Any], specs: dict[str, TensorSpec], batched: bool | None,
                limit: int = 8) -> list[dict[str, str]]:
    """Every way to give each value (by key) a distinct input it fits by shape and dtype:
    one answer is a unique match, several are ambiguous, none is no match."""
    keys = list(values)
    if not keys or len(keys) > len(specs) or len(specs) > limit:
        return []
    ok = {k: [n for n, sp in specs.items() if fits(values[k], sp, batched)] for k in keys}
    out: list[dict[str, str]] = []
    for combo in itertools.permutations(specs, len(keys)):
        if all(n in ok[k] for k, n in zip(keys, combo, strict=True)):
            out.append(dict(zip(keys, combo, strict=True)))
    return out


def _match_names(keys: list[str], sig: Signature, sample: dict[str, Any] | None = None,
                 batched: bool | None = None) -> dict[str, str] | None:
    """Map the signature's input names to the client's keys: exact, case, close spelling, then
    (for the rest) the one way the values fit the inputs by shape and dtype."""
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
        if close and not KERAS_GENERATED_NAME.match(name):
            out[name] = close[0]
    if len(out) == len(wanted):
        return out
    if len(wanted) == 1 and len(keys) == 1:
        return {wanted[0]: keys[0]}
    if sample is not None:
        rest_keys = [k for k in keys if k not in out.values()]
        rest_inputs = {n: sig.inputs[n] for n in wanted if n not in out}
        if len(rest_keys) == len(rest_inputs):
            found = assignments({k: sample[k] for k in rest_keys}, rest_inputs, batched)
            if len(found) == 1:
                return {**out, **{n: k for k, n in found[0].items()}}
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


def longest_values(rows: list[dict]) -> dict[str, Any]:
    """Each key's longest value across instances: ragged rows are matched by their full width."""
    out: dict[str, Any] = {}
    for row in rows:
        for k, v in row.items():
            if k not in out or (isinstance(v, list) and len(v) > len(out[k])
                                if isinstance(out[k], list) else False):
                out[k] = v
    return out


@dataclass(frozen=True)
class NameCheck:
    """The client's keys against the signature's inputs, for the finding and the fix."""

    sent: list[str]
    missing: list[str]
    unexpected: list[str]
    mappings: list[dict[str, str]]  # unexpected key -> missing input, every way that fits
    keras_names: bool


def check_names(data: Any, sig: Signature) -> NameCheck | None:
    """Compare the keys of row-format objects (or a columnar/bare object) with the inputs."""
    if isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        keys = list(dict.fromkeys(k for v in data for k in v))
        sample, batched = longest_values(data), False
    elif isinstance(data, dict) and data and set(data) != {"b64"}:
        keys, sample, batched = list(data), data, None
    else:
        return None
    missing = [n for n in sig.inputs if n not in keys]
    unexpected = [k for k in keys if k not in sig.inputs]
    if not keys or (not missing and not unexpected):
        return None
    maps = assignments({k: sample[k] for k in unexpected if k in sample},
                       {n: sig.inputs[n] for n in missing}, batched) if unexpected else []
    return NameCheck(keys, missing, unexpected, maps, keras_generated(list(sig.inputs)))


@dataclass(frozen=True)
class Positional:
    """Unnamed values for a multi-input signature, read one way, mapped to inputs."""

    how: str  # "list": one value per input; "rows": rows of per-input values; "flat": concatenated
    columns: dict[str, Any]  # input name -> the value (batched, or one instance for "list")


def _flat_splits(rows: list, sig: Signature) -> list[Positional]:
    sizes = {n: int(np.prod(sp.instance_shape)) if sp.shape and -1 not in sp.shape[1:] else None
             for n, sp in sig.inputs.items()}
    if None in sizes.values() or not rows or not all(isinstance(r, list) and r and all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in r) for r in rows):
        return []
    if any(len(r) != sum(sizes.values()) for r in rows):  # type: ignore[arg-type]
        return []
    out = []
    for order in itertools.permutations(sig.inputs):
        cols: dict[str, Any] = {}
        at = 0
        for n in order:
            size = sizes[n]
            assert size is not None
            inst = sig.inputs[n].instance_shape or ()
            cols[n] = [np.reshape(np.asarray(r[at:at + size], dtype=object), inst).tolist()
                       if len(inst) > 1 else (r[at:at + size] if inst else r[at])
                       for r in rows]
            at += size
        if all(fits(cols[n], sig.inputs[n], True) for n in order):
            out.append(Positional("flat", cols))
    return out


def positional(data: Any, sig: Signature) -> list[Positional]:
    """Every reading of unnamed values that fits the inputs by shape and dtype."""
    n = len(sig.inputs)
    if n < 2 or not isinstance(data, list) or not data:
        return []
    out: list[Positional] = []
    if len(data) == n:  # [features, ids]: one value per input, as Keras predict([a, b]) takes
        for m in assignments({str(i): v for i, v in enumerate(data)}, sig.inputs, None):
            out.append(Positional("list", {name: data[int(i)] for i, name in m.items()}))
    if all(isinstance(r, list) and len(r) == n for r in data):  # rows of [features, ids]
        cols = {str(i): [r[i] for r in data] for i in range(n)}
        for m in assignments(cols, sig.inputs, True):
            out.append(Positional("rows", {name: cols[i] for i, name in m.items()}))
    out += _flat_splits(data, sig)
    return out


def ragged_lengths(value: Any) -> dict[int, list[int]] | None:
    """For a list of rows of different lengths: length -> row indices; None when rectangular
    or not a list of rows."""
    if not isinstance(value, list) or not value or not all(isinstance(r, list) for r in value):
        return None
    by: dict[int, list[int]] = {}
    for i, r in enumerate(value):
        by.setdefault(len(r), []).append(i)
    return by if len(by) > 1 else None


def mask_inputs(sig: Signature) -> list[str]:
    """Inputs that mark real positions against padding: the name says mask (`mask`,
    `attention_mask`, `padding_mask`, `input_mask`...), the dtype is a number or bool, and the
    shape has a batch and a position axis."""
    return [n for n, s in sig.inputs.items() if "mask" in n.lower() and s.shape is not None
            and len(s.shape) >= 2 and (s.dtype == "bool" or s.dtype.startswith(
                ("int", "uint", "float", "bfloat", "half", "double")))]


MAX_LENGTH_GROUPS = 16  # one request per row length: beyond this, say how many, list none


@dataclass(frozen=True)
class LengthGroup:
    """Rows of the same length(s): one request per length sends exactly these, unpadded."""

    rows: tuple[int, ...]
    lengths: dict[str, int]  # padded input -> the rows' own length on axis 1


def _pad_rows(name: str, rows: list, spec: TensorSpec, target: int | None, steps: list[str]
              ) -> tuple[np.ndarray, np.ndarray]:
    """(rows padded at the end with 0 on axis 1, each row's own length), vectorised: the
    values are converted once and scattered into the real positions of a zero tensor."""
    lengths = np.fromiter(map(len, rows), dtype=np.intp, count=len(rows))
    try:
        flat = np.asarray(list(itertools.chain.from_iterable(rows)))
    except (ValueError, TypeError, RecursionError, OverflowError):
        raise NoFix(f"the values for {name!r} are ragged below the first level") from None
    if flat.dtype.kind == "U":
        try:
            flat = flat.astype(np.float64)
        except ValueError:
            raise NoFix(f"{name!r} holds text that is not a number") from None
        steps.append(f"turned the quoted numbers of {name!r} into JSON numbers")
    if flat.dtype.kind not in "iufb" or (flat.dtype.kind == "b" and spec.dtype != "bool"):
        raise NoFix(f"the values for {name!r} are ragged and not all numbers")
    want = spec.shape[1] if spec.shape is not None and len(spec.shape) >= 2 else -1
    longest = int(lengths.max())
    target = target if target is not None else (longest if want == -1 else want)
    if longest > target:
        raise NoFix(f"a row of {name!r} holds {longest} values and the model takes {target}")
    out = np.zeros((len(rows), target) + flat.shape[1:], dtype=flat.dtype)
    out[np.arange(target) < lengths[:, None]] = flat
    return out, lengths


def _mask_for(name: str, spec: TensorSpec, lengths: np.ndarray, like: np.ndarray) -> np.ndarray:
    """1/True on each row's real positions, 0/False on the padding, in the mask input's shape
    (its leading axes are the padded tensor's)."""
    assert spec.shape is not None
    rank = len(spec.shape)
    want = (like.shape[0], like.shape[1]) + like.shape[2:rank]
    if rank > like.ndim or any(w not in (-1, g) for w, g in zip(spec.shape[1:], want[1:],
                                                                 strict=True)):
        raise NoFix(f"the input {name!r} ({format_shape(spec.shape)}) does not fit the padded "
                    f"values {format_shape(like.shape)}: kdiag cannot write it")
    real = np.arange(like.shape[1]) < lengths[:, None]
    real = np.broadcast_to(real.reshape(real.shape + (1,) * (rank - 2)), want)
    if spec.dtype == "bool":
        return real.copy()
    return real.astype(np.float32 if spec.dtype.startswith(("float", "bfloat", "half", "double"))
                       else np.int64)


def pad_ragged_columns(columns: dict[str, Any], sig: Signature, steps: list[str]
                       ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Pad ragged rows to the longest (or the model's length) with 0, and fill each mask input
    with 1 on the real positions and 0 on the padding: written when the client sent none (a
    missing column is None here), padded with 0 like the rest when it did (its rows must have
    the same lengths as the values they mask). Returns the columns (padded ones as arrays) and
    each padded input's original row lengths."""
    masks = mask_inputs(sig)
    ragged = {n: v for n, v in columns.items() if v is not None and sig.inputs[n].dtype != "string"
              and ragged_lengths(v) is not None}
    if not ragged:
        return columns, {}
    out = dict(columns)
    lengths: dict[str, np.ndarray] = {}
    ref = next((n for n in sig.inputs if n in ragged and n not in masks), None)
    for n in sig.inputs:
        if n in ragged and n not in masks:
            out[n], lengths[n] = _pad_rows(n, ragged[n], sig.inputs[n], None, steps)
            short = np.flatnonzero(lengths[n] < out[n].shape[1]).tolist()
            steps.append(f"padded row(s) {', '.join(map(str, short[:8]))}"
                         f"{' ...' if len(short) > 8 else ''} of {n!r} at the end with 0 to "
                         f"length {out[n].shape[1]}")
    for m in masks:
        if ref is None:
            if columns.get(m) is None:
                raise NoFix(f"input {m} missing: kdiag cannot invent its values")
            if m in ragged:  # only the mask is ragged: pad it like any other input
                out[m], lengths[m] = _pad_rows(m, ragged[m], sig.inputs[m], None, steps)
            continue
        padded, ref_lengths = out[ref], lengths[ref]
        if columns.get(m) is None:
            out[m] = _mask_for(m, sig.inputs[m], ref_lengths, padded)
            lengths[m] = ref_lengths
            steps.append(f"wrote the mask input {m!r}: 1 on the real values of {ref!r}, 0 on "
                         "the padding")
        elif m in ragged:
            out[m], lengths[m] = _pad_rows(m, ragged[m], sig.inputs[m], padded.shape[1], steps)
            if not np.array_equal(lengths[m], ref_lengths):
                raise NoFix(f"the rows of {m!r} have other lengths than the rows of {ref!r}: "
                            "kdiag cannot tell which positions the mask means")
            steps.append(f"padded {m!r} with 0 like {ref!r}, so the padding is masked")
    return out, lengths


def length_groups(lengths: dict[str, np.ndarray], sig: Signature) -> list[LengthGroup] | None:
    """Rows grouped by their own lengths, for one request per length; None when the model
    fixes a padded input's length (then only padding fits)."""
    if not lengths or any(sig.inputs[n].shape is None or sig.inputs[n].shape[1] != -1
                          for n in lengths):
        return None
    names = list(lengths)
    table = np.stack([lengths[n] for n in names], axis=1)
    combos, which = np.unique(table, axis=0, return_inverse=True)
    order = np.argsort(which, kind="stable")
    bounds = np.cumsum(np.bincount(which.ravel(), minlength=len(combos)))[:-1]
    groups = [LengthGroup(tuple(rows.tolist()), dict(zip(names, map(int, combo), strict=True)))
              for combo, rows in zip(combos, np.split(order, bounds), strict=True)]
    return sorted(groups, key=lambda g: g.rows[0])


def group_tensors(tensors: dict[str, np.ndarray], group: LengthGroup) -> dict[str, np.ndarray]:
    """The group's rows of every tensor, the padded ones cut back to the group's length."""
    idx = np.asarray(group.rows)
    return {n: a[idx, :group.lengths[n]] if n in group.lengths else a[idx]
            for n, a in tensors.items()}


def _as_array(name: str, value: Any, spec: TensorSpec, steps: list[str]) -> np.ndarray:
    if isinstance(value, np.ndarray):  # padded by pad_ragged_columns
        arr = value
    else:
        arr = _leaves_array(name, _unjson(value, steps), spec, steps)
        if spec.dtype == "string":
            return arr
    return _typed(name, arr, spec, steps)


def _leaves_array(name: str, value: Any, spec: TensorSpec, steps: list[str]) -> np.ndarray:
    """The nested lists as an array (object dtype: string inputs, already final)."""
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
    return arr.reshape(shape)


def _typed(name: str, arr: np.ndarray, spec: TensorSpec, steps: list[str]) -> np.ndarray:
    """The values in the input's dtype family, refusing what would need a guess."""
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
            if arr.size and np.abs(arr).max() >= 2.0 ** 63:
                raise NoFix(f"{name!r} holds whole numbers beyond int64's range")
            arr = arr.astype(np.int64)
            steps.append(f"wrote the whole numbers of {name!r} without '.0' (int input)")
    elif arr.dtype.kind not in "fiu":
        raise NoFix(f"{name!r} holds values of type {arr.dtype}")
    return _fit_shape(name, arr, spec, steps)


def _as_strings(name: str, value: Any, spec: TensorSpec, steps: list[str]) -> np.ndarray:
    def leaf(v: Any) -> bytes:
        if isinstance(v, dict) and set(v) == {"b64"} and isinstance(v["b64"], str):
            fixed, what = standard_b64(v["b64"])
            steps.extend(f"{w} in {name!r}" for w in what)
            try:
                return base64.b64decode(fixed, validate=True)
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


DATA_URL = re.compile(r"^data:[\w.+-]*/?[\w.+-]*(;[\w.+-]+=[\w.+-]+)*;base64,", re.I)


def standard_b64(text: str) -> tuple[str, list[str]]:
    """Base64 text in the standard alphabet TF Serving decodes, and what was changed: a
    `data:...;base64,` prefix removed, the url-safe `-`/`_` turned into `+`/`/`, padding set."""
    what = []
    m = DATA_URL.match(text)
    if m:
        text = text[m.end():]
        what.append("removed the data: URL prefix")
    if "-" in text or "_" in text:
        text = text.translate(str.maketrans("-_", "+/"))
        what.append("converted url-safe base64 (-, _) to the standard alphabet (+, /)")
    core = text.rstrip("=")
    if what and len(core) % 4:
        text = core + "=" * (-len(core) % 4)
    return text, what


def fix_b64_in_place(body: str) -> Recovered | None:
    """Rewrite only the {"b64": ...} strings that TF Serving cannot decode (a data: prefix,
    url-safe characters), leaving every key and value else as sent: a fix never renames keys it
    does not understand. None when no b64 value needs it."""
    try:
        doc = _loads(body)
    except (ValueError, RecursionError):
        return None
    steps: list[str] = []

    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            if set(v) == {"b64"} and isinstance(v["b64"], str):
                fixed, what = standard_b64(v["b64"])
                if what:
                    try:
                        base64.b64decode(fixed, validate=True)
                    except (binascii.Error, ValueError):
                        return v
                    steps.extend(what)
                    return {"b64": fixed}
                return v
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    fixed_doc = walk(doc)
    if not steps:
        return None
    text = json.dumps(fixed_doc, separators=(",", ":"), ensure_ascii=False)
    return Recovered(tensors={}, steps=[f"{w} in the b64 values" for w in dict.fromkeys(steps)],
                     body=text)


@dataclass(frozen=True)
class Sent:
    """What the client sent, parsed: the form and the data under instances/inputs."""

    form: str  # "instances" | "inputs" | "bare" (an object without either key) | "list" | "csv"
    data: Any
    signature_name: str | None = None  # the body's own "signature_name", when a string


def read_sent(body: bytes | str, content_type: str | None) -> Sent | None:
    """The request's data as the client wrote it; None when it is not JSON (or CSV)."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        value = _unjson(_parse_body(text, content_type or "application/json", []), [])
    except (NoFix, UnicodeDecodeError):
        return None
    if (content_type or "").split(";")[0].strip().lower() == "text/csv":
        return Sent("csv", value)
    if isinstance(value, dict):
        named = value.get("signature_name")
        named = named if isinstance(named, str) and named else None
        for key in ("instances", "inputs"):
            if key in value:
                return Sent(key, _unjson(value[key], []), named)
        return Sent("bare", value, named)
    return Sent("list", value)


def requested_signature(req_body: bytes, content_type: str | None,
                        signatures: list[Signature]) -> str | None:
    """The signature a JSON body names with "signature_name", when the model has it: TF
    Serving runs that one, so the diagnosis and the fix must read it too (even when parsing
    fails later)."""
    if len(signatures) < 2 or b'"signature_name"' not in req_body:
        return None  # nothing to choose, or not named: no second parse of a large body
    sent = read_sent(req_body, content_type)
    name = sent.signature_name if sent is not None else None
    return name if name is not None and any(s.name == name for s in signatures) else None


def _examples(value: Any, sig: Signature, steps: list[str]) -> Recovered | None:
    """Plain features for a tf.Example signature: serialize one Example per instance."""
    from kdiag.payloads.example_proto import ExampleError, serialize_example

    if not sig.example_features:
        return None
    rows = value if isinstance(value, list) else [value]
    keys = {f.key for f in sig.example_features}
    if not rows or not all(isinstance(r, dict) and r and set(r) <= keys for r in rows):
        return None
    (name,) = sig.inputs
    try:
        data = [serialize_example(r, sig.example_features) for r in rows]
    except ExampleError as e:
        raise NoFix(f"cannot build the tf.Example protos: {e}") from None
    arr = np.empty(len(data), dtype=object)
    arr[:] = data
    steps.append(f"serialized each instance's features ({', '.join(sorted(keys))}) as a "
                 f"tf.Example in {name!r}, sent as {{\"b64\": ...}}")
    return Recovered(tensors={name: arr}, steps=steps, b64=(name,))


def _positional_columns(value: Any, sig: Signature, steps: list[str]) -> dict[str, Any]:
    readings = positional(value, sig)
    names = ", ".join(sig.inputs)
    if not readings:
        raise NoFix(f"the signature has {len(sig.inputs)} inputs ({names}) and the body gives "
                    "unnamed values that fit them in no order; name each input")
    if len(readings) > 1:
        raise NoFix(f"the unnamed values fit the inputs ({names}) in {len(readings)} ways by "
                    "shape and dtype; name each input")
    (r,) = readings
    steps.append("named the unnamed values by shape and dtype: " + ", ".join(
        f"value {i + 1} -> {n!r}" for i, n in enumerate(r.columns)) if r.how == "list" else
        "split each row into the inputs by shape and dtype (" + ", ".join(r.columns) + ")")
    return r.columns


def recover(body: bytes | str, content_type: str | None, sig: Signature) -> Recovered:
    """Raise NoFix when the intended tensors cannot be recovered without guessing."""
    steps: list[str] = []
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    value = _unjson(_parse_body(text, content_type or "application/json", steps), steps)
    names = list(sig.inputs)
    if isinstance(value, dict) and "examples" in value:
        raise NoFix("the body holds tf.Example examples; kdiag does not rewrite those")
    peeled = False
    columnar = False
    for _ in range(3):  # peel wrappers: {"instances": ...}, {"data": ...}
        if not isinstance(value, dict):
            break
        keys = list(value)
        if (_match_names(keys, sig, value) or _without_masks(
                keys, sig, value, None, lambda m, n, here=value: here[m[n]])) is not None and not (
                len(keys) == 1 and keys[0] in WRAPPER_KEYS and keys[0] not in sig.inputs):
            break
        if sig.example_features and set(keys) <= {f.key for f in sig.example_features}:
            break
        key = next((k for k in WRAPPER_KEYS if k in value), keys[0] if len(keys) == 1 else None)
        if key is None:
            raise NoFix(f"the body's keys ({', '.join(keys[:5])}) match no input of the "
                        f"signature ({', '.join(names)})")
        if key not in ("instances", "inputs"):
            steps.append(f"took the values out of the {key!r} wrapper")
        columnar = key == "inputs"
        peeled = True
        value = _unjson(value[key], steps)
    examples = _examples(value, sig, steps)
    if examples is not None:
        return examples
    mapping: dict[str, str] | None = None
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        keys = list(dict.fromkeys(k for v in value for k in v))
        sample = longest_values(value)
        mapping = _match_names(keys, sig, sample, batched=False) or _without_masks(
            keys, sig, sample, False, lambda m, n: [v.get(m[n]) for v in value])
        if mapping is None:
            check = check_names(value, sig)
            raise NoFix(_names_why(check, sig))
        columns = {n: [v.get(mapping[n]) for v in value] if n in mapping else None
                   for n in names}
        if any(x is None for col in columns.values() if col is not None for x in col):
            raise NoFix("some instances lack an input")
    elif isinstance(value, dict):
        mapping = _match_names(list(value), sig, value) or _without_masks(
            list(value), sig, value, None, lambda m, n: value[m[n]])
        if mapping is None:
            raise NoFix(_names_why(check_names(value, sig), sig))
        columns = {n: value[mapping[n]] if n in mapping else None for n in names}
        if not peeled and all(fits(columns[n], sig.inputs[n], True) for n in names) and not all(
                fits(columns[n], sig.inputs[n], False) for n in names):
            # {"a": [[...]], "b": [[...]]}: whole batched columns, which the container would
            # wrap as ONE instance; columnar {"inputs": ...} sends them as written.
            columnar = True
            steps.append("sent the batched columns as {\"inputs\": ...} (columnar)")
    elif len(names) > 1:
        unmasked = [n for n in names if n not in mask_inputs(sig)]
        if len(unmasked) == 1 and ragged_lengths(value) is not None:
            # Ragged rows of the one input that is not a mask: the masks are written below.
            columns = {n: value if n == unmasked[0] else None for n in names}
        else:
            columns = _positional_columns(value, sig, steps)
    else:
        columns = {names[0]: value}
    for n, m in (mapping or {}).items():
        if n != m:
            steps.append(f"renamed input {m!r} to {n!r}")
    columns = {n: _unjson(v, steps) if v is not None else None for n, v in columns.items()}
    columns, row_lengths = pad_ragged_columns(columns, sig, steps)
    missing = [n for n in names if columns[n] is None]
    if missing:
        raise NoFix(f"input(s) {', '.join(missing)} missing: kdiag cannot invent their values")
    tensors = {n: _as_array(n, columns[n], sig.inputs[n], steps) for n in names}
    if len({int(a.shape[0]) for a in tensors.values() if a.ndim}) > 1:
        raise NoFix("the inputs hold different numbers of instances")
    return Recovered(tensors=tensors, steps=list(dict.fromkeys(steps)), columnar=columnar,
                     row_lengths=row_lengths)


def _without_masks(keys: list[str], sig: Signature, sample: dict[str, Any],
                   batched: bool | None, column: Any) -> dict[str, str] | None:
    """The mapping of every input but the mask inputs, when that is what the client left out
    and its values are ragged rows: then kdiag pads them and writes the masks itself."""
    masks = mask_inputs(sig)
    if not masks:
        return None
    rest = Signature(sig.name, sig.method_name,
                     {n: s for n, s in sig.inputs.items() if n not in masks}, sig.outputs)
    mapping = _match_names(keys, rest, sample, batched)
    if mapping is None or len(mapping) != len(rest.inputs) or not any(
            ragged_lengths(_unjson(column(mapping, n), [])) is not None for n in mapping):
        return None
    return mapping


def _names_why(check: NameCheck | None, sig: Signature) -> str:
    if check is None:
        return f"the body's keys match no input of the signature ({', '.join(sig.inputs)})"
    if check.missing and not check.unexpected:
        masks = [n for n in check.missing if n in mask_inputs(sig)]
        if masks and len(masks) == len(check.missing):
            return (f"the mask input(s) {', '.join(masks)} missing, and the rows have equal "
                    "lengths: kdiag cannot tell the client's padding from its values")
        return f"input(s) {', '.join(check.missing)} missing: kdiag cannot invent their values"
    if len(check.mappings) > 1:
        return (f"the keys {', '.join(check.unexpected)} fit the inputs "
                f"{', '.join(check.missing)} in {len(check.mappings)} ways by shape and dtype; "
                "name them yourself")
    return (f"the keys {', '.join(check.unexpected)} fit no input of the signature "
            f"({', '.join(sig.inputs)}) by shape and dtype")
