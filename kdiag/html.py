"""Notebook views of kdiag's results, built from their JSON documents (so the two agree).

Every value is escaped: payload text, error bodies and endpoint answers are hostile input.
Only inline styles, no scripts: notebooks render untrusted HTML without JavaScript anyway.
"""

from __future__ import annotations

from html import escape

VERDICT_COLOUR = {"ok": "#1a7f37", "fail": "#cf222e", "accepted": "#1a7f37", "rejected": "#cf222e", "warn": "#9a6700", "skip": "#6e7781",
                  "passed": "#1a7f37", "failed": "#cf222e", "skipped": "#6e7781"}
SEVERITY_COLOUR = {"error": "#cf222e", "warning": "#9a6700", "info": "#0969da"}
BODY_LIMIT = 4000  # characters of a body shown; the JSON document has all of it

_TABLE = 'style="border-collapse:collapse;margin:4px 0"'
_CELL = 'style="border:1px solid #d0d7de;padding:2px 6px;text-align:left;vertical-align:top"'


def e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def table(header: list[str], rows: list[list[str]], caption: str | None = None) -> str:
    """`rows` hold HTML already escaped by the caller (cells may carry markup)."""
    head = "".join(f"<th {_CELL}>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td {_CELL}>{c}</td>" for c in r) + "</tr>" for r in rows)
    cap = f"<caption style=\"text-align:left;font-weight:bold\">{e(caption)}</caption>" \
        if caption else ""
    return f"<table {_TABLE}>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def verdict(word: str) -> str:
    colour = VERDICT_COLOUR.get(word, "#24292f")
    return f'<span style="color:{colour};font-weight:bold">{e(word)}</span>'


def code_block(text: str, label: str | None = None) -> str:
    shown = text if len(text) <= BODY_LIMIT else text[:BODY_LIMIT] + f"… ({len(text)} characters)"
    head = f"<div>{e(label)}</div>" if label else ""
    return (f'{head}<pre class="kdiag-code" style="background:#f6f8fa;padding:6px;'
            f'white-space:pre-wrap"><code>{e(shown)}</code></pre>')


def findings(items: list[dict]) -> str:
    if not items:
        return "<p>No findings.</p>"
    rows = [[f'<span style="color:{SEVERITY_COLOUR.get(f["severity"], "#24292f")}">'
             f'{e(f["severity"])}</span>', e(f["code"]), e(f["stage"]), e(f["message"]),
             e(f.get("fix") or "")] for f in items]
    return table(["severity", "code", "stage", "what", "fix"], rows, "Findings")


def _root(doc: dict) -> dict | None:
    """The finding the document names as root cause (its code), else its first error."""
    findings = doc.get("findings") or []
    code = doc.get("root_cause")
    named = next((f for f in findings if code and f["code"] == code), None)
    return named or next((f for f in findings if f["severity"] == "error"), None)


def _answers(doc: dict) -> str:
    status = doc.get("status")
    return "the status depends on the model's graph" if status is None else \
        f"the endpoint answers {e(status)}"


def _shape(shape: object) -> str:
    if shape is None:
        return "unknown rank"
    return "(" + ", ".join("None" if d == -1 else str(d) for d in shape) + \
        ("," if isinstance(shape, list) and len(shape) == 1 else "") + ")"


def diagnosis_html(doc: dict, expected: dict[str, dict] | None = None) -> str:
    """validate / replay of one payload: verdict, root cause, fix, stages, shapes."""
    parts = ['<div class="kdiag kdiag-diagnosis">']
    if doc.get("accepted"):
        parts.append(f"<p>{verdict('accepted')}: {_answers(doc)}</p>")
    else:
        parts.append(f"<p>{verdict('rejected')} at <b>{e(doc.get('stage'))}</b>: "
                     f"{_answers(doc)}</p>")
    root = _root(doc)
    if root is not None:
        parts.append(f'<div class="kdiag-root-cause"><b>Root cause</b> ({e(root["code"])}): '
                     f'{e(root["message"])}</div>')
        if root.get("fix"):
            parts.append(f'<div class="kdiag-fix-text"><b>Fix</b>: {e(root["fix"])}</div>')
    fixed = doc.get("fixed_payload")
    if fixed:
        changes = "; ".join(fixed.get("changes") or []) or "rewritten"
        parts.append('<div class="kdiag-fix">' + code_block(
            fixed["body"], f"Send this instead (Content-Type: {fixed['content_type']}; "
                           f"{changes}):") + "</div>")
        for part in fixed.get("per_length") or []:
            parts.append('<div class="kdiag-fix">' + code_block(
                part["body"], "Or one request per row length: rows "
                + ", ".join(map(str, part["rows"][:8])) + (" ..." if len(part["rows"]) > 8
                                                            else "") + ":") + "</div>")
    elif doc.get("error"):
        parts.append(code_block(doc["error"], "Error body:"))
    stages = doc.get("stages") or []
    if stages:
        parts.append(table(["stage", "verdict", "holds", "dtype", "shape", "bytes"], [
            [e(s["stage"]), verdict(s["verdict"]), e(s["holds"]), e(s.get("dtype")),
             e(s.get("shape")), e(s.get("bytes"))] for s in stages], "Request path"))
    sent = doc.get("tensors") or {}
    if expected or sent:
        names = list(expected or {}) + [n for n in sent if n not in (expected or {})]
        rows = []
        for n in names:
            want, got = (expected or {}).get(n), sent.get(n)
            rows.append([e(n), e(want["dtype"]) if want else "-",
                         e(_shape(want["shape"])) if want else "-",
                         e(got["dtype"]) if got else "-",
                         e(_shape(got["shape"])) if got else "-"])
        parts.append(table(["input", "signature dtype", "signature shape", "request dtype",
                            "request shape"], rows, "Shapes: signature and request"))
    if doc.get("response"):
        r = doc["response"]
        parts.append(code_block(r.get("body") or "", f"Response ({r.get('content_type')}):"))
    for name, spec in (doc.get("client_decode") or {}).items():
        parts.append(f"<div>client decodes {e(name)}: {e(spec['dtype'])} "
                     f"{e(_shape(spec['shape']))}</div>")
    if doc.get("notebook"):
        parts.append(f"<p>notebook versus endpoint: {verdict(str(doc['notebook'].get('verdict')))}"
                     "</p>")
    parts.append(findings(doc.get("findings") or []))
    parts.append("</div>")
    return "".join(parts)


