"""Capture replay: in-process versus --engine ray with 1 and 2 workers, same capture, same model,
same run. Prints records per second for each and the ratios to in-process.

The capture is generated (tests/_capture_gen.py: custom/export/1, hour partitions, ~1% troubled
records) into a temporary folder. Ray is started once, before the timed runs (its start-up is
printed apart); each Ray run includes starting its actors and loading the model in them, the
in-process run includes loading the model, since a user pays both. Needs `pip install 'kdiag[ray]'`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kdiag.comparison import CompareConfig  # noqa: E402
from tests import _capture_gen as gen  # noqa: E402

MODEL = ROOT / "fixtures" / "models" / "custom" / "export" / "1"
WINDOW = {"since": datetime.fromisoformat(gen.SINCE), "until": datetime.fromisoformat(gen.UNTIL)}


def in_process(path: str, config: CompareConfig) -> tuple[float, int]:
    from kdiag.path.local_endpoint import LocalEndpoint
    from kdiag.replays.capture_replay import replay_capture

    t0 = time.perf_counter()
    with LocalEndpoint(MODEL) as endpoint:
        result = replay_capture(endpoint, path, config=config, **WINDOW)
    return time.perf_counter() - t0, result.records


def on_ray(path: str, config: CompareConfig, workers: int) -> tuple[float, int]:
    from kdiag.replays.ray_engine import EndpointSpec, RayOptions, replay_capture_on_ray

    t0 = time.perf_counter()
    r = replay_capture_on_ray(EndpointSpec(str(MODEL)), path, config=config,
                              opts=RayOptions(workers=workers), **WINDOW)
    return time.perf_counter() - t0, r.result.records


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=40_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    try:
        import ray
    except ImportError:
        print("skipped: Ray is not installed (pip install 'kdiag[ray]')")
        return 0
    from kdiag.replays.ray_engine import local_worker_env

    config = CompareConfig(atol=1e-4, rtol=1e-4)
    with tempfile.TemporaryDirectory() as tmp:
        gen.write_capture(Path(tmp), args.records)
        path = str(Path(tmp) / "ep")
        print(f"capture: {args.records} lines in 10 files (--since/--until prune 2 more), model custom/export/1, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        t0 = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR, runtime_env={"env_vars": local_worker_env()})
        print(f"ray.init (local): {time.perf_counter() - t0:.1f} s, not counted below")
        try:
            base_s, n = in_process(path, config)
            base = n / base_s
            print(f"in-process:     {base_s:7.1f} s  {base:8.0f} records/s  1.00x")
            for w in args.workers:
                s, m = on_ray(path, config, w)
                assert m == n, (m, n)
                print(f"ray, {w} worker{'s' if w > 1 else ' '}: {s:7.1f} s  {m / s:8.0f} "
                      f"records/s  {m / s / base:.2f}x")
        finally:
            ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
