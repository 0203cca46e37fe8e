"""The container's model discovery rules, applied to file lists."""

from __future__ import annotations

from kdiag.model.layout import analyse


def codes(layout):
    return sorted({f.code for f in layout.findings})


def test_version_folder_at_the_root_is_served_as_model_named_model():
    lay = analyse(["1/saved_model.pb", "1/variables/variables.index", "code/inference.py"])
    assert [(m.name, m.base, m.versions) for m in lay.models] == [("model", "", ["1"])]
    assert lay.inference_py == "code/inference.py"
    assert codes(lay) == ["KD005"]


def test_model_name_is_the_folder_above_the_version_folder():
    lay = analyse(["export/Servo/1600000000/saved_model.pb"])
    assert lay.models[0].name == "Servo"
    assert lay.models[0].served_version == "1600000000"


def test_highest_version_is_served():
    lay = analyse(["m/1/saved_model.pb", "m/10/saved_model.pb", "m/2/saved_model.pb"])
    assert lay.models[0].served_version == "10"


def test_saved_model_without_a_version_folder_is_not_found():
    lay = analyse(["saved_model.pb", "variables/variables.index"])
    assert lay.models == []
    assert "KD001" in codes(lay)


def test_non_numeric_version_folder_is_not_found():
    lay = analyse(["v1/saved_model.pb"])
    assert lay.models == []
    assert "KD001" in codes(lay)


def test_code_inside_the_version_folder_is_ignored_by_the_container():
    lay = analyse(["1/saved_model.pb", "1/code/inference.py"])
    assert lay.inference_py is None
    assert "KD002" in codes(lay)


def test_code_under_a_wrapper_folder_is_ignored_by_the_container():
    lay = analyse(["model/1/saved_model.pb", "model/code/inference.py"])
    assert lay.models[0].name == "model"
    assert lay.inference_py is None
    assert "KD002" in codes(lay)


def test_keras_file_alone_cannot_be_served():
    assert codes(analyse(["model.keras"])) == ["KD003"]


def test_several_models_without_a_default_warn():
    lay = analyse(["a/1/saved_model.pb", "b/1/saved_model.pb"])
    assert [m.name for m in lay.models] == ["a", "b"]
    assert "KD004" in codes(lay)


def test_numeric_folder_without_saved_model_breaks_loading():
    lay = analyse(["m/1/saved_model.pb", "m/2/variables/variables.index"])
    assert lay.models[0].versions == ["1", "2"]
    assert "KD008" in codes(lay)


def test_requirements_without_inference_py_changes_the_request_path():
    lay = analyse(["1/saved_model.pb", "code/requirements.txt"])
    assert "KD011" in codes(lay)


def test_leading_dot_slash_in_member_names_is_ignored():
    lay = analyse(["./1/saved_model.pb", "./code/inference.py"])
    assert lay.models[0].name == "model" and lay.inference_py == "code/inference.py"
