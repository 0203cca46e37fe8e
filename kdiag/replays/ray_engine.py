"""`--engine ray`: the in-process pipelines as Ray Data jobs, for captures one machine cannot
replay in time. The in-process engine stays the default and needs no Ray.

Only the scheduling differs. Capture replay: capture files are listed on the driver through
pyarrow's filesystems (hour partitions outside --since/--until pruned first), read and parsed in
`map_batches` tasks with the in-process reader's rules (capture.records_in_file), and replayed
in an actor pool whose actors each load the model once (a LocalEndpoint) and run
capture_replay.replay_block. The driver consumes the results in file + line order (Ray Data's
preserve_order) and feeds the same Comparator in the same blocks as the in-process path, so the
summary is bit for bit the same; the per-record rows (capture_results.record_rows) go to Parquet.

Folder/JSON-lines `validate` and `replay`: the payloads are read on the driver and validated or
replayed in the actor pool with the in-process functions, results returned in input order.

Faults: an actor that dies is restarted and its batch retried by Ray (a bounded number of
times); a batch whose model run raises is replayed record by record, and a record that still
raises becomes that record's local error; a capture file that cannot be read is reported by name
and the others go on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from kdiag.comparison import Comparator, CompareConfig
from kdiag.errors import KdiagError
from kdiag.replays.capture import CaptureFile, CaptureStats, records_in_file
from kdiag.replays.capture_replay import CHUNK, CaptureReplayResult, ReplayedBlock, add_block
from kdiag.replays.capture_results import parquet_results
from kdiag.replays.capture_source import CaptureSource, list_files, read_lines
from kdiag.replays.replay import BLOCK
from kdiag.safe_io import MAX_LINE_BYTES

RAY_MISSING = ("--engine ray needs Ray Data and pyarrow, which are not installed. Install them "
               "with: pip install 'kdiag[ray]'")
RESTARTS = 3  # a dead actor is restarted, and its batch retried, at most this many times
_FILE_ROW_LINE = 1 << 62  # a file's summary row sorts after its records


def require_ray() -> Any:
    """Import Ray (only --engine ray does); a clear message and exit 2 when it is missing."""
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise KdiagError(RAY_MISSING) from e
    return ray


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # ray://host:10001; None: RAY_ADDRESS, else a local Ray
    workers: int = 1  # actors in the pool, each with its own copy of the model


@dataclass(frozen=True)
class DriverSettings:
    """Process-wide settings the command's options made on the driver (--cap, --trust-model),
    applied again in every Ray worker: they do not travel to other processes by themselves."""

    limits: Any
    trusted: bool

    @classmethod
    def current(cls) -> DriverSettings:
        from kdiag.limits import active_limits
        from kdiag.model.graph_trust import trusted

        return cls(active_limits(), trusted())

    def apply(self) -> None:
        from kdiag.limits import set_limits
        from kdiag.model.graph_trust import set_trust

        set_limits(self.limits)
        set_trust(self.trusted)


@dataclass(frozen=True)
class EndpointSpec:
    """What each actor needs to build its LocalEndpoint (the model path must be readable
    where the actors run: a shared file system or the same path on every node)."""

    model: str
    framework_version: str | None = None
    code_dir: str | None = None
    model_name: str | None = None
    multi_model: bool = False  # --target-model: the multi-model endpoint's path
    settings: DriverSettings = field(default_factory=DriverSettings.current)

    def open(self) -> Any:
        from kdiag.path.local_endpoint import LocalEndpoint

        self.settings.apply()

        return LocalEndpoint(self.model, framework_version=self.framework_version,
                             code_dir=Path(self.code_dir) if self.code_dir else None,
                             model_name=self.model_name, multi_model=self.multi_model)


@contextmanager
def ray_session(opts: RayOptions) -> Iterator[bool]:
    """A Ray session for one job: joins the one already running in this process, else the
    cluster at --address/RAY_ADDRESS, else starts Ray on this machine (and stops it after).
    Yields whether Ray runs locally (which sizes the actors' CPU share). While it runs, what
    Ray prints goes to stderr: stdout carries the report (e.g. --format json) alone."""
    ray = require_ray()
    with contextlib.redirect_stdout(sys.stderr):
        if ray.is_initialized():
            yield _is_local(ray)
            return
        address = opts.address or os.environ.get("RAY_ADDRESS") or None
        # Ray's C++ core logs (e.g. about actor constructor arguments) would fill the terminal.
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR,
                                  "log_to_driver": False, "configure_logging": True}
        if address is None:
            kwargs["num_cpus"] = os.cpu_count() or 1
            kwargs["runtime_env"] = {"env_vars": local_worker_env()}
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise KdiagError(f"Cannot start or reach Ray{f' at {address}' if address else ''}"
                             f": {e}") from e
        _quiet_ray_data()
        try:
            yield address is None
        finally:
            ray.shutdown()


def local_worker_env() -> dict[str, str]:
    """Environment for local Ray workers: this kdiag on their import path, TensorFlow quiet."""
    root = str(Path(__file__).resolve().parents[2])
    paths = [root, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    return {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)), "TF_CPP_MIN_LOG_LEVEL": "2"}


def _is_local(ray: Any) -> bool:
    try:
        return len(ray.nodes()) <= 1
    except Exception:  # noqa: BLE001 - a client connection may not expose nodes()
        return False


def _quiet_ray_data() -> None:
    """Ray's progress bars stay (stderr); its INFO lines would mix with the report."""
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _bounded_retries() -> dict:
    """Ray Data restarts a dead actor and retries its batch forever by default: a record that
    kills the process every time would hang the job. Bounded here (passed as remote args,
    which Ray deprecates in favour of named parameters it does not offer for these yet)."""
    import warnings

    warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated",
                            category=DeprecationWarning)
    return {"max_restarts": RESTARTS, "max_task_retries": RESTARTS}