def batch_html(doc: dict) -> str:
    rows = [[e(r.get("payload")), verdict("ok" if r["accepted"] else "fail"), e(r["status"]),
             e(r.get("stage")), e((_root(r) or {}).get("message", ""))] for r in doc["results"]]
    return (f'<div class="kdiag">{table(["payload", "verdict", "status", "stage", "root cause"], rows, "Payloads")}'
            f"<p>{e(doc['accepted'])} accepted, {e(doc['rejected'])} rejected</p></div>")


def model_html(doc: dict) -> str:
    parts = [f'<div class="kdiag"><p><b>{e(doc["path"])}</b> ({e(doc["kind"])}), model name '
             f'{e(doc.get("model_name"))}</p>']
    for s in doc.get("signatures") or []:
        rows = [["in", e(n), e(t["dtype"]), e(_shape(t["shape"]))] for n, t in s["inputs"].items()]
        rows += [["out", e(n), e(t["dtype"]), e(_shape(t["shape"]))]
                 for n, t in s["outputs"].items()]
        parts.append(table(["", "name", "dtype", "shape"], rows, s["signature_name"]
                           + ("  (default)" if s.get("default") else "")))
    if doc.get("example_request"):
        parts.append(code_block(doc["example_request"], "A request the endpoint accepts:"))
    if doc.get("boto3"):
        parts.append(code_block(doc["boto3"], "Sent with boto3:"))
    parts.append(findings(doc.get("findings") or []) + "</div>")
    return "".join(parts)


def payload_html(doc: dict) -> str:
    notes = "".join(f"<li>{e(n)}</li>" for n in doc.get("notes") or [])
    return (f'<div class="kdiag">{code_block(doc["body"], "Content-Type: " + doc["content_type"])}'
            + (f"<ul>{notes}</ul>" if notes else "") + "</div>")


def comparison_html(doc: dict) -> str:
    rows = [[e(o["name"]), e(o.get("dtype_a")), e(o.get("dtype_b")), e(o.get("shape_a")),
             e(o.get("shape_b")), e(f"{o['compared']}/{o['records']}"), e(o["failed"]),
             e((o.get("abs") or {}).get("max")), verdict("passed" if o["passed"] else "failed")]
            for o in doc.get("outputs") or []]
    head = verdict("passed" if doc["passed"] else "failed")
    return (f'<div class="kdiag"><p>{head}: {e(doc["records_aligned"])} record pairs aligned '
            f'by {e(doc["aligned_by"])}</p>'
            + table(["output", "dtype A", "dtype B", "shape A", "shape B", "compared",
                     "failed", "abs max", "verdict"], rows, "Outputs")
            + findings(doc.get("findings") or []) + "</div>")


def check_html(doc: dict) -> str:
    rows = [[verdict(c["status"]), e(c["name"]), e(c["detail"]), e(c["seconds"])]
            for c in doc.get("cases") or []]
    head = verdict("passed" if doc["passed"] else "failed")
    return (f'<div class="kdiag"><p>kdiag check {e(doc["model"])}: {head}</p>'
            + table(["", "check", "seen", "s"], rows, "Checks")
            + findings(doc.get("findings") or []) + "</div>")


def probe_html(doc: dict) -> str:
    ep = doc.get("endpoint") or {}
    rows = []
    for p in doc.get("payloads") or []:
        live = p.get("live") or {}
        pred = p.get("prediction") or {}
        rows.append([e(p["name"]), e((p.get("request") or {}).get("content_type")),
                     e(pred.get("status")), e(live.get("kind") if live else "not sent"),
                     e(p.get("agreement"))])
    head = verdict("passed" if doc.get("healthy") else "failed")
    return (f'<div class="kdiag"><p>Endpoint <b>{e(ep.get("name"))}</b>: '
            f'{e(ep.get("status"))} ({head})</p>'
            + table(["payload", "content type", "kdiag predicts", "endpoint answered", "agree"],
                    rows, "Payloads")
            + findings(doc.get("findings") or []) + "</div>")
