"""kdiag: find why a Keras/TensorFlow model fails behind a SageMaker endpoint, before deploying.

The Python API (kdiag/api.py; result types in kdiag/results.py):

    kdiag.inspect(model) -> ModelReport
    kdiag.sample(model_or_signature, content_type=..., n=..., seed=...) -> list[Payload]
    kdiag.validate(payload, model_or_signature, content_type=..., serializer=...) -> Diagnosis
    kdiag.replay(payload_or_payloads, model, ...) -> Replay
    kdiag.probe(endpoint_name, ...) -> ProbeReport
    kdiag.check(model, ...) -> CheckReport
    kdiag.compare(expected, actual, atol=..., rtol=...) -> Comparison

Importing kdiag is cheap (no numpy, TensorFlow or boto3): the names above are loaded on first
use, and heavy imports live inside the functions that need them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (kept cheap)

__version__ = "0.1.0"

_FUNCTIONS = ("inspect", "sample", "validate", "replay", "probe", "check", "compare")
_TYPES = ("ModelReport", "Payload", "Diagnosis", "Replay", "ProbeReport", "CheckReport",
          "Comparison")
_ERRORS = ("KdiagError",)
__all__ = [  # a literal, so linters and IDEs see the lazy names
    "inspect", "sample", "validate", "replay", "probe", "check", "compare",
    "ModelReport", "Payload", "Diagnosis", "Replay", "ProbeReport", "CheckReport", "Comparison",
    "KdiagError", "__version__",
]

if TYPE_CHECKING:
    from kdiag.api import check, compare, inspect, probe, replay, sample, validate
    from kdiag.errors import KdiagError
    from kdiag.results import (
        CheckReport,
        Comparison,
        Diagnosis,
        ModelReport,
        Payload,
        ProbeReport,
        Replay,
    )


def __getattr__(name: str) -> object:
    # PEP 562: the API loads when first touched, so `import kdiag` (and the CLI) stays cheap.
    import importlib

    if name in _FUNCTIONS:
        module = "kdiag.api"
    elif name in _TYPES:
        module = "kdiag.results"
    elif name in _ERRORS:
        module = "kdiag.errors"
    else:
        raise AttributeError(f"module 'kdiag' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
