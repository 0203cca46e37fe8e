"""Infer a live endpoint's input names, dtypes and ranks from TF Serving's own error messages.

Used when kdiag has neither --signature nor a model. A few deliberately minimal requests, each
one answered by TF Serving's JSON parser or the graph:

1. `{"instances": [{}]}`: an empty object per instance. FillTensorMapFromInstancesList
   (json_tensor.cc) answers "Failed to process element: 0 of 'instances' list. JSON object: {}
   keys must be equal to: a,b" ("must only have keys: " before TF Serving 2.3): every input
   name, sorted.
2. `{"instances": [{"a": "kdiag", "b": "kdiag"}]}`: a string for every input whose dtype is not
   known yet. The first numeric or bool input fails with "... key: a of 'instances' list. Error:
   JSON Value: "kdiag" Type: String is not of expected type: float"; once the parser accepts
   all the remaining strings, those inputs are strings.
3. Zeros of increasing rank (one instance, every axis of size 1). TF Serving never checks
   dimensions, so the graph answers: an op that wants another rank says so ("has different
   ndims", "must be 4-dimensional"), one that wants another size names it ("Matrix
   size-incompatible: In[0]: [1,1], In[1]: [5,1]" -> 5 features). A 200 proves the request
   shape works, but an axis of size 1 may just have been broadcast, so such axes stay unknown.

The answer says what each fact rests on; nothing here is taken on trust.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kdiag.model.signature import PREDICT_METHOD, Signature, TensorSpec, normalise_dtype

DEFAULT_MAX_REQUESTS = 8
MAX_RANK = 4

_NAMES = re.compile(r"JSON object: \{\}\s*(?:keys must be equal to|must only have keys):\s*(.+?)\s*$",
                    re.S)
_TYPE = re.compile(r"key: (.+?) of 'instances' list\. Error: (?:[A-Z_]+: )?JSON Value: .*? "
                   r"Type: String is not of expected type: (\w+)", re.S)
_RANK_HINT = re.compile(r"must be (\d)-dimensional|must be rank (\d)|Shape must be rank (\d)")
_RANK_ERR = re.compile(r"different ndims|is not a matrix|-dimensional|must be rank|"
                       r"Shape must be rank|must be at least rank|ndims")
_SIZE_ERR = re.compile(r"Matrix size-incompatible|Incompatible shapes|Input to reshape|"
                       r"mismatch In\[1\] shape|Dimensions of inputs should match|ConcatOp|"
                       r"output size would be negative|Negative dimension size")
_MATMUL = re.compile(r"Matrix size-incompatible: In\[0\]: \[(\d+(?:,\d+)*)\], "
                     r"In\[1\]: \[(\d+),(\d+)\]")
# json_tensor.cc writes DataTypeString: float, double, half; the rest are kdiag's names.
_TF_TYPES = {"float": "float32", "double": "float64", "half": "float16"}


@dataclass
class Answer:
    """What one request got: ok, and TF Serving's message (or the response body when ok)."""

    ok: bool
    text: str
    status: int | None = None


@dataclass
class InferredInput:
    name: str
    dtype: str | None = None
    dtype_from: str | None = None  # "type error" | "accepted a string"
    shape: tuple[int, ...] | None = None  # batch axis included, -1 unknown
    shape_from: str | None = None  # "accepted" | "graph error"

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "dtype_from": self.dtype_from,
                "shape": None if self.shape is None else list(self.shape),
                "shape_from": self.shape_from}


@dataclass
class Inference:
    inputs: list[InferredInput] = field(default_factory=list)
    outputs: dict[str, TensorSpec] = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    complete: bool = False  # names, dtypes and ranks all known

    @property
    def signature(self) -> Signature | None:
        """A signature kdiag can generate payloads from: names and dtypes known."""
        if not self.inputs or any(i.dtype is None for i in self.inputs):
            return None
        return Signature(
            name="serving_default", method_name=PREDICT_METHOD,
            inputs={i.name: TensorSpec(i.dtype or "float32", i.shape) for i in self.inputs},
            outputs=dict(self.outputs), notes=("inferred from the live endpoint's answers",))

    def to_json(self) -> dict:
        sig = self.signature
        return {"complete": self.complete, "inputs": [i.to_json() for i in self.inputs],
                "outputs": {k: v.to_json() for k, v in self.outputs.items()},
                "signature": None if sig is None else sig.to_json(),
                "requests": self.requests, "notes": self.notes}


