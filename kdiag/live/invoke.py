"""InvokeEndpoint, politely: a request budget, a rate limit, bounded retries, errors classified.

Retried (with exponential backoff and jitter): throttling, ModelNotReadyException,
ServiceUnavailable, InternalFailure, other 5xx from the service, dropped connections. Never
retried: ModelError and ValidationError (the request is the problem), InternalDependencyException
(retrying does not help, §1.3) and read timeouts (the model may have run; a retry duplicates the
inference). Every attempt counts against the budget, so --max-requests is a hard cap on the
calls the endpoint sees.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kdiag.errors import KdiagError

if TYPE_CHECKING:
    from kdiag.live.session import AwsClients
    from kdiag.path.container import Request

THROTTLING_CODES = frozenset({
    "ThrottlingException", "Throttling", "ThrottledException", "RequestThrottled",
    "RequestThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
    "SlowDown", "ProvisionedThroughputExceededException", "429",
})
TRANSIENT_CODES = frozenset({"ServiceUnavailable", "InternalFailure", "InternalServerError",
                             "500", "502", "503", "504", "RequestTimeout",
                             "RequestTimeoutException"})
NOT_READY = "ModelNotReadyException"


class RateLimiter:
    """At most `rate` request starts per second, across threads (evenly spaced)."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 0.0 if rate <= 0 else 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep

    def wait(self) -> None:
        if self.interval == 0.0:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


class Budget:
    """The number of runtime calls left (--max-requests). Thread-safe."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.used >= self.total:
                return False
            self.used += 1
            return True

    @property
    def left(self) -> int:
        return max(0, self.total - self.used)


@dataclass
class RetryPolicy:
    retries: int = 3  # retries after the first try, for retryable errors only
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_total_delay: float = 30.0


@dataclass
class InvokeOutcome:
    """One InvokeEndpoint call (after retries): what boto3 returned or raised."""

    ok: bool
    kind: str  # "ok" | "model-error" | "validation" | "throttled" | "not-ready" | "timeout"
    #            | "service" | "connection" | "client" | "budget"
    status: int | None = None  # HTTP status of the Runtime's answer
    body: bytes = b""
    content_type: str | None = None
    invoked_variant: str | None = None
    request_id: str | None = None
    error_code: str | None = None
    message: str | None = None
    original_status_code: int | None = None
    original_message: str | None = None
    log_stream_arn: str | None = None
    attempts: int = 0
    retried: list[str] = field(default_factory=list)  # error code of each retried attempt
    backoff_seconds: float = 0.0
    t_sent_ms: int = 0  # wall clock, epoch ms, around the last attempt (for the log window)
    t_done_ms: int = 0
    elapsed: float = 0.0

    @property
    def container_message(self) -> str | None:
        """TF Serving's own error text when OriginalMessage is its {"error": ...} body."""
        from kdiag.replays.outputs import loads

        text = self.original_message
        if not text:
            return None
        try:
            doc = loads(text)
        except ValueError:
            return text
        if isinstance(doc, dict) and isinstance(doc.get("error"), str):
            return doc["error"]
        return text

    def to_json(self) -> dict:
        return {
            "ok": self.ok, "kind": self.kind, "status": self.status,
            "content_type": self.content_type, "invoked_variant": self.invoked_variant,
            "request_id": self.request_id, "error_code": self.error_code,
            "message": self.message, "original_status_code": self.original_status_code,
            "original_message": self.original_message, "log_stream_arn": self.log_stream_arn,
            "attempts": self.attempts, "retried": self.retried,
            "backoff_seconds": round(self.backoff_seconds, 3),
            "elapsed_seconds": round(self.elapsed, 3),
            "body": self.body.decode("utf-8", "replace") if self.ok else None,
        }


