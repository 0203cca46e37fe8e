"""Whitespace, line breaks and key order never change a diagnosis where the real path treats
the renderings alike (issue 12 item 1).

The real path does read the text in a few places, and kdiag follows it there: the container's
JSON dispatcher (tensorflowServing.js json_request) tests regexes on the raw body (a
"instances"/"inputs"/"examples" key followed by a colon, `}` or `]` followed by `{` or `[` for
JSON lines, a leading `[[`), and TF Serving reports the first problem in the order it reads the
keys. So two renderings are compared whenever the container took the same branch and TF Serving
gave the same answer; for valid single JSON documents that is every whitespace variant, and the
test also asserts it.
"""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdiag.diagnosis.validation import ValidateOptions, validate
from kdiag.path.container import Request
from tests.corpus import corpus, signatures

JSON_WS = " \t\n\r"


def render(value, rng: random.Random | None = None, *, reorder: bool = False,
           ws: str = "") -> str:
    """JSON text of `value`: with `rng`, random JSON whitespace between every token and, with
    `reorder`, object keys shuffled; without it, `ws` after every separator (", " / ": ")."""
    def gap() -> str:
        if rng is None:
            return ""
        return "".join(rng.choice(JSON_WS) for _ in range(rng.choice((0, 0, 1, 2, 3))))

    def go(v) -> str:
        if isinstance(v, dict):
            items = list(v.items())
            if reorder and rng is not None:
                rng.shuffle(items)
            elif reorder:
                items.reverse()
            inner = ("," + ws).join(gap() + json.dumps(k) + gap() + ":" + ws + gap() + go(x) + gap()
                                    for k, x in items)
            return "{" + inner + "}"
        if isinstance(v, list):
            return "[" + ("," + ws).join(gap() + go(x) + gap() for x in v) + "]"
        return json.dumps(v)

    return gap() + go(value) + gap()


def renderings(value) -> dict[str, str]:
    return {
        "compact": json.dumps(value, separators=(",", ":")),
        "spaced": json.dumps(value),
        "pretty": json.dumps(value, indent=2),
        "pretty tabs": json.dumps(value, indent="\t"),
        "reordered": render(value, reorder=True, ws=" "),
        "crlf": json.dumps(value, indent=1).replace("\n", "\r\n"),
    }


def diagnosis(res) -> dict:
    """What must not depend on the rendering: the verdict, the root cause, each finding's
    code, severity, stage and role, and the fixed payload."""
    return {
        "accepted": res.accepted, "status": res.status,
        "candidates": res.status_candidates, "stage": res.stage, "root_cause": res.root_cause,
        "findings": sorted((f.code, f.severity, f.stage, f.consequence_of or "")
                           for f in res.findings),
        "fixed": None if res.fixed_payload is None else json.loads(res.fixed_payload["body"]),
    }


def path_view(res) -> tuple:
    """How the real path treated the text: the container's branch and TF Serving's answer."""
    return res.container_mode, res.status, res.error


def run(text: str, model: str, version: str | None):
    return validate(Request(text.encode(), "application/json"), signatures(model),
                    ValidateOptions(framework_version=version))


CORPUS = corpus()


def test_the_corpus_covers_every_fixture_model_and_the_broken_families():
    assert len(CORPUS) > 100
    labels = " ".join(label for label, _, _ in CORPUS)
    for family in ("missing batch axis", "strings for numbers", "floats for ints",
                   "wrong names", "wrong inner size", "wrapper key", "bare list"):
        assert family in labels


def test_the_compact_wrong_name_body_of_issue_12_names_the_input_names():
    roots = set()
    for text in ('{"instances":[{"x":[1.0]}]}', '{"instances": [{"x": [1.0]}]}'):
        res = run(text, "custom/export/1", None)
        assert res.root_cause in ("KD306", "KD350"), [f.code for f in res.findings]
        assert "KD308" not in [f.code for f in res.findings]
        roots.add(res.root_cause)
    assert len(roots) == 1


@pytest.mark.parametrize("version", [None, "2.11", "1.15"])
def test_fixed_renderings_give_one_diagnosis_for_every_corpus_body(version):
    changed = []
    for label, model, value in CORPUS:
        views = {name: run(text, model, version) for name, text in renderings(value).items()}
        base = views["compact"]
        for name, res in views.items():
            # valid single documents: the container branches alike, TF Serving answers alike
            assert res.container_mode == base.container_mode, (label, name)
            if path_view(res) != path_view(base):
                continue  # key order changed which problem TF Serving reports first
            if diagnosis(res) != diagnosis(base):
                changed.append((label, name, diagnosis(base), diagnosis(res)))
    assert not changed, changed[:3]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(0, len(CORPUS) - 1), seed=st.integers(0, 2**32 - 1),
       reorder=st.booleans(), version=st.sampled_from([None, "2.11", "1.15"]))
def test_random_whitespace_and_key_order_never_change_the_diagnosis(index, seed, reorder,
                                                                    version):
    label, model, value = CORPUS[index]
    base = run(json.dumps(value, separators=(",", ":")), model, version)
    res = run(render(value, random.Random(seed), reorder=reorder), model, version)
    assert res.container_mode == base.container_mode, label
    if path_view(res) == path_view(base):
        assert diagnosis(res) == diagnosis(base), label
