"""kdiag.model.runner: SavedModel signatures run as TF Serving runs them, and Keras predict."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.conftest import FIXTURES, MODELS

tf_only = pytest.mark.tf
PNG = FIXTURES / "data" / "digit.png"
CUSTOM_OBJECTS = FIXTURES / "custom_model.py"
CUSTOM_KERAS = MODELS / "custom" / "custom.keras"

# SavedModels written by model.export() / ExportArchive: TF Serving runs them.
EXPORTED = ["custom/export/1", "image/1", "multi_sig/1", "scalar/1", "tokens/1", "two_inputs/1",
            "versions/my_model/1", "versions/my_model/2"]
# Keras 3 models written by tf.saved_model.save: the TF1 loader (TF Serving's) restores none of
# their variables (tensorflow/serving#2250, keras-team/keras#19274).
TF_SAVED_KERAS3 = ["custom/tfsave/1", "custom/tfsave_fit/1", "two_inputs_tfsave/1"]


def sample_inputs(sig: dict, rows: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, spec in sig["inputs"].items():
        shape = [rows if d == -1 else d for d in spec["shape"]]
        if spec["dtype"] == "string":
            out[name] = np.array([PNG.read_bytes()] * shape[0], dtype=object)
        elif spec["dtype"].startswith("int"):
            out[name] = rng.integers(0, 10, size=shape).astype(spec["dtype"])
        else:
            out[name] = rng.random(shape, dtype=np.float32).astype(spec["dtype"])
    return out


@pytest.fixture(scope="module")
def runner_mod():
    from kdiag.model import runner

    runner._tf()  # kdiag's import first: it sets TF's environment (logs, oneDNN) before TF loads
    return runner


def test_import_does_not_import_tensorflow():
    code = textwrap.dedent("""
        import sys
        import kdiag.model.runner, kdiag.replays.batching
        assert kdiag.model.runner.tensorflow_available() in (True, False)
        bad = [m for m in ("tensorflow", "keras") if m in sys.modules]
        print(",".join(bad))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_require_tensorflow_raises_tensorflow_missing_when_absent(monkeypatch):
    from kdiag.errors import TensorFlowMissing
    from kdiag.model import runner

    monkeypatch.setattr(runner.importlib.util, "find_spec", lambda name: None)
    assert runner.tensorflow_available() is False
    with pytest.raises(TensorFlowMissing, match="kdiag replay runs the model"):
        runner.require_tensorflow("kdiag replay")


def test_op_message_strips_node_annotation_and_root_error_wrapper():
    from kdiag.model.runner import op_message

    assert op_message("Matrix size-incompatible: In[0]: [1,3], In[1]: [5,1]\n\t [[{{node "
                      "model/dense/MatMul}}]]") == "Matrix size-incompatible: In[0]: [1,3], In[1]: [5,1]"
    multi = ("2 root error(s) found.\n  (0) FAILED_PRECONDITION: Could not find variable dense/bias."
             "\n\t [[{{function_node __inference_run_106}}{{node dense_1/Add/ReadVariableOp}}]]\n"
             "\t [[StatefulPartitionedCall/_21]]\n  (1) FAILED_PRECONDITION: Could not find ...")
    assert op_message(multi) == "Could not find variable dense/bias."
    eager = ("Graph execution error:\n\nDetected at node model/dense/MatMul defined at (most recent "
             "call last):\n  File \"x.py\", line 1, in <module>\n\nIn[0] is not a matrix. Instead it "
             "has shape [3]\n\t [[{{node model/dense/MatMul}}]] [Op:__inference_serve_12]")
    assert op_message(eager) == "In[0] is not a matrix. Instead it has shape [3]"
    values = "assertion failed: [[1 2]\n [3 4]]\n\t [[{{node Assert}}]]"
    assert op_message(values) == "assertion failed: [[1 2]\n [3 4]]"


@tf_only
@pytest.mark.parametrize("rel", EXPORTED)
def test_outputs_equal_tf_saved_model_load(runner_mod, expected_signatures, rel):
    tf = runner_mod._tf()
    loaded = tf.saved_model.load(str(MODELS / rel))
    runner = runner_mod.load_runner(MODELS / rel)
    for sig in expected_signatures[rel]["signatures"]:
        name = sig["signature_name"]
        inputs = sample_inputs(sig)
        res = runner.run(inputs, name)
        assert res.ok, res.message
        want = loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
        assert set(res.outputs) == set(want) == set(sig["outputs"])
        for k, v in want.items():
            np.testing.assert_allclose(res.outputs[k], v.numpy(), rtol=0, atol=1e-6)


