"""The failure families people hit, one test each on a real SavedModel: the cause is named in the
user's words, and the fixed payload passes kdiag's own path (validate: container, TF Serving
parse, signature) and the model itself (replay), or no payload is offered when none can work.

Container behaviour pinned here comes from tensorflowServing.js (aws/deep-learning-containers):
a body starting with `[[` is the list of instances, an object without instances/inputs is
wrapped as ONE instance, and CSV lines become instances with non-numbers quoted.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from kdiag.diagnosis.validation import ValidateOptions, validate
from kdiag.model.signature import ExampleFeature
from kdiag.model.target import load_signatures
from kdiag.path.container import Request
from kdiag.payloads.remedies import CLIENT_SEND_MARKER
from tests.conftest import FIXTURES, MODELS

PNG = (FIXTURES / "data/digit.png").read_bytes()
TWO = "two_inputs/1"
K3 = "keras3_names/1"


def sigs(model: str):
    return load_signatures(str(MODELS / model))


def run(model: str, body, ct: str = "application/json"):
    if not isinstance(body, str | bytes):
        body = json.dumps(body)
    return validate(Request(body.encode() if isinstance(body, str) else body, ct), sigs(model),
                    ValidateOptions())


def root(res):
    """The first finding: the root cause."""
    return res.findings[0]


def fixed(res, model: str) -> dict:
    """The fixed payload, after checking it passes validate on its own."""
    assert res.fixed_payload is not None, [(f.code, f.message) for f in res.findings]
    again = run(model, res.fixed_payload["body"], res.fixed_payload["content_type"])
    assert again.accepted, [(f.code, f.message) for f in again.findings]
    return res.fixed_payload


@pytest.fixture(scope="module")
def endpoint():
    """One LocalEndpoint per model, opened on first use (TensorFlow needed)."""
    pytest.importorskip("tensorflow")
    from kdiag.path.local_endpoint import LocalEndpoint

    opened: dict[str, LocalEndpoint] = {}

    def get(model: str) -> LocalEndpoint:
        if model not in opened:
            opened[model] = LocalEndpoint(MODELS / model)
        return opened[model]

    yield get
    for ep in opened.values():
        ep.close()


def replay_fixed(endpoint, model: str, body, ct: str = "application/json"):
    """Replay the broken body with the model: the fix it offers has also run through the graph;
    then replay that fix and return the model's answer."""
    from kdiag.replays.replay import replay_one

    ep = endpoint(model)
    if not isinstance(body, str | bytes):
        body = json.dumps(body)
    res = replay_one(ep, Request(body.encode() if isinstance(body, str) else body, ct))
    assert not res.accepted
    assert res.fixed_payload is not None and res.fixed_payload["verified"][-1] == "graph"
    ok = replay_one(ep, Request(res.fixed_payload["body"].encode(),
                                res.fixed_payload["content_type"]))
    assert ok.accepted and ok.status == 200, ok.findings
    return res, json.loads(ok.response["body"])


# -- wrong input names -----------------------------------------------------------------------

def test_one_missing_input_is_named_as_missing_not_as_unmatched_keys():
    res = run(TWO, {"instances": [{"features": [1.0, 2.0, 3.0, 4.0, 5.0]}]})
    f = root(res)
    assert f.code == "KD350"
    assert "The model takes `features` and `ids`; you sent `features`; `ids` is missing." \
        in f.message
    assert "match no input" not in " ".join(x.message for x in res.findings)
    # kdiag cannot invent the ids: no fixed payload, and it says why.
    assert res.fixed_payload is None
    assert any(x.code == "KD900" and "ids missing" in x.message for x in res.findings)


