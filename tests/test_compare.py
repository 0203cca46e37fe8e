"""kdiag.comparison: the batched comparison core."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kdiag.comparison import (
    Comparator,
    CompareConfig,
    OutputSet,
    compare_outputs,
    compare_sets,
)

RNG = np.random.default_rng(7)


def codes(r) -> list[str]:
    return sorted(f.code for f in r.findings)


def out(r, name):
    return next(o for o in r.outputs if o.name == name)


def kinds(r) -> dict[tuple[str, str | None], int]:
    return {(m.kind, m.output): m.count for m in r.mismatches}


def rounded(d: dict) -> dict:
    """Means are sums in a different order when chunked differently: compare to 6 digits."""
    for o in d["outputs"]:
        for key in ("abs", "rel"):
            o[key]["mean"] = float(f"{o[key]['mean']:.6g}")
    return d


def pair(n=1000, shape=(3,), dtype=np.float32):
    a = RNG.standard_normal((n, *shape)).astype(dtype)
    return a, a.copy()


# ---- values --------------------------------------------------------------------------------

def test_identical_sets_are_clean():
    a, b = pair()
    r = compare_outputs({"probs": a}, {"probs": b})
    assert r.ok and r.findings == [] and r.mismatches == []
    o = out(r, "probs")
    assert (o.compared, o.failed, o.abs_max, o.required_atol) == (1000, 0, 0.0, 0.0)
    assert o.histogram.zero == 1000


def test_injected_value_mismatch_is_found_with_its_id_and_element():
    a, b = pair()
    b[417, 2] += 0.25
    r = compare_outputs({"probs": a}, {"probs": b}, ids=[f"req-{i}" for i in range(1000)])
    assert codes(r) == ["KD701"]
    assert kinds(r) == {("value", "probs"): 1}
    o = out(r, "probs")
    w = o.worst[0]
    assert (w.id, w.failed, w.element) == ("req-417", True, [2])
    assert w.a == pytest.approx(float(a[417, 2])) and w.b == pytest.approx(float(b[417, 2]))
    assert o.abs_max == pytest.approx(0.25, rel=1e-5)


def test_required_tolerance_would_have_passed():
    a, b = pair(5000)
    b += (RNG.standard_normal(b.shape) * 1e-3).astype(np.float32)
    r = compare_outputs({"y": a}, {"y": b}, config=CompareConfig(atol=1e-5, rtol=0))
    o = out(r, "y")
    assert o.failed > 0
    again = compare_outputs({"y": a}, {"y": b},
                            config=CompareConfig(atol=o.required_atol * (1 + 1e-6), rtol=0))
    assert again.ok
    tighter = compare_outputs({"y": a}, {"y": b},
                              config=CompareConfig(atol=o.required_atol * 0.99, rtol=0))
    assert not tighter.ok
    again_rel = compare_outputs({"y": a}, {"y": b},
                                config=CompareConfig(atol=1e-5, rtol=o.required_rtol * 1.0001))
    assert again_rel.ok


def test_value_passes_within_atol_or_within_rtol():
    a = np.array([[1000.0], [0.0]], dtype=np.float64)
    b = np.array([[1000.5], [1e-6]], dtype=np.float64)
    # 0.5 off a value of 1000 is 5e-4 relative; 1e-6 off zero is within atol.
    assert compare_outputs({"x": a}, {"x": b}, config=CompareConfig(atol=1e-5, rtol=1e-3)).ok
    assert not compare_outputs({"x": a}, {"x": b}, config=CompareConfig(atol=1e-5, rtol=1e-4)).ok


def test_nan_on_both_sides_is_equal():
    a, b = pair()
    a[3, 1] = b[3, 1] = np.nan
    a[9, 0] = b[9, 0] = -np.inf
    assert compare_outputs({"x": a}, {"x": b}).ok


def test_nan_on_one_side_fails_whatever_the_tolerance():
    a, b = pair()
    b[12, 0] = np.nan
    r = compare_outputs({"x": a}, {"x": b}, config=CompareConfig(atol=1e30, rtol=1e30))
    assert codes(r) == ["KD704"]
    assert out(r, "x").nan_mismatches == 1
    assert out(r, "x").worst[0].id == "#12"


def test_opposite_or_one_sided_infinity_fails():
    a, b = pair()
    a[1, 0], b[1, 0] = np.inf, -np.inf
    b[2, 2] = np.inf
    r = compare_outputs({"x": a}, {"x": b})
    assert codes(r) == ["KD705"]
    assert out(r, "x").inf_mismatches == 2
    assert out(r, "x").failed == 0  # counted as inf, not as value failures


def test_non_finite_elements_do_not_poison_the_statistics():
    a, b = pair()
    a[0, 0] = b[0, 0] = np.nan
    b[5, 1] += 0.5
    o = out(compare_outputs({"x": a}, {"x": b}), "x")
    assert o.abs_max == pytest.approx(0.5, rel=1e-5)
    assert np.isfinite(o.abs_mean) and np.isfinite(o.rel_mean)


def test_float32_difference_that_overflows_is_still_measured():
    a = np.array([[3e38]], dtype=np.float32)
    b = np.array([[-3e38]], dtype=np.float32)
    o = out(compare_outputs({"x": a}, {"x": b}), "x")
    assert o.failed == 1 and o.abs_max == pytest.approx(6e38, rel=1e-6)


def test_int_and_bool_outputs_compare_exactly():
    a = np.arange(100, dtype=np.int64).reshape(50, 2)
    b = a.copy()
    b[7, 1] += 1
    flags = np.zeros((50, 4), dtype=bool)
    flags2 = flags.copy()
    flags2[3, 3] = True
    r = compare_outputs({"ids": a, "flags": flags}, {"ids": b, "flags": flags2})
    assert kinds(r) == {("value", "ids"): 1, ("value", "flags"): 1}


def test_big_integers_are_compared_without_float32_rounding():
    a = np.array([2**40, 2**40], dtype=np.int64)
    b = a + np.array([0, 1])
    assert kinds(compare_outputs({"i": a}, {"i": b}, config=CompareConfig(atol=0, rtol=0))) == \
        {("value", "i"): 1}


def test_strings_compare_for_equality():
    a = np.array(["cat", "dog", "eel"])
    b = np.array(["cat", "dog", "emu"])
    r = compare_outputs({"label": a}, {"label": b})
    o = out(r, "label")
    assert (o.failed, o.numeric, o.abs_max, o.histogram) == (1, False, None, None)
    assert o.worst[0].a == "eel" and o.worst[0].b == "emu"


# ---- tolerances and statistics -------------------------------------------------------------

def test_per_output_overrides_apply_by_name():
    a, b = pair()
    b += 1e-3
    cfg = CompareConfig(atol=1e-5, rtol=0, atol_by_output={"loose": 1e-2})
    r = compare_outputs({"loose": a, "tight": a}, {"loose": b, "tight": b}, config=cfg)
    assert out(r, "loose").passed and not out(r, "tight").passed
    assert out(r, "loose").atol == 1e-2


def test_override_naming_no_output_warns_with_a_suggestion():
    a, b = pair()
    r = compare_outputs({"logits": a}, {"logits": b},
                        config=CompareConfig(atol_by_output={"logit": 1e-3}))
    f = next(f for f in r.findings if f.code == "KD712")
    assert f.severity == "warning" and "Maybe you meant: logits?" in f.message


def test_mean_statistic_tolerates_one_outlier_element_that_elemwise_rejects():
    a = np.zeros((10, 100), dtype=np.float32)
    b = a.copy()
    b[4, 0] = 1e-3
    elem = compare_outputs({"x": a}, {"x": b}, config=CompareConfig(atol=1e-4, rtol=0))
    mean = compare_outputs({"x": a}, {"x": b},
                           config=CompareConfig(atol=1e-4, rtol=0, stat="mean"))
    assert not elem.ok and mean.ok
    assert out(mean, "x").required_atol == pytest.approx(1e-5)


@pytest.mark.parametrize("stat,q,expect_fail", [("max", 0.99, True), ("median", 0.5, False),
                                                 ("quantile", 0.95, False),
                                                 ("quantile", 1.0, True)])
def test_max_median_quantile_statistics(stat, q, expect_fail):
    a = np.zeros((4, 20), dtype=np.float64)
    b = a.copy()
    b[:, 0] = 1.0  # one element in 20 off in every record
    r = compare_outputs({"x": a}, {"x": b},
                        config=CompareConfig(atol=0.5, rtol=0, stat=stat, quantile=q))
    assert (out(r, "x").failed == 4) is expect_fail


def test_bad_config_is_rejected():
    with pytest.raises(ValueError):
        CompareConfig(stat="p99")
    with pytest.raises(ValueError):
        CompareConfig(atol=-1)


# ---- shape, dtype, pairing, alignment ------------------------------------------------------

def test_shape_mismatch_is_reported_and_not_compared():
    a = np.zeros((20, 3), dtype=np.float32)
    b = np.zeros((20, 1, 3), dtype=np.float32)
    r = compare_outputs({"x": a}, {"x": b})
    assert codes(r) == ["KD702", "KD713"]
    m = next(m for m in r.mismatches if m.kind == "shape")
    assert (m.count, m.detail) == (20, "A (3,) vs B (1, 3)")
    assert m.first_ids == ["#0", "#1", "#2", "#3", "#4"]


def test_dtype_mismatch_warns_and_values_are_still_compared():
    a = RNG.standard_normal((10, 2))
    r = compare_outputs({"x": a.astype(np.float32)}, {"x": a.astype(np.float64)},
                        config=CompareConfig(atol=1e-6))
    f = next(f for f in r.findings if f.code == "KD703")
    assert f.severity == "warning" and "float32 vs B float64" in f.message
    assert out(r, "x").compared == 10 and out(r, "x").failed == 0


def test_dtype_of_json_side_is_compared_by_kind_only():
    a = OutputSet(outputs={"x": np.zeros((4, 2), dtype=np.float32)}, source="a.npz")
    b = OutputSet(outputs={"x": np.zeros((4, 2), dtype=np.float64)}, source="b.json",
                  exact_dtypes=False)
    assert compare_sets(a, b).findings == []


def test_strings_against_numbers_is_an_error_and_not_compared():
    r = compare_outputs({"x": np.array(["1", "2"])}, {"x": np.array([1.0, 2.0])})
    f = next(f for f in r.findings if f.code == "KD703")
    assert f.severity == "error"
    assert out(r, "x").compared == 0


def test_ragged_records_are_grouped_by_shape():
    a = [np.arange(n, dtype=np.float64) for n in (1, 2, 2, 3, 1)]
    b = [x.copy() for x in a]
    b[3][2] += 1
    b[4] = np.zeros(2)
    r = compare_sets(OutputSet({"x": a}), OutputSet({"x": b}))
    assert kinds(r) == {("shape", "x"): 1, ("value", "x"): 1}
    o = out(r, "x")
    assert (o.records, o.compared, o.shape_a) == (5, 4, "mixed")
    assert o.worst[0].id == "#3" and o.worst[0].element == [2]


def test_records_that_carry_an_error_are_excluded_and_reported():
    a, b = pair(10)
    s_a = OutputSet({"x": a}, ids=[str(i) for i in range(10)])
    s_b = OutputSet({"x": b}, ids=[str(i) for i in range(10)], errors={4: "HTTP 424 ModelError"})
    r = compare_sets(s_a, s_b)
    m = next(m for m in r.mismatches if m.kind == "error")
    assert (m.count, m.first_ids) == (1, ["4"]) and "ModelError" in m.detail
    assert out(r, "x").compared == 9
    assert codes(r) == ["KD710"]


def test_output_in_one_set_only_is_an_error():
    a, b = pair(5)
    r = compare_outputs({"x": a, "extra": a}, {"x": b})
    f = next(f for f in r.findings if f.code == "KD709")
    assert "'extra' only in A" in f.message


def test_single_outputs_pair_by_position_with_an_info():
    a, b = pair(5)
    r = compare_outputs({"dense_1": a}, {"output_0": b})
    assert codes(r) == ["KD711"] and r.ok
    assert out(r, "dense_1").name_b == "output_0"


def test_unnamed_single_output_pairs_silently():
    a, b = pair(5)
    r = compare_sets(OutputSet({"output_0": a}), OutputSet({"predictions": b}, unnamed=True))
    assert r.findings == []


def test_output_map_pairs_renamed_outputs():
    a, b = pair(5)
    r = compare_outputs({"probs": a, "z": a}, {"output_0": b, "z": b},
                        config=CompareConfig(output_map={"probs": "output_0"}))
    assert r.findings == [] and {o.name_b for o in r.outputs} == {"output_0", "z"}


def test_records_align_by_id_whatever_their_order():
    a, _ = pair(100)
    perm = RNG.permutation(100)
    ids = np.array([f"r{i}" for i in range(100)], dtype=object)
    r = compare_sets(OutputSet({"x": a}, ids=ids), OutputSet({"x": a[perm]}, ids=ids[perm]))
    assert r.aligned_by == "id" and r.aligned == 100 and r.findings == []


def test_ids_on_one_side_only_are_reported_and_duplicates_warned():
    a, _ = pair(4)
    s_a = OutputSet({"x": a}, ids=["a", "b", "c", "d"])
    s_b = OutputSet({"x": a[[0, 1, 1, 2]]}, ids=["a", "b", "b", "z"])
    r = compare_sets(s_a, s_b)
    k = kinds(r)
    assert k[("missing-in-b", None)] == 2 and k[("missing-in-a", None)] == 1
    assert k[("duplicate-id", None)] == 1
    assert set(codes(r)) == {"KD707", "KD708"}
    assert r.aligned == 2


def test_missing_ids_can_be_ignored_for_a_subset_side():
    a, _ = pair(4)
    r = compare_sets(OutputSet({"x": a[:2]}, ids=["a", "b"]),
                     OutputSet({"x": a}, ids=["a", "b", "c", "d"]), ignore_missing={"a"})
    assert r.findings == []


def test_count_mismatch_by_order_is_a_finding_and_the_rest_is_compared():
    a, _ = pair(10)
    r = compare_sets(OutputSet({"x": a}), OutputSet({"x": a[:7]}))
    m = next(m for m in r.mismatches if m.kind == "count")
    assert m.count == 3 and m.first_ids == ["#7", "#8", "#9"]
    assert codes(r) == ["KD706"] and out(r, "x").compared == 7


def test_one_side_with_ids_aligns_by_order_with_an_info():
    a, _ = pair(3)
    r = compare_sets(OutputSet({"x": a}, ids=["p", "q", "r"]), OutputSet({"x": a}))
    assert r.aligned_by == "order" and codes(r) == ["KD714"]


def test_nothing_in_common_is_an_error():
    r = compare_sets(OutputSet({"x": np.zeros(0)}), OutputSet({"x": np.zeros(0)}))
    assert "KD713" in codes(r)


# ---- reporting -----------------------------------------------------------------------------

def test_worst_records_list_failing_records_largest_first():
    a, b = pair(1000)
    for i, delta in ((10, 0.1), (20, 0.3), (30, 0.2)):
        b[i, 0] += delta
    w = out(compare_outputs({"x": a}, {"x": b}), "x").worst
    assert [x.id for x in w] == ["#20", "#30", "#10"] and all(x.failed for x in w)


def test_histogram_counts_every_compared_record():
    a, b = pair(5000)
    b += (RNG.standard_normal(b.shape) * 1e-4).astype(np.float32)
    b[:100] = a[:100]
    o = out(compare_outputs({"x": a}, {"x": b}), "x")
    h = o.histogram
    assert h.zero == 100
    assert h.zero + sum(c for _, _, c in h.bins) + h.nonfinite == 5000
    assert all(hi == 2 * lo for lo, hi, _ in h.bins if lo > 0)
    per_record = np.abs(a.astype(np.float64) - b).max(axis=1)
    for lo, hi, c in h.bins:
        assert c == np.count_nonzero((per_record >= lo) & (per_record < hi))


def test_result_does_not_depend_on_threads_or_chunk_size():
    a, b = pair(20000, (5,))
    b += (RNG.standard_normal(b.shape) * 3e-5).astype(np.float32)
    r1 = compare_outputs({"x": a}, {"x": b}, config=CompareConfig(workers=1, chunk_elements=999))
    r2 = compare_outputs({"x": a}, {"x": b}, config=CompareConfig(workers=2))
    assert rounded(r1.to_dict()) == rounded(r2.to_dict())


def test_streaming_blocks_give_the_same_result_as_one_call():
    a, b = pair(3000)
    b[[5, 1500, 2999], 1] += 1
    one = compare_outputs({"x": a}, {"x": b})
    cmp = Comparator()
    for s in range(0, 3000, 700):
        cmp.add({"x": a[s:s + 700]}, {"x": b[s:s + 700]})
    streamed = cmp.result()
    assert rounded(streamed.to_dict())["outputs"] == rounded(one.to_dict())["outputs"]
    assert [m.first_ids for m in streamed.mismatches] == [["#5", "#1500", "#2999"]]


def test_json_of_the_result_has_no_bare_nan():
    import json

    a, b = pair(10)
    b[0, 0] = np.nan
    doc = compare_outputs({"x": a}, {"x": b}).to_dict()
    text = json.dumps(doc, allow_nan=False)
    assert '"NaN"' in text


def test_every_finding_code_is_documented():
    from kdiag.diagnosis.codes import CODES

    assert all(c in CODES for c in [f"KD7{i:02d}" for i in range(1, 16)])


def test_a_million_records_of_ten_outputs_compare_in_well_under_a_second():
    n = 1_000_000
    a = {f"o{i}": RNG.standard_normal((n,), dtype=np.float32) for i in range(10)}
    b = {k: v.copy() for k, v in a.items()}
    b["o3"][777_777] += 1
    compare_outputs(a, b)  # warm-up
    t0 = time.perf_counter()
    r = compare_outputs(a, b)
    elapsed = time.perf_counter() - t0
    assert kinds(r) == {("value", "o3"): 1}
    assert elapsed < 1.0, elapsed


# ---- properties ----------------------------------------------------------------------------

float_dtypes = st.sampled_from([np.float16, np.float32, np.float64])
record_shapes = hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=4)


@st.composite
def output_sets(draw):
    n = draw(st.integers(1, 40))
    outs = {}
    for i in range(draw(st.integers(1, 3))):
        dtype = draw(float_dtypes)
        shape = (n, *draw(record_shapes))
        elements = st.floats(allow_nan=True, allow_infinity=True, width=np.dtype(dtype).itemsize * 8)
        outs[f"o{i}"] = draw(hnp.arrays(dtype, shape, elements=elements))
    return outs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sets=output_sets(), stat=st.sampled_from(["elemwise", "max", "mean", "median", "quantile"]))
def test_property_a_set_compared_with_itself_is_clean(sets, stat):
    r = compare_outputs(sets, {k: v.copy() for k, v in sets.items()},
                        config=CompareConfig(atol=0, rtol=0, stat=stat, chunk_elements=17))
    assert r.findings == []
    assert all(o.failed == 0 and o.nan_mismatches == 0 and o.inf_mismatches == 0
               for o in r.outputs)


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 50), k=st.integers(1, 9),
       dtype=st.sampled_from([np.float32, np.float64]),
       atol=st.floats(0, 1), rtol=st.floats(0, 1),
       where=st.data(), factor=st.floats(1.01, 1e3),
       stat=st.sampled_from(["elemwise", "max"]))
def test_property_a_perturbation_beyond_tolerance_is_always_found(n, k, dtype, atol, rtol, where,
                                                                   factor, stat):
    rng = np.random.default_rng(n * 31 + k)
    a = (rng.standard_normal((n, k)) * 10).astype(dtype)
    b = a.copy()
    i = where.draw(st.integers(0, n - 1))
    j = where.draw(st.integers(0, k - 1))
    # Beyond both tolerances, with margin for the rounding of the perturbed value.
    delta = max(atol, rtol * abs(float(a[i, j])), 1e-3) * factor * 1.01 + 1e-3
    b[i, j] = dtype(float(a[i, j]) + delta)
    r = compare_outputs({"x": a}, {"x": b},
                        config=CompareConfig(atol=atol, rtol=rtol, stat=stat, chunk_elements=64))
    o = out(r, "x")
    assert o.failed == 1
    assert r.mismatches[0].first_ids == [f"#{i}"]
    assert o.worst[0].id == f"#{i}" and o.worst[0].element == [j]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), k=st.integers(1, 6), atol=st.sampled_from([0, 1e-6, 1e-3, 0.1]),
       rtol=st.sampled_from([0, 1e-6, 1e-3, 0.1]), seed=st.integers(0, 2**16))
def test_property_failing_records_match_a_per_record_reference(n, k, atol, rtol, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, k))
    b = a + rng.standard_normal((n, k)) * rng.choice([0, 1e-7, 1e-4, 1e-2], size=(n, 1))
    a[rng.random((n, k)) < 0.05] = 0.0
    r = compare_outputs({"x": a}, {"x": b},
                        config=CompareConfig(atol=atol, rtol=rtol, first_ids=n, chunk_elements=50))
    expected = []
    for i in range(n):
        d = np.abs(a[i] - b[i])
        rel = d / np.maximum(np.abs(a[i]), np.finfo(np.float64).eps)
        if np.any((d > atol) & (rel > rtol)):
            expected.append(f"#{i}")
    got = next((m.first_ids for m in r.mismatches if m.kind == "value"), [])
    assert got == expected
