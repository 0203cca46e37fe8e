"""Signature inference against real models behind kdiag's local runtime (real boto3 calls)."""

from __future__ import annotations

import pytest

from kdiag.live.infer_signature import Answer, infer_signature
from kdiag.live.invoke import Budget, RateLimiter, invoke
from kdiag.live.session import AwsClients, AwsOptions
from kdiag.path.container import Request
from tests._aws_rig import set_fake_env
from tests.conftest import MODELS

pytestmark = pytest.mark.tf


def _infer(model_dir, monkeypatch):
    from kdiag.path.local_endpoint import LocalEndpoint
    from kdiag.serve.server import start_server

    set_fake_env(monkeypatch)
    with LocalEndpoint(model_dir) as ep, start_server(ep, endpoint_name="ep",
                                                      runtime_deadline=None) as srv:
        clients = AwsClients(AwsOptions(runtime_endpoint_url=srv.url, timeout=30))
        budget = Budget(20)

        def send(body: bytes) -> Answer:
            out = invoke(clients, "ep", Request(body, "application/json"), budget=budget,
                         limiter=RateLimiter(100))
            if out.ok:
                return Answer(True, out.body.decode(), 200)
            return Answer(False, out.container_message or "", out.original_status_code)

        return infer_signature(send)


def test_two_named_inputs_of_different_dtypes(monkeypatch):
    inf = _infer(MODELS / "two_inputs" / "1", monkeypatch)
    assert [(i.name, i.dtype) for i in inf.inputs] == [("features", "float32"), ("ids", "int64")]
    assert all(i.dtype_from == "type error" for i in inf.inputs)


def test_image_input_rank_comes_from_the_convolution_message(monkeypatch):
    inf = _infer(MODELS / "image" / "1", monkeypatch)
    [i] = inf.inputs
    assert (i.name, i.dtype, i.shape, i.shape_from) == ("image", "float32", (-1, -1, -1, -1),
                                                        "graph error")
    assert len(inf.requests) <= 5


def test_int_tokens_accepted_at_rank_two_leave_the_size_unknown(monkeypatch):
    inf = _infer(MODELS / "tokens" / "1", monkeypatch)
    [i] = inf.inputs
    assert (i.dtype, i.shape, i.shape_from) == ("int32", (-1, -1), "accepted")


def test_string_input_is_recognised_by_the_parser_accepting_a_string(monkeypatch):
    inf = _infer(MODELS / "image_bytes" / "1", monkeypatch)
    [i] = inf.inputs
    assert (i.name, i.dtype, i.dtype_from) == ("image_bytes", "string", "accepted a string")