@pytest.mark.tf
def test_keras3_export_names_are_recognised_and_mapped_by_shape_and_dtype(endpoint):
    body = {"instances": [{"features": [0.5, 1.0, 1.5], "tokens": [1, 2, 3, 4, 5, 6],
                           "mask": [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]}]}
    res = run(K3, body)
    f = root(res)
    assert f.code == "KD350"
    assert f.message.startswith("The model takes `keras_tensor`, `keras_tensor_1` and "
                                "`keras_tensor_2`; you sent `features`, `tokens` and `mask`")
    assert "Keras 3" in f.message and "keras_tensor_N" in f.message
    # The mask is written with decimals, so only a float input takes it: the match is unique.
    assert "`features` -> `keras_tensor`, `tokens` -> `keras_tensor_1`, `mask` -> " \
           "`keras_tensor_2`" in f.message
    sent = json.loads(fixed(res, K3)["body"])
    assert sent == {"instances": [{"keras_tensor": [0.5, 1.0, 1.5],
                                   "keras_tensor_1": [1, 2, 3, 4, 5, 6],
                                   "keras_tensor_2": [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]}]}
    _, answer = replay_fixed(endpoint, K3, body)
    assert len(answer["predictions"]) == 1


def test_keras3_names_that_shape_and_dtype_cannot_tell_apart_are_called_ambiguous():
    # tokens and mask are both six whole numbers: either could be either.
    res = run(K3, {"instances": [{"features": [0.5, 1.0, 1.5], "tokens": [1, 2, 3, 4, 5, 6],
                                  "mask": [1, 1, 1, 1, 0, 0]}]})
    assert root(res).code == "KD350"
    assert "in 2 ways: kdiag cannot tell which is which" in root(res).message
    assert res.fixed_payload is None


def test_tf_saved_model_save_names_inputs_and_the_mapping_is_proposed():
    res = run("two_inputs_tfsave/1", {"instances": [{"features": [0.1, 0.2, 0.3, 0.4, 0.5],
                                                     "ids": [3]}]})
    f = root(res)
    assert f.code == "KD350" and "tf.saved_model.save names inputs `inputs`" in f.message
    assert "`features` -> `inputs`, `ids` -> `inputs_1`" in f.message
    assert json.loads(fixed(res, "two_inputs_tfsave/1")["body"]) == \
        {"instances": [{"inputs": [0.1, 0.2, 0.3, 0.4, 0.5], "inputs_1": [3]}]}


# -- positional values for a multi-input model -----------------------------------------------

@pytest.mark.tf
def test_a_plain_list_for_two_inputs_gets_the_named_form(endpoint):
    body = "[[0.1, 0.2, 0.3, 0.4, 0.5], [3]]"
    res = run(TWO, body)
    # Container: a body starting with [[ is the list of instances, forwarded as it is.
    assert res.tfs_request == '{"instances":' + body + "}"
    f = root(res)
    assert f.code == "KD351" and "by position" in f.message
    assert "the values are `features`, `ids` in that order (the only fit)" in f.message
    assert json.loads(fixed(res, TWO)["body"]) == \
        {"instances": [{"features": [0.1, 0.2, 0.3, 0.4, 0.5], "ids": [3]}]}
    _, answer = replay_fixed(endpoint, TWO, body)
    assert set(answer["predictions"][0]) == {"score", "probs"}


def test_rows_holding_both_inputs_side_by_side_are_split_by_shape():
    res = run(TWO, {"instances": [[[1, 2, 3, 4, 5], [3]], [[5, 4, 3, 2, 1], [7]]]})
    assert root(res).code == "KD351"
    assert json.loads(fixed(res, TWO)["body"])["instances"] == [
        {"features": [1.0, 2.0, 3.0, 4.0, 5.0], "ids": [3]},
        {"features": [5.0, 4.0, 3.0, 2.0, 1.0], "ids": [7]}]


def test_concatenated_rows_are_split_when_dtype_decides_and_called_ambiguous_otherwise():
    unique = run(TWO, {"instances": [[0.1, 0.2, 0.3, 0.4, 0.5, 3]]})
    assert root(unique).code == "KD351"
    assert json.loads(fixed(unique, TWO)["body"])["instances"] == [
        {"features": [0.1, 0.2, 0.3, 0.4, 0.5], "ids": [3]}]
    # All whole numbers: ids could be the first or the last value.
    both = run(TWO, {"instances": [[1, 2, 3, 4, 5, 3]]})
    assert root(both).code == "KD351" and "in 2 ways" in root(both).message
    assert both.fixed_payload is None


