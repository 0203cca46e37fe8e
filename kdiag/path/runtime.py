"""The `runtime` stage: what SageMaker Runtime makes of the container's answer, i.e. what boto3's
invoke_endpoint returns or raises, and the exact HTTP response a Runtime server sends for it.

Shapes from botocore's sagemaker-runtime 2017-05-13 service model: ModelError (httpStatusCode
424; Message, OriginalStatusCode, OriginalMessage, LogStreamArn; `Message` max 2048) and
ValidationError (400). The wire form (x-amzn-ErrorType header, JSON member names, the Message
template) is the one verified against boto3 in aws-apis-detail.md §1.5 and §6.3.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from kdiag.diagnosis.findings import Finding
from kdiag.path.trace import StageRecord, excerpt

MESSAGE_MAX = 2048  # service-2.json shape "Message" (also used by OriginalMessage)
RESPONSE_LIMIT = 6291456  # [observed] the response is capped like the request
TIMEOUT_TEXT = ("Your invocation timed out while waiting for a response from container {c}. "
                "Review the latency metrics for each container in Amazon CloudWatch, resolve "
                "the issue, and try again.")


@dataclass
class RuntimeOutcome:
    """The Runtime's answer: `http_*` is the wire response; `boto` is what boto3 gives the caller
    (the return value of invoke_endpoint, or `e.response` of the exception it raises)."""

    ok: bool
    http_status: int
    http_headers: dict[str, str]
    http_body: bytes
    error_code: str | None = None  # "ModelError", "ValidationError"
    message: str | None = None
    original_status_code: int | None = None
    original_message: str | None = None
    log_stream_arn: str | None = None
    content_type: str | None = None
    boto: dict = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    record: StageRecord | None = None

    @property
    def exception_text(self) -> str | None:
        """str() of the botocore exception, as a person sees it."""
        if self.ok:
            return None
        return (f"An error occurred ({self.error_code}) when calling the InvokeEndpoint "
                f"operation: {self.message}")


def log_group_arn(endpoint_name: str, region: str, account: str) -> str:
    return f"arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/Endpoints/{endpoint_name}"


def console_url(endpoint_name: str, region: str) -> str:
    return (f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
            f"#logEventViewer:group=/aws/sagemaker/Endpoints/{endpoint_name}")


def _text(body: str | bytes | None) -> str:
    if body is None:
        return ""
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return body


def runtime_outcome(container_status: int | None, container_body: str | bytes | None,
                    container_content_type: str | None, *, endpoint_name: str = "endpoint",
                    variant: str = "AllTraffic", region: str = "us-east-1",
                    account: str = "123456789012", container_name: str = "primary",
                    request_id: str | None = None) -> RuntimeOutcome:
    """What the caller sees for a container answer. `container_status=None` means the container
    did not answer within the Runtime's 60 s deadline."""
    rid = request_id or str(uuid.uuid4())
    meta = {"RequestId": rid, "RetryAttempts": 0}
    if container_status is not None and 200 <= container_status < 300:
        raw = container_body if isinstance(container_body, bytes) else _text(
            container_body).encode("utf-8")
        headers = {"x-amzn-RequestId": rid, "x-Amzn-Invoked-Production-Variant": variant}
        if container_content_type is not None:
            headers["Content-Type"] = container_content_type
        boto = {"ResponseMetadata": {**meta, "HTTPStatusCode": 200, "HTTPHeaders": headers},
                "InvokedProductionVariant": variant, "Body": raw}
        if container_content_type is not None:
            boto["ContentType"] = container_content_type
        out = RuntimeOutcome(ok=True, http_status=200, http_headers=headers, http_body=raw,
                             content_type=container_content_type, boto=boto)
        findings = []
        if len(raw) > RESPONSE_LIMIT:
            findings.append(Finding("KD661", "error", "runtime",
                                    f"the response is {len(raw)} bytes; SageMaker Runtime caps "
                                    f"responses at {RESPONSE_LIMIT}",
                                    "return fewer or smaller outputs per request"))
        out.findings = findings
        out.record = StageRecord(stage="runtime", verdict="warn" if findings else "ok",
                                 holds=f"200, {len(raw)} bytes", size=len(raw),
                                 excerpt=excerpt(raw[:512]),
                                 detail={"content_type": container_content_type})
        return out

    body = _text(container_body)
    if container_status is None:
        status_in_text, quoted = 0, TIMEOUT_TEXT.format(c=container_name)
        kind, original_status = "server", 0  # [inferred] what OriginalStatusCode holds is unknown
        original = quoted
    else:
        status_in_text, quoted = container_status, body
        kind = "client" if container_status < 500 else "server"
        original_status, original = container_status, body
    message = (f'Received {kind} error ({status_in_text}) from {container_name} with message '
               f'"{quoted}". See {console_url(endpoint_name, region)} in account {account} for '
               "more information.")
    capped = original[:MESSAGE_MAX]
    arn = log_group_arn(endpoint_name, region, account)
    doc = {"ErrorCode": "CLIENT_ERROR_FROM_MODEL" if kind == "client"
           else "SERVER_ERROR_FROM_MODEL",  # [inferred] the server form was not seen
           "LogStreamArn": arn, "Message": message, "OriginalMessage": capped,
           "OriginalStatusCode": original_status}
    raw = json.dumps(doc).encode("utf-8")
    headers = {"x-amzn-RequestId": rid, "x-amzn-ErrorType": "ModelError",
               "Content-Type": "application/json"}
    boto = {"Error": {"Code": "ModelError", "Message": message},
            "ResponseMetadata": {**meta, "HTTPStatusCode": 424, "HTTPHeaders": headers},
            "Message": message, "OriginalStatusCode": original_status,
            "OriginalMessage": capped, "LogStreamArn": arn}
    findings = [Finding("KD660", "error", "runtime",
                        f"boto3 raises ModelError (424): the container answered "
                        f"{'nothing within 60 s' if container_status is None else container_status}"
                        f": {excerpt(original, 160)}",
                        "read OriginalMessage; the container's log stream has the details")]
    if len(original) > MESSAGE_MAX:
        findings.append(Finding("KD662", "info", "runtime",
                                f"OriginalMessage is capped at {MESSAGE_MAX} characters; the "
                                f"container body had {len(original)}", ""))
    if container_content_type == "text/html" or body.lstrip().startswith("<"):
        findings.append(Finding("KD663", "info", "runtime",
                                "the container's error is an HTML page (nginx or gunicorn), not "
                                "TF Serving JSON", ""))
    out = RuntimeOutcome(ok=False, http_status=424, http_headers=headers, http_body=raw,
                         error_code="ModelError", message=message,
                         original_status_code=original_status, original_message=capped,
                         log_stream_arn=arn, boto=boto, findings=findings)
    out.record = StageRecord(stage="runtime", verdict="fail",
                             holds=f"ModelError 424 (container {original_status})",
                             size=len(raw), excerpt=excerpt(message),
                             detail={"original_status_code": original_status})
    return out


def validation_error(message: str, *, request_id: str | None = None) -> RuntimeOutcome:
    """A request the Runtime refuses before the container (oversized body or header, bad name):
    400 with x-amzn-ErrorType ValidationError, which boto3 raises as ValidationError."""
    rid = request_id or str(uuid.uuid4())
    headers = {"x-amzn-RequestId": rid, "x-amzn-ErrorType": "ValidationError",
               "Content-Type": "application/json"}
    raw = json.dumps({"message": message}).encode("utf-8")
    boto = {"Error": {"Code": "ValidationError", "Message": message},
            "ResponseMetadata": {"RequestId": rid, "RetryAttempts": 0, "HTTPStatusCode": 400,
                                 "HTTPHeaders": headers}}
    out = RuntimeOutcome(ok=False, http_status=400, http_headers=headers, http_body=raw,
                         error_code="ValidationError", message=message, boto=boto)
    out.record = StageRecord(stage="runtime", verdict="fail", holds="ValidationError 400",
                             size=len(raw), excerpt=excerpt(message))
    return out
