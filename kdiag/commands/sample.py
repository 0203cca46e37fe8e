"""`kdiag sample --signature SIG`."""

from __future__ import annotations

from pathlib import Path

import click

from kdiag.atomic import check_output_path, write_atomically
from kdiag.commands._common import (
    cap_option,
    emit_json,
    format_option,
    signature_option,
)


@click.command("sample", epilog="""\b
Examples:
  kdiag sample --signature export/1 > payload.json
                                  one instance, row format: {"instances": [...]}
  kdiag sample --signature signature.json --batch 4 --seed 7
                                  four instances, same values on every run with seed 7
  kdiag sample --signature images.json --range pixels:0,255 --dim pixels:1=224 --dim pixels:2=224
                                  pixel values in [0, 255), unknown image axes set to 224
  kdiag sample --signature text.json --range token_ids:0,5000
                                  integer ids 0..4999 (an embedding's vocabulary size)
  kdiag sample --signature export/1 --content-type csv --batch 3 --out rows.csv
                                  three CSV rows (single numeric input only)
  kdiag sample --signature export/1 --columnar
                                  {"inputs": ...}: tensors as written, no batch axis added
  kdiag sample --signature export/1 --format json
                                  {"content_type", "body", "notes"} for scripts

\b
Then check it and send it:
  kdiag validate payload.json --signature export/1
  aws sagemaker-runtime invoke-endpoint --endpoint-name NAME \\
      --content-type application/json --body fileb://payload.json out.json

Values: floats uniform in [0, 1), integers in [0, 10), booleans random, strings short words;
string inputs that carry images (named *image*, *img*, *bytes*, or decoded in the graph) get
small PNG files sent as {"b64": ...}. Unknown non-batch dimensions default to 1 (with a note).
Text output prints only the body, so it can be redirected; notes go to stderr.
""")
@signature_option("--signature", "signature_arg", required=True,
                 help="A model (SavedModel folder, model.tar.gz, .keras) or a signature JSON file "
                   "from `kdiag inspect MODEL --format json`.")
@click.option("--signature-name", metavar="NAME",
              help="Which signature to sample (default: serving_default). Written into the "
                   "body as \"signature_name\" when it is not serving_default.")
@click.option("--content-type", "content_type", default="json", show_default=True,
              metavar="TYPE",
              help="The request's Content-Type header the body is written for: the full "
                   "type (application/json, application/jsonlines, application/jsons, text/csv) "
                   "or its short name json, jsonlines, csv.")
@click.option("--columnar", is_flag=True,
              help="Send {\"inputs\": ...} (tensors exactly as written) instead of "
                   "{\"instances\": [...]} (one entry per batch row). JSON only.")
@click.option("--batch", type=int, default=1, show_default=True,
              help="Number of instances (the size of each unknown batch axis).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed; the same seed gives the same body.")
@click.option("--range", "ranges", multiple=True, metavar="NAME:LO,HI",
              help="Value range [LO, HI) for a numeric input (integers: LO <= v < HI). "
                   "LO,HI without a name applies to every numeric input. Repeatable.")
@click.option("--dim", "dims", multiple=True, metavar="NAME:AXIS=SIZE",
              help="Size of an unknown (-1) axis, e.g. image:1=224. For an input of unknown "
                   "rank give every axis after the batch axis. Repeatable.")
@click.option("--image-size", metavar="HxW",
              help="Height and width of generated PNG images (default 32x32).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the body to this file (atomically) instead of stdout.")
@format_option
@cap_option
def command(signature_arg: str, signature_name: str | None, content_type: str, columnar: bool,
            batch: int, seed: int, ranges: tuple[str, ...], dims: tuple[str, ...],
            image_size: str | None, out: Path | None, fmt: str) -> None:
    """Generate a request body that a signature accepts, ready to send to the endpoint.

    The body is the canonical one kdiag checks against: TF Serving's REST format for JSON, or
    the lines and rows the SageMaker TF Serving container turns into it for JSON lines and CSV.
    """
    import kdiag
    from kdiag.payloads.sample import parse_dim, parse_image_size, parse_range

    if out is not None:
        check_output_path(out, what="--out ")
    dim_map: dict[str, dict[int, int]] = {}
    for spec in dims:
        name, axis, size = parse_dim(spec)
        dim_map.setdefault(name, {})[axis] = size
    [sample] = kdiag.sample(
        signature_arg, signature_name=signature_name, content_type=content_type, n=1, seed=seed,
        batch=batch, columnar=columnar, ranges=dict(parse_range(r) for r in ranges),
        dims=dim_map, image_size=parse_image_size(image_size) if image_size else None)

    if out is not None:
        write_atomically(out, sample.body)
    if fmt == "json":
        emit_json(sample.to_dict())
        return
    for note in sample.notes:
        click.echo(f"note: {note}", err=True)
    if out is not None:
        click.echo(f"wrote {len(sample.body.encode('utf-8'))} bytes ({sample.content_type}) "
                   f"to {out}", err=True)
    else:
        click.echo(sample.body, nl=not sample.body.endswith("\n"))
