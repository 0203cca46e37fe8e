"""The public result types of kdiag's Python API (kdiag.inspect, validate, replay, ...).

Each is a frozen dataclass around the library's own result, with three views:

- `to_dict()`: exactly the document the matching command prints with `--format json` (check:
  writes with `--json FILE`), with a `schema_version`. Bump SCHEMA_VERSION when a key changes
  meaning or disappears; new keys do not bump it.
- `__rich__()`: the command's terminal rendering (kdiag/report.py), for `rich.print(result)`.
- `_repr_html_()`: a notebook view (kdiag/html.py): the stages with pass/fail, the root cause,
  the fix as a copyable code block, expected and sent shapes side by side.

The wrapped library objects are reachable (`.result`) but are not part of the stable API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult

    from kdiag.ci.check import CheckResult
    from kdiag.comparison import ComparisonResult
    from kdiag.diagnosis.findings import Finding
    from kdiag.diagnosis.validation import ValidationResult
    from kdiag.live.probe import ProbeResult
    from kdiag.model.inspection import InspectResult
    from kdiag.model.signature import Signature

SCHEMA_VERSION = 1


class _Rendered:
    """A renderable that runs one of report.py's print-style renderers into the console that
    renders it (same width and colours)."""

    def __init__(self, draw: Callable[[Console], None]) -> None:
        self._draw = draw

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        import io

        from rich.console import Console
        from rich.text import Text

        buf = io.StringIO()
        inner = Console(file=buf, width=options.max_width, color_system=console.color_system,
                        force_terminal=console.is_terminal, soft_wrap=False, highlight=False)
        self._draw(inner)
        yield Text.from_ansi(buf.getvalue().rstrip("\n"))


def _root_cause(result: Any) -> Finding | None:
    """The finding the diagnosis names as the root cause (`result.root_cause`, a code), else the
    first error: diagnose() puts the root cause before the findings it explains."""
    findings = result.findings
    code = getattr(result, "root_cause", None)
    if code:
        named = next((f for f in findings if f.code == code), None)
        if named is not None:
            return named
    return next((f for f in findings if f.severity == "error"), None)


@dataclass(frozen=True)
class ModelReport:
    """kdiag.inspect: a model's serving signatures and what the endpoint will expect."""

    result: InspectResult

    @property
    def signatures(self) -> list[Signature]:
        return list(self.result.artifact.signatures)

    @property
    def findings(self) -> list[Finding]:
        return list(self.result.findings)

    @property
    def example_request(self) -> str | None:
        return self.result.example_request

    def to_dict(self) -> dict:
        from kdiag.report import inspect_json

        return {"schema_version": SCHEMA_VERSION, **inspect_json(self.result)}

    def __rich__(self) -> _Rendered:
        from kdiag.report import render_inspect

        return _Rendered(lambda con: render_inspect(self.result, con))

    def _repr_html_(self) -> str:
        from kdiag.html import model_html

        return model_html(self.to_dict())


@dataclass(frozen=True)
class Payload:
    """A request body with its Content-Type: what kdiag.sample returns, and what every payload
    argument accepts. `body` is text for generated payloads, bytes for files read as is."""

    content_type: str
    body: str | bytes
    notes: tuple[str, ...] = ()
    name: str | None = None

    @property
    def body_bytes(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else self.body

    def to_dict(self) -> dict:
        """`kdiag sample --signature SIG --format json`: {content_type, body, notes}."""
        body = self.body if isinstance(self.body, str) else \
            self.body.decode("utf-8", "replace")
        return {"schema_version": SCHEMA_VERSION, "content_type": self.content_type,
                "body": body, "notes": list(self.notes)}

    def __rich__(self) -> _Rendered:
        from kdiag.report import escape

        return _Rendered(lambda con: con.print(escape(self.to_dict()["body"]), soft_wrap=True))

    def _repr_html_(self) -> str:
        from kdiag.html import payload_html

        return payload_html(self.to_dict())


@dataclass(frozen=True)
class Diagnosis:
    """kdiag.validate: what the endpoint answers to one payload, stage by stage, and why."""

    result: ValidationResult
    signature: Signature | None = None  # the signature validated against (shapes side by side)

    @property
    def accepted(self) -> bool:
        return self.result.accepted

    @property
    def status(self) -> int | None:
        """The HTTP status the container answers; None when only the model can decide it."""
        return self.result.status

    @property
    def stage(self) -> str | None:
        return self.result.stage

    @property
    def error(self) -> str | None:
        return self.result.error

    @property
    def findings(self) -> list[Finding]:
        return list(self.result.findings)

    @property
    def root_cause(self) -> Finding | None:
        return _root_cause(self.result)

    @property
    def fixed_payload(self) -> Payload | None:
        fp = self.result.fixed_payload
        if not fp:
            return None
        return Payload(fp["content_type"], fp["body"], tuple(fp.get("changes") or ()))

    def to_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, **self.result.to_json()}

    def __rich__(self) -> _Rendered:
        from kdiag.report import render_validation

        return _Rendered(lambda con: render_validation(self.result, con))

    def _repr_html_(self) -> str:
        from kdiag.html import diagnosis_html

        return diagnosis_html(self.to_dict(), _inputs(self.signature))