# -- a bare object of batched columns ------------------------------------------------------------

@pytest.mark.tf
def test_bare_batched_columns_are_wrapped_as_one_instance_and_fixed_as_inputs(endpoint):
    body = '{"features": [[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]], "ids": [[3], [4]]}'
    res = run(TWO, body)
    # Container: an object without instances/inputs is wrapped as ONE instance.
    assert res.tfs_request == '{"instances":[' + body + "]}"
    assert any(f.code == "KD203" for f in res.findings)
    f = root(res)
    assert f.code == "KD440" and "`features` became (1, 2, 5)" in f.message
    assert json.loads(fixed(res, TWO)["body"]) == {"inputs": json.loads(body)}
    # The container forwards a body with "inputs" unchanged.
    again = run(TWO, res.fixed_payload["body"])
    assert again.tfs_request == res.fixed_payload["body"]
    _, answer = replay_fixed(endpoint, TWO, body)
    assert len(answer["outputs"]["score"]) == 2


# -- image bytes sent to a pixel input -----------------------------------------------------------

@pytest.mark.parametrize("body,ct,how", [
    ({"instances": [{"b64": base64.b64encode(PNG).decode()}]}, "application/json",
     "image bytes as {\"b64\": ...}"),
    ({"instances": ["data:image/png;base64," + base64.b64encode(PNG).decode()]},
     "application/json", "the image as a data: URL"),
    (PNG, "application/x-image", "the image file's bytes as application/x-image"),
])
def test_image_bytes_to_a_pixel_input_name_the_decoding_left_in_python(body, ct, how):
    res = run("image_predict/1", body, ct)
    f = root(res)
    assert f.code == "KD441" and f.message.startswith(f"You sent {how}")
    assert "lived in Python (a predict() override" in f.message
    assert "not in the exported SavedModel" in f.message
    assert "Remedy 1: decode and resize on the client" in f.fix
    assert "Remedy 2: re-export with a signature that takes the image bytes" in f.fix
    assert res.fixed_payload is None
    assert any(x.code == "KD900" and "no payload can work" in x.message for x in res.findings)
    if ct == "application/x-image":
        # Container: a content type it does not convert, and no inference.py: 415.
        assert res.status == 415 and res.stage == "container"


@pytest.mark.tf
def test_image_remedies_run_and_their_requests_pass(endpoint, tmp_path):
    """Remedy 1's body passes the path and the model; remedy 2 exports a model that takes the
    image bytes as {"b64": ...}."""
    from kdiag.payloads.remedies import client_pixels_snippet, reexport_bytes_snippet

    spec = sigs("image_predict/1")[0].inputs["image"]
    image = tmp_path / "image.png"
    image.write_bytes(PNG)
    code = client_pixels_snippet("image", spec, image_path=str(image))
    scope: dict = {}
    exec(code.split(CLIENT_SEND_MARKER)[0], scope)  # everything but the boto3 call
    res = run("image_predict/1", scope["body"])
    assert res.accepted, res.findings
    from kdiag.replays.replay import replay_one

    ok = replay_one(endpoint("image_predict/1"), Request(scope["body"].encode(),
                                                          "application/json"))
    assert ok.status == 200 and len(json.loads(ok.response["body"])["predictions"][0]) == 3

    # Remedy 2 on a notebook model with the same input (a .keras file as users have).
    script = (
        "import keras\n"
        "inp = keras.Input((8, 8, 3))\n"
        "out = keras.layers.Dense(3, activation='softmax')(keras.layers.Flatten()(inp))\n"
        "keras.Model(inp, out).save('model.keras')\n"
        + reexport_bytes_snippet("image", spec))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    p = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    exported = load_signatures(str(tmp_path / "export/1"))
    assert exported[0].inputs["image_bytes"].dtype == "string"
    req = Request(json.dumps({"instances": [{"b64": base64.b64encode(PNG).decode()}]}).encode(),
                  "application/json")
    assert validate(req, exported, ValidateOptions()).accepted


# -- base64 in another alphabet ------------------------------------------------------------------

