"""Seeded sample payloads for a signature, in the spirit of Polygraphy's DataLoader.

`generate` makes tensors from the signature's input metadata (dtype, shape, a value range, a seed)
and writes the body that carries them in the chosen content type, through the canonical builders
in kdiag.payloads.build. The point is a request that works: it starts a user from something TF
Serving and the SageMaker container accept, so that `kdiag validate` and a live endpoint can be
checked against a known-good body. Everything that could surprise (a default size for an unknown
dimension, a switch to columnar, a body over the size limit) is said in `notes`.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from kdiag.errors import KdiagError
from kdiag.limits import LimitExceeded, Limits, active_limits, human
from kdiag.model.signature import JSON_DTYPES, Signature, TensorSpec, format_shape
from kdiag.payloads.build import (
    CONTAINER_CONTENT_TYPES,
    FLOAT_JSON_DTYPES,
    INT_JSON_DTYPES,
    NUMERIC_JSON_DTYPES,
    csv_allowed,
    csv_request,
    jsonlines_request,
    numpy_dtype,
    tfs_request,
)

JSON = "application/json"
JSONLINES = ("application/jsonlines", "application/jsons")
CSV = "text/csv"

CONTENT_TYPE_ALIASES = {
    "json": JSON, "jsonlines": "application/jsonlines", "jsonl": "application/jsonlines",
    "jsons": "application/jsons", "csv": CSV,
}
DEFAULT_FLOAT_RANGE = (0.0, 1.0)
DEFAULT_INT_RANGE = (0, 10)
DEFAULT_IMAGE_SIZE = (32, 32)
# InvokeEndpoint's request body limit (botocore sagemaker-runtime model: Body max 6291456);
# serverless endpoints allow 4 MB.
REALTIME_BODY_LIMIT = 6 * 1024 * 1024
SERVERLESS_BODY_LIMIT = 4 * 1024 * 1024

_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
          "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
          "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu")
_WORD_BYTES = np.array([w.encode("ascii") for w in _WORDS], dtype=object)
_IMAGE_NAME = re.compile(r"image|img|bytes", re.IGNORECASE)
_IMAGE_NOTE = re.compile(r"decod\w*\s+images?|decode_?(jpe?g|png|gif|bmp|image)", re.IGNORECASE)
_EXAMPLE_NOTE = re.compile(r"tf\.Example|ParseExample", re.IGNORECASE)
# tensorflowServing.js: is_tfs_json and is_json_lines, tested on the raw body text.
_TFS_JSON = re.compile(r'"(instances|inputs|examples)"\s*:')
_JSON_LINES = re.compile(r"[}\]]\s*[\[{]")
_LIST_OF_LISTS = re.compile(r"^\s*\[\s*\[")


@dataclass
class SampleOptions:
    """What to generate. ranges and dims are keyed by input name; a range keyed "" applies to
    every numeric input without its own. dims fill unknown (-1) dimensions: {name: {axis: size}}.
    Ranges are half-open [lo, hi): floats uniform in it, integers lo <= v < hi."""

    batch: int = 1
    seed: int = 0
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    dims: dict[str, dict[int, int]] = field(default_factory=dict)
    columnar: bool = False
    content_type: str = JSON
    image_size: tuple[int, int] | None = None  # (height, width) of generated PNGs


@dataclass
class Sample:
    """A generated request: the body to send with `content_type`, the full tensors TF Serving
    builds from it (batch axis included; string inputs as object arrays of bytes), and notes."""

    content_type: str
    body: str
    tensors: dict[str, np.ndarray]
    notes: list[str]
    columnar: bool = False


def parse_range(spec: str) -> tuple[str, tuple[float, float]]:
    """Parse `name:lo,hi` (or `lo,hi` for every numeric input, returned under the name "")."""
    name, sep, rest = spec.rpartition(":")
    if not sep:
        name, rest = "", spec
    parts = rest.split(",")
    if len(parts) != 2:
        raise KdiagError(f"Bad --range {spec!r}: write NAME:LO,HI (e.g. x:0,255), or LO,HI for "
                         "every numeric input.")
    try:
        lo, hi = (_number(p) for p in parts)
    except ValueError:
        raise KdiagError(f"Bad --range {spec!r}: LO and HI must be numbers (e.g. x:-1,1).") from None
    if not (np.isfinite(lo) and np.isfinite(hi)) or not lo < hi:
        raise KdiagError(f"Bad --range {spec!r}: need finite LO < HI (the range is [LO, HI)).")
    return name.strip(), (lo, hi)


def _number(text: str) -> float:
    t = text.strip()
    try:
        return int(t)
    except ValueError:
        return float(t)


def parse_dim(spec: str) -> tuple[str, int, int]:
    """Parse `name:axis=size` into (name, axis, size); a negative axis counts from the end."""
    name, sep, rest = spec.rpartition(":")
    axis, eq, size = rest.partition("=")
    try:
        if not (sep and eq and name.strip()):
            raise ValueError
        a, s = int(axis), int(size)
    except ValueError:
        raise KdiagError(f"Bad --dim {spec!r}: write NAME:AXIS=SIZE, e.g. image:1=224 sets axis 1 "
                         "of input image to 224.") from None
    if s < 1:
        raise KdiagError(f"Bad --dim {spec!r}: SIZE must be at least 1.")
    return name.strip(), a, s


def parse_image_size(spec: str) -> tuple[int, int]:
    """Parse `HxW` (e.g. 224x224) for generated PNG images."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX*,]\s*(\d+)\s*", spec)
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise KdiagError(f"Bad --image-size {spec!r}: write HEIGHTxWIDTH, e.g. 224x224.")
    return int(m.group(1)), int(m.group(2))


