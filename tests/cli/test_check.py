"""`kdiag check` end to end, including every block of the README's check section run on the fixtures."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from kdiag.ci.check import CheckCase, CheckResult
from kdiag.cli import cli
from kdiag.commands.check import github_annotations
from kdiag.diagnosis.findings import Finding
from kdiag.model.runner import tensorflow_available
from tests.conftest import ARCHIVES, MODELS, ROOT
from tests.test_junit import assert_valid_junit

DOC = ROOT / "README.md"
HOOKS = ROOT / ".pre-commit-hooks.yaml"
GOOD = str(ARCHIVES / "good.tar.gz")


def run(*args, env=None):
    return CliRunner().invoke(cli, ["check", *map(str, args)], env=env)


def doc_block(lang: str, containing: str) -> str:
    blocks = re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return next(b for b in blocks if containing in b)


def kdiag_argv(line: str) -> list[str]:
    """A documented command line, run with the kdiag of this environment."""
    argv = shlex.split(line)
    assert argv[0] == "kdiag", line
    return [sys.executable, "-m", "kdiag", *argv[1:]]


def make_project(root: Path, archive: str = GOOD) -> Path:
    """A repository laid out as the documented configuration says: the config block of
    the README as pyproject.toml, the fixture archive as the model, payloads with known
    answers (the fixture computes x @ [.1, .2, .3, .4, .5] + 1) and their golden outputs."""
    (root / ".git").mkdir(parents=True)
    config = doc_block("toml", "[tool.kdiag]")
    (root / "pyproject.toml").write_text('[project]\nname = "team-model"\n\n' + config)
    cfg = tomllib.loads(config)["tool"]["kdiag"]
    model = root / cfg["model"]
    model.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(archive, model)
    golden = []
    for entry in cfg["payloads"]:
        p = root / entry["file"]
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.suffix == ".csv":
            p.write_text("1,1,1,1,1\n0,0,0,0,0\n")
            golden.append({"id": p.name, "outputs": {"output_0": [[2.5], [1.0]]}})
        else:
            p.write_text('{"instances": [[1, 1, 1, 1, 1]]}')
            golden.append({"id": p.name, "outputs": {"output_0": [[2.5]]}})
    (root / cfg["golden"]).write_text("".join(json.dumps(g) + "\n" for g in golden))
    return root


# ---- the documented workflow, configuration and hook -----------------------------------------

def workflow_run_lines() -> list[str]:
    wf = doc_block("yaml", "runs-on:")
    return [m.strip().strip("'\"") if m.strip()[:1] in "'\"" and m.strip()[-1:] == m.strip()[:1]
            else m.strip() for m in re.findall(r"^\s*(?:-\s+)?run:\s*(.+)$", wf, re.M)]


def test_documented_workflow_installs_kdiag_then_runs_a_bare_kdiag_check():
    lines = workflow_run_lines()
    assert lines[0].startswith("pip install") and "kdiag" in lines[0]
    assert any(line.startswith("kdiag check") for line in lines)


@pytest.mark.slow
def test_documented_workflow_passes_on_the_clean_fixture_and_writes_valid_junit(tmp_path):
    project = make_project(tmp_path / "repo")
    env = {**os.environ, "GITHUB_ACTIONS": "true"}
    for line in workflow_run_lines():
        if line.startswith("pip install"):
            continue  # this environment already has kdiag installed
        p = subprocess.run(kdiag_argv(line), cwd=project, env=env, capture_output=True,
                           text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        # KD230: the fixture has code/inference.py, which kdiag runs only with --code.
        assert "::warning file=model/model.tar.gz,title=KD230::" in p.stdout
        assert "::error" not in p.stdout
    root = assert_valid_junit((project / "reports" / "kdiag-junit.xml").read_bytes())
    names = [c.get("name") for c in root.iter("testcase")]
    assert "payload examples/request.json [application/json]: validate" in names
    assert "expect-output output_0:float32:-1,1" in names
    assert "golden examples/golden.jsonl" in names
    doc = json.loads((project / "reports" / "kdiag.json").read_text())
    assert doc["passed"] is True
    assert doc["replayed"] is tensorflow_available()


@pytest.mark.slow
def test_documented_workflow_fails_a_broken_model_with_an_annotation(tmp_path):
    project = make_project(tmp_path / "repo", str(ARCHIVES / "code_in_version.tar.gz"))
    line = next(x for x in workflow_run_lines() if x.startswith("kdiag check"))
    p = subprocess.run(kdiag_argv(line) + ["--no-replay"], cwd=project, capture_output=True,
                       text=True, env={**os.environ, "GITHUB_ACTIONS": "true"}, timeout=120)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "::error file=model/model.tar.gz,title=KD002::" in p.stdout
    root = assert_valid_junit((project / "reports" / "kdiag-junit.xml").read_bytes())
    failure = next(c for c in root.iter("testcase") if c.find("failure") is not None)
    assert failure.find("failure").get("type") == "KD002"


def hook() -> dict:
    import yaml

    (h,) = yaml.safe_load(HOOKS.read_text(encoding="utf-8"))
    return h


def test_pre_commit_hook_is_the_one_the_docs_name():
    import yaml

    h = hook()
    assert h["language"] == "python" and h["pass_filenames"] is False
    assert h["entry"].startswith("kdiag check")
    documented = yaml.safe_load(doc_block("yaml", "hooks:"))
    assert [x["id"] for r in documented["repos"] for x in r["hooks"]] == [h["id"]]


@pytest.mark.slow
def test_pre_commit_hook_entry_passes_the_clean_project_in_about_a_second(tmp_path):
    project = make_project(tmp_path / "repo")
    t0 = time.perf_counter()
    p = subprocess.run(kdiag_argv(hook()["entry"]), cwd=project, capture_output=True,
                       text=True, timeout=120)
    took = time.perf_counter() - t0
    assert p.returncode == 0, p.stdout + p.stderr
    assert "PASSED" in p.stdout and "no model run" in p.stdout
    assert took < 10  # about a second here; generous for loaded CI machines


# ---- options, configuration and exit codes ---------------------------------------------------

def test_clean_model_exits_0_with_the_summary():
    r = run(GOOD, "--no-replay")
    assert r.exit_code == 0, r.output
    assert "PASSED" in r.output and "artifact: lint" in r.output


@pytest.mark.parametrize("archive,code", [
    ("no_version", "KD001"), ("code_in_version", "KD002"), ("wrapped", "KD002"),
    ("keras_only", "KD003"),
])
def test_broken_fixture_exits_1_naming_its_finding(archive, code):
    r = run(ARCHIVES / f"{archive}.tar.gz", "--no-replay")
    assert r.exit_code == 1
    assert code in r.output and "FAILED" in r.output


def test_custom_keras_with_custom_objects_reports_the_predict_override():
    r = run(MODELS / "custom" / "custom.keras", "--custom-objects",
            ROOT / "fixtures" / "custom_model.py", "--fail-on", "warning")
    assert r.exit_code == 1
    assert "KD031" in r.output


def test_bare_check_reads_the_configuration_and_options_override_it(tmp_path, monkeypatch):
    project = make_project(tmp_path / "repo", str(ARCHIVES / "two_models.tar.gz"))
    monkeypatch.chdir(project)
    (project / "pyproject.toml").write_text(
        '[tool.kdiag]\nmodel = "model/model.tar.gz"\nfail_on = "warning"\nreplay = false\n')
    r = run()
    assert r.exit_code == 1, r.output  # KD004 warning fails at fail_on = "warning"
    assert "KD004" in r.output
    assert run("--fail-on", "error").exit_code == 0
    assert run("--no-config", GOOD, "--no-replay").exit_code == 0


def test_json_report_is_written(tmp_path):
    out = tmp_path / "out" / "check.json"
    r = run(ARCHIVES / "wrapped.tar.gz", "--no-replay", "--json", out, "--quiet")
    assert r.exit_code == 1
    doc = json.loads(out.read_text())
    assert doc["passed"] is False
    assert any(f["code"] == "KD002" for f in doc["findings"])
    assert "Checks" not in r.output and "FAILED" in r.output


def test_payload_and_expect_output_options(tmp_path):
    body = tmp_path / "rows.csv"
    body.write_text("1,2,3,4,5\n")
    out = tmp_path / "r.json"
    r = run(MODELS / "custom" / "export" / "1", "--no-replay", "--payload", f"{body}:text/csv",
            "--content-type", "application/jsonlines", "--expect-output", "output_0:float32:-1,1",
            "--expect-output", "score:float32:-1,1", "--json", out)
    assert r.exit_code == 1
    status = {c["name"]: c["status"] for c in json.loads(out.read_text())["cases"]}
    assert status[f"payload {body} [text/csv]: validate"] == "passed"
    assert status["payload generated [application/jsonlines]: validate"] == "passed"
    assert status["expect-output output_0:float32:-1,1"] == "passed"
    assert status["expect-output score:float32:-1,1"] == "failed"
    assert "KD854" in r.output


@pytest.mark.parametrize("args,match", [
    ((), "No model to check"),
    ((GOOD, "--expect-output", "a:float32:x"), "Bad --expect-output"),
    ((GOOD, "--atol", "-1"), "a tolerance is a finite number >= 0"),
    ((GOOD, "--framework-version", "banana"), "not a TensorFlow version"),
    (("nope.tar.gz",), "does not exist"),
    ((GOOD, "--payload", "nope.json"), "does not exist"),
])
def test_usage_errors_exit_2(tmp_path, monkeypatch, args, match):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".git").mkdir()
    r = run(*args)
    assert r.exit_code == 2, r.output
    assert match in r.output


def test_unknown_configuration_key_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kdiag.toml").write_text('modle = "x"\n')
    r = run(GOOD)
    assert r.exit_code == 2 and "unknown key(s)" in r.output


def tolerance_project(root: Path, tolerances: str) -> Path:
    """The good archive, one payload whose answer is 2.5, and a golden 2.51 for it: within
    0.05, not within 1e-5."""
    (root / ".git").mkdir(parents=True)
    (root / "model").mkdir()
    shutil.copy(GOOD, root / "model" / "model.tar.gz")
    (root / "examples").mkdir()
    (root / "examples" / "request.json").write_text('{"instances": [[1, 1, 1, 1, 1]]}')
    (root / "examples" / "golden.jsonl").write_text(
        json.dumps({"id": "request.json", "outputs": {"output_0": [[2.51]]}}) + "\n")
    (root / "pyproject.toml").write_text(
        '[tool.kdiag]\nmodel = "model/model.tar.gz"\npayloads = ["examples/request.json"]\n'
        'golden = "examples/golden.jsonl"\ncontent_types = []\n' + tolerances + "\n")
    return root


def golden_case(out: Path) -> dict:
    return next(c for c in json.loads(out.read_text())["cases"] if c["group"] == "golden")


@pytest.mark.tf
def test_configured_per_output_tolerance_passes_golden_and_an_option_replaces_it(
        tmp_path, monkeypatch):
    if not tensorflow_available():
        pytest.skip("needs TensorFlow")
    monkeypatch.chdir(tolerance_project(tmp_path / "repo",
                                        "atol = {default = 1e-5, output_0 = 0.05}\nrtol = 0"))
    out = tmp_path / "r.json"
    r = run("--json", out)
    assert r.exit_code == 0, r.output
    case = golden_case(out)
    assert case["status"] == "passed" and "atol 1e-05 (output_0 0.05), rtol 0" in case["detail"]
    # Any --atol replaces the file's table, as a repeated option replaces the file's list.
    r = run("--json", out, "--atol", "1e-5")
    assert r.exit_code == 1 and golden_case(out)["status"] == "failed", r.output
    assert run("--atol", "output_0=0.05").exit_code == 0


@pytest.mark.tf
def test_a_configured_number_tolerance_still_applies_to_every_output(tmp_path, monkeypatch):
    if not tensorflow_available():
        pytest.skip("needs TensorFlow")
    monkeypatch.chdir(tolerance_project(tmp_path / "repo", "atol = 0.05\nrtol = 0"))
    assert run().exit_code == 0
    (tmp_path / "repo" / "pyproject.toml").write_text(
        (tmp_path / "repo" / "pyproject.toml").read_text().replace("atol = 0.05", "atol = 1e-3"))
    assert run().exit_code == 1


@pytest.mark.parametrize("tolerances,where", [
    ('atol = {output_0 = "x"}', "atol.output_0"),
    ("rtol = -1", "rtol"),
    ("atol = {}", "atol"),
])
def test_a_bad_configured_tolerance_exits_2_naming_the_key_and_the_file(
        tmp_path, monkeypatch, tolerances, where):
    monkeypatch.chdir(tolerance_project(tmp_path / "repo", tolerances))
    r = run("--no-replay")
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())
    assert "pyproject.toml:" in text and f"{where} " in text and "Traceback" not in r.output


def test_github_annotations_escape_properties_and_data():
    res = CheckResult(model="m", fail_on="error", cases=[CheckCase(
        "c", "payload", "failed", findings=[
            Finding("KD851", "error", "check", "100% bad:\nline two", "fix, it"),
            Finding("KD858", "info", "check", "skipped", ""),
            Finding("KD004", "warning", "artifact", "warn", "")],
        file="dir,a/b:c.json")])
    assert github_annotations(res) == [
        "::error file=dir%2Ca/b%3Ac.json,title=KD851::100%25 bad:%0Aline two Fix: fix, it",
        "::warning file=dir%2Ca/b%3Ac.json,title=KD004::warn",
    ]


def test_annotations_only_under_github_actions():
    quiet = run(ARCHIVES / "wrapped.tar.gz", "--no-replay", "-q", env={"GITHUB_ACTIONS": ""})
    loud = run(ARCHIVES / "wrapped.tar.gz", "--no-replay", "-q", env={"GITHUB_ACTIONS": "true"})
    assert "::error" not in quiet.output
    assert f"::error file={ARCHIVES / 'wrapped.tar.gz'},title=KD002::" in loud.output


def test_check_is_listed_in_kdiag_help():
    r = CliRunner().invoke(cli, ["--help"])
    assert re.search(r"^\s+check\s", r.output, re.M)


def test_configuration_caps_apply_and_cap_options_override_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".git").mkdir()
    (tmp_path / "kdiag.toml").write_text(
        f'model = "{GOOD}"\nreplay = false\ncaps = {{archive-members = 2}}\n')
    r = run()
    assert r.exit_code == 2, r.output
    assert "archive-members cap (2)" in r.output and "Traceback" not in r.output
    assert run("--cap", "archive-members=1000").exit_code == 0  # the option wins
    assert run("--no-config", GOOD, "--no-replay").exit_code == 0
    (tmp_path / "kdiag.toml").write_text(f'model = "{GOOD}"\ncaps = {{archive-members = "lots"}}\n')
    r = run()
    assert r.exit_code == 2
    assert "kdiag.toml: caps.archive-members: 'lots' is not a size" in " ".join(r.output.split())


@pytest.mark.tf
def test_configuration_trust_model_runs_the_graph_and_no_trust_model_overrides_it(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".git").mkdir()
    written = tmp_path / "kdiag_file_io_written.txt"
    model = MODELS / "file_io" / "1"
    (tmp_path / "kdiag.toml").write_text(f'model = "{model}"\ntrust-model = true\n')
    r = run("--no-trust-model")
    assert r.exit_code == 2 and "--trust-model" in r.output and not written.exists()
    r = run("--json", tmp_path / "r.json")
    assert r.exit_code in (0, 1), r.output  # KD052 is still reported; the graph ran
    assert json.loads((tmp_path / "r.json").read_text())["replayed"] and written.exists()
    written.unlink()
    r = run("--no-config", model)
    assert r.exit_code == 2 and not written.exists()
