"""--engine: in-process is the default and needs no Ray; --engine ray without Ray installed
ends in one message naming the extra to install, exit 2 (Ray blocked from importing in a
subprocess, as on a machine without it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import MODELS, ROOT

BLOCK_RAY = '''
import sys


class _NoRay:
    """Imports of ray and pyarrow fail, as where they are not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ray", "pyarrow"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


sys.meta_path.insert(0, _NoRay())
'''


def kdiag_without_ray(tmp_path, *args: str) -> subprocess.CompletedProcess:
    blocker = tmp_path / "blocker"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(BLOCK_RAY)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "kdiag", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def bodies(tmp_path):
    d = tmp_path / "bodies"
    d.mkdir()
    for i in range(3):
        (d / f"b{i}.json").write_text(json.dumps({"instances": [[i, 1, 2, 3, 4]]}))
    return d


def test_engine_ray_without_ray_names_the_extra_and_exits_2(tmp_path):
    p = kdiag_without_ray(tmp_path, "validate", str(bodies(tmp_path)), "--signature",
                          str(MODELS / "custom/export/1"), "--engine", "ray")
    assert p.returncode == 2, p.stderr
    assert "pip install 'kdiag[ray]'" in p.stderr + p.stdout
    assert "Traceback" not in p.stderr


def test_the_default_engine_runs_without_ray(tmp_path):
    p = kdiag_without_ray(tmp_path, "validate", str(bodies(tmp_path)), "--signature",
                          str(MODELS / "custom/export/1"), "--format", "json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["accepted"] == 3


def test_the_blocker_really_hides_ray(tmp_path):
    p = kdiag_without_ray(tmp_path, "--help")
    assert p.returncode == 0
    probe = subprocess.run(
        [sys.executable, "-c", "import ray"], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "blocker")}, timeout=60)
    assert probe.returncode != 0 and "No module named 'ray'" in probe.stderr


def test_cap_and_trust_settings_travel_to_ray_workers():
    """--cap and --trust-model are process-wide; the engine carries them to each worker."""
    from kdiag.limits import active_limits, parse_limit_options, set_limits
    from kdiag.model.graph_trust import set_trust, trusted
    from kdiag.replays.ray_engine import DriverSettings, EndpointSpec

    before = (active_limits(), trusted())
    try:
        set_trust(True)
        set_limits(parse_limit_options(("archive-bytes=1GiB",)))
        spec = EndpointSpec("export/1")  # what the driver sends
        set_trust(False)
        set_limits(parse_limit_options(()))  # a fresh worker's defaults
        spec.settings.apply()  # what EndpointSpec.open() does first, in the worker
        assert trusted() and active_limits().archive_bytes == 1 << 30
        assert DriverSettings.current() == spec.settings
    finally:
        set_limits(before[0])
        set_trust(before[1])
