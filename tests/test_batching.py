"""kdiag.replays.batching.run_batched: stacked replay gives each payload what its own call gives."""

from __future__ import annotations

import numpy as np
import pytest

from kdiag.model.runner import RunResult
from kdiag.replays.batching import run_batched
from tests.conftest import MODELS


class AffineModel:
    """A real, tiny model in numpy (y = 2x + 1 per row, plus a row sum) that records its calls.

    Rows holding a negative value fail the way a graph op would, naming the row in the batch.
    """

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, tensors: dict[str, np.ndarray]) -> RunResult:
        x = tensors["x"]
        self.calls.append(x.shape[0] if x.ndim else None)
        if x.ndim == 0:
            return RunResult(ok=True, outputs={"y": x * 2 + 1})
        if x.dtype.kind == "f" and (bad := np.argwhere(x < 0)).size:
            return RunResult(ok=False, code="INVALID_ARGUMENT",
                             message=f"negative value at row {int(bad[0][0])}")
        return RunResult(ok=True, outputs={"y": x * 2 + 1,
                                           "s": x.sum(axis=tuple(range(1, x.ndim)))})


def payloads(n: int, cols: int = 5, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.random((int(rng.integers(1, 4)), cols), dtype=np.float32)} for _ in range(n)]


def assert_same(a: RunResult, b: RunResult, atol: float = 0.0) -> None:
    assert (a.ok, a.code, a.message) == (b.ok, b.code, b.message)
    assert set(a.outputs) == set(b.outputs)
    for k in a.outputs:
        np.testing.assert_allclose(a.outputs[k], b.outputs[k], rtol=0, atol=atol)
        assert a.outputs[k].dtype == b.outputs[k].dtype


def test_batched_outputs_equal_individual_calls_in_order():
    items = payloads(1000)
    model = AffineModel()
    got = run_batched(items, model, max_batch=64)
    assert len(got) == len(items)
    for item, res in zip(items, got, strict=True):
        assert_same(res, AffineModel()(item))
    assert len(model.calls) < 100 and max(model.calls) <= 64


def test_max_batch_bounds_rows_per_call_and_big_payload_runs_alone():
    items = payloads(50) + [{"x": np.ones((300, 5), np.float32)}] + payloads(50, seed=1)
    model = AffineModel()
    got = run_batched(items, model, max_batch=32)
    assert 300 in model.calls
    assert all(c <= 32 for c in model.calls if c != 300)
    assert got[50].outputs["y"].shape == (300, 5)


def test_mixed_shapes_run_in_their_own_groups_and_keep_order():
    a, b = payloads(20, cols=5), payloads(20, cols=3, seed=2)
    items = [x for pair in zip(a, b, strict=True) for x in pair]  # interleaved
    model = AffineModel()
    got = run_batched(items, model)
    groups = {it["x"].shape for it in items}  # (rows, cols): 1-3 rows of 5 or 3 columns
    assert len(model.calls) == len(groups)  # one stacked call per shape group
    for item, res in zip(items, got, strict=True):
        assert_same(res, AffineModel()(item))


def test_dtypes_that_differ_are_not_stacked_together():
    items = [{"x": np.ones((1, 2), np.float32)}, {"x": np.ones((1, 2), np.float64)}]
    model = AffineModel()
    got = run_batched(items, model)
    assert model.calls == [1, 1]
    assert got[0].outputs["y"].dtype == np.float32 and got[1].outputs["y"].dtype == np.float64


def test_failing_payload_gets_its_own_error_and_the_rest_still_batch():
    items = payloads(200)
    items[137] = {"x": -np.ones((2, 5), np.float32)}
    model = AffineModel()
    got = run_batched(items, model, max_batch=1024)
    assert [i for i, r in enumerate(got) if not r.ok] == [137]
    # The individual call's message (row 0), not the stacked call's (row ~270).
    assert got[137].message == "negative value at row 0"
    for i in (0, 136, 138, 199):
        assert_same(got[i], AffineModel()(items[i]))
    assert len(model.calls) < 30  # bisected, not 200 single calls


def test_every_payload_failing_still_ends_with_individual_errors():
    items = [{"x": -np.ones((1, 5), np.float32)} for _ in range(40)]
    got = run_batched(items, AffineModel())
    assert all(r.message == "negative value at row 0" for r in got)


