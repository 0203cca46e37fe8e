"""kdiag.ci.config: [tool.kdiag] in pyproject.toml or kdiag.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdiag.ci.config import KNOWN_KEYS, CheckConfig, PayloadEntry, find_config, load_config
from kdiag.errors import KdiagError

FULL = """
[tool.kdiag]
model = "model/model.tar.gz"
framework_version = "2.16"
content_types = ["application/json", "text/csv"]
payloads = [
  {file = "examples/request.json", content_type = "application/json"},
  {file = "examples/rows.csv"},
  "examples/more.json",
]
expect_output = ["score:float32:-1,1", {name = "probs", dtype = "float32", shape = [-1, 3]}]
golden = "examples/golden.jsonl"
atol = 1e-4
rtol = 0
fail_on = "warning"
signature_name = "serving_default"
endpoint = "staging"
code = "code"
custom_objects = "src/model.py"
replay = false
"""


def test_every_key_of_a_pyproject_table_is_read_and_paths_are_relative_to_it(tmp_path,
                                                                            monkeypatch):
    (tmp_path / "pyproject.toml").write_text(FULL)
    monkeypatch.chdir(tmp_path)
    cfg = load_config()
    assert cfg == CheckConfig(
        model="model/model.tar.gz", framework_version="2.16",
        content_types=["application/json", "text/csv"],
        payloads=[PayloadEntry("examples/request.json", "application/json"),
                  PayloadEntry("examples/rows.csv"), PayloadEntry("examples/more.json")],
        expect_output=["score:float32:-1,1", "probs:float32:-1,3"],
        golden="examples/golden.jsonl", atol=1e-4, rtol=0.0, fail_on="warning",
        signature_name="serving_default", endpoint="staging", code="code",
        custom_objects="src/model.py", replay=False, source=str(tmp_path / "pyproject.toml"))


def test_found_from_a_subfolder_paths_still_point_next_to_the_file(tmp_path, monkeypatch):
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text('[tool.kdiag]\nmodel = "m/model.tar.gz"\n')
    sub = tmp_path / "src" / "pkg"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    cfg = load_config()
    assert Path(cfg.model).resolve() == (tmp_path / "m" / "model.tar.gz").resolve()
    assert cfg.model == "../../m/model.tar.gz" or Path(cfg.model).is_absolute()


def test_search_stops_at_the_repository_root(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.kdiag]\nmodel = "x"\n')
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    assert find_config(repo) is None
    assert load_config(start=repo) == CheckConfig()


def test_kdiag_toml_wins_over_pyproject_and_takes_top_level_keys(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.kdiag]\nmodel = "from-pyproject"\n')
    (tmp_path / "kdiag.toml").write_text('model = "from-kdiag-toml"\n')
    assert find_config(tmp_path) == tmp_path / "kdiag.toml"
    assert load_config(tmp_path / "kdiag.toml").model.endswith("from-kdiag-toml")


def test_kdiag_toml_may_also_hold_a_tool_kdiag_table(tmp_path):
    (tmp_path / "kdiag.toml").write_text('[tool.kdiag]\nfail_on = "info"\n')
    assert load_config(tmp_path / "kdiag.toml").fail_on == "info"


def test_pyproject_without_a_kdiag_table_is_passed_over(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert find_config(tmp_path) is None
    with pytest.raises(KdiagError, match=r"no \[tool.kdiag\] table"):
        load_config(tmp_path / "pyproject.toml")


@pytest.mark.parametrize("body,match", [
    ('modle = "x"', "unknown key"),
    ("atol = -1", "atol must be a number"),
    ('atol = "big"', "atol must be a number"),
    ('fail_on = "fatal"', "fail_on must be one of"),
    ("replay = 1", "replay must be true or false"),
    ("content_types = [1]", "list of strings"),
    ("payloads = [{content_type = \"text/csv\"}]", "needs a file"),
    ("payloads = [{file = \"a\", type = \"x\"}]", "unknown: type"),
    ('payloads = "a.json"', "must be a list"),
    ("expect_output = [{name = \"a\", shape = \"1,2\"}]", "list of integers"),
    ("expect_output = [3]", "expect_output entries"),
    ('model = ""', "non-empty string"),
    ("model = [", "not valid TOML"),
])
def test_bad_configuration_is_a_usage_error_naming_the_key(tmp_path, body, match):
    p = tmp_path / "kdiag.toml"
    p.write_text(body + "\n")
    with pytest.raises(KdiagError, match=match):
        load_config(p)


def test_unknown_key_message_lists_the_known_keys(tmp_path):
    p = tmp_path / "kdiag.toml"
    p.write_text('modle = "x"\n')
    with pytest.raises(KdiagError) as e:
        load_config(p)
    assert all(k in str(e.value) for k in KNOWN_KEYS)


def test_a_named_config_file_that_does_not_exist_is_a_usage_error(tmp_path):
    with pytest.raises(KdiagError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_empty_content_types_means_generate_nothing(tmp_path):
    p = tmp_path / "kdiag.toml"
    p.write_text("content_types = []\n")
    assert load_config(p).content_types == []
    p.write_text('model = "m"\n')
    assert load_config(p).content_types is None


def test_caps_and_trust_model_are_read_with_the_flag_and_cap_spellings(tmp_path):
    p = tmp_path / "kdiag.toml"
    p.write_text('trust-model = true\ncaps = {archive-bytes = "40GiB", archive_members = 500000}\n')
    cfg = load_config(p)
    assert cfg.trust_model is True
    assert cfg.caps == {"archive_bytes": 40 << 30, "archive_members": 500_000}
    p.write_text("[tool.kdiag]\ntrust_model = false\n[tool.kdiag.caps]\nheader-bytes = \"2M\"\n")
    cfg = load_config(p)
    assert cfg.trust_model is False and cfg.caps == {"header_bytes": 2 << 20}
    assert load_config(tmp_path / "kdiag.toml").caps == {"header_bytes": 2 << 20}
    p.write_text('model = "m"\n')
    assert load_config(p).trust_model is None and load_config(p).caps == {}


@pytest.mark.parametrize("body,match", [
    ('trust_model = "yes"', "trust_model must be true or false"),
    ("trust-model = 1", "trust_model must be true or false"),
    ('caps = "40GiB"', "caps must be a table of cap names to sizes"),
    ('caps = {archive-size = "1GiB"}', "caps: unknown cap 'archive-size'; caps are archive-bytes"),
    ('caps = {archive-bytes = "40 gigs"}', "caps.archive-bytes: '40 gigs' is not a size"),
    ("caps = {archive-members = -1}", "caps.archive-members: write a size"),
    ("caps = {archive-members = true}", "caps.archive-members: write a size"),
])
def test_bad_caps_or_trust_name_the_key_and_the_file(tmp_path, body, match):
    p = tmp_path / "kdiag.toml"
    p.write_text(body + "\n")
    with pytest.raises(KdiagError, match=match) as e:
        load_config(p)
    assert str(e.value).startswith(f"{p}: ")


# ---- tolerances: a number, or a table of output names with an optional default -------------

@pytest.mark.parametrize("body,atol,by_output", [
    ("atol = 1e-4", 1e-4, {}),
    ("atol = 0", 0.0, {}),
    ("atol = {default = 1e-5, logits = 1e-3}", 1e-5, {"logits": 1e-3}),
    ("atol = {logits = 1e-3, probs = 0}", None, {"logits": 1e-3, "probs": 0.0}),
    ('[tool.kdiag.atol]\ndefault = 2e-5\n"output 0" = 1', 2e-5, {"output 0": 1.0}),
])
def test_tolerance_is_a_number_or_a_table_of_outputs_with_an_optional_default(
        tmp_path, body, atol, by_output):
    p = tmp_path / "pyproject.toml"
    p.write_text(("[tool.kdiag]\n" if not body.startswith("[") else "") + body + "\n")
    cfg = load_config(p)
    assert (cfg.atol, cfg.atol_by_output) == (atol, by_output)
    assert (cfg.rtol, cfg.rtol_by_output) == (None, {})


@pytest.mark.parametrize("body,where", [
    ("rtol = -1", "rtol"),
    ("atol = nan", "atol"),
    ("atol = inf", "atol"),
    ("atol = true", "atol"),
    ('atol = "1e-3"', "atol"),
    ('atol = {logits = "big"}', "atol.logits"),
    ("atol = {default = -1}", "atol.default"),
    ("rtol = {logits = {x = 1}}", "rtol.logits"),
    ("atol = [1e-3]", "atol"),
])
def test_a_bad_tolerance_names_the_key_and_the_file(tmp_path, body, where):
    p = tmp_path / "kdiag.toml"
    p.write_text(body + "\n")
    with pytest.raises(KdiagError) as e:
        load_config(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: {where} must be a number >= 0"), msg
    assert "{default = 1e-5, logits = 1e-3}" in msg  # how to write it


def test_an_empty_tolerance_table_is_refused(tmp_path):
    p = tmp_path / "kdiag.toml"
    p.write_text("atol = {}\n")
    with pytest.raises(KdiagError, match=r"kdiag.toml: atol is an empty table"):
        load_config(p)


def test_the_readme_per_output_tolerance_example_reads_as_documented():
    import re

    from tests.conftest import ROOT

    blocks = re.findall(r"```toml\n(.*?)```", (ROOT / "README.md").read_text("utf-8"), re.S)
    (example,) = [b for b in blocks if "logits" in b]
    cfg = parse_example(example)
    assert (cfg.atol, cfg.atol_by_output, cfg.rtol) == (1e-5, {"logits": 1e-3}, 1e-5)


def parse_example(text: str) -> CheckConfig:
    import tomllib

    from kdiag.ci.config import parse_table

    return parse_table(tomllib.loads(text)["tool"]["kdiag"], base=Path("."), source="README")
