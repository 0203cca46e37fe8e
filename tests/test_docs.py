"""Documentation that runs: the README's Python API section as doctests, and the notebook."""

from __future__ import annotations

import doctest
import os
import re

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"
NOTEBOOK = ROOT / "examples" / "notebook_to_endpoint.ipynb"


def readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, f"README has no '## {title}' section"
    return m.group(1)


def test_the_readme_python_api_section_runs_as_doctests(monkeypatch):
    monkeypatch.chdir(ROOT)  # its paths are relative to the repository root
    section = readme_section("Python API")
    test = doctest.DocTestParser().get_doctest(section, {}, "README.md#python-api",
                                               str(README), 0)
    assert len(test.examples) >= 10
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} README example(s) failed (output above)"


@pytest.mark.tf
@pytest.mark.slow
def test_the_notebook_runs_top_to_bottom(monkeypatch):
    """examples/notebook_to_endpoint.ipynb, executed as CI would, in a fresh python3 kernel."""
    pytest.importorskip("tensorflow")
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # The kernel is a new process: it must import this checkout's kdiag.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    client = nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT / "examples")}})
    client.execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    assert "STORY OK" in outputs
