"""Findings: what kdiag concluded, with a stable code and a concrete fix.

Codes are `KD` + three digits grouped by stage (see the README's table):
KD0xx artifact, KD1xx wire, KD2xx container, KD3xx tfs-parse, KD4xx signature, KD5xx model,
KD6xx response/runtime, KD7xx comparison, KD8xx endpoint (probe).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning", "info"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "error": 2}


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    stage: str
    message: str
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def worst_severity(findings: list[Finding]) -> str | None:
    if not findings:
        return None
    return max((f.severity for f in findings), key=SEVERITY_RANK.__getitem__)


def fails(findings: list[Finding], fail_on: str = "error") -> bool:
    """True when any finding is at or above `fail_on`: the CLI then exits 1."""
    threshold = SEVERITY_RANK[fail_on]
    return any(SEVERITY_RANK[f.severity] >= threshold for f in findings)


def explain_errors(findings: list[Finding]) -> str:
    """The first error findings of an artifact, with their fixes, as one paragraph."""
    errors = [f for f in findings if f.severity == "error"][:2]
    return " ".join(f"{f.message} Fix: {f.fix}" if f.fix else f.message for f in errors)