@tf_only
def test_signatures_lists_serving_keys_and_reads_specs(runner_mod, expected_signatures):
    runner = runner_mod.load_runner(MODELS / "two_inputs" / "1")
    assert sorted(runner.signatures) == ["serve", "serving_default"]
    sig = runner.signature()
    want = next(s for s in expected_signatures["two_inputs/1"]["signatures"]
                if s["signature_name"] == "serving_default")
    assert sig.to_json() == want


@tf_only
def test_load_runner_caches_by_resolved_path(runner_mod):
    a = runner_mod.load_runner(MODELS / "scalar" / "1")
    b = runner_mod.load_runner(str(MODELS / "scalar" / ".." / "scalar" / "1"))
    assert a is b
    assert a.load_seconds > 0


@tf_only
def test_wrong_inner_dimension_fails_in_the_graph_with_matmul_message(runner_mod):
    res = runner_mod.load_runner(MODELS / "custom" / "export" / "1").run(
        {"args_0": np.ones((1, 3), np.float32)})
    assert not res.ok and res.code == "INVALID_ARGUMENT"
    assert res.message == "Matrix size-incompatible: In[0]: [1,3], In[1]: [5,1]"
    # TF Serving's REST body carries the whole status text, node annotation included.
    assert res.detail.startswith(res.message + "\n\t [[{{")


@tf_only
@pytest.mark.parametrize("shape", [(5,), (1, 1, 5)])
def test_wrong_rank_on_dense_model_fails_in_matmul(runner_mod, shape):
    res = runner_mod.load_runner(MODELS / "custom" / "export" / "1").run(
        {"args_0": np.ones(shape, np.float32)})
    assert (res.ok, res.code) == (False, "INVALID_ARGUMENT")
    if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0":  # kdiag's default: TF's portable kernels
        dims = ",".join(map(str, shape))
        assert res.message == f"In[0] and In[1] has different ndims: [{dims}] vs. [5,1]"
    else:  # oneDNN's fused MatMul words it differently
        assert res.message == "In[0] is not a matrix"


@tf_only
def test_image_without_batch_axis_fails_with_conv_rank_message(runner_mod):
    res = runner_mod.load_runner(MODELS / "image" / "1").run(
        {"image": np.ones((28, 28, 1), np.float32)})
    assert (res.ok, res.code) == (False, "INVALID_ARGUMENT")
    assert res.message == "convolution input must be 4-dimensional: [28,28,1]"


@tf_only
def test_signature_shape_is_not_enforced_before_the_graph(runner_mod):
    # (2, 5) rows into a (-1, 5) model work; (1, 4) into the [-1, 3] model fails in MatMul, not
    # in a Python-side shape check.
    runner = runner_mod.load_runner(MODELS / "versions" / "my_model" / "1")
    res = runner.run({"x": np.ones((1, 4), np.float32)})
    assert res.code == "INVALID_ARGUMENT" and res.message.startswith("Matrix size-incompatible")


@tf_only
def test_value_error_in_graph_comes_back_as_result(runner_mod):
    res = runner_mod.load_runner(MODELS / "tokens" / "1").run(
        {"tokens": np.full((1, 10), 5000, np.int32)})
    assert (res.code, res.message) == ("INVALID_ARGUMENT", "indices[0,0] = 5000 is not in [0, 50)")


@tf_only
def test_multi_output_model_returns_both_outputs(runner_mod):
    res = runner_mod.load_runner(MODELS / "two_inputs" / "1").run(
        {"features": np.ones((2, 5), np.float32), "ids": np.array([[1], [2]], np.int64)})
    assert res.ok
    assert res.outputs["probs"].shape == (2, 3) and res.outputs["score"].shape == (2, 1)
    np.testing.assert_allclose(res.outputs["probs"].sum(axis=1), 1.0, atol=1e-6)


@tf_only
def test_wrong_dtype_fails_like_a_grpc_tensor_of_that_dtype(runner_mod):
    res = runner_mod.load_runner(MODELS / "custom" / "export" / "1").run(
        {"args_0": np.ones((1, 5), np.float64)})
    assert (res.code, res.message) == ("INVALID_ARGUMENT",
                                       "Expects arg[0] to be float but double is provided")


