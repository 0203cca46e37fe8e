"""kdiag's batched comparison core: two sets of records of named outputs, compared in blocks.

Used by `kdiag diff`, and by replay and probe to compare what they got with what was expected.

    from kdiag.comparison import CompareConfig, compare_outputs, compare_sets, Comparator

    r = compare_outputs({"probs": a}, {"probs": b}, ids=None,
                        config=CompareConfig(atol=1e-5, rtol=1e-5, stat="elemwise"))
    r.ok, r.findings, r.outputs[0].required_atol, r.to_dict()

Pass rule (one rule for every statistic, after Polygraphy's): with A the reference,
abs = |a - b| and rel = abs / max(|a|, 2.2e-16); a value passes when abs <= atol OR rel <= rtol.
`elemwise` applies it to every element (a record passes when all its elements pass); `max`,
`mean`, `median` and `quantile` apply it to that statistic of the record's abs and rel errors.
NaN on both sides at the same element, and the same infinity on both sides, count as equal;
NaN or an infinity on one side only fails the record whatever the tolerance.

The per-record result shown as "worst records" and the histogram is the record's statistic of
abs error (its max for elemwise). "required" tolerances are the smallest atol that would pass
every record with rtol unchanged, and the smallest rtol with atol unchanged.

Finding codes (stage "compare") KD701-KD715 are registered with their meanings in kdiag/diagnosis/codes.py.
"""

from kdiag.comparison.core import Comparator, compare_outputs, compare_sets
from kdiag.comparison.types import (
    MISMATCH_KINDS,
    PASS_RULE,
    STATS,
    CompareConfig,
    ComparisonResult,
    Histogram,
    Mismatch,
    OutputComparison,
    OutputSet,
    SideInfo,
    WorstRecord,
)

__all__ = [
    "MISMATCH_KINDS", "PASS_RULE", "STATS", "CompareConfig", "Comparator",
    "ComparisonResult", "Histogram", "Mismatch", "OutputComparison", "OutputSet", "SideInfo",
    "WorstRecord", "compare_outputs", "compare_sets",
]
