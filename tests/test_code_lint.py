"""Static checks of code/inference.py and of custom-objects modules (read, never run)."""

from __future__ import annotations

from kdiag.model.code_lint import lint_inference_py
from kdiag.model.custom_objects import scan_module
from tests.conftest import FIXTURES


def codes(src):
    return [f.code for f in lint_inference_py(src)]


def test_handler_alone_satisfies_the_container():
    assert codes("def handler(data, context):\n    return data.read(), 'application/json'\n") == []


def test_input_and_output_handlers_together_satisfy_the_container():
    assert codes("def input_handler(d, c): pass\ndef output_handler(r, c): pass\n") == []


def test_handlers_imported_from_a_helper_module_count():
    assert codes("from helpers import input_handler, output_handler\n") == []


def test_input_handler_alone_fails_at_start_up():
    (f,) = lint_inference_py("def input_handler(d, c): pass\n")
    assert f.code == "KD040" and "only input_handler" in f.message
    assert "Handlers are not implemented correctly in user script." in f.message


def test_toolkit_functions_are_not_called_by_the_tf_serving_container():
    (f,) = lint_inference_py("def model_fn(d): pass\ndef input_fn(b, ct): pass\n")
    assert f.code == "KD041" and "input_fn" in f.message


def test_syntax_error_is_reported_with_its_line():
    (f,) = lint_inference_py("def handler(:\n")
    assert f.code == "KD040" and "line 1" in f.message


def test_the_fixture_inference_py_is_valid():
    assert lint_inference_py((FIXTURES / "code" / "inference.py").read_text()) == []


def test_custom_model_predict_override_is_found_with_calls_argument_names():
    (c,) = [c for c in scan_module(FIXTURES / "custom_model.py") if c.class_name == "CustomModel"]
    assert "predict" in c.methods
    assert c.call_args == ["inputs"]


def test_override_inherited_from_a_base_in_the_module_is_found(tmp_path):
    m = tmp_path / "m.py"
    m.write_text("import keras\nclass Base(keras.Model):\n    def predict_step(self, d):\n"
                 "        return d\nclass Child(Base):\n    def call(self, x):\n        return x\n")
    child = [c for c in scan_module(m) if c.class_name == "Child"][0]
    assert child.methods == ["predict_step"] and child.call_args == ["x"]
