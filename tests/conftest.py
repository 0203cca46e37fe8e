from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
MODELS = FIXTURES / "models"
ARCHIVES = FIXTURES / "archives"

# The probe tests' fixtures (moto_url, runtime_url, env) live beside their helpers.
pytest_plugins = ["tests._aws_rig"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# kdiag's runner turns oneDNN off before importing TensorFlow: with it on, a rank-3 image fed to
# Conv2D aborts the whole process (MklConvOp CHECK). Tests that import TensorFlow themselves
# must see the same setting, whichever test happens to import it first.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


# Every temporary folder kdiag makes is named kdiag-* (or .kdiag-*). The suite runs with its own
# TMPDIR, so that folders other processes leave in the system temp dir are not counted, and fails
# when any kdiag-* folder is left there at the end: a leak on some error path.
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="pytest-kdiag-session-"))
os.environ["TMPDIR"] = str(_SESSION_TMP)
tempfile.tempdir = None  # re-read TMPDIR


def _leftovers() -> list[str]:
    return sorted(p.name for p in _SESSION_TMP.iterdir()
                  if p.name.startswith(("kdiag-", ".kdiag-")))


_LEFT_BY: dict[str, str] = {}  # leftover folder -> the test after which it appeared


@pytest.fixture(autouse=True)
def _note_leftovers(request):
    """Names the test after which a kdiag-* folder appeared, for the session's message."""
    yield
    for name in _leftovers():
        _LEFT_BY.setdefault(name, request.node.nodeid)


def pytest_sessionfinish(session, exitstatus):
    import gc

    gc.collect()  # an endpoint a test dropped without close() cleans up when collected
    left = _leftovers()
    if left:
        session.exitstatus = 1
        print(f"\nkdiag left temporary folders behind in {_SESSION_TMP}: "
              + ", ".join(f"{n} (after {_LEFT_BY.get(n, '?')})" for n in left), file=sys.stderr)
    shutil.rmtree(_SESSION_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def expected_signatures() -> dict:
    """TensorFlow's own reading of every fixture SavedModel (written by fixtures/build.py)."""
    return json.loads((MODELS / "expected_signatures.json").read_text())
