"""`kdiag probe --fetch-model` stopped by Ctrl-C or SIGTERM while it downloads the endpoint's
model.tar.gz from S3 (moto's server), extracts it, or replays on it: exit 130/143, no traceback,
and no kdiag-* folder left in its TMPDIR; a SIGTERM right after the Ctrl-C (while the first is
cleaning up) changes neither.

The archive holds the served fixture model and 48 MiB of incompressible bytes, stored in a
level-0 gzip, so each phase lasts long enough to be seen from outside: the download by
kdiag-model-*/model.tar.gz growing, the extraction by a kdiag-extract-* folder filling.
"""

from __future__ import annotations

import gzip
import io
import os
import signal
import tarfile
import time
from pathlib import Path

import pytest

from tests._aws_rig import deploy, upload
from tests.conftest import MODELS
from tests.security._run import finish, start

pytestmark = pytest.mark.tf

NAME = "kdiag-interrupt-ep"  # the endpoint the rig's local runtime serves (the custom model)
BLOB = 48 << 20


@pytest.fixture(scope="module")
def big_archive() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        tar.add(MODELS / "custom" / "export" / "1", arcname="1")
        info = tarfile.TarInfo("1/assets/blob.bin")
        info.size = BLOB
        tar.addfile(info, io.BytesIO(os.urandom(BLOB)))
    return gzip.compress(raw.getvalue(), compresslevel=0)


def _phase(tmp: Path, size: int) -> str | None:
    """What the probe in this TMPDIR is doing now, from its temporary folders: downloading
    (model.tar.gz still growing), extracting (blob.bin still growing), or past both (the model
    is loading or running: the extraction folder stays until the replay ends)."""
    for d in tmp.iterdir():
        blob = d / "1" / "assets" / "blob.bin"
        if d.name.startswith("kdiag-extract-") and blob.exists():
            return "extraction" if blob.stat().st_size < BLOB else "replay"
        f = d / "model.tar.gz"
        if d.name.startswith("kdiag-model-") and f.exists() and 0 < f.stat().st_size < size:
            return "download"
    return None


@pytest.mark.parametrize("sig,code,phase", [
    (signal.SIGINT, 130, "download"),
    (signal.SIGTERM, 143, "download"),
    (signal.SIGINT, 130, "extraction"),
    (signal.SIGTERM, 143, "extraction"),
    (signal.SIGINT, 130, "replay"),
    (signal.SIGTERM, 143, "replay"),
    ((signal.SIGINT, signal.SIGTERM), 130, "extraction"),  # a second signal during cleanup
])
def test_an_interrupted_probe_leaves_no_temporary_folder(env, runtime_url, big_archive, tmp_path,
                                                         sig, code, phase):
    url = upload(env, "models", "big/model.tar.gz", big_archive)
    deploy(env, NAME, model_data_url=url)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    t0 = time.perf_counter()
    p, out_dir = start(["probe", NAME, "--endpoint-url", env, "--runtime-endpoint-url",
                        runtime_url, "--log-wait", "0", "--rate", "50", "--fetch-model"],
                       env={"TMPDIR": str(tmp)})
    seen = None
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and p.poll() is None:
            now = _phase(tmp, len(big_archive))
            if now == "replay":
                time.sleep(1)  # TensorFlow is being imported, the model loaded, then run
                now = _phase(tmp, len(big_archive))
            if now == phase:
                seen = now
                for i, one in enumerate(sig if isinstance(sig, tuple) else (sig,)):
                    if i:
                        time.sleep(0.02)  # the first one is unwinding: folders being removed
                    os.kill(p.pid, one)
                break
            time.sleep(0.002)
    finally:
        r = finish(p, out_dir, t0, timeout=120)
    assert seen == phase, (phase, r.rc, r.err[-1500:])
    assert r.rc == code, (r.rc, r.err[-1500:])
    assert "Traceback" not in r.err and "Traceback" not in r.out, r.err[-3000:]
    assert list(tmp.iterdir()) == []
