"""validate's shape-only parse agrees with the full parse on every body."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kdiag.model.signature import Signature, TensorSpec
from kdiag.path.tfserving import ShapeOnly, parse_predict_request

SIGS = [Signature("serving_default", "tensorflow/serving/predict",
                  {"x": TensorSpec("float32", None)}, {"y": TensorSpec("float32", (-1,))})]
numbers = st.one_of(st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False),
                    st.floats(allow_nan=False, allow_infinity=False, width=64))
nested = st.recursive(numbers, lambda inner: st.lists(inner, min_size=0, max_size=4),
                      max_leaves=40)


def rectangular(draw_shape, fill=1.5):
    return np.full(draw_shape, fill).tolist()


@settings(max_examples=400, deadline=None)
@given(value=nested, fmt=st.sampled_from(["instances", "inputs"]),
       version=st.sampled_from(["2.5", "2.13", "2.20"]))
def test_lazy_and_eager_agree_on_any_nesting(value, fmt, version):
    body = json.dumps({fmt: value}).encode()
    eager = parse_predict_request(body, SIGS, tfs_version=version)
    lazy = parse_predict_request(body, SIGS, tfs_version=version, lazy=True)
    assert (lazy.ok, lazy.status, lazy.message) == (eager.ok, eager.status, eager.message)
    if eager.ok:
        a, b = lazy.tensors["x"], eager.tensors["x"]
        assert tuple(a.shape) == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), b)


@settings(max_examples=200, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4),
       fmt=st.sampled_from(["instances", "inputs"]))
def test_rectangular_bodies_take_the_shape_only_path(shape, fmt):
    body = json.dumps({fmt: rectangular(shape)}).encode()
    res = parse_predict_request(body, SIGS, lazy=True)
    assert res.ok and isinstance(res.tensors["x"], ShapeOnly)
    assert res.tensors["x"].shape == tuple(shape)


def test_ragged_rows_with_equal_totals_are_not_taken_for_rectangular():
    body = b'{"instances": [[1, 2, 3], [4, 5], [6, 7, 8, 9]]}'
    res = parse_predict_request(body, SIGS, lazy=True)
    assert not res.ok and res.status == 400


def test_a_list_hidden_among_numbers_is_caught():
    body = b'{"instances": [[1, 2], [3, [4]]]}'
    assert not parse_predict_request(body, SIGS, lazy=True).ok
