"""`kdiag probe --fetch-model` downloads the endpoint's model.tar.gz; a graph that writes files is
refused (exit 2, op, function and flag named) before the local replay runs it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from kdiag.cli import cli
from tests._aws_rig import deploy, tar_bytes, upload
from tests.conftest import MODELS

pytestmark = pytest.mark.tf

NAME = "kdiag-trust-ep"  # the endpoint the rig's local runtime serves (the custom model)


def test_probe_fetch_model_refuses_an_untrusted_graph(env, runtime_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = upload(env, "models", "file_io/model.tar.gz", tar_bytes(MODELS / "file_io" / "1"))
    deploy(env, NAME, model_data_url=url)
    r = CliRunner().invoke(cli, ["probe", NAME, "--endpoint-url", env, "--runtime-endpoint-url",
                                 runtime_url, "--log-wait", "0", "--rate", "50",
                                 "--fetch-model"])
    assert r.exit_code == 2, r.output
    assert "WriteFile" in r.output and "--trust-model" in r.output
    assert not (tmp_path / "kdiag_file_io_written.txt").exists()
    assert not list(tmp_path.iterdir())


def test_kdiag_probe_takes_trust_model_per_call(env, runtime_url, tmp_path, monkeypatch):
    import kdiag
    from kdiag.model.graph_trust import UntrustedGraph, trusted

    monkeypatch.chdir(tmp_path)
    url = upload(env, "models", "file_io/model.tar.gz", tar_bytes(MODELS / "file_io" / "1"))
    deploy(env, NAME, model_data_url=url)
    opts = {"endpoint_url": env, "runtime_endpoint_url": runtime_url, "log_wait": 0,
            "rate": 50, "fetch_model": True}
    with pytest.raises(UntrustedGraph, match="WriteFile"):
        kdiag.probe(NAME, **opts)
    assert not (tmp_path / "kdiag_file_io_written.txt").exists()
    report = kdiag.probe(NAME, trust_model=True, **opts)
    assert report.to_dict()["endpoint"] and (tmp_path / "kdiag_file_io_written.txt").exists()
    assert trusted() is False
    # a per-call cap reaches the fetched archive too (a finding: the probe goes on without it)
    capped = kdiag.probe(NAME, trust_model=True, limits={"archive-members": 2}, **opts)
    assert any(f["code"] == "KD812" and "archive-members cap (2)" in f["message"]
               for f in capped.to_dict()["findings"])
