"""The `container` and `container-response` stages: the SageMaker TensorFlow Serving container in
front of TF Serving, per generation (see generations.py for the sources and commits).

`container_request` says what the container sends to TF Serving (or what it answers itself);
`container_response` says what it makes of TF Serving's answer. The Python path with user code
is run by `run_python_path`, which does both halves because the user's handlers sit in between.
"""

from __future__ import annotations

from pathlib import Path

from kdiag.diagnosis.findings import Finding
from kdiag.path import container_njs as njs
from kdiag.path.container_common import (
    NGINX_DEFAULT_TYPE,
    AttrError,
    ContainerResponse,
    ContainerResult,
    TfsTarget,
    finding,
    nginx_error_page,
)
from kdiag.path.container_python import (
    Handlers,
    TfsResponse,
    default_request,
    default_response,
    encode_requests_data,
    load_handlers,
    parse_attributes,
    run_python_path,
    select_path,
    static_check,
)
from kdiag.path.generations import Generation, Request, generation_for
from kdiag.path.trace import StageRecord, excerpt

__all__ = ["AttrError", "ContainerResponse", "ContainerResult", "Generation", "Handlers",
           "Request", "TfsResponse", "TfsTarget", "container_request", "container_response",
           "encode_requests_data", "generation_for", "load_handlers", "parse_custom_attributes",
           "run_python_path", "select_path"]

KNOWN_ATTRIBUTES = ("tfs-model-name", "tfs-model-version", "tfs-method")


def container_request(req: Request, gen: Generation, *, model_name: str,
                      code_dir: Path | None = None, has_requirements: bool = False,
                      has_lib: bool = False, has_inference: bool | None = None,
                      multi_model: bool = False, universal_bucket: bool = False
                      ) -> ContainerResult:
    """What the container does with `req` before TF Serving sees anything.

    `model_name` is the default TFS model (the container's first discovered model, or
    SAGEMAKER_TFS_DEFAULT_MODEL_NAME). `code_dir` is the model's code/ directory, if any: its
    inference.py, requirements.txt and lib/ choose the path. This function never runs user code;
    for path "python" call `run_python_path`. Never raises on odd input.
    """
    if code_dir is not None:
        code_dir = Path(code_dir)
        if has_inference is None:
            has_inference = (code_dir / "inference.py").is_file()
        has_requirements = has_requirements or (code_dir / "requirements.txt").is_file()
        has_lib = has_lib or (code_dir / "lib").is_dir()
    path = select_path(gen, has_inference=bool(has_inference), has_requirements=has_requirements,
                       has_lib=has_lib, multi_model=multi_model,
                       universal_bucket=universal_bucket)
    if path == "njs":
        res = _njs_request(req, gen, model_name)
    elif path == "python-default":
        res = default_request(req, gen, model_name)
    else:
        res = _python_request(req, gen, model_name, code_dir)
    if gen.name == "G1" and (has_requirements or has_lib) and not has_inference and path == "njs":
        res.notes.append("G1 ignores code/requirements.txt and code/lib without inference.py")
    res.record = _record("container", res)
    return res


def _python_request(req: Request, gen: Generation, model_name: str, code_dir: Path | None
                    ) -> ContainerResult:
    res = ContainerResult(forwarded=None, target=None, status=None, body=None, path="python")
    if code_dir is not None and (code_dir / "inference.py").is_file():
        res.findings.extend(static_check(code_dir))
    parsed = parse_attributes(req.custom_attributes, gen, req.accept, model_name)
    if isinstance(parsed, AttrError):
        res.status, res.body, res.content_type = parsed.status, parsed.body, parsed.content_type
        code = "KD214" if parsed.status == 400 else "KD215"
        res.findings.append(finding(code, "error",
                                    f"the Python service fails on the custom attributes before "
                                    f"the handler runs: {parsed.message} ({parsed.status})",
                                    "remove '=' from tfs-* values and use valid names"))
        return res
    res.attributes, res.target = parsed
    res.mode = "handler"
    res.notes.append("the request goes to code/inference.py: the forwarded body is whatever the "
                     "handler sends (run_python_path runs it)")
    return res


