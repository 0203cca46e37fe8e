"""`kdiag serve` on a shared machine: bounded connections, bodies and headers, well-formed
errors, and a clean stop on SIGINT and SIGTERM."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import time

from kdiag.path.local_endpoint import LocalEndpoint
from kdiag.serve.server import start_server
from tests.conftest import MODELS
from tests.security._run import finish, start

MODEL = str(MODELS / "tokens" / "1")


def _raw(port: int, request: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def _status(raw: bytes) -> int:
    line = raw.split(b"\r\n", 1)[0].split()
    assert line[0] == b"HTTP/1.1" and len(line[1]) == 3, raw[:200]
    return int(line[1])


def _get(port: int, path: str, body: bytes | None = None, method: str = "GET",
         headers: dict | None = None) -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def test_serve_bounds_connections_bodies_and_headers_and_stops_on_signals(tmp_path):
    with LocalEndpoint(MODEL, framework_version="2.11") as ep, \
            start_server(ep, max_connections=32, header_timeout=3.0,
                         max_body=1 << 20) as server:
        port = server.port
        # 200 idle connections: /ping still answers at once (the longest-idle make room), and
        # idle connections are closed after the header deadline.
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
        t = time.perf_counter()
        assert _get(port, "/ping")[0] == 200
        assert time.perf_counter() - t < 2
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"GET /ping HTTP/1.1\r\n")  # never finishes its head
        slow.settimeout(15)
        t = time.perf_counter()
        assert slow.recv(100) == b"" and time.perf_counter() - t < 10
        for s in idle + [slow]:
            s.close()

        # Bodies: the Runtime route at SageMaker's 6 MiB with its ValidationError, decided from
        # Content-Length without reading; /invocations at the configured limit with 413.
        raw = _raw(port, b"POST /endpoints/local/invocations HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 7000000\r\n\r\n")
        assert _status(raw) == 400 and b"ValidationError" in raw
        assert b"less than or equal to 6291456" in raw
        status, body = _get(port, "/invocations", b"x" * (2 << 20), "POST",
                            {"Content-Type": "application/json"})
        assert status == 413 and b"--max-body-mb" in body

        # Content-Length: duplicated or malformed -> 400.
        for cl in (b"Content-Length: 2\r\nContent-Length: 2\r\n", b"Content-Length: +2\r\n",
                   b"Content-Length: 0x2\r\n", b"Content-Length: 2, 2\r\n"):
            raw = _raw(port, b"POST /invocations HTTP/1.1\r\nHost: x\r\n" + cl + b"\r\n{}")
            assert _status(raw) == 400, (cl, raw[:100])

        # Every error is a well-formed HTTP answer.
        status, body = _get(port, "/v1/models/model/versions/" + "9" * 5000)
        assert status == 400 and b"Failed to convert version" in body
        deep = b'{"instances": ' + b"[" * 1_000_000 + b"]" * 1_000_000 + b"}"
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("POST", "/v1/models/model:predict", body=deep)
        r = c.getresponse()
        assert 100 <= r.status <= 599 and json.loads(r.read())
        c.close()

    # SIGINT and SIGTERM stop `kdiag serve` cleanly.
    for sig in (signal.SIGINT, signal.SIGTERM):
        t0 = time.perf_counter()
        p, out_dir = start(["serve", MODEL, "--port", "0"])
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and "Ctrl-C stops" not in (out_dir / "out").read_text():
            time.sleep(0.2)
        p.send_signal(sig)
        r = finish(p, out_dir, t0, timeout=30)
        assert r.rc == 0 and "kdiag serve: stopped" in r.out, (sig, r.rc, r.err[-500:])
        assert "Traceback" not in r.err
