"""Replay SageMaker Data Capture: captured inputs through the local path, diffed with the
captured outputs. Streams in chunks, so memory stays bounded whatever the capture's size.

The result says what was read (files, lines, records), what could not be read (counted by
reason, never skipped silently: finding KD715) and, per record, what the local replay gave, so
`replay --capture ... --out FILE` writes one line per record for `kdiag diff`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby, islice
from operator import attrgetter

import numpy as np

from kdiag.comparison import Comparator, CompareConfig, ComparisonResult
from kdiag.diagnosis.findings import Finding
from kdiag.path.container import Request
from kdiag.path.local_endpoint import LocalEndpoint
from kdiag.replays.capture import (
    CaptureRecord,
    CaptureStats,
    iter_capture,
    require_some_readable,
)
from kdiag.replays.outputs import capture_output_tensors
from kdiag.replays.replay import BLOCK, ReplayResult, is_crash, replay_many
from kdiag.safe_io import MAX_LINE_BYTES

# Records replayed and compared per block (replay.BLOCK). A block holds consecutive records of
# one file: the model's stacked calls (float rounding can depend on the batch) and the
# comparison's sums run block by block, so an engine that replays the same blocks gets
# bit-identical results.
CHUNK = BLOCK

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
        compared = self.comparison.findings if self.comparison is not None else []  # not run yet
        return self.read_findings() + list(compared)

    def read_findings(self) -> list[Finding]:
        st = self.stats
        out = [Finding("KD881", "error", "capture", f"Not replayed: {why}",
                       "Check the file: kdiag replay --capture FILE --model MODEL, run alone, "
                       "names the problem; the other files were replayed.")
               for _name, why in st.unreadable]
        if not st.skipped:
            return out
        reasons = "; ".join(f"{n} {r}" for r, n in st.skipped.items())
        return out + [Finding(
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
                "unreadable_files": [{"file": f, "error": e} for f, e in st.unreadable],
                "rejected": self.rejected,
                "comparison": self.comparison.to_dict(),
                "findings": [f.to_dict() for f in self.findings]}


def _rejected(rid: str, res) -> dict:
    from kdiag.diagnosis.validation import one_line

    root = next((f for f in res.findings if f.severity == "error"), None)
    return {"id": rid, "status": res.status, "stage": res.stage, "cause": one_line(res),
            "code": root.code if root else None, "fixed_payload": res.fixed_payload}


def columns_of(per_record: list[dict[str, np.ndarray] | None]) -> dict[str, list]:
    names = sorted({k for d in per_record if d for k in d})
    return {n: [None if d is None else d.get(n) for d in per_record] for n in names}


@dataclass
class ReplayedBlock:
    """One block of capture records after the local replay: what each side has to compare.

    Position i of every list is record i of `records`; `*_errors` say why a side has no
    outputs. The in-process path and the Ray engine both build it with `replay_block` and feed
    it to the comparison with `add_block`, so the same code decides every verdict."""

    ids: list[str]
    captured: list[dict[str, np.ndarray] | None]
    captured_errors: dict[int, str]
    local: list[dict[str, np.ndarray] | None]
    local_errors: dict[int, str]
    results: dict[int, ReplayResult]  # position -> the local replay, for replayed records
    replayed_ok: int = 0
    rejected_locally: int = 0
    not_replayable: int = 0


def replay_block(endpoint: LocalEndpoint, block: list[CaptureRecord], *,
                 max_batch: int = 256) -> ReplayedBlock:
    """Replay a block of capture records (stacked model calls) and decode the captured side."""
    items, where = [], []
    for i, rec in enumerate(block):
        if rec.input is not None and rec.input.decode_error is None:
            items.append((rec.id, Request(rec.input.data, rec.input.content_type or None)))
            where.append(i)
    results = replay_many(endpoint, items, max_batch=max_batch)
    blk = ReplayedBlock(ids=[r.id for r in block], captured=[], captured_errors={},
                        local=[None] * len(block), local_errors={}, results={})
    for i, rec in enumerate(block):
        if rec.input is None or rec.input.decode_error is not None:
            blk.local_errors[i] = "no replayable endpointInput" + (
                f" ({rec.input.decode_error})" if rec.input is not None else "")
            blk.not_replayable += 1
    for i, res in zip(where, results, strict=True):
        blk.results[i] = res
        if res.accepted:
            blk.local[i] = res.decoded
            blk.replayed_ok += 1
        elif is_crash(res):
            blk.local_errors[i] = f"the local replay crashed: {res.error}"
            blk.rejected_locally += 1
        else:
            blk.local_errors[i] = f"local replay rejected it: {res.status} at {res.stage}"
            blk.rejected_locally += 1
    for i, rec in enumerate(block):
        tensors, _unnamed, err = capture_output_tensors(rec.output)
        blk.captured.append(tensors)
        if err:
            blk.captured_errors[i] = err
    return blk


def add_block(cmp: Comparator, out: CaptureReplayResult, blk: ReplayedBlock) -> None:
    """Feed one replayed block to the comparison (A = captured, B = local) and the counts."""
    cmp.add(columns_of(blk.captured), columns_of(blk.local), blk.ids,
            a_errors=blk.captured_errors, b_errors=blk.local_errors)
    out.records += len(blk.ids)
    out.replayed_ok += blk.replayed_ok
    out.rejected_locally += blk.rejected_locally
    out.not_replayable += blk.not_replayable
    for i in sorted(blk.results):
        res = blk.results[i]
        if not res.accepted and len(out.rejected) < REJECTED_KEPT:
            out.rejected.append(_rejected(blk.ids[i], res))


def blocks_of(records: Iterable[CaptureRecord], chunk: int = CHUNK
              ) -> Iterator[list[CaptureRecord]]:
    """Records in the blocks every engine replays: up to `chunk` consecutive records of one
    file."""
    for _source, in_file in groupby(records, key=attrgetter("source")):
        while block := list(islice(in_file, chunk)):
            yield block


def replay_capture(endpoint: LocalEndpoint, path: str, *, endpoint_url: str | None = None,
                   limit: int | None = None, since: datetime | None = None,
                   until: datetime | None = None, shard: tuple[int, int] | None = None,
                   max_batch: int = 256, chunk: int = CHUNK, config: CompareConfig | None = None,
                   progress: Callable[[int], None] | None = None,
                   max_line: int = MAX_LINE_BYTES,
                   on_block: Callable[[list[CaptureRecord], ReplayedBlock], None] | None = None,
                   on_record: RecordCallback | None = None) -> CaptureReplayResult:
    """A = what the live endpoint answered (captured), B = the local replay of the same input.

    `on_block` sees every replayed block (e.g. to write per-record Parquet rows); `on_record`
    is called once per record, in capture order, with the local outputs or the reason there
    are none (for `--out FILE`)."""
    stats = CaptureStats()
    cmp = Comparator(config or CompareConfig())
    out = CaptureReplayResult(comparison=None, stats=stats)  # type: ignore[arg-type]
    records = iter_capture(path, endpoint_url=endpoint_url, limit=limit, since=since,
                           until=until, shard=shard, stats=stats, max_line=max_line,
                           keep_going=True)
    for block in blocks_of(records, chunk):
        blk = replay_block(endpoint, block, max_batch=max_batch)
        add_block(cmp, out, blk)
        if on_block:
            on_block(block, blk)
        if on_record is not None:
            for i, rid in enumerate(blk.ids):
                on_record(rid, blk.local[i], blk.local_errors.get(i))
        if progress:
            progress(len(block))
    require_some_readable(stats)
    out.comparison = cmp.result()
    return out