@pytest.mark.tf
@pytest.mark.parametrize("encoded,what", [
    (base64.urlsafe_b64encode(PNG).decode().rstrip("="), "the url-safe alphabet (- and _)"),
    ("data:image/png;base64," + base64.b64encode(PNG).decode(), "a data: URL prefix"),
])
def test_url_safe_or_data_url_base64_is_converted_and_nothing_else_changes(endpoint, encoded,
                                                                           what):
    assert "-" in encoded or "_" in encoded or encoded.startswith("data:")
    body = {"signature_name": "serving_default", "instances": [{"b64": encoded}]}
    res = run("image_bytes/1", body)
    f = root(res)
    assert f.code == "KD352" and what in f.message and "Unable to base64 decode" in f.message
    sent = json.loads(fixed(res, "image_bytes/1")["body"])
    # Only the b64 string changed: the keys (signature_name included) are as sent.
    assert sent == {"signature_name": "serving_default",
                    "instances": [{"b64": base64.b64encode(PNG).decode()}]}
    _, answer = replay_fixed(endpoint, "image_bytes/1", body)
    assert len(answer["predictions"][0]) == 10


# -- a CSV header row ----------------------------------------------------------------------------

@pytest.mark.tf
def test_csv_header_row_is_dropped_and_the_body_stays_csv(endpoint):
    body = "a,b,c,d,e\n1,2,3,4,5\n"
    res = run("custom/export/1", body, "text/csv")
    # Container: each line is an instance, the header's names arrive as strings.
    assert res.tfs_request == '{"instances":[["a","b","c","d","e"],[1,2,3,4,5]]}'
    assert root(res).code == "KD313" and "keep text/csv" in root(res).fix
    fix = fixed(res, "custom/export/1")
    assert fix["content_type"] == "text/csv" and fix["body"] == "1.0,2.0,3.0,4.0,5.0\n"
    assert run("custom/export/1", fix["body"], "text/csv").tfs_request == \
        '{"instances":[[1.0,2.0,3.0,4.0,5.0]]}'
    _, answer = replay_fixed(endpoint, "custom/export/1", body, "text/csv")
    # fixtures/README.md: x . [.1, .2, .3, .4, .5] + 1
    assert answer["predictions"][0][0] == pytest.approx(6.5)


# -- ragged rows ---------------------------------------------------------------------------------

@pytest.mark.tf
def test_ragged_rows_say_which_rows_differ_and_are_padded(endpoint):
    body = {"instances": [list(range(1, 11)), [1, 2, 3], list(range(1, 11))]}
    res = run("tokens/1", body)
    f = root(res)
    assert f.code == "KD304"
    assert "`tokens`: rows 0, 2 have 10 values; row 1 has 3 values" in f.message
    assert "the model has no mask input" in f.fix
    assert "one request per length does not work here, since `tokens` takes exactly 10" in f.fix
    sent = json.loads(fixed(res, "tokens/1")["body"])
    assert sent["instances"][1] == [1, 2, 3, 0, 0, 0, 0, 0, 0, 0]
    _, answer = replay_fixed(endpoint, "tokens/1", body)
    assert len(answer["predictions"]) == 3


def test_ragged_rows_with_a_mask_input_pad_the_mask_with_zeros():
    sig = sigs(K3)
    body = {"inputs": {"keras_tensor": [[0.5, 1.0, 1.5], [0.5, 1.0, 1.5]],
                       "keras_tensor_1": [[1, 2, 3], [1, 2, 3, 4, 5, 6]],
                       "keras_tensor_2": [[1.0, 1.0, 1.0], [1.0] * 6]}}
    res = validate(Request(json.dumps(body).encode(), "application/json"), sig)
    f = root(res)
    assert f.code == "KD304" and "row 0 has 3 values" in f.message
    sent = json.loads(fixed(res, K3)["body"])
    assert sent["inputs"]["keras_tensor_1"][0] == [1, 2, 3, 0, 0, 0]
    assert sent["inputs"]["keras_tensor_2"][0] == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]


MASKED = "masked_tokens/1"  # tokens + attention_mask, int32 [-1, -1]; signature no_mask: tokens


