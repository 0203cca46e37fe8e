"""kdiag.serve.requirements: code/requirements.txt at start-up, as the container treats it, and
kdiag serve answering as a container that did not start (never an empty 502, never a 200)."""

from __future__ import annotations

import http.client
import shutil
from pathlib import Path

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


def tiny_wheel(folder, version: str = "1.0"):
    """A pure-Python wheel built by hand (a zip with its dist-info): a requirement pip installs
    from a local file, with no index and no network."""
    import base64
    import hashlib
    import zipfile

    name = f"kdiag_tiny_req-{version}-py3-none-any.whl"
    info = f"kdiag_tiny_req-{version}.dist-info"
    files = {"kdiag_tiny_req/__init__.py": f"VERSION = {version!r}\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: kdiag-tiny-req\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: kdiag-tests\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n"}

    def record_line(path: str, text: str) -> str:
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        return f"{path},sha256={digest.decode()},{len(text.encode())}\n"

    record = "".join(record_line(p, t) for p, t in files.items()) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(folder / name, "w") as z:
        for path, text in {**files, f"{info}/RECORD": record}.items():
            z.writestr(path, text)
    return name


@pytest.mark.tf
def test_install_requirements_puts_a_local_wheel_in_a_cached_folder_for_the_handlers(
        tmp_path, monkeypatch):
    """The opt-in installs a requirement (a wheel file next to requirements.txt, as a user's
    code/ may carry) into ~/.cache/kdiag/requirements/<hash of the file>, never into this
    environment, and the handlers that import it run."""
    import hashlib
    import sys
    from importlib import metadata

    from kdiag.path.container import Request
    from kdiag.path.local_endpoint import LocalEndpoint
    from kdiag.serve.requirements import prepare_startup

    monkeypatch.setenv("PIP_NO_INDEX", "1")  # never the network
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "path", list(sys.path))  # the install's folder goes on the path
    for mod in [m for m in sys.modules if m.startswith("kdiag_tiny_req")]:
        monkeypatch.delitem(sys.modules, mod)
    code = tmp_path / "code"
    shutil.copytree(FIXTURES / "code", code)
    wheel = tiny_wheel(code)
    text = f"./{wheel}\n"
    (code / "requirements.txt").write_text(text)
    (code / "inference.py").write_text(
        "import kdiag_tiny_req\n\n" + (FIXTURES / "code/inference.py").read_text()
        + "\nassert kdiag_tiny_req.VERSION == '1.0'\n")
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("kdiag-tiny-req")

    ep = LocalEndpoint(FIXTURES / "archives/good.tar.gz", code_dir=code)
    try:
        # Without the opt-in: a path requirement cannot be checked, so the container's start
        # is predicted to fail, and the message names the opt-in.
        failure = prepare_startup(ep, code, install=False)
        assert "--install-requirements" in failure
        logs: list[str] = []
        assert prepare_startup(ep, code, install=True, log=logs.append) is None, logs
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        site = tmp_path / "cache/kdiag/requirements" / digest / "kdiag-site-packages"
        assert (site / "kdiag_tiny_req/__init__.py").is_file()
        inv = ep.invoke(Request(b'{"instances": [[1, 1, 1, 1, 1]]}', "application/json"))
        assert inv.status == 200, inv.body
    finally:
        ep.close()
    import site as site_module

    for folder in site_module.getsitepackages():  # nothing went into this environment
        assert not list(Path(folder).glob("kdiag_tiny_req*"))
    # The same file again: the cached folder is reused; a changed file gets a folder of its own.
    logs = []
    assert startup_failure_for(code, has_lib=False, install=True, log=logs.append) is None
    assert "already installed" in logs[-1]
    (code / "requirements.txt").write_text(text + "# changed\n")
    assert startup_failure_for(code, has_lib=False, install=True) is None
    assert len(list((tmp_path / "cache/kdiag/requirements").iterdir())) == 2
