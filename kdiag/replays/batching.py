"""Batch replay: run many payloads' tensors through a model in few calls, with per-payload results.

Replaying a Data Capture file or a corpus of requests one call per payload spends nearly all its
time in per-call overhead (30-60 us a Session run for a tiny model). Payloads whose inputs agree
in names, dtypes and shapes are stacked along axis 0 and run together, then the outputs are cut
back per payload with one reshape.

What the caller can rely on: results come back in input order, one per payload, and a payload's
outputs are those an individual call returns (for models whose instances are independent, which
TF Serving's own request batching assumes too). Any payload that fails gets the error of its own,
individual call, never the message of a stacked call (those name other rows, e.g. "indices[37,0]").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np

from kdiag.model.runner import RunResult

Tensors = dict[str, np.ndarray]
RunFn = Callable[[Tensors], RunResult]

# Below this many payloads, a failed stacked call is resolved by individual calls rather than
# by splitting it further: bisecting an all-failing group would cost ~2n calls instead of n.
_BISECT_FLOOR = 8


def _group_key(item: Tensors) -> tuple | None:
    """Items with equal keys can be stacked (same names, dtypes and full shapes, so also the
    same rows per payload); None: the item runs on its own.

    Alone: scalars (no batch axis), inputs disagreeing on the number of instances (their rows
    do not line up), zero-instance payloads (a graph may treat an empty batch specially), and
    anything that is not an ndarray. Equal rows per payload let every stacked result be cut
    back with one reshape.
    """
    if len(item) == 1:  # the common case, kept cheap: replay cost is per payload
        ((name, arr),) = item.items()
        if type(arr) is np.ndarray and arr.ndim and arr.shape[0]:
            return (name, arr.dtype, arr.shape)
        return None
    rows = -1
    parts = []
    for name, arr in item.items():
        if type(arr) is not np.ndarray or arr.ndim == 0:
            return None
        n = arr.shape[0]
        if rows == -1:
            rows = n
        elif n != rows:
            return None
        parts.append((name, arr.dtype, arr.shape))
    if rows <= 0:
        return None
    parts.sort(key=lambda p: p[0])
    return tuple(parts)


def _chunks(indices: list[int], rows: int, max_batch: int) -> list[list[int]]:
    """Consecutive runs of at most max_batch rows (a payload larger than that runs alone)."""
    per = max(1, max_batch // rows)
    return [indices[k:k + per] for k in range(0, len(indices), per)]


def _run_stacked(items: list[Tensors], chunk: list[int], rows: int, run: RunFn,
                 results: list[RunResult | None]) -> None:
    if len(chunk) == 1:
        results[chunk[0]] = run(items[chunk[0]])
        return
    n = len(chunk)
    total = n * rows
    stacked = {name: np.concatenate([items[i][name] for i in chunk], axis=0)
               for name in items[chunk[0]]}
    res = run(stacked)
    aligned = res.ok and all(
        isinstance(v, np.ndarray) and v.ndim > 0 and v.shape[0] == total
        for v in res.outputs.values())
    if aligned:
        keys = list(res.outputs)
        # Payloads of a group have equal rows: one reshape gives a view per payload.
        per = [list(v.reshape(n, rows, *v.shape[1:])) for v in res.outputs.values()]
        sec = res.seconds / n
        if len(keys) == 1:
            k = keys[0]
            for i, p in zip(chunk, per[0], strict=True):
                results[i] = RunResult(True, {k: p}, seconds=sec)
        else:
            for i, *ps in zip(chunk, *per, strict=True):
                results[i] = RunResult(True, dict(zip(keys, ps, strict=True)), seconds=sec)
        return
    if not res.ok and n > _BISECT_FLOOR:
        # One bad payload among many healthy ones is the common case: halve, so the healthy
        # halves still run stacked.
        mid = n // 2
        _run_stacked(items, chunk[:mid], rows, run, results)
        _run_stacked(items, chunk[mid:], rows, run, results)
        return
    # A failed small chunk, or outputs that do not keep the batch axis (they cannot be cut per
    # payload): each payload on its own.
    for i in chunk:
        results[i] = run(items[i])


def run_batched(items: list[Tensors], run: RunFn, *, max_batch: int = 256) -> list[RunResult]:
    """Run every payload's tensors, stacking compatible payloads into calls of <= max_batch rows.

    `items[i]` maps input names to arrays whose axis 0 is the batch axis; `run` is typically
    `SavedModelRunner.run` (or a partial naming the signature); it reports graph failures as
    RunResults (an exception it raises propagates). Returns one RunResult per item, in order. A
    stacked call's `seconds` is shared equally among its payloads (which have equal rows).
    """
    if max_batch < 1:
        raise ValueError("max_batch must be at least 1")
    results: list[RunResult | None] = [None] * len(items)
    groups: defaultdict[tuple, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        key = _group_key(item)
        if key is None:
            results[i] = run(item)
        else:
            groups[key].append(i)
    for indices in groups.values():
        first = items[indices[0]]
        rows = next(iter(first.values())).shape[0]
        for chunk in _chunks(indices, rows, max_batch):
            _run_stacked(items, chunk, rows, run, results)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]
