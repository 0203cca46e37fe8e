"""Plain values of the comparison core: the inputs (OutputSet, CompareConfig) and the result.

Kept apart from the arithmetic so that loaders (kdiag.replays.outputs), replay and probe can build and read
them without pulling in the kernel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kdiag.diagnosis.findings import Finding

# A column holds one output for every record: either one array whose first axis is the record
# (the fast path: records of one shape), or one array per record (None where a record lacks it).
Column = np.ndarray | list

STATS = ("elemwise", "max", "mean", "median", "quantile")

# Relative error divides by max(|a|, REL_EPS): a zero in the reference gives a large but finite
# relative error, so that means stay finite (Polygraphy adds the same epsilon to zeros).
REL_EPS = float(np.finfo(np.float64).eps)

PASS_RULE = ("a record passes when abs <= atol or rel <= rtol, where abs = |a-b| and "
             "rel = |a-b| / max(|a|, 2.2e-16) with A the reference; elemwise applies this to every "
             "element, the other statistics to the statistic of the record's elements")


@dataclass
class OutputSet:
    """Records of named outputs, as loaded from a file or produced by a runner.

    `ids` (one string per record) lets two sets be aligned by id; without ids they align by order.
    `exact_dtypes` is False when the dtypes were inferred from text (JSON): then only the kind of
    the dtype (float, int, bool, string) is compared. `unnamed` marks a set whose single output
    name is a placeholder (a TF Serving response of a one-output signature carries no name), so it
    pairs with the other set's single output whatever its name. `errors` maps record index to the
    reason a record has no outputs (a failed invocation, an undecodable capture).
    """

    outputs: dict[str, Column]
    ids: np.ndarray | None = None
    source: str = ""
    kind: str = "arrays"
    exact_dtypes: bool = True
    unnamed: bool = False
    errors: dict[int, str] = field(default_factory=dict)
    notes: list[Finding] = field(default_factory=list)
    n: int = -1

    def __post_init__(self) -> None:
        lengths = {len(c) for c in self.outputs.values()}
        if self.ids is not None:
            self.ids = np.asarray(self.ids, dtype=object)
            lengths.add(len(self.ids))
        if self.n < 0:
            self.n = max(lengths, default=0) if not self.errors else max(
                max(lengths, default=0), max(self.errors) + 1)
        bad = {x for x in lengths if x != self.n}
        if bad:
            raise ValueError(f"OutputSet {self.source!r}: columns of {sorted(lengths)} records, "
                             f"expected {self.n}")

    def __len__(self) -> int:
        return self.n

    @classmethod
    def from_arrays(cls, outputs: Mapping[str, Any], ids: Sequence[str] | None = None, *,
                    source: str = "arrays", unnamed: bool = False) -> OutputSet:
        """Arrays whose first axis is the record (what a runner returns for a batch)."""
        cols = {k: v if isinstance(v, list) else np.asarray(v) for k, v in outputs.items()}
        return cls(outputs=cols, ids=None if ids is None else np.asarray(ids, dtype=object),
                   source=source, unnamed=unnamed)


@dataclass(frozen=True)
class CompareConfig:
    """Tolerances and statistic. Overrides are keyed by output name (the reference side's name)."""

    atol: float = 1e-5
    rtol: float = 1e-5
    atol_by_output: Mapping[str, float] = field(default_factory=dict)
    rtol_by_output: Mapping[str, float] = field(default_factory=dict)
    stat: str = "elemwise"
    quantile: float = 0.99
    worst: int = 5
    first_ids: int = 5
    output_map: Mapping[str, str] = field(default_factory=dict)  # A name -> B name
    chunk_elements: int = 1 << 18
    workers: int = 0  # 0: one per core, at most 2 (the kernel is memory-bound)

    def __post_init__(self) -> None:
        if self.stat not in STATS:
            raise ValueError(f"unknown statistic {self.stat!r}; one of {', '.join(STATS)}")
        if not 0.0 <= self.quantile <= 1.0:
            raise ValueError(f"quantile must be within [0, 1], got {self.quantile}")
        for v in (self.atol, self.rtol, *self.atol_by_output.values(),
                  *self.rtol_by_output.values()):
            if not (v >= 0 and math.isfinite(v)):
                raise ValueError(f"tolerances must be finite and >= 0, got {v}")

    def tolerances(self, name: str) -> tuple[float, float]:
        return (float(self.atol_by_output.get(name, self.atol)),
                float(self.rtol_by_output.get(name, self.rtol)))

    @property
    def stat_label(self) -> str:
        return f"quantile:{self.quantile:g}" if self.stat == "quantile" else self.stat

    def to_dict(self) -> dict:
        return {"atol": self.atol, "rtol": self.rtol, "atol_by_output": dict(self.atol_by_output),
                "rtol_by_output": dict(self.rtol_by_output), "stat": self.stat,
                "quantile": self.quantile if self.stat == "quantile" else None,
                "rule": PASS_RULE}


@dataclass(frozen=True)
class Mismatch:
    """One row of the mismatch table: a kind of disagreement, how often, and where first."""

    kind: str  # see MISMATCH_KINDS
    output: str | None
    count: int
    first_ids: list[str]
    detail: str = ""

    def to_dict(self) -> dict:
        return {"kind": self.kind, "output": self.output, "count": self.count,
                "first_ids": list(self.first_ids), "detail": self.detail}


MISMATCH_KINDS: dict[str, str] = {
    "count": "the two sets hold different numbers of records (aligned by order)",
    "missing-in-a": "a record id of B that A does not have",
    "missing-in-b": "a record id of A that B does not have",
    "duplicate-id": "an id seen more than once on one side (the first is used)",
    "error": "a record that carries an error instead of outputs",
    "output-missing": "an output that one side has and the other lacks",
    "shape": "the output's shape differs between the two records",
    "dtype": "the output's dtype differs (by kind only when a side came from JSON)",
    "nan": "NaN on one side only",
    "inf": "an infinity on one side only, or of the other sign",
    "value": "values beyond tolerance",
}


@dataclass(frozen=True)
class WorstRecord:
    id: str
    failed: bool
    abs: float  # the record's statistic of |a-b| (max for elemwise)
    rel: float
    element: list[int]  # index within the record of the largest |a-b|
    a: Any
    b: Any

    def to_dict(self) -> dict:
        return {"id": self.id, "failed": self.failed, "abs": _num(self.abs),
                "rel": _num(self.rel), "element": list(self.element),
                "a": _num(self.a), "b": _num(self.b)}


@dataclass(frozen=True)
class Histogram:
    """Counts of the per-record error statistic in power-of-two bins [low, high).

    Exact zeros and records with a NaN/Inf disagreement are counted apart.
    """

    bins: list[tuple[float, float, int]]
    zero: int
    nonfinite: int

    def to_dict(self) -> dict:
        return {"bins": [{"low": lo, "high": hi, "count": c} for lo, hi, c in self.bins],
                "zero": self.zero, "nonfinite": self.nonfinite}


@dataclass(frozen=True)
class OutputComparison:
    """The comparison of one output over every aligned record."""

    name: str
    name_b: str
    dtype_a: str | None
    dtype_b: str | None
    shape_a: str | None  # the per-record shape when uniform, else "mixed"
    shape_b: str | None
    atol: float
    rtol: float
    records: int  # aligned records that have this output on both sides
    compared: int  # of those, compared by value (same shape, comparable dtypes)
    failed: int  # value failures (beyond tolerance)
    nan_mismatches: int
    inf_mismatches: int
    abs_max: float | None
    abs_mean: float | None
    rel_max: float | None
    rel_mean: float | None
    required_atol: float | None  # smallest atol that passes every record, rtol unchanged
    required_rtol: float | None  # smallest rtol that passes every record, atol unchanged
    worst: list[WorstRecord]
    histogram: Histogram | None
    numeric: bool = True

    @property
    def passed(self) -> bool:
        return (self.failed == 0 and self.nan_mismatches == 0 and self.inf_mismatches == 0
                and self.compared == self.records)

    def to_dict(self) -> dict:
        return {
            "name": self.name, "name_b": self.name_b, "dtype_a": self.dtype_a,
            "dtype_b": self.dtype_b, "shape_a": self.shape_a, "shape_b": self.shape_b,
            "atol": self.atol, "rtol": self.rtol, "records": self.records,
            "compared": self.compared, "failed": self.failed,
            "nan_mismatches": self.nan_mismatches, "inf_mismatches": self.inf_mismatches,
            "passed": self.passed,
            "abs": {"max": _num(self.abs_max), "mean": _num(self.abs_mean)},
            "rel": {"max": _num(self.rel_max), "mean": _num(self.rel_mean)},
            "required": {"atol": _num(self.required_atol), "rtol": _num(self.required_rtol)},
            "worst": [w.to_dict() for w in self.worst],
            "histogram": None if self.histogram is None else self.histogram.to_dict(),
        }


@dataclass(frozen=True)
class SideInfo:
    source: str
    kind: str
    records: int
    has_ids: bool

    def to_dict(self) -> dict:
        return {"source": self.source, "kind": self.kind, "records": self.records,
                "ids": self.has_ids}


@dataclass(frozen=True)
class ComparisonResult:
    a: SideInfo
    b: SideInfo
    aligned_by: str  # "id" or "order"
    aligned: int  # record pairs found on both sides
    config: CompareConfig
    outputs: list[OutputComparison]
    mismatches: list[Mismatch]
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        """No error finding (the CLI applies --fail-on itself)."""
        return not any(f.severity == "error" for f in self.findings)

    def to_dict(self) -> dict:
        return {
            "a": self.a.to_dict(), "b": self.b.to_dict(), "aligned_by": self.aligned_by,
            "records_aligned": self.aligned, "config": self.config.to_dict(),
            "outputs": [o.to_dict() for o in self.outputs],
            "mismatches": [m.to_dict() for m in self.mismatches],
            "findings": [f.to_dict() for f in self.findings],
        }


def _num(x: Any) -> Any:
    """JSON has no NaN/Infinity: write them as strings, numbers as plain floats/ints."""
    if x is None:
        return None
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, bytes):
        return x.decode("utf-8", errors="replace")
    if isinstance(x, float) and not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")
    return x
