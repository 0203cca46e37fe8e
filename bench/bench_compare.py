"""kdiag's comparison core versus the usual ways of comparing model outputs, in one run.

Data: 1,000,000 records x 10 float32 outputs of mixed per-record shapes (a scalar, vectors of
1..16 values, one 2x4 matrix: 57 floats per record, 228 MB per side), B a copy of A with a few
injected mismatches (values beyond tolerance, NaN on one side, an infinity on one side).

Compared, all measured in this run (nothing hard-coded):
- kdiag.comparison.compare_outputs on the whole set (best of --runs);
- a per-record loop of numpy.testing.assert_allclose, timed on the first --sample records and
  extrapolated to the whole set (it also checks that both find the same failing records there);
- DeepDiff (math_epsilon) on --deepdiff-sample records, extrapolated, when deepdiff is installed;
- a plain copy of the same arrays: np.copyto into preallocated arrays (the memory-bandwidth bound)
  and ndarray.copy() (which also pays for fresh pages).
Targets: >= 300x faster than the per-record loop; within 4x of the plain copy.
Also printed, for information: the same comparison when every element of B differs slightly
from A (within tolerance), which takes the kernel's full path instead of the exact-equality one.

Run: python bench/bench_compare.py  (a minute or so on 2 cores)
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from kdiag.comparison import CompareConfig, compare_outputs

SHAPES = [(), (1,), (2,), (4,), (4,), (8,), (10,), (16,), (2, 4), (3,)]
ATOL = RTOL = 1e-5


def best_of(fn, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def make_data(n: int, sample: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = {f"out{i}": rng.standard_normal((n, *s), dtype=np.float32) for i, s in enumerate(SHAPES)}
    b = {k: v.copy() for k, v in a.items()}
    injected: dict[str, set[int]] = {}

    def hit(name: str, row: int, value: float | None = None, delta: float = 0.5) -> None:
        flat = b[name].reshape(n, -1)
        col = int(rng.integers(flat.shape[1]))
        flat[row, col] = value if value is not None else flat[row, col] + delta
        injected.setdefault(name, set()).add(row)

    # Some inside the loop's sample (to check agreement), most anywhere.
    rows_in_sample = rng.choice(sample, size=4, replace=False)
    rows_anywhere = rng.choice(n, size=8, replace=False)
    names = list(a)
    for j, row in enumerate([*rows_in_sample, *rows_anywhere]):
        hit(names[j % len(names)], int(row))
    hit("out5", int(rows_anywhere[0]), value=float("nan"))
    hit("out7", int(rows_in_sample[0]), value=float("inf"))
    return a, b, injected


def loop_assert_allclose(a, b, rows: int) -> tuple[float, set[tuple[str, int]]]:
    failed = set()
    names = list(a)
    t0 = time.perf_counter()
    for i in range(rows):
        for name in names:
            try:
                np.testing.assert_allclose(b[name][i], a[name][i], rtol=RTOL, atol=ATOL)
            except AssertionError:
                failed.add((name, i))
    return time.perf_counter() - t0, failed


def deepdiff_time(a, b, rows: int) -> float | None:
    try:
        from deepdiff import DeepDiff
    except ImportError:
        return None
    ra = [{k: np.asarray(v[i]).tolist() for k, v in a.items()} for i in range(rows)]
    rb = [{k: np.asarray(v[i]).tolist() for k, v in b.items()} for i in range(rows)]
    t0 = time.perf_counter()
    DeepDiff(ra, rb, math_epsilon=ATOL)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--sample", type=int, default=20_000,
                    help="records run through the assert_allclose loop (then extrapolated)")
    ap.add_argument("--deepdiff-sample", type=int, default=2_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    n = args.records
    sample = min(args.sample, n)

    a, b, injected = make_data(n, sample)
    floats = sum(int(np.prod(s, dtype=np.int64)) for s in SHAPES)
    mb = sum(v.nbytes for v in a.values()) / 1e6
    print(f"data: {n:,} records x {len(SHAPES)} float32 outputs ({floats} floats/record, "
          f"{mb:.0f} MB per side), {sum(map(len, injected.values()))} injected mismatches")
    cfg = CompareConfig(atol=ATOL, rtol=RTOL, first_ids=1000)

    compare_outputs(a, b, config=cfg)  # warm-up: page in both sides
    t_kdiag = best_of(lambda: compare_outputs(a, b, config=cfg), args.runs)
    r = compare_outputs(a, b, config=cfg)
    found = {(m.output, int(i[1:])) for m in r.mismatches if m.kind in ("value", "nan", "inf")
             for i in m.first_ids}
    expected = {(k, i) for k, rows in injected.items() for i in rows}
    assert found == expected, (sorted(found ^ expected))[:10]
    print(f"kdiag core:                 {t_kdiag * 1000:9.1f} ms  "
          f"({n / t_kdiag / 1e6:.1f} M records/s), found all {len(found)} injected mismatches")

    dst = [np.empty_like(v) for v in (*a.values(), *b.values())]

    def copyto() -> None:
        for d, s in zip(dst, (*a.values(), *b.values()), strict=True):
            np.copyto(d, s)

    t_copyto = best_of(copyto, args.runs)
    t_copy = best_of(lambda: [v.copy() for v in (*a.values(), *b.values())], args.runs)
    print(f"plain copy (np.copyto):     {t_copyto * 1000:9.1f} ms")
    print(f"plain copy (ndarray.copy):  {t_copy * 1000:9.1f} ms")

    t_loop_s, loop_failed = loop_assert_allclose(a, b, sample)
    t_loop = t_loop_s * n / sample
    in_sample = {(k, i) for k, i in expected if i < sample}
    agree = loop_failed == in_sample
    print(f"assert_allclose loop:       {t_loop:9.1f} s   (measured {t_loop_s:.2f} s on "
          f"{sample:,} records, extrapolated; same failing records: {'yes' if agree else 'NO'})")

    t_dd_s = deepdiff_time(a, b, min(args.deepdiff_sample, n))
    if t_dd_s is None:
        print("DeepDiff:                   not installed (pip install deepdiff), skipped")
    else:
        t_dd = t_dd_s * n / min(args.deepdiff_sample, n)
        print(f"DeepDiff (math_epsilon):    {t_dd:9.1f} s   (measured {t_dd_s:.2f} s on "
              f"{min(args.deepdiff_sample, n):,} records, extrapolated)")

    rng = np.random.default_rng(1)
    noisy = {k: v * (1 + (rng.standard_normal(v.shape, dtype=np.float32) * 1e-7))
             for k, v in b.items()}
    compare_outputs(a, noisy, config=cfg)
    t_noisy = best_of(lambda: compare_outputs(a, noisy, config=cfg), args.runs)
    print(f"kdiag core, every element slightly off (full path): {t_noisy * 1000:.1f} ms "
          f"({t_noisy / t_copyto:.1f}x np.copyto)")

    print("ratios:")
    speedup = t_loop / t_kdiag
    print(f"  kdiag vs assert_allclose loop: {speedup:,.0f}x faster "
          f"(target >= 300x: {'met' if speedup >= 300 else 'MISSED'})")
    if t_dd_s is not None:
        print(f"  kdiag vs DeepDiff:             {t_dd / t_kdiag:,.0f}x faster")
    for label, t in (("np.copyto", t_copyto), ("ndarray.copy", t_copy)):
        ratio = t_kdiag / t
        print(f"  kdiag / plain copy ({label}): {ratio:.2f}x "
              f"(target <= 4x: {'met' if ratio <= 4 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
