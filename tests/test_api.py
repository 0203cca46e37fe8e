"""The public Python API, through its public names only (`import kdiag`; kdiag.<function>)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import kdiag
from kdiag.cli import cli
from tests.conftest import MODELS, ROOT

CUSTOM = MODELS / "custom/export/1"  # args_0: float32 (-1, 5)
TWO = MODELS / "two_inputs/1"


def cli_json(*args: str) -> dict:
    r = CliRunner().invoke(cli, [*args, "--format", "json"])
    assert r.exit_code in (0, 1), r.output
    return json.loads(r.stdout)


# ---- import cost ---------------------------------------------------------------------------

def test_import_kdiag_loads_no_numpy_tensorflow_or_boto3_and_takes_under_150_ms():
    code = ("import sys; before = set(sys.modules); import kdiag; "
            "print(' '.join(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True,
                         text=True, cwd=ROOT, check=True)
    added = set(out.stdout.split())
    assert added <= {"kdiag", "__future__"}, added
    for heavy in ("tensorflow", "boto3", "botocore", "numpy", "rich", "click", "pandas"):
        assert not any(m == heavy or m.startswith(heavy + ".") for m in added)
    # -X importtime: "import time: self | cumulative | name"; the kdiag line is the package.
    line = next(x for x in out.stderr.splitlines() if x.rstrip().endswith("| kdiag"))
    cumulative_us = int(line.split("|")[1])
    assert cumulative_us < 150_000, line


def test_validate_inspect_and_sample_run_without_tensorflow_or_boto3():
    code = ("import sys, kdiag; m = 'fixtures/models/custom/export/1'; kdiag.inspect(m); "
            "kdiag.sample(m); d = kdiag.validate('{\"data\": [[1,2,3,4,5]]}', m); "
            "d._repr_html_(); d.to_dict(); "
            "print(' '.join(x for x in ('tensorflow', 'boto3', 'keras') if x in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         check=True)
    assert out.stdout.strip() == ""


def test_the_api_names_are_listed_and_load_on_first_use():
    for name in ("inspect", "sample", "validate", "replay", "probe", "check", "compare",
                 "ModelReport", "Payload", "Diagnosis", "Replay", "ProbeReport", "CheckReport",
                 "Comparison", "KdiagError"):
        assert name in kdiag.__all__ and name in dir(kdiag)
        assert getattr(kdiag, name) is not None
    with pytest.raises(AttributeError):
        kdiag.no_such_function  # noqa: B018


# ---- inspect ---------------------------------------------------------------------------------

def test_inspect_to_dict_is_the_inspect_commands_json_document():
    report = kdiag.inspect(CUSTOM)
    assert isinstance(report, kdiag.ModelReport)
    assert report.to_dict() == cli_json("inspect", str(CUSTOM))
    assert report.to_dict()["schema_version"] == 1
    assert "serving_default" in [s.name for s in report.signatures]


def test_results_are_frozen():
    report = kdiag.inspect(CUSTOM)
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.result = None  # type: ignore[misc]


# ---- sample ----------------------------------------------------------------------------------

def test_sample_gives_n_seeded_payloads_that_validate():
    payloads = kdiag.sample(CUSTOM, n=3, seed=7)
    assert len(payloads) == 3 and len({p.body for p in payloads}) == 3
    assert [p.body for p in kdiag.sample(CUSTOM, n=3, seed=7)] == [p.body for p in payloads]
    for p in payloads:
        assert kdiag.validate(p, CUSTOM).accepted


def test_sample_to_dict_is_the_sample_commands_json_document():
    [p] = kdiag.sample(str(CUSTOM), content_type="csv", batch=2, seed=3)
    assert p.content_type == "text/csv"
    assert p.to_dict() == cli_json("sample", "--signature", str(CUSTOM), "--content-type", "csv",
                                   "--batch", "2", "--seed", "3")


def test_sample_takes_a_model_report():
    [p] = kdiag.sample(kdiag.inspect(CUSTOM))
    assert json.loads(p.body)["instances"][0].__len__() == 5


# ---- validate: what a payload argument may be ------------------------------------------------

def test_validate_to_dict_is_the_validate_commands_json_document(tmp_path):
    body = tmp_path / "body.json"
    body.write_text('{"data": [[1, 2, 3, 4, 5]]}')
    d = kdiag.validate(body, CUSTOM)
    cli_doc = cli_json("validate", str(body), "--signature", str(CUSTOM))
    assert d.to_dict() == cli_doc
    assert not d.accepted and d.status == 400 and d.stage == "tfs-parse"


def test_validate_names_the_root_cause_and_a_verified_fix():
    d = kdiag.validate('{"data": [[1, 2, 3, 4, 5]]}', CUSTOM)
    assert d.root_cause is not None and d.root_cause.code == "KD308"
    fixed = d.fixed_payload
    assert fixed is not None and json.loads(fixed.body) == {"instances": [[1, 2, 3, 4, 5]]}
    assert kdiag.validate(fixed, CUSTOM).accepted


def test_a_str_that_names_an_existing_file_is_read_any_other_str_is_the_body(tmp_path):
    f = tmp_path / "rows.csv"
    f.write_text("1,2,3,4,5\n")
    from_file = kdiag.validate(str(f), CUSTOM)  # Content-Type from the suffix
    assert from_file.accepted and from_file.result.tfs_request == '{"instances":[[1,2,3,4,5]]}'
    as_body = kdiag.validate("1,2,3,4,5", CUSTOM, content_type="text/csv")
    assert as_body.accepted
    not_a_file = kdiag.validate(str(tmp_path / "missing.json"), CUSTOM)
    assert not not_a_file.accepted  # the text itself was sent, and it is not JSON


def test_bytes_and_path_payloads(tmp_path):
    assert kdiag.validate(b'{"instances": [[1, 2, 3, 4, 5]]}', CUSTOM).accepted
    p = tmp_path / "b.json"
    p.write_bytes(b"[[1, 2, 3, 4, 5]]")
    assert kdiag.validate(p, CUSTOM).accepted


def test_a_numpy_array_is_sent_as_the_sdks_json_serializer_sends_it():
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    d = kdiag.validate(x, CUSTOM)
    assert d.accepted
    # json.dumps(x.tolist()), wrapped by the container as instances
    assert d.result.tfs_request == '{"instances":' + json.dumps(x.tolist()) + "}"
    assert d.to_dict()["tensors"]["args_0"]["shape"] == [2, 5]


def test_a_dict_of_arrays_is_json_with_each_array_as_a_list():
    d = kdiag.validate({"instances": np.ones((1, 5))}, CUSTOM)
    assert d.accepted
    wrong = kdiag.validate({"data": np.ones((1, 5))}, CUSTOM)
    assert not wrong.accepted and wrong.root_cause.code == "KD308"


def test_a_dataframe_is_sent_as_csv_rows_without_header_or_index():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(np.arange(10).reshape(2, 5), columns=list("abcde"))
    d = kdiag.validate(df, CUSTOM)
    assert d.accepted and d.result.tensors["args_0"]["shape"] == [2, 5]


# The SageMaker Python SDK (v2 sagemaker.serializers, v3 sagemaker.core.serializers) is not a dev
# dependency: it pulls in dozens of packages (mlflow, a different protobuf). These stand-ins
# follow its documented contract: CONTENT_TYPE plus serialize(data) returning str, bytes or a
# buffer. What each returns follows base_serializers.py of aws/sagemaker-python-sdk.

class JSONLike:
    CONTENT_TYPE = "application/json"

    def serialize(self, data):
        if isinstance(data, dict):
            return json.dumps({k: v.tolist() if isinstance(v, np.ndarray) else v
                               for k, v in data.items()})
        return json.dumps(data.tolist() if isinstance(data, np.ndarray) else data)


class CSVLike:
    CONTENT_TYPE = "text/csv"

    def serialize(self, data):
        buf = io.StringIO()
        rows = data if np.ndim(data) == 2 else [np.ravel(data)]
        lines = []
        for row in rows:
            buf.seek(0)
            buf.truncate()
            csv.writer(buf).writerow(row)
            lines.append(buf.getvalue().rstrip("\r\n"))
        return "\n".join(lines)


class NumpyLike:
    CONTENT_TYPE = "application/x-npy"

    def serialize(self, data):
        buf = io.BytesIO()
        np.save(buf, np.asarray(data))
        return buf.getvalue()


class BufferLike:
    """v3's RecordSerializer returns a BytesIO rather than bytes."""

    CONTENT_TYPE = "application/json"

    def serialize(self, data):
        return io.BytesIO(json.dumps({"instances": data.tolist()}).encode())


