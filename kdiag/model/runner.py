"""Runs a SavedModel signature the way TF Serving does: the `model` stage of the request path.

This is the only module in kdiag that imports TensorFlow (and Keras), lazily, inside functions,
once per process: `import kdiag.model.runner` stays cheap and works without TensorFlow installed.

Fidelity: tensorflow_model_server loads the `serve` MetaGraph into a TF1 Session and calls
`Session::Run` with the SignatureDef's tensor names (predict_util.cc, RunPredict). The tensors it
feeds have whatever shape the request had: nothing compares them with the signature's shape, so a
wrong rank or inner dimension fails inside the graph (e.g. "Matrix size-incompatible: ...").
`tf.saved_model.load(...).signatures[...]` cannot reproduce that (the concrete function checks
shapes in Python first), and neither can `Session.run` (its feed_dict checks shapes too), so the
runner feeds the C session directly, as TF Serving's C++ does. The same path also reproduces a
load-time quirk that only TF1-style loaders see: Keras 3 models written with
`tf.saved_model.save` restore no variables ("Could not find variable ..."), exactly as in
tensorflow/serving#2250.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kdiag.errors import KdiagError, TensorFlowMissing
from kdiag.model.signature import DEFAULT_SIGNATURE, DTYPE_NAMES, Signature, TensorSpec

SERVE_TAG = "serve"

# absl::StatusCode numbering (tensorflow/core/protobuf/error_codes.proto); TF Serving names the
# code in gRPC statuses and the container maps it to an HTTP status.
STATUS_CODES: dict[int, str] = {
    0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED",
    13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}


@dataclass
class RunResult:
    """One signature run. A graph failure is a value (ok=False), never an exception."""

    ok: bool
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # strings: object arrays of bytes
    code: str | None = None  # canonical status code name, e.g. "INVALID_ARGUMENT"
    message: str | None = None  # the op's own message, without the node annotation
    seconds: float = 0.0
    # TensorFlow's full status text, node annotation included: what TF Serving's REST error body
    # holds, e.g. 'Matrix size-incompatible: In[0]: [1,3], In[1]: [5,1]\n\t [[{{node ...}}]]'.
    detail: str | None = None


@dataclass
class KerasPredictResult:
    """`model.predict` in the notebook: the reference the endpoint's outputs are compared with."""

    ok: bool
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    error: str | None = None  # "TypeError: ..." when predict itself raised
    seconds: float = 0.0


# --------------------------------------------------------------------------------------------
# TensorFlow availability and the one lazy import
# --------------------------------------------------------------------------------------------

_import_lock = threading.Lock()


def tensorflow_available() -> bool:
    """Whether TensorFlow is installed, answered without importing it (that takes seconds)."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        return False


def require_tensorflow(what: str) -> None:
    """Fail early, in one plain paragraph, before a command that runs a model does any work."""
    if not tensorflow_available():
        raise TensorFlowMissing(what)


def _want_quiet() -> bool:
    # A user who set TF_CPP_MIN_LOG_LEVEL below 3 asked for TensorFlow's logs: keep them.
    level = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return level.strip() == "3"


@contextlib.contextmanager
def _quiet_native_stderr(enabled: bool) -> Iterator[None]:
    """Send fd 2 to /dev/null: TF 2.21's absl logging prints import banners (oneDNN, "All log
    messages before absl::InitializeLog()") that ignore TF_CPP_MIN_LOG_LEVEL."""
    if not enabled:
        yield
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _tf() -> Any:
    """Import TensorFlow once, quietly; raise TensorFlowMissing when it is not installed."""
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "compat"):
        return tf
    require_tensorflow("running the model")
    with _import_lock:
        # oneDNN's Conv2D kernel aborts the whole process (CHECK failure in MklConvOp) on a rank-3
        # image instead of returning "convolution input must be 4-dimensional"; the portable
        # kernels return the error as a status, so kdiag keeps oneDNN off unless the user chose.
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
        quiet = _want_quiet()
        with _quiet_native_stderr(quiet):
            import tensorflow as tf  # the one place kdiag imports TensorFlow
        # TensorFlow's import leaves ~10^6 long-lived objects; without freezing them every full
        # collection walks them all (~0.1 s), which dominated a 10,000-payload batch replay.
        gc.freeze()
        if quiet:
            import logging

            tf.get_logger().setLevel(logging.ERROR)
            with contextlib.suppress(Exception):
                import absl.logging

                absl.logging.set_verbosity(absl.logging.ERROR)
        return tf


