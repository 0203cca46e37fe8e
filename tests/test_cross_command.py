"""validate, replay and check name one root cause for the same model and payload, exit alike,
and no status validate asserts offline is contradicted by the graph (issue 12 item 2).

Every fixture model gets its correct sample and the usual broken variants (missing batch axis,
wrong inner size, wrong names, strings for numbers, floats for ints). Each command runs once per
model through the CLI (--format json) in this process, so TensorFlow loads once: validate and
replay over a folder of the payloads, check with every payload as --payload.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from kdiag.cli import cli
from tests.conftest import MODELS
from tests.corpus import MODEL_DIRS, broken_variants, signatures

pytestmark = pytest.mark.tf

FAMILIES = ("missing batch axis", "wrong inner size", "wrong names", "named wrongly",
            "strings for numbers", "floats for ints")


def payloads(model: str) -> dict[str, object]:
    from kdiag.payloads.sample import SampleOptions, generate

    sig = signatures(model)[0]
    body = json.loads(generate(sig, SampleOptions(batch=2, seed=3)).body)
    out = {"correct": body}
    for what, value in broken_variants(body, sig):
        if what in FAMILIES:
            out[what] = value
    return out


def cli_json(*args: str, report: Path | None = None) -> tuple[int, dict]:
    """Exit code and JSON report: stdout's (--format json), or check's --json FILE."""
    extra = ["--no-config", "--quiet", "--json", str(report)] if report else ["--format", "json"]
    r = CliRunner().invoke(cli, [*args, *extra])
    assert r.exit_code in (0, 1), r.output
    return r.exit_code, json.loads(report.read_text() if report else r.stdout)


def has_error(findings: list[dict]) -> bool:
    return any(f["severity"] == "error" for f in findings)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for model in MODEL_DIRS:
        d = tmp_path_factory.mktemp(model.replace("/", "_"))
        for name, value in payloads(model).items():
            (d / f"{name.replace(' ', '_')}.json").write_text(json.dumps(value))
        out[model] = d
    return out


@pytest.mark.parametrize("model", MODEL_DIRS)
def test_validate_replay_and_check_name_one_root_cause(model, folders):
    folder = folders[model]
    path = str(MODELS / model)
    v_rc, v_doc = cli_json("validate", str(folder), "--signature", path)
    r_rc, r_doc = cli_json("replay", str(folder), "--model", path)
    files = sorted(folder.iterdir())
    c_args = [a for f in files for a in ("--payload", str(f))]
    c_rc, c_doc = cli_json("check", path, *c_args, report=folder.parent / "check.json")

    validated = {Path(r["payload"]).name: r for r in v_doc["results"]}
    replayed = {Path(r["payload"]).name: r for r in r_doc["results"]}
    assert set(validated) == set(replayed) == {f.name for f in files}
    checked: dict[str, dict] = {}
    for case in c_doc["cases"]:
        if case["file"] and case["group"] in ("payload", "replay"):
            # the replay case, when the model ran, is the word of the graph
            checked[Path(case["file"]).name] = case
    for name, v in validated.items():
        r = replayed[name]
        c = checked[name]
        roots = (v["root_cause"], r["root_cause"], c["root_cause"])
        assert len(set(roots)) == 1, (model, name, roots)
        assert has_error(v["findings"]) == has_error(r["findings"]), (model, name)
        assert (c["status"] == "failed") == has_error(r["findings"]), (model, name)
        if v["status"] is not None:
            assert v["status"] == r["status"], (model, name, v["status"], r["status"])
        else:  # the graph decides: replay says which of the candidates
            assert r["status"] in v["status_candidates"], (model, name)
    assert v_rc == r_rc == c_rc, (model, v_rc, r_rc, c_rc)