def _actor_cpus(local: bool, workers: int) -> float:
    """On this machine, leave a quarter CPU for the read tasks or the pool starves them."""
    if not local:
        return 1.0
    cpus = os.cpu_count() or 1
    return max(0.25, min(1.0, (cpus - 0.25) / workers))


# ---- capture replay ---------------------------------------------------------------------------

@dataclass
class RayCaptureResult:
    """The in-process result plus what only the Ray job reports."""

    result: CaptureReplayResult
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (file, why)
    out_files: list[str] = field(default_factory=list)

    @property
    def findings(self) -> list:
        from kdiag.diagnosis.findings import Finding

        return self.result.findings + [
            Finding("KD881", "error", "capture", f"Not replayed: {why}",
                    "Check the file: kdiag replay --capture FILE --model MODEL, run alone, names "
                    "the problem; the other files were replayed.")
            for _name, why in self.unreadable]

    def to_json(self) -> dict:
        doc = self.result.to_json()
        doc["engine"] = "ray"
        doc["unreadable_files"] = [{"file": f, "error": e} for f, e in self.unreadable]
        doc["findings"] = [f.to_dict() for f in self.findings]
        doc["parquet_files"] = self.out_files
        return doc


def read_capture_rows(batch: dict, *, src: CaptureSource, since: datetime | None,
                      until: datetime | None, settings: DriverSettings | None = None,
                      max_line: int = MAX_LINE_BYTES) -> dict:
    """Ray task: capture files -> rows of up to CHUNK consecutive records of one file (the
    in-process engine's blocks), then one row with the file's stats or why it is unreadable."""
    if settings is not None:
        settings.apply()
    kinds, indexes, lines, payloads = [], [], [], []
    for index, blob in zip(batch["index"], batch["file"], strict=True):
        f: CaptureFile = pickle.loads(blob)
        stats = CaptureStats()
        error = None
        try:
            recs = list(records_in_file(f.path, read_lines(src, f, max_line), since=since,
                                        until=until, stats=stats, max_line=max_line))
        except KdiagError as e:
            recs, error = [], str(e)
        for start in range(0, len(recs), CHUNK):
            kinds.append("block")
            indexes.append(int(index))
            lines.append(recs[start].line)
            payloads.append(pickle.dumps(recs[start:start + CHUNK]))
        kinds.append("file")
        indexes.append(int(index))
        lines.append(_FILE_ROW_LINE)
        payloads.append(pickle.dumps((f.path, stats, error)))
    return {"kind": kinds, "index": indexes, "line": lines, "payload": payloads}


def _replay_safely(endpoint: Any, recs: list, max_batch: int) -> ReplayedBlock:
    """replay_block; when the batch's run raises, record by record, a raising record becoming
    that record's local error (a finding for it, not a failed job)."""
    from kdiag.replays.capture_replay import replay_block
    from kdiag.replays.outputs import capture_output_tensors

    try:
        return replay_block(endpoint, recs, max_batch=max_batch)
    except Exception:  # noqa: BLE001 - isolate the record that breaks the run
        pass
    parts = []
    for rec in recs:
        try:
            parts.append(replay_block(endpoint, [rec], max_batch=max_batch))
        except Exception as e:  # noqa: BLE001
            tensors, _unnamed, cap_err = capture_output_tensors(rec.output)
            res = crash_result(rec.id, e)
            parts.append(ReplayedBlock(
                ids=[rec.id], captured=[tensors], captured_errors={0: cap_err} if cap_err else {},
                local=[None], local_errors={0: f"the local replay crashed: {res.error}"},
                results={0: res}, rejected_locally=1))
    return concat_blocks(parts)


