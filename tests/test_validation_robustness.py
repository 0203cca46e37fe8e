"""Bad input is normal input: validate returns a structured result for anything, quickly."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kdiag.diagnosis.validation import ValidateOptions, validate
from kdiag.model.target import load_signatures
from kdiag.path.container import Request
from tests.conftest import MODELS

SIGS = {rel: load_signatures(str(MODELS / rel))
        for rel in ("custom/export/1", "two_inputs/1", "image_bytes/1", "tokens/1")}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["instances", "inputs", "features", "ids", "b64", "x", "signature_name"]),
        inner, max_size=3),
    max_leaves=30)

content_types = st.sampled_from([None, "application/json", "text/csv", "application/jsonlines",
                                 "application/json; charset=utf-8", "Application/JSON",
                                 "application/x-npy", "", "text/csv; header=present"])
attributes = st.one_of(st.none(), st.text(max_size=40),
                       st.sampled_from(["tfs-model-name=model", "tfs-model-version=x",
                                        "tfs-method=classify", "tfs-model-name=a=b"]))
versions = st.sampled_from([None, "1.15", "2.1", "2.5", "2.11", "2.18", "2.20"])


def check(res):
    assert isinstance(res.accepted, bool)
    if res.status is None:  # the graph decides: the answers it can give instead
        assert not res.accepted and res.status_candidates and len(res.status_candidates) > 1
    else:
        assert 0 <= res.status < 600
    json.dumps(res.to_json(), allow_nan=True)
    if not res.accepted:
        assert res.stage is not None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=json_values, sig=st.sampled_from(sorted(SIGS)), ct=content_types, attrs=attributes,
       version=versions, via=st.sampled_from(["container", "tfs"]))
def test_random_json_yields_a_structured_result(body, sig, ct, attrs, version, via):
    text = json.dumps(body, allow_nan=True).encode()
    check(validate(Request(text, ct, None, attrs), SIGS[sig],
                   ValidateOptions(framework_version=version, via=via)))


@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=300), ct=content_types, version=versions)
@example(body=b"\r0", ct="text/csv", version=None)  # a bare CR once broke the CSV recovery
def test_random_bytes_yield_a_structured_result(body, ct, version):
    check(validate(Request(body, ct), SIGS["custom/export/1"],
                   ValidateOptions(framework_version=version)))


def test_deep_nesting_and_huge_numbers_are_answered_quickly():
    for body in (b"[" * 200_000 + b"]" * 200_000, b'{"instances": [[1e400, -1e400, 1, 2, 3]]}',
                 b'{"instances": [[' + b"9" * 5000 + b', 1, 2, 3, 4]]}'):
        t0 = time.perf_counter()
        check(validate(Request(body, "application/json"), SIGS["custom/export/1"]))
        assert time.perf_counter() - t0 < 10


def test_a_model_command_without_tensorflow_says_so_in_one_line():
    code = ("import kdiag.model.runner as r; r.tensorflow_available = lambda: False\n"
            "from kdiag.cli import main\nmain(['replay', '-', '--model', sys.argv[1]])\n")
    p = subprocess.run([sys.executable, "-c", "import sys\n" + code,
                        str(MODELS / "custom/export/1")], input="[1]", capture_output=True,
                       text=True)
    assert p.returncode == 2
    assert "pip install 'kdiag[tf]'" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