# --------------------------------------------------------------------------------------------
# Error text
# --------------------------------------------------------------------------------------------

_ROOT_ERRORS = re.compile(r"^\d+ root error\(s\) found\.\s*\(0\)\s*([A-Z_]+):\s*", re.S)
_EAGER_OP_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\]\s*$")
_NODE_ANNOTATION = re.compile(r"\n\s*\[\[")  # "\n\t [[{{node ...}}]]", on its own line


def op_message(text: str) -> str:
    """The op's own message from TensorFlow's status text.

    Drops the node annotation ("\\n\\t [[{{node ...}}]]"), the "N root error(s) found. (0) CODE:"
    wrapper of multi-error statuses, and the eager "Graph execution error:" / "Detected at node"
    preamble, so findings can match on e.g. "Matrix size-incompatible: In[0]: [1,3], In[1]: [5,1]".
    """
    t = text.strip().removeprefix("Graph execution error:").strip()
    if t.startswith("Detected at node"):
        # Eager errors put a Python traceback first; the op message is the first unindented line
        # after it.
        lines = t.splitlines()
        rest = [ln for ln in lines[1:] if ln and not ln[0].isspace()]
        t = "\n".join(rest) if rest else t
    t = _ROOT_ERRORS.sub("", t)
    annotation = _NODE_ANNOTATION.search(t)
    if annotation:
        t = t[:annotation.start()]
    t = _EAGER_OP_SUFFIX.sub("", t.rstrip())
    return t.strip() or text.strip()


def _failure(code: str, detail: str, seconds: float = 0.0) -> RunResult:
    return RunResult(ok=False, code=code, message=op_message(detail), seconds=seconds,
                     detail=detail)


# --------------------------------------------------------------------------------------------
# SavedModel runner
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SigTensors:
    inputs: dict[str, tuple[Any, str, np.dtype]]  # alias -> (TF_Output, feed name, numpy dtype)
    outputs: list[tuple[str, Any]]  # (alias, TF_Output), in the SignatureDef's map order
    defaults: dict[str, np.ndarray]


def _check_savedmodel_dir(path: Path) -> None:
    if not path.exists():
        raise KdiagError(f"{path}: no such file or directory.")
    if not path.is_dir():
        raise KdiagError(f"{path} is not a directory: point at a SavedModel directory (the one "
                         "holding saved_model.pb and variables/).")
    if not (path / "saved_model.pb").is_file() and not (path / "saved_model.pbtxt").is_file():
        versions = sorted(p.name for p in path.iterdir() if p.is_dir() and p.name.isdigit())
        hint = (f" It holds version directories ({', '.join(versions)}): point at one of them, "
                "e.g. the highest, which TF Serving serves.") if versions else ""
        raise KdiagError(f"{path} holds no saved_model.pb, so it is not a SavedModel.{hint}")