def test_a_serializer_object_decides_the_bytes_and_the_content_type():
    x = np.ones((2, 5), dtype=np.float32)
    d = kdiag.validate(x, CUSTOM, serializer=JSONLike())
    assert d.accepted
    csv_d = kdiag.validate(x, CUSTOM, serializer=CSVLike())
    assert csv_d.accepted and csv_d.result.tensors["args_0"]["shape"] == [2, 5]
    assert kdiag.validate(x, CUSTOM, serializer=BufferLike()).accepted


class JSONLinesFirstDeserializer:
    ACCEPT = ("application/jsonlines", "application/json")  # a tuple, as the SDK's are


def test_a_deserializer_sets_accept_as_the_sdk_joins_it():
    # TF 2.13's container answers with the first type Accept lists (tensorflow-serving.js).
    d = kdiag.validate("[[1,2,3,4,5]]", CUSTOM, deserializer=JSONLinesFirstDeserializer(),
                       framework_version="2.13")
    same = kdiag.validate("[[1,2,3,4,5]]", CUSTOM, accept="application/jsonlines, application/json",
                          framework_version="2.13")
    assert d.to_dict() == same.to_dict()
    holds = {s["stage"]: s["holds"] for s in d.to_dict()["stages"]}
    assert holds["container-response"].endswith("application/jsonlines")


