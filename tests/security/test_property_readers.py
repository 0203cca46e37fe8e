"""Random nested JSON and random bytes at validate's readers and the capture reader: a result,
a finding or one KdiagError, never a traceback."""

from __future__ import annotations

import contextlib
import gzip
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdiag.diagnosis.validation import validate
from kdiag.errors import KdiagError
from kdiag.model.target import load_signature
from kdiag.path.container import Request
from kdiag.payloads.files import iter_payloads
from kdiag.payloads.recover import NoFix, recover
from kdiag.replays.capture import iter_capture
from tests.conftest import MODELS

SIGS = [load_signature(str(MODELS / m / "1"), None) for m in ("tokens", "image_bytes")]
leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
nested = st.recursive(leaves, lambda c: st.lists(c, max_size=4)
                      | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=30)
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


@SETTINGS
@given(nested, st.integers(0, 300), st.sampled_from(["application/json", "text/csv", None]))
def test_random_nested_json_never_raises(value, depth, ct):
    body = json.dumps({"instances": value}).encode()
    deep = b'{"instances": ' + b"[" * depth + json.dumps(value).encode() + b"]" * depth + b"}"
    for raw in (body, deep):
        for sig in SIGS:
            res = validate(Request(raw, ct), [sig])
            assert isinstance(res.accepted, bool)
            with contextlib.suppress(NoFix):
                recover(raw, ct, sig)


@SETTINGS
@given(st.binary(max_size=300), st.booleans(), st.booleans(), st.booleans())
def test_random_bytes_at_the_file_and_capture_readers_never_raise(tmp_path, data, gz, packed,
                                                                  each):
    p = tmp_path / ("x.jsonl.gz" if gz else "x.jsonl")
    p.write_bytes(gzip.compress(data) if gz and packed else data)  # else: a corrupt gzip
    try:
        for pl in iter_payloads(str(p), each_line=each, content_type=None, max_line=64):
            assert pl.body is None or len(pl.body) <= 300
    except KdiagError:
        pass
    with contextlib.suppress(KdiagError):
        list(iter_capture(str(p)))