@tf_only
def test_input_names_are_checked_with_tf_serving_messages(runner_mod):
    runner = runner_mod.load_runner(MODELS / "custom" / "export" / "1")
    extra = runner.run({"args_0": np.ones((1, 5), np.float32), "x": np.ones(1)})
    # predict_util.cc VerifyRequestInputsSize (TF Serving 2.18)
    assert extra.message == ("input size does not match signature: 2!=1 len({args_0,x}) != "
                             "len({args_0}). Sent extra: {x}. Missing but required: {}.")
    renamed = runner.run({"x": np.ones((1, 5), np.float32)})
    # tensorflow/cc/saved_model/util.cc GetInputValues
    assert renamed.code == "INVALID_ARGUMENT"
    assert renamed.message.startswith("Signature input alias: args_0(feed name: "
                                      "serving_default_args_0:0) not found in request")


@tf_only
def test_unknown_signature_is_failed_precondition(runner_mod):
    res = runner_mod.load_runner(MODELS / "multi_sig" / "1").run(
        {"image": np.zeros((1, 28, 28, 1), np.float32)}, "nope")
    # predict_util.cc RunPredict
    assert (res.code, res.message) == ("FAILED_PRECONDITION", 'Serving signature key "nope" not found.')


@tf_only
def test_second_signature_runs_by_name(runner_mod):
    runner = runner_mod.load_runner(MODELS / "multi_sig" / "1")
    x = np.random.default_rng(1).random((2, 28, 28, 1), dtype=np.float32)
    probs = runner.run({"image": x}).outputs["probs"]
    logits = runner.run({"image": x}, "logits").outputs["logits"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(axis=1, keepdims=True), atol=1e-5)


@tf_only
@pytest.mark.parametrize("rel", TF_SAVED_KERAS3)
def test_keras3_tf_saved_model_save_fails_like_tf_serving(runner_mod, expected_signatures, rel):
    sig = expected_signatures[rel]["signatures"][0]
    res = runner_mod.load_runner(MODELS / rel).run(sample_inputs(sig))
    assert (res.ok, res.code) == (False, "FAILED_PRECONDITION")
    assert res.message.startswith("Could not find variable ")
    assert "This could mean that the variable has been deleted" in res.message


@tf_only
def test_string_input_model_takes_png_bytes(runner_mod):
    tf = runner_mod._tf()
    rel = MODELS / "image_bytes" / "1"
    runner = runner_mod.load_runner(rel)
    assert runner.signature().inputs["image_bytes"].dtype == "string"
    png = np.array([PNG.read_bytes()], dtype=object)
    res = runner.run({"image_bytes": png})
    if res.ok:
        want = tf.saved_model.load(str(rel)).signatures["serving_default"](
            image_bytes=tf.constant(png))["probs"].numpy()
        np.testing.assert_allclose(res.outputs["probs"], want, atol=1e-6)
    else:
        # Written by tf.saved_model.save around a Keras 3 model: TF Serving's loader restores no
        # Keras variables, so the PNG is decoded and the first Dense read fails.
        assert res.code == "FAILED_PRECONDITION"
        assert res.message.startswith("Could not find variable dense/")


