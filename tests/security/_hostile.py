"""Builders of hostile inputs, written byte by byte (no tarfile, no TensorFlow), and a runner
that measures a kdiag command in a subprocess: exit code, stderr, wall time, peak memory
(the child's own high-water mark, falling back to resource.getrusage)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


# -- protobuf ----------------------------------------------------------------------------------
def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(num: int, value: bytes | str | int) -> bytes:
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(num << 3 | 2) + varint(len(data)) + data


def saved_model_pb(shape: list[int], dtype: int = 1, name: str = "x") -> bytes:
    """A SavedModel whose serving_default takes one input of `shape` (no graph at all)."""
    dims = b"".join(field(2, field(1, d)) for d in shape)
    tensor = field(1, f"{name}:0") + field(2, dtype) + field(3, dims)
    out = field(1, "y:0") + field(2, dtype) + field(3, field(2, field(1, -1)))
    sig = field(1, field(1, name) + field(2, tensor)) + field(2, field(1, "y") + field(2, out)) \
        + field(3, "tensorflow/serving/predict")
    meta = field(1, field(4, "serve")) + field(5, field(1, "serving_default") + field(2, sig))
    return field(1, 1) + field(2, meta)


# -- tar -----------------------------------------------------------------------------------------
def tar_header(name: str, size: int = 0, typ: bytes = b"0", linkname: str = "",
               raw_name: bytes | None = None) -> bytes:
    h = bytearray(512)
    nb = raw_name if raw_name is not None else name.encode()
    h[0:len(nb[:100])] = nb[:100]
    h[100:108] = b"0000644\x00"
    h[108:116] = b"0000000\x00"
    h[116:124] = b"0000000\x00"
    h[124:136] = f"{size:011o}\x00".encode() if size < 8 ** 11 else \
        b"\x80" + size.to_bytes(11, "big")
    h[136:148] = b"00000000000\x00"
    h[156:157] = typ
    lb = linkname.encode()[:100]
    h[157:157 + len(lb)] = lb
    h[257:263] = b"ustar\x00"
    h[263:265] = b"00"
    h[148:156] = b" " * 8
    h[148:156] = f"{sum(h):06o}\x00 ".encode()
    return bytes(h)


def pad(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 512)


def tar_member(name: str, data: bytes = b"", typ: bytes = b"0", linkname: str = "") -> bytes:
    return tar_header(name, len(data) if typ == b"0" else 0, typ, linkname) + pad(data)


def tar_end() -> bytes:
    return b"\x00" * 1024


# -- running kdiag ------------------------------------------------------------------------------
@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_mib: float


def run_kdiag(args: list[str], cwd: Path, timeout: float = 120, tmpdir: Path | None = None) -> Run:
    """`python -m kdiag ARGS` in a child that reports its own peak RSS (ru_maxrss) and time."""
    script = textwrap.dedent("""
        import json, resource, sys, time, io, contextlib
        t0 = time.perf_counter()
        from kdiag.cli import main
        code = 0
        try:
            code = main(sys.argv[1:])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        # VmHWM: this process image's own peak. ru_maxrss survives execve on Linux, so it would
        # report the (large) test runner that forked this child.
        try:
            hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
            peak = int(hwm.split()[1]) / 1024
        except (OSError, IndexError):
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        sys.stderr.write("\\n@@" + json.dumps({"code": code, "seconds": time.perf_counter() - t0,
                                                "peak_mib": peak}) + "\\n")
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    if tmpdir is not None:  # where kdiag's temporary folders go, so a test can see none is left
        env["TMPDIR"] = str(tmpdir)
    p = subprocess.run([sys.executable, "-c", script, *args], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=timeout)
    err, _, stats = p.stderr.rpartition("\n@@")
    info = json.loads(stats)
    return Run(info["code"], p.stdout, err, info["seconds"], info["peak_mib"])
