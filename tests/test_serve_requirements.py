"""kdiag.serve.requirements: code/requirements.txt at start-up, as the container treats it, and
kdiag serve answering as a container that did not start (never an empty 502, never a 200)."""

from __future__ import annotations

import http.client
import shutil

import pytest

from kdiag.serve.requirements import check_requirements, startup_failure_for
from tests.conftest import FIXTURES


def write(tmp_path, text: str):
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / "requirements.txt").write_text(text)
    return code


def test_requirements_this_environment_satisfies_start_the_container(tmp_path):
    code = write(tmp_path, "# pinned\nnumpy\nclick>=1.0  # comment\n\n")
    assert check_requirements(code / "requirements.txt").ok
    assert startup_failure_for(code, has_lib=False, install=False) is None


def test_missing_or_wrong_versions_are_named_with_the_reason(tmp_path):
    code = write(tmp_path, "kdiag-no-such-package-xyz\nnumpy<1\n-r other.txt\nhttps://x/y.whl\n")
    unmet = check_requirements(code / "requirements.txt").unmet
    assert len(unmet) == 4
    assert "kdiag-no-such-package-xyz is not installed here" in unmet[0]
    assert "numpy" in unmet[1] and "is installed here" in unmet[1]
    assert all("cannot be checked offline" in u for u in unmet[2:])
    failure = startup_failure_for(code, has_lib=False, install=False)
    assert "kdiag-no-such-package-xyz" in failure and "--install-requirements" in failure


def test_code_lib_makes_the_container_ignore_requirements(tmp_path):
    code = write(tmp_path, "kdiag-no-such-package-xyz\n")
    assert startup_failure_for(code, has_lib=True, install=False) is None


def test_an_install_that_fails_is_the_containers_start_up_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # never the network
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code = write(tmp_path, "kdiag-no-such-package-xyz\n")
    failure = startup_failure_for(code, has_lib=False, install=True)
    assert "pip install -r" in failure and "failed to install required packages." in failure
    assert not any((tmp_path / "cache" / "kdiag" / "requirements").glob("*/kdiag-*"))


def test_an_empty_requirements_file_installs_into_its_own_cached_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code = write(tmp_path, "# nothing\n")
    logs: list[str] = []
    assert startup_failure_for(code, has_lib=False, install=True, log=logs.append) is None
    assert startup_failure_for(code, has_lib=False, install=True, log=logs.append) is None
    assert "already installed" in logs[-1]  # the second start reuses the cached folder


@pytest.mark.tf
def test_a_container_that_did_not_start_answers_nginx_502_everywhere(tmp_path):
    import boto3

    from kdiag.path.local_endpoint import LocalEndpoint
    from kdiag.serve.server import start_server

    code = tmp_path / "code"
    shutil.copytree(FIXTURES / "code", code)
    (code / "requirements.txt").write_text("kdiag-no-such-package-xyz\n")
    ep = LocalEndpoint(FIXTURES / "archives/good.tar.gz", code_dir=code)
    ep.startup_failure = startup_failure_for(code, has_lib=False, install=False)
    with start_server(ep) as server:
        for method, path in (("GET", "/ping"), ("POST", "/invocations")):
            conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
            conn.request(method, path, body=b'{"instances": [[1, 1, 1, 1, 1]]}',
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            body = r.read()
            conn.close()
            assert r.status == 502 and b"502 Bad Gateway" in body
            assert r.getheader("Content-Type") == "text/html"
        rt = boto3.client("sagemaker-runtime", endpoint_url=server.url, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
        with pytest.raises(rt.exceptions.ModelError) as info:
            rt.invoke_endpoint(EndpointName="local", ContentType="application/json",
                               Body=b'{"instances": [[1, 1, 1, 1, 1]]}')
        assert info.value.response["OriginalStatusCode"] == 502
    ep.close()