def normalise_content_type(value: str) -> str:
    """Map json/jsonlines/csv or a full MIME type to the exact header value the container takes."""
    v = value.strip()
    low = v.lower()
    if low in CONTENT_TYPE_ALIASES:
        return CONTENT_TYPE_ALIASES[low]
    if v in CONTAINER_CONTENT_TYPES:
        return v
    base = low.split(";")[0].strip()
    if base in CONTAINER_CONTENT_TYPES:
        raise KdiagError(
            f"Content type {value!r}: containers before TF 2.20 compare the header exactly and "
            f"answer 415 to anything but {', '.join(CONTAINER_CONTENT_TYPES)}; "
            f"use {base!r} without parameters or capitals.")
    raise KdiagError(
        f"Content type {value!r} is not one the SageMaker TF Serving container accepts without a "
        f"custom inference.py (it answers 415): use json, jsonlines or csv "
        f"({', '.join(CONTAINER_CONTENT_TYPES)}).")


def generate(signature: Signature, opts: SampleOptions | None = None) -> Sample:
    """Generate seeded tensors for `signature` and the body that carries them.

    Deterministic: the same signature and options give the same body; each input draws from its
    own stream (seeded by the seed and the input name), so changing one input's range leaves the
    others' values alone. Raises KdiagError when the signature cannot be fed through the REST API
    or the chosen content type cannot carry it, saying what to use instead.
    """
    opts = opts or SampleOptions()
    content_type = normalise_content_type(opts.content_type)
    if not signature.inputs:
        raise KdiagError(f"Signature {signature.name!r} has no inputs, so there is nothing to "
                         "send; check the signature with `kdiag inspect`.")
    if opts.batch < 1:
        raise KdiagError(f"--batch must be at least 1 (got {opts.batch}): TF Serving rejects an "
                         "empty instances list.")
    if opts.seed < 0:
        raise KdiagError(f"--seed must be 0 or more (got {opts.seed}).")
    _check_dtypes(signature)
    _check_options(signature, opts)
    notes: list[str] = []
    if not signature.is_predict:
        notes.append(f"signature {signature.name!r} has method {signature.method_name}; this is a "
                     "predict request, which TF Serving runs on any signature.")

    plan = _shape_plan(signature, opts, notes)
    columnar = opts.columnar
    if columnar and content_type != JSON:
        raise KdiagError(f"--columnar works with application/json only: the container merges "
                         f"{content_type} lines into {{\"instances\": [...]}}, which is row format.")
    problem = None if columnar else _row_problem(plan)
    if problem:
        if content_type != JSON:
            raise KdiagError(f"{content_type} carries row format only (one instance per line), and "
                             f"{problem}. Use --content-type json --columnar.")
        columnar = True
        notes.append(f"sent columnar ({{\"inputs\": ...}}) because {problem}.")
    if content_type == CSV:
        ok, why = csv_allowed(signature)
        if not ok:
            raise KdiagError(f"text/csv cannot carry signature {signature.name!r}: {why}. "
                             "Use --content-type json (or jsonlines).")
    shapes = _final_shapes(signature, plan, opts, columnar, notes)
    images = _image_inputs(signature)
    check_sample_size(signature, shapes, images, opts.image_size or DEFAULT_IMAGE_SIZE)

    tensors: dict[str, np.ndarray] = {}
    b64: set[str] = set()
    for name, spec in signature.inputs.items():
        rng = np.random.default_rng([opts.seed, zlib.crc32(name.encode("utf-8"))])
        if name in images:
            h, w = opts.image_size or DEFAULT_IMAGE_SIZE
            tensors[name] = _png_array(rng, shapes[name], h, w)
            b64.add(name)
            notes.append(f"input {name!r} looks like encoded image bytes: sent {h}x{w} RGB PNG "
                         "images as {\"b64\": ...}" + ("" if opts.image_size else
                                                       " (choose the size with --image-size)")
                         + ".")
        else:
            tensors[name] = _values(name, spec, shapes[name], opts, rng)
            if spec.dtype == "string" and any(_EXAMPLE_NOTE.search(n) for n in signature.notes):
                notes.append(f"the graph parses tf.Example protos, so input {name!r} needs "
                             "serialized tf.train.Example bytes (sent as b64) with the model's "
                             "features; the random words sent here will fail to parse.")

    if content_type == JSON:
        body = tfs_request(tensors, signature, columnar=columnar, b64=b64)
    elif content_type == CSV:
        body = csv_request(tensors, signature)
    else:
        body = jsonlines_request(tensors, signature, b64=b64)
        n = next(iter(tensors.values())).shape[0]
        trouble = _jsonlines_problem(body, n)
        if trouble:
            hint = " or --batch 2 or more" if n == 1 else ""
            raise KdiagError(f"{content_type} cannot carry this sample: {trouble} "
                             f"(tensorflowServing.js). Use --content-type json{hint}.")

    size = len(body.encode("utf-8"))
    if size > SERVERLESS_BODY_LIMIT:
        over = ("over the 6 MiB (6291456-byte) InvokeEndpoint limit"
                if size > REALTIME_BODY_LIMIT else "over the 4 MB limit of serverless endpoints")
        notes.append(f"the body is {size} bytes, {over}: send fewer instances or smaller inputs.")
    return Sample(content_type=content_type, body=body, tensors=tensors, notes=notes,
                  columnar=columnar)


