"""code/requirements.txt at start-up, as the container treats it.

The container (serve.py _setup_gunicorn, every generation that starts the Python service) runs
`pip install -r /opt/ml/model/code/requirements.txt` before gunicorn and nginx start, unless
code/lib exists (then it logs "ignoring requirements.txt"). If pip fails it raises
ChildProcessError("failed to install required packages.") and the container exits: nothing
answers /ping, and SageMaker fails the endpoint's health check.

kdiag serve never runs pip behind the user's back (it downloads and runs code). By default it
checks whether the current environment already satisfies every requirement:
- satisfied: the handlers run here, as the container's would after its install;
- not satisfied: kdiag serve reports the start-up failure the container would have (the line it
  cannot satisfy), /ping and every request answer nginx's 502 page (no healthy upstream), never
  a silent 200 or an empty 502.
With `--install-requirements` it installs them (pip install --target) into a folder of their
own cached under ~/.cache/kdiag/requirements/<sha256 of the file> (reused while the file is
unchanged, never mixed into the current environment) and puts it on the handlers' import path.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from kdiag.errors import KdiagError

MAX_REQUIREMENTS_BYTES = 1 << 20
PIP_TIMEOUT = 600.0  # seconds for one install (the container has no limit but its own start-up)


@dataclass(frozen=True)
class RequirementsCheck:
    """Which lines of a requirements.txt the current environment does not satisfy."""

    path: Path
    unmet: list[str] = field(default_factory=list)  # "line: why"

    @property
    def ok(self) -> bool:
        return not self.unmet


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_REQUIREMENTS_BYTES:
            raise KdiagError(f"{path} is over {MAX_REQUIREMENTS_BYTES} bytes, kdiag's cap for a "
                             "requirements file.")
        return path.read_text("utf-8", "replace")
    except OSError as e:
        raise KdiagError(f"cannot read {path}: {e.strerror or e}") from None


def check_requirements(path: str | Path) -> RequirementsCheck:
    """Each requirement checked against the installed distributions (no network, no pip).
    Options (-r, --index-url...), URLs and editable installs cannot be checked offline: they
    count as unmet, with the reason."""
    path = Path(path)
    unmet: list[str] = []
    for raw in _read(path).splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-") or "://" in line or line.startswith((".", "/")):
            unmet.append(f"{line}: pip options, paths and URLs cannot be checked offline")
            continue
        problem = _unmet(line)
        if problem:
            unmet.append(f"{line}: {problem}")
    return RequirementsCheck(path, unmet)


def _unmet(line: str) -> str | None:
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:  # packaging is optional: check the name only
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if name is None:
            return "not a requirement pip accepts"
        try:
            metadata.version(name.group())
        except metadata.PackageNotFoundError:
            return f"{name.group()} is not installed here"
        return None
    try:
        req = Requirement(line)
    except InvalidRequirement as e:
        return f"not a requirement pip accepts ({e})"
    if req.marker is not None and not req.marker.evaluate():
        return None
    try:
        have = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        return f"{req.name} is not installed here"
    if req.specifier and not req.specifier.contains(have, prereleases=True):
        return f"{req.name} {have} is installed here"
    return None


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kdiag" / "requirements"


def install_requirements(path: str | Path, *, root: Path | None = None,
                         log=lambda line: None) -> Path:
    """Install (pip --target) into a cached folder keyed by the file's sha256, apart from the
    current environment; returns that folder. Raises KdiagError (pip's last lines) when pip fails, as the
    container's start-up fails."""
    path = Path(path)
    digest = hashlib.sha256(_read(path).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    venv = (root or cache_root()) / digest
    done = venv / ".kdiag-installed"
    site = _site_packages(venv)
    if done.is_file() and site.is_dir():
        log(f"kdiag serve: {path} already installed in {venv}")
        return site
    import shutil

    shutil.rmtree(venv, ignore_errors=True)
    log(f"kdiag serve: installing {path} into {site} (pip install -r, as the container does)")
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
           "--target", str(site), "-r", str(path)]
    try:
        site.mkdir(parents=True)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT,
                             cwd=path.parent)
    except subprocess.TimeoutExpired:
        shutil.rmtree(venv, ignore_errors=True)
        raise KdiagError(f"pip install -r {path} took over {PIP_TIMEOUT:g} s") from None
    except OSError as e:
        shutil.rmtree(venv, ignore_errors=True)
        raise KdiagError(f"cannot install into {site}: {e}") from None
    if out.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        tail = " | ".join((out.stderr or out.stdout).strip().splitlines()[-3:])
        raise KdiagError(f"pip install -r {path} failed: {tail}")
    done.write_text(digest + "\n")
    return site


