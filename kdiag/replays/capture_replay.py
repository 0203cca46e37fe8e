"""Replay SageMaker Data Capture: captured inputs through the local path, diffed with the
captured outputs. Streams in chunks, so memory stays bounded whatever the capture's size."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice

import numpy as np

from kdiag.comparison import Comparator, CompareConfig, ComparisonResult
from kdiag.path.container import Request
from kdiag.path.local_endpoint import LocalEndpoint
from kdiag.replays.capture import CaptureRecord, CaptureStats, iter_capture
from kdiag.replays.outputs import capture_output_tensors
from kdiag.replays.replay import replay_many
from kdiag.safe_io import MAX_LINE_BYTES


@dataclass
class CaptureReplayResult:
    comparison: ComparisonResult
    records: int = 0
    replayed_ok: int = 0
    rejected_locally: int = 0
    stats: CaptureStats = field(default_factory=CaptureStats)

    def to_json(self) -> dict:
        return {"records": self.records, "replayed_ok": self.replayed_ok,
                "rejected_locally": self.rejected_locally,
                "comparison": self.comparison.to_dict()}


def _columns(per_record: list[dict[str, np.ndarray] | None]) -> dict[str, list]:
    names = sorted({k for d in per_record if d for k in d})
    return {n: [None if d is None else d.get(n) for d in per_record] for n in names}


def replay_capture(endpoint: LocalEndpoint, path: str, *, endpoint_url: str | None = None,
                   limit: int | None = None, since: datetime | None = None,
                   until: datetime | None = None, shard: tuple[int, int] | None = None,
                   max_batch: int = 256, chunk: int = 2000, config: CompareConfig | None = None,
                   progress: Callable[[int], None] | None = None,
                   max_line: int = MAX_LINE_BYTES) -> CaptureReplayResult:
    """A = what the live endpoint answered (captured), B = the local replay of the same input."""
    stats = CaptureStats()
    cmp = Comparator(config or CompareConfig())
    out = CaptureReplayResult(comparison=None, stats=stats)  # type: ignore[arg-type]
    records = iter_capture(path, endpoint_url=endpoint_url, limit=limit, since=since,
                           until=until, shard=shard, stats=stats, max_line=max_line)
    while True:
        block: list[CaptureRecord] = list(islice(records, chunk))
        if not block:
            break
        items, where = [], []
        for i, rec in enumerate(block):
            if rec.input is not None and rec.input.decode_error is None:
                items.append((rec.id, Request(rec.input.data, rec.input.content_type or None)))
                where.append(i)
        results = replay_many(endpoint, items, max_batch=max_batch)
        local: list[dict | None] = [None] * len(block)
        local_err: dict[int, str] = {}
        for i, rec in enumerate(block):
            if rec.input is None or rec.input.decode_error is not None:
                local_err[i] = "no replayable endpointInput" + (
                    f" ({rec.input.decode_error})" if rec.input is not None else "")
        for i, res in zip(where, results, strict=True):
            if res.accepted:
                local[i] = res.decoded
                out.replayed_ok += 1
            else:
                local_err[i] = f"local replay rejected it: {res.status} at {res.stage}"
                out.rejected_locally += 1
        captured: list[dict | None] = []
        cap_err: dict[int, str] = {}
        for i, rec in enumerate(block):
            tensors, _unnamed, err = capture_output_tensors(rec.output)
            captured.append(tensors)
            if err:
                cap_err[i] = err
        cmp.add(_columns(captured), _columns(local), [r.id for r in block],
                a_errors=cap_err, b_errors=local_err)
        out.records += len(block)
        if progress:
            progress(len(block))
    out.comparison = cmp.result()
    return out