def test_equal_length_rows_without_the_mask_name_it_and_offer_no_guess():
    """Rows of one length may already be padded by the client: kdiag cannot tell padding from
    values, so it says what the mask means and writes none."""
    res = run(MASKED, {"instances": [{"tokens": [1, 2, 3]}, {"tokens": [4, 5, 0]}]})
    f = root(res)
    assert f.code == "KD350" and "`attention_mask` is missing" in f.message
    assert f.fix.startswith("Send `attention_mask` with each instance: 1 where a value is real")
    assert "cannot tell padding from values" in f.fix and "Key each value" not in f.fix
    assert res.fixed_payload is None
    assert any("cannot tell the client's padding from its values" in g.message
               for g in res.findings if g.code == "KD900")


def test_ragged_rows_without_the_mask_input_get_the_mask_written():
    res = run(MASKED, {"instances": [{"tokens": [1, 2, 3]}, {"tokens": [4, 5]},
                                     {"tokens": [6, 7, 8]}]})
    f = root(res)
    # TF Serving names the missing key first; the cause in the user's words is the ragged rows.
    assert f.code == "KD304"
    assert "`tokens`: rows 0, 2 have 3 values; row 1 has 2 values" in f.message
    assert "the mask input `attention_mask` was not sent" in f.message
    assert "set `attention_mask` to 1 on the real values and 0 on the padding" in f.fix
    fix = fixed(res, MASKED)
    assert json.loads(fix["body"])["instances"] == [
        {"attention_mask": [1, 1, 1], "tokens": [1, 2, 3]},
        {"attention_mask": [1, 1, 0], "tokens": [4, 5, 0]},
        {"attention_mask": [1, 1, 1], "tokens": [6, 7, 8]}]
    assert any("wrote the mask input 'attention_mask'" in c for c in fix["changes"])
    # The other choice: one unpadded request per length, each passing the same path.
    parts = fix["per_length"]
    assert [(p["rows"], p["lengths"]) for p in parts] == [
        ([0, 2], {"tokens": 3, "attention_mask": 3}), ([1], {"tokens": 2, "attention_mask": 2})]
    assert json.loads(parts[1]["body"]) == {"instances": [{"attention_mask": [1, 1],
                                                           "tokens": [4, 5]}]}
    for p in parts:
        assert run(MASKED, p["body"], p["content_type"]).accepted


@pytest.mark.parametrize("body", [
    {"inputs": {"tokens": [[1, 2, 3], [4, 5]]}},  # columnar, stays columnar
    {"instances": [[1, 2, 3], [4, 5]]},  # a plain list: the one input that is not a mask
])
def test_ragged_rows_in_other_forms_get_the_mask_too(body):
    res = run(MASKED, body)
    assert root(res).code == "KD304" and "row 1 has 2 values" in root(res).message
    sent = json.loads(fixed(res, MASKED)["body"])
    data = sent.get("inputs") or {k: [r[k] for r in sent["instances"]]
                                   for k in ("tokens", "attention_mask")}
    assert ("inputs" in sent) == ("inputs" in body)
    assert data == {"tokens": [[1, 2, 3], [4, 5, 0]], "attention_mask": [[1, 1, 1], [1, 1, 0]]}


def test_a_sent_mask_is_padded_like_its_values_and_must_match_their_lengths():
    ok = run(MASKED, {"instances": [{"tokens": [1, 2, 3], "attention_mask": [1, 1, 1]},
                                    {"tokens": [4, 5], "attention_mask": [1, 1]}]})
    assert root(ok).code == "KD304"
    assert [r["attention_mask"] for r in json.loads(fixed(ok, MASKED)["body"])["instances"]] \
        == [[1, 1, 1], [1, 1, 0]]
    bad = run(MASKED, {"instances": [{"tokens": [1, 2, 3], "attention_mask": [1, 1]},
                                     {"tokens": [4, 5], "attention_mask": [1, 1, 1]}]})
    assert root(bad).code == "KD304" and bad.fixed_payload is None
    assert any("'attention_mask' have other lengths than the rows of 'tokens'" in x.message
               for x in bad.findings if x.code == "KD900")


