"""`kdiag probe ENDPOINT`."""

from __future__ import annotations

import click

from kdiag.commands._common import (
    cap_option,
    emit_json,
    exit_with,
    fail_on_option,
    format_option,
    framework_version_option,
    signature_option,
    tolerance_option,
    trust_model_option,
)

EPILOG = """\b
Examples:
  kdiag probe my-endpoint --region us-east-1
  kdiag probe my-endpoint --signature sig.json --content-type json --content-type csv
  kdiag probe my-endpoint --model model.tar.gz          (also compares with a local replay)
  kdiag probe my-endpoint --fetch-model                 (reads the endpoint's own model.tar.gz)
  kdiag probe my-endpoint --payload body.json --payload rows.csv
  kdiag probe my-endpoint --dry-run                     (describes; sends nothing)
  kdiag probe my-endpoint --endpoint-url https://vpce-...  (VPC endpoints, local stand-ins)

\b
Without --signature, --model or --fetch-model, kdiag infers the input names, dtypes and ranks
from TF Serving's error messages with a few minimal requests, and says so.
Bounded by default: at most --max-requests calls (retries included) at --rate per second.
\b
JSON output: endpoint {name, status, failure_reason, variants, data_capture, models,
findings}, framework_version, generation, signature {source, ...}, inference, payloads[]
{name, request, prediction, live, agreement, replay, logs, findings}, findings[],
requests_sent, dry_run, healthy.
Exit codes: 0 healthy, 1 findings at or above --fail-on, 2 usage, credential or
connection error.
"""


@click.command("probe", epilog=EPILOG)
@click.argument("endpoint")
@signature_option(help="A model or a signature JSON file (kdiag inspect MODEL --format json): "
                 "what the endpoint should expect.")
@click.option("--model", help="The model the endpoint should run (SavedModel folder or "
              "model.tar.gz): its signature, and a local replay to compare outputs with.")
@click.option("--fetch-model", is_flag=True, help="Download the endpoint's model.tar.gz "
              "(ModelDataUrl) to a temporary folder and read its signature (and replay it).")
@click.option("--max-model-bytes", type=click.IntRange(1), default=2 << 30, show_default=True,
              help="--fetch-model refuses artifacts larger than this.")
@click.option("--no-infer", is_flag=True, help="Never infer the signature from error messages.")
@click.option("--payload", "payloads", multiple=True, help="A payload file to send (repeatable); "
              "Content-Type from the suffix unless one --content-type is given.")
@click.option("--content-type", "content_types", multiple=True, help="A request Content-Type "
              "header to send: one payload is generated for each (full type, or json, "
              "jsonlines, csv); with --payload, the header those files are sent with. "
              "Repeatable. Default application/json.")
@click.option("--accept", help="The request's Accept header.")
@click.option("--custom-attributes", help="The request's X-Amzn-SageMaker-Custom-Attributes "
              "header.")
@click.option("--target-variant", help="Send to this production variant (TargetVariant).")
@click.option("--batch", type=click.IntRange(1, 10_000), default=1, show_default=True,
              help="Instances per generated payload.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Random seed of the generated payloads.")
@framework_version_option
@click.option("--signature-name", help="Which signature (default serving_default).")
@click.option("--model-name", help="The name the container serves the model under.")
@click.option("--profile", help="AWS profile (default: the standard credential chain).")
@click.option("--region", help="AWS region (default: from the profile or AWS_REGION).")
@click.option("--endpoint-url", help="Endpoint URL for every AWS service kdiag calls.")
@click.option("--runtime-endpoint-url", help="Endpoint URL for SageMaker Runtime.")
@click.option("--sagemaker-endpoint-url", help="Endpoint URL for the SageMaker control plane.")
@click.option("--logs-endpoint-url", help="Endpoint URL for CloudWatch Logs.")
@click.option("--s3-endpoint-url", help="Endpoint URL for S3.")
@click.option("--max-requests", type=click.IntRange(0, 10_000), default=10, show_default=True,
              help="At most this many InvokeEndpoint calls in all, retries and inference "
                   "included.")
