"""What kdiag reads from .keras and .h5 files without TensorFlow."""

from __future__ import annotations

import zipfile

import pytest

from kdiag.errors import KdiagError
from kdiag.model.keras_file import read_h5, read_keras
from tests.conftest import MODELS


def test_subclassed_keras_model_is_recognised_with_its_build_shape():
    k = read_keras(MODELS / "custom" / "custom.keras")
    assert k.class_name == "CustomModel" and k.subclassed
    assert k.registered_name == "kdiag_fixtures>CustomModel"
    assert [(i.name, i.shape) for i in k.inputs] == [("inputs", (-1, 5))]


def test_functional_keras_model_lists_its_named_inputs():
    k = read_keras(MODELS / "two_inputs.keras")
    assert not k.subclassed
    assert sorted((i.name, i.dtype, i.shape) for i in k.inputs) == [
        ("features", "float32", (-1, 5)), ("ids", "int64", (-1, 1))]


def test_h5_file_is_read_with_h5py():
    pytest.importorskip("h5py")
    k = read_h5(MODELS / "two_inputs.h5")
    assert {i.name for i in k.inputs} == {"features", "ids"}


def test_zip_without_config_is_not_a_keras_file(tmp_path):
    p = tmp_path / "x.keras"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(KdiagError, match="without config.json"):
        read_keras(p)


def test_garbage_keras_file_is_a_clear_error(tmp_path):
    p = tmp_path / "x.keras"
    p.write_bytes(b"not a zip")
    with pytest.raises(KdiagError, match="not a readable .keras file"):
        read_keras(p)
