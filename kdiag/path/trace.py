"""Stage records: what each stage of the request path saw. The trace is what commands show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Verdict = Literal["ok", "fail", "warn", "skip"]

# The request path, in order (ARCHITECTURE.md).
STAGES = ("client", "wire", "container", "tfs-parse", "signature", "model", "tfs-response",
          "container-response", "runtime", "client-decode")


@dataclass
class StageRecord:
    stage: str
    verdict: Verdict
    holds: str  # what the stage holds, in a few words: "JSON text", "2 tensors", "HTTP 415"
    dtype: str | None = None
    shape: str | None = None  # already formatted; several tensors: "args_0 (1, 5)"
    size: int | None = None  # bytes, where meaningful
    excerpt: str = ""  # a short, safe excerpt (never credentials)
    detail: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"stage": self.stage, "verdict": self.verdict, "holds": self.holds,
                "dtype": self.dtype, "shape": self.shape, "bytes": self.size,
                "excerpt": self.excerpt}


def excerpt(text: str | bytes, limit: int = 120) -> str:
    if isinstance(text, bytes):
        text = text[: limit * 4].decode("utf-8", errors="replace")
    text = " ".join(text[: limit * 4].split())  # cut first: bodies can be megabytes
    return text if len(text) <= limit else text[: limit - 1] + "…"