def test_payloads_that_cannot_be_stacked_run_alone():
    items = [
        {"x": np.array(3.0, np.float32)},                        # scalar: no batch axis
        {"x": np.ones((2, 5), np.float32), "z": np.ones((3, 5), np.float32)},  # rows disagree
        {"x": np.ones((0, 5), np.float32)},                      # empty batch
        {"x": np.ones((1, 5), np.float32)},
        {"x": np.ones((1, 5), np.float32)},
    ]
    model = AffineModel()
    got = run_batched(items, model)
    assert model.calls == [None, 2, 0, 2]  # the three loners one by one, then the stacked pair
    assert got[0].outputs["y"] == np.float32(7.0)
    assert got[3].outputs["y"].shape == (1, 5) and got[4].ok


def test_outputs_without_a_batch_axis_fall_back_to_individual_calls():
    def total(tensors):
        return RunResult(ok=True, outputs={"total": np.asarray(tensors["x"].sum())})

    items = payloads(10)
    got = run_batched(items, total)
    for item, res in zip(items, got, strict=True):
        np.testing.assert_allclose(res.outputs["total"], item["x"].sum())


def test_string_payloads_stack_as_object_arrays():
    def lengths(tensors):
        b = tensors["x"]
        return RunResult(ok=True, outputs={"n": np.array([len(v) for v in b], np.int64)})

    items = [{"x": np.array([b"a" * i], dtype=object)} for i in range(1, 6)]
    got = run_batched(items, lengths)
    assert [int(r.outputs["n"][0]) for r in got] == [1, 2, 3, 4, 5]


def test_empty_input_and_bad_max_batch():
    assert run_batched([], AffineModel()) == []
    with pytest.raises(ValueError):
        run_batched(payloads(2), AffineModel(), max_batch=0)


def test_seconds_of_a_stacked_call_are_shared_out():
    items = [{"x": np.ones((2, 5), np.float32)} for _ in range(30)]
    got = run_batched(items, lambda t: RunResult(ok=True, outputs={"y": t["x"]}, seconds=6.0))
    assert [r.seconds for r in got] == pytest.approx([0.2] * 30)


# ---------------------------------------------------------------------------------------------
# With the real runner
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runner_mod():
    from kdiag.model import runner

    runner._tf()
    return runner


@pytest.mark.tf
def test_savedmodel_batched_equals_individual_runs(runner_mod):
    runner = runner_mod.load_runner(MODELS / "custom" / "export" / "1")
    items = [{"args_0": p["x"]} for p in payloads(300)]
    items[5] = {"args_0": np.ones((1, 3), np.float32)}  # wrong inner dimension: its own group
    got = run_batched(items, runner.run, max_batch=64)
    for item, res in zip(items, got, strict=True):
        assert_same(res, runner.run(item), atol=1e-6)
    assert got[5].message == "Matrix size-incompatible: In[0]: [1,3], In[1]: [5,1]"


@pytest.mark.tf
def test_multi_input_multi_output_model_batches(runner_mod):
    runner = runner_mod.load_runner(MODELS / "two_inputs" / "1")
    rng = np.random.default_rng(3)
    items = [{"features": rng.random((n, 5), dtype=np.float32),
              "ids": rng.integers(0, 10, (n, 1)).astype(np.int64)}
             for n in rng.integers(1, 4, 200)]
    got = run_batched(items, runner.run)
    for item, res in zip(items, got, strict=True):
        assert set(res.outputs) == {"probs", "score"}
        assert_same(res, runner.run(item), atol=1e-6)


@pytest.mark.tf
def test_graph_value_error_is_isolated_to_its_payload(runner_mod):
    runner = runner_mod.load_runner(MODELS / "tokens" / "1")
    rng = np.random.default_rng(4)
    items = [{"tokens": rng.integers(0, 50, (1, 10)).astype(np.int32)} for _ in range(100)]
    items[42] = {"tokens": np.full((1, 10), 5000, np.int32)}
    got = run_batched(items, runner.run)
    assert [i for i, r in enumerate(got) if not r.ok] == [42]
    # The stacked call named row 42; the payload's own call names row 0, as its request would.
    assert got[42].message == "indices[0,0] = 5000 is not in [0, 50)"
    for i in (0, 41, 43, 99):
        assert_same(got[i], runner.run(items[i]), atol=1e-6)