def classify(exc: BaseException) -> tuple[str, dict[str, Any]]:
    """(kind, fields) for an exception raised by invoke_endpoint."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    from kdiag.live.session import ACCESS_DENIED_CODES, CREDENTIAL_ERROR_CODES, error_code

    if isinstance(exc, ReadTimeoutError):
        return "timeout", {"message": "no answer within the read timeout (--timeout)"}
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return "connection", {"message": type(exc).__name__}
    if isinstance(exc, ConnectionClosedError):
        return "service", {"message": "the connection was closed before an answer",
                           "error_code": "ConnectionClosed"}
    resp = getattr(exc, "response", None)
    if not isinstance(resp, dict):
        return "client", {"message": f"{type(exc).__name__}: {exc}"}
    code = error_code(exc) or ""
    meta = resp.get("ResponseMetadata") or {}
    fields: dict[str, Any] = {
        "error_code": code, "message": (resp.get("Error") or {}).get("Message") or str(exc),
        "status": meta.get("HTTPStatusCode"), "request_id": meta.get("RequestId"),
    }
    if code == "ModelError":
        osc = resp.get("OriginalStatusCode")
        fields.update(original_status_code=int(osc) if osc is not None else None,
                      original_message=resp.get("OriginalMessage"),
                      log_stream_arn=resp.get("LogStreamArn"))
        msg = fields["message"] or ""
        if "timed out while waiting for a response" in msg:
            return "timeout", fields
        return "model-error", fields
    if code in THROTTLING_CODES:
        return "throttled", fields
    if code == NOT_READY:
        return "not-ready", fields
    if code in ("ValidationError", "ValidationException"):
        return "validation", fields
    if code in CREDENTIAL_ERROR_CODES or code in ACCESS_DENIED_CODES:
        return "denied", fields
    status = fields["status"] or 0
    if code in TRANSIENT_CODES or status in (500, 502, 503, 504):
        return "service-transient", fields
    if status == 429:
        return "throttled", fields
    return "service" if status >= 500 else "client", fields


RETRYABLE = frozenset({"throttled", "not-ready", "service-transient"})


def invoke(clients: AwsClients, endpoint_name: str, req: Request, *, budget: Budget,
           limiter: RateLimiter, policy: RetryPolicy | None = None,
           target_variant: str | None = None, inference_id: str | None = None,
           sleep: Callable[[float], None] = time.sleep,
           rng: random.Random | None = None) -> InvokeOutcome:
    """One InvokeEndpoint, retried only when retrying can help, within the budget.

    Raises KdiagError only when AWS cannot be used at all (credentials, no route to the
    runtime); every answer from the endpoint, errors included, is an InvokeOutcome.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from kdiag.live.session import fatal_error

    policy = policy or RetryPolicy()
    rng = rng or random.Random()
    kwargs: dict[str, Any] = {"EndpointName": endpoint_name, "Body": req.body_bytes}
    if req.content_type is not None:
        kwargs["ContentType"] = req.content_type
    if req.accept is not None:
        kwargs["Accept"] = req.accept
    if req.custom_attributes is not None:
        kwargs["CustomAttributes"] = req.custom_attributes
    if target_variant:
        kwargs["TargetVariant"] = target_variant
    if inference_id:
        kwargs["InferenceId"] = inference_id
    runtime = clients.runtime
    attempts, retried, slept = 0, [], 0.0
    t_start = time.monotonic()
    while True:
        if not budget.take():
            return InvokeOutcome(ok=False, kind="budget", attempts=attempts, retried=retried,
                                 backoff_seconds=slept,
                                 message="--max-requests reached before this request was sent"
                                 if attempts == 0 else "--max-requests reached while retrying",
                                 elapsed=time.monotonic() - t_start)
        limiter.wait()
        attempts += 1
        t_sent = int(time.time() * 1000)
        try:
            resp = runtime.invoke_endpoint(**kwargs)
            body = resp["Body"].read()
            meta = resp.get("ResponseMetadata") or {}
            return InvokeOutcome(
                ok=True, kind="ok", status=meta.get("HTTPStatusCode", 200), body=body,
                content_type=resp.get("ContentType"),
                invoked_variant=resp.get("InvokedProductionVariant"),
                request_id=meta.get("RequestId"), attempts=attempts, retried=retried,
                backoff_seconds=slept, t_sent_ms=t_sent, t_done_ms=int(time.time() * 1000),
                elapsed=time.monotonic() - t_start)
        except (ClientError, BotoCoreError) as e:
            t_done = int(time.time() * 1000)
            kind, fields = classify(e)
            if kind in ("connection", "denied") or (kind == "client" and not fields.get("status")):
                fatal = fatal_error(e, clients, "sagemaker-runtime",
                                    f"invoke endpoint {endpoint_name!r}")
                if fatal:
                    raise fatal from None
                if kind != "client":
                    raise KdiagError(clients.redact(
                        f"Cannot invoke {endpoint_name!r}: {fields.get('message')}")) from None
            if kind in RETRYABLE and len(retried) < policy.retries:
                delay = min(policy.max_delay, policy.base_delay * (2 ** len(retried)))
                delay *= 0.5 + 0.5 * rng.random()  # jitter, so parallel probes spread out
                if slept + delay <= policy.max_total_delay:
                    retried.append(fields.get("error_code") or kind)
                    sleep(delay)
                    slept += delay
                    continue
            if kind == "service-transient":
                kind = "service"
            return InvokeOutcome(
                ok=False, kind=kind, status=fields.get("status"),
                error_code=fields.get("error_code"),
                message=clients.redact(str(fields.get("message") or "")),
                original_status_code=fields.get("original_status_code"),
                original_message=fields.get("original_message"),
                log_stream_arn=fields.get("log_stream_arn"),
                request_id=fields.get("request_id"), attempts=attempts, retried=retried,
                backoff_seconds=slept, t_sent_ms=t_sent, t_done_ms=t_done,
                elapsed=time.monotonic() - t_start)
