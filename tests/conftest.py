from __future__ import annotations

import json
import os
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


@pytest.fixture(scope="session")
def expected_signatures() -> dict:
    """TensorFlow's own reading of every fixture SavedModel (written by fixtures/build.py)."""
    return json.loads((MODELS / "expected_signatures.json").read_text())
