"""Rendering: rich tables for people, plain dicts for JSON. Only this module and commands print."""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kdiag.diagnosis.findings import Finding
from kdiag.model.signature import Signature, TensorSpec, format_shape
from kdiag.redact import MaskingStream, mask

if TYPE_CHECKING:
    from rich.console import Console

    from kdiag.comparison import ComparisonResult, OutputComparison
    from kdiag.model.inspection import InspectResult
    from kdiag.path.trace import StageRecord

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
EXAMPLE_LIMIT = 400  # characters of an example body shown in text output
VERDICT_STYLE = {"ok": "green", "fail": "bold red", "warn": "yellow", "skip": "dim"}


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    # Rich reads COLUMNS itself; piped output without it gets 120 columns rather than 80,
    # so tables stay readable in CI logs.
    width = None if (os.environ.get("COLUMNS") or sys.stdout.isatty()) else 120
    # Everything printed goes through kdiag.redact.mask: no secret reaches the terminal.
    stream = MaskingStream(sys.stderr if stderr else sys.stdout)
    return Console(file=stream, soft_wrap=False, highlight=False, width=width)  # type: ignore[arg-type]


# ---- JSON -----------------------------------------------------------------------------------

def tensor_json(spec: TensorSpec, *, is_input: bool) -> dict:
    d = spec.to_json()
    if is_input:
        d["batch_dim"] = spec.has_batch_dim
        d["b64"] = spec.dtype == "string"
    return d


def signature_json(sig: Signature, default: bool) -> dict:
    return {
        "signature_name": sig.name,
        "method_name": sig.method_name,
        "default": default,
        "inputs": {k: tensor_json(v, is_input=True) for k, v in sig.inputs.items()},
        "outputs": {k: tensor_json(v, is_input=False) for k, v in sig.outputs.items()},
        "notes": list(sig.notes),
    }


def inspect_json(r: InspectResult) -> dict:
    a = r.artifact
    lay = a.layout
    return {
        "path": a.path,
        "kind": a.kind,
        "model_name": a.model_name,
        "version": int(a.version) if a.version and a.version.isdigit() else None,
        "tensorflow_version": a.tensorflow_version,
        "tag_sets": a.tag_sets,
        "default_signature": "serving_default" if a.default_signature else None,
        "signatures": [signature_json(s, s.name == "serving_default") for s in a.signatures],
        "example_request": r.example_request,
        "boto3": r.boto3_call,
        "layout": None if lay is None else {
            "models": [{"name": m.name, "base": m.base, "versions": [int(v) for v in m.versions],
                        "served_version": int(m.served_version) if m.served_version else None}
                       for m in lay.models],
            "inference_py": lay.inference_py,
            "misplaced_code": lay.misplaced_code,
            "keras_files": lay.keras_files,
        },
        "keras": None if a.keras is None else {
            "format": a.keras.format, "class_name": a.keras.class_name,
            "registered_name": a.keras.registered_name, "keras_version": a.keras.keras_version,
            "subclassed": a.keras.subclassed,
            "inputs": [{"name": i.name, "dtype": i.dtype,
                        "shape": None if i.shape is None else list(i.shape)} for i in a.keras.inputs],
        },
        "names": None if r.names is None else {
            "keras": r.names.keras_inputs, "export": r.names.export_inputs,
            "tf_saved_model_save": r.names.tf_saved_model_inputs,
        },
        "findings": [f.to_dict() for f in r.findings],
    }


# ---- text -----------------------------------------------------------------------------------

def findings_table(con: Console, findings: list[Finding], *, show_info: bool = True) -> None:
    from rich.table import Table

    shown = [f for f in findings if show_info or f.severity != "info"]
    if not shown:
        con.print("[green]No findings.[/green]")
        return
    order = {"error": 0, "warning": 1, "info": 2}
    t = Table(title="Findings", title_justify="left", show_lines=True, expand=False)
    t.add_column("code", no_wrap=True)
    t.add_column("severity", no_wrap=True)
    t.add_column("stage", no_wrap=True)
    t.add_column("what and fix", overflow="fold")  # a long word folds, never cut
    # The root cause first, then the findings that stand alone, then its consequences.
    for f in sorted(shown, key=lambda f: (f.consequence_of is not None, order[f.severity])):
        cell = escape(f.message)
        if f.consequence_of:
            cell = f"[dim]follows from {f.consequence_of}:[/dim] " + cell
        if f.fix:
            cell += f"\n[bold]fix:[/bold] {escape(f.fix)}"
        t.add_row(f.code, f"[{SEVERITY_STYLE[f.severity]}]{f.severity}[/]", f.stage, cell)
    con.print(t)


# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides that can
# make a terminal show text in another order than it is.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with control bytes written as escapes (\\x1b, \\x00, \\u202e): an echoed payload
    must never move the cursor, change colours or hide characters in the user's terminal."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                            else f"\\u{ord(m.group()):04x}", text)


def escape(text: str) -> str:
    """Text from outside kdiag (payloads, error bodies, names) made safe to print: control
    bytes escaped, rich markup neutralised."""
    from rich.markup import escape as _escape

    return _escape(printable(text))


@contextmanager
def progress_bar(description: str, total: int | None, *, quiet: bool = False,
                 console_: Console | None = None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr, off when stderr is not a terminal (CI logs, pipes) or
    when `quiet` (JSON output). Yields `advance(n)`."""
    from rich.console import Console
    from rich.progress import Progress

    con = console_ or Console(stderr=True)
    if quiet or not con.is_terminal:
        yield lambda n: None
        return
    with Progress(console=con, transient=True) as bar_:
        task = bar_.add_task(description, total=total)
        yield lambda n: bar_.advance(task, n)


@dataclass(frozen=True)
class Col:
    name: str
    no_wrap: bool = True  # False: may wrap between words (never inside one)
    justify: str = "left"


def print_rows(con: Console, title: str, cols: list[Col], rows: list[list[str]]) -> None:
    """A table when it fits the console without cutting a value; else each row stacked as
    `column: value` lines. Rich shrinks a too-wide table by cutting cells with an ellipsis,
    which loses exactly the numbers a reader came for. Cells are rich markup, escaped."""
    from rich.table import Table
    from rich.text import Text

    plain = [[Text.from_markup(c).plain for c in row] for row in rows]
    need = 1
    for i, col in enumerate(cols):
        cells = [col.name] + [r[i] for r in plain]
        if col.no_wrap:
            need += max(len(c) for c in cells) + 3
        else:
            need += max((len(w) for c in cells for w in c.split()), default=1) + 3
    if need <= con.width:
        t = Table(title=title, title_justify="left")
        for col in cols:
            t.add_column(col.name, no_wrap=col.no_wrap, justify=col.justify,
                         overflow="fold")
        for row in rows:
            t.add_row(*row)
        con.print(t)
        return
    con.print(f"[italic]{title}[/italic]")
    for row in rows:
        con.print(f"- [bold]{cols[0].name}[/bold] {row[0]}")
        for col, cell in zip(cols[1:], row[1:], strict=True):
            if Text.from_markup(cell).plain.strip():
                con.print(f"    {col.name}: {cell}")


def signature_table(con: Console, sig: Signature, default: bool) -> None:
    from rich.table import Table

    method = sig.method_name.rsplit("/", 1)[-1] or "?"
    title = f"{sig.name}{'  (default)' if default else ''}  method: {method}"
    t = Table(title=escape(title), title_justify="left")
    for col in ("", "name", "dtype", "shape", "batch axis", "send as"):
        t.add_column(col, no_wrap=True)
    for name, spec in sig.inputs.items():
        send = '{"b64": ...} for binary' if spec.dtype == "string" else "JSON numbers" \
            if spec.dtype not in ("bool",) else "true/false"
        if spec.dtype.startswith("int") or spec.dtype.startswith("uint"):
            send = "JSON integers (no 1.0)"
        t.add_row("in", escape(name), spec.dtype, format_shape(spec.shape),
                  "yes" if spec.has_batch_dim else "[yellow]no[/]", send)
    for name, spec in sig.outputs.items():
        t.add_row("out", escape(name), spec.dtype, format_shape(spec.shape), "", "")
    con.print(t)
    for note in sig.notes:
        con.print(f"  note: the graph {escape(note)}")


def render_inspect(r: InspectResult, con: Console) -> None:
    from rich.syntax import Syntax

    a = r.artifact
    head = f"[bold]{escape(a.path)}[/bold]  ({a.kind})"
    if a.model_name:
        head += f"  model name: [bold]{escape(a.model_name)}[/bold]"
    if a.version:
        head += f"  version: {int(a.version)}"
    if a.tensorflow_version:
        head += f"  exported with TensorFlow {a.tensorflow_version}"
    con.print(head)
    if a.keras is not None:
        k = a.keras
        ins = ", ".join(f"{i.name} {format_shape(i.shape)}" for i in k.inputs) or "unknown"
        con.print(f"Keras file (.{k.format}): class {escape(k.class_name)}"
                  f"{' (subclassed)' if k.subclassed else ''}, inputs: {escape(ins)}")
    if r.names is not None:
        con.print(f"Input names: Keras {r.names.keras_inputs}, model.export() "
                  f"{r.names.export_inputs}, tf.saved_model.save {r.names.tf_saved_model_inputs}")
    default = a.default_signature
    for s in a.signatures:
        if default is not None and s is not default and \
                {**s.to_json(), "signature_name": ""} == {**default.to_json(), "signature_name": ""}:
            con.print(f"{escape(s.name)}: same inputs and outputs as serving_default")
            continue
        signature_table(con, s, s.name == "serving_default")
    if r.example_request:
        con.print("[bold]Request body for serving_default[/bold] (Content-Type: application/json):")
        body = r.example_request
        if len(body) > EXAMPLE_LIMIT:
            body = (body[:EXAMPLE_LIMIT] + f"… ({len(r.example_request)} bytes in all; the whole "
                    "body: --format json, or kdiag sample)")
        con.print(escape(body), soft_wrap=True)
    if r.boto3_call:
        con.print("[bold]The same request with boto3:[/bold]")
        snippet = r.boto3_call
        if r.example_request and len(r.example_request) > EXAMPLE_LIMIT:
            snippet = snippet.replace(repr(r.example_request) + ",",
                                      "body,  # the request body above")
        con.print(Syntax(snippet, "python", theme="ansi_dark", background_color="default"))
    findings_table(con, r.findings)


def render_trace(records: list[StageRecord], con: Console) -> None:
    from rich.table import Table

    t = Table(title="Request path", title_justify="left")
    for col in ("stage", "holds", "dtype", "shape", "bytes", "verdict"):
        t.add_column(col, no_wrap=col not in ("holds",))
    for rec in records:
        t.add_row(rec.stage, escape(rec.holds), rec.dtype or "", escape(rec.shape or ""),
                  "" if rec.size is None else str(rec.size),
                  f"[{VERDICT_STYLE.get(rec.verdict, '')}]{rec.verdict}[/]")
    con.print(t)


def render_validation(res, con: Console) -> None:
    """One payload: the stage table, the verdict, the findings, the corrected payload."""
    render_trace(res.records, con)
    root = next((f for f in res.findings if f.code == getattr(res, "root_cause", None)), None)
    if res.accepted and root is not None:
        con.print(f"[bold red]answered {res.status}, but wrong[/bold red]: root cause "
                  f"{root.code} at {root.stage}")
    elif res.accepted:
        con.print(f"[green]accepted[/green]: the endpoint answers {res.status}"
                  + (f" ({escape(res.content_type)})" if res.content_type else ""))
    elif res.status is None and getattr(res, "status_candidates", None):
        from kdiag.path.signature_stage import GRAPH_DECIDES

        con.print(f"[bold red]error[/bold red] at [bold]{res.stage}[/bold]: TF Serving passes "
                  f"the tensors on unchecked; {GRAPH_DECIDES} (kdiag replay with the model "
                  "says which)")
    else:
        con.print(f"[bold red]rejected[/bold red] at [bold]{res.stage}[/bold]: the container "
                  f"answers {res.status}, boto3 raises ModelError" if res.stage != "wire" else
                  f"[bold red]rejected[/bold red] at [bold]wire[/bold]: SageMaker refuses the "
                  f"request ({res.status}) before the container")
        if res.error and res.status is not None:
            con.print("error body: " + escape(" ".join(res.error.split())[:600]))
    if res.tfs_request is not None:
        text = res.tfs_request
        shown = text if len(text) <= EXAMPLE_LIMIT else text[:EXAMPLE_LIMIT] + \
            f"… ({len(text)} bytes)"
        target = res.tfs_target or {}
        uri = f"/v1/models/{target.get('model')}" + (
            f"/versions/{target['version']}" if target.get("version") is not None else "") + \
            f":{target.get('method', 'predict')}"
        con.print(f"forwarded to TF Serving {escape(uri)}: {escape(shown)}", soft_wrap=True)
    findings_table(con, res.findings)
    if res.fixed_payload:
        con.print("[bold]Send this instead[/bold] (Content-Type: "
                  f"{res.fixed_payload['content_type']}; "
                  f"{'; '.join(res.fixed_payload.get('changes', [])) or 'rewritten'}):")
        body = res.fixed_payload["body"]
        con.print(escape(body if len(body) <= EXAMPLE_LIMIT else body[:EXAMPLE_LIMIT] + "…"),
                  soft_wrap=True)
        verified = res.fixed_payload.get("verified")
        if verified:
            con.print("[dim]checked by kdiag: passes " + ", ".join(verified) + "[/dim]")
        per_length = res.fixed_payload.get("per_length")
        if per_length:
            con.print(f"[bold]Or one request per row length[/bold] ({len(per_length)} requests, "
                      "unpadded, each checked the same way):")
            for part in per_length:
                rows = ", ".join(map(str, part["rows"][:8])) + (
                    " ..." if len(part["rows"]) > 8 else "")
                text = part["body"]
                con.print(escape(f"rows {rows}: " + (text if len(text) <= EXAMPLE_LIMIT
                                                     else text[:EXAMPLE_LIMIT] + "…")),
                          soft_wrap=True)


def render_validation_batch(results: list, con: Console, *, verbose: bool = False) -> None:
    """Several payloads: the counts first, then the rejected payloads with their root cause
    (every payload with `verbose`)."""
    from kdiag.diagnosis.validation import one_line

    ok = sum(r.accepted for r in results)
    bad = len(results) - ok
    con.print(f"[bold]{len(results)} payloads[/bold]: [green]{ok} accepted[/green], "
              + (f"[bold red]{bad} rejected[/bold red]" if bad else "0 rejected"))
    shown = results if verbose else [r for r in results if not r.accepted]
    if shown:
        rows = [[escape(r.name or ""), f"[{'green' if r.accepted else 'red'}]{r.status}[/]",
                 escape(one_line(r))] for r in shown]
        print_rows(con, "Payloads" if verbose else "Rejected payloads",
                   [Col("payload", no_wrap=False), Col("status"),
                    Col("verdict", no_wrap=False)], rows)
    if not verbose and ok:
        con.print(f"[dim]{ok} accepted payload(s) not listed; -v lists every payload.[/dim]")


class BatchPrinter:
    """Writes the results of several payloads as they come (text rows, or the JSON document
    {"results": [...], "accepted": n, "rejected": n} written piece by piece), keeping only the
    counts: a million-line run holds one result at a time."""

    def __init__(self, fmt: str, con: Console | None = None, *,
                 schema_version: int | None = None, verbose: bool = False) -> None:
        self.fmt = fmt
        self.verbose = verbose
        self.titled = False
        self.schema = "" if schema_version is None else \
            f'\n  "schema_version": {schema_version},'  # kdiag.results.SCHEMA_VERSION
        self.con = con
        self.accepted = 0
        self.rejected = 0

    def add(self, res) -> None:
        import json

        from kdiag.diagnosis.validation import one_line

        first = self.accepted + self.rejected == 0
        if res.accepted:
            self.accepted += 1
        else:
            self.rejected += 1
        if self.fmt == "json":
            item = json.dumps(res.to_json(), indent=2, ensure_ascii=False)
            item = "    " + item.replace("\n", "\n    ")
            head = "{" + self.schema + '\n  "results": [\n'
            sys.stdout.write((head if first else ",\n") + mask(item))
            return
        assert self.con is not None
        if not (self.verbose or not res.accepted):
            return  # the text report lists rejected payloads (every payload with -v)
        if not self.titled:
            self.titled = True
            self.con.print("[bold]Payloads[/bold]" if self.verbose else
                           "[bold]Rejected payloads[/bold]")
        style = "green" if res.accepted and not getattr(res, "root_cause", None) else "red"
        status = "?" if res.status is None else res.status
        self.con.print(f"{escape(res.name or '')}  [{style}]{status}[/]  "
                       f"{escape(one_line(res))}", soft_wrap=True)

    def close(self) -> None:
        if self.fmt == "json":
            head = ("{" + self.schema + '\n  "results": []'
                    if self.accepted + self.rejected == 0 else "\n  ]")
            sys.stdout.write(f'{head},\n  "accepted": {self.accepted},\n  '
                             f'"rejected": {self.rejected}\n}}\n')
            sys.stdout.flush()
            return
        assert self.con is not None
        n, ok, bad = self.accepted + self.rejected, self.accepted, self.rejected
        self.con.print(f"[bold]{n} payloads[/bold]: [green]{ok} accepted[/green], "
                       + (f"[bold red]{bad} rejected[/bold red]" if bad else "0 rejected"))
        if not self.verbose and ok:
            self.con.print(f"[dim]{ok} accepted payload(s) not listed; -v lists every "
                           "payload.[/dim]")


def render_replay(res, con: Console) -> None:
    """validate's view plus what the caller receives and the notebook comparison."""
    render_validation(res, con)
    if res.accepted and res.response:
        body = res.response["body"]
        con.print(f"[bold]response[/bold] ({res.response['content_type']}): "
                  + escape(" ".join(body.split())[:EXAMPLE_LIMIT]), soft_wrap=True)
        for name, arr in res.decoded.items():
            con.print(f"client decodes {escape(name)}: {arr.dtype} {format_shape(arr.shape)}")
    nb = res.notebook
    if nb:
        verdict = nb.get("verdict")
        style = "green" if verdict == "agree" else "bold red"
        con.print(f"notebook versus endpoint: [{style}]{verdict}[/]")


# ---- comparisons (diff, replay --capture) -------------------------------------------------

def _num(x: object) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "Inf" if x > 0 else "-Inf"
        return f"{x:.3g}"
    return str(x)


def render_comparison(r: ComparisonResult, con: Console, *, failed: bool,
                      findings: list[Finding] | None = None) -> None:
    cfg = r.config
    con.print(f"[bold]A[/bold] {escape(r.a.source)}  ({r.a.kind}, {r.a.records} records"
              f"{', ids' if r.a.has_ids else ''})")
    con.print(f"[bold]B[/bold] {escape(r.b.source)}  ({r.b.kind}, {r.b.records} records"
              f"{', ids' if r.b.has_ids else ''})")
    con.print(f"{r.aligned} record pairs, aligned by {r.aligned_by}; stat {cfg.stat_label}, "
              f"atol {cfg.atol:g}, rtol {cfg.rtol:g}"
              + "".join(f", atol {k}:{v:g}" for k, v in cfg.atol_by_output.items())
              + "".join(f", rtol {k}:{v:g}" for k, v in cfg.rtol_by_output.items()))

    if r.outputs:
        cols = [Col("output", no_wrap=False), Col("dtype", no_wrap=False),
                Col("shape", no_wrap=False), Col("compared", justify="right"),
                Col("failed", justify="right"), Col("NaN/Inf", justify="right"),
                Col("abs max/mean"), Col("rel max/mean"), Col("passes with", no_wrap=False),
                Col("verdict")]
        rows = []
        for o in r.outputs:
            name = o.name if o.name == o.name_b else f"{o.name} / {o.name_b}"
            dt = o.dtype_a if o.dtype_a == o.dtype_b else f"{o.dtype_a} / {o.dtype_b}"
            sh = o.shape_a if o.shape_a == o.shape_b else f"{o.shape_a} / {o.shape_b}"
            req = "-" if o.required_atol is None else \
                f"atol {_num(o.required_atol)} or rtol {_num(o.required_rtol)}"
            verdict = "[green]pass[/]" if o.passed else "[bold red]FAIL[/]"
            rows.append([escape(name), escape(str(dt)), escape(str(sh)),
                         f"{o.compared}/{o.records}", str(o.failed),
                         f"{o.nan_mismatches}/{o.inf_mismatches}",
                         f"{_num(o.abs_max)} / {_num(o.abs_mean)}",
                         f"{_num(o.rel_max)} / {_num(o.rel_mean)}", req, verdict])
        print_rows(con, "Outputs", cols, rows)

    if r.mismatches:
        print_rows(con, "Mismatches",
                   [Col("kind"), Col("output", no_wrap=False), Col("records"),
                    Col("first ids", no_wrap=False), Col("detail", no_wrap=False)],
                   [[m.kind, escape(m.output or ""), str(m.count),
                     escape(", ".join(m.first_ids)), escape(m.detail)] for m in r.mismatches])

    shown = [o for o in r.outputs if not o.passed and o.worst]
    if not shown:
        numeric = [o for o in r.outputs if o.histogram is not None]
        shown = sorted(numeric, key=lambda o: -(o.abs_max or 0))[:1]
    what = "max" if cfg.stat == "elemwise" else cfg.stat_label
    for o in shown:
        _render_worst(o, con, what)
        if o.histogram is not None:
            _render_histogram(o, con, what)

    findings_table(con, r.findings if findings is None else findings)
    if failed:
        con.print("[bold red]FAIL[/]: the sets differ (see the findings above).")
    else:
        con.print(f"[green]PASS[/]: {r.aligned} record pairs within tolerance.")


def _render_worst(o: OutputComparison, con: Console, what: str) -> None:
    if not any(w.failed or w.abs != 0 for w in o.worst):
        return  # every listed record is exact: nothing to look at
    label = f"abs {what}" if o.numeric else "abs"
    cols = [Col("id", no_wrap=False), Col("verdict"), Col(label),
            Col(f"rel {what}" if o.numeric else "rel"), Col("largest at", no_wrap=False),
            Col("A there", no_wrap=False), Col("B there", no_wrap=False)]
    rows = [[escape(w.id), "[bold red]fail[/]" if w.failed else "pass", _num(w.abs), _num(w.rel),
             "[" + ", ".join(map(str, w.element)) + "]", escape(_num(w.a)), escape(_num(w.b))]
            for w in o.worst]
    print_rows(con, f"Worst records of '{escape(o.name)}'", cols, rows)


BLOCKS = " ▏▎▍▌▋▊▉█"


def bar(count: int, peak: int, width: int = 40) -> str:
    """A horizontal bar of unicode eighth blocks, `count` scaled to `peak` over `width` cells."""
    if peak <= 0 or count <= 0:
        return ""
    eighths = max(1, round(count / peak * width * 8))
    return "█" * (eighths // 8) + (BLOCKS[eighths % 8] if eighths % 8 else "")


def _render_histogram(o: OutputComparison, con: Console, what: str, max_rows: int = 16
                      ) -> None:
    h = o.histogram
    assert h is not None
    bins = h.bins
    rows: list[tuple[str, int, bool]] = []
    if bins:
        group = max(1, math.ceil(len(bins) / max_rows))
        for i in range(0, len(bins), group):
            part = bins[i:i + group]
            lo, hi = part[0][0], part[-1][1]
            rows.append((f"[{lo:.2e}, {hi:.2e})", sum(c for _, _, c in part), lo >= o.atol))
    if h.zero:
        rows.insert(0, ("exactly 0", h.zero, False))
    if h.nonfinite:
        rows.append(("NaN/Inf", h.nonfinite, True))
    if not rows:
        return
    peak = max(c for _, c, _ in rows)
    con.print(f"[bold]Histogram of each record's {what} |a-b|, '{escape(o.name)}'[/bold] "
              f"(records; yellow: at or above atol {o.atol:g})")
    width = max(len(label) for label, _, _ in rows)
    for label, count, hot in rows:
        style = "yellow" if hot else "cyan"
        con.print(f"  {label:>{width}} [{style}]{bar(count, peak):<40}[/] {count}")


def render_capture_replay(result, con: Console, *, failed: bool, out=None) -> None:
    """What was read, what could not be, what the local path made of it, then the diff."""
    st = result.stats
    con.print(f"[bold]Read {st.records} capture records[/bold] from {st.files} of "
              f"{st.files_listed} file(s), {st.lines} non-empty lines"
              + (f"; {st.filtered_out} outside --since/--until" if st.filtered_out else "")
              + ".")
    if result.skipped_lines:
        reasons = "; ".join(f"{n} {escape(r)}" for r, n in st.skipped.items())
        con.print(f"[yellow]{result.skipped_lines} line(s) could not be read and were not "
                  f"replayed[/yellow]: {reasons}.")
        for where in st.examples:
            con.print(f"  {escape(where)}")
    con.print(f"{result.records} records replayed: {result.replayed_ok} answered locally, "
              f"{result.rejected_locally} rejected by the local path, "
              f"{result.not_replayable} without a replayable input. "
              "A = captured endpoint output, B = local replay.")
    if result.rejected:
        con.print(f"[bold]Rejected by the local path[/bold] (first {len(result.rejected)} of "
                  f"{result.rejected_locally}; each with its root cause and, when one passes "
                  "the same path, the payload to send instead):")
        for r in result.rejected:
            con.print(f"- {escape(r['id'])}: {escape(r['cause'])}")
            fixed = r.get("fixed_payload")
            if fixed:
                body = fixed["body"]
                con.print(f"    send instead ({escape(fixed['content_type'])}): "
                          + escape(body if len(body) <= EXAMPLE_LIMIT
                                   else body[:EXAMPLE_LIMIT] + "…"), soft_wrap=True)
    render_comparison(result.comparison, con, failed=failed, findings=result.findings)
    if out is not None:
        con.print(f"wrote {result.records} result line(s) to {escape(str(out))} "
                  "(kdiag diff reads them)", soft_wrap=True)


# ---- kdiag probe (from the redacted JSON document) ---------------------------------------

def render_probe(doc: dict, con: Console) -> None:
    from rich.table import Table

    ep = doc["endpoint"]
    status = ep.get("status") or "?"
    style = "green" if status == "InService" else "bold red"
    con.print(f"[bold]Endpoint[/bold] {escape(ep['name'])} ({escape(ep.get('region') or '?')}): "
              f"[{style}]{escape(status)}[/]"
              + (f"  FailureReason: {escape(ep['failure_reason'])}" if ep.get("failure_reason")
                 else ""))
    con.print(f"config {escape(ep.get('config_name') or '?')}; TensorFlow "
              f"{escape(doc.get('framework_version') or 'unknown')} -> container "
              f"{escape(doc.get('generation') or '?')}; served as model "
              f"{escape(doc.get('model_name') or '?')}")
    if ep.get("variants"):
        t = Table(title="Variants", title_justify="left")
        for col in ("variant", "model", "instances", "weight"):
            t.add_column(col, no_wrap=True)
        for v in ep["variants"]:
            inst = "serverless" if v.get("serverless") else \
                f"{v.get('instance_count')} x {v.get('instance_type')}"
            t.add_row(escape(v["name"]), escape(v.get("model_name") or "?"), escape(inst),
                      "" if v.get("weight") is None else f"{v['weight']:g}")
        con.print(t)
    for m in ep.get("models") or []:
        img = (m.get("image") or {}).get("image") or "?"
        con.print(f"model {escape(m['name'])}: image {escape(img)}")
        if m.get("model_data_url"):
            con.print(f"  ModelDataUrl {escape(m['model_data_url'])}")
        for k, v in sorted((m.get("environment") or {}).items()):
            con.print(f"  {escape(k)}={escape(v)}")
    cap = ep.get("data_capture")
    if cap:
        con.print(f"Data Capture: {'on' if cap.get('EnableCapture', True) else 'off'} -> "
                  f"{escape(str(cap.get('DestinationS3Uri')))}")
    sig = doc.get("signature")
    if sig:
        ins = ", ".join(f"{k} {v['dtype']} {v['shape']}" for k, v in sig["inputs"].items())
        src = {"inferred": "inferred from the endpoint's answers", "s3": "the endpoint's "
               "model.tar.gz"}.get(sig["source"], f"from {sig['source']}")
        con.print(f"[bold]Signature[/bold] ({escape(src)}): {escape(ins)}")
    if doc.get("payloads"):
        t = Table(title="Payloads", title_justify="left")
        for col in ("payload", "content type", "kdiag predicts", "endpoint answered", "agree",
                    "replay"):
            t.add_column(col, no_wrap=col != "payload")
        for p in doc["payloads"]:
            t.add_row(escape(p["name"]), escape(str(p["request"]["content_type"])),
                      escape(_predicted(p)), escape(_live(p)), _agree(p["agreement"]),
                      escape(_replay(p)))
        con.print(t)
        for p in doc["payloads"]:
            live = p.get("live") or {}
            if live.get("ok") and live.get("body"):
                con.print(f"[bold]{escape(p['name'])}[/bold] answered: "
                          + escape(" ".join(live["body"].split())[:300]), soft_wrap=True)
            logs = p.get("logs")
            if logs and logs.get("lines"):
                con.print(f"[bold]{escape(p['name'])}[/bold]: log lines from "
                          f"{escape(logs['group'])}")
                for line in logs["lines"][:40]:
                    con.print(f"  {escape(line['stream'])} | {escape(line['message'])}",
                              soft_wrap=True)
    findings = [Finding(**f) for f in doc.get("findings") or []]
    findings_table(con, findings)
    verb = "would send" if doc.get("dry_run") else "sent"
    verdict = "[green]healthy[/green]" if doc.get("healthy") else "[bold red]not healthy[/]"
    con.print(f"{verdict}; {verb} {len(doc.get('payloads') or [])} payload(s), "
              f"{doc.get('requests_sent', 0)} of at most {doc.get('max_requests')} runtime "
              "call(s) made.")


def _predicted(p: dict) -> str:
    pred = p.get("prediction")
    if not pred:
        return "-"
    return f"{pred['status']} accepted" if pred["accepted"] else \
        f"{pred['status']} at {pred['stage']}"


def _live(p: dict) -> str:
    live = p.get("live")
    if not live:
        return "not sent"
    if live["ok"]:
        return f"200 ({live.get('content_type')})"
    if live["kind"] == "model-error":
        return f"ModelError {live.get('original_status_code')}"
    if live["kind"] == "budget":
        return "not sent (budget)"
    return f"{live.get('error_code') or live['kind']}"


def _agree(value: str) -> str:
    return {"agree": "[green]yes[/green]", "disagree": "[bold red]NO[/]"}.get(value, "-")


def _replay(p: dict) -> str:
    r = p.get("replay")
    if not r:
        return "-"
    if "error" in r:
        return "error"
    if "ok" in r:
        return "outputs match" if r["ok"] else "outputs DIFFER"
    return f"{r.get('status')}"


# ---- kdiag check ----------------------------------------------------------------------------

STATUS_STYLE = {"passed": "[green]pass[/green]", "failed": "[bold red]FAIL[/bold red]",
                "skipped": "[dim]skip[/dim]"}


def render_check(result, con: Console, *, quiet: bool = False) -> None:
    from rich.table import Table

    counts = result.counts()
    verdict = ("[bold red]FAILED[/bold red]" if result.failed else "[bold green]PASSED[/bold green]")
    summary = (f"kdiag check {escape(result.model)}: {verdict}  {counts['passed']} passed, "
               f"{counts['failed']} failed, {counts['skipped']} skipped in "
               f"{result.seconds:.2f} s (fail-on {result.fail_on}"
               + ("" if result.replayed else ", no model run") + ")")
    if quiet:
        con.print(summary)
        return
    t = Table(title="Checks", title_justify="left", expand=False)
    t.add_column("", no_wrap=True)
    t.add_column("check")
    t.add_column("seen")
    t.add_column("s", justify="right", no_wrap=True)
    for c in result.cases:
        t.add_row(STATUS_STYLE[c.status], escape(c.name), escape(c.detail), f"{c.seconds:.2f}")
    con.print(t)
    shown = [f for f in result.findings if f.code != "KD858"]
    if shown:
        findings_table(con, shown, show_info=result.fail_on == "info")
    if result.config_source:
        con.print(f"[dim]config: {escape(result.config_source)}[/dim]")
    con.print(summary)
