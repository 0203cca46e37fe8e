"""test_nginx_config.py, test_tfs_batching.py and the default-model / several-models parts of
the public suites. The public tests read the container's log for the configuration it writes;
kdiag serve logs the same configuration from the same SAGEMAKER_* variables
(kdiag.serve.startup), so the adapted tests read that. Routing several models of one archive
(tfs-model-name, SAGEMAKER_TFS_DEFAULT_MODEL_NAME) runs the real models."""

from __future__ import annotations

import json

import pytest

from kdiag.serve.startup import container_startup
from tests.upstream_suites.conftest import FIXTURES_ARCHIVES, Http, serve

MODELS = [("half_plus_three", "half_plus_three", ["00000123", "00000124"])]


def log_of(env: dict) -> str:
    return "\n".join(container_startup(MODELS, env).lines)


def test_run_nginx_with_default_parameters():
    log = log_of({})
    assert log.count("error_log  /dev/stderr error;") == 1
    assert log.count("proxy_read_timeout 60;") == 1


def test_run_nginx_with_env_var_parameters():
    log = log_of({"SAGEMAKER_TFS_NGINX_LOGLEVEL": "info",
                  "SAGEMAKER_NGINX_PROXY_READ_TIMEOUT_SECONDS": "63"})
    assert log.count("error_log  /dev/stderr info;") == 1
    assert log.count("proxy_read_timeout 63;") == 1


def test_run_nginx_with_higher_gunicorn_parameter():
    log = log_of({"SAGEMAKER_NGINX_PROXY_READ_TIMEOUT_SECONDS": "60",
                  "SAGEMAKER_GUNICORN_TIMEOUT_SECONDS": "120"})
    assert log.count("proxy_read_timeout 120;") == 1


def test_run_tfs_with_batching_parameters():
    log = log_of({"SAGEMAKER_TFS_ENABLE_BATCHING": "true", "SAGEMAKER_TFS_MAX_BATCH_SIZE": "16",
                  "SAGEMAKER_TFS_BATCH_TIMEOUT_MICROS": "500",
                  "SAGEMAKER_TFS_NUM_BATCH_THREADS": "100",
                  "SAGEMAKER_TFS_MAX_ENQUEUED_BATCHES": "1"})
    for line in ("max_batch_size { value: 16 }", "batch_timeout_micros { value: 500 }",
                 "num_batch_threads { value: 100 }", "max_enqueued_batches { value: 1 }"):
        assert log.count(line) == 1


def test_model_config_lists_every_version():
    log = log_of({})
    assert "name: 'half_plus_three'" in log and "base_path: '/opt/ml/model/half_plus_three'" in log
    assert "versions: 123" in log and "versions: 124" in log


def test_bad_settings_stop_the_container():
    assert "must be 'true' or 'false'" in container_startup(
        MODELS, {"SAGEMAKER_TFS_ENABLE_BATCHING": "yes"}).failure
    assert "names no model" in container_startup(
        MODELS, {"SAGEMAKER_TFS_DEFAULT_MODEL_NAME": "nope"}).failure


@pytest.mark.tf
def test_several_models_in_one_archive_route_by_name_and_default():
    server, ep = serve(FIXTURES_ARCHIVES / "two_models.tar.gz", "2.19")
    try:
        c = Http(server.host, server.port)

        def call(body, attrs=None):
            headers = {"Content-Type": "application/json"}
            if attrs:
                headers["X-Amzn-SageMaker-Custom-Attributes"] = attrs
            status, _, raw = c.post("/invocations", body, headers)
            return status, json.loads(raw)

        assert call('{"instances": [[1, 1, 1]]}') == (200, {"predictions": [[4.0]]})  # a
        assert call('{"instances": [3.0]}', "tfs-model-name=b") == (200, {"predictions": [7.0]})
        assert call('{"instances": [3.0]}', "tfs-model-name=c")[0] == 404
        assert c.json("GET", "/v1/models/b")[0] == 200
        ep.route_default_to("b")  # SAGEMAKER_TFS_DEFAULT_MODEL_NAME=b
        assert call('{"instances": [3.0]}') == (200, {"predictions": [7.0]})
    finally:
        server.stop()
        ep.close()
