"""kdiag's TF-free saved_model.pb reader against TensorFlow's own reading of the fixtures."""

from __future__ import annotations

import pytest

from kdiag.errors import KdiagError
from kdiag.model.savedmodel import parse_saved_model, read_saved_model
from tests.conftest import MODELS


def _as_json(sigs):
    return {s.name: s.to_json() for s in sigs}


@pytest.mark.parametrize("rel", [
    "custom/export/1", "custom/tfsave/1", "image/1", "image_bytes/1", "multi_sig/1",
    "scalar/1", "tokens/1", "two_inputs/1", "versions/my_model/2",
])
def test_signatures_match_what_tensorflow_reports(rel, expected_signatures):
    info = read_saved_model(MODELS / rel)
    serving = info.serving()
    assert serving is not None
    got = _as_json([s for s in serving.signatures if not s.name.startswith("__")])
    want = {s["signature_name"]: s for s in expected_signatures[rel]["signatures"]}
    assert got == want


def test_keras_export_names_the_subclassed_input_args_0():
    sig = read_saved_model(MODELS / "custom/export/1").serving().signatures[0]
    assert sig.name == "serving_default"
    assert list(sig.inputs) == ["args_0"]
    assert sig.inputs["args_0"].shape == (-1, 5)


def test_unknown_dimensions_decode_as_minus_one_not_two_to_the_64():
    sig = read_saved_model(MODELS / "image/1").serving().signatures[0]
    assert sig.inputs["image"].shape == (-1, 28, 28, 1)


def test_image_decoding_in_the_graph_is_noticed():
    info = read_saved_model(MODELS / "image_bytes/1")
    assert any("decodes images" in n for n in info.graph_notes)
    assert info.serving().signatures[0].inputs["image_bytes"].dtype == "string"


def test_tensorflow_version_of_the_export_is_read():
    assert read_saved_model(MODELS / "scalar/1").serving().tensorflow_version.startswith("2.")


def test_truncated_saved_model_is_a_clear_error():
    data = (MODELS / "custom/export/1/saved_model.pb").read_bytes()
    with pytest.raises(KdiagError, match="corrupt or truncated"):
        parse_saved_model(data[: len(data) // 2], "saved_model.pb")


def test_empty_saved_model_says_the_export_did_not_finish():
    with pytest.raises(KdiagError, match="empty"):
        parse_saved_model(b"", "saved_model.pb")


def test_random_bytes_are_not_mistaken_for_a_saved_model():
    with pytest.raises(KdiagError):
        parse_saved_model(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "x.pb")


def test_missing_saved_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(KdiagError, match="does not exist"):
        read_saved_model(tmp_path)