def _njs_request(req: Request, gen: Generation, model_name: str) -> ContainerResult:
    res = ContainerResult(forwarded=None, target=None, status=None, body=None, path="njs")
    kind, err = njs.gate(req.content_type, gen)
    if kind is None:
        res.status, res.body, res.content_type = 415, err, NGINX_DEFAULT_TYPE
        res.findings.append(finding(
            "KD201", "error",
            f"the container answers 415 for Content-Type {req.content_type!r}"
            + (" (G1/G2 compare the raw header exactly)" if gen.content_type_gate == "exact"
               else ""),
            "send exactly application/json (or text/csv), or add code/inference.py to handle "
            "other types"))
        return res
    body = req.body_bytes
    try:
        text, notes = njs.body_text(body, gen)
        res.notes.extend(notes)
        if kind == "json":
            forwarded, mode = njs.dispatch_json(text, gen)
        else:
            forwarded = (njs.csv_legacy(text) if gen.csv_converter == "legacy"
                         else njs.csv_fields(text))
            mode = "csv"
    except njs.NjsException as e:
        res.status, res.body, res.content_type = 500, nginx_error_page(500), "text/html"
        res.findings.append(finding(
            "KD212", "error",
            f"the njs script throws ({e}) and nginx answers 500 with its HTML error page",
            "send a non-empty body smaller than 100 MiB"))
        return res
    res.findings.extend(_body_findings(text, forwarded, mode, kind, gen))

    attrs, dropped, from_header = njs.parse_attributes(req.custom_attributes)
    res.attributes = attrs
    res.findings.extend(_attribute_findings(req.custom_attributes, attrs, dropped, gen))
    tgt = njs.target(attrs, from_header, model_name, gen)
    if isinstance(tgt, AttrError):
        res.status, res.body, res.content_type = tgt.status, tgt.body, tgt.content_type
        res.findings.append(finding(
            "KD214", "error", f"the container rejects the custom attributes: {tgt.message}",
            "send tfs-model-name as letters/digits/._-, tfs-model-version as digits, tfs-method "
            "as predict, classify or regress"))
        return res
    res.forwarded, res.target, res.mode = forwarded, tgt, mode
    return res


def _body_findings(text: str | None, forwarded: str, mode: str, kind: str, gen: Generation
                   ) -> list[Finding]:
    out: list[Finding] = []
    if text is None and kind == "json":
        out.append(finding("KD207", "error",
                           "empty body: njs forwards {\"instances\":[undefined]}, which TF "
                           "Serving rejects (400)", "send the payload in the body"))
        return out
    if mode == "wrapped":
        out.append(finding("KD203", "info",
                           "the body does not start with [[ and has no instances/inputs key: "
                           "the container wraps it as ONE instance ({\"instances\":[<body>]})",
                           "send {\"instances\": [...]} to state the batch explicitly"))
    elif mode == "json-lines":
        one_line = not forwarded.startswith('{"instances":[') or (
            text is not None and len(njs.LINE_SPLIT_RE.split(njs.js_trim(text))) == 1)
        if one_line:
            out.append(finding("KD205", "warning",
                               "the body looks like JSON lines (a } or ] followed by { or [) "
                               "but is one line: njs adds no brackets "
                               "({\"instances\":<line>})",
                               "put one instance per line, or send {\"instances\": [...]}"))
        else:
            out.append(finding("KD204", "info",
                               "JSON lines: each line becomes one instance",
                               ""))
    elif mode == "tfs-json" and text is not None and "\n" in njs.js_trim(text) and \
            njs.is_json_lines(text):
        out.append(finding("KD206", "warning",
                           "the body has several JSON documents and an instances/inputs key: "
                           "it is forwarded unmerged (TF Serving < 2.18 rejects trailing data, "
                           "2.18+ answers for the first document only)",
                           "merge the lines into one {\"instances\": [...]} request"))
    if (mode == "csv" and text is not None and gen.csv_converter == "legacy"
            and njs.CSV_NUMERIC_START_RE.match(text) is None):
        out.append(finding("KD208", "warning",
                           "the CSV body does not start with a number or quote: every line "
                           "is quoted into strings (a header row does this)",
                           "drop the header row and send numbers only"))
        if any(line.count(",") > 1 for line in text.splitlines()):
            out.append(finding("KD210", "warning",
                               "quoted CSV: only the first comma of each line is split, so "
                               "lines become two strings",
                               "drop the header row and send numbers only"))
    if mode == "csv" and text is not None:
        lines = [ln for ln in njs.LINE_SPLIT_RE.split(njs.js_trim(text)) if njs.js_trim(ln)]
        if lines and all("," not in ln for ln in lines):
            out.append(finding("KD209", "info",
                               "single-column CSV: each line becomes a scalar instance",
                               "send [[x]] as JSON if the model expects shape (None, 1)"))
    return out


def _attribute_findings(header: str | None, attrs: dict[str, str], dropped: list[str],
                        gen: Generation) -> list[Finding]:
    out: list[Finding] = []
    for pair in dropped:
        out.append(finding("KD213", "warning",
                           f"custom attribute {pair!r} has '=' in its value: njs drops it",
                           "remove '=' from tfs-* values"))
    for key, value in attrs.items():
        if key not in KNOWN_ATTRIBUTES:
            out.append(finding("KD216", "warning",
                               f"custom attribute {key!r} is not read by the container (only "
                               f"{', '.join(KNOWN_ATTRIBUTES)}); a signature is chosen with "
                               "\"signature_name\" in a TF Serving JSON body",
                               "remove it, or use signature_name inside {\"instances\": ...}"))
        if value != value.strip():
            out.append(finding("KD218", "warning",
                               f"custom attribute {key}={value!r} has surrounding spaces that "
                               "go into the TF Serving URI", "remove the spaces"))
    method = attrs.get("tfs-method")
    if method is not None and method not in njs.G3_METHODS and not gen.validates_attributes:
        out.append(finding("KD217", "warning",
                           f"tfs-method={method!r}: TF Serving answers 400 'Malformed request'",
                           "use predict, classify or regress"))
    return out


