"""The endpoint's CloudWatch log lines around failed requests.

Log group /aws/sagemaker/Endpoints/<name>, streams <variant>/<instance-id> (aws-apis-detail.md
§3). Correlation is by time (and stream when known): the TF Serving container does not write the
request id. kdiag asks FilterLogEvents for a window around the requests and picks the relevant
lines itself (moto and real CloudWatch differ on filter patterns and prefixes, §5.3), bounded in
pages, events and polls. /ping access lines are dropped.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kdiag.live.session import AwsClients

WINDOW_BEFORE_MS = 5_000  # clock skew between the caller and the instance
WINDOW_AFTER_MS = 60_000  # the container's deadline; its traceback is written before it answers
MAX_EVENTS = 2_000
MAX_PAGES = 10
CONTEXT_AFTER = 15
MAX_LINES = 80

# Error-looking lines, and nginx access-log lines of a failed invocation (the container's nginx
# logs every request to stdout, so a rejected request leaves `"POST /invocations ..." 4xx`).
_RELEVANT = re.compile(r"Traceback|\b(?:ERROR|FATAL|CRITICAL)\b|\[(?:error|crit|alert|emerg)\]|"
                       r"Exception|[Ee]rror:|Failed to|failed|Invalid argument|INVALID_ARGUMENT|"
                       r"\"POST /invocations[^\"]*\" [45]\d\d ")
_PING = re.compile(r"\"(?:GET|POST) /ping")


@dataclass
class LogLocation:
    group: str
    stream: str | None = None
    region: str | None = None
    account: str | None = None


def parse_log_stream_arn(arn: str | None) -> LogLocation | None:
    """`arn:aws:logs:<region>:<account>:log-group:<group>[:log-stream:<stream>][:*]`.
    The ModelError value was seen holding a group ARN only (§1.5); both forms are accepted."""
    if not arn or ":log-group:" not in arn:
        return None
    head, _, rest = arn.partition(":log-group:")
    parts = head.split(":")
    region = parts[3] if len(parts) > 3 else None
    account = parts[4] if len(parts) > 4 else None
    group, _, stream = rest.partition(":log-stream:")
    group = group.removesuffix(":*")
    return LogLocation(group=group, stream=stream or None, region=region, account=account)


def log_group(endpoint_name: str) -> str:
    return f"/aws/sagemaker/Endpoints/{endpoint_name}"


@dataclass
class LogEvent:
    timestamp: int
    stream: str
    message: str

    def to_json(self) -> dict:
        return {"timestamp": self.timestamp, "stream": self.stream, "message": self.message}


@dataclass
class LogFetch:
    """The events of one group (and stream, or stream prefix) over a window."""

    group: str
    streams: list[str] | None
    prefix: str | None
    start_ms: int
    end_ms: int
    events: list[LogEvent] = field(default_factory=list)
    truncated: bool = False
    error: str | None = None
    polls: int = 0


def fetch_events(clients: AwsClients, loc: LogLocation, start_ms: int, end_ms: int, *,
                 prefix: str | None = None, max_events: int = MAX_EVENTS,
                 max_pages: int = MAX_PAGES) -> LogFetch:
    """One bounded FilterLogEvents walk. Errors become `error`, never exceptions: logs are a
    bonus, and a probe without logs:FilterLogEvents permission still reports the rest."""
    from botocore.exceptions import BotoCoreError, ClientError

    from kdiag.live.session import error_code, error_message

    streams = [loc.stream] if loc.stream else None
    out = LogFetch(group=loc.group, streams=streams, prefix=None if streams else prefix,
                   start_ms=start_ms, end_ms=end_ms)
    kwargs: dict = {"logGroupName": loc.group, "startTime": start_ms, "endTime": end_ms}
    if streams:
        kwargs["logStreamNames"] = streams
    elif prefix:
        kwargs["logStreamNamePrefix"] = prefix
    try:
        logs = clients.logs
        token = None
        for _ in range(max_pages):
            page = logs.filter_log_events(**kwargs, **({"nextToken": token} if token else {}))
            for ev in page.get("events") or []:
                name = ev.get("logStreamName", "")
                if prefix and not streams and not name.startswith(prefix):
                    continue  # moto ignores logStreamNamePrefix (§5.3)
                out.events.append(LogEvent(int(ev.get("timestamp", 0)), name,
                                           str(ev.get("message", "")).rstrip("\n")))
            token = page.get("nextToken")
            if not token or len(out.events) >= max_events:
                break
        out.truncated = bool(token)
    except (ClientError, BotoCoreError) as e:
        code = error_code(e)
        if code == "ResourceNotFoundException":
            out.error = (f"log group {loc.group} does not exist (or the stream is gone): the "
                         "container may never have started, or logs go elsewhere")
        else:
            out.error = clients.redact(f"{code or type(e).__name__}: {error_message(e)}")
    out.events.sort(key=lambda e: (e.timestamp, e.stream))
    del out.events[max_events:]
    return out


def relevant_lines(events: list[LogEvent], start_ms: int, end_ms: int, *,
                   max_lines: int = MAX_LINES) -> list[LogEvent]:
    """The lines that explain a failure within [start_ms, end_ms]: each error-looking line with
    the lines that follow it (a traceback), /ping noise removed, in time order."""
    window = [e for e in events if start_ms <= e.timestamp <= end_ms and not _PING.search(e.message)]
    keep: set[int] = set()
    for i, ev in enumerate(window):
        if _RELEVANT.search(ev.message):
            keep.update(range(max(0, i - 1), min(len(window), i + CONTEXT_AFTER + 1)))
    return [window[i] for i in sorted(keep)][:max_lines]


def poll_events(clients: AwsClients, loc: LogLocation, start_ms: int, end_ms: int, *,
                prefix: str | None = None, wait: float = 10.0, interval: float = 2.5,
                sleep: Callable[[float], None] = time.sleep) -> LogFetch:
    """Fetch, and while nothing relevant has arrived, look again until `wait` seconds have
    passed (log delivery lags by seconds). wait=0: one look."""
    deadline = time.monotonic() + max(0.0, wait)
    polls = 0
    while True:
        polls += 1
        got = fetch_events(clients, loc, start_ms, end_ms, prefix=prefix)
        got.polls = polls
        if got.error or relevant_lines(got.events, start_ms, end_ms) or \
                time.monotonic() + interval > deadline:
            return got
        sleep(interval)