def test_the_written_mask_takes_the_inputs_dtype_and_the_leading_axes_of_the_padded_values():
    from kdiag.model.signature import Signature, TensorSpec
    from kdiag.payloads.recover import recover

    sig = Signature("serving_default", "tensorflow/serving/predict",
                    {"frames": TensorSpec("float32", (-1, -1, 2)),
                     "padding_mask": TensorSpec("bool", (-1, -1)),
                     "input_mask": TensorSpec("float32", (-1, -1))}, {})
    body = {"instances": [{"frames": [[1, 1], [2, 2], [3, 3]]}, {"frames": [[4, 4]]}]}
    rec = recover(json.dumps(body), "application/json", sig)
    assert rec.tensors["frames"].shape == (2, 3, 2)
    assert rec.tensors["frames"][1].tolist() == [[4, 4], [0, 0], [0, 0]]
    assert rec.tensors["padding_mask"].dtype == bool
    assert rec.tensors["padding_mask"].tolist() == [[True] * 3, [True, False, False]]
    assert rec.tensors["input_mask"].dtype.kind == "f"
    assert rec.tensors["input_mask"].tolist() == [[1.0] * 3, [1.0, 0.0, 0.0]]
    assert {n: a.tolist() for n, a in rec.row_lengths.items()} == {
        "frames": [3, 1], "padding_mask": [3, 1], "input_mask": [3, 1]}


def test_ragged_rows_without_a_mask_input_say_padding_changes_the_numbers():
    res = run(MASKED, {"signature_name": "no_mask", "instances": [[1, 2, 3], [4, 5]]})
    f = root(res)
    assert f.code == "KD304" and "row 1 has 2 values" in f.message
    assert "the model has no mask input, so padding changes the numbers unless the model " \
           "masks internally" in f.fix and "the graph decides" in f.fix
    fix = fixed(res, MASKED)
    # The body's signature_name is kept: TF Serving runs the signature it names.
    assert json.loads(fix["body"]) == {"signature_name": "no_mask",
                                       "instances": [[1, 2, 3], [4, 5, 0]]}
    assert [json.loads(p["body"])["instances"] for p in fix["per_length"]] == [[[1, 2, 3]],
                                                                              [[4, 5]]]


def test_more_row_lengths_than_can_be_listed_are_counted_not_listed():
    res = run(MASKED, {"signature_name": "no_mask",
                       "instances": [list(range(1, n + 2)) for n in range(17)]})
    assert "17 lengths, too many to list" in root(res).fix
    assert fixed(res, MASKED).get("per_length") is None


def test_the_per_length_requests_are_printed_in_text_json_and_html(tmp_path):
    from click.testing import CliRunner

    import kdiag
    from kdiag.cli import cli

    body = tmp_path / "ragged.json"
    body.write_text('{"instances": [{"tokens": [1, 2, 3]}, {"tokens": [4, 5]}]}')
    sig = str(MODELS / MASKED)
    text = CliRunner().invoke(cli, ["validate", str(body), "--signature", sig],
                              env={"COLUMNS": "200"})
    assert text.exit_code == 1
    assert "Or one request per row length (2 requests" in text.output
    assert 'rows 1: {"instances":[{"attention_mask":[1,1],"tokens":[4,5]}]}' in text.output
    doc = json.loads(CliRunner().invoke(cli, ["validate", str(body), "--signature", sig,
                                              "--format", "json"]).output)
    assert [p["rows"] for p in doc["fixed_payload"]["per_length"]] == [[0], [1]]
    html = kdiag.validate(body, sig)._repr_html_()
    assert "Or one request per row length: rows 1:" in html


def _pooled(endpoint, body: str) -> list:
    from kdiag.replays.replay import replay_one

    ok = replay_one(endpoint(MASKED), Request(body.encode(), "application/json"))
    assert ok.accepted and ok.status == 200, ok.findings
    return json.loads(ok.response["body"])["predictions"]