def _check_dtypes(signature: Signature) -> None:
    for name, spec in signature.inputs.items():
        if spec.dtype not in JSON_DTYPES:
            tf_name = {"float16": "half"}.get(spec.dtype, spec.dtype)
            raise KdiagError(
                f"Input {name!r} has dtype {spec.dtype}, which TF Serving's REST API cannot fill "
                "from JSON: it converts only float32, float64, int8, int16, int32, int64, uint8, "
                "uint32, uint64, bool and string, and answers \"Conversion of JSON Value: ... to "
                f"type: {tf_name}\" (json_tensor.cc). Export the signature with a supported dtype "
                "(cast inside the serving function), or call the model over gRPC.")


def _check_options(signature: Signature, opts: SampleOptions) -> None:
    names = ", ".join(signature.inputs)
    for name in opts.ranges:
        if name == "":
            continue
        spec = signature.inputs.get(name)
        if spec is None:
            raise KdiagError(f"--range names input {name!r}, which signature {signature.name!r} "
                             f"does not have (its inputs: {names}).")
        if spec.dtype not in NUMERIC_JSON_DTYPES:
            raise KdiagError(f"--range {name}:...: input {name!r} is {spec.dtype}; ranges apply "
                             "to numeric inputs only.")
        _range_for(name, spec, opts)
    for name in opts.dims:
        if name not in signature.inputs:
            raise KdiagError(f"--dim names input {name!r}, which signature {signature.name!r} "
                             f"does not have (its inputs: {names}).")


def _range_for(name: str, spec: TensorSpec, opts: SampleOptions) -> tuple[float, float]:
    lo, hi = opts.ranges.get(name) or opts.ranges.get("") or (
        DEFAULT_INT_RANGE if spec.dtype in INT_JSON_DTYPES else DEFAULT_FLOAT_RANGE)
    if not lo < hi:
        raise KdiagError(f"Range for input {name!r}: need LO < HI (got {lo}, {hi}).")
    dtype = numpy_dtype(spec.dtype)
    assert dtype is not None
    if spec.dtype in INT_JSON_DTYPES:
        if float(lo) != int(lo) or float(hi) != int(hi):
            raise KdiagError(f"Range for input {name!r} ({spec.dtype}): LO and HI must be whole "
                             f"numbers (got {lo}, {hi}); the values are LO <= v < HI.")
        info = np.iinfo(dtype)
        if lo < info.min or hi > int(info.max) + 1:
            raise KdiagError(f"Range for input {name!r}: [{lo}, {hi}) does not fit {spec.dtype} "
                             f"([{info.min}, {info.max}]).")
        return int(lo), int(hi)
    top = float(np.finfo(dtype).max)
    if abs(lo) > top or abs(hi) > top:
        raise KdiagError(f"Range for input {name!r}: [{lo}, {hi}) exceeds {spec.dtype}'s range.")
    return float(lo), float(hi)