def test_the_numpy_serializer_is_refused_as_the_container_refuses_it():
    d = kdiag.validate(np.ones((1, 5)), CUSTOM, serializer=NumpyLike())
    assert not d.accepted and d.status == 415  # the default handler takes JSON, JSON lines, CSV


def test_an_object_without_serialize_is_a_clear_error():
    with pytest.raises(kdiag.KdiagError, match="serialize"):
        kdiag.validate([1, 2], CUSTOM, serializer=object())


def test_an_unserializable_object_is_a_clear_error():
    with pytest.raises(kdiag.KdiagError, match="Cannot turn a"):
        kdiag.validate({1, 2}, CUSTOM)


def test_validate_takes_a_model_report_or_a_signature():
    report = kdiag.inspect(CUSTOM)
    assert kdiag.validate("[[1,2,3,4,5]]", report).accepted
    assert kdiag.validate("[[1,2,3,4,5]]", report.signatures[0]).accepted


# ---- rendering -------------------------------------------------------------------------------

class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text: list[str] = []
        self.classes: list[str] = []
        self.tags: list[str] = []
        self.code: list[str] = []
        self._in_code = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.classes += (dict(attrs).get("class") or "").split()
        self._in_code = self._in_code or tag == "code"

    def handle_endtag(self, tag):
        if tag == "code":
            self._in_code = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_code:
            self.code.append(data)


def parse_html(markup: str) -> _Collect:
    p = _Collect()
    p.feed(markup)
    p.close()
    return p


