"""replay: the real model behind the emulated container, end to end (needs TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kdiag.cli import cli
from kdiag.path.container import Request
from tests.conftest import ARCHIVES, FIXTURES, MODELS

pytestmark = pytest.mark.tf
pytest.importorskip("tensorflow")

from kdiag.path.local_endpoint import LocalEndpoint  # noqa: E402
from kdiag.replays.outputs import load_output_set  # noqa: E402
from kdiag.replays.replay import notebook_versus_endpoint, replay_many, replay_one  # noqa: E402

CUSTOM = MODELS / "custom/export/1"


@pytest.fixture(scope="module")
def custom():
    with LocalEndpoint(CUSTOM) as ep:
        yield ep


def req(body, ct="application/json", **kw):
    return Request(body.encode() if isinstance(body, str) else body, ct, **kw)


def test_valid_payload_returns_the_models_prediction(custom):
    # fixtures/README.md: the custom model computes x.[.1,.2,.3,.4,.5] + 1
    res = replay_one(custom, req("[1,1,1,1,1]"))
    assert res.accepted and res.status == 200
    assert json.loads(res.response["body"]) == {"predictions": [[2.5]]}
    assert res.decoded["output_0"].tolist() == [[2.5]]
    assert res.outputs == {"output_0": {"dtype": "float32", "shape": [1, 1]}}
    stages = [r.stage for r in res.records]
    assert stages == ["wire", "container", "tfs-parse", "signature", "model", "tfs-response",
                      "container-response", "runtime", "client-decode"]


def test_graph_error_carries_tensorflows_message(custom):
    res = replay_one(custom, req("[[1,2,3]]"))
    assert not res.accepted and res.status == 400 and res.stage == "signature"
    assert "Matrix size-incompatible: In[0]: [1,3], In[1]: [5,1]" in res.error
    assert res.response["boto3"]["raises"] == "ModelError"
    assert res.response["boto3"]["OriginalStatusCode"] == 400
    assert "KD413" in [f.code for f in res.findings]


def test_parse_error_is_diagnosed_and_fixed(custom):
    res = replay_one(custom, req('{"instances": [["1","1","1","1","1"]]}'))
    assert not res.accepted and res.findings[0].code == "KD301"
    fixed = replay_one(custom, req(res.fixed_payload["body"]))
    assert fixed.accepted and fixed.decoded["output_0"].tolist() == [[2.5]]


def test_multi_output_row_response_is_one_object_per_instance():
    with LocalEndpoint(MODELS / "two_inputs/1") as ep:
        body = json.dumps({"instances": [{"features": [1, 2, 3, 4, 5], "ids": [3]},
                                         {"features": [0, 0, 0, 0, 0], "ids": [1]}]})
        res = replay_one(ep, req(body))
    assert res.accepted
    preds = json.loads(res.response["body"])["predictions"]
    assert len(preds) == 2 and sorted(preds[0]) == ["probs", "score"]
    assert res.decoded["probs"].shape == (2, 3)


def test_archive_is_extracted_and_served_as_model():
    with LocalEndpoint(ARCHIVES / "good.tar.gz") as ep:
        assert ep.model_name == "model"
        res = replay_one(ep, req("[1,1,1,1,1]"))
        tmp = ep._tmp
    assert res.accepted and res.decoded["output_0"].tolist() == [[2.5]]
    assert tmp is not None and not Path(tmp).exists()


def test_keras3_tf_saved_model_save_export_fails_to_restore_variables():
    with LocalEndpoint(MODELS / "custom/tfsave/1") as ep:
        res = replay_one(ep, req("[1,1,1,1,1]"))
    assert not res.accepted and res.findings[0].code == "KD501"


def test_batch_replay_matches_one_by_one(custom):
    rng = np.random.default_rng(0)
    bodies = [json.dumps({"instances": rng.random((int(rng.integers(1, 4)), 5)).tolist()})
              for _ in range(60)] + ["[[1,2,3]]", '{"instances": [["x"]]}']
    items = [(str(i), req(b)) for i, b in enumerate(bodies)]
    batched = replay_many(custom, items, max_batch=16)
    single = [replay_one(custom, r, n) for n, r in items]
    assert [r.accepted for r in batched] == [r.accepted for r in single]
    for a, b in zip(batched, single, strict=True):
        if a.accepted:
            np.testing.assert_allclose(a.decoded["output_0"], b.decoded["output_0"], rtol=1e-6)
        else:
            assert a.status == b.status and a.stage == b.stage


def test_notebook_and_endpoint_agree_on_the_same_numbers(custom):
    res = replay_one(custom, req("[[1,2,3,4,5]]"))
    notebook_versus_endpoint(res, MODELS / "custom/custom.keras", '{"data": [[1,2,3,4,5]]}',
                             custom_objects=FIXTURES / "custom_model.py", safe_mode=True)
    assert res.notebook["verdict"] == "agree"


def test_notebook_json_string_is_what_the_endpoint_never_parses(custom):
    res = replay_one(custom, req('{"data": [[1,2,3,4,5]]}'))
    notebook_versus_endpoint(res, MODELS / "custom/custom.keras", '{"data": [[1,2,3,4,5]]}',
                             custom_objects=FIXTURES / "custom_model.py", safe_mode=True)
    assert res.notebook["verdict"] == "endpoint-rejects"
    first = res.findings[0]
    assert first.code == "KD721" and "CustomModel.predict()" in first.message


def test_cli_replay_json_and_results_file_feed_kdiag_diff(tmp_path):
    bodies = tmp_path / "bodies"
    bodies.mkdir()
    for i in range(3):
        (bodies / f"{i}.json").write_text(json.dumps([[i, i, i, i, i]]))
    out = tmp_path / "results.jsonl"
    r = CliRunner().invoke(cli, ["replay", str(bodies), "--model", str(CUSTOM), "--out", str(out),
                                 "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["accepted"] == 3
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == ["0.json", "1.json", "2.json"]
    assert lines[1]["outputs"]["output_0"] == [[2.5]]
    d = CliRunner().invoke(cli, ["diff", str(out), str(out)])
    assert d.exit_code == 0, d.output
    assert load_output_set(str(out)) is not None


def test_cli_replay_single_payload_text_output():
    r = CliRunner().invoke(cli, ["replay", "-", "--model", str(CUSTOM)], input="[1,1,1,1,1]")
    assert r.exit_code == 0, r.output
    assert "model" in r.output and "client-decode" in r.output and "2.5" in r.output


def test_cli_keras_without_client_input_is_a_usage_error():
    r = CliRunner().invoke(cli, ["replay", "-", "--model", str(CUSTOM), "--keras",
                                 str(MODELS / "custom/custom.keras")], input="[1]")
    assert r.exit_code == 2


def test_tf_example_signature_runs_with_b64_examples():
    with LocalEndpoint(MODELS / "example_parser/1") as ep:
        res = replay_one(ep, req(json.dumps({"instances": [{"b64": "CiUKEgoGaW5jb21lEggSBgoEAACAQAoPCgNhZ2USCBIGCgQAAPBB"}]})))
    # fixtures/README.md: score = 0.5 * age + 0.25 * income; age 30, income 4
    assert res.accepted and res.decoded["score"].tolist() == [[16.0]]


def test_cli_replay_out_to_a_missing_folder_is_a_usage_error(tmp_path):
    r = CliRunner().invoke(cli, ["replay", "-", "--model", str(CUSTOM), "--out",
                                 str(tmp_path / "no" / "r.jsonl")], input="[1,1,1,1,1]")
    assert r.exit_code == 2 and "does not exist" in r.output


def test_archive_model_is_served_under_the_name_the_container_gives_it():
    # two_models.tar.gz holds a/1 and b/1: the container's first model is 'a' (KD004).
    with LocalEndpoint(ARCHIVES / "two_models.tar.gz") as ep:
        assert ep.model_name == "a"
        res = replay_one(ep, req("[[1, 1, 1]]"))
    assert res.accepted and res.tfs_target["model"] == "a"
