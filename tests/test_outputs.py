"""kdiag.replays.outputs: output sets from TF Serving responses, .npy/.npz, result lines, Data Capture."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from kdiag.comparison import compare_sets
from kdiag.errors import KdiagError
from kdiag.replays.outputs import (
    load_output_set,
    loads,
    response_tensors,
    result_line,
)
from tests.test_capture import capture_line

# The response bodies are written the way TF Serving's json_tensor.cc writes them: floats always
# with a decimal point or exponent, NaN/Infinity as bare tokens, one object per instance when the
# signature has several outputs, `_bytes` outputs as {"b64": ...}.
ROW_ONE = '{\n    "predictions": [[0.1, 0.9], [0.7, 0.3]\n    ]\n}'
ROW_MULTI = ('{"predictions": [{"probs": [0.1, 0.9], "label": 1}, '
             '{"probs": [0.7, 0.3], "label": 0}]}')
COL_ONE = '{"outputs": [[0.1, 0.9], [0.7, 0.3]]}'
COL_MULTI = '{"outputs": {"probs": [[0.1, 0.9], [0.7, 0.3]], "label": [1, 0]}}'


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text) if isinstance(text, str) else p.write_bytes(text)
    return str(p)


def test_row_format_single_output_is_unnamed_one_record_per_instance(tmp_path):
    s = load_output_set(write(tmp_path, "r.json", ROW_ONE))
    assert (s.kind, s.n, s.unnamed, s.exact_dtypes) == ("tfs-row", 2, True, False)
    np.testing.assert_array_equal(s.outputs["predictions"], [[0.1, 0.9], [0.7, 0.3]])


def test_row_format_with_one_object_per_instance_gives_named_outputs(tmp_path):
    s = load_output_set(write(tmp_path, "r.json", ROW_MULTI))
    assert set(s.outputs) == {"probs", "label"} and not s.unnamed
    assert s.outputs["label"].dtype.kind == "i"


def test_columnar_single_and_multi_output(tmp_path):
    one = load_output_set(write(tmp_path, "c1.json", COL_ONE))
    multi = load_output_set(write(tmp_path, "c2.json", COL_MULTI))
    assert one.kind == "tfs-columnar" and one.unnamed and one.n == 2
    assert set(multi.outputs) == {"probs", "label"} and multi.n == 2


def test_row_and_columnar_responses_of_the_same_outputs_compare_clean(tmp_path):
    r = compare_sets(load_output_set(write(tmp_path, "r.json", ROW_MULTI)),
                     load_output_set(write(tmp_path, "c.json", COL_MULTI)))
    assert r.findings == []


def test_nan_and_infinity_tokens_are_read():
    doc = loads(b'{"predictions": [NaN, Infinity, -Infinity, 1.0]}')
    t, _ = response_tensors(doc)
    v = t["predictions"]
    assert np.isnan(v[0]) and v[1] == np.inf and v[2] == -np.inf


def test_bytes_outputs_are_decoded_from_b64():
    b64 = base64.b64encode(b"\x00\xffpng").decode()
    t, unnamed = response_tensors({"predictions": [{"image_bytes": {"b64": b64}, "score": 0.5}]})
    assert t["image_bytes"][0] == b"\x00\xffpng" and not unnamed


def test_bare_list_is_read_as_row_format(tmp_path):
    s = load_output_set(write(tmp_path, "l.json", "[[1.0, 2.0], [3.0, 4.0]]"))
    assert s.kind == "tfs-row" and s.n == 2


def test_error_response_is_a_kdiag_error(tmp_path):
    body = '{\n    "error": "JSON Value: 1.0 Type: Number is not of expected type: int32"\n}'
    with pytest.raises(KdiagError, match="TF Serving error response.*not of expected type"):
        load_output_set(write(tmp_path, "e.json", body))


@pytest.mark.parametrize("text,match", [
    ('{"foo": 1}', "no 'predictions', 'outputs' or 'results'"),
    ('"just a string"', "not a TF Serving response"),
    ('{"predictions": [[1, 2], [3]]}', "ragged"),
    ('{"outputs": {"a": [1, 2], "b": [1, 2, 3]}}', "different numbers of instances"),
])
def test_unreadable_responses_are_kdiag_errors(tmp_path, text, match):
    with pytest.raises(KdiagError, match=match):
        load_output_set(write(tmp_path, "x.json", text))


def test_missing_empty_and_garbage_files_are_kdiag_errors(tmp_path):
    with pytest.raises(KdiagError, match="no such file"):
        load_output_set(str(tmp_path / "nope.json"))
    with pytest.raises(KdiagError, match="empty"):
        load_output_set(write(tmp_path, "empty.json", ""))
    with pytest.raises(KdiagError, match="no readable records"):
        load_output_set(write(tmp_path, "g.json", "this is not json\nnor this\n"))


def test_npy_is_one_output_with_records_along_the_first_axis(tmp_path):
    p = tmp_path / "logits.npy"
    np.save(p, np.zeros((5, 3), dtype=np.float16))
    s = load_output_set(str(p))
    assert (s.kind, s.n, s.unnamed, list(s.outputs)) == ("npy", 5, True, ["logits"])
    assert s.outputs["logits"].dtype == np.float16


def test_npz_reads_every_array_and_ids(tmp_path):
    p = tmp_path / "o.npz"
    np.savez(p, a=np.zeros((3, 2)), b=np.ones(3), __ids__=np.array(["x", "y", "z"]))
    s = load_output_set(str(p))
    assert set(s.outputs) == {"a", "b"} and list(s.ids) == ["x", "y", "z"]


def test_npz_arrays_of_different_lengths_are_an_error(tmp_path):
    p = tmp_path / "o.npz"
    np.savez(p, a=np.zeros(3), b=np.zeros(4))
    with pytest.raises(KdiagError, match="different numbers of records: a 3, b 4"):
        load_output_set(str(p))


def test_corrupt_npz_and_npy_are_errors(tmp_path):
    with pytest.raises(KdiagError, match="cannot load as .npz"):
        load_output_set(write(tmp_path, "bad.npz", b"PK\x03\x04garbage"))
    with pytest.raises(KdiagError, match=".npy"):
        load_output_set(write(tmp_path, "bad.npy", b"\x93NUMPY garbage"))


def test_object_npy_is_refused_without_unpickling(tmp_path):
    p = tmp_path / "o.npy"
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(KdiagError, match="pickles"):
        load_output_set(str(p))


def test_result_lines_roundtrip_ids_exact_dtypes_and_errors(tmp_path):
    p = tmp_path / "replay.jsonl"
    with p.open("wb") as fh:
        fh.write(result_line("r1", {"probs": np.array([[0.25, np.nan]], dtype=np.float32),
                                    "ids_bytes": np.array([b"\x01"], dtype=object)}))
        fh.write(result_line("r2", error="HTTP 424 from the container"))
        fh.write(result_line("r3", {"probs": np.array([[0.5, 1.0]], dtype=np.float32),
                                    "ids_bytes": np.array([b"\x02"], dtype=object)}))
    s = load_output_set(str(p))
    assert (s.kind, s.n, list(s.ids), s.exact_dtypes) == ("jsonl", 3, ["r1", "r2", "r3"], True)
    assert s.errors == {1: "HTTP 424 from the container"}
    col = s.outputs["probs"]
    assert col[0].dtype == np.float32 and np.isnan(col[0][0, 1]) and col[1] is None
    assert s.outputs["ids_bytes"][2][0] == b"\x02"


def test_result_lines_read_responses_and_predictions(tmp_path):
    lines = [
        json.dumps({"id": "a", "response": ROW_ONE}),
        json.dumps({"id": "b", "predictions": [[0.5, 0.5]]}),
        json.dumps({"inferenceId": "c", "response": {"error": "boom"}}),
    ]
    s = load_output_set(write(tmp_path, "r.jsonl", "\n".join(lines) + "\n"))
    assert list(s.ids) == ["a", "b", "c"] and s.errors == {2: "TF Serving error: boom"}
    assert s.outputs["predictions"][0].shape == (2, 2)


def test_truncated_result_line_is_skipped_with_a_warning(tmp_path):
    text = result_line("a", {"y": np.ones(2)}).decode() + '{"id": "b", "outp'
    s = load_output_set(write(tmp_path, "r.jsonl", text))
    assert s.n == 1 and [f.code for f in s.notes] == ["KD715"]


def test_json_lines_without_ids_align_by_order(tmp_path):
    text = '{"predictions": [1.0]}\n{"predictions": [2.0]}\n'
    s = load_output_set(write(tmp_path, "r.json", text))
    assert s.ids is None and s.n == 2


def test_capture_file_gives_one_record_per_invocation_with_batch_axis(tmp_path):
    lines = [capture_line(0, output=[[1.0, 2.0]], inference_id="q0"),
             capture_line(1, output=[[3.0, 4.0], [5.0, 6.0]]),
             capture_line(2, encoding="BASE64", output=[[7.0, 8.0]]),
             capture_line(3, input_only=True)]
    s = load_output_set(write(tmp_path, "cap.jsonl", "\n".join(lines) + "\n"))
    assert s.kind == "capture" and list(s.ids) == ["q0", "ev-000001", "ev-000002", "ev-000003"]
    col = s.outputs["predictions"]
    assert [None if c is None else c.shape for c in col] == [(1, 2), (2, 2), (1, 2), None]
    assert "capture mode Input" in s.errors[3]


def test_capture_csv_output_is_read_as_rows_of_numbers(tmp_path):
    line = json.loads(capture_line(0))
    line["captureData"]["endpointOutput"].update(
        {"observedContentType": "text/csv; charset=utf-8", "encoding": "CSV",
         "data": "0.1,0.9\n0.2,0.8\n"})
    s = load_output_set(write(tmp_path, "cap.jsonl", json.dumps(line) + "\n"))
    np.testing.assert_array_equal(s.outputs["predictions"][0], [[0.1, 0.9], [0.2, 0.8]])


def test_limit_applies_to_every_kind(tmp_path):
    p = tmp_path / "o.npz"
    np.savez(p, a=np.zeros(10))
    assert load_output_set(str(p), limit=4).n == 4
    assert load_output_set(write(tmp_path, "r.json", ROW_ONE), limit=1).n == 1