@click.option("--rate", type=click.FloatRange(min=0.001), default=2.0, show_default=True,
              help="InvokeEndpoint calls per second, at most.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=1, show_default=True,
              help="InvokeEndpoint calls in flight at once, at most.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=70.0, show_default=True,
              help="Read timeout per AWS call, seconds.")
@click.option("--connect-timeout", type=click.FloatRange(min=0.1), default=5.0,
              show_default=True, help="Connect timeout per AWS call, seconds.")
@click.option("--retries", type=click.IntRange(0, 10), default=3, show_default=True,
              help="Retries of a throttled or transiently failed call (exponential backoff).")
@click.option("--no-logs", is_flag=True, help="Do not read CloudWatch Logs.")
@click.option("--log-wait", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds to keep looking for log lines of a failure (delivery lags).")
@click.option("--no-replay", is_flag=True, help="Do not replay payloads locally (--model).")
@tolerance_option("--atol", "live outputs against the local replay")
@tolerance_option("--rtol", "live outputs against the local replay")
@click.option("--dry-run", is_flag=True, help="Describe the endpoint and show what would be "
              "sent; no call to the runtime at all.")
@format_option
@fail_on_option
@cap_option
@trust_model_option
def command(endpoint: str, signature: str | None, model: str | None, fetch_model: bool,
            max_model_bytes: int, no_infer: bool, payloads: tuple[str, ...],
            content_types: tuple[str, ...], accept: str | None, custom_attributes: str | None,
            target_variant: str | None, batch: int, seed: int, framework_version: str | None,
            signature_name: str | None, model_name: str | None, profile: str | None,
            region: str | None, endpoint_url: str | None, runtime_endpoint_url: str | None,
            sagemaker_endpoint_url: str | None, logs_endpoint_url: str | None,
            s3_endpoint_url: str | None, max_requests: int, rate: float, concurrency: int,
            timeout: float, connect_timeout: float, retries: int, no_logs: bool,
            log_wait: float, no_replay: bool, atol, rtol, dry_run: bool,
            fmt: str, fail_on: str) -> None:
    """Diagnose the live SageMaker endpoint ENDPOINT end to end: its status and model, the
    signature, what it answers to payloads next to what kdiag predicts, the root cause and log
    lines of every failure, and (with the model) its outputs against a local replay."""
    import kdiag

    report = kdiag.probe(
        endpoint, profile=profile, region=region, endpoint_url=endpoint_url,
        runtime_endpoint_url=runtime_endpoint_url, sagemaker_endpoint_url=sagemaker_endpoint_url,
        logs_endpoint_url=logs_endpoint_url, s3_endpoint_url=s3_endpoint_url, timeout=timeout,
        connect_timeout=connect_timeout, max_pool_connections=concurrency,
        signature=signature, model=model, fetch_model=fetch_model,
        max_model_bytes=max_model_bytes, infer=not no_infer, payloads=list(payloads),
        content_types=list(content_types), accept=accept, custom_attributes=custom_attributes,
        target_variant=target_variant, batch=batch, seed=seed,
        framework_version=framework_version, signature_name=signature_name,
        model_name=model_name, max_requests=max_requests, rate=rate, concurrency=concurrency,
        retries=retries, logs=not no_logs, log_wait=log_wait, replay=not no_replay,
        atol=atol.value(1e-5), rtol=rtol.value(1e-5), atol_by_output=atol.by_output,
        rtol_by_output=rtol.by_output, dry_run=dry_run)
    if fmt == "json":
        emit_json(report.to_dict())
    else:
        from kdiag.report import console, render_probe

        render_probe(report.document, console())
    exit_with(1 if report.failed(fail_on) else 0)
