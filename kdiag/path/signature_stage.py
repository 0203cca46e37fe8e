"""The `signature` stage: the tensors TF Serving built, against the signature's shapes.

TF Serving checks names and dtypes while parsing, but never dimensions: a tensor of the wrong
rank or inner size is handed to the graph, which then fails deep inside with an op's message
("Matrix size-incompatible", "input must be 4-dimensional", "Input to reshape is a tensor with
..."). kdiag reports the mismatch here, before any graph runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from kdiag.diagnosis.findings import Finding
from kdiag.model.signature import Signature, format_shape
from kdiag.path.trace import StageRecord

# TF Serving never checks dimensions (json_tensor.cc builds whatever the JSON holds): whether a
# wrong rank or size fails depends on the graph's first ops. A Dense layer's MatMul checks the
# last axis; a Normalization, an add or a multiply broadcasts (fixtures/models/normalized).
GRAPH_DECIDES = ("the graph decides: 400 if it checks this axis, otherwise 200 computed from a "
                 "malformed input")


@dataclass
class Mismatch:
    input: str
    kind: str  # "rank" | "dim" | "batch" | "content"
    expected: tuple[int, ...] | None
    got: tuple[int, ...]
    axis: int | None = None


@dataclass
class SignatureCheck:
    ok: bool
    mismatches: list[Mismatch] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    record: StageRecord | None = None


def _graph_hint(expected: tuple[int, ...], got: tuple[int, ...]) -> str:
    """What the graph typically says for this mismatch (the exact text depends on the first op)."""
    if len(got) != len(expected):
        if len(expected) == 4:
            return f"e.g. a Conv2D fails with \"input must be 4-dimensional{list(got)}\""
        if len(expected) == 2 and len(got) == 1:
            return "e.g. a Dense layer fails with \"In[0] and In[1] has different ndims\" " \
                   "or \"Matrix size-incompatible\""
        return "the first op that uses it fails with a rank error"
    return (f"e.g. a Dense layer fails with \"Matrix size-incompatible: In[0]: "
            f"{list(got)[-2:] if len(got) >= 2 else list(got)}, In[1]: [{expected[-1]},...]\"")


# Leading bytes of the formats tf.io.decode_image reads (its error lists them).
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"RIFF",
               b"\xff\x0a", b"\x00\x00\x00\x0cJXL ")


_DTYPE_NAMES: dict[np.dtype, str] = {}


def dtype_name(v) -> str:
    """TensorFlow's name for an array's dtype ("string" for bytes/str/object); str(np.dtype)
    is slow enough to show in validate's profile, so names are cached."""
    dt = v.dtype if hasattr(v, "dtype") else np.asarray(v).dtype
    name = _DTYPE_NAMES.get(dt)
    if name is None:
        name = _DTYPE_NAMES[dt] = "string" if dt.kind in "OSU" else str(dt)
    return name


def _not_images(arr: np.ndarray) -> tuple[int, bool] | None:
    """(count of values that are not image bytes, whether they look like base64 text)."""
    if np.ndim(arr) > 32:  # a rank mismatch already; its values are not kept (TooManyDims)
        return None
    flat = [v for v in np.asarray(arr, dtype=object).ravel()[:64] if isinstance(v, bytes)]
    bad = [v for v in flat if not v.startswith(IMAGE_MAGIC)]
    if not bad:
        return None
    b64 = all(len(v) >= 16 and re.fullmatch(rb"[A-Za-z0-9+/=\s]+", v) for v in bad)
    return len(bad), b64


def _not_examples(arr: np.ndarray) -> int:
    """How many of the first values are not serialized tf.Example protos.

    tf.train.Example holds one field, `features` (1, length-delimited); ParseExample fails on
    anything else with "Could not parse example input" (tensorflow/core/util/example_proto_
    fast_parsing.cc), which TF Serving answers with 400. An empty string is an empty Example.
    """
    from kdiag.model.protobuf import ProtobufError, iter_fields

    bad = 0
    for v in np.asarray(arr, dtype=object).ravel()[:64]:
        if not isinstance(v, bytes):
            bad += 1
            continue
        try:
            if any(f != 1 or w != 2 for f, w, _ in iter_fields(v)):
                bad += 1
        except ProtobufError:
            bad += 1
    return bad


