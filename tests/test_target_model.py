"""--target-model on every replay path: in-process (one payload, a folder), over a capture, and
as a Ray job (a folder, a capture). Each takes the multi-model endpoint's path (the Python
service's default handler, no njs conversion) with the target's loaded name, or kdiag refuses;
it is never ignored.

The model is fixtures' mme/half_plus_two packed as SageMaker would find it in the model folder
(`two.tar.gz`). The probe is a CSV body: the single-model njs path turns it into
{"instances": [[1.0, 2.0, 5.0]]} and the model answers; on the multi-model path the raw CSV
reaches TF Serving, which rejects it (400 with the 2.20+ default handler).
"""

from __future__ import annotations

import base64
import json
import logging
import tarfile

import pytest
from click.testing import CliRunner

from kdiag.cli import cli
from kdiag.path.target_model import served_model_name, target_model_name
from tests.conftest import MODELS

pytestmark = pytest.mark.tf
pytest.importorskip("tensorflow")

CSV = "1.0,2.0,5.0"
NJS_ANSWER = {"predictions": [[2.5, 3.0, 4.5]]}  # what the single-model endpoint returns


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    """(folder, two.tar.gz, capture folder with one CSV record, payload folder)."""
    root = tmp_path_factory.mktemp("target")
    archive = root / "two.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(MODELS / "mme/half_plus_two/00000123", arcname="half_plus_two/00000123")
    cap = root / "capture"
    cap.mkdir()
    record = {"captureData": {
        "endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": CSV,
                          "encoding": "CSV"},
        "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                           "encoding": "BASE64",
                           "data": base64.b64encode(json.dumps(NJS_ANSWER).encode()).decode()}},
        "eventMetadata": {"eventId": "ev-1", "inferenceId": "req-1",
                          "inferenceTime": "2024-05-01T10:00:00Z"}, "eventVersion": "0"}
    (cap / "part.jsonl").write_text(json.dumps(record) + "\n")
    bodies = root / "bodies"
    bodies.mkdir()
    for i in range(3):
        (bodies / f"b{i}.csv").write_text(CSV + "\n")
    return root, archive, cap, bodies


def run(*args: str) -> tuple[int, dict]:
    r = CliRunner().invoke(cli, [*args, "--framework-version", "2.20", "--format", "json"])
    assert r.exit_code in (0, 1), r.output
    return r.exit_code, json.loads(r.stdout)


def test_the_served_name_rule_is_one_rule():
    assert served_model_name(None, None) is None
    assert served_model_name("mine", "two.tar.gz") == "mine"  # --model-name wins
    assert served_model_name(None, "two.tar.gz") == target_model_name("two.tar.gz")
    assert target_model_name("a.tar.gz") != target_model_name("b.tar.gz")


def test_single_payload_replay_takes_the_multi_model_path(target, tmp_path):
    _, archive, _, _ = target
    body = tmp_path / "p.csv"
    body.write_text(CSV + "\n")
    code, single = run("replay", str(body), "--model", str(archive))
    assert code == 0 and single["accepted"]
    code, doc = run("replay", str(body), "--model", str(archive), "--target-model", "two.tar.gz")
    assert code == 1 and doc["status"] == 400
    assert doc["tfs_request"] == CSV + "\n"  # forwarded raw: no njs conversion
    assert doc["tfs_target"]["model"] == target_model_name("two.tar.gz")


def test_capture_replay_in_process_honours_target_model(target):
    _, archive, cap, _ = target
    common = ["replay", "--capture", str(cap), "--model", str(archive)]
    code, doc = run(*common)
    assert code == 0 and doc["replayed_ok"] == 1 and doc["rejected_locally"] == 0
    code, doc = run(*common, "--target-model", "two.tar.gz")
    assert code == 1 and doc["rejected_locally"] == 1
    assert doc["rejected"][0]["status"] == 400 and doc["rejected"][0]["id"] == "req-1"


def test_replay_api_refuses_a_target_model_its_open_endpoint_does_not_take(target):
    import kdiag
    from kdiag.errors import KdiagError
    from kdiag.path.local_endpoint import LocalEndpoint

    _, archive, _, _ = target
    with LocalEndpoint(archive, framework_version="2.20") as ep, \
            pytest.raises(KdiagError, match="multi_model=True"):
        kdiag.replay(CSV, ep, content_type="text/csv", target_model="two.tar.gz")
    name = target_model_name("two.tar.gz")
    with LocalEndpoint(archive, framework_version="2.20", model_name=name,
                       multi_model=True) as ep:
        rep = kdiag.replay(CSV, ep, content_type="text/csv", target_model="two.tar.gz")
        assert rep.results[0].status == 400


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    pytest.importorskip("pyarrow")
    from kdiag.replays.ray_engine import local_worker_env

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False, runtime_env={"env_vars": local_worker_env()})
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_folder_and_capture_replay_honour_target_model(target, local_ray, tmp_path):
    _, archive, cap, bodies = target
    folder = ["replay", str(bodies), "--model", str(archive), "--target-model", "two.tar.gz"]
    code_in, doc_in = run(*folder)
    code_ray, doc_ray = run(*folder, "--engine", "ray")
    assert (code_ray, doc_ray) == (code_in, doc_in)
    assert code_in == 1 and doc_in["rejected"] == 3
    code_plain, plain = run("replay", str(bodies), "--model", str(archive), "--engine", "ray")
    assert code_plain == 0 and plain["rejected"] == 0  # the njs path, without --target-model

    code, doc = run("replay", "--capture", str(cap), "--model", str(archive),
                    "--target-model", "two.tar.gz", "--engine", "ray",
                    "--out", str(tmp_path / "ray"))
    assert code == 1 and doc["rejected_locally"] == 1
    assert doc["rejected"][0]["status"] == 400


def test_a_models_own_code_is_a_note_on_a_1x_multi_model_endpoint():
    """1.x multi-model containers ignore a model's own code/ (they read only the universal
    code folder); 2.x images import it at load time. validate and replay say the same."""
    import kdiag
    from tests.conftest import FIXTURES

    good = str(FIXTURES / "archives/good.tar.gz")  # holds code/inference.py
    body = json.dumps({"instances": [[1.0, 2.0, 3.0, 4.0, 5.0]]})

    def kd230(res) -> dict:
        [f] = [f for f in res.to_dict()["findings"] if f["code"] == "KD230"]
        return f

    for version, severity, words in (("1.15", "info", "ignores a model's own code/"),
                                     ("2.16", "warning", "kdiag only runs them")):
        v = kd230(kdiag.validate(body, good, content_type="application/json",
                                 target_model="good.tar.gz", framework_version=version))
        r = kd230(kdiag.replay(kdiag.Payload("application/json", body), good,
                               target_model="good.tar.gz", framework_version=version))
        assert v["severity"] == r["severity"] == severity and words in v["message"], version
    # a single-model 1.x endpoint runs the archive's code: still a warning there
    single = kd230(kdiag.validate(body, good, content_type="application/json",
                                  framework_version="1.15"))
    assert single["severity"] == "warning"