def _site_packages(venv: Path) -> Path:
    return venv / "kdiag-site-packages"


def startup_failure_for(code_dir: Path | None, *, has_lib: bool, install: bool,
                        log=lambda line: None) -> str | None:
    """The container's start-up failure for code_dir/requirements.txt, or None when it would
    start. With `install`, installs and puts the packages on sys.path first."""
    if code_dir is None:
        return None
    req = Path(code_dir) / "requirements.txt"
    if not req.is_file():
        return None
    if has_lib:
        log("kdiag serve: code/lib exists, so the container ignores requirements.txt "
            "(\"loading modules in ... ignoring requirements.txt\")")
        return None
    if install:
        try:
            site = install_requirements(req, log=log)
        except KdiagError as e:
            return (f"{e}. The container's pip install fails the same way: it raises "
                    "\"failed to install required packages.\" and exits before nginx starts.")
        if str(site) not in sys.path:
            sys.path.insert(0, str(site))
        return None
    check = check_requirements(req)
    if check.ok:
        log(f"kdiag serve: every line of {req} is satisfied by this environment (the container "
            "pip-installs them at start-up)")
        return None
    return (f"{req}: the container pip-installs it at start-up; kdiag does not, and this "
            f"environment lacks: {'; '.join(check.unmet[:5])}. If the container's pip install "
            "fails it exits before nginx starts (\"failed to install required packages.\") and "
            "the endpoint fails its health check. Install them here, or pass "
            "--install-requirements to install them into an isolated cached environment.")


def endpoint_requirements_failure(endpoint, code_dir: Path | None, *, install: bool = False,
                                  log=lambda line: None) -> str | None:
    """startup_failure_for the endpoint's code/: `code_dir` (--code, --run-archive-code), or
    else the artifact's own code/ when its requirements.txt alone switches on the Python
    service (2.2+ images; the G1 images ignore it without inference.py)."""
    where = code_dir
    if where is None and endpoint.has_requirements and endpoint.gen.name != "G1":
        where = endpoint.artifact_code_dir
    return startup_failure_for(where, has_lib=(where is not None and (where / "lib").is_dir()),
                               install=install, log=log)


def prepare_startup(endpoint, code_dir: Path | None, *, install: bool = False,
                    log=lambda line: None) -> str | None:
    """The container's start-up for the endpoint's user code, in its order: requirements.txt
    (checked, or installed with `install`), then inference.py imported (again, when the
    install may have supplied what its first import lacked). Returns why it would not start."""
    failure = endpoint_requirements_failure(endpoint, code_dir, install=install, log=log)
    if failure is not None:
        return failure
    if install and getattr(endpoint.handlers, "startup_error", None):
        endpoint.reimport_handlers()
    return handlers_startup_failure(endpoint)


def handlers_startup_failure(endpoint) -> str | None:
    """code/inference.py that cannot be imported (or defines no handlers): the Python
    service's worker fails to boot, gunicorn never opens its socket and the container's
    start-up fails, so the endpoint never becomes healthy."""
    handlers = getattr(endpoint, "handlers", None)
    error = getattr(handlers, "startup_error", None)
    if not error:
        return None
    return (f"code/inference.py fails at import ({error}): the container's Python service "
            "worker fails to boot, so it never becomes healthy.")
