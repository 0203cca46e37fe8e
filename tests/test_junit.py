"""kdiag.ci.junit: the JUnit XML CI systems read, validated against the Surefire/Jenkins schema."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kdiag.ci.check import CheckOptions, run_check
from kdiag.ci.junit import JUnitCase, JUnitSuite, check_suite, junit_xml, write_junit
from tests.conftest import ARCHIVES

XSD = Path(__file__).resolve().parent / "data" / "junit-10-subset.xsd"
TIME = re.compile(r"^(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?$")  # SUREFIRE_TIME


def assert_valid_junit(data: bytes) -> ET.Element:
    """Against the XSD with lxml; the same rules by hand with the standard library, so the
    structure is checked even where lxml is not installed."""
    try:
        from lxml import etree
    except ImportError:  # pragma: no cover - lxml is in the dev extra
        etree = None
    if etree is not None:
        schema = etree.XMLSchema(etree.parse(str(XSD)))
        doc = etree.fromstring(data)
        assert schema.validate(doc), schema.error_log
    root = ET.fromstring(data)
    assert root.tag == "testsuites"
    for suite in root:
        assert suite.tag == "testsuite"
        for attr in ("name", "tests", "failures", "errors"):
            assert attr in suite.attrib
        assert TIME.match(suite.get("time", ""))
        cases = suite.findall("testcase")
        assert int(suite.get("tests")) == len(cases)
        assert int(suite.get("failures")) == len([c for c in cases if c.find("failure") is not None])
        assert int(suite.get("skipped")) == len([c for c in cases if c.find("skipped") is not None])
        for c in cases:
            assert c.get("name") and c.get("classname") and TIME.match(c.get("time"))
            assert {ch.tag for ch in c} <= {"failure", "error", "skipped", "system-out",
                                             "system-err"}
    return root


def test_report_of_each_outcome_is_valid_against_the_schema(tmp_path):
    suite = JUnitSuite("s", [
        JUnitCase("ok", "k.a", 0.01234, output="seen"),
        JUnitCase("bad", "k.b", 1.5, "failure", "it broke", "KD002", "details\nmore"),
        JUnitCase("boom", "k.c", 0.0, "error", "crashed", "internal"),
        JUnitCase("later", "k.d", outcome="skipped", message="no TensorFlow"),
    ], seconds=12345.678, output="suite output")
    p = tmp_path / "sub" / "r.xml"
    write_junit(p, [suite])
    root = assert_valid_junit(p.read_bytes())
    s = root.find("testsuite")
    assert (s.get("tests"), s.get("failures"), s.get("errors"), s.get("skipped")) == \
        ("4", "1", "1", "1")
    assert s.get("time") == "12345.678"
    bad = s.find("testcase[@name='bad']/failure")
    assert (bad.get("message"), bad.get("type"), bad.text) == ("it broke", "KD002",
                                                               "details\nmore")
    assert root.get("tests") == "4" and root.get("failures") == "1"


def test_control_characters_from_payload_excerpts_do_not_break_the_xml():
    data = junit_xml([JUnitSuite("s", [JUnitCase("a\x00b", "k", 0, "failure", "x\x1by",
                                                 "KD1", "body \x07 <&>")])])
    root = assert_valid_junit(data)
    f = root.find("testsuite/testcase/failure")
    assert f.get("message") == "x\ufffdy" and f.text == "body \ufffd <&>"


def test_negative_or_tiny_times_stay_plain_decimals():
    data = junit_xml([JUnitSuite("s", [JUnitCase("a", "k", -1.0), JUnitCase("b", "k", 1e-9)])])
    root = assert_valid_junit(data)
    assert [c.get("time") for c in root.iter("testcase")] == ["0.000", "0.000"]


def test_unwritable_report_path_is_a_usage_error(tmp_path):
    from kdiag.errors import KdiagError

    (tmp_path / "file").write_text("")
    with pytest.raises(KdiagError, match="Cannot write the JUnit report"):
        write_junit(tmp_path / "file" / "r.xml", [JUnitSuite("s")])


def test_check_of_a_broken_archive_is_one_case_per_check_with_the_code_as_failure_type():
    r = run_check(CheckOptions(model=str(ARCHIVES / "code_in_version.tar.gz"), replay=False,
                               content_types=["application/json", "text/csv"]))
    root = assert_valid_junit(junit_xml([check_suite(r)]))
    cases = root.findall("testsuite/testcase")
    assert [c.get("name") for c in cases] == [c.name for c in r.cases]
    failed = [c for c in cases if c.find("failure") is not None]
    assert len(failed) == 1
    assert failed[0].get("name").startswith("artifact: KD002 ")
    assert failed[0].get("classname") == "kdiag.ci.check.artifact"
    assert failed[0].find("failure").get("type") == "KD002"
    skipped = [c.get("name") for c in cases if c.find("skipped") is not None]
    assert skipped == ["replay"]
    assert root.find("testsuite/system-out").text.startswith("model: ")


def test_passing_case_with_a_warning_keeps_it_in_system_out():
    r = run_check(CheckOptions(model=str(ARCHIVES / "two_models.tar.gz"), replay=False))
    root = assert_valid_junit(junit_xml([check_suite(r)]))
    kd004 = next(c for c in root.iter("testcase") if "KD004" in c.get("name"))
    assert kd004.find("failure") is None
    assert "KD004 warning" in kd004.find("system-out").text
