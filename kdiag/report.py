"""Rendering: rich tables for people, plain dicts for JSON. Only this module and commands print."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from kdiag.diagnosis.findings import Finding
from kdiag.model.signature import Signature, TensorSpec, format_shape
from kdiag.redact import MaskingStream, mask

if TYPE_CHECKING:
    from rich.console import Console

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
    t.add_column("what and fix")
    for f in sorted(shown, key=lambda f: order[f.severity]):
        cell = escape(f.message)
        if f.fix:
            cell += f"\n[bold]fix:[/bold] {escape(f.fix)}"
        t.add_row(f.code, f"[{SEVERITY_STYLE[f.severity]}]{f.severity}[/]", f.stage, cell)
    con.print(t)


def escape(text: str) -> str:
    from rich.markup import escape as _escape

    return _escape(text)


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
    if res.accepted:
        con.print(f"[green]accepted[/green]: the endpoint answers {res.status}"
                  + (f" ({escape(res.content_type)})" if res.content_type else ""))
    else:
        con.print(f"[bold red]rejected[/bold red] at [bold]{res.stage}[/bold]: the container "
                  f"answers {res.status}, boto3 raises ModelError" if res.stage != "wire" else
                  f"[bold red]rejected[/bold red] at [bold]wire[/bold]: SageMaker refuses the "
                  f"request ({res.status}) before the container")
        if res.error:
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


def render_validation_batch(results: list, con: Console) -> None:
    printer = BatchPrinter("text", con)
    for r in results:
        printer.add(r)
    printer.close()


class BatchPrinter:
    """Writes the results of several payloads as they come (text rows, or the JSON document
    {"results": [...], "accepted": n, "rejected": n} written piece by piece), keeping only the
    counts: a million-line run holds one result at a time."""

    def __init__(self, fmt: str, con: Console | None = None) -> None:
        self.fmt = fmt
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
            sys.stdout.write(('{\n  "results": [\n' if first else ",\n") + mask(item))
            return
        assert self.con is not None
        if first:
            self.con.print("[bold]Payloads[/bold]")
        style = "green" if res.accepted else "red"
        self.con.print(f"{escape(res.name or '')}  [{style}]{res.status}[/]  "
                       f"{escape(one_line(res))}", soft_wrap=True)

    def close(self) -> None:
        if self.fmt == "json":
            head = '{\n  "results": []' if self.accepted + self.rejected == 0 else "\n  ]"
            sys.stdout.write(f'{head},\n  "accepted": {self.accepted},\n  '
                             f'"rejected": {self.rejected}\n}}\n')
            sys.stdout.flush()
            return
        assert self.con is not None
        self.con.print(f"{self.accepted} accepted, {self.rejected} rejected")


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