def test_the_html_view_holds_the_stages_the_root_cause_and_the_fix_as_code():
    d = kdiag.validate('{"data": [[1, 2, 3, 4, 5]]}', CUSTOM)
    page = parse_html(d._repr_html_())
    text = "".join(page.text)
    assert d.root_cause.message in text
    assert "kdiag-root-cause" in page.classes and "kdiag-fix" in page.classes
    assert json.loads("".join(page.code)) == {"instances": [[1.0, 2.0, 3.0, 4.0, 5.0]]}
    for stage in ("wire", "container", "tfs-parse", "runtime"):
        assert stage in text
    assert "signature shape" in text and "(None, 5)" in text  # shapes side by side


def test_hostile_payload_text_is_escaped_in_html():
    evil = '{"data": "<script>alert(1)</script><img src=x onerror=alert(2)>"}'
    d = kdiag.validate(evil, CUSTOM)
    page = parse_html(d._repr_html_())
    assert "script" not in page.tags and "img" not in page.tags
    shown = parse_html(kdiag.Payload("application/json", evil)._repr_html_())
    assert "script" not in shown.tags and "img" not in shown.tags
    assert "".join(shown.code) == evil  # shown as text, byte for byte


def test_every_result_renders_with_rich_and_as_html(tmp_path):
    from rich.console import Console

    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, np.ones((4, 2)))
    np.save(b, np.ones((4, 2)) + 1)
    results = [kdiag.inspect(CUSTOM), kdiag.sample(CUSTOM)[0],
               kdiag.validate("[[1,2,3,4,5]]", CUSTOM), kdiag.compare(a, b),
               kdiag.check(CUSTOM, replay=False)]
    for r in results:
        con = Console(file=io.StringIO(), width=100, color_system=None)
        con.print(r)
        assert con.file.getvalue().strip()
        assert parse_html(r._repr_html_()).tags


# ---- compare ---------------------------------------------------------------------------------

def test_compare_arrays_and_dicts_with_tolerances():
    a = np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5)
    assert kdiag.compare(a, a + 1e-7).passed
    c = kdiag.compare({"score": a}, {"score": a + 1e-2}, atol=1e-3, rtol=0)
    assert not c.passed and {f.code for f in c.findings} & {"KD701", "KD702", "KD703",
                                                           "KD704", "KD705", "KD706"}
    assert kdiag.compare({"score": a}, {"score": a + 1e-2}, atol=0.02).passed


def test_compare_to_dict_is_the_diff_commands_json_document(tmp_path):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, np.ones((3, 2), np.float32))
    np.save(b, np.ones((3, 2), np.float32) * 1.5)
    c = kdiag.compare(a, b, atol=1e-4)
    doc = cli_json("diff", str(a), str(b), "--atol", "1e-4")
    assert c.to_dict() == doc and doc["passed"] is False


# ---- check -----------------------------------------------------------------------------------

def test_check_without_replay_passes_a_good_model_and_documents_its_cases(tmp_path):
    report = kdiag.check(CUSTOM, replay=False, content_types=["application/json", "text/csv"])
    assert isinstance(report, kdiag.CheckReport) and report.passed and report.exit_code == 0
    doc = report.to_dict()
    assert doc["schema_version"] == 1 and doc["passed"] is True
    cli_out = tmp_path / "check.json"
    r = CliRunner().invoke(cli, ["check", str(CUSTOM), "--no-config", "--no-replay",
                                 "--content-type", "application/json", "--content-type",
                                 "text/csv", "--json", str(cli_out)])
    assert r.exit_code == 0, r.output
    cli_doc = json.loads(cli_out.read_text())
    strip = ("seconds",)
    for d in (doc, cli_doc):
        for k in strip:
            d.pop(k)
        for c in d["cases"]:
            c.pop("seconds")
    assert doc == cli_doc


def test_check_refuses_unknown_options():
    with pytest.raises(kdiag.KdiagError, match="unknown option"):
        kdiag.check(CUSTOM, no_such_option=1)


