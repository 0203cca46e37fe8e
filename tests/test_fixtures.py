"""The committed fixtures are what fixtures/README.md says they are.

expected_signatures.json is the oracle for kdiag's TF-free SavedModel reader, so the TF-marked
tests check it against TensorFlow itself and run every model on a correct input.
"""

from __future__ import annotations

import base64
import gzip
import importlib.util
import json
import os
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from kdiag.model.signature import signatures_from_json

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "fixtures"
MODELS = FIX / "models"
ARCHIVES = FIX / "archives"
EXPECTED = json.loads((MODELS / "expected_signatures.json").read_text())
SAVEDMODELS = sorted(EXPECTED)
TAR_MTIME = 1_700_000_000

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _export_members(prefix: str) -> list[str]:
    return [f"{prefix}fingerprint.pb", f"{prefix}saved_model.pb", f"{prefix}variables",
            f"{prefix}variables/variables.data-00000-of-00001",
            f"{prefix}variables/variables.index"]


ARCHIVE_MEMBERS = {
    "good.tar.gz": ["1", *_export_members("1/"), "code", "code/inference.py",
                    "code/requirements.txt"],
    "no_version.tar.gz": _export_members(""),
    "code_in_version.tar.gz": ["1", "1/code", "1/code/inference.py", *_export_members("1/")],
    "wrapped.tar.gz": ["model", "model/1", *_export_members("model/1/"), "model/code",
                       "model/code/inference.py"],
    "keras_only.tar.gz": ["model.keras"],
    "two_models.tar.gz": ["a", "a/1", *_export_members("a/1/"),
                          "b", "b/1", *_export_members("b/1/")],
}


# --- TF-free checks ----------------------------------------------------------------------------


def test_fixtures_folder_is_under_10_mb():
    total = sum(p.stat().st_size for p in FIX.rglob("*") if p.is_file())
    assert total < 10 * 1024 * 1024


def test_expected_signatures_cover_every_committed_savedmodel():
    on_disk = sorted(p.parent.relative_to(MODELS).as_posix() for p in MODELS.rglob("saved_model.pb"))
    assert on_disk == SAVEDMODELS


def test_expected_signatures_read_as_kdiag_signature_json():
    for rel, doc in EXPECTED.items():
        sigs = signatures_from_json(doc)
        assert sigs[0].name == "serving_default", rel
        assert all(s.is_predict for s in sigs), rel


def test_documented_signatures_of_the_main_fixtures():
    def serving(rel):
        sig = EXPECTED[rel]["signatures"][0]
        return ({k: (v["dtype"], v["shape"]) for k, v in sig["inputs"].items()},
                {k: (v["dtype"], v["shape"]) for k, v in sig["outputs"].items()})

    assert serving("custom/export/1") == ({"args_0": ("float32", [-1, 5])},
                                          {"output_0": ("float32", [-1, 1])})
    assert serving("custom/tfsave/1") == ({"inputs": ("float32", [-1, 5])},
                                          {"output_0": ("float32", [-1, 1])})
    assert serving("custom/tfsave_fit/1") == ({"inputs": ("float32", [32, 5])},
                                              {"output_0": ("float32", [32, 1])})
    assert serving("two_inputs/1") == (
        {"features": ("float32", [-1, 5]), "ids": ("int64", [-1, 1])},
        {"score": ("float32", [-1, 1]), "probs": ("float32", [-1, 3])})
    assert serving("two_inputs_tfsave/1")[0] == {"inputs": ("float32", [-1, 5]),
                                                 "inputs_1": ("int64", [-1, 1])}
    assert serving("image/1") == ({"image": ("float32", [-1, 28, 28, 1])},
                                  {"output_0": ("float32", [-1, 10])})
    assert serving("image_bytes/1") == ({"image_bytes": ("string", [-1])},
                                        {"probs": ("float32", [-1, 10])})
    assert serving("tokens/1") == ({"tokens": ("int32", [-1, 10])},
                                   {"output_0": ("float32", [-1, 2])})
    assert serving("scalar/1") == ({"x": ("float32", [-1])}, {"output_0": ("float32", [-1])})
    assert serving("versions/my_model/1")[0] == {"x": ("float32", [-1, 3])}
    assert serving("versions/my_model/2")[0] == {"x": ("float32", [-1, 4])}
    names = [s["signature_name"] for s in EXPECTED["multi_sig/1"]["signatures"]]
    assert names == ["serving_default", "logits"]


@pytest.mark.parametrize("name", sorted(ARCHIVE_MEMBERS))
def test_archive_holds_exactly_the_documented_members(name):
    with tarfile.open(ARCHIVES / name) as tar:
        assert tar.getnames() == sorted(ARCHIVE_MEMBERS[name])