@pytest.mark.tf
def test_the_padded_payload_with_its_mask_gives_the_real_rows_the_outputs_they_get_alone(
        endpoint):
    from kdiag.replays.replay import replay_one

    body = {"instances": [{"tokens": [1, 2, 3]}, {"tokens": [4, 5]}, {"tokens": [6, 7, 8]}]}
    res, answer = replay_fixed(endpoint, MASKED, body)
    assert root(res).code == "KD304"
    assert all(p["verified"][-1] == "graph" for p in res.fixed_payload["per_length"])
    # fixtures/README.md: the masked mean of ids/10, negated in column 2.
    padded = np.asarray(answer["predictions"])
    np.testing.assert_allclose(padded, [[0.2, -0.2], [0.45, -0.45], [0.7, -0.7]], atol=1e-6)
    alone = np.zeros_like(padded)
    for part in res.fixed_payload["per_length"]:
        alone[part["rows"]] = _pooled(endpoint, part["body"])
    np.testing.assert_allclose(alone, padded, atol=1e-6)  # what the mask is for
    kd357 = [x for x in res.findings if x.code == "KD357"]
    assert kd357 and "the padding does not change the answer" in kd357[0].message
    again = replay_one(endpoint(MASKED), Request(json.dumps(body).encode(), "application/json"))
    assert again.root_cause == "KD304"


@pytest.mark.tf
def test_replay_shows_when_padding_changes_a_model_without_a_mask(endpoint):
    body = {"signature_name": "no_mask", "instances": [[1, 2, 3], [4, 5]]}
    res, answer = replay_fixed(endpoint, MASKED, body)
    f = next(x for x in res.findings if x.code == "KD356")
    assert f.severity == "warning" and "row(s) 1 give other outputs padded" in f.message
    assert "largest difference 0.15 on `pooled`" in f.message
    # Padded, row 1 averages 4, 5 and the padding 0: (4 + 5 + 0) / 3 / 10; alone (4 + 5) / 2 / 10.
    assert answer["predictions"][1] == pytest.approx([0.3, -0.3])
    np.testing.assert_allclose(_pooled(endpoint, res.fixed_payload["per_length"][1]["body"]),
                               [[0.45, -0.45]], atol=1e-6)


# -- tf.Example signatures -------------------------------------------------------------------------

@pytest.mark.tf
def test_tf_example_features_become_serialized_examples_from_the_graphs_spec(endpoint):
    sig = sigs("example_parser/1")[0]
    # Read without TensorFlow from the ParseExampleV2 node and its constant inputs.
    assert sig.example_features == (ExampleFeature("age", "float32", (1,)),
                                    ExampleFeature("income", "float32", (1,)))
    body = {"instances": [{"age": 30, "income": 4.0}, {"age": [20.0], "income": [8]}]}
    res = run("example_parser/1", body)
    f = root(res)
    assert f.code == "KD353" and "`age` (float32 [1]), `income` (float32 [1])" in f.message
    sent = json.loads(fixed(res, "example_parser/1")["body"])
    assert [set(x) for x in sent["instances"]] == [{"b64"}, {"b64"}]
    _, answer = replay_fixed(endpoint, "example_parser/1", body)
    # fixtures/README.md: score = 0.5 age + 0.25 income
    assert answer["predictions"] == [[16.0], [12.0]]


def test_tf_example_without_a_required_feature_has_no_fixed_payload():
    res = run("example_parser/1", {"instances": [{"age": 30}]})
    assert root(res).code == "KD353" and res.fixed_payload is None
    assert any("'income' missing" in x.message for x in res.findings if x.code == "KD900")


# -- no payload can work -------------------------------------------------------------------------

def test_text_for_a_token_id_model_says_the_model_must_change_and_offers_no_payload():
    res = run("tokens/1", {"instances": ["the cat sat on the mat"]})
    f = root(res)
    assert f.code == "KD355" and "No payload can carry text to this model" in f.message
    assert "TextVectorization" in f.fix and "archive.write_out" in f.fix
    assert res.fixed_payload is None
    assert any(x.code == "KD900" and "no payload can work" in x.message for x in res.findings)


