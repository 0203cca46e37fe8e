"""Finding codes are registered once (kdiag/diagnosis/codes.py) and the README shows that table."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from kdiag.diagnosis.codes import CODES
from tests.conftest import ROOT


def test_every_code_kdiag_emits_is_registered():
    used = set()
    for path in (ROOT / "kdiag").rglob("*.py"):
        used |= set(re.findall(r'"(KD\d{3})"', path.read_text()))
    missing = sorted(used - set(CODES))
    assert not missing, f"register these in kdiag/diagnosis/codes.py: {missing}"


def test_codes_are_well_formed_and_grouped():
    for code in CODES:
        assert re.fullmatch(r"KD\d{3}", code)


@pytest.mark.tf
def test_readme_examples_and_codes_table_are_current():
    pytest.importorskip("tensorflow")
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_examples.py"), "--check"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