# ---- replay (TensorFlow) ---------------------------------------------------------------------

@pytest.mark.tf
def test_replay_runs_the_model_and_agrees_with_the_replay_command(tmp_path):
    pytest.importorskip("tensorflow")
    body = tmp_path / "b.json"
    body.write_text('{"instances": [[1, 2, 3, 4, 5]]}')
    r = kdiag.replay(body, CUSTOM)
    assert isinstance(r, kdiag.Replay) and r.accepted
    [out] = r.outputs
    assert out["output_0"].shape == (1, 1)
    doc = cli_json("replay", str(body), "--model", str(CUSTOM))
    assert r.to_dict() == doc


@pytest.mark.tf
def test_replay_of_a_list_is_several_payloads_in_one_document():
    pytest.importorskip("tensorflow")
    r = kdiag.replay([np.ones((1, 5)), '{"data": [[1,2,3,4,5]]}'], CUSTOM)
    doc = r.to_dict()
    assert doc["accepted"] == 1 and doc["rejected"] == 1 and len(doc["results"]) == 2
    assert r.root_cause.code == "KD308"


# ---- probe (moto for the control plane, kdiag serve for the runtime) -------------------------

NAME = "kdiag-api-ep"  # the endpoint the runtime_url fixture (kdiag serve) answers for


@pytest.mark.tf
def test_probe_sends_a_generated_payload_and_agrees_with_validate(env, runtime_url):
    from tests._aws_rig import deploy

    deploy(env, NAME)
    report = kdiag.probe(NAME, endpoint_url=env, runtime_endpoint_url=runtime_url, timeout=30,
                         signature=str(CUSTOM), log_wait=0, rate=50)
    assert isinstance(report, kdiag.ProbeReport) and report.healthy
    doc = report.to_dict()
    assert doc["schema_version"] == 1 and doc["endpoint"]["name"] == NAME
    [p] = doc["payloads"]
    assert p["live"]["ok"] and p["agreement"] == "agree"
    assert "kdiag-api-ep" in "".join(parse_html(report._repr_html_()).text)


def test_probe_refuses_unknown_options():
    with pytest.raises(kdiag.KdiagError, match="unknown option"):
        kdiag.probe("x", no_such_option=1)


def test_payload_files_are_left_alone(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("[[1,2,3,4,5]]")
    kdiag.validate(p, CUSTOM)
    assert p.read_text() == "[[1,2,3,4,5]]" and Path(p).exists()


def _sdk_serializers():
    """The real SageMaker SDK serializers when the SDK is installed (v3, else v2), else skip."""
    for module in ("sagemaker.core.serializers", "sagemaker.serializers"):
        try:
            return __import__(module, fromlist=["JSONSerializer"])
        except Exception:  # not installed, or an SDK that fails to import here
            continue
    pytest.skip("the SageMaker Python SDK is not installed (it is not a dev dependency)")


def test_the_real_sdk_serializers_send_what_the_stand_ins_send():
    sdk = _sdk_serializers()
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    pairs = [(sdk.JSONSerializer(), JSONLike()), (sdk.CSVSerializer(), CSVLike()),
             (sdk.NumpySerializer(), NumpyLike())]
    for real, stand_in in pairs:
        got, want = kdiag.validate(x, CUSTOM, serializer=real), \
            kdiag.validate(x, CUSTOM, serializer=stand_in)
        assert got.to_dict() == want.to_dict(), type(real).__name__
    ident = kdiag.validate(b"[[1,2,3,4,5]]", CUSTOM, serializer=sdk.IdentitySerializer())
    assert ident.status == 415  # application/octet-stream: the container's default path refuses
    assert kdiag.validate(b"[[1,2,3,4,5]]", CUSTOM, content_type="application/json",
                          serializer=sdk.IdentitySerializer()).accepted
