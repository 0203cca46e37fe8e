"""invoke_endpoint(TargetModel=...): the name a multi-model endpoint serves the target under.

One rule for every command that takes `--target-model` (validate, replay in-process, on Ray
and over a capture) and for the multi-model server (kdiag.serve.multi_model), which loads the
target itself.
"""

from __future__ import annotations

import hashlib


def target_model_name(target: str) -> str:
    """The name the platform loads a TargetModel under ([inferred]: SageMaker passes an opaque
    id as `model_name` to POST /models; kdiag uses a hash of the TargetModel)."""
    return hashlib.sha256(target.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def served_model_name(model_name: str | None, target_model: str | None) -> str | None:
    """The model name requests are routed to: --model-name when given, else the TargetModel's
    loaded name, else None (the container's own rule for a single model)."""
    if target_model is None or model_name is not None:
        return model_name
    return target_model_name(target_model)
