"""`.keras` and `.h5` files: what Keras knows about the model, read without TensorFlow.

A `.keras` file is a zip holding config.json (the architecture), metadata.json and the weights.
Reading config.json tells kdiag the class, the input names Keras uses and their shapes; that is
enough to compare with what an exported SavedModel will expect. Nothing is deserialised or run.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from kdiag.errors import KdiagError
from kdiag.limits import LimitExceeded, Limits, active_limits

BUILTIN_MODEL_CLASSES = {"Functional", "Sequential", "Model"}


@dataclass
class KerasInput:
    name: str
    dtype: str | None
    shape: tuple[int, ...] | None  # with -1 for None


@dataclass
class KerasInfo:
    path: str
    format: str  # "keras" | "h5"
    class_name: str
    registered_name: str | None
    module: str | None
    keras_version: str | None
    inputs: list[KerasInput] = field(default_factory=list)
    subclassed: bool = False


def _shape(value) -> tuple[int, ...] | None:
    if not isinstance(value, list | tuple) or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool)) for d in value):
        return None  # not a shape Keras wrote: unknown, as for a missing one
    return tuple(-1 if d is None else d for d in value)


def _obj(value) -> dict:
    """A config object, or {} where a hand-made or hostile file holds something else."""
    return value if isinstance(value, dict) else {}


def _inputs_from_config(cfg: dict) -> list[KerasInput]:
    inner = _obj(cfg.get("config"))
    layers = inner.get("layers") if isinstance(inner.get("layers"), list) else []
    input_layers = [lay for lay in layers if isinstance(lay, dict) and lay.get("class_name") == "InputLayer"]
    out = []
    for lay in input_layers:
        c = _obj(lay.get("config"))
        shape = c.get("batch_shape") or c.get("batch_input_shape")
        dtype = c.get("dtype")
        if isinstance(dtype, dict):  # Keras 3 DTypePolicy objects
            dtype = _obj(dtype.get("config")).get("name")
        name = c.get("name") or lay.get("name")
        out.append(KerasInput(name=name if isinstance(name, str) else "input",
                              dtype=dtype if isinstance(dtype, str) else None,
                              shape=_shape(shape)))
    if not out:
        # Sequential without an InputLayer, or a subclassed model: Keras records the build shape.
        build = _obj(cfg.get("build_config"))
        shape = build.get("input_shape")
        if isinstance(shape, dict):
            out = [KerasInput(k, None, _shape(v)) for k, v in shape.items()]
        elif isinstance(shape, list) and shape and isinstance(shape[0], list):
            out = [KerasInput(f"input_{i}", None, _shape(s)) for i, s in enumerate(shape)]
        elif shape is not None:
            out = [KerasInput("inputs", None, _shape(shape))]
    return out


def _info(path: Path, fmt: str, cfg: dict, keras_version: str | None) -> KerasInfo:
    if not isinstance(cfg, dict) or "class_name" not in cfg:
        raise KdiagError(f"{path} has no model configuration Keras could load.")
    cls = str(cfg["class_name"])
    registered = cfg.get("registered_name")
    return KerasInfo(
        path=str(path), format=fmt, class_name=cls,
        registered_name=registered if isinstance(registered, str) else None,
        module=cfg.get("module") if isinstance(cfg.get("module"), str) else None,
        keras_version=keras_version if isinstance(keras_version, str) else None,
        inputs=_inputs_from_config(cfg),
        subclassed=cls not in BUILTIN_MODEL_CLASSES,
    )


def _read_json_member(zf: zipfile.ZipFile, name: str, path: Path, limits: Limits) -> object:
    """A JSON member, read within the keras-config-bytes cap: checked on the declared size
    first, then on what the decompressor actually produces (a zip can lie about sizes)."""
    cap = limits.keras_config_bytes
    declared = zf.getinfo(name).file_size
    if declared > cap:
        raise LimitExceeded(f"{name} in {path}", declared, "keras_config_bytes", limits)
    with zf.open(name) as fh:
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise LimitExceeded(f"{name} in {path}", f"more than {cap} bytes", "keras_config_bytes",
                            limits)
    return json.loads(data)


def read_keras(path: Path, limits: Limits | None = None) -> KerasInfo:
    limits = limits or active_limits()
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "config.json" not in names:
                raise KdiagError(f"{path} is a zip without config.json: not a Keras 3 .keras file.")
            cfg = _read_json_member(zf, "config.json", path, limits)
            meta = _read_json_member(zf, "metadata.json", path, limits) \
                if "metadata.json" in names else {}
    except FileNotFoundError:
        raise KdiagError(f"{path} does not exist.") from None
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, OSError, EOFError,
            RecursionError, NotImplementedError, ValueError) as e:
        raise KdiagError(f"{path} is not a readable .keras file ({e}); save it again with "
                         "model.save('model.keras').") from None
    return _info(path, "keras", cfg, meta.get("keras_version") if isinstance(meta, dict) else None)


def read_h5(path: Path) -> KerasInfo:
    try:
        import h5py
    except ImportError:
        raise KdiagError("Reading .h5 files needs h5py (installed with keras): pip install h5py.") from None
    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            version = f.attrs.get("keras_version")
    except FileNotFoundError:
        raise KdiagError(f"{path} does not exist.") from None
    except OSError as e:
        raise KdiagError(f"{path} is not a readable HDF5 file ({e}).") from None
    if raw is None:
        raise KdiagError(f"{path} holds weights only (no model_config): save the whole model "
                         "with model.save(...), or export a SavedModel.")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    if isinstance(version, bytes):
        version = version.decode("utf-8")
    try:
        cfg = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as e:  # a hostile file nests past the stack
        raise KdiagError(f"{path}: its model_config is not JSON ({e}).") from None
    return _info(path, "h5", cfg, version)
