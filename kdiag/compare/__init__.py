"""kdiag's batched comparison core: two sets of records of named outputs, compared in blocks.

Used by `kdiag diff`, and by replay and probe to compare what they got with what was expected.

    from kdiag.compare import CompareConfig, compare_outputs, compare_sets, Comparator

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

Finding codes (stage "compare"), stable; the README's table is a copy of FINDING_CODES.
"""

from kdiag.compare.core import Comparator, compare_outputs, compare_sets
from kdiag.compare.types import (
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

FINDING_CODES: dict[str, str] = {
    "KD701": "error: an output's values differ beyond tolerance in some records (counts, first ids, "
             "the tolerance that would pass)",
    "KD702": "error: an output's shape differs between A and B (often a batch axis kept on one side)",
    "KD703": "warning: an output's dtype differs (compared after casting); error when one side is "
             "strings and the other numbers (not compared)",
    "KD704": "error: NaN on one side only",
    "KD705": "error: an infinity on one side only, or of opposite sign",
    "KD706": "error: the sets hold different numbers of records (paired by order)",
    "KD707": "error: record ids present on one side only (paired by id)",
    "KD708": "warning: duplicate record ids on one side (the first is used)",
    "KD709": "error: an output present in one set only",
    "KD710": "error: records that carry an error instead of outputs (failed invocation, "
             "undecodable capture)",
    "KD711": "info: the single outputs of A and B were paired although their names differ",
    "KD712": "warning: a tolerance override names an output that neither set has",
    "KD713": "error: nothing was compared (no aligned records or no output in common)",
    "KD714": "info: only one set has record ids, so records were paired by order",
    "KD715": "warning: input lines or records that could not be read were skipped (truncated or "
             "corrupt JSON lines, unknown capture encodings)",
}

__all__ = [
    "FINDING_CODES", "MISMATCH_KINDS", "PASS_RULE", "STATS", "CompareConfig", "Comparator",
    "ComparisonResult", "Histogram", "Mismatch", "OutputComparison", "OutputSet", "SideInfo",
    "WorstRecord", "compare_outputs", "compare_sets",
]
