"""JUnit XML, the test-report format every CI system reads (Jenkins, GitLab, GitHub Actions
reporters, Azure Pipelines, CircleCI, Buildkite).

There is no official schema; what CI systems accept is the Ant/Surefire shape that Jenkins'
xunit plugin describes in its junit-10.xsd: `testsuites > testsuite[name, tests, failures,
errors, skipped, time] > testcase[name, classname, time]`, a testcase holding at most a
`failure[message, type]`, `error` or `skipped`, plus `system-out`. Times are plain decimals
(the schema's SUREFIRE_TIME pattern has no exponent), and the XML must be 1.0-clean: control
characters that a payload excerpt might carry are removed, since a report that does not parse
is silently dropped by most CI systems.
"""

from __future__ import annotations

import re
import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kdiag.atomic import write_atomically
from kdiag.redact import mask

if TYPE_CHECKING:
    from kdiag.ci.check import CheckResult

# Characters XML 1.0 forbids (everything below 0x20 but tab, LF, CR; lone surrogates; FFFE/FFFF).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass
class JUnitCase:
    name: str
    classname: str
    seconds: float = 0.0
    outcome: str = "passed"  # passed | failure | error | skipped
    message: str = ""  # failure/error/skipped message attribute
    kind: str = ""  # failure/error type attribute (kdiag: the finding code)
    text: str = ""  # failure/error body
    output: str = ""  # system-out


@dataclass
class JUnitSuite:
    name: str
    cases: list[JUnitCase] = field(default_factory=list)
    seconds: float = 0.0
    output: str = ""
    timestamp: datetime | None = None


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _time(seconds: float) -> str:
    return f"{max(0.0, seconds):.3f}"


def junit_xml(suites: list[JUnitSuite]) -> bytes:
    """The report as bytes, UTF-8 with an XML declaration."""
    root = ET.Element("testsuites")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    total_time = 0.0
    for s in suites:
        n_fail = sum(c.outcome == "failure" for c in s.cases)
        n_err = sum(c.outcome == "error" for c in s.cases)
        n_skip = sum(c.outcome == "skipped" for c in s.cases)
        el = ET.SubElement(root, "testsuite", {
            "name": _clean(s.name), "tests": str(len(s.cases)), "failures": str(n_fail),
            "errors": str(n_err), "skipped": str(n_skip), "time": _time(s.seconds),
            "timestamp": (s.timestamp or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S"),
            "hostname": _clean(socket.gethostname() or "localhost"),
        })
        for c in s.cases:
            tc = ET.SubElement(el, "testcase", {"name": _clean(c.name),
                                                "classname": _clean(c.classname),
                                                "time": _time(c.seconds)})
            if c.outcome in ("failure", "error"):
                child = ET.SubElement(tc, c.outcome, {"message": _clean(c.message),
                                                      "type": _clean(c.kind or c.outcome)})
                child.text = _clean(c.text) if c.text else None
            elif c.outcome == "skipped":
                ET.SubElement(tc, "skipped", {"message": _clean(c.message)})
            if c.output:
                ET.SubElement(tc, "system-out").text = _clean(c.output)
        if s.output:
            ET.SubElement(el, "system-out").text = _clean(s.output)
        totals["tests"] += len(s.cases)
        totals["failures"] += n_fail
        totals["errors"] += n_err
        total_time += s.seconds
    root.set("name", "kdiag")
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", _time(total_time))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_junit(path: str | Path, suites: list[JUnitSuite]) -> None:
    """Write atomically (a temporary file renamed into place): CI never reads half a report."""
    p = Path(path)
    data = mask(junit_xml(suites).decode("utf-8")).encode("utf-8")
    write_atomically(p, data, what="the JUnit report ", create_parents=True)


def check_suite(result: CheckResult) -> JUnitSuite:
    """`kdiag check` as one suite: a test case per check, classname `kdiag.ci.check.<group>`.

    A failed case carries its first finding at or above fail_on as the failure (message: the
    finding's text; type: its code) and every finding in the body; findings below fail_on
    are listed in system-out so a passing case still shows its warnings.
    """
    from kdiag.diagnosis.findings import SEVERITY_RANK

    threshold = SEVERITY_RANK.get(result.fail_on, len(SEVERITY_RANK))  # never: above all
    suite = JUnitSuite(name=f"kdiag check {result.model}", seconds=result.seconds,
                       output=f"model: {result.model}\nconfig: {result.config_source or 'none'}"
                              f"\nfail-on: {result.fail_on}\nmodel run: "
                              f"{'yes' if result.replayed else 'no'}\n")
    for c in result.cases:
        lines = [f"{f.code} {f.severity} [{f.stage}] {f.message}"
                 + (f"\n  fix: {f.fix}" if f.fix else "") for f in c.findings]
        out = "\n".join(([c.detail] if c.detail else []) + lines)
        jc = JUnitCase(c.name, f"kdiag.ci.check.{c.group}", c.seconds, output=out)
        if c.status == "failed":
            first = next(f for f in c.findings if SEVERITY_RANK[f.severity] >= threshold)
            jc.outcome, jc.message, jc.kind = "failure", first.message, first.code
            jc.text, jc.output = out, ""
        elif c.status == "skipped":
            jc.outcome, jc.message = "skipped", c.detail or "skipped"
        suite.cases.append(jc)
    return suite
