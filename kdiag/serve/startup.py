"""What the container logs at start-up, from its SAGEMAKER_* environment, in its own terms.

Sources: serve.py (ServiceManager.__init__, _create_tfs_config, _create_nginx_config) and
tfs_utils.create_batching_config in aws/deep-learning-containers (2.2-2.19 at 6712253d; the
same rules in the G1 repo and the 2.20+ rewrite). `kdiag serve` reads the same variables from
its own environment and prints the same configuration, so a test (or a user) can check what the
container would run with: the TF Serving model config, the batching parameters, and the nginx
settings (log level, proxy_read_timeout).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from kdiag.errors import KdiagError

_BATCHING = (  # key, variable, default (None: the CPU count)
    ("max_batch_size", "SAGEMAKER_TFS_MAX_BATCH_SIZE", 8),
    ("batch_timeout_micros", "SAGEMAKER_TFS_BATCH_TIMEOUT_MICROS", 1000),
    ("num_batch_threads", "SAGEMAKER_TFS_NUM_BATCH_THREADS", None),
    ("max_enqueued_batches", "SAGEMAKER_TFS_MAX_ENQUEUED_BATCHES", None),
)


@dataclass
class Startup:
    """The container's start-up configuration for one artifact."""

    lines: list[str] = field(default_factory=list)  # what it logs
    default_model: str | None = None  # SAGEMAKER_TFS_DEFAULT_MODEL_NAME, when set
    failure: str | None = None  # why it would not start


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise KdiagError(f"{name}={raw!r}: the container's int() fails on it (ValueError) and "
                         "it exits.") from None


def container_startup(models: list[tuple[str, str, list[str]]], env: Mapping[str, str] | None
                      = None, *, uses_gunicorn: bool = False) -> Startup:
    """`models`: (name, base folder relative to /opt/ml/model, versions) as discovered."""
    env = os.environ if env is None else env
    out = Startup()
    try:
        for var in ("SAGEMAKER_TFS_ENABLE_BATCHING", "SAGEMAKER_MULTI_MODEL"):
            value = env.get(var, "false").lower()
            if value not in ("true", "false"):
                raise KdiagError(f"{var} must be 'true' or 'false' (the container raises "
                                 "ValueError and exits)")
        batching = env.get("SAGEMAKER_TFS_ENABLE_BATCHING", "false").lower() == "true"
        loglevel = env.get("SAGEMAKER_TFS_NGINX_LOGLEVEL", "error")
        gunicorn_timeout = _int(env, "SAGEMAKER_GUNICORN_TIMEOUT_SECONDS", 30)
        proxy_timeout = _int(env, "SAGEMAKER_NGINX_PROXY_READ_TIMEOUT_SECONDS", 60)
    except KdiagError as e:
        out.failure = str(e)
        return out
    if gunicorn_timeout > proxy_timeout:
        out.lines.append("GUnicorn timeout was higher than Nginx proxy read timeout. Setting "
                         f"Nginx proxy read timeout from {proxy_timeout} seconds to "
                         f"{gunicorn_timeout} seconds to match GUnicorn timeout.")
        proxy_timeout = gunicorn_timeout
    if batching:
        cpus = os.cpu_count() or 1
        config = ""
        for key, var, default in _BATCHING:
            value = env.get(var, str(default if default is not None else cpus))
            config += f"{key} {{ value: {value} }}\n"
        out.lines.append("batching is enabled")
        out.lines.append("batching config: \n" + config)
    default = env.get("SAGEMAKER_TFS_DEFAULT_MODEL_NAME")
    names = [m[0] for m in models]
    if default is not None and default not in names:
        out.failure = (f"SAGEMAKER_TFS_DEFAULT_MODEL_NAME={default} names no model (found: "
                       f"{', '.join(names)}): the container's wait for that model fails and it "
                       "exits (2.2-2.19: at once, as \"Timed out after 55 seconds\").")
        return out
    out.default_model = default
    out.lines.append(f"using default model name: {default or names[0]}")
    config = "model_config_list: {\n"
    for name, base, versions in models:
        path = "/opt/ml/model" + (f"/{base}" if base else "")
        config += (f"  config: {{\n    name: '{name}'\n    base_path: '{path}'\n"
                   "    model_platform: 'tensorflow'\n    model_version_policy: {\n"
                   "      specific: {\n")
        config += "".join(f"        versions: {int(v)}\n" for v in versions)
        config += "      }\n    }\n  }\n"
    config += "}\n"
    out.lines.append("tensorflow serving model config: \n" + config)
    out.lines.append(f"nginx config: error_log  /dev/stderr {loglevel}; proxy_read_timeout "
                     f"{proxy_timeout}; ({'gunicorn' if uses_gunicorn else 'njs'} "
                     "handles /invocations)")
    return out