def concat_blocks(parts: list[ReplayedBlock]) -> ReplayedBlock:
    """Several replayed blocks as one, positions renumbered."""
    out = ReplayedBlock(ids=[], captured=[], captured_errors={}, local=[], local_errors={},
                        results={})
    for p in parts:
        base = len(out.ids)
        out.ids += p.ids
        out.captured += p.captured
        out.local += p.local
        out.captured_errors.update({base + i: e for i, e in p.captured_errors.items()})
        out.local_errors.update({base + i: e for i, e in p.local_errors.items()})
        out.results.update({base + i: r for i, r in p.results.items()})
        out.replayed_ok += p.replayed_ok
        out.rejected_locally += p.rejected_locally
    return out


class _CaptureReplayActor:
    """Ray actor: loads the model once, replays blocks of capture records."""

    def __init__(self, spec: EndpointSpec, max_batch: int, config: CompareConfig) -> None:
        self.endpoint = spec.open()
        self.endpoint.runner  # noqa: B018 - load TensorFlow and the model now, once
        self.max_batch = max_batch
        self.config = config

    def __call__(self, batch: dict) -> dict:
        from kdiag.replays.capture_results import record_rows

        payloads = list(batch["payload"])
        for i, kind in enumerate(batch["kind"]):
            if kind == "block":
                recs = pickle.loads(payloads[i])
                blk = _replay_safely(self.endpoint, recs, self.max_batch)
                rows = record_rows(recs, blk, self.config)
                # Only rejected records' results travel back: the driver lists them (their
                # diagnosis and fixed payload); accepted ones are already in the rows.
                rejected = {k: r for k, r in blk.results.items() if not r.accepted}
                payloads[i] = pickle.dumps((rows, replace(blk, results=rejected)))
        return {"kind": list(batch["kind"]), "index": list(batch["index"]),
                "line": list(batch["line"]), "payload": payloads}


def merge_stats(into: CaptureStats, part: CaptureStats) -> None:
    """Add one file's stats, in file order (the first examples stay the first)."""
    into.files += 1
    into.lines += part.lines
    into.records += part.records
    into.filtered_out += part.filtered_out
    for reason, n in part.skipped.items():
        into.skipped[reason] = into.skipped.get(reason, 0) + n
    into.examples.extend(part.examples[: max(0, 5 - len(into.examples))])


def replay_capture_on_ray(spec: EndpointSpec, path: str, *, endpoint_url: str | None = None,
                          since: datetime | None = None, until: datetime | None = None,
                          shard: tuple[int, int] | None = None, max_batch: int = 256,
                          config: CompareConfig | None = None, out_dir: Path | None = None,
                          opts: RayOptions = RayOptions(),
                          max_line: int = MAX_LINE_BYTES) -> RayCaptureResult:
    """The capture replay as a Ray Data job; the same summary as capture_replay.replay_capture,
    plus per-record rows written as Parquet files under `out_dir` (all or nothing)."""
    require_ray()
    config = config or CompareConfig()
    src = CaptureSource(path, endpoint_url)
    files = list_files(src, since=since, until=until, shard=shard)
    if not files:
        raise KdiagError(f"{path}: no Data Capture files (*.jsonl) found"
                         + (" in the --since/--until window" if since or until else "") + ".")
    with spec.open():  # the model is readable and servable, before any worker starts
        pass
    stats = CaptureStats(files_listed=len(files))
    result = CaptureReplayResult(comparison=None, stats=stats)  # type: ignore[arg-type]
    ray_result = RayCaptureResult(result)
    cmp = Comparator(config)
    with parquet_results(out_dir) as writer, ray_session(opts) as local:
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        items = [{"index": i, "file": pickle.dumps(f)} for i, f in enumerate(files)]
        ds = ray.data.from_items(items, override_num_blocks=min(len(items), 200))
        ds = ds.map_batches(read_capture_rows, batch_size=1, num_cpus=0.25,
                            fn_kwargs={"src": src, "since": since, "until": until,
                                       "settings": spec.settings, "max_line": max_line})
        ds = ds.map_batches(_CaptureReplayActor, batch_size=1,
                            fn_constructor_kwargs={"spec": spec, "max_batch": max_batch,
                                                   "config": config},
                            compute=ray.data.ActorPoolStrategy(size=opts.workers),
                            num_cpus=_actor_cpus(local, opts.workers), **_bounded_retries())
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for kind, payload in zip(batch["kind"], batch["payload"], strict=True):
                if kind == "file":
                    name, part, error = pickle.loads(payload)
                    merge_stats(stats, part)
                    if error:
                        ray_result.unreadable.append((name, error))
                    continue
                rows, blk = pickle.loads(payload)
                add_block(cmp, result, blk)
                if writer is not None:
                    writer.add(rows)
    result.comparison = cmp.result()
    if writer is not None:
        ray_result.out_files = writer.files
    return ray_result