@pytest.mark.parametrize("name", sorted(ARCHIVE_MEMBERS))
def test_archive_is_a_deterministic_tarball(name):
    raw = (ARCHIVES / name).read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    assert struct.unpack("<I", raw[4:8])[0] == 0  # gzip header mtime
    with tarfile.open(ARCHIVES / name) as tar:
        for m in tar.getmembers():
            assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (TAR_MTIME, 0, 0, "", "")
            assert m.mode == (0o755 if m.isdir() else 0o644)


def test_archives_pack_the_committed_files():
    with tarfile.open(ARCHIVES / "good.tar.gz") as tar:
        pb = tar.extractfile("1/saved_model.pb").read()
        handler = tar.extractfile("code/inference.py").read()
    assert pb == (MODELS / "custom/export/1/saved_model.pb").read_bytes()
    assert handler == (FIX / "code/inference.py").read_bytes()
    with tarfile.open(ARCHIVES / "keras_only.tar.gz") as tar:
        assert tar.extractfile("model.keras").read() == (MODELS / "custom/custom.keras").read_bytes()


def test_inference_py_defines_the_handler_pair():
    spec = importlib.util.spec_from_file_location("fixture_inference", FIX / "code/inference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert callable(mod.input_handler) and callable(mod.output_handler)
    assert not hasattr(mod, "handler")


def test_inference_py_turns_csv_rows_into_instances():
    import io
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("fixture_inference", FIX / "code/inference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ctx = SimpleNamespace(request_content_type="text/csv", accept_header="application/json")
    body = mod.input_handler(io.BytesIO(b"1,2,3,4,5\n6,7,8,9,10\n"), ctx)
    assert json.loads(body) == {"instances": [[1.0, 2.0, 3.0, 4.0, 5.0],
                                              [6.0, 7.0, 8.0, 9.0, 10.0]]}
    ctx.request_content_type = "application/json"
    assert mod.input_handler(io.BytesIO(b'{"instances": [[1]]}'), ctx) == '{"instances": [[1]]}'


def test_digit_png_is_28x28_8bit_grayscale():
    raw = (FIX / "data/digit.png").read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    width, height, depth, colour = struct.unpack(">IIBB", raw[16:26])
    assert (width, height, depth, colour) == (28, 28, 8, 0)


# --- TensorFlow checks ----------------------------------------------------------------------------


def _spec_json(spec) -> dict:
    shape = spec.shape
    return {"dtype": spec.dtype.name,
            "shape": None if shape.rank is None else [-1 if d is None else int(d) for d in shape]}


# tf.train.Example with age=30.0 and income=4.0, serialized (for example_parser/1).
EXAMPLE = base64.b64decode("CiUKEgoGaW5jb21lEggSBgoEAACAQAoPCgNhZ2USCBIGCgQAAPBB")


def _sample(spec: dict, batch: int = 2, rel: str = "") -> np.ndarray:
    """A correct input for a signature input: -1 dims become `batch`, strings are the PNG
    (or, for the tf.Example parser, a serialized Example)."""
    shape = [batch if d == -1 else d for d in spec["shape"]]
    if spec["dtype"] == "string":
        data = EXAMPLE if rel.startswith("example_parser") else (FIX / "data/digit.png").read_bytes()
        return np.full(shape, data, dtype=object)
    if spec["dtype"].startswith("int"):
        return np.ones(shape, dtype=spec["dtype"])
    return np.full(shape, 0.5, dtype=spec["dtype"])


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def load(tf):
    cache = {}

    def _load(rel: str):
        if rel not in cache:
            cache[rel] = tf.saved_model.load(str(MODELS / rel))
        return cache[rel]

    return _load


@pytest.mark.tf
@pytest.mark.parametrize("rel", SAVEDMODELS)
def test_savedmodel_signatures_match_expected_json(rel, load):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((MODELS / rel / "saved_model.pb").read_bytes())
    sig_defs = proto.meta_graphs[0].signature_def
    loaded = load(rel)
    expected = {s["signature_name"]: s for s in EXPECTED[rel]["signatures"]}
    assert set(loaded.signatures.keys()) == set(expected)
    for name, fn in loaded.signatures.items():
        assert {k: _spec_json(v) for k, v in fn.structured_input_signature[1].items()} == \
            expected[name]["inputs"]
        assert {k: _spec_json(v) for k, v in fn.structured_outputs.items()} == \
            expected[name]["outputs"]
        assert sig_defs[name].method_name == expected[name]["method_name"]


@pytest.mark.tf
@pytest.mark.parametrize("rel", SAVEDMODELS)
def test_every_signature_runs_on_a_correct_input(rel, load, tf, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # file_io/1 writes and reads files relative to the working folder
    (tmp_path / "kdiag_file_io_input.txt").write_text("hello")
    loaded = load(rel)
    for sig in EXPECTED[rel]["signatures"]:
        fn = loaded.signatures[sig["signature_name"]]
        feeds = {k: tf.constant(_sample(v, rel=rel)) for k, v in sig["inputs"].items()}
        out = fn(**feeds)
        for k, v in sig["outputs"].items():
            want = [2 if d == -1 else d for d in v["shape"]]
            assert list(out[k].shape) == want, (rel, sig["signature_name"], k)
            assert out[k].dtype.name == v["dtype"]


@pytest.mark.tf
def test_known_outputs_of_the_hand_set_weights(load, tf):
    ones = tf.ones((1, 5))
    assert load("custom/export/1").signatures["serving_default"](args_0=ones)["output_0"] \
        .numpy().item() == pytest.approx(2.5)
    assert load("custom/tfsave/1").signatures["serving_default"](inputs=ones)["output_0"] \
        .numpy().item() == pytest.approx(2.5)
    scalar = load("scalar/1").signatures["serving_default"](x=tf.constant([0.0, 3.0]))
    np.testing.assert_allclose(scalar["output_0"].numpy(), [1.0, 7.0], rtol=1e-6)
    v1 = load("versions/my_model/1").signatures["serving_default"](x=tf.ones((1, 3)))
    v2 = load("versions/my_model/2").signatures["serving_default"](x=tf.ones((1, 4)))
    assert v1["output_0"].numpy().item() == pytest.approx(4.0)
    assert v2["output_0"].numpy().item() == pytest.approx(6.0)


@pytest.mark.tf
def test_fit_then_tf_saved_model_save_pins_batch_but_graph_runs_one_row(load, tf):
    # The signature says [32, 5]; neither the loaded signature nor the MatMul enforces it.
    fn = load("custom/tfsave_fit/1").signatures["serving_default"]
    assert fn.structured_input_signature[1]["inputs"].shape.as_list() == [32, 5]
    assert fn(inputs=tf.ones((1, 5)))["output_0"].numpy().item() == pytest.approx(2.5)


@pytest.mark.tf
def test_multi_sig_logits_are_the_pre_softmax_probs(load, tf):
    loaded = load("multi_sig/1")
    x = tf.constant(_sample({"dtype": "float32", "shape": [-1, 28, 28, 1]}))
    probs = loaded.signatures["serving_default"](image=x)["probs"].numpy()
    logits = loaded.signatures["logits"](image=x)["logits"].numpy()
    np.testing.assert_allclose(tf.nn.softmax(logits).numpy(), probs, rtol=1e-5, atol=1e-6)


@pytest.mark.tf
def test_image_bytes_decodes_png_and_jpeg(load, tf):
    png = (FIX / "data/digit.png").read_bytes()
    jpg = (FIX / "data/digit.jpg").read_bytes()
    out = load("image_bytes/1").signatures["serving_default"](image_bytes=tf.constant([png, jpg]))
    probs = out["probs"].numpy()
    assert probs.shape == (2, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.fixture(scope="module")
def custom_module(tf):
    spec = importlib.util.spec_from_file_location("custom_model", FIX / "custom_model.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("custom_model", mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.tf
def test_custom_predict_override_accepts_json_string_like_the_notebook(custom_module):
    import keras

    model = keras.models.load_model(MODELS / "custom/custom.keras")
    assert type(model).__name__ == "CustomModel"
    for x in ('{"data": [[1, 1, 1, 1, 1]]}', {"data": [[1, 1, 1, 1, 1]]}, np.ones((1, 5))):
        assert model.predict(x, verbose=0).item() == pytest.approx(2.5)


@pytest.mark.tf
def test_custom_override_never_reaches_the_savedmodel(load, tf):
    fn = load("custom/export/1").signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor"):
        fn(args_0=tf.constant(['{"data": [[1, 1, 1, 1, 1]]}']))


@pytest.mark.tf
@pytest.mark.parametrize("name", ["two_inputs.h5", "two_inputs.keras"])
def test_two_inputs_keras_files_load_and_predict(name):
    import keras

    model = keras.models.load_model(MODELS / name)
    assert [(t.name, t.dtype, t.shape) for t in model.inputs] == [
        ("features", "float32", (None, 5)), ("ids", "int64", (None, 1))]
    out = model.predict({"features": np.ones((2, 5), np.float32),
                         "ids": np.array([[1], [2]], np.int64)}, verbose=0)
    assert {k: v.shape for k, v in out.items()} == {"score": (2, 1), "probs": (2, 3)}


@pytest.mark.tf
@pytest.mark.slow
def test_build_script_reproduces_the_committed_signatures(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, str(FIX / "build.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True, env=env, timeout=300)
    rebuilt = json.loads((tmp_path / "models/expected_signatures.json").read_text())
    assert rebuilt == EXPECTED
    for name, members in ARCHIVE_MEMBERS.items():
        with tarfile.open(tmp_path / "archives" / name) as tar:
            assert tar.getnames() == sorted(members)
    with gzip.open(tmp_path / "archives/keras_only.tar.gz") as f:
        assert f.read(5)  # a readable gzip stream
