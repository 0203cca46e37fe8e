"""Masking secrets in everything kdiag prints or writes: one function, `mask`.

What counts as a secret: the password of a URL (`https://user:secret@host` becomes
`https://user:***@host`), the value of every environment variable whose name says it is one
(KEY, SECRET, TOKEN, PASSWORD, CREDENTIAL...), request-signing material (SigV4 Credential= and
Signature=, security tokens, Authorization headers) and anything shaped like an AWS access key
id. Reports (text and JSON), written files and error messages pass through `mask`; the probe's
Redactor adds the credentials boto3 resolved.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSW(OR)?D|PASSPHRASE|CREDENTIAL|AUTH", re.I)
_NOT_SECRET_VALUES = {"true", "false", "none", "null", "yes", "no", "on", "off"}
MIN_SECRET = 6  # shorter values would mask ordinary words

PATTERNS = (
    # scheme://user:password@host -> scheme://user:***@host
    re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@\"']*:)[^@\s/\"']+(?=@)"),
    re.compile(r"(Credential=)[^,\s\"']+"),
    re.compile(r"(Signature=)[0-9a-fA-F]+"),
    re.compile(r"(X-Amz-Security-Token[=:]\s*)[^&\s\"',]+", re.I),
    re.compile(r"(X-Amz-Credential[=:]\s*)[^&\s\"',]+", re.I),
    re.compile(r"(Authorization[=:]\s*)[^\n\"']+", re.I),
    re.compile(r"()\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b"),
)
# What each pattern cannot match without (looked for in the case-folded text): a substring test
# is a fraction of a regex scan, and mask runs on every line a million-line run writes.
_MARKERS = (("://",), ("credential=",), ("signature=",), ("x-amz-security-token",),
            ("x-amz-credential",), ("authorization",), ("akia", "asia", "aroa", "aida"))


_env_cache: tuple[frozenset, list[str]] | None = None


def _process_env_secrets() -> list[str]:
    """env_secrets() of os.environ, recomputed only when the environment changed."""
    global _env_cache
    data = getattr(os.environ, "_data", None)  # CPython's raw mapping: hashed at C speed
    if not isinstance(data, dict):
        return env_secrets()
    key = frozenset(data.items())
    if _env_cache is None or _env_cache[0] != key:
        _env_cache = (key, env_secrets())
    return _env_cache[1]


def env_secrets(environ: dict[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names look secret, longest first."""
    env = os.environ if environ is None else environ
    out = {v for k, v in env.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET
           and v.lower() not in _NOT_SECRET_VALUES and not v.isdigit()}
    return sorted(out, key=len, reverse=True)


def mask(text: str, extra: list[str] | tuple[str, ...] = ()) -> str:
    """`text` with every secret replaced by ***. Cheap when there is nothing to mask."""
    if not text:
        return text
    for s in (*extra, *_process_env_secrets()):
        if s in text:
            text = text.replace(s, "***")
    folded = text.casefold()  # re.I matches what casefold equates (Kelvin sign, long s)
    for pat, markers in zip(PATTERNS, _MARKERS, strict=True):
        if any(m in folded for m in markers):
            text = pat.sub(lambda m: m.group(1) + "***", text)
    return text


def mask_tree(doc: Any, extra: list[str] | tuple[str, ...] = ()) -> Any:
    """Every string (keys included) of a JSON-like document masked."""
    if isinstance(doc, str):
        return mask(doc, extra)
    if isinstance(doc, dict):
        return {mask(k, extra) if isinstance(k, str) else k: mask_tree(v, extra)
                for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [mask_tree(v, extra) for v in doc]
    return doc


class MaskingStream:
    """A text stream that masks what is written to it (for rich consoles)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(mask(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def write_stdout(text: str) -> None:
    sys.stdout.write(mask(text))
