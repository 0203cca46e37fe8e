"""Download the endpoint's model.tar.gz from S3, bounded, into a temporary folder.

The archive is then read with kdiag.model.artifact.read_model, which never extracts; only a local
replay extracts it (safely, kdiag.model.archive.extract_archive).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from kdiag.errors import KdiagError

if TYPE_CHECKING:
    from kdiag.live.session import AwsClients

DEFAULT_MAX_BYTES = 2 << 30
CHUNK = 1 << 20

# Virtual-hosted (bucket.s3.region.amazonaws.com/key, bucket.s3.amazonaws.com/key) and
# path-style (s3.region.amazonaws.com/bucket/key) HTTPS URLs; ModelDataUrl accepts both.
_VHOST = re.compile(r"^(?P<bucket>.+)\.s3[.-](?:[a-z0-9-]+\.)?amazonaws\.com(?:\.cn)?$")
_PATH = re.compile(r"^s3[.-](?:[a-z0-9-]+\.)?amazonaws\.com(?:\.cn)?$")


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key) of an s3:// or S3 https URL; KdiagError for anything else."""
    u = urlparse(url.strip())
    if u.scheme == "s3" and u.netloc and u.path.strip("/"):
        return u.netloc, u.path.lstrip("/")
    if u.scheme == "https" and u.netloc:
        host = u.netloc.split(":")[0].lower()
        m = _VHOST.match(host)
        if m and u.path.strip("/"):
            return m.group("bucket"), unquote(u.path.lstrip("/"))
        if _PATH.match(host):
            bucket, _, key = unquote(u.path.lstrip("/")).partition("/")
            if bucket and key:
                return bucket, key
    raise KdiagError(f"{url!r} is not an S3 object URL (s3://bucket/key): kdiag cannot "
                     "download the model from it. Pass --model with a local copy.")


@dataclass
class FetchedModel:
    url: str
    path: Path
    size: int
    tmpdir: Path

    def cleanup(self) -> None:
        shutil.rmtree(self.tmpdir, ignore_errors=True)


class FetchRefused(Exception):
    """The artifact was not downloaded, for a reason worth a finding (not fatal)."""


def fetch_model(clients: AwsClients, url: str, *, max_bytes: int = DEFAULT_MAX_BYTES,
                tmp_root: Path | None = None) -> FetchedModel:
    """Download `url` to a fresh temporary folder. Refuses (FetchRefused) objects larger than
    `max_bytes` before downloading, and stops a download that grows past it. The caller owns
    the folder (FetchedModel.cleanup)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from kdiag.live.session import error_code, error_message, fatal_error

    bucket, key = parse_s3_url(url)
    s3 = clients.s3
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError) as e:
        # S3 is optional for a probe: even "cannot reach S3" is a finding, not the end.
        fatal = fatal_error(e, clients, "s3", f"read {url}")
        code = error_code(e)
        why = {"404": "no such object", "NoSuchKey": "no such object",
               "403": "access denied (s3:GetObject)", "AccessDenied": "access denied"}.get(
            code or "", str(fatal) if fatal else f"{code or type(e).__name__}: {error_message(e)}")
        raise FetchRefused(clients.redact(f"cannot read {url}: {why}")) from None
    size = int(head.get("ContentLength") or 0)
    if size > max_bytes:
        raise FetchRefused(f"{url} is {size} bytes, over --max-model-bytes ({max_bytes})")
    name = Path(key).name or "model.tar.gz"
    if not name.lower().endswith((".tar.gz", ".tgz", ".tar")):
        name = "model.tar.gz"
    tmpdir = Path(tempfile.mkdtemp(prefix="kdiag-model-", dir=tmp_root))
    dest = tmpdir / name
    try:
        obj = s3.get_object(Bucket=bucket, Key=key)
        stream = obj["Body"]
        written = 0
        with open(dest, "wb") as fh:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                written += len(chunk)
                if written > max_bytes:
                    raise FetchRefused(f"{url} grew past --max-model-bytes ({max_bytes}) while "
                                       "downloading")
                fh.write(chunk)
    except FetchRefused:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    except (ClientError, BotoCoreError, OSError) as e:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise FetchRefused(clients.redact(
            f"downloading {url} failed: {error_code(e) or type(e).__name__}: "
            f"{error_message(e)}")) from None
    except BaseException:  # Ctrl-C, SIGTERM (kdiag.cli.Terminated): no half download left
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    return FetchedModel(url=url, path=dest, size=written, tmpdir=tmpdir)
