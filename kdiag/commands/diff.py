"""`kdiag diff A B`: compare two output sets, record by record, in batches.

A is the reference (relative error divides by |a|), B the candidate. Records pair by id when both
sides have ids, else by order. Exit 0 when no finding reaches --fail-on, 1 otherwise, 2 when an
input cannot be read.

JSON output (--format json), one object:
  passed          bool: no finding at or above --fail-on
  fail_on         the severity that fails
  a, b            {source, kind, records, ids}: what was read (kind: tfs-row, tfs-columnar,
                  tfs-results, npy, npz, jsonl, capture)
  aligned_by      "id" or "order"
  records_aligned record pairs present on both sides
  config          {atol, rtol, atol_by_output, rtol_by_output, stat, quantile, rule}
  outputs[]       per output: name, name_b, dtype_a, dtype_b, shape_a, shape_b, atol, rtol,
                  records, compared, failed, nan_mismatches, inf_mismatches, passed,
                  abs {max, mean}, rel {max, mean}, required {atol, rtol},
                  worst[] {id, failed, abs, rel, element, a, b},
                  histogram {bins[] {low, high, count}, zero, nonfinite}
  mismatches[]    {kind, output, count, first_ids, detail}; kinds: count, missing-in-a,
                  missing-in-b, duplicate-id, error, output-missing, shape, dtype, nan, inf, value
  findings[]      {code, severity, stage, message, fix}
Non-finite numbers are written as the strings "NaN", "Infinity", "-Infinity".
"""

from __future__ import annotations

import click

from kdiag.commands._common import (
    emit_json,
    exit_with,
    fail_on_option,
    format_option,
    parse_when,
    tolerance_option,
)

EPILOG = """\b
A and B can be:
  response.json        a TF Serving / endpoint response: {"predictions": [...]} (one value, or
                       one object per output, per instance), {"outputs": ...} (columnar), or a
                       bare list; a record is an instance
  outputs.npy          one output, records along the first axis
  outputs.npz          one array per output, records along the first axis; ids in __ids__
  results.jsonl        replay or probe results, one invocation per line:
                       {"id": ..., "outputs": {name: ...}} or {"id": ..., "error": ...}
  capture/ or x.jsonl  SageMaker Data Capture files (a folder is read recursively)
  s3://bucket/prefix   Data Capture in S3: <prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl

\b
Examples:
  kdiag diff local.npz endpoint.json
  kdiag diff expected.json got.json --atol 1e-4 --atol logits=1e-3 --rtol 0
  kdiag diff keras.npy savedmodel.npy --stat mean --atol 1e-6
  kdiag diff capture/ replay.jsonl --stat quantile:0.99 --format json > diff.json
  kdiag diff s3://bucket/data-capture/my-endpoint/AllTraffic replay.jsonl \\
      --since 2024-05-01T00:00 --until 2024-05-02 --shard 2/4 --limit 10000
  kdiag diff s3://b/cap/ep/v results.jsonl --endpoint-url http://127.0.0.1:5000

\b
Rule: a value passes when |a-b| <= atol or |a-b|/|a| <= rtol (A is the reference);
elemwise checks every element, max/mean/median/quantile that statistic per record. NaN on
both sides is equal; NaN or Inf on one side only always fails. --shard, --since, --until
apply to Data Capture inputs; a capture read that way is a subset, so ids it lacks in the
other set are not reported. Exit: 0 within tolerance, 1 findings, 2 unreadable input.

\b
JSON keys: passed, fail_on, a, b, aligned_by, records_aligned, config, outputs[] (name,
name_b, dtype_a, dtype_b, shape_a, shape_b, atol, rtol, records, compared, failed,
nan_mismatches, inf_mismatches, passed, abs, rel, required, worst[], histogram),
mismatches[] (kind, output, count, first_ids, detail), findings[] (code, severity, stage,
message, fix).
"""


def parse_stat(text: str) -> tuple[str, float]:
    from kdiag.comparison import STATS

    name, _, q = text.partition(":")
    if name not in STATS or (q and name != "quantile"):
        raise click.BadParameter(f"{text!r}: one of elemwise, max, mean, median, quantile, "
                                 "quantile:Q", param_hint="--stat")
    quantile = 0.99
    if q:
        try:
            quantile = float(q)
        except ValueError:
            quantile = -1.0
        if not 0 <= quantile <= 1:
            raise click.BadParameter(f"{text!r}: Q is within [0, 1]", param_hint="--stat")
    return name, quantile


@click.command("diff", epilog=EPILOG)
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@tolerance_option("--atol", "every output")
@tolerance_option("--rtol", "every output")
@click.option("--stat", default="elemwise", show_default=True,
              metavar="elemwise|max|mean|median|quantile[:Q]",
              help="Error statistic that must be within tolerance: every element, or the "
                   "max/mean/median/quantile of each record's errors.")
@click.option("--worst", default=5, show_default=True, type=click.IntRange(0, 1000),
              help="Worst records listed per output.")
@click.option("--limit", type=click.IntRange(min=1), help="Read at most this many records per side.")
@click.option("--since", callback=lambda c, p, v: parse_when(v, "--since"),
              help="Data Capture: records with inferenceTime at or after this time (ISO 8601, "
                   "UTC unless it has an offset).")
@click.option("--until", callback=lambda c, p, v: parse_when(v, "--until"),
              help="Data Capture: records with inferenceTime before this time.")
@click.option("--shard", metavar="K/N",
              help="Data Capture: read shard K of N (whole files, split by a stable hash), to "
                   "spread a large capture over N machines or CI jobs.")
@click.option("--endpoint-url", help="S3 endpoint URL (a local S3 such as moto or MinIO).")
@format_option
@fail_on_option
def command(a: str, b: str, atol, rtol, stat: str, worst: int,
            limit: int | None, since, until, shard: str | None,
            endpoint_url: str | None, fmt: str, fail_on: str) -> None:
    """Compare two output sets (B against reference A) with per-output tolerances.

    Shape and dtype agreement, NaN/Inf agreement, abs/rel error statistics, the tolerance that
    would have passed, the worst records and an error histogram, over millions of records.
    """
    import kdiag
    from kdiag.replays.capture import parse_shard

    stat_name, quantile = parse_stat(stat)
    t0, t1 = since, until
    shard_kn = parse_shard(shard) if shard else None
    comparison = kdiag.compare(
        a, b, atol=atol.value(1e-5), rtol=rtol.value(1e-5), atol_by_output=atol.by_output,
        rtol_by_output=rtol.by_output, stat=stat_name, quantile=quantile, worst=worst,
        fail_on=fail_on, endpoint_url=endpoint_url, limit=limit, since=t0, until=t1,
        shard=shard_kn)
    failed = not comparison.passed
    if fmt == "json":
        emit_json(comparison.to_dict())
    else:
        from kdiag.report import console, render_comparison

        render_comparison(comparison.result, console(), failed=failed)
    exit_with(1 if failed else 0)
