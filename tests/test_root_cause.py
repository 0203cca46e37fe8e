"""One root cause per payload, the same from every command (issue 12 items 2 and 4).

The Normalization-first fixture (fixtures/models/normalized: x (?, 4) -> Normalization ->
Dense(1)) broadcasts a (1, 1) request or a bare (4,) row and answers 200 from it; a (1, 3) one
fails in the graph. A Keras 3 model written with tf.saved_model.save (two_inputs_tfsave) fails
every request with "Could not find variable", which the file already shows.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kdiag.cli import cli
from kdiag.diagnosis.findings import Finding, assign_root_cause
from kdiag.diagnosis.validation import ValidateOptions, validate
from kdiag.model.target import load_signatures
from kdiag.path.container import Request
from tests._aws_rig import deploy
from tests.conftest import MODELS

NORMALIZED = str(MODELS / "normalized/1")
TFSAVE = str(MODELS / "two_inputs_tfsave/1")
NAME = "kdiag-root-ep"  # the endpoint name the probe rig's runtime answers to


def cli_json(*args: str) -> tuple[int, dict]:
    r = CliRunner().invoke(cli, [*args, "--format", "json"])
    assert r.exit_code in (0, 1), r.output
    return r.exit_code, json.loads(r.stdout)


def by_code(doc: dict) -> dict[str, dict]:
    return {f["code"]: f for f in doc["findings"]}


def test_the_first_error_on_the_path_is_the_root_and_later_ones_follow_from_it():
    found = [Finding("KD660", "error", "runtime", "ModelError"),
             Finding("KD203", "info", "container", "wrapped"),
             Finding("KD402", "error", "signature", "axis 1"),
             Finding("KD823", "error", "endpoint", "the endpoint runs another model")]
    code, out = assign_root_cause(found)
    assert code == "KD402" and out[0].code == "KD402"
    roles = {f.code: f.consequence_of for f in out}
    assert roles == {"KD402": None, "KD660": "KD402", "KD203": None, "KD823": None}
    preferred = Finding("KD413", "error", "signature", "wrong feature count")
    code, _ = assign_root_cause([preferred, *found], preferred=[preferred])
    assert code == "KD413"


@pytest.mark.parametrize(("body", "root", "stage_code", "wide"), [
    ('{"instances": [[1.0]]}', "KD413", "KD402", "(1, 1) input broadcast to (1, 4)"),
    ('{"instances": [1, 2, 3, 4]}', "KD411", "KD401", "(4,) input broadcast to (1, 4)"),
])
def test_offline_the_graph_decides_and_replay_names_the_broadcast(tmp_path, body, root,
                                                                  stage_code, wide):
    pytest.importorskip("tensorflow")
    p = tmp_path / "b.json"
    p.write_text(body)
    v_rc, v = cli_json("validate", str(p), "--signature", NORMALIZED)
    assert v_rc == 1 and not v["accepted"]
    assert v["status"] is None and v["status_candidates"] == [400, 200]
    assert v["root_cause"] == root and by_code(v)[stage_code]["consequence_of"] == root
    assert "KD660" not in by_code(v)  # no ModelError asserted: no status is known
    r_rc, r = cli_json("replay", str(p), "--model", NORMALIZED)
    assert r_rc == 1 and r["status"] == 200 and r["status"] in v["status_candidates"]
    assert r["root_cause"] == root
    broadcast = by_code(r)["KD420"]
    assert broadcast["severity"] == "error" and broadcast["consequence_of"] == root
    assert broadcast["message"].startswith("200, but computed from a " + wide)
    assert CliRunner().invoke(cli, ["replay", str(p), "--model", NORMALIZED,
                                    "--fail-on", "never"]).exit_code == 0


def test_a_size_the_graph_checks_is_a_400_with_the_same_root_cause(tmp_path):
    pytest.importorskip("tensorflow")
    p = tmp_path / "b.json"
    p.write_text('{"instances": [[1, 2, 3]]}')
    _, v = cli_json("validate", str(p), "--signature", NORMALIZED)
    _, r = cli_json("replay", str(p), "--model", NORMALIZED)
    assert v["root_cause"] == r["root_cause"] == "KD413"
    assert r["status"] == 400 and r["status"] in v["status_candidates"]
    assert "KD420" not in by_code(r)
    assert all(f["consequence_of"] == "KD413" for f in r["findings"]
               if f["severity"] == "error" and f["code"] != "KD413")


def test_keras3_tf_saved_model_save_is_found_in_the_file(tmp_path):
    rc, doc = cli_json("inspect", TFSAVE)
    assert rc == 1 and "KD501" in by_code(doc)
    assert "KD501" not in {f["code"] for f in cli_json("inspect", str(MODELS / "two_inputs/1"))[1]
                           ["findings"]}
    report = tmp_path / "check.json"
    r = CliRunner().invoke(cli, ["check", TFSAVE, "--no-config", "--no-replay", "--quiet",
                                 "--json", str(report)])
    assert r.exit_code == 1, r.output
    cases = json.loads(report.read_text())["cases"]
    assert any(c["status"] == "failed" and any(f["code"] == "KD501" for f in c["findings"])
               for c in cases if c["group"] == "artifact")
    generated = next(c for c in cases if c["group"] == "payload")
    assert generated["root_cause"] == "KD501" and generated["status"] == "failed"


def test_keras3_tf_saved_model_save_has_one_root_cause_and_no_fix_offered(tmp_path):
    pytest.importorskip("tensorflow")
    p = tmp_path / "b.json"
    p.write_text('{"instances": [{"inputs": [1, 2, 3, 4, 5], "inputs_1": [1]}]}')
    _, v = cli_json("validate", str(p), "--signature", TFSAVE)
    rc, r = cli_json("replay", str(p), "--model", TFSAVE)
    assert v["root_cause"] == r["root_cause"] == "KD501" and rc == 1
    assert v["status"] == r["status"] == 400
    assert r["fixed_payload"] is None and v["fixed_payload"] is None
    assert [f["code"] for f in r["findings"]].count("KD501") == 1


def test_the_same_request_is_never_offered_as_its_own_fix():
    sigs = load_signatures(str(MODELS / "custom/export/1"))
    res = validate(Request(b'{"instances": [[1, 2, 3, 4, 5]]}', "application/json"), sigs,
                   ValidateOptions())
    assert res.accepted and res.fixed_payload is None


# ---- probe: the deployment is blamed only when the local run disagrees --------------------

@pytest.fixture(scope="module")
def normalized_runtime(moto_url):
    from kdiag.path.local_endpoint import LocalEndpoint
    from kdiag.serve.server import load_model, start_server

    pytest.importorskip("tensorflow")
    with LocalEndpoint(NORMALIZED, framework_version="2.13") as ep:
        load_model(ep)
        with start_server(ep, endpoint_name=NAME, runtime_deadline=None) as srv:
            yield srv.url


@pytest.mark.parametrize("given", ["--model", "--signature"])
def test_probe_does_not_blame_the_deployment_for_what_the_graph_decides(env, normalized_runtime,
                                                                        tmp_path, given):
    deploy(env, NAME)
    p = tmp_path / "b.json"
    p.write_text('{"instances": [[1.0]]}')
    r = CliRunner().invoke(cli, ["probe", NAME, "--endpoint-url", env, "--runtime-endpoint-url",
                                 normalized_runtime, "--log-wait", "0", "--rate", "50", given,
                                 NORMALIZED, "--payload", str(p), "--format", "json"])
    assert r.exit_code == 1, r.output
    [payload] = json.loads(r.stdout)["payloads"]
    codes = {f["code"] for f in payload["findings"]}
    assert not codes & {"KD820", "KD823"}, payload["findings"]
    assert payload["agreement"] == "agree" and payload["root_cause"] == "KD413"
    if given == "--model":  # the local run saw the broadcast
        assert "KD420" in codes


def test_a_tf_module_holding_a_keras3_model_is_flagged_like_the_runner_fails(tmp_path):
    """keras-team/keras#20095: tf.saved_model.save of a tf.Module with a Keras 3 model attribute
    fails in TF Serving's (TF1) loader too; the object-graph marker sees it."""
    tf = pytest.importorskip("tensorflow")
    import keras
    import numpy as np

    from kdiag.model.savedmodel import read_saved_model

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])

    class Holder(tf.Module):
        def __init__(self, inner):
            self.inner = inner

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def serve(self, x):
            return {"y": self.inner(x)}

    holder = Holder(model)
    path = tmp_path / "1"
    tf.saved_model.save(holder, str(path), signatures={"serving_default": holder.serve})
    assert read_saved_model(path).serving().keras3_layers
    with tf.compat.v1.Session(graph=tf.Graph()) as s:
        mg = tf.compat.v1.saved_model.loader.load(s, ["serve"], str(path))
        sig = mg.signature_def["serving_default"]
        with pytest.raises(Exception, match="Could not find variable"):
            s.run(sig.outputs["y"].name, {sig.inputs["x"].name: np.ones((1, 3), np.float32)})


def test_only_the_tf_saved_model_save_keras3_fixtures_carry_the_marker():
    from kdiag.model.savedmodel import read_saved_model

    flagged = {str(pb.parent.relative_to(MODELS)) for pb in MODELS.rglob("saved_model.pb")
               if read_saved_model(pb.parent).serving().keras3_layers}
    assert flagged == {"custom/tfsave/1", "custom/tfsave_fit/1", "two_inputs_tfsave/1"}
