"""`kdiag replay PAYLOAD --model MODEL`."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import click

from kdiag.commands._common import (
    cap_option,
    emit_json,
    engine_options,
    existing_dir,
    existing_file,
    exit_with,
    fail_on_option,
    format_option,
    framework_version_option,
    parse_when,
    tolerance_option,
    trust_model_option,
)
from kdiag.safe_io import MAX_LINE_BYTES

EPILOG = """\b
Examples:
  kdiag replay body.json --model export/1
  kdiag replay body.csv --model model.tar.gz --content-type text/csv
  kdiag replay bodies/ --model export/1 --out results.jsonl
                                   (then kdiag diff endpoint.json results.jsonl)
  kdiag replay --capture capture/ --model export/1 --out local.jsonl
  kdiag replay bodies.jsonl --each-line --model export/1 --max-batch 512
  kdiag replay body.json --model export/1 --keras model.keras \\
      --custom-objects my_model.py --client-input '{"data": [[1, 2, 3, 4, 5]]}'
  kdiag replay --capture s3://bucket/capture/ep/AllTraffic --model model.tar.gz \\
      --since 2024-05-01 --until 2024-05-02 --engine ray --workers 4 --out results/

\b
JSON output: validate's keys (accepted, status, stage, error, tfs_request, tfs_target,
tensors, findings, fixed_payload, stages) plus response {status, content_type, body, boto3},
outputs (the model's dtype/shape), client_decode, and notebook (with --keras).
Exit codes: 0 accepted (and notebook agrees), 1 rejected or differs, 2 usage error.
"""


@click.command("replay", epilog=EPILOG)
@click.argument("payload", required=False)
@click.option("--model", "model", required=True,
              help="SavedModel folder, version folder, or model.tar.gz (extracted safely to a "
                   "temporary folder).")
@click.option("--content-type", help="The request's Content-Type header (default from the "
              "file suffix: .json, .jsonl, .csv; else application/json).")
@click.option("--accept", help="The request's Accept header.")
@click.option("--custom-attributes", help="The request's X-Amzn-SageMaker-Custom-Attributes "
              "header.")
@framework_version_option
@click.option("--code", "code_dir", type=existing_dir(),
              help="code/ folder with inference.py: runs YOUR handlers (executes your code).")
@click.option("--model-name", help="The name the container serves the model under.")
@click.option("--target-model", help="Send as invoke_endpoint(TargetModel=...) to a multi-model "
              "endpoint (the model is that archive): the container's multi-model path (Python "
              "service, no njs conversions), the model loaded under the platform's name.")
@click.option("--each-line", is_flag=True, help="PAYLOAD is a JSON-lines file of bodies.")
@click.option("--max-line-bytes", type=click.IntRange(1), default=MAX_LINE_BYTES,
              show_default=True, help="--each-line and --capture: the longest line read; a "
              "longer line is refused (--each-line) or skipped and counted (--capture).")
@click.option("--max-batch", type=click.IntRange(1, 65536), default=256, show_default=True,
              help="At most this many instances per stacked model call in batch replay.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Write one JSON line per payload or captured record (id, outputs or error) "
                   "for kdiag diff. With --capture: a .jsonl file gets those lines; any other "
                   "path is a new folder of per-record Parquet files (--engine ray: always).")
@click.option("--keras", "keras_path", type=existing_file(),
              help="The notebook's .keras model: run its own predict() on --client-input and "
                   "diff with the endpoint.")
@click.option("--custom-objects", type=existing_file(),
              help="Module defining the Keras model's custom classes (imported: runs its code).")
@click.option("--client-input", help="What the notebook passed to predict(): a file (.npy "
              "array, or text such as JSON) or a literal string.")
@click.option("--unsafe-keras", is_flag=True, help="Load the .keras file with safe_mode=False "
              "(allows lambda layers: runs code stored in the file). Off by default.")
@click.option("--capture", help="Replay SageMaker Data Capture instead of PAYLOAD: a folder (read "
              "recursively) or file of capture JSON lines, or s3://bucket/prefix; diffs local outputs with the "
              "captured ones.")
@click.option("--endpoint-url", help="--capture from a local S3 (moto, MinIO).")
@click.option("--limit", type=click.IntRange(min=1), help="--capture: at most this many records.")
@click.option("--since", callback=lambda c, p, v: parse_when(v, "--since"),
              help="--capture: records at or after this time (ISO 8601, UTC).")
@click.option("--until", callback=lambda c, p, v: parse_when(v, "--until"),
              help="--capture: records before this time.")
@click.option("--shard", metavar="K/N", help="--capture: shard K of N, to split a large capture "
              "across machines or CI jobs.")
@tolerance_option("--atol", "the outputs compared (captured, notebook)")
@tolerance_option("--rtol", "the outputs compared (captured, notebook)")
@click.option("-v", "--verbose", is_flag=True, help="Several payloads: list every payload, "
              "not only the rejected ones.")
@engine_options
@format_option
@fail_on_option
@cap_option
@trust_model_option
def command(payload: str, model: str, content_type: str | None, accept: str | None,
            custom_attributes: str | None, framework_version: str | None,
            code_dir: Path | None, model_name: str | None, target_model: str | None,
            each_line: bool, max_line_bytes: int, max_batch: int,
            out: Path | None, keras_path: Path | None, custom_objects: Path | None,
            client_input: str | None, unsafe_keras: bool, capture: str | None,
            endpoint_url: str | None, limit: int | None, since, until,
            shard: str | None, atol, rtol, verbose: bool, engine: str, address: str | None,
            workers: int, fmt: str, fail_on: str) -> None:
    """Run PAYLOAD through the real model exactly as the endpoint would, and show every stage:
    wire, container, TF Serving's parse, the graph, TF Serving's response, the container's
    answer, what boto3 returns or raises, and what your JSON deserializer hands back.

    PAYLOAD is a file, - for stdin, or a folder of payload files (read recursively, hidden
    files skipped; replayed in stacked model calls). Needs TensorFlow.
    """
    import kdiag
    from kdiag.errors import KdiagError
    from kdiag.model.runner import require_tensorflow
    from kdiag.payloads.files import iter_bodies
    from kdiag.report import console, render_replay, render_validation_batch
    from kdiag.results import Payload, batch_document

    require_tensorflow("kdiag replay")
    if out is not None:
        from kdiag.atomic import check_output_path

        check_output_path(out, what="--out ")
    if capture is not None:
        if payload is not None:
            raise KdiagError("Give either PAYLOAD or --capture, not both.")
        _replay_capture(model, capture, framework_version=framework_version, code_dir=code_dir,
                        model_name=model_name, target_model=target_model,
                        endpoint_url=endpoint_url, limit=limit,
                        since=since, until=until, shard=shard, max_batch=max_batch,
                        max_line=max_line_bytes, atol=atol, rtol=rtol, fmt=fmt, engine=engine,
                        address=address, workers=workers, out=out, fail_on=fail_on)
        return
    if payload is None:
        raise KdiagError("Give a PAYLOAD (file, - for stdin, or a folder) or --capture PATH.")
    if (keras_path is None) != (client_input is None):
        raise KdiagError("--keras and --client-input go together: the notebook's model and "
                         "what the notebook passed to its predict().")
    items = [Payload(ct, body, name=name)
             for name, body, ct in iter_bodies(payload, each_line=each_line,
                                               content_type=content_type,
                                               max_line=max_line_bytes)]
    single = len(items) == 1 and not (payload != "-" and Path(payload).is_dir()) and not each_line
    kwargs = dict(accept=accept, custom_attributes=custom_attributes,
                  framework_version=framework_version, code=code_dir, model_name=model_name,
                  max_batch=max_batch, keras=keras_path,
                  client_input=None if client_input is None else _client_input(client_input),
                  custom_objects=custom_objects, unsafe_keras=unsafe_keras, atol=atol.value(1e-5),
                  rtol=rtol.value(1e-5), target_model=target_model)
    if out is not None and out.is_dir():
        raise KdiagError(f"--out {out} is a folder; give a file for the JSON-lines results "
                         "(a folder of Parquet files is for --capture).")
    if engine == "ray" and not single:
        from kdiag.replays.ray_engine import EndpointSpec, RayOptions, replay_payloads_on_ray

        if keras_path is not None:
            raise KdiagError("--keras compares one payload with the notebook: leave out "
                             "--engine ray.")
        spec = _endpoint_spec(EndpointSpec, model, framework_version, code_dir, model_name,
                              target_model)
        results = replay_payloads_on_ray(items, spec, partial(_replay_block, kwargs=kwargs),
                                         opts=RayOptions(address, workers))
        report = None
    elif single:
        report = kdiag.replay(items[0], model, **kwargs)
    else:
        report = _replay_with_progress(items, model, kwargs, quiet=fmt == "json")
    results = list(report.results) if report is not None else results
    if out is not None:
        _write_results(out, results)
    if fmt == "json":
        emit_json(report.to_dict() if single else batch_document(results))
    else:
        con = console()
        if single:
            render_replay(results[0], con)
        else:
            render_validation_batch(results, con, verbose=verbose)
    from kdiag.diagnosis.findings import fails

    # A rejection, a broadcast answer and a notebook disagreement are each an error finding.
    exit_with(1 if any(fails(r.findings, fail_on) for r in results) else 0)


def _replay_with_progress(items, model: str, kwargs: dict, quiet: bool):
    import kdiag
    from kdiag.report import progress_bar

    with progress_bar("replaying", total=len(items), quiet=quiet) as advance:
        return kdiag.replay(items, model, progress=advance, **kwargs)


def _replay_block(items: list, endpoint, *, kwargs: dict) -> list:
    """One block of payloads through kdiag.replay on an open endpoint (--engine ray's actors)."""
    import kdiag

    return list(kdiag.replay(list(items), endpoint, **kwargs).results)


def _client_input(value: str) -> object:
    import numpy as np

    p = Path(value)
    if len(value) < 4096 and p.is_file():
        if p.suffix == ".npy":
            return np.load(p, allow_pickle=False)
        return p.read_text(encoding="utf-8")
    return value


def _write_results(out: Path, results) -> None:
    from kdiag.atomic import write_atomically
    from kdiag.replays.outputs import result_line

    write_atomically(out, b"".join(
        result_line(r.name or "", r.decoded) if r.accepted
        else result_line(r.name or "", error=f"{r.status} at {r.stage}") for r in results))


JSON_LINES_SUFFIXES = (".jsonl", ".ndjson", ".json")


def _endpoint_spec(spec_type, model: str, framework_version, code_dir, model_name,
                   target_model):
    """The Ray actors' endpoint, configured as kdiag.replay configures its own (--target-model:
    the multi-model path, the target's loaded name)."""
    from kdiag.path.target_model import served_model_name

    return spec_type(model, framework_version=framework_version,
                     code_dir=code_dir and str(code_dir),
                     model_name=served_model_name(model_name, target_model),
                     multi_model=target_model is not None)


def _replay_capture(model: str, capture: str, *, framework_version, code_dir, model_name,
                    endpoint_url, target_model=None, limit, since, until, shard, max_batch, atol, rtol, fmt,
                    max_line, engine="in-process", address=None, workers=1, out=None,
                    fail_on: str = "error") -> None:
    from contextlib import nullcontext

    from kdiag.atomic import open_atomically
    from kdiag.comparison import CompareConfig
    from kdiag.path.local_endpoint import LocalEndpoint
    from kdiag.replays.capture import parse_shard
    from kdiag.replays.capture_replay import replay_capture
    from kdiag.replays.outputs import result_line
    from kdiag.report import console, findings_table, progress_bar, render_capture_replay
    from kdiag.results import SCHEMA_VERSION

    config = CompareConfig(atol=atol.value(1e-5), rtol=rtol.value(1e-5),
                           atol_by_output=atol.by_output, rtol_by_output=rtol.by_output)
    kwargs = dict(endpoint_url=endpoint_url, limit=limit, since=since, until=until,
                  shard=parse_shard(shard) if shard else None, max_batch=max_batch,
                  config=config, max_line=max_line)
    on_ray = None
    from kdiag.errors import KdiagError

    parquet = out is not None and out.suffix.lower() not in JSON_LINES_SUFFIXES
    if engine == "ray":
        if out is not None and not parquet:
            raise KdiagError(f"--out {out}: --engine ray writes a folder of Parquet files; give "
                             "a folder path (no .jsonl), or leave out --engine ray.")
        from kdiag.replays.ray_engine import EndpointSpec, RayOptions, replay_capture_on_ray

        if kwargs.pop("limit") is not None:
            raise KdiagError("--limit is for a quick look on this machine: leave out "
                             "--engine ray, or narrow the job with --since/--until.")
        spec = _endpoint_spec(EndpointSpec, model, framework_version, code_dir, model_name,
                              target_model)
        on_ray = replay_capture_on_ray(spec, capture, out_dir=out,
                                       opts=RayOptions(address, workers), **kwargs)
        result = on_ray.result
    else:
        from kdiag.path.target_model import served_model_name
        from kdiag.replays.capture_results import parquet_results, record_rows

        with parquet_results(out if parquet else None) as writer, LocalEndpoint(
                model, framework_version=framework_version, code_dir=code_dir,
                model_name=served_model_name(model_name, target_model),
                multi_model=target_model is not None) as endpoint, \
                (open_atomically(out) if out is not None and not parquet
                 else nullcontext()) as sink, \
                progress_bar("replaying capture", total=limit, quiet=fmt == "json") as advance:
            if writer is not None:
                kwargs["on_block"] = lambda recs, blk: writer.add(record_rows(recs, blk, config))

            def write(rid: str, outputs: dict | None, error: str | None) -> None:
                sink.write(result_line(rid, outputs, error=error))

            result = replay_capture(endpoint, capture, progress=advance,
                                    on_record=write if sink is not None else None, **kwargs)
    from kdiag.diagnosis.findings import fails

    failed = fails(result.findings, fail_on) or bool(on_ray and on_ray.unreadable)
    if fmt == "json":
        emit_json({"schema_version": SCHEMA_VERSION,
                   **(on_ray.to_json() if on_ray else result.to_json()),
                   "out": None if out is None else str(out)})
    else:
        con = console()
        render_capture_replay(result, con, failed=failed, out=None if parquet else out)
        if on_ray and on_ray.findings:
            findings_table(con, on_ray.findings)
        if parquet:
            con.print(f"Per-record results: {out}/ (Parquet)")
    exit_with(1 if failed else 0)
