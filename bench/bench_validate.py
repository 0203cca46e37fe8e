"""kdiag validate's throughput against bare JSON parsing of the same bodies, in one run.

10,000 request bodies of 4x784 float32 values ({"instances": [...]}, as an MNIST client sends)
are validated through every offline stage (wire, container, TF Serving's parse, signature).
The baseline is the fastest JSON parser available (orjson.loads) on the same bytes. Target:
kdiag within 2x of bare parsing. Both are timed several times; the best run of each counts
(the least disturbed by other work on the machine).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import orjson

from kdiag.diagnosis.validation import ValidateOptions, validate
from kdiag.model.signature import Signature, TensorSpec
from kdiag.path.container import Request


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bodies", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sig = [Signature("serving_default", "tensorflow/serving/predict",
                     {"x": TensorSpec("float32", (-1, 784))},
                     {"y": TensorSpec("float32", (-1, 10))})]
    rng = np.random.default_rng(0)
    bodies = [orjson.dumps({"instances": rng.random((4, 784)).astype(np.float32).tolist()})
              for _ in range(args.bodies)]
    size = sum(map(len, bodies))
    opts = ValidateOptions()

    def parse_all() -> None:
        for b in bodies:
            orjson.loads(b)

    def validate_all() -> None:
        for b in bodies:
            res = validate(Request(b, "application/json"), sig, opts)
            if not res.accepted:
                raise SystemExit(f"benchmark body rejected: {res.findings[0].message}")

    def best(fn) -> float:
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    base = best(parse_all)
    ours = best(validate_all)
    n = args.bodies
    print(f"{n} bodies of 4x784 float32, {size / 1e6:.1f} MB in all")
    print(f"orjson.loads (baseline)   {n / base:9.0f} bodies/s  {size / base / 1e6:7.1f} MB/s")
    print(f"kdiag validate            {n / ours:9.0f} bodies/s  {size / ours / 1e6:7.1f} MB/s")
    print(f"ratio: kdiag takes {ours / base:.2f}x the time of bare parsing (target <= 2x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