class SavedModelRunner:
    """A SavedModel loaded once into a TF1 Session, run per signature as TF Serving runs it.

    Thread-safe: Session.run may be called concurrently. Loading failures that a person can fix
    (bad path, no `serve` tag, corrupt file) raise KdiagError; everything that happens while
    running a signature comes back as a RunResult.
    """

    def __init__(self, path: Path, *, signature_name: str = DEFAULT_SIGNATURE) -> None:
        self.path = Path(path)
        self.signature_name = signature_name
        _check_savedmodel_dir(self.path)
        tf = _tf()
        t0 = time.perf_counter()
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph)
        try:
            with self._graph.as_default():
                meta_graph = tf.compat.v1.saved_model.loader.load(
                    self._session, [SERVE_TAG], str(self.path))
        except Exception as e:  # the loader raises RuntimeError, OSError, DecodeError, OpError
            self._session.close()
            raise KdiagError(self._load_error(e)) from None
        self.load_seconds = time.perf_counter() - t0
        self._meta_graph = meta_graph
        self._defs = {k: v for k, v in meta_graph.signature_def.items()
                      if not k.startswith("__saved_model")}
        self._tensors: dict[str, _SigTensors] = {}
        self._lock = threading.Lock()

    def _load_error(self, e: Exception) -> str:
        text = getattr(e, "message", None) or str(e)
        first = op_message(text).splitlines()[0] if text.strip() else type(e).__name__
        if "could not be found in SavedModel" in text or "matching supplied tags" in text:
            return (f"{self.path}: the SavedModel has no MetaGraph tagged 'serve', which is the "
                    f"only one TF Serving loads ({first}). Re-export it with model.export() or "
                    "tf.saved_model.save().")
        return (f"TensorFlow could not load the SavedModel at {self.path}: {first} "
                "Check that the directory was copied completely (saved_model.pb and variables/).")

    @property
    def signatures(self) -> list[str]:
        """Signature keys a request may name, as TF Serving lists them (init op excluded)."""
        return list(self._defs)

    def signature(self, name: str | None = None) -> Signature:
        """The signature as kdiag's portable value, read from the loaded MetaGraph."""
        key = name or self.signature_name
        sd = self._defs.get(key)
        if sd is None:
            raise KdiagError(f'Serving signature key "{key}" not found. The model has: '
                             f"{', '.join(self._defs) or 'no signatures'}.")

        def spec(info: Any) -> TensorSpec:
            shape = None if info.tensor_shape.unknown_rank else tuple(
                int(d.size) for d in info.tensor_shape.dim)
            return TensorSpec(dtype=DTYPE_NAMES.get(int(info.dtype), str(info.dtype)),
                              shape=shape, tensor_name=info.name)

        return Signature(name=key, method_name=sd.method_name,
                         inputs={k: spec(v) for k, v in sd.inputs.items()},
                         outputs={k: spec(v) for k, v in sd.outputs.items()})

    def _sig_tensors(self, key: str) -> _SigTensors:
        cached = self._tensors.get(key)
        if cached is not None:
            return cached
        tf = _tf()
        sd = self._defs[key]
        g = self._graph
        inputs = {}
        for alias, info in sd.inputs.items():
            t = g.get_tensor_by_name(info.name)
            np_dtype = np.dtype(object) if t.dtype == tf.string else np.dtype(
                t.dtype.as_numpy_dtype)
            inputs[alias] = (t._as_tf_output(), info.name, np_dtype)
        outputs = [(alias, g.get_tensor_by_name(info.name)._as_tf_output())
                   for alias, info in sd.outputs.items()]
        defaults = {}
        for alias, proto in getattr(sd, "defaults", {}).items():
            defaults[alias] = tf.make_ndarray(proto)
        entry = _SigTensors(inputs=inputs, outputs=outputs, defaults=defaults)
        with self._lock:
            self._tensors[key] = entry
        return entry

    def run(self, tensors: dict[str, np.ndarray], signature_name: str | None = None) -> RunResult:
        """Run one signature on named tensors, as TF Serving's Predict does after parsing.

        Arrays are fed with their own shape AND dtype: a float64 array for a float32 input
        fails as a gRPC request carrying DT_DOUBLE would ("Expects arg[0] to be float but double
        is provided"); TF Serving's REST parser always builds the signature's dtype, so callers
        emulating REST convert first. Non-array values are converted to the signature's dtype.
        """
        key = signature_name or self.signature_name
        if key not in self._defs:
            # predict_util.cc (TF Serving 2.18), RunPredict
            return _failure("FAILED_PRECONDITION", f'Serving signature key "{key}" not found.')
        sig = self._sig_tensors(key)
        problem = _check_input_names(sig, tensors)
        if problem is not None:
            return _failure("INVALID_ARGUMENT", problem)
        feeds = {}
        for alias, (tf_output, _name, np_dtype) in sig.inputs.items():
            value = tensors[alias] if alias in tensors else sig.defaults[alias]
            if not isinstance(value, np.ndarray):
                try:
                    value = np.asarray(value, dtype=np_dtype)
                except (TypeError, ValueError) as e:
                    return _failure("INVALID_ARGUMENT",
                                    f"input {alias!r} cannot be made a {np_dtype} tensor: {e}")
            feeds[tf_output] = value
        fetches = [o for _, o in sig.outputs]
        tf = _tf()
        t0 = time.perf_counter()
        try:
            # Session._call_tf_sessionrun is TF_SessionRun on the C session: no Python-side shape
            # check (Session.run has one), like TF Serving's Session::Run.
            values = self._session._call_tf_sessionrun(None, feeds, fetches, [], None)
        except tf.errors.OpError as e:
            return _failure(STATUS_CODES.get(e.error_code, "UNKNOWN"), e.message,
                            time.perf_counter() - t0)
        except (TypeError, ValueError) as e:  # numpy -> tensor conversion, e.g. ragged objects
            return _failure("INVALID_ARGUMENT", str(e), time.perf_counter() - t0)
        seconds = time.perf_counter() - t0
        return RunResult(ok=True, outputs={alias: v for (alias, _), v in zip(sig.outputs, values,
                                                                             strict=True)},
                         seconds=seconds)

    def close(self) -> None:
        self._session.close()


