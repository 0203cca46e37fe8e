"""`kdiag check`: the pre-deploy gate. Every check kdiag knows, on one model, in one run.

A team puts `kdiag check` in CI so that a model which the endpoint would refuse, or answer with
the wrong shape, never reaches `CreateModel`. One run:

1. lints the artifact (layout, signatures, Keras export pitfalls, predict() overrides, the
   code/inference.py contract) through `inspect_model`;
2. gathers payloads: the team's own examples, plus one generated body per content type the
   team declares it will send (a declared type that cannot carry the signature is a finding:
   the clients will send it);
3. walks each through the request path for the declared framework version (`validate`);
4. when TensorFlow is installed, replays the accepted ones through the real model in one
   `LocalEndpoint` (TensorFlow loads once), checks the decoded outputs against the team's
   expectations, and compares them with golden outputs through the comparison core;
5. with an endpoint name, probes a staging endpoint with the same payloads (kdiag.live.probe).

Each check is one `CheckCase` (one JUnit test case); the verdict of a case and of the run is
`fails(findings, fail_on)`, the rule every command uses for its exit code.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kdiag.ci.config import PayloadEntry
from kdiag.diagnosis.findings import Finding, fails
from kdiag.errors import KdiagError
from kdiag.model.signature import Signature, format_shape, normalise_dtype

STAGE = "check"

# Check-level findings (stage "check") KD850-KD860 are registered in kdiag/diagnosis/codes.py.

_CT_SUFFIX = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;.*)?$")
_CT_ALIASES = {"json": "application/json", "jsonlines": "application/jsonlines",
               "jsonl": "application/jsonlines", "csv": "text/csv"}


# ---- inputs ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class OutputExpectation:
    """What the team's client code relies on: output `name` with `dtype` (the model's, exact)
    and `shape` as the client decodes it (-1 matches any size). None means "any"."""

    name: str
    dtype: str | None
    shape: tuple[int, ...] | None
    text: str

    def shape_matches(self, shape: tuple[int, ...] | list[int] | None) -> bool | None:
        """True/False, or None when `shape` (a signature's) is too vague to tell."""
        if self.shape is None:
            return True
        if shape is None:
            return None
        if len(shape) != len(self.shape):
            return False
        unknown = False
        for want, got in zip(self.shape, shape, strict=True):
            if want == -1:
                continue
            if got == -1:
                unknown = True
            elif got != want:
                return False
        return None if unknown else True


def parse_expectation(text: str) -> OutputExpectation:
    """Parse NAME:DTYPE:SHAPE, e.g. `score:float32:-1,1`, `probs:float32:[-1, 3]`, `x:int64`,
    `out::-1` (any dtype) or `y:float32:()` (a scalar per call). `*` means any."""
    parts = text.split(":")
    if not 1 <= len(parts) <= 3 or not parts[0].strip():
        raise KdiagError(f"Bad --expect-output {text!r}: write NAME:DTYPE:SHAPE, e.g. "
                         "score:float32:-1,1 (-1 for any size, * for any dtype or shape).")
    name = parts[0].strip()
    dtype = parts[1].strip() if len(parts) > 1 else ""
    try:
        dtype = None if dtype in ("", "*", "?") else normalise_dtype(dtype)
    except KdiagError as e:
        raise KdiagError(f"Bad --expect-output {text!r}: {e}") from None
    shape: tuple[int, ...] | None = None
    if len(parts) == 3 and parts[2].strip() not in ("*", "?", ""):
        raw = parts[2].strip().strip("[]() ")
        try:
            shape = tuple(-1 if d.strip().lower() in ("-1", "none", "?") else int(d)
                          for d in raw.split(",") if d.strip()) if raw else ()
        except ValueError:
            raise KdiagError(f"Bad --expect-output {text!r}: the shape is comma-separated "
                             "integers, -1 for any size (e.g. -1,1), or () for a scalar.") from None
        if any(d < -1 for d in shape):
            raise KdiagError(f"Bad --expect-output {text!r}: sizes are >= 0, or -1 for any.")
    return OutputExpectation(name, dtype, shape, text.strip())


def parse_payload_arg(text: str) -> PayloadEntry:
    """`FILE` or `FILE:CONTENT_TYPE` (`examples/a.csv:text/csv`, `body.json:json`). The part
    after the last colon is a content type only when it looks like one, so Windows drive
    letters and colons in file names stay part of the path."""
    path, sep, ct = text.rpartition(":")
    if sep and path and (_CT_SUFFIX.match(ct) or ct.lower() in _CT_ALIASES):
        return PayloadEntry(path, _CT_ALIASES.get(ct.lower(), ct))
    return PayloadEntry(text)


@dataclass
class CheckOptions:
    """Everything one run needs; `kdiag check` fills it from [tool.kdiag] and the options."""

    model: str
    framework_version: str | None = None
    # The Content-Types the team's clients send: one payload is generated for each.
    content_types: list[str] = field(default_factory=lambda: ["application/json"])
    payloads: list[PayloadEntry] = field(default_factory=list)
    expect_output: list[OutputExpectation] = field(default_factory=list)
    golden: str | None = None
    atol: float = 1e-5
    rtol: float = 1e-5
    atol_by_output: dict[str, float] = field(default_factory=dict)
    rtol_by_output: dict[str, float] = field(default_factory=dict)
    fail_on: str = "error"
    signature_name: str | None = None
    endpoint: str | None = None
    code_dir: Path | None = None  # runs the team's inference.py handlers (executes their code)
    custom_objects: Path | None = None  # imported only by the static scan (not executed)
    replay: bool = True
    batch: int = 2  # instances per generated payload (JSON lines needs two to be unambiguous)
    seed: int = 0
    config_source: str | None = None


# ---- results ---------------------------------------------------------------------------------

@dataclass
class CheckCase:
    """One check: one JUnit test case, one row of the summary.

    `status` is "passed", "failed" or "skipped"; a case fails when one of its findings is at or
    above fail_on. `file` is the file the case is about (model, payload, golden), for CI
    annotations; `detail` is a line of what was seen, shown under the case.
    """

    name: str
    group: str  # artifact | payload | replay | expect-output | golden | endpoint
    status: str
    seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    detail: str = ""
    file: str | None = None
    root_cause: str | None = None  # a payload's one root cause, as validate and replay name it
    http_status: int | None = None  # what the endpoint answers (None: the graph decides)

    def to_json(self) -> dict:
        return {"name": self.name, "group": self.group, "status": self.status,
                "root_cause": self.root_cause, "http_status": self.http_status,
                "seconds": round(self.seconds, 4), "file": self.file, "detail": self.detail,
                "findings": [f.to_dict() for f in self.findings]}


@dataclass
class CheckResult:
    model: str
    fail_on: str
    cases: list[CheckCase] = field(default_factory=list)
    seconds: float = 0.0
    replayed: bool = False  # the model ran (TensorFlow was loaded)
    config_source: str | None = None

    @property
    def findings(self) -> list[Finding]:
        """Every case's findings, each once (KD230-like notes repeat per payload otherwise)."""
        seen: set[tuple[str, str]] = set()
        out = []
        for c in self.cases:
            for f in c.findings:
                if (f.code, f.message) not in seen:
                    seen.add((f.code, f.message))
                    out.append(f)
        return out

    @property
    def failed(self) -> bool:
        return any(c.status == "failed" for c in self.cases)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def counts(self) -> dict[str, int]:
        out = {"passed": 0, "failed": 0, "skipped": 0}
        for c in self.cases:
            out[c.status] += 1
        return out

    def to_json(self) -> dict:
        return {"model": self.model, "fail_on": self.fail_on, "passed": not self.failed,
                "exit_code": self.exit_code, "replayed": self.replayed,
                "config": self.config_source, "seconds": round(self.seconds, 4),
                "counts": self.counts(), "cases": [c.to_json() for c in self.cases],
                "findings": [f.to_dict() for f in self.findings]}


def _case(name: str, group: str, findings: list[Finding], fail_on: str, t0: float, *,
          detail: str = "", file: str | None = None, skipped: bool = False) -> CheckCase:
    status = "skipped" if skipped else ("failed" if fails(findings, fail_on) else "passed")
    return CheckCase(name, group, status, time.perf_counter() - t0, findings, detail, file)


def _skip(name: str, group: str, why: str, *, file: str | None = None) -> CheckCase:
    return CheckCase(name, group, "skipped", 0.0,
                     [Finding("KD858", "info", STAGE, f"{name}: skipped, {why}.", "")],
                     why, file)


def _about(label: str, findings: list[Finding]) -> list[Finding]:
    """Prefix messages with the payload they concern: the flat list and CI annotations lose
    the case they came from."""
    from dataclasses import replace

    return [replace(f, message=f"{label}: {f.message}") for f in findings]


# ---- payloads --------------------------------------------------------------------------------

@dataclass
class _Payload:
    label: str  # "examples/a.json" or "generated"
    content_type: str
    body: bytes
    file: str | None
    rid: str  # record id for golden files (the file name), as `kdiag replay DIR --out` writes it

    @property
    def title(self) -> str:
        return f"{self.label} [{self.content_type}]"


def _team_payloads(entries: list[PayloadEntry]) -> list[_Payload]:
    from kdiag.payloads.files import content_type_for, read_body

    names = [Path(e.file).name for e in entries]
    out = []
    for e, name in zip(entries, names, strict=True):
        p = Path(e.file)
        if p.is_dir():
            raise KdiagError(f"Payload {e.file} is a folder: list its files (a payload is one "
                             "request body).")
        ct = content_type_for(p, e.content_type)
        rid = name if names.count(name) == 1 else e.file
        out.append(_Payload(e.file, ct, read_body(e.file), e.file, rid))
    return out


def _generated(sig: Signature, content_types: list[str], opts: CheckOptions, has_handlers: bool,
               fail_on: str) -> tuple[list[_Payload], list[CheckCase]]:
    """One seeded body per declared content type, sent with the header exactly as declared.

    A declared type that cannot carry the signature is a KD850 case: the clients will send it.
    A type the container does not know is sent with a JSON body, so the request path answers
    what it would (415) -- unless code/inference.py is there to handle it, whose input format
    kdiag cannot guess (KD852: give an example).
    """
    from kdiag.payloads.build import CONTAINER_CONTENT_TYPES
    from kdiag.payloads.sample import SampleOptions, generate

    payloads: list[_Payload] = []
    cases: list[CheckCase] = []
    for declared in content_types:
        t0 = time.perf_counter()
        ct = _CT_ALIASES.get(declared.strip().lower(), declared)
        base = ct.split(";")[0].strip().lower()
        known = base in CONTAINER_CONTENT_TYPES
        label = "generated"
        if not known and has_handlers:
            cases.append(_case(f"payload {label} [{ct}]: generate", "payload", [Finding(
                "KD852", "info", STAGE,
                f"{ct}: only your code/inference.py understands this content type, so kdiag "
                "cannot generate a body for it.",
                f"Add an example: --payload FILE:{ct} (or payloads in [tool.kdiag]).")],
                fail_on, t0, skipped=True))
            continue
        try:
            sample = generate(sig, SampleOptions(batch=opts.batch, seed=opts.seed,
                                                 content_type=base if known else "json"))
        except KdiagError as e:
            cases.append(_case(f"payload {label} [{ct}]: generate", "payload", [Finding(
                "KD850", "error", STAGE,
                f"You declare that clients send {ct}, but no {ct} body can reach this "
                f"signature: {e}",
                "Send a content type that carries the signature (kdiag sample shows one), "
                "or handle this one in code/inference.py.")], fail_on, t0))
            continue
        payloads.append(_Payload(label, ct, sample.body.encode("utf-8"), None,
                                 f"generated {ct}"))
    return payloads, cases


# ---- expectations ----------------------------------------------------------------------------

def _expect_static(exp: OutputExpectation, sig: Signature) -> tuple[list[Finding], str]:
    spec = sig.outputs.get(exp.name)
    if spec is None:
        return [Finding("KD854", "error", STAGE,
                        f"expect-output {exp.text}: signature {sig.name!r} has no output "
                        f"{exp.name!r} (its outputs: {', '.join(sig.outputs) or 'none'}).",
                        "Rename the output in the model (a dict output of a functional model "
                        "keeps its keys; a single output is output_0), or fix the expectation."
                        )], ""
    found = []
    if exp.dtype is not None and spec.dtype != exp.dtype:
        found.append(Finding("KD855", "error", STAGE,
                             f"expect-output {exp.text}: signature output {exp.name!r} is "
                             f"{spec.dtype}, not {exp.dtype}.",
                             "Cast inside the exported function, or expect the dtype it has."))
    if exp.shape_matches(spec.shape) is False:
        found.append(Finding("KD856", "error", STAGE,
                             f"expect-output {exp.text}: signature output {exp.name!r} has "
                             f"shape {format_shape(spec.shape)}.",
                             "Fix the model's output layer or the expectation."))
    return found, f"signature: {spec.dtype} {format_shape(spec.shape)}"


def _expect_replayed(exp: OutputExpectation, sig: Signature, results: list
                     ) -> tuple[list[Finding], list[str]]:
    found: list[Finding] = []
    seen = []
    for title, r in results:
        got = r.decoded.get(exp.name)
        if got is None and len(r.decoded) == 1 and list(sig.outputs) == [exp.name]:
            # A one-output signature's response carries no name ({"predictions": [...]}):
            # whatever the decoder called it, it is this output.
            got = next(iter(r.decoded.values()))
        if got is None:
            found.append(Finding("KD854", "error", STAGE,
                                 f"expect-output {exp.text}: the response to {title} decodes to "
                                 f"{', '.join(r.decoded) or 'nothing'}, not {exp.name!r}.",
                                 "A one-output model answers {\"predictions\": [...]} without "
                                 "names (the client sees the signature's output name); name "
                                 "the outputs with a dict output."))
            continue
        model = r.outputs.get(exp.name) or (next(iter(r.outputs.values()))
                                            if len(r.outputs) == 1 else {})
        dtype = model.get("dtype") or str(got.dtype)
        shape = tuple(int(d) for d in got.shape)
        seen.append(f"{title}: {dtype} {format_shape(shape)} (client decodes {got.dtype})")
        if exp.dtype is not None and dtype != exp.dtype:
            found.append(Finding("KD855", "error", STAGE,
                                 f"expect-output {exp.text}: for {title} the model returns "
                                 f"{exp.name!r} as {dtype}.",
                                 "Cast inside the exported function, or expect that dtype."))
        if not exp.shape_matches(shape):
            found.append(Finding("KD856", "error", STAGE,
                                 f"expect-output {exp.text}: for {title} the client decodes "
                                 f"{exp.name!r} with shape {format_shape(shape)}.",
                                 "Check the output layer and the batch axis (row format keeps "
                                 "one entry per instance)."))
    return found, seen


# ---- golden outputs --------------------------------------------------------------------------

def _golden_case(path: str, replayed: list[tuple[_Payload, object]], opts: CheckOptions
                 ) -> CheckCase:
    from kdiag.comparison import CompareConfig, OutputSet, compare_sets
    from kdiag.replays.outputs import load_output_set

    t0 = time.perf_counter()
    name = f"golden {path}"
    golden = load_output_set(path)
    ok = [(p, r) for p, r in replayed if r.accepted and r.decoded]
    if not ok:
        return _case(name, "golden", [Finding(
            "KD859", "error", STAGE, f"golden {path}: no payload was replayed with outputs, so "
            "nothing could be compared.", "Fix the failing payloads first.")],
            opts.fail_on, t0, file=path)
    cfg = CompareConfig(atol=opts.atol, rtol=opts.rtol, atol_by_output=opts.atol_by_output,
                        rtol_by_output=opts.rtol_by_output)
    if golden.ids is not None:
        # Records are invocations, as `kdiag replay DIR --model M --out F` writes them: paired by id
        # (the payload's file name); generated payloads the golden file lacks are not errors.
        names = sorted({k for _, r in ok for k in r.decoded})
        cols = {k: [r.decoded.get(k) for _, r in ok] for k in names}
        ours = OutputSet(outputs=cols, ids=np.asarray([p.rid for p, _ in ok], dtype=object),
                         source="this run", kind="replay", exact_dtypes=False)
        res = compare_sets(golden, ours, cfg, ignore_missing=("a",))
        how = f"{res.aligned} invocation(s) paired by id"
    else:
        # Records are instances (.npy/.npz/a response): the team's payloads, in order.
        team = [(p, r) for p, r in ok if p.file is not None] or ok
        names = sorted({k for _, r in team for k in r.decoded})
        try:
            cols = {k: np.concatenate([np.asarray(r.decoded[k]) for _, r in team
                                       if k in r.decoded]) for k in names}
        except ValueError as e:
            raise KdiagError(f"golden {path}: the replayed outputs cannot be stacked into "
                             f"instances ({e}); use a JSON-lines golden file with ids "
                             "(kdiag replay DIR --model MODEL --out FILE).") from None
        ours = OutputSet.from_arrays(cols, source="this run", unnamed=len(cols) == 1)
        res = compare_sets(golden, ours, cfg)
        how = f"{res.aligned} instance(s) paired by order"
    found = _about(f"golden {path}", res.findings)
    worst = ", ".join(f"{o.name}: max abs error {o.abs_max:.3g}" for o in res.outputs
                      if o.abs_max is not None)
    return _case(name, "golden", found, opts.fail_on, t0,
                 detail=f"{how}; atol {_tolerance_text(opts.atol, opts.atol_by_output)}, "
                 f"rtol {_tolerance_text(opts.rtol, opts.rtol_by_output)}"
                 + (f"; {worst}" if worst else ""), file=path)


def _tolerance_text(default: float, by_output: dict[str, float]) -> str:
    """`1e-05`, or `1e-05 (logits 0.001)` with per-output tolerances."""
    per = ", ".join(f"{k} {v:g}" for k, v in sorted(by_output.items()))
    return f"{default:g}" + (f" ({per})" if per else "")


# ---- the run ---------------------------------------------------------------------------------

def run_check(opts: CheckOptions) -> CheckResult:
    """Run every check on `opts.model`. Raises KdiagError only for usage problems (a model or
    payload file that does not exist, a bad option); everything about the model itself is a
    finding in a case."""
    from kdiag.model.inspection import inspect_model

    if opts.fail_on not in ("error", "warning", "info", "never"):
        raise KdiagError(f"fail_on must be error, warning, info or never (got {opts.fail_on!r}).")
    if not Path(opts.model).exists():
        raise KdiagError(f"Model {opts.model} does not exist: pass a SavedModel folder, a "
                         "version parent, a .keras file or a model.tar.gz (or set model in "
                         "[tool.kdiag]).")
    from kdiag.path.container import generation_for

    generation_for(opts.framework_version)  # a bad version is a usage error, before any work
    start = time.perf_counter()
    result = CheckResult(model=opts.model, fail_on=opts.fail_on, config_source=opts.config_source)
    team = _team_payloads(opts.payloads)  # unreadable files are usage errors: before any work
    cases = result.cases
    fail_on = opts.fail_on

    # 1. the artifact
    t0 = time.perf_counter()
    insp = inspect_model(opts.model, custom_objects=opts.custom_objects)
    art = insp.artifact
    target = None
    if art.signatures:
        from kdiag.model.target import resolve_target

        target = resolve_target(opts.model, signature_name=opts.signature_name,
                                code_dir=opts.code_dir, artifact=insp.artifact)
    lint = insp.findings + (target.findings if target else [])
    _artifact_cases(cases, lint, opts, t0)

    if target is None:
        why = "the artifact has no serving signature kdiag can read"
        if not team:
            cases.append(_skip("payloads", "payload", why))
        for p in team:
            cases.append(_skip(f"payload {p.title}: validate", "payload", why, file=p.file))
        for exp in opts.expect_output:
            cases.append(_skip(f"expect-output {exp.text}", "expect-output", why))
        if opts.golden:
            cases.append(_skip(f"golden {opts.golden}", "golden", why, file=opts.golden))
        result.seconds = time.perf_counter() - start
        return result

    # 2. payloads, 3. the request path
    from kdiag.model.signature import pick_signature

    sig = pick_signature(target.signatures, opts.signature_name)
    has_handlers = bool(art.layout and art.layout.inference_py) or opts.code_dir is not None
    generated, gen_cases = _generated(sig, opts.content_types, opts, has_handlers, fail_on)
    cases += gen_cases
    payloads = team + generated
    accepted = _validate_all(cases, payloads, target, opts)

    # 4. the model
    replayed: list[tuple[_Payload, object]] = []
    skip_why = _why_no_replay(opts, art)
    if skip_why is None and accepted:
        replayed = _replay_all(cases, accepted, opts)
        result.replayed = bool(replayed)
    elif skip_why is not None:
        cases.append(_skip("replay", "replay", skip_why))

    for exp in opts.expect_output:
        t0 = time.perf_counter()
        found, detail = _expect_static(exp, sig)
        seen = []
        if not found or all(f.code != "KD854" for f in found):
            more, seen = _expect_replayed(exp, sig, [(p.title, r) for p, r in replayed
                                                     if r.accepted])
            found += more
        lines = [detail] + seen if detail else seen
        if not replayed:
            lines.append("checked against the signature only (no model run)")
        cases.append(_case(f"expect-output {exp.text}", "expect-output", found, fail_on, t0,
                           detail="; ".join(lines)))

    if opts.golden:
        if replayed:
            cases.append(_golden_case(opts.golden, replayed, opts))
        else:
            cases.append(_skip(f"golden {opts.golden}", "golden",
                               skip_why or "no payload reached the model", file=opts.golden))

    # 5. a staging endpoint
    if opts.endpoint:
        cases += _probe_cases(opts, payloads)

    result.seconds = time.perf_counter() - start
    return result


def _artifact_cases(cases: list[CheckCase], lint: list[Finding], opts: CheckOptions,
                    t0: float) -> None:
    """One case per warning or error (named after its code, so CI shows each problem), and one
    `artifact: lint` case that holds the notes and passes when nothing else was found."""
    notable = [f for f in lint if f.severity != "info"]
    infos = [f for f in lint if f.severity == "info"]
    seen: set[tuple[str, str]] = set()
    for f in notable:
        if (f.code, f.message) in seen:
            continue
        seen.add((f.code, f.message))
        cases.append(_case(f"artifact: {f.code} {_headline(f.message)}", "artifact", [f],
                           opts.fail_on, t0, file=opts.model))
    listing = ", ".join(dict.fromkeys(f"{f.code} {f.severity}" for f in lint)) or "no findings"
    cases.insert(len(cases) - len(seen), _case("artifact: lint", "artifact", infos, opts.fail_on,
                                               t0, detail=listing, file=opts.model))


def _headline(message: str, limit: int = 72) -> str:
    """The first clause of a finding's message: a test-case name a CI page can show."""
    head = re.split(r"(?<=[^\d])[:.;](\s|$)", message, maxsplit=1)[0].strip()
    return head if len(head) <= limit else head[: limit - 1].rstrip() + "…"


def _validate_all(cases: list[CheckCase], payloads: list[_Payload], target, opts: CheckOptions
                  ) -> list[_Payload]:
    from kdiag.diagnosis.validation import ValidateOptions, validate
    from kdiag.path.container import Request

    vopts = ValidateOptions(framework_version=opts.framework_version, code_dir=opts.code_dir,
                            signature_name=opts.signature_name, model_name=target.model_name,
                            versions=target.versions, has_requirements=target.has_requirements,
                            has_lib=target.has_lib,
                            artifact_findings=[f for f in target.findings if f.code != "KD230"])
    accepted = []
    for p in payloads:
        t0 = time.perf_counter()
        res = validate(Request(body=p.body, content_type=p.content_type), target.signatures,
                       vopts, name=p.label)
        found = _about(p.title, res.findings)
        if not res.accepted and not fails(found, "error"):
            found.insert(0, _rejected("KD851", p, res))
        from kdiag.diagnosis.validation import status_text

        detail = f"HTTP {status_text(res)}" + (f" at {res.stage}" if res.stage else "")
        if res.tensors:
            detail += "; TF Serving builds " + ", ".join(
                f"{k} {v['dtype']} {format_shape(tuple(v['shape']))}"
                for k, v in res.tensors.items())
        case = _case(f"payload {p.title}: validate", "payload", found, opts.fail_on, t0,
                     detail=detail, file=p.file)
        case.root_cause, case.http_status = res.root_cause, res.status
        cases.append(case)
        # A shape only the graph checks is replayed too: the model says 400 or a broadcast 200.
        if res.accepted or (res.status is None and res.status_candidates):
            accepted.append(p)
    return accepted


def _rejected(code: str, p: _Payload, res) -> Finding:
    err = (res.error or "").strip().replace("\n", " ")
    where = "on the request path" if code == "KD851" else "by the model"
    return Finding(code, "error", res.stage or STAGE,
                   f"{p.title}: rejected {where}, HTTP {res.status}"
                   + (f" at {res.stage}" if res.stage else "") + (f": {err[:300]}" if err else ""),
                   f"kdiag {'validate' if code == 'KD851' else 'replay'} on this payload shows "
                   "every stage and a corrected body.")


def _why_no_replay(opts: CheckOptions, art) -> str | None:
    from kdiag.model.runner import tensorflow_available

    if not opts.replay:
        return "--no-replay"
    if art.kind in ("keras", "h5"):
        return "a Keras file is not what the container serves (export a SavedModel)"
    if not tensorflow_available():
        return "TensorFlow is not installed (pip install 'kdiag[tf]' to run the model)"
    return None


def _replay_all(cases: list[CheckCase], payloads: list[_Payload], opts: CheckOptions
                ) -> list[tuple[_Payload, object]]:
    from kdiag.model.graph_trust import UntrustedGraph
    from kdiag.path.container import Request
    from kdiag.path.local_endpoint import LocalEndpoint
    from kdiag.replays.replay import replay_many

    t0 = time.perf_counter()
    try:
        endpoint = LocalEndpoint(opts.model, framework_version=opts.framework_version,
                                 code_dir=opts.code_dir)
    except UntrustedGraph:
        raise  # a refusal to run the model is the user's call to make: exit 2, never a verdict
    except KdiagError as e:
        cases.append(_case("replay: load the model", "replay", [Finding(
            "KD857", "error", "model", f"The model cannot be served for the replay: {e}",
            "Fix the artifact findings above; kdiag replay shows the load error.")],
            opts.fail_on, t0, file=opts.model))
        return []
    with endpoint:
        results = replay_many(endpoint, [(p.label, Request(body=p.body,
                                                           content_type=p.content_type))
                                         for p in payloads])
    # One stacked run (TensorFlow loads once, inside it): each case gets an equal share.
    each = (time.perf_counter() - t0) / max(1, len(payloads))
    out = []
    for p, r in zip(payloads, results, strict=True):
        # KD230 (inference.py not run) is an artifact note, already in its own case.
        found = _about(p.title, [f for f in r.findings if f.code != "KD230"])
        if not r.accepted and not fails(found, "error"):
            found.insert(0, _rejected("KD853", p, r))
        case = _case(f"replay {p.title}", "replay", found, opts.fail_on, time.perf_counter(),
                     detail=_replay_detail(r), file=p.file)
        case.root_cause, case.http_status = r.root_cause, r.status
        case.seconds = each
        cases.append(case)
        out.append((p, r))
    return out


def _replay_detail(r) -> str:
    if not r.accepted:
        return f"HTTP {r.status} at {r.stage}"
    outs = ", ".join(f"{k} {v['dtype']} {format_shape(tuple(v['shape']))}"
                     for k, v in r.outputs.items())
    return f"HTTP {r.status}; model outputs {outs}" if outs else f"HTTP {r.status}"


def _probe_cases(opts: CheckOptions, payloads: list[_Payload]) -> list[CheckCase]:
    """The same payloads against a staging endpoint, through kdiag.live.probe: one probe run per
    content type of the team's files (probe sends a list of files with one type) and one for
    the generated payloads. The local model is passed along, so probe compares each live
    answer with the local replay when the model runs here."""
    from kdiag.live.probe import ProbeOptions, probe

    name = opts.endpoint
    assert name is not None
    groups: dict[str, list[_Payload]] = {}
    for p in payloads:
        if p.file is not None:
            groups.setdefault(p.content_type, []).append(p)
    common = {"model": opts.model, "framework_version": opts.framework_version,
              "signature_name": opts.signature_name, "replay": opts.replay,
              "batch": opts.batch, "seed": opts.seed,
              "max_requests": max(10, len(payloads))}
    runs = [(ProbeOptions(payloads=[p.file for p in ps], content_types=[ct], **common), ps)
            for ct, ps in groups.items()]
    if any(p.file is None for p in payloads):
        runs.append((ProbeOptions(payloads=[], content_types=list(opts.content_types),
                                  **common), []))
    cases: list[CheckCase] = []
    seen: set[tuple[str, str]] = set()
    for popts, files in runs:
        t0 = time.perf_counter()
        try:
            res = probe(name, popts)
        except KdiagError as e:
            cases.append(_case(f"endpoint {name}", "endpoint", [Finding(
                "KD860", "error", "endpoint", f"Endpoint {name} could not be probed: {e}",
                "Check the endpoint name, region and credentials (kdiag probe shows the "
                "details).")], opts.fail_on, t0))
            return cases
        took = time.perf_counter() - t0
        # KD230 (inference.py not run locally) is an artifact note, already in its own case.
        general = [f for f in res.endpoint.findings + res.findings
                   if (f.code, f.message) not in seen and f.code != "KD230"]
        seen |= {(f.code, f.message) for f in general}
        share = took / (len(res.payloads) + 1)
        if general or not cases:
            case = _case(f"endpoint {name}: describe", "endpoint", general, opts.fail_on, t0,
                         detail=f"status {res.endpoint.status}; framework "
                         f"{res.framework_version or 'unknown'}")
            case.seconds = share
            cases.append(case)
        by_name = {Path(p.file).name: p for p in files if p.file}
        for pr in res.payloads:
            team = by_name.get(pr.name)
            title = team.title if team else (
                f"generated [{pr.request.content_type}]" if pr.source == "generated"
                else f"{pr.name} [{pr.request.content_type}]")
            case = _case(f"endpoint {name}: {title}", "endpoint", _about(title, pr.findings),
                         opts.fail_on, t0, detail=f"predicted {pr.predicted_text}; live "
                         f"{pr.live_text}; {pr.agreement}", file=team.file if team else None)
            case.seconds = share
            cases.append(case)
    return cases
