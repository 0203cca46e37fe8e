"""The Comparator: aligns records, pairs outputs, checks shape and dtype, runs the kernel.

Records of one output whose shapes agree are compared as one stacked block (dense columns are
read in place, through an index when the alignment reorders them); records of a ragged column are
grouped by shape first. Work is split into row ranges that run on a small thread pool: numpy
releases the GIL inside each operation, and the partial results are merged in row order, so the
result does not depend on the number of threads.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kdiag.comparison import kernel
from kdiag.comparison.types import (
    Column,
    CompareConfig,
    ComparisonResult,
    Histogram,
    Mismatch,
    OutputComparison,
    OutputSet,
    SideInfo,
    WorstRecord,
)
from kdiag.diagnosis.findings import Finding

STAGE = "compare"
_MIN_TASK_ELEMENTS = 1 << 20


@dataclass
class _Tally:
    count: int = 0
    first: list[str] = field(default_factory=list)
    detail: str = ""


@dataclass
class _OutputAcc:
    name: str
    name_b: str
    atol: float
    rtol: float
    dtypes_a: set = field(default_factory=set)
    dtypes_b: set = field(default_factory=set)
    shapes_a: set = field(default_factory=set)
    shapes_b: set = field(default_factory=set)
    records: int = 0
    numeric: bool = True
    partial: kernel.Partial = field(default_factory=kernel.Partial)
    ids: dict[int, str] = field(default_factory=dict)  # aligned position -> id, reported rows only
    inner: dict[int, tuple] = field(default_factory=dict)  # aligned position -> record shape


class Comparator:
    """Compares records block by block; `result()` gives the whole comparison.

    Replay and probe can feed records as they come (`add`), which keeps memory bounded by the
    block size; `compare_sets` feeds two loaded sets at once.
    """

    def __init__(self, config: CompareConfig | None = None, *, a: SideInfo | None = None,
                 b: SideInfo | None = None) -> None:
        self.config = config or CompareConfig()
        self.a_info = a or SideInfo("A", "arrays", 0, False)
        self.b_info = b or SideInfo("B", "arrays", 0, False)
        self.aligned_by = "order"
        self._seen = 0
        self._accs: dict[tuple[str, str], _OutputAcc] = {}
        self._tallies: dict[tuple[str, str | None, str], _Tally] = {}
        self._names_a: set[str] = set()
        self._names_b: set[str] = set()
        self._positional: tuple[str, str] | None = None
        self._inexact = False
        self._unnamed = False
        self._extra_findings: list[Finding] = []

    # ---- feeding ---------------------------------------------------------------------------

    def add(self, a: Mapping[str, Column], b: Mapping[str, Column],
            ids: Sequence[str] | np.ndarray | None = None, *,
            a_errors: Mapping[int, str] | None = None,
            b_errors: Mapping[int, str] | None = None) -> None:
        """Add a block of aligned records: record i of `a` goes with record i of `b`.

        Columns are arrays whose first axis is the record, or lists with one array (or None) per
        record. `a_errors`/`b_errors` map a record index of this block to why it has no outputs.
        """
        sa = OutputSet(outputs=dict(a), errors=dict(a_errors or {}))
        sb = OutputSet(outputs=dict(b), errors=dict(b_errors or {}))
        if sa.n != sb.n:
            raise ValueError(f"Comparator.add: {sa.n} records in a, {sb.n} in b")
        self._add_aligned(sa, sb, None, None, sa.n,
                          None if ids is None else np.asarray(ids, dtype=object))

    def _report_id(self, ids: np.ndarray | None, i: int) -> str:
        return str(ids[i]) if ids is not None else f"#{self._seen + i}"

    def _tally(self, kind: str, output: str | None, group: str, count: int,
               first_rows: Sequence[int] | np.ndarray, ids: np.ndarray | None,
               detail: str = "") -> None:
        if count <= 0:
            return
        t = self._tallies.setdefault((kind, output, group), _Tally(detail=detail))
        t.count += count
        room = self.config.first_ids - len(t.first)
        if room > 0:
            t.first.extend(self._report_id(ids, int(i)) for i in first_rows[:room])

    def _tally_ids(self, kind: str, output: str | None, group: str, id_list: list[str],
                   detail: str = "") -> None:
        if not id_list:
            return
        t = self._tallies.setdefault((kind, output, group), _Tally(detail=detail))
        t.count += len(id_list)
        t.first.extend(id_list[: max(0, self.config.first_ids - len(t.first))])

    def _add_aligned(self, sa: OutputSet, sb: OutputSet, a_idx: np.ndarray | None,
                     b_idx: np.ndarray | None, m: int, ids: np.ndarray | None) -> None:
        """Compare m aligned pairs: record a_idx[i] of sa with b_idx[i] of sb (None: i)."""
        cfg = self.config
        if not (sa.exact_dtypes and sb.exact_dtypes):
            self._inexact = True
        ai = np.arange(m) if a_idx is None else a_idx
        bi = np.arange(m) if b_idx is None else b_idx
        err = np.zeros(m, dtype=bool)
        for side, s, idx in (("A", sa, ai), ("B", sb, bi)):
            if s.errors:
                e = np.isin(idx, np.fromiter(s.errors, dtype=np.int64))
                rows = np.flatnonzero(e)
                if rows.size:
                    first_msg = s.errors[int(idx[rows[0]])]
                    self._tally("error", None, side, rows.size, rows, ids,
                                detail=f"in {side}: {first_msg}")
                err |= e
        valid = np.flatnonzero(~err)
        all_valid = valid.size == m

        self._names_a.update(sa.outputs)
        self._names_b.update(sb.outputs)
        pairs, only_a, only_b = self._pair(list(sa.outputs), list(sb.outputs))
        for side, names in (("A", only_a), ("B", only_b)):
            for name in names:
                self._tally("output-missing", name, side, valid.size, valid, ids,
                            detail=f"only in {side}")

        tasks: list[tuple[_OutputAcc, Any]] = []
        for na, nb in pairs:
            atol, rtol = cfg.tolerances(na)
            acc = self._accs.setdefault((na, nb), _OutputAcc(na, nb, atol, rtol))
            ca, cb = sa.outputs[na], sb.outputs[nb]
            a_rows = ai if all_valid else ai[valid]
            b_rows = bi if all_valid else bi[valid]
            if isinstance(ca, np.ndarray) and isinstance(cb, np.ndarray) and ca.ndim >= 1 \
                    and cb.ndim >= 1:
                tasks += self._dense(acc, ca, cb, a_rows, b_rows, valid, ids,
                                     identity=a_idx is None and b_idx is None and all_valid)
            else:
                tasks += self._ragged(acc, ca, cb, a_rows, b_rows, valid, ids)
        self._run(tasks, ids)
        self._seen += m

    def _pair(self, names_a: list[str], names_b: list[str]
              ) -> tuple[list[tuple[str, str]], list[str], list[str]]:
        mapping = self.config.output_map
        pairs, used = [], set()
        for na in names_a:
            nb = mapping.get(na, na)
            if nb in names_b and nb not in used:
                pairs.append((na, nb))
                used.add(nb)
        only_a = [n for n in names_a if n not in {p[0] for p in pairs}]
        only_b = [n for n in names_b if n not in used]
        if len(names_a) == 1 and len(names_b) == 1 and only_a and only_b:
            pairs = [(names_a[0], names_b[0])]
            self._positional = (names_a[0], names_b[0])
            only_a, only_b = [], []
        return pairs, only_a, only_b

    # ---- dtype and shape checks ----------------------------------------------------------

    def _check_dtypes(self, acc: _OutputAcc, da: np.dtype, db: np.dtype, rows: np.ndarray,
                      ids: np.ndarray | None) -> bool:
        """Tally a dtype mismatch; False when the values cannot be compared at all."""
        ka, kb = _dtype_class(da), _dtype_class(db)
        comparable = (ka == "string") == (kb == "string")
        differs = ka != kb if self._inexact else da != db
        if differs or not comparable:
            how = "by kind, a side came from JSON" if self._inexact else "exact"
            self._tally("dtype", acc.name, f"{da}|{db}", rows.size, rows, ids,
                        detail=f"A {da} vs B {db} ({how})"
                        + ("" if comparable else "; not compared"))
        return comparable

    def _dense(self, acc: _OutputAcc, ca: np.ndarray, cb: np.ndarray, a_rows: np.ndarray,
               b_rows: np.ndarray, valid: np.ndarray, ids: np.ndarray | None,
               identity: bool) -> list:
        sh_a, sh_b = ca.shape[1:], cb.shape[1:]
        acc.dtypes_a.add(ca.dtype)
        acc.dtypes_b.add(cb.dtype)
        acc.shapes_a.add(sh_a)
        acc.shapes_b.add(sh_b)
        acc.records += valid.size
        if valid.size == 0:
            return []
        if sh_a != sh_b:
            self._tally("shape", acc.name, f"{sh_a}|{sh_b}", valid.size, valid, ids,
                        detail=f"A {_fmt_shape(sh_a)} vs B {_fmt_shape(sh_b)}")
            return []
        if not self._check_dtypes(acc, ca.dtype, cb.dtype, valid, ids):
            return []
        k = int(np.prod(sh_a, dtype=np.int64))
        fa = ca.reshape(ca.shape[0], k)
        fb = cb.reshape(cb.shape[0], k)
        base = self._seen

        def fetch(s: int, e: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            if identity:
                return fa[s:e], fb[s:e], np.arange(s, e) + base
            return fa[a_rows[s:e]], fb[b_rows[s:e]], valid[s:e] + base

        return self._split(acc, fetch, valid.size, k, ca.dtype, cb.dtype, sh_a)

    def _ragged(self, acc: _OutputAcc, ca: Column, cb: Column, a_rows: np.ndarray,
                b_rows: np.ndarray, valid: np.ndarray, ids: np.ndarray | None) -> list:
        groups: dict[tuple, list[int]] = {}
        missing = {"A": [], "B": []}
        shape_bad: dict[tuple, list[int]] = {}
        for j in range(valid.size):
            ra, rb = _record(ca, int(a_rows[j])), _record(cb, int(b_rows[j]))
            if ra is None or rb is None:
                missing["A" if ra is None else "B"].append(j)
                continue
            if ra.shape != rb.shape:
                shape_bad.setdefault((ra.shape, rb.shape), []).append(j)
                continue
            groups.setdefault((ra.shape, ra.dtype, rb.dtype), []).append(j)
        for side, js in missing.items():
            other = "B" if side == "A" else "A"
            self._tally("output-missing", acc.name, f"record-{side}", len(js),
                        valid[js], ids, detail=f"record in {other} has it, in {side} not")
        for (sh_a, sh_b), js in shape_bad.items():
            acc.shapes_a.add(sh_a)
            acc.shapes_b.add(sh_b)
            self._tally("shape", acc.name, f"{sh_a}|{sh_b}", len(js), valid[js], ids,
                        detail=f"A {_fmt_shape(sh_a)} vs B {_fmt_shape(sh_b)}")
        acc.records += valid.size - len(missing["A"]) - len(missing["B"])
        tasks = []
        base = self._seen
        # Records of one shape are stacked; dtypes may differ per record (JSON), so the group
        # takes their common dtype.
        by_shape: dict[tuple, list[tuple[np.dtype, np.dtype, list[int]]]] = {}
        for (sh, da, db), js in groups.items():
            by_shape.setdefault(sh, []).append((da, db, js))
        for sh, parts in by_shape.items():
            da = np.result_type(*{p[0] for p in parts}) if len(parts) > 1 else parts[0][0]
            db = np.result_type(*{p[1] for p in parts}) if len(parts) > 1 else parts[0][1]
            js = np.sort(np.concatenate([np.asarray(p[2], dtype=np.int64) for p in parts]))
            acc.shapes_a.add(sh)
            acc.shapes_b.add(sh)
            acc.dtypes_a.add(da)
            acc.dtypes_b.add(db)
            rows = valid[js]
            if not self._check_dtypes(acc, da, db, rows, ids):
                continue
            k = int(np.prod(sh, dtype=np.int64))
            ar, br = a_rows[js], b_rows[js]

            def fetch(s: int, e: int, ar=ar, br=br, rows=rows, k=k, da=da, db=db
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
                a2 = np.stack([np.asarray(ca[int(x)], dtype=da).reshape(k) for x in ar[s:e]])
                b2 = np.stack([np.asarray(cb[int(x)], dtype=db).reshape(k) for x in br[s:e]])
                return a2, b2, rows[s:e] + base

            tasks += self._split(acc, fetch, rows.size, k, da, db, sh)
        return tasks

    def _split(self, acc: _OutputAcc, fetch: kernel.Fetch, rows: int, k: int, da: np.dtype,
               db: np.dtype, shape: tuple) -> list:
        cfg = self.config
        cdtype = kernel.compute_dtype(np.dtype(da), np.dtype(db))
        if cdtype is None:
            acc.numeric = False
        pieces = 1
        workers = self._workers()
        if workers > 1 and rows * k >= 2 * _MIN_TASK_ELEMENTS:
            pieces = min(2 * workers, max(1, rows * k // _MIN_TASK_ELEMENTS))
        bounds = np.linspace(0, rows, pieces + 1).astype(np.int64)
        tasks = []
        for s, e in zip(bounds[:-1], bounds[1:], strict=True):
            s, e = int(s), int(e)

            def job(s=s, e=e) -> kernel.Partial:
                return kernel.run(lambda x, y: fetch(s + x, s + y), e - s, k, cdtype=cdtype,
                                  atol=acc.atol, rtol=acc.rtol, stat=cfg.stat, q=self._q(),
                                  chunk_elements=cfg.chunk_elements, top_k=cfg.worst,
                                  first_n=cfg.first_ids)
            tasks.append((acc, job, shape))
        return tasks

    def _q(self) -> float:
        return 0.5 if self.config.stat == "median" else self.config.quantile

    def _workers(self) -> int:
        w = self.config.workers
        return w if w > 0 else min(2, os.cpu_count() or 1)

    def _run(self, tasks: list[tuple[_OutputAcc, Any, tuple]], ids: np.ndarray | None) -> None:
        workers = self._workers()
        if workers > 1 and len(tasks) > 1:
            with ThreadPoolExecutor(workers) as ex:
                futures = [(acc, ex.submit(job), sh) for acc, job, sh in tasks]
                results = [(acc, f.result(), sh) for acc, f, sh in futures]
        else:
            results = [(acc, job(), sh) for acc, job, sh in tasks]
        for acc, part, sh in results:
            self._remember_ids(acc, part, ids, sh)
            acc.partial.merge(part, self.config.worst, self.config.first_ids)

    def _remember_ids(self, acc: _OutputAcc, part: kernel.Partial, ids: np.ndarray | None,
                      shape: tuple) -> None:
        """Positions are only meaningful within the add() call: keep the ids of reported rows."""
        base = self._seen
        for attr in ("value_first", "nan_first", "inf_first"):
            setattr(part, attr, [self._report_id(ids, p - base) for p in getattr(part, attr)])
        for c in part.worst_fail + part.worst_all:
            acc.ids[c.pos] = self._report_id(ids, c.pos - base)
            acc.inner[c.pos] = shape

    # ---- result ----------------------------------------------------------------------------

    def result(self) -> ComparisonResult:
        cfg = self.config
        outputs = [self._output_result(acc) for acc in self._accs.values()]
        mismatches: list[Mismatch] = []
        order = list(_KIND_ORDER)
        for (kind, output, _group), t in sorted(
                self._tallies.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1] or "")):
            mismatches.append(Mismatch(kind, output, t.count, t.first[: cfg.first_ids], t.detail))
        for acc, o in zip(self._accs.values(), outputs, strict=True):
            p = acc.partial
            for kind, count, first in (("nan", p.nan_fail, p.nan_first),
                                       ("inf", p.inf_fail, p.inf_first),
                                       ("value", p.value_fail, p.value_first)):
                if count:
                    mismatches.append(Mismatch(kind, o.name, count, list(first[: cfg.first_ids]),
                                               _value_detail(kind, o)))
        mismatches.sort(key=lambda m: (order.index(m.kind), m.output or ""))
        aligned = self._seen
        findings = self._findings(outputs, mismatches)
        return ComparisonResult(a=self.a_info, b=self.b_info, aligned_by=self.aligned_by,
                                aligned=aligned, config=cfg, outputs=outputs,
                                mismatches=mismatches, findings=findings)

    def _output_result(self, acc: _OutputAcc) -> OutputComparison:
        p = acc.partial
        worst_src = p.worst_fail if p.worst_fail else p.worst_all
        worst = [WorstRecord(id=acc.ids.get(c.pos, f"#{c.pos}"), failed=c.failed, abs=c.abs,
                             rel=c.rel, element=_unravel(c.element, acc.inner.get(c.pos, ())),
                             a=c.a, b=c.b) for c in worst_src]
        numeric = acc.numeric and p.elems > 0
        hist = Histogram(kernel.histogram_bins(p.hist, p.zero), p.zero, p.nonfinite) \
            if numeric else None
        return OutputComparison(
            name=acc.name, name_b=acc.name_b,
            dtype_a=_fmt_dtypes(acc.dtypes_a), dtype_b=_fmt_dtypes(acc.dtypes_b),
            shape_a=_fmt_shapes(acc.shapes_a), shape_b=_fmt_shapes(acc.shapes_b),
            atol=acc.atol, rtol=acc.rtol, records=acc.records, compared=p.compared,
            failed=p.value_fail, nan_mismatches=p.nan_fail, inf_mismatches=p.inf_fail,
            abs_max=p.abs_max if numeric else None,
            abs_mean=p.abs_sum / p.elems if numeric else None,
            rel_max=p.rel_max if numeric else None,
            rel_mean=p.rel_sum / p.elems if numeric else None,
            required_atol=p.req_atol if numeric else None,
            required_rtol=p.req_rtol if numeric else None,
            worst=worst, histogram=hist, numeric=acc.numeric)

    def _findings(self, outputs: list[OutputComparison], mismatches: list[Mismatch]
                  ) -> list[Finding]:
        cfg = self.config
        out: list[Finding] = list(self._extra_findings)
        by_name = {o.name: o for o in outputs}
        for m in mismatches:
            ids = ", ".join(m.first_ids)
            where = f" (first: {ids})" if ids else ""
            if m.kind == "value":
                o = by_name[m.output]
                tol = f"atol={o.atol:g}, rtol={o.rtol:g}, stat={cfg.stat_label}"
                msg = (f"output '{m.output}': {m.count} of {_records(o.compared)} beyond tolerance "
                       f"({tol}){where}.")
                fix = (f"Look at record {m.first_ids[0]} first. If the difference is expected, "
                       f"--atol {m.output}={_up(o.required_atol)} or "
                       f"--rtol {m.output}={_up(o.required_rtol)} would pass.") if o.numeric else \
                    f"Values differ exactly; look at record {m.first_ids[0]}."
                out.append(Finding("KD701", "error", STAGE, msg, fix))
            elif m.kind == "shape":
                out.append(Finding(
                    "KD702", "error", STAGE,
                    f"output '{m.output}': {_records(m.count)} differ in shape, {m.detail}{where}.",
                    "A batch axis kept on one side only is the usual cause: a row-format "
                    "response ({\"predictions\": ...}) drops it per instance, a columnar one "
                    "({\"outputs\": ...}) and a Data Capture record keep it. Compare like with "
                    "like."))
            elif m.kind == "dtype":
                comparable = "not compared" not in m.detail
                out.append(Finding(
                    "KD703", "warning" if comparable else "error", STAGE,
                    f"output '{m.output}': dtype differs, {m.detail}.",
                    "Values were compared after casting both sides to a common type."
                    if comparable else "One side holds strings, the other numbers: check that "
                    "the outputs are the same tensor (names, order)."))
            elif m.kind in ("nan", "inf"):
                what = "NaN" if m.kind == "nan" else "an infinity"
                out.append(Finding(
                    "KD704" if m.kind == "nan" else "KD705", "error", STAGE,
                    f"output '{m.output}': {_records(m.count)} with {what} on one side only{where}.",
                    "No tolerance passes this. Look for overflow (float16, exp of large logits), "
                    "division by zero or missing preprocessing on the side with the "
                    f"{'NaN' if m.kind == 'nan' else 'infinity'}."))
            elif m.kind == "count":
                out.append(Finding(
                    "KD706", "error", STAGE, f"record counts differ: {m.detail}{where}.",
                    "Records were paired by order up to the shorter set. Give both sets record "
                    "ids (a replay file's \"id\", Data Capture's inferenceId/eventId, an npz "
                    "__ids__ array) to pair them by id."))
            elif m.kind in ("missing-in-a", "missing-in-b"):
                side = "A" if m.kind == "missing-in-a" else "B"
                out.append(Finding(
                    "KD707", "error", STAGE,
                    f"{m.count} record id{'' if m.count == 1 else 's'} missing from {side}{where}.",
                    f"Check that {side} covers the same records (same --since/--until/--shard "
                    "and --limit on both sides)."))
            elif m.kind == "duplicate-id":
                out.append(Finding(
                    "KD708", "warning", STAGE, f"{m.count} duplicate record ids {m.detail}"
                    f"{where}; the first record with each id was used.",
                    "Make ids unique (Data Capture: send a distinct InferenceId per request)."))
            elif m.kind == "output-missing":
                out.append(Finding(
                    "KD709", "error", STAGE,
                    f"output '{m.output}' {m.detail} ({_records(m.count)}){where}.",
                    _output_missing_fix(m.output, self._names_a, self._names_b)))
            elif m.kind == "error":
                out.append(Finding(
                    "KD710", "error", STAGE, f"{_records(m.count)} carry an error {m.detail}"
                    f"{where}.", "These records have no outputs to compare: fix the failure "
                    "first (kdiag validate on the captured input shows why a request fails)."))
        if self._positional and self._positional[0] != self._positional[1] \
                and not self._unnamed:
            na, nb = self._positional
            out.append(Finding(
                "KD711", "info", STAGE,
                f"the single output of A ('{na}') was compared with the single output of B "
                f"('{nb}').", "Nothing to do when each side has one output; a TF Serving "
                "response of a one-output signature does not carry its name."))
        known = self._names_a | self._names_b
        for name in sorted(set(cfg.atol_by_output) | set(cfg.rtol_by_output)):
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=3)
                hint = f" Maybe you meant: {', '.join(close)}?" if close else ""
                out.append(Finding(
                    "KD712", "warning", STAGE,
                    f"a tolerance override names output '{name}', which neither set has.{hint}",
                    f"Outputs are: {', '.join(sorted(known)) or 'none'}."))
        if self._seen == 0 or not any(o.compared for o in outputs):
            out.append(Finding(
                "KD713", "error", STAGE,
                f"nothing was compared: {self._seen} aligned records, "
                f"{len(outputs)} outputs in common.",
                "Check that both sets hold records of the same model outputs; what was read: "
                "kdiag diff A B --format json."))
        return out


_KIND_ORDER = ("count", "missing-in-a", "missing-in-b", "duplicate-id", "error", "output-missing",
               "shape", "dtype", "nan", "inf", "value")


def _value_detail(kind: str, o: OutputComparison) -> str:
    if kind == "value":
        if not o.numeric:
            return "values differ"
        return (f"abs max {_g(o.abs_max)}, rel max {_g(o.rel_max)}; would pass with "
                f"atol {_g(o.required_atol)} or rtol {_g(o.required_rtol)}")
    return "NaN on one side only" if kind == "nan" else "infinity on one side only"


def _output_missing_fix(name: str | None, names_a: set[str], names_b: set[str]) -> str:
    other = names_b if name in names_a else names_a
    close = difflib.get_close_matches(name or "", sorted(other), n=1)
    hint = f" It may be '{close[0]}' there." if close else ""
    return ("The two sets have different output names (Keras 3 exports name outputs output_0, "
            f"output_1, ...).{hint} Map it with output_map in the API.")


def _g(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def _up(x: float | None) -> str:
    """A tolerance a little above x, rounded up to two significant digits."""
    if x is None or not math.isfinite(x):
        return "n/a"
    if x <= 0:
        return "0"
    e = math.floor(math.log10(x)) - 1
    return f"{float(f'{math.ceil(x / 10 ** e * 1.0000001) * 10 ** e:.2g}'):g}"


def _records(n: int) -> str:
    return f"{n} record" + ("" if n == 1 else "s")


def _dtype_class(d: np.dtype) -> str:
    if d.kind in "fc":
        return "float"
    if d.kind in "iu":
        return "int"
    if d.kind == "b":
        return "bool"
    return "string"


def _record(col: Column, i: int) -> np.ndarray | None:
    if isinstance(col, np.ndarray):
        return col[i] if col.ndim >= 1 else col
    v = col[i]
    return None if v is None else np.asarray(v)


def _unravel(j: int, shape: tuple) -> list[int]:
    return [int(x) for x in np.unravel_index(j, shape)] if shape else []


def _fmt_shape(sh: tuple) -> str:
    return "(" + ", ".join(str(x) for x in sh) + ("," if len(sh) == 1 else "") + ")"


def _fmt_shapes(shapes: set) -> str | None:
    if not shapes:
        return None
    return _fmt_shape(next(iter(shapes))) if len(shapes) == 1 else "mixed"


def _fmt_dtypes(dtypes: set) -> str | None:
    if not dtypes:
        return None
    names = sorted({str(d) for d in dtypes})
    return names[0] if len(names) == 1 else "/".join(names)


# ---- alignment -------------------------------------------------------------------------------

def compare_sets(a: OutputSet, b: OutputSet, config: CompareConfig | None = None, *,
                 ignore_missing: Collection[str] = ()) -> ComparisonResult:
    """Align two output sets (by id when both have ids, else by order) and compare them.

    `ignore_missing` ("a" and/or "b"): a side known to be a subset of the other (a capture read
    with --shard or --since against a full results file); ids it lacks are not findings.
    """
    cmp = Comparator(config,
                     a=SideInfo(a.source or "A", a.kind, a.n, a.ids is not None),
                     b=SideInfo(b.source or "B", b.kind, b.n, b.ids is not None))
    cmp._extra_findings.extend(a.notes + b.notes)
    cmp._unnamed = a.unnamed or b.unnamed
    if a.ids is not None and b.ids is not None:
        cmp.aligned_by = "id"
        a_idx, b_idx, ids = _align_by_id(cmp, a.ids, b.ids, ignore_missing)
        cmp._add_aligned(a, b, a_idx, b_idx, len(ids), ids)
        return cmp.result()
    m = min(a.n, b.n)
    ids = a.ids if a.ids is not None else b.ids
    if (a.ids is None) != (b.ids is None):
        has = "A" if a.ids is not None else "B"
        cmp._extra_findings.append(Finding(
            "KD714", "info", STAGE,
            f"only {has} has record ids: records were paired by order.",
            "Give both sets ids to pair them by id."))
    if a.n != b.n:
        longer = "A" if a.n > b.n else "B"
        extra = [str(ids[i]) if ids is not None and i < len(ids) else f"#{i}"
                 for i in range(m, min(max(a.n, b.n), m + cmp.config.first_ids))]
        t = cmp._tallies.setdefault(("count", None, ""), _Tally(
            detail=f"A has {a.n}, B has {b.n}; the last {abs(a.n - b.n)} of {longer} are unpaired"))
        t.count += abs(a.n - b.n)
        t.first.extend(extra)
    same = a.n == b.n
    cmp._add_aligned(a, b, None if same else np.arange(m), None if same else np.arange(m), m,
                     None if ids is None else ids[:m])
    return cmp.result()


def compare_outputs(a: Mapping[str, Any], b: Mapping[str, Any],
                    ids: Sequence[str] | None = None, config: CompareConfig | None = None,
                    *, a_label: str = "A", b_label: str = "B") -> ComparisonResult:
    """Compare aligned in-memory outputs (what replay and probe hold): record i with record i."""
    sa = OutputSet.from_arrays(a, ids, source=a_label)
    sb = OutputSet.from_arrays(b, ids, source=b_label)
    return compare_sets(sa, sb, config)


def _align_by_id(cmp: Comparator, ids_a: np.ndarray, ids_b: np.ndarray,
                 ignore_missing: Collection[str] = ()
                 ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
    if len(ids_a) == len(ids_b) and np.array_equal(ids_a, ids_b) and \
            len(set(ids_a.tolist())) == len(ids_a):
        return None, None, ids_a
    first_a: dict[str, int] = {}
    first_b: dict[str, int] = {}
    for side, arr, first in (("A", ids_a, first_a), ("B", ids_b, first_b)):
        dups = []
        for i, x in enumerate(arr.tolist()):
            if x in first:
                dups.append(str(x))
            else:
                first[x] = i
        cmp._tally_ids("duplicate-id", None, side, dups, detail=f"in {side}")
    a_idx, b_idx, ids, missing_b = [], [], [], []
    for x, i in first_a.items():
        j = first_b.get(x)
        if j is None:
            missing_b.append(str(x))
        else:
            a_idx.append(i)
            b_idx.append(j)
            ids.append(x)
    missing_a = [str(x) for x in first_b if x not in first_a]
    if "b" not in ignore_missing:
        cmp._tally_ids("missing-in-b", None, "", missing_b, detail="ids only in A")
    if "a" not in ignore_missing:
        cmp._tally_ids("missing-in-a", None, "", missing_a, detail="ids only in B")
    return (np.asarray(a_idx, dtype=np.int64), np.asarray(b_idx, dtype=np.int64),
            np.asarray(ids, dtype=object))