def _shape_plan(signature: Signature, opts: SampleOptions,
                notes: list[str]) -> dict[str, list[int | None]]:
    """Each input's shape with unknown dims filled; None marks an axis 0 left to the batch size."""
    plan: dict[str, list[int | None]] = {}
    for name, spec in signature.inputs.items():
        given = opts.dims.get(name, {})
        if spec.shape is None:
            plan[name] = _shape_from_dims(name, given)
            notes.append(f"input {name!r} has an unknown rank; used the axes given with --dim.")
            continue
        rank = len(spec.shape)
        norm: dict[int, int] = {}
        for axis, size in given.items():
            a = axis + rank if axis < 0 else axis
            if not 0 <= a < rank:
                raise KdiagError(f"--dim {name}:{axis}={size}: input {name!r} has shape "
                                 f"{format_shape(spec.shape)}, so the axis must be 0 to {rank - 1}.")
            norm[a] = size
        shape: list[int | None] = []
        defaulted: list[int] = []
        for a, d in enumerate(spec.shape):
            if d != -1:
                if a in norm and norm[a] != d:
                    raise KdiagError(f"--dim {name}:{a}={norm[a]} contradicts the signature: axis "
                                     f"{a} of input {name!r} is fixed at {d} (shape "
                                     f"{format_shape(spec.shape)}).")
                shape.append(d)
            elif a in norm:
                shape.append(norm[a])
            elif a == 0:
                shape.append(None)
            else:
                shape.append(1)
                defaulted.append(a)
        if defaulted:
            axes = ", ".join(map(str, defaulted))
            notes.append(f"input {name!r} has unknown size on axis {axes} (shape "
                         f"{format_shape(spec.shape)}); used 1. Set a size with --dim "
                         f"{name}:{defaulted[0]}=SIZE.")
        plan[name] = shape
    return plan


def _shape_from_dims(name: str, given: dict[int, int]) -> list[int | None]:
    ask = (f"Input {name!r} has an unknown rank in the signature, so kdiag cannot tell how to "
           "nest its values. Give every axis after the batch axis with --dim, e.g. "
           f"--dim {name}:1=224 --dim {name}:2=224 --dim {name}:3=3 for a batch of 224x224 RGB "
           "images (axis 0 follows --batch unless given).")
    if not given or any(a < 0 for a in given):
        raise KdiagError(ask)
    rank = max(given) + 1
    missing = [a for a in range(1, rank) if a not in given]
    if missing:
        raise KdiagError(f"{ask} Missing: axis {', '.join(map(str, missing))}.")
    return [given.get(0)] + [given[a] for a in range(1, rank)]


def _row_problem(plan: dict[str, list[int | None]]) -> str | None:
    """Why row format cannot express these shapes, or None when it can."""
    for name, shape in plan.items():
        if not shape:
            return (f"input {name!r} is a scalar (shape ()), and row format adds a batch axis to "
                    "every input")
    fixed = {n: s[0] for n, s in plan.items() if s[0] is not None}
    if len(set(fixed.values())) > 1:
        listing = ", ".join(f"{n}: {v}" for n, v in fixed.items())
        return (f"the inputs fix different sizes on axis 0 ({listing}), and row format needs one "
                "instance count for all")
    return None


# Upper estimates of one value's JSON text (a float32 is about 12 characters, an int64 up to 20,
# a sampled word 10 with its quotes), so the body's size is known before anything is allocated.
_JSON_BYTES = {"string": 12, "bool": 6, "float16": 12, "float32": 16, "float64": 26,
               "bfloat16": 12}


def check_sample_size(signature: Signature, shapes: dict[str, tuple[int, ...]],
                      images: set[str], image_size: tuple[int, int],
                      limits: Limits | None = None) -> None:
    """Raise (a KdiagError naming the cap and the size) when the request these shapes describe
    is over the sample caps: a 149-byte graph may declare [-1, 100000, 100000]."""
    limits = limits or active_limits()
    elements = 0
    body = 0
    biggest = ("", (), 0)
    for name, shape in shapes.items():
        count = 1
        for d in shape:
            count *= max(int(d), 0)  # Python ints: no overflow, however large the dimensions
        per = _JSON_BYTES.get(signature.inputs[name].dtype, 21)
        if name in images:  # one PNG per value, base64
            h, w = image_size
            count, per = count * h * w * 3, 2
        elements += count
        body += count * per
        if count > biggest[2]:
            biggest = (name, shape, count)
    what = (f"Too large to sample: the request for signature {signature.name!r} (input "
            f"{biggest[0]!r} of shape {format_shape(biggest[1])})")
    if elements > limits.sample_elements:
        raise LimitExceeded(what, f"{elements:,} values", "sample_elements", limits)
    if body > limits.sample_bytes:
        raise LimitExceeded(what, f"about {human(body)} of JSON", "sample_bytes", limits)