def _check_input_names(sig: _SigTensors, tensors: dict[str, Any]) -> str | None:
    """TF Serving's checks on input names, with its messages (predict_util.cc
    VerifyRequestInputsSize; tensorflow/cc/saved_model/util.cc GetInputValues)."""
    given = set(tensors)
    expected = set(sig.inputs)
    if given == expected:
        return None
    if len(given) > len(expected) or (len(given) < len(expected) and not sig.defaults):
        def j(s: set[str]) -> str:
            return ",".join(sorted(s))
        return (f"input size does not match signature: {len(given)}!={len(expected)} "
                f"len({{{j(given)}}}) != len({{{j(expected)}}}). Sent extra: {{{j(given - expected)}}}. "
                f"Missing but required: {{{j(expected - given)}}}.")
    for alias in sorted(expected - given):
        if alias not in sig.defaults:
            return (f"Signature input alias: {alias}(feed name: {sig.inputs[alias][1]}) not found "
                    f"in request and no default value provided. Inputs expected to be in the "
                    f"request {{{','.join(sorted(given))}}}, or default input alias set: "
                    f"{','.join(sorted(sig.defaults))}")
    if given - expected:
        return ("Inputs contains invalid name. Used request inputs: "
                f"{','.join(sorted(given & expected))}, request input: {','.join(sorted(given))}")
    return None


_runners: dict[Path, SavedModelRunner] = {}
_runners_lock = threading.Lock()


def load_runner(path: Path | str, *, trust_model: bool | None = None) -> SavedModelRunner:
    """The process-wide runner for a SavedModel directory (loaded on first use, by real path).

    Refuses (graph_trust.UntrustedGraph) a graph whose signatures write, delete or list files
    unless `trust_model` (None: the CLI's --trust-model)."""
    from kdiag.model.graph_trust import require_trusted, trusted
    from kdiag.model.savedmodel import read_saved_model

    trust = trusted() if trust_model is None else trust_model
    key = Path(path).resolve()
    if (key / "saved_model.pb").exists():  # the last gate before TensorFlow runs the graph
        serving = read_saved_model(key).serving()
        require_trusted(serving.file_ops if serving else [], str(path), trust)
    elif (key / "saved_model.pbtxt").exists() and not trust:
        # TensorFlow would load saved_model.pbtxt, which kdiag's scanner does not read.
        raise KdiagError(f"{path} holds saved_model.pbtxt only: kdiag runs only graphs it has "
                         "scanned for file access. Export saved_model.pb, or pass "
                         "--trust-model.")
    with _runners_lock:
        runner = _runners.get(key)
        if runner is None:
            runner = SavedModelRunner(key)
            _runners[key] = runner
        return runner


# --------------------------------------------------------------------------------------------
# Keras predict (the notebook side of the notebook-versus-endpoint comparison)
# --------------------------------------------------------------------------------------------

