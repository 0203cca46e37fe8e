"""Caps on what hostile input may cost, checked before the work, and how a user raises them.

Every cap has a name the CLI accepts in `--cap NAME=SIZE` (repeatable, on every command that
reads a model), a default sized for real SageMaker artifacts, and one message shape when it is
hit: what was measured, which cap, and the option that raises it. The CLI sets the process-wide
values once (`set_limits`); an API call with `limits=` sets them for that call only
(`limits_for_call`, a context variable: nothing leaks into the next call or another thread);
readers may also be passed their own `Limits`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, fields, replace

from kdiag.errors import KdiagError

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
RATIO_FLOOR = 1 * GIB  # below this uncompressed size the archive-ratio cap does not apply


@dataclass(frozen=True)
class Limits:
    # model archives (model.tar.gz)
    archive_bytes: int = 20 * GIB  # total uncompressed size of all members
    archive_members: int = 200_000  # members (files, folders, links) in one archive
    member_bytes: int = 20 * GIB  # any single member
    header_bytes: int = 1 * MIB  # a GNU long name/link or pax header
    read_bytes: int = 256 * MIB  # members kept in memory in one scan (saved_model.pb, code)
    # uncompressed/compressed size, checked from the headers once past RATIO_FLOOR: real model
    # weights compress about 1.1:1, a decompression bomb about 1000:1
    archive_ratio: int = 200
    # models
    graph_bytes: int = 2 * GIB  # saved_model.pb (protobuf's own hard limit)
    keras_config_bytes: int = 64 * MIB  # config.json / metadata.json inside a .keras file
    # generated payloads (kdiag sample, inspect's example request, check's generated payloads)
    sample_elements: int = 10_000_000  # values in one generated request
    sample_bytes: int = 64 * MIB  # bytes of one generated request body


DEFAULT = Limits()
_HELP = {
    "archive-bytes": "total uncompressed size of model.tar.gz",
    "archive-members": "members in model.tar.gz",
    "member-bytes": "any one member of model.tar.gz",
    "header-bytes": "a long-name or pax header in model.tar.gz",
    "read-bytes": "archive members kept in memory in one pass (more are re-read one at a time)",
    "archive-ratio": "uncompressed-to-compressed size of model.tar.gz, beyond its first 1 GiB",
    "graph-bytes": "saved_model.pb",
    "keras-config-bytes": "config.json/metadata.json inside a .keras file",
    "sample-elements": "values in one generated example request",
    "sample-bytes": "bytes of one generated example request",
}
_active = DEFAULT
# One API call's own caps (kdiag.inspect(..., limits=...)); None: the process-wide ones.
_for_call: ContextVar[Limits | None] = ContextVar("kdiag_limits_for_call", default=None)


def option_name(attr: str) -> str:
    return attr.replace("_", "-")


def limits_help() -> str:
    """One line per cap for --help: name, default, what it bounds."""
    return "; ".join(f"{option_name(f.name)} ({human(getattr(DEFAULT, f.name), f.name)}): "
                     f"{_HELP[option_name(f.name)]}" for f in fields(Limits))


def human(n: int, attr: str = "") -> str:
    """1.5 GiB, 300 MiB, 12 KiB, 17 bytes; plain counts for member/element caps."""
    if attr.endswith(("members", "elements")):
        return f"{n:,}"
    if attr.endswith("ratio"):
        return f"{n:,}:1"
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}".replace(".0 ", " ")
    return f"{n} bytes"


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.I)


def parse_size(text: str) -> int:
    """`20GiB`, `512M`, `1.5g`, `100000`: binary units (a K is 1024)."""
    m = _SIZE.match(text)
    if not m:
        raise KdiagError(f"{text!r} is not a size: write e.g. 40GiB, 512MiB or 100000.")
    scale = {"": 1, "k": KIB, "m": MIB, "g": GIB, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def _known() -> dict[str, str]:
    return {option_name(f.name): f.name for f in fields(Limits)}


def parse_limit_options(items: tuple[str, ...] | list[str], base: Limits = DEFAULT) -> Limits:
    """`NAME=SIZE` items (from --cap) applied over `base`."""
    changes = {}
    known = _known()
    for item in items:
        name, sep, value = item.partition("=")
        attr = known.get(name.strip().lower())
        if not sep or attr is None:
            raise KdiagError(f"--cap {item!r}: write NAME=SIZE with NAME one of "
                             f"{', '.join(known)}.")
        changes[attr] = parse_size(value)
    return replace(base, **changes)


def parse_cap_table(table: Mapping[str, object], where: str = "limits") -> dict[str, int]:
    """{"archive-bytes": "40GiB", "archive-members": 500000} (names as --cap takes them; `_`
    for `-` is read too) -> Limits field values. Errors name `where` and the key."""
    if not isinstance(table, Mapping):
        raise KdiagError(f"{where} must be a table of cap names to sizes, e.g. "
                         f"{{archive-bytes = \"40GiB\"}} (got {table!r}).")
    known = _known()
    out = {}
    for name, value in table.items():
        attr = known.get(str(name).strip().lower().replace("_", "-"))
        if attr is None:
            raise KdiagError(f"{where}: unknown cap {name!r}; caps are {', '.join(known)}.")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            out[attr] = value
        elif isinstance(value, str):
            try:
                out[attr] = parse_size(value)
            except KdiagError as e:
                raise KdiagError(f"{where}.{name}: {e}") from None
        else:
            raise KdiagError(f"{where}.{name}: write a size such as \"40GiB\" or a whole "
                             f"number >= 0 (got {value!r}).")
    return out


def as_limits(value: Limits | Mapping[str, object], base: Limits | None = None) -> Limits:
    """An API caller's `limits=`: a Limits as is, or a {cap name: size} dict applied over
    `base` (default: the caps in effect)."""
    if isinstance(value, Limits):
        return value
    return replace(base or active_limits(), **parse_cap_table(value))


def set_limits(limits: Limits) -> None:
    """The CLI's --cap, process-wide (an API call's `limits=` wins for that call)."""
    global _active
    _active = limits


def active_limits() -> Limits:
    return _for_call.get() or _active


@contextmanager
def limits_for_call(limits: Limits | Mapping[str, object] | None) -> Iterator[Limits]:
    """The caps every reader uses inside the block (None: leave them as they are); restored
    on exit, so one call's caps never become the next call's."""
    if limits is None:
        yield active_limits()
        return
    token = _for_call.set(as_limits(limits))
    try:
        yield active_limits()
    finally:
        _for_call.reset(token)


class LimitExceeded(KdiagError):
    """A cap was hit: the message names the cap, the measured size and how to raise it."""

    def __init__(self, what: str, measured: int | str, attr: str, limits: Limits) -> None:
        cap = getattr(limits, attr)
        shown = measured if isinstance(measured, str) else human(measured, attr)
        super().__init__(
            f"{what} is {shown}, over the {option_name(attr)} cap ({human(cap, attr)}): kdiag "
            f"stops there rather than exhaust memory, disk or time. If you trust the input, "
            f"raise it with --cap {option_name(attr)}=SIZE (in Python: "
            f"limits={{{option_name(attr)!r}: SIZE}}).")
        self.attr = attr
