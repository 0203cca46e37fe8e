"""The public suites' tests that need facts only Docker (or SageMaker itself) gives: kept here
as skips with the reason, so the adapted suites' pass/skip counts are honest."""

from __future__ import annotations

import pytest

DOCKER_ONLY = {
    "g1/test_multi_tfs.py::test_predict (SAGEMAKER_TFS_INSTANCE_COUNT=2, 4 gunicorn workers)":
        "several TF Serving processes and gunicorn workers: kdiag serve has one model process; "
        "the request and answer are test_container_local.py's test_predict",
    "g1/test_nginx_config.py (reading the container's stdout until 'started nginx')":
        "the nginx config lines are checked in test_startup_config_local.py from kdiag's log",
    "dlc/test_tfs_batching.py (TF Serving batching behaviour under load)":
        "batching changes timing only; the config lines are in test_startup_config_local.py",
    "dlc-2.20/test_conv_gpu.py": "needs a GPU and cuDNN",
    "dlc-2.20/test_batch_transform.py": "a SageMaker batch transform job",
    "dlc-2.20/test_mme_concurrency.py": "SageMaker's multi-model instance memory management",
    "dlc-2.20/test_nginx_env_vars.py (container logs in CloudWatch)":
        "the container's CloudWatch log stream",
}


@pytest.mark.parametrize("test", sorted(DOCKER_ONLY))
def test_needs_docker_or_sagemaker(test):
    pytest.skip(DOCKER_ONLY[test])