@dataclass(frozen=True)
class Replay:
    """kdiag.replay: payloads through the real model as the endpoint runs them."""

    results: tuple[Any, ...]  # kdiag.replays.replay.ReplayResult, one per payload
    single: bool = True  # one payload given (not a list): to_dict() is that payload's document
    signature: Signature | None = None

    @property
    def accepted(self) -> bool:
        return all(r.accepted for r in self.results)

    @property
    def root_cause(self) -> Finding | None:
        return next((f for r in self.results if (f := _root_cause(r))), None)

    @property
    def outputs(self) -> list[dict]:
        """What the client decodes, per payload: {output name: numpy array}."""
        return [dict(r.decoded) for r in self.results]

    @property
    def notebook_agrees(self) -> bool | None:
        nb = [r.notebook for r in self.results if r.notebook is not None]
        return None if not nb else all(n.get("verdict") == "agree" for n in nb)

    def to_dict(self) -> dict:
        if self.single:
            return {"schema_version": SCHEMA_VERSION, **self.results[0].to_json()}
        return batch_document(self.results)

    def __rich__(self) -> _Rendered:
        from kdiag.report import render_replay, render_validation_batch

        if self.single:
            return _Rendered(lambda con: render_replay(self.results[0], con))
        return _Rendered(lambda con: render_validation_batch(list(self.results), con))

    def _repr_html_(self) -> str:
        from kdiag.html import batch_html, diagnosis_html

        if self.single:
            return diagnosis_html(self.to_dict(), _inputs(self.signature))
        return batch_html(self.to_dict())


@dataclass(frozen=True)
class ProbeReport:
    """kdiag.probe: a live endpoint, end to end. `document` is already redacted."""

    result: ProbeResult
    document: dict

    @property
    def healthy(self) -> bool:
        return bool(self.document.get("healthy"))

    @property
    def findings(self) -> list[Finding]:
        return list(self.result.all_findings)

    def failed(self, fail_on: str = "error") -> bool:
        return self.result.failed(fail_on)

    def to_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, **self.document}

    def __rich__(self) -> _Rendered:
        from kdiag.report import render_probe

        return _Rendered(lambda con: render_probe(self.document, con))

    def _repr_html_(self) -> str:
        from kdiag.html import probe_html

        return probe_html(self.to_dict())


@dataclass(frozen=True)
class CheckReport:
    """kdiag.check: the pre-deploy gate, one case per check."""

    result: CheckResult

    @property
    def passed(self) -> bool:
        return not self.result.failed

    @property
    def exit_code(self) -> int:
        return self.result.exit_code

    @property
    def findings(self) -> list[Finding]:
        return self.result.findings

    def to_dict(self) -> dict:
        """`kdiag check --json FILE`."""
        return {"schema_version": SCHEMA_VERSION, **self.result.to_json()}

    def __rich__(self) -> _Rendered:
        from kdiag.report import render_check

        return _Rendered(lambda con: render_check(self.result, con))

    def _repr_html_(self) -> str:
        from kdiag.html import check_html

        return check_html(self.to_dict())


@dataclass(frozen=True)
class Comparison:
    """kdiag.compare: two output sets, per-output statistics and findings."""

    result: ComparisonResult
    fail_on: str = "error"

    @property
    def passed(self) -> bool:
        from kdiag.diagnosis.findings import fails

        return not fails(self.result.findings, self.fail_on)

    @property
    def findings(self) -> list[Finding]:
        return list(self.result.findings)

    def to_dict(self) -> dict:
        """`kdiag diff A B --format json`."""
        return {"schema_version": SCHEMA_VERSION, "passed": self.passed,
                "fail_on": self.fail_on, **self.result.to_dict()}

    def __rich__(self) -> _Rendered:
        from kdiag.report import render_comparison

        return _Rendered(lambda con: render_comparison(self.result, con,
                                                       failed=not self.passed))

    def _repr_html_(self) -> str:
        from kdiag.html import comparison_html

        return comparison_html(self.to_dict())


def batch_document(results: Any) -> dict:
    """Several payloads (validate or replay over a folder or JSON lines): one document."""
    results = list(results)
    return {"schema_version": SCHEMA_VERSION, "results": [r.to_json() for r in results],
            "accepted": sum(r.accepted for r in results),
            "rejected": sum(not r.accepted for r in results)}


def _inputs(sig: Signature | None) -> dict[str, dict] | None:
    if sig is None:
        return None
    return {k: {"dtype": v.dtype, "shape": list(v.shape) if v.shape is not None else None}
            for k, v in sig.inputs.items()}