def check_tensors(tensors: dict[str, np.ndarray], sig: Signature) -> SignatureCheck:
    out = SignatureCheck(ok=True)
    decodes = any("decodes images" in n for n in sig.notes)
    shapes = []
    for name, arr in tensors.items():
        spec = sig.inputs.get(name)
        got = tuple(int(d) for d in np.shape(arr))
        shapes.append(f"{name} {format_shape(got)}")
        if spec is None or spec.shape is None:
            continue
        exp = spec.shape
        if len(got) != len(exp):
            out.mismatches.append(Mismatch(name, "rank", exp, got))
            continue
        for axis, (e, g) in enumerate(zip(exp, got, strict=True)):
            if e != -1 and e != g:
                out.mismatches.append(Mismatch(name, "batch" if axis == 0 else "dim", exp, got, axis))
                break
    for m in out.mismatches:
        exp = m.expected or ()
        if m.kind == "rank":
            msg = (f"Input {m.input!r} is {format_shape(m.got)} (rank {len(m.got)}) but the "
                   f"signature expects {format_shape(exp)} (rank {len(exp)}): TF Serving passes it "
                   f"on unchecked, and {GRAPH_DECIDES} ({_graph_hint(exp, m.got)}).")
        elif m.kind == "batch":
            msg = (f"Input {m.input!r} holds {m.got[0]} instance(s) but the signature pins the "
                   f"batch axis at {exp[0]}: TF Serving does not enforce it and most graphs run, "
                   "but a graph that reshapes with that size fails.")
        else:
            msg = (f"Input {m.input!r} is {format_shape(m.got)} but the signature expects "
                   f"{format_shape(exp)}: axis {m.axis} is {m.got[m.axis or 0]}, not "
                   f"{exp[m.axis or 0]}; TF Serving passes it on unchecked, and {GRAPH_DECIDES} "
                   f"({_graph_hint(exp, m.got)}).")
        code = {"rank": "KD401", "dim": "KD402", "batch": "KD403"}[m.kind]
        out.findings.append(Finding(code, "warning" if m.kind == "batch" else "error",
                                    "signature", msg, f"Send {m.input!r} as {format_shape(exp)}."))
    if decodes:
        for name, arr in tensors.items():
            spec = sig.inputs.get(name)
            bad = _not_images(arr) if spec is not None and spec.dtype == "string" else None
            if bad is None:
                continue
            count, b64 = bad
            out.mismatches.append(Mismatch(name, "content", spec.shape, tuple(np.shape(arr))))
            out.findings.append(Finding(
                "KD414", "error", "signature",
                f"Input {name!r} feeds an image decoder, but {count} value(s) are not image bytes"
                + (": they are base64 text sent as a plain string, so the graph receives the "
                   "base64 characters themselves" if b64 else "")
                + "; the graph fails with 400 (\"Unknown image file format\").",
                "Send the image as {\"b64\": base64.b64encode(image_bytes).decode()}: TF "
                "Serving decodes it to bytes before the graph."))
    if any("parses tf.Example" in n for n in sig.notes):
        for name, arr in tensors.items():
            spec = sig.inputs.get(name)
            if spec is None or spec.dtype != "string" or not np.size(arr):
                continue
            count = _not_examples(arr)
            if not count:
                continue
            out.mismatches.append(Mismatch(name, "content", spec.shape, tuple(np.shape(arr))))
            out.findings.append(Finding(
                "KD421", "error", "signature",
                f"Input {name!r} feeds a tf.Example parser (ParseExample in the graph), but "
                f"{count} value(s) are not serialized tf.train.Example protos; the graph fails "
                "with 400 (\"Could not parse example input\").",
                "Send tf.train.Example(features=...).SerializeToString() of each instance as "
                "{\"b64\": ...}, or use the classify/regress API (tfs-method) with JSON "
                "examples."))
    out.ok = not any(m.kind != "batch" for m in out.mismatches)
    dtypes = sorted({dtype_name(a) for a in tensors.values()})
    out.record = StageRecord(
        stage="signature", verdict="ok" if out.ok else "fail",
        holds=f"{len(tensors)} tensor(s) vs {sig.name}",
        dtype=", ".join(dtypes) or None, shape="; ".join(shapes),
        excerpt="" if out.ok else out.findings[0].message[:120],
    )
    return out
