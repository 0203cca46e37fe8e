"""Every payload kdiag sample generates is one the endpoint accepts (validate agrees)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdiag.diagnosis.validation import ValidateOptions, validate
from kdiag.errors import KdiagError
from kdiag.model.target import load_signatures
from kdiag.path.container import Request
from kdiag.payloads.sample import SampleOptions, generate
from tests.conftest import MODELS

FIXTURES = ["custom/export/1", "custom/tfsave/1", "two_inputs/1", "image/1", "image_bytes/1",
            "tokens/1", "scalar/1", "multi_sig/1", "versions/my_model/2"]
SIGS = {rel: load_signatures(str(MODELS / rel)) for rel in FIXTURES}
CONTENT_TYPES = ["application/json", "application/jsonlines", "text/csv"]


@settings(max_examples=60, deadline=None)
@given(rel=st.sampled_from(FIXTURES), ct=st.sampled_from(CONTENT_TYPES),
       batch=st.integers(1, 4), seed=st.integers(0, 2**16), columnar=st.booleans(),
       version=st.sampled_from([None, "2.1", "2.13", "2.20"]))
def test_every_generated_payload_is_accepted(rel, ct, batch, seed, columnar, version):
    sigs = SIGS[rel]
    opts = SampleOptions(batch=batch, seed=seed, content_type=ct,
                         columnar=columnar and ct == "application/json")
    try:
        sample = generate(sigs[0], opts)
    except KdiagError:
        return  # the generator refuses combinations the container cannot carry (e.g. CSV)
    res = validate(Request(sample.body.encode(), sample.content_type), sigs,
                   ValidateOptions(framework_version=version))
    assert res.accepted, (rel, ct, version, [f.message for f in res.findings], sample.body[:200])


@pytest.mark.parametrize("rel", FIXTURES)
def test_inspect_example_request_is_accepted(rel):
    from kdiag.model.inspection import inspect_model

    r = inspect_model(MODELS / rel)
    res = validate(Request(r.example_request.encode(), "application/json"), SIGS[rel])
    assert res.accepted, [f.message for f in res.findings]
