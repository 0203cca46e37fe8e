"""The README as a newcomer reads it: set-up steps in order, a pre-commit hook that exists."""

from __future__ import annotations

import re

import yaml

from tests.conftest import ROOT

DOC = (ROOT / "README.md").read_text(encoding="utf-8")
HOOKS = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))


def first_sh_block() -> tuple[int, list[str]]:
    """Where the first ```sh block starts and its lines, read the way .ci/run reads it."""
    m = re.search(r"^```sh\n(.*?)^```$", DOC, re.S | re.M)
    assert m
    return m.start(), m.group(1).splitlines()


def test_first_sh_block_is_exactly_install_then_test():
    _, lines = first_sh_block()
    assert lines == ["python -m pip install -e '.[dev]'", "python -m pytest -q"]


def test_python_version_and_virtual_environment_come_before_the_two_commands():
    start, _ = first_sh_block()
    before = DOC[:start]
    assert "Python 3.11" in before
    assert "python3 -m venv .venv" in before and ". .venv/bin/activate" in before


def test_python_version_matches_pyproject():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'requires-python = ">=3.11"' in pyproject


def pre_commit_config() -> dict:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC, re.S)
    block = next(b for b in blocks if "# .pre-commit-config.yaml" in b)
    return yaml.safe_load(block)


def test_pre_commit_example_is_a_local_hook_needing_no_rev():
    # A remote repo needs a rev (tag or commit) that exists at that URL; kdiag has no published
    # tags, so the example must not invent one.
    (repo,) = pre_commit_config()["repos"]
    assert repo["repo"] == "local" and "rev" not in repo
    (hook,) = repo["hooks"]
    # pre-commit's schema for a local hook: these keys are required.
    assert {"id", "name", "entry", "language"} <= set(hook)
    assert hook["language"] == "system"


def test_pre_commit_example_runs_the_same_command_as_the_shipped_hook():
    (shipped,) = HOOKS
    (hook,) = pre_commit_config()["repos"][0]["hooks"]
    assert hook["id"] == shipped["id"]
    assert hook["entry"] == shipped["entry"]
    assert hook["pass_filenames"] == shipped["pass_filenames"]
    assert hook["files"] == shipped["files"]
    assert re.compile(hook["files"]).search("model/model.tar.gz")


def test_no_yaml_block_names_a_rev():
    for block in re.findall(r"```yaml\n(.*?)```", DOC, re.S):
        assert not re.search(r"^\s*rev:", block, re.M), block


def test_every_folder_argument_says_whether_it_recurses():
    for where in ("PAYLOAD may be a folder: every file in it and in its subfolders",
                  "PAYLOAD may be a folder (read recursively",
                  "Data Capture (a folder, read recursively"):
        assert where in DOC
