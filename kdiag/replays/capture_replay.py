"""Replay SageMaker Data Capture: captured inputs through the local path, diffed with the
captured outputs. Streams in chunks, so memory stays bounded whatever the capture's size.

The result says what was read (files, lines, records), what could not be read (counted by
reason, never skipped silently: finding KD715) and, per record, what the local replay gave, so
`replay --capture ... --out FILE` writes one line per record for `kdiag diff`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice

import numpy as np

from kdiag.comparison import Comparator, CompareConfig, ComparisonResult
from kdiag.diagnosis.findings import Finding
from kdiag.path.container import Request
from kdiag.path.local_endpoint import LocalEndpoint
from kdiag.replays.capture import CaptureRecord, CaptureStats, iter_capture
from kdiag.replays.outputs import capture_output_tensors
from kdiag.replays.replay import replay_many

# (record id, the local replay's decoded outputs or None, why there are none or None)
RecordCallback = Callable[[str, dict | None, str | None], None]
REJECTED_KEPT = 20  # rejected records kept with their diagnosis and fixed payload


@dataclass
class CaptureReplayResult:
    comparison: ComparisonResult
    records: int = 0
    replayed_ok: int = 0
    rejected_locally: int = 0
    not_replayable: int = 0
    stats: CaptureStats = field(default_factory=CaptureStats)
    # The first rejected records: id, status, stage, root cause, the fixed payload when kdiag
    # has one that passes the same path (what a "fix the failure first" finding points at).
    rejected: list[dict] = field(default_factory=list)

    @property
    def skipped_lines(self) -> int:
        return sum(self.stats.skipped.values())

    @property
    def findings(self) -> list[Finding]:
        """The comparison's findings, with the unread lines first: a capture replay that
        skipped records compares less than the capture holds."""
        return self.read_findings() + list(self.comparison.findings)

    def read_findings(self) -> list[Finding]:
        st = self.stats
        if not st.skipped:
            return []
        reasons = "; ".join(f"{n} {r}" for r, n in st.skipped.items())
        return [Finding(
            "KD715", "warning", "compare",
            f"{self.skipped_lines} of {st.lines} capture lines could not be read and were not "
            f"replayed ({reasons}); first: {st.examples[0] if st.examples else '?'}.",
            "A truncated last line happens when a capture file is cut while being written; "
            "other reasons point at files that are not Data Capture output.")]

    def to_json(self) -> dict:
        st = self.stats
        return {"records": self.records, "replayed_ok": self.replayed_ok,
                "rejected_locally": self.rejected_locally,
                "not_replayable": self.not_replayable,
                "read": {"files": st.files, "files_listed": st.files_listed,
                         "lines": st.lines, "records": st.records,
                         "filtered_out": st.filtered_out,
                         "skipped": self.skipped_lines, "skipped_by_reason": dict(st.skipped),
                         "skipped_examples": list(st.examples)},
                "rejected": self.rejected,
                "comparison": self.comparison.to_dict(),
                "findings": [f.to_dict() for f in self.findings]}


def _rejected(rid: str, res) -> dict:
    from kdiag.diagnosis.validation import one_line

    root = next((f for f in res.findings if f.severity == "error"), None)
    return {"id": rid, "status": res.status, "stage": res.stage, "cause": one_line(res),
            "code": root.code if root else None, "fixed_payload": res.fixed_payload}


def _columns(per_record: list[dict[str, np.ndarray] | None]) -> dict[str, list]:
    names = sorted({k for d in per_record if d for k in d})
    return {n: [None if d is None else d.get(n) for d in per_record] for n in names}


def replay_capture(endpoint: LocalEndpoint, path: str, *, endpoint_url: str | None = None,
                   limit: int | None = None, since: datetime | None = None,
                   until: datetime | None = None, shard: tuple[int, int] | None = None,
                   max_batch: int = 256, chunk: int = 2000, config: CompareConfig | None = None,
                   progress: Callable[[int], None] | None = None,
                   on_record: RecordCallback | None = None) -> CaptureReplayResult:
    """A = what the live endpoint answered (captured), B = the local replay of the same input.

    `on_record` is called once per record, in capture order, with the local outputs or the
    reason there are none (for `--out`)."""
    stats = CaptureStats()
    cmp = Comparator(config or CompareConfig())
    out = CaptureReplayResult(comparison=None, stats=stats)  # type: ignore[arg-type]
    records = iter_capture(path, endpoint_url=endpoint_url, limit=limit, since=since,
                           until=until, shard=shard, stats=stats)
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
                out.not_replayable += 1
        for i, res in zip(where, results, strict=True):
            if res.accepted:
                local[i] = res.decoded
                out.replayed_ok += 1
            else:
                local_err[i] = f"local replay rejected it: {res.status} at {res.stage}"
                out.rejected_locally += 1
                if len(out.rejected) < REJECTED_KEPT:
                    out.rejected.append(_rejected(block[i].id, res))
        captured: list[dict | None] = []
        cap_err: dict[int, str] = {}
        for i, rec in enumerate(block):
            tensors, _unnamed, err = capture_output_tensors(rec.output)
            captured.append(tensors)
            if err:
                cap_err[i] = err
        cmp.add(_columns(captured), _columns(local), [r.id for r in block],
                a_errors=cap_err, b_errors=local_err)
        if on_record is not None:
            for i, rec in enumerate(block):
                on_record(rec.id, local[i], local_err.get(i))
        out.records += len(block)
        if progress:
            progress(len(block))
    out.comparison = cmp.result()
    return out