# ---- folder / JSON-lines validate and replay -------------------------------------------------

def crash_result(name: str | None, e: Exception) -> Any:
    """A payload whose local run raised: a rejected result with finding KD880."""
    from kdiag.diagnosis.findings import Finding
    from kdiag.replays.replay import ReplayResult

    why = f"{type(e).__name__}: {e}"[:500]
    return ReplayResult(accepted=False, status=500, stage="model", error=why, name=name,
                        findings=[Finding("KD880", "error", "model",
                                          f"The local model run crashed on this payload: {why}",
                                          "Replay it alone to see the traceback: kdiag --debug "
                                          "replay FILE --model MODEL")])


def _isolated(call: Callable[[list], list], items: list) -> list:
    """call(items); when it raises, item by item, an item that still raises getting a crash
    result (a finding for it, not a failed job)."""
    try:
        return list(call(items))
    except Exception:  # noqa: BLE001 - find the item that breaks the block
        pass
    out = []
    for item in items:
        try:
            out += call([item])
        except Exception as e:  # noqa: BLE001
            out.append(crash_result(getattr(item, "name", None), e))
    return out


def _map_payloads(batch: dict, *, fn: Callable, settings: DriverSettings) -> dict:
    """Ray task: fn(payloads) on each row's block of payloads (validate needs no model)."""
    settings.apply()
    return {"index": list(batch["index"]),
            "results": [pickle.dumps(_isolated(fn, pickle.loads(blob)))
                        for blob in batch["items"]]}


class _PayloadReplayActor:
    """Ray actor: opens the endpoint once (TensorFlow and the model loaded), then runs
    fn(payloads, endpoint) on each block."""

    def __init__(self, spec: EndpointSpec, fn: Callable) -> None:
        self.endpoint = spec.open()
        self.endpoint.runner  # noqa: B018 - load TensorFlow and the model now, once
        self.fn = fn

    def __call__(self, batch: dict) -> dict:
        return {"index": list(batch["index"]),
                "results": [pickle.dumps(_isolated(lambda b: self.fn(b, self.endpoint),
                                                   pickle.loads(blob)))
                            for blob in batch["items"]]}


def _run_payload_job(items: list, opts: RayOptions, build: Callable) -> list:
    """Items through a Ray Data pipeline built by `build(ds, local)`, in rows of BLOCK items
    (the blocks the in-process replay stacks); the results in input order."""
    with ray_session(opts) as local:
        import ray.data

        ray.data.DataContext.get_current().execution_options.preserve_order = True
        rows = [{"index": i, "items": pickle.dumps(items[i:i + BLOCK])}
                for i in range(0, len(items), BLOCK)]
        ds = build(ray.data.from_items(rows, override_num_blocks=len(rows)), local)
        results: list = []
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for index, blob in zip(batch["index"], batch["results"], strict=True):
                if int(index) != len(results):
                    raise KdiagError("Ray returned the blocks out of order (preserve_order).")
                results += pickle.loads(blob)
    return results


def map_payloads_on_ray(items: list, fn: Callable[[list], list], *,
                        opts: RayOptions = RayOptions()) -> list:
    """fn over blocks of payloads as Ray tasks, at most `opts.workers` at a time (e.g. the
    in-process validate, one per payload); the results in input order. `fn` must be picklable (a module-level function or
    a functools.partial of one)."""
    require_ray()
    import ray.data

    return _run_payload_job(items, opts, lambda ds, _local: ds.map_batches(
        _map_payloads, batch_size=1, num_cpus=0.5, fn_kwargs={"fn": fn, "settings": DriverSettings.current()},
        compute=ray.data.TaskPoolStrategy(size=opts.workers)))


def replay_payloads_on_ray(items: list, spec: EndpointSpec,
                           fn: Callable[[list, Any], list], *,
                           opts: RayOptions = RayOptions()) -> list:
    """fn(block, endpoint) over blocks of payloads in an actor pool whose actors open the
    endpoint once (e.g. the in-process replay); the results in input order."""
    import ray.data

    require_ray()
    with spec.open():  # the model is readable and servable, before any worker starts
        pass
    return _run_payload_job(items, opts, lambda ds, local: ds.map_batches(
        _PayloadReplayActor, batch_size=1, fn_constructor_kwargs={"spec": spec, "fn": fn},
        compute=ray.data.ActorPoolStrategy(size=opts.workers),
        num_cpus=_actor_cpus(local, opts.workers), **_bounded_retries()))