def container_response(tfs_status: int | None, tfs_body: str, req: Request, gen: Generation,
                       path: str) -> ContainerResponse:
    """What the container sends back once TF Serving answered `tfs_status`/`tfs_body`.

    `tfs_status=None` means TF Serving did not answer (down or crashed). For path "python"
    (user handlers) the answer comes from `run_python_path`; this returns status None then.
    """
    findings: list[Finding] = []
    notes: list[str] = []
    if path == "njs":
        status, ct, body, notes = njs.response(tfs_status, tfs_body, req.accept, gen)
        if ct not in (None, "application/json", "application/jsonlines", "application/jsons"):
            findings.append(finding(
                "KD641", "warning",
                f"the response is TF Serving JSON labelled {ct!r} (the first Accept type)",
                "send Accept: application/json", stage="container-response"))
        if req.accept is not None and "\n" in body and tfs_status is not None:
            findings.append(finding(
                "KD642", "info", "Accept does not list application/json: the pretty-printed "
                "newlines of TF Serving's answer are kept", "", stage="container-response"))
    elif path == "python-default":
        status, ct, body, notes = default_response(tfs_status, tfs_body, req, gen)
        if tfs_status not in (None, 200) and status == 200:
            findings.append(finding(
                "KD640", "warning", f"TF Serving answered {tfs_status} but the default Python "
                "handler answers 200 with the error body", "check the body for \"error\", or "
                "add code/inference.py that raises on errors", stage="container-response"))
        if status != 200 and body == "" and gen.propagates_tfs_errors:
            findings.append(finding(
                "KD644", "warning", "falcon writes no error body because Accept lists neither "
                "JSON nor XML", "send Accept: application/json", stage="container-response"))
    else:
        resp = ContainerResponse(status=None, content_type=None, body=None, path=path,
                                 notes=["user handlers decide the answer: use run_python_path"])
        resp.record = StageRecord(stage="container-response", verdict="skip",
                                  holds="handled by code/inference.py")
        return resp
    resp = ContainerResponse(status=status, content_type=ct, body=body, path=path,
                             findings=findings, notes=notes)
    verdict = "ok" if status is not None and 200 <= status < 300 else "fail"
    if verdict == "ok" and findings:
        verdict = "warn"
    resp.record = StageRecord(stage="container-response", verdict=verdict,
                              holds=f"HTTP {status}, {ct}", size=len(body.encode("utf-8")),
                              excerpt=excerpt(body), detail={"path": path, "tfs_status": tfs_status})
    return resp


def parse_custom_attributes(header: str | None, gen: Generation, path: str, *,
                            accept: str | None = None, default_model: str = "model"
                            ) -> dict[str, str] | AttrError:
    """The tfs-* attributes the container uses from `header`, or its own error answer.

    njs drops pairs whose value contains '='; the G1/G2 Python service fails (500) on them;
    G3 validates names, versions and methods (400) with different texts in njs and Python.
    """
    if path == "njs":
        attrs, _dropped, from_header = njs.parse_attributes(header)
        tgt = njs.target(attrs, from_header, default_model, gen)
        return tgt if isinstance(tgt, AttrError) else attrs
    parsed = parse_attributes(header, gen, accept, default_model)
    return parsed if isinstance(parsed, AttrError) else parsed[0]


def _record(stage: str, res: ContainerResult) -> StageRecord:
    if res.forwarded is not None:
        verdict = "fail" if any(f.severity == "error" for f in res.findings) else (
            "warn" if res.findings else "ok")
        return StageRecord(stage=stage, verdict=verdict,
                           holds=f"JSON text -> {res.target.uri if res.target else '?'}",
                           size=len(res.forwarded.encode("utf-8", "surrogatepass")),
                           excerpt=excerpt(res.forwarded),
                           detail={"path": res.path, "mode": res.mode,
                                   "target": res.target.uri if res.target else None})
    if res.status is not None:
        return StageRecord(stage=stage, verdict="fail",
                           holds=f"HTTP {res.status} from the container",
                           size=len((res.body or "").encode("utf-8", "surrogatepass")),
                           excerpt=excerpt(res.body or ""),
                           detail={"path": res.path, "status": res.status})
    return StageRecord(stage=stage, verdict="skip" if res.path == "python" else "warn",
                       holds="request handed to code/inference.py",
                       detail={"path": res.path,
                               "target": res.target.uri if res.target else None})