def _body(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")


def _zero(dtype: str) -> Any:
    if dtype == "bool":
        return False
    if dtype == "string":
        return "kdiag"
    return 0


def _nest(value: Any, inner: tuple[int, ...]) -> Any:
    out = value
    for size in reversed(inner):
        out = [out] * size
    return out


def _tf_dtype(name: str) -> str | None:
    try:
        return normalise_dtype(_TF_TYPES.get(name, name))
    except Exception:
        return None


def infer_signature(send: Callable[[bytes], Answer | None], *,
                    max_requests: int = DEFAULT_MAX_REQUESTS) -> Inference:
    """Run the minimal requests through `send` (which returns None when it may not send any
    more: the caller's budget). At most `max_requests` are sent."""
    inf = Inference()
    sent = 0

    def ask(purpose: str, doc: Any) -> Answer | None:
        nonlocal sent
        if sent >= max_requests:
            return None
        body = _body(doc)
        ans = send(body)
        if ans is None:
            return None
        sent += 1
        inf.requests.append({"purpose": purpose, "body": body.decode(), "ok": ans.ok,
                             "status": ans.status, "answer": ans.text[:500]})
        return ans

    # 1. names
    ans = ask("input names", {"instances": [{}]})
    if ans is None:
        inf.notes.append("no request could be sent (request budget)")
        return inf
    m = _NAMES.search(ans.text) if not ans.ok else None
    if m is None:
        inf.notes.append("the endpoint's answer to {\"instances\": [{}]} is not TF Serving's "
                         "input-name message, so kdiag cannot infer the signature (a custom "
                         "inference.py, or not TF Serving behind the endpoint): "
                         + ans.text[:200])
        return inf
    names = [n.strip() for n in m.group(1).split(",") if n.strip()]
    inf.inputs = [InferredInput(n) for n in names]
    by_name = {i.name: i for i in inf.inputs}

    # 2. dtypes
    success: tuple[dict, Answer] | None = None
    while any(i.dtype is None for i in inf.inputs):
        inst = {i.name: "kdiag" if i.dtype is None else _zero(i.dtype) for i in inf.inputs}
        ans = ask("input dtypes", {"instances": [inst]})
        if ans is None:
            inf.notes.append("request budget spent before every dtype was known")
            return inf
        t = _TYPE.search(ans.text) if not ans.ok else None
        if t and t.group(1) in by_name and by_name[t.group(1)].dtype is None:
            got = by_name[t.group(1)]
            got.dtype = _tf_dtype(t.group(2))
            got.dtype_from = "type error"
            if got.dtype is None:
                inf.notes.append(f"unknown dtype {t.group(2)!r} for input {got.name!r}")
                return inf
            continue
        for i in inf.inputs:  # the parser took a string for every input still unknown
            if i.dtype is None:
                i.dtype, i.dtype_from = "string", "accepted a string"
        if ans.ok:
            success = (inst, ans)
        break

    # 3. ranks (and sizes the graph names)
    inner: dict[str, tuple[int, ...]] = {}
    rank_from: str | None = None
    tried: set[int] = set()
    if success is not None:
        inner = {n: () for n in names}
        rank_from = "accepted"
    rank = 1
    fixed_size = False
    while success is None and rank is not None:
        tried.add(rank)
        inner = {i.name: inner.get(i.name, ()) if len(inner.get(i.name, ())) == rank - 1
                 else (1,) * (rank - 1) for i in inf.inputs}
        inst = {i.name: _nest(_zero(i.dtype or "float32"), inner[i.name]) for i in inf.inputs}
        doc = {"instances": [inst]} if len(names) > 1 else {"instances": [inst[names[0]]]}
        ans = ask(f"rank {rank}", doc)
        if ans is None:
            inf.notes.append("request budget spent before the ranks were known")
            break
        if ans.ok:
            success, rank_from = (inst, ans), "accepted"
            break
        text = ans.text
        hint = _RANK_HINT.search(text)
        mm = _MATMUL.search(text)
        if _SIZE_ERR.search(text) and not _RANK_ERR.search(text):
            rank_from = "graph error"
            if mm and len(names) == 1 and not fixed_size and rank == 2:
                want = int(mm.group(2))
                inner[names[0]] = (want,)
                fixed_size = True
                tried.discard(rank)
                continue  # the same rank with the size the graph named
            break
        nxt = None
        if hint:
            r = int(next(g for g in hint.groups() if g))
            nxt = r if r not in tried and 1 <= r <= MAX_RANK else None
        if nxt is None:
            nxt = next((r for r in range(1, MAX_RANK + 1) if r not in tried), None)
            if not _RANK_ERR.search(text):
                inf.notes.append(f"rank {rank}: the graph answered {text[:200]!r}")
        rank = nxt
        if rank is None:
            rank_from = None

    if rank_from is not None:
        for i in inf.inputs:
            dims = inner.get(i.name, ())
            # Size 1 may have been broadcast; only a size the graph named (or >1 accepted) counts.
            i.shape = (-1, *(d if d > 1 else -1 for d in dims))
            i.shape_from = rank_from
        inf.complete = all(i.dtype for i in inf.inputs)
    else:
        inf.notes.append("the ranks of the inputs could not be established; payloads cannot "
                         "be generated from this inference")
    if success is not None:
        _outputs_from(success[1].text, inf)
    return inf


def _outputs_from(body: str, inf: Inference) -> None:
    from kdiag.replays.outputs import loads, response_tensors

    try:
        tensors, unnamed = response_tensors(loads(body))
    except ValueError:
        return
    if unnamed:
        inf.notes.append("the model has one output; TF Serving's response does not name it")
        return
    for name, arr in tensors.items():
        kind = arr.dtype.kind
        dtype = {"f": "float32", "i": "int64", "u": "int64", "b": "bool"}.get(kind, "string")
        inf.outputs[name] = TensorSpec(dtype, (-1, *(-1 for _ in arr.shape[1:])))
