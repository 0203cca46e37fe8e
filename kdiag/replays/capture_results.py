"""Per-record results of a capture replay: one row per record, whatever engine ran it.

A row says where the record came from (file, line, ids), what the local path made of its input
(status, stage, finding codes, error), what was captured, and the record's verdict. The verdict
comes from the same Comparator that builds the run's summary, run over the block with every
failing id kept, so a row and the summary cannot disagree.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from kdiag.comparison import Comparator, CompareConfig
from kdiag.errors import KdiagError
from kdiag.replays.capture import CaptureRecord
from kdiag.replays.capture_replay import ReplayedBlock, columns_of
from kdiag.replays.outputs import result_line

# Parquet column order; every column is a string, an int or a bool (nullable).
COLUMNS = ("source", "line", "id", "event_id", "inference_id", "inference_time", "verdict",
           "mismatches", "local_status", "local_stage", "local_codes", "local_error",
           "captured_error", "captured", "local")
ROWS_PER_PARQUET_FILE = 100_000
_DIFFER = {"value", "nan", "inf", "shape", "dtype", "output-missing"}


def verdicts(blk: ReplayedBlock, config: CompareConfig) -> list[tuple[str, str]]:
    """(verdict, mismatch kinds) per record: agree, differ, or error (a side has no outputs)."""
    n = len(blk.ids)
    cmp = Comparator(replace(config, first_ids=max(n, 1), workers=1))
    cmp.add(columns_of(blk.captured), columns_of(blk.local), [str(i) for i in range(n)],
            a_errors=blk.captured_errors, b_errors=blk.local_errors)
    kinds: list[set[str]] = [set() for _ in range(n)]
    for m in cmp.result().mismatches:
        for rid in m.first_ids:
            kinds[int(rid)].add(m.kind)
    out = []
    for k in kinds:
        verdict = "error" if "error" in k else "differ" if k & _DIFFER else "agree"
        out.append((verdict, ",".join(sorted(k))))
    return out


def record_rows(records: list[CaptureRecord], blk: ReplayedBlock,
                config: CompareConfig) -> list[dict]:
    """One result row per record of a replayed block, in the block's order."""
    rows = []
    for i, (rec, (verdict, kinds)) in enumerate(zip(records, verdicts(blk, config),
                                                    strict=True)):
        res = blk.results.get(i)
        cap = blk.captured[i]
        loc = blk.local[i]
        rows.append({
            "source": rec.source, "line": rec.line, "id": rec.id,
            "event_id": None if rec.event_id is None else str(rec.event_id),
            "inference_id": None if rec.inference_id is None else str(rec.inference_id),
            "inference_time": None if rec.inference_time is None
            else rec.inference_time.isoformat(),
            "verdict": verdict, "mismatches": kinds,
            "local_status": None if res is None else res.status,
            "local_stage": None if res is None else res.stage,
            "local_codes": "" if res is None else ",".join(f.code for f in res.findings),
            "local_error": blk.local_errors.get(i),
            "captured_error": blk.captured_errors.get(i),
            "captured": None if cap is None else result_line(rec.id, cap).decode().strip(),
            "local": None if loc is None else result_line(rec.id, loc).decode().strip(),
        })
    return rows


class ParquetParts:
    """Per-record rows written as part-NNNNN.parquet files of a fixed schema."""

    def __init__(self, folder: Path) -> None:
        try:
            import pyarrow as pa
        except ImportError as e:
            raise KdiagError("--out DIR writes Parquet, which needs pyarrow: pip install "
                             "'kdiag[ray]' (or pip install pyarrow).") from e
        self.folder = folder
        self.rows: list[dict] = []
        self.files: list[str] = []
        types = {"line": pa.int64(), "local_status": pa.int64()}
        self.schema = pa.schema([(c, types.get(c, pa.string())) for c in COLUMNS])

    def add(self, rows: list[dict]) -> None:
        self.rows.extend(rows)
        if len(self.rows) >= ROWS_PER_PARQUET_FILE:
            self.flush()

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.rows and self.files:
            return
        name = f"part-{len(self.files):05d}.parquet"
        pq.write_table(pa.Table.from_pylist(self.rows, schema=self.schema),
                       self.folder / name)
        self.files.append(name)
        self.rows = []


@contextmanager
def parquet_results(out_dir: Path | None) -> Iterator[ParquetParts | None]:
    """Write into a hidden sibling folder and rename it to `out_dir` only when the job ends
    well: no partial results folder on error or Ctrl-C."""
    if out_dir is None:
        yield None
        return
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise KdiagError(f"--out {out_dir}: exists and is not an empty folder; give a new "
                         "folder for the Parquet results.")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        parts = ParquetParts(tmp)
        yield parts
        parts.flush()
        if out_dir.exists():
            out_dir.rmdir()
        tmp.rename(out_dir)
        parts.folder = out_dir
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
