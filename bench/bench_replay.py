"""Batch replay versus one model call per payload, same SavedModel, same process, same run.

10,000 small payloads (1-3 rows of 5 floats for custom/export/1, or features+ids for
two_inputs/1) go through kdiag.replays.batching.run_batched, and a sample of them one call each; the
per-payload rate of the sample is the loop's throughput (extrapolated, not run 10,000 times
unless --sample is raised to --payloads). Prints measured numbers only (target ratio >= 10x).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kdiag.model.runner import load_runner  # noqa: E402
from kdiag.replays.batching import run_batched  # noqa: E402

MODELS = {
    "custom/export/1": lambda rng, n: {"args_0": rng.random((n, 5), dtype=np.float32)},
    "two_inputs/1": lambda rng, n: {"features": rng.random((n, 5), dtype=np.float32),
                                    "ids": rng.integers(0, 10, (n, 1)).astype(np.int64)},
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="custom/export/1")
    ap.add_argument("--payloads", type=int, default=10_000)
    ap.add_argument("--sample", type=int, default=500, help="payloads timed one call each")
    ap.add_argument("--max-batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each way; the best is reported")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    make = MODELS[args.model]
    items = [make(rng, int(n)) for n in rng.integers(1, 4, args.payloads)]
    rows = sum(next(iter(it.values())).shape[0] for it in items)

    t0 = time.perf_counter()
    runner = load_runner(ROOT / "fixtures" / "models" / args.model)
    first = time.perf_counter() - t0
    print(f"model {args.model}: TensorFlow import + load {first:.2f} s "
          f"(SavedModel load alone {runner.load_seconds * 1000:.0f} ms)")

    for it in items[:20]:  # warm both paths (graph pruning/executor caches per feed set)
        runner.run(it)
    run_batched(items[:512], runner.run, max_batch=args.max_batch)

    batched = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        results = run_batched(items, runner.run, max_batch=args.max_batch)
        batched.append(time.perf_counter() - t0)
    assert all(r.ok for r in results)
    best = min(batched)

    sample = items[: args.sample]
    loops = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        singles = [runner.run(it) for it in sample]
        loops.append(time.perf_counter() - t0)
    loop = min(loops)
    assert all(r.ok for r in singles)
    worst = max(float(np.max(np.abs(a.outputs[k] - b.outputs[k])))
                for a, b in zip(singles, results, strict=False) for k in a.outputs)

    batched_tp = len(items) / best
    loop_tp = len(sample) / loop
    print(f"payloads {len(items)} ({rows} rows), max_batch {args.max_batch}")
    print(f"batched:      {best:8.3f} s for {len(items)} payloads -> {batched_tp:10.0f} payloads/s "
          f"(best of {args.repeats}: {', '.join(f'{t:.3f}' for t in batched)} s)")
    print(f"one per call: {loop:8.3f} s for {len(sample)} payloads -> {loop_tp:10.0f} payloads/s "
          f"(best of {args.repeats}; extrapolated to {len(items)}: {len(items) / loop_tp:.2f} s)")
    print(f"ratio: batched replay is {batched_tp / loop_tp:.1f}x the per-payload loop "
          f"(target >= 10x); max |batched - single| over the sample: {worst:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