@tf_only
def test_string_input_graph_decodes_png_bytes(runner_mod, tmp_path):
    # A string-input SavedModel with no variables: PNG bytes in, decoded pixels out.
    tf = runner_mod._tf()

    class Decode(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def serve(self, b):
            img = tf.map_fn(lambda x: tf.cast(tf.io.decode_png(x, channels=1), tf.float32),
                            b, fn_output_signature=tf.TensorSpec([None, None, 1], tf.float32))
            return {"mean": tf.reduce_mean(img, axis=[1, 2, 3]), "name": b}

    m = Decode()
    tf.saved_model.save(m, str(tmp_path / "1"), signatures={"serving_default": m.serve})
    res = runner_mod.SavedModelRunner(tmp_path / "1").run(
        {"image_bytes": np.array([PNG.read_bytes()], dtype=object)})
    assert res.ok, res.message
    want = tf.cast(tf.io.decode_png(PNG.read_bytes(), channels=1), tf.float32).numpy().mean()
    np.testing.assert_allclose(res.outputs["mean"], [want], rtol=1e-6)
    assert res.outputs["name"].dtype == object and res.outputs["name"][0] == PNG.read_bytes()
    junk = runner_mod.SavedModelRunner(tmp_path / "1").run(
        {"image_bytes": np.array([b"not an image"], dtype=object)})
    assert junk.code == "INVALID_ARGUMENT"
    assert junk.message.startswith("Unknown image file format.")


@tf_only
def test_load_errors_are_kdiag_errors(runner_mod, tmp_path):
    from kdiag.errors import KdiagError

    with pytest.raises(KdiagError, match="no such file"):
        runner_mod.SavedModelRunner(tmp_path / "missing")
    with pytest.raises(KdiagError, match="version directories"):
        runner_mod.SavedModelRunner(MODELS / "image")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(KdiagError, match="could not load the SavedModel"):
        runner_mod.SavedModelRunner(tmp_path / "bad")


# ---------------------------------------------------------------------------------------------
# keras_predict
# ---------------------------------------------------------------------------------------------

NOTEBOOK_JSON = '{"data": [[1, 2, 3, 4, 5]]}'


@tf_only
def test_keras_predict_runs_the_python_override_on_a_json_string(runner_mod):
    res = runner_mod.keras_predict(CUSTOM_KERAS, NOTEBOOK_JSON, custom_objects=CUSTOM_OBJECTS)
    assert res.ok and list(res.outputs) == ["output_0"]
    assert res.outputs["output_0"].shape == (1, 1)


@tf_only
def test_exported_savedmodel_gives_notebook_values_only_for_the_bare_tensor(runner_mod):
    notebook = runner_mod.keras_predict(CUSTOM_KERAS, NOTEBOOK_JSON, custom_objects=CUSTOM_OBJECTS)
    endpoint = runner_mod.load_runner(MODELS / "custom" / "export" / "1")
    same = endpoint.run({"args_0": np.array([[1, 2, 3, 4, 5]], np.float32)})
    np.testing.assert_allclose(same.outputs["output_0"], notebook.outputs["output_0"], atol=1e-6)
    # The notebook's JSON string itself reaches the graph as a string tensor: the override that
    # parsed it was never exported. (Over REST, TF Serving's JSON parser rejects it even earlier.)
    raw = endpoint.run({"args_0": np.array([NOTEBOOK_JSON], dtype=object)})
    assert (raw.ok, raw.code) == (False, "INVALID_ARGUMENT")
    assert raw.message == "Expects arg[0] to be float but string is provided"


@tf_only
def test_keras_predict_error_is_a_result(runner_mod):
    res = runner_mod.keras_predict(CUSTOM_KERAS, '{"rows": []}', custom_objects=CUSTOM_OBJECTS)
    assert not res.ok and res.error.startswith("KeyError")


@tf_only
def test_keras_predict_does_not_import_custom_objects_unless_given(tmp_path):
    # A module that would leave a mark if executed; without --custom-objects the load fails with a
    # hint instead (CustomModel is unknown), and the module never runs.
    marker = tmp_path / "ran.txt"
    module = tmp_path / "custom_model.py"
    module.write_text(f"open({str(marker)!r}, 'w').write('x')\n" + CUSTOM_OBJECTS.read_text())
    code = textwrap.dedent(f"""
        import sys
        from kdiag.errors import KdiagError
        from kdiag.model.runner import keras_predict
        try:
            keras_predict({str(CUSTOM_KERAS)!r}, [[1, 2, 3, 4, 5]])
        except KdiagError as e:
            print("ERR", e)
        print("MOD", "custom_model" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, check=True)
    assert "ERR Keras could not load" in out.stdout and "--custom-objects" in out.stdout
    assert "MOD False" in out.stdout
    assert not marker.exists()
    assert out.stderr == ""  # TensorFlow's import banners stay out of kdiag's output


@tf_only
def test_keras_predict_custom_objects_errors_are_kdiag_errors(runner_mod, tmp_path):
    from kdiag.errors import KdiagError

    bad = tmp_path / "broken.py"
    bad.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(KdiagError, match="Importing --custom-objects .* failed: RuntimeError: boom"):
        runner_mod.keras_predict(CUSTOM_KERAS, NOTEBOOK_JSON, custom_objects=bad)
    with pytest.raises(KdiagError, match="no such file"):
        runner_mod.keras_predict(CUSTOM_KERAS, NOTEBOOK_JSON, custom_objects=tmp_path / "nope.py")