_custom_modules: dict[Path, Any] = {}
_keras_models: dict[tuple[Path, Path | None, bool], Any] = {}
_keras_lock = threading.Lock()


def _import_custom_objects(path: Path) -> Any:
    """Execute the user's custom-objects module once (this runs their code: only on request)."""
    key = path.resolve()
    if key in _custom_modules:
        return _custom_modules[key]
    if not key.is_file():
        raise KdiagError(f"--custom-objects {path}: no such file.")
    name = key.stem if key.stem.isidentifier() and key.stem not in sys.modules else (
        f"kdiag_custom_objects_{abs(hash(key))}")
    spec = importlib.util.spec_from_file_location(name, key)
    if spec is None or spec.loader is None:
        raise KdiagError(f"--custom-objects {path}: not a Python module.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # Let the module import its siblings, as it did in the notebook's working directory.
    sys.path.insert(0, str(key.parent))
    try:
        _tf()
        spec.loader.exec_module(module)
    except KdiagError:
        raise
    except BaseException as e:  # user code: report, never a traceback
        sys.modules.pop(name, None)
        raise KdiagError(f"Importing --custom-objects {path} failed: {type(e).__name__}: {e}") \
            from None
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(key.parent))
    _custom_modules[key] = module
    return module


def _module_objects(module: Any) -> dict[str, Any]:
    """Classes and functions the module defines: Keras resolves unregistered ones by name."""
    return {k: v for k, v in vars(module).items()
            if not k.startswith("_") and (isinstance(v, type) or callable(v))
            and getattr(v, "__module__", None) == module.__name__}


def _load_keras(keras_path: Path, custom_objects: Path | None, safe_mode: bool) -> Any:
    key = (keras_path.resolve(), custom_objects.resolve() if custom_objects else None, safe_mode)
    with _keras_lock:
        if key in _keras_models:
            return _keras_models[key]
        if not keras_path.exists():
            raise KdiagError(f"{keras_path}: no such file.")
        objects = _module_objects(_import_custom_objects(custom_objects)) if custom_objects else None
        _tf()
        import keras
        try:
            model = keras.saving.load_model(str(keras_path), custom_objects=objects,
                                            safe_mode=safe_mode)
        except Exception as e:
            text = " ".join(str(e).split())
            hint = ""
            if "Could not locate" in text or "Unknown" in text:
                hint = (" The model uses a custom class: pass the Python file that defines it "
                        "with --custom-objects.")
            elif "safe_mode" in text:
                hint = " It holds a lambda; load it with safe mode off only if you trust the file."
            raise KdiagError(f"Keras could not load {keras_path}: {text[:600]}{hint}") from None
        _keras_models[key] = model
        return model


def _name_outputs(model: Any, raw: Any) -> dict[str, np.ndarray]:
    if isinstance(raw, dict):
        return {str(k): np.asarray(v) for k, v in raw.items()}
    if isinstance(raw, list | tuple):
        names = getattr(model, "output_names", None) or []
        if len(names) != len(raw):
            names = [f"output_{i}" for i in range(len(raw))]
        return {str(n): np.asarray(v) for n, v in zip(names, raw, strict=True)}
    return {"output_0": np.asarray(raw)}


def keras_predict(keras_path: Path, client_input: object, *, custom_objects: Path | None = None,
                  safe_mode: bool = True) -> KerasPredictResult:
    """`model.predict(client_input)` as the notebook ran it, overrides and all.

    The custom-objects module is imported (its code executed) only when its path is given.
    A model that cannot be loaded raises KdiagError; an exception from predict itself is a result
    (the notebook would have failed the same way).
    """
    model = _load_keras(Path(keras_path), Path(custom_objects) if custom_objects else None,
                        safe_mode)
    t0 = time.perf_counter()
    try:
        raw = model.predict(client_input, verbose=0)
    except Exception as e:
        return KerasPredictResult(ok=False, error=f"{type(e).__name__}: {op_message(str(e))}",
                                  seconds=time.perf_counter() - t0)
    return KerasPredictResult(ok=True, outputs=_name_outputs(model, raw),
                              seconds=time.perf_counter() - t0)