@pytest.mark.tf
def test_the_tokenizer_export_snippet_runs_and_takes_text(tmp_path):
    from kdiag.payloads.remedies import tokenizer_export_snippet

    spec = sigs("tokens/1")[0].inputs["tokens"]
    script = (
        "import keras\n"
        "inp = keras.Input((10,), dtype='int32')\n"
        "h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 4)(inp))\n"
        "keras.Model(inp, keras.layers.Dense(2)(h)).save('model.keras')\n"
        "VOCABULARY = ['the', 'cat', 'sat']\n"
        + tokenizer_export_snippet("tokens", spec))
    p = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert p.returncode == 0, p.stderr[-2000:]
    exported = load_signatures(str(tmp_path / "export/1"))
    req = Request(b'{"instances": ["the cat sat on the mat"]}', "application/json")
    assert validate(req, exported, ValidateOptions()).accepted


@pytest.mark.parametrize("model,body", [
    (TWO, {"instances": [{"features": [1.0, 2.0, 3.0, 4.0, 5.0]}]}),
    (K3, {"instances": [{"features": [0.5, 1.0, 1.5], "tokens": [1, 2, 3, 4, 5, 6],
                         "mask": [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]}]}),
    (TWO, [[0.1, 0.2, 0.3, 0.4, 0.5], [3]]),
    (TWO, {"features": [[1, 2, 3, 4, 5]], "ids": [[3]]}),
    ("image_predict/1", {"instances": [{"b64": base64.b64encode(PNG).decode()}]}),
    ("image_bytes/1", {"instances": [{"b64": base64.urlsafe_b64encode(PNG).decode()}]}),
    ("tokens/1", {"instances": [list(range(10)), [1, 2]]}),
    ("example_parser/1", {"instances": [{"age": 30, "income": 4.0}]}),
    ("tokens/1", {"instances": ["the cat sat"]}),
])
def test_the_family_and_its_fix_do_not_depend_on_whitespace(model, body):
    spaced = run(model, json.dumps(body, indent=2))
    compact = run(model, json.dumps(body, separators=(",", ":")))
    assert root(spaced).code == root(compact).code
    assert spaced.fixed_payload == compact.fixed_payload


@pytest.mark.tf
def test_the_example_spec_is_read_from_v2_and_v1_parse_ops_with_defaults_and_sparse(tmp_path):
    tf = pytest.importorskip("tensorflow")
    from kdiag.model.savedmodel import read_saved_model

    class V2(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples):
            feats = tf.io.parse_example(examples, {
                "age": tf.io.FixedLenFeature([1], tf.float32),
                "n": tf.io.FixedLenFeature([2], tf.int64, default_value=[0, 0]),
                "tags": tf.io.VarLenFeature(tf.string)})
            return {"y": feats["age"]}

    class V1(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples):
            out = tf.raw_ops.ParseExample(
                serialized=examples, names=tf.constant([], tf.string),
                sparse_keys=[tf.constant("ids")], dense_keys=[tf.constant("w")],
                dense_defaults=[tf.constant([], tf.float32)], sparse_types=[tf.int64],
                dense_shapes=[[3]])
            return {"y": out.dense_values[0]}

    for cls in (V2, V1):
        m = cls()
        tf.saved_model.save(m, str(tmp_path / cls.__name__),
                            signatures={"serving_default": m.serve})
    def serving_default(name):
        return next(s for s in read_saved_model(tmp_path / name).serving().signatures
                    if s.name == "serving_default")

    v2 = serving_default("V2")
    assert v2.example_features == (ExampleFeature("age", "float32", (1,)),
                                   ExampleFeature("n", "int64", (2,), required=False),
                                   ExampleFeature("tags", "string", None, required=False))
    v1 = serving_default("V1")
    assert v1.example_features == (ExampleFeature("w", "float32", (3,)),
                                   ExampleFeature("ids", "int64", None, required=False))


def test_inspect_names_the_features_the_example_parser_reads():
    from kdiag.model.artifact import read_model

    kd022 = [f for f in read_model(MODELS / "example_parser/1").findings if f.code == "KD022"]
    assert "The parser reads age (float32 [1]), income (float32 [1])" in kd022[0].message
