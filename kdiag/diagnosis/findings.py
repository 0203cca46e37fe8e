"""Findings: what kdiag concluded, with a stable code and a concrete fix.

Codes are `KD` + three digits grouped by stage (see the README's table):
KD0xx artifact, KD1xx wire, KD2xx container, KD3xx tfs-parse, KD4xx signature, KD5xx model,
KD6xx response/runtime, KD7xx comparison, KD8xx endpoint (probe).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
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
    # The code of the payload's root cause when this finding only follows from it (the graph
    # failing on a shape the signature stage already named, the runtime's ModelError for it):
    # one root cause per payload, the rest listed as its consequences, not as rival errors.
    consequence_of: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def worst_severity(findings: list[Finding]) -> str | None:
    if not findings:
        return None
    return max((f.severity for f in findings), key=SEVERITY_RANK.__getitem__)


def fails(findings: list[Finding], fail_on: str = "error") -> bool:
    """True when any finding is at or above `fail_on` ("never": False): the CLI then exits 1."""
    if fail_on == "never":
        return False
    threshold = SEVERITY_RANK[fail_on]
    return any(SEVERITY_RANK[f.severity] >= threshold for f in findings)


# The request path in order: the first failing stage owns a payload's root cause.
STAGE_ORDER = ("artifact", "client", "wire", "container", "tfs-parse", "signature", "model",
               "tfs-response", "container-response", "runtime", "client-decode")


def stage_rank(stage: str) -> int:
    return STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)


def assign_root_cause(findings: list[Finding], preferred: list[Finding] | None = None
                      ) -> tuple[str | None, list[Finding]]:
    """(root-cause code, findings with every other error marked as its consequence).

    The root is the first of `preferred` (the diagnosis rules' plain-words cause) when given,
    else the error of the earliest stage. Errors on the request path are the only rivals:
    warnings, notes and verdicts about something else (an endpoint that disagrees with the
    local run, a check) stand on their own. The root is moved to the front.
    """
    errors = [f for f in findings if f.severity == "error" and f.consequence_of is None
              and f.stage in STAGE_ORDER]
    if not errors:
        return None, findings
    root = next((f for f in (preferred or []) if f in errors), None)
    if root is None:
        root = min(errors, key=lambda f: stage_rank(f.stage))
    out = [root]
    for f in findings:
        if f is root:
            continue
        if f.severity == "error" and f.consequence_of is None and f.stage in STAGE_ORDER:
            f = replace(f, consequence_of=root.code)
        out.append(f)
    return root.code, out


def explain_errors(findings: list[Finding]) -> str:
    """The first error findings of an artifact, with their fixes, as one paragraph."""
    errors = [f for f in findings if f.severity == "error"][:2]
    return " ".join(f"{f.message} Fix: {f.fix}" if f.fix else f.message for f in errors)