def _final_shapes(signature: Signature, plan: dict[str, list[int | None]], opts: SampleOptions,
                  columnar: bool, notes: list[str]) -> dict[str, tuple[int, ...]]:
    n = opts.batch
    if not columnar:
        fixed = {name: s[0] for name, s in plan.items() if s[0] is not None}
        if fixed:
            (first, n), *_ = fixed.items()
            if n != opts.batch:
                notes.append(f"made {n} instance(s), not --batch {opts.batch}: axis 0 of input "
                             f"{first!r} is fixed at {n}.")
    return {name: tuple(n if d is None else d for d in shape) for name, shape in plan.items()}


def _values(name: str, spec: TensorSpec, shape: tuple[int, ...], opts: SampleOptions,
            rng: np.random.Generator) -> np.ndarray:
    # rng methods return Python or numpy scalars for shape (); np.asarray keeps 0-d arrays.
    if spec.dtype == "bool":
        return np.asarray(rng.random(shape) < 0.5)
    if spec.dtype == "string":
        out = np.empty(shape, dtype=object)
        out[...] = _WORD_BYTES[rng.integers(0, len(_WORDS), size=shape)]
        return out
    dtype = numpy_dtype(spec.dtype)
    assert dtype is not None
    lo, hi = _range_for(name, spec, opts)
    if spec.dtype in INT_JSON_DTYPES:
        return np.asarray(rng.integers(int(lo), int(hi), size=shape, dtype=dtype), dtype=dtype)
    assert spec.dtype in FLOAT_JSON_DTYPES
    return np.asarray(rng.uniform(lo, hi, size=shape)).astype(dtype)


def _image_inputs(signature: Signature) -> set[str]:
    """String inputs that should carry encoded images: by name, else by the graph's notes."""
    strings = [n for n, s in signature.inputs.items() if s.dtype == "string"]
    by_name = {n for n in strings if _IMAGE_NAME.search(n)}
    if by_name:
        return by_name
    if any(_IMAGE_NOTE.search(note) for note in signature.notes):
        return set(strings)
    return set()


def _png(pixels: np.ndarray) -> bytes:
    """A valid 8-bit RGB PNG of `pixels` (H, W, 3), built with zlib and struct (no PIL)."""
    h, w, _ = pixels.shape
    # Each scanline starts with filter type 0 (None).
    raw = np.concatenate([np.zeros((h, 1), np.uint8), pixels.reshape(h, w * 3)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8-bit, colour type 2 (RGB)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw.tobytes())) + chunk(b"IEND", b""))


def _png_array(rng: np.random.Generator, shape: tuple[int, ...], h: int, w: int) -> np.ndarray:
    count = int(np.prod(shape, dtype=np.int64))
    pixels = rng.integers(0, 256, size=(count, h, w, 3), dtype=np.uint8)
    out = np.empty(count, dtype=object)
    out[:] = [_png(p) for p in pixels]
    return out.reshape(shape)


def _jsonlines_problem(body: str, n: int) -> str | None:
    """Why the container's JSON dispatcher would not turn these lines into n instances.

    tensorflowServing.js json_request: a body with a quoted "instances"/"inputs"/"examples" key
    is forwarded as is; otherwise lines are merged only when a `]` or `}` is followed by `[` or
    `{`, and a single line is merged without the outer brackets; anything else is wrapped as one
    instance, or, when it starts with `[[`, used as the instances list itself.
    """
    if _TFS_JSON.search(body):
        return ("a line holds the key \"instances\", \"inputs\" or \"examples\", so the container "
                "forwards the body unchanged instead of merging the lines")
    if n == 1:
        if _JSON_LINES.search(body):
            return ("a one-line body in which a ] or } is followed by [ or { is merged as "
                    "{\"instances\":<line>} without brackets, so TF Serving reads the line's "
                    "first axis (or its object) as the instances")
        if _LIST_OF_LISTS.match(body):
            return ("a one-line body starting with [[ is taken as the instances list itself, so "
                    "TF Serving reads the line's first axis as the instances")
        return None
    if not _JSON_LINES.search(body):
        return ("lines holding bare values (not lists or objects) are not recognised as JSON "
                "lines, so the whole body is wrapped as one instance, which is not valid JSON")
    return None
