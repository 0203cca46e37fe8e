"""`[tool.kdiag]` in pyproject.toml, or kdiag.toml: what `kdiag check` runs when CI calls it bare.

The file is found by walking up from the working directory to the repository root (the first
folder holding `.git`), so a pre-commit hook or a CI step run from a subfolder finds the same
file. In each folder `kdiag.toml` wins over `pyproject.toml`; a pyproject.toml without a
`[tool.kdiag]` table is passed over. Paths in the file are relative to the file's folder, so
the configuration means the same thing whatever the working directory.

A typo in a key is an error (exit 2), not a silently ignored setting: a gate that quietly
checks less than the team believes is worse than none.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from kdiag.errors import KdiagError

CONFIG_FILES = ("kdiag.toml", "pyproject.toml")
FAIL_ON = ("error", "warning", "info", "never")


@dataclass
class PayloadEntry:
    """One of the team's example payloads and the Content-Type it is sent with (None: from the
    file suffix, as `kdiag validate` does)."""

    file: str
    content_type: str | None = None


@dataclass
class CheckConfig:
    """Settings read from the file; None (or an empty list) where the file says nothing.

    Paths (model, payload files, golden, code, custom_objects) are already resolved against
    the file's folder and shown relative to the working directory when they lie under it.
    """

    model: str | None = None
    framework_version: str | None = None
    content_types: list[str] | None = None
    payloads: list[PayloadEntry] = field(default_factory=list)
    expect_output: list[str] = field(default_factory=list)
    golden: str | None = None
    atol: float | None = None  # the default for every output (None: the file sets none)
    rtol: float | None = None
    fail_on: str | None = None
    signature_name: str | None = None
    endpoint: str | None = None
    code: str | None = None
    custom_objects: str | None = None
    replay: bool | None = None
    # Safety (kdiag.limits, graph_trust): `trust_model = true` (or trust-model) is --trust-model;
    # `caps = {archive-bytes = "40GiB"}` is --cap, as Limits field values. Options win.
    trust_model: bool | None = None
    caps: dict[str, int] = field(default_factory=dict)
    source: str | None = None  # the file these came from
    # atol/rtol written as a table: output name -> tolerance (the table's `default` is atol/rtol)
    atol_by_output: dict[str, float] = field(default_factory=dict)
    rtol_by_output: dict[str, float] = field(default_factory=dict)


KNOWN_KEYS = tuple(f.name for f in fields(CheckConfig)
                   if f.name not in ("source", "atol_by_output", "rtol_by_output"))
_PATH_KEYS = ("model", "golden", "code", "custom_objects")
_STR_KEYS = ("framework_version", "signature_name", "endpoint")


def find_config(start: Path | None = None) -> Path | None:
    """The configuration file that applies to `start` (default: the working directory)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        for name in CONFIG_FILES:
            p = folder / name
            if p.is_file() and (name == "kdiag.toml" or _has_tool_table(p)):
                return p
        if (folder / ".git").exists():
            break
    return None


def _has_tool_table(p: Path) -> bool:
    try:
        return "kdiag" in (_read_toml(p).get("tool") or {})
    except KdiagError:
        return False


def _read_toml(p: Path) -> dict[str, Any]:
    try:
        with open(p, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise KdiagError(f"{p} is not valid TOML: {e}.") from None
    except OSError as e:
        raise KdiagError(f"Cannot read {p}: {e.strerror}.") from None


def load_config(path: str | Path | None = None, *, start: Path | None = None) -> CheckConfig:
    """Read the settings for `kdiag check`: from `path` when given, else from the file
    `find_config` finds; an empty CheckConfig when there is none."""
    if path is None:
        found = find_config(start)
        if found is None:
            return CheckConfig()
        p = found
    else:
        p = Path(path)
        if not p.is_file():
            raise KdiagError(f"Configuration file {p} does not exist.")
    doc = _read_toml(p)
    if p.name == "pyproject.toml" or "tool" in doc:
        table = (doc.get("tool") or {}).get("kdiag")
        if table is None:
            if p.name == "pyproject.toml":
                raise KdiagError(f"{p} has no [tool.kdiag] table.")
            table = {k: v for k, v in doc.items() if k != "tool"}
    else:
        table = doc
    if not isinstance(table, dict):
        raise KdiagError(f"{p}: [tool.kdiag] must be a table.")
    return parse_table(table, base=p.parent, source=str(p))


def parse_table(table: dict[str, Any], *, base: Path, source: str = "config") -> CheckConfig:
    """Check types and names of every key and resolve paths against `base`."""
    if "trust-model" in table and "trust_model" not in table:  # spelled as the flag
        table = {("trust_model" if k == "trust-model" else k): v for k, v in table.items()}
    unknown = sorted(set(table) - set(KNOWN_KEYS))
    if unknown:
        raise KdiagError(f"{source}: unknown key(s) in [tool.kdiag]: {', '.join(unknown)}. "
                         f"Known keys: {', '.join(KNOWN_KEYS)}.")
    cfg = CheckConfig(source=source)
    for key in _PATH_KEYS:
        if key in table:
            setattr(cfg, key, _path(base, _str(table, key, source)))
    for key in _STR_KEYS:
        if key in table:
            setattr(cfg, key, _str(table, key, source))
    if "content_types" in table:
        cfg.content_types = _str_list(table, "content_types", source)
    if "expect_output" in table:
        cfg.expect_output = _expectations(table["expect_output"], source)
    if "payloads" in table:
        cfg.payloads = _payloads(table["payloads"], base, source)
    for key in ("atol", "rtol"):
        if key in table:
            default, by_output = _tolerance(table[key], key, source)
            setattr(cfg, key, default)
            setattr(cfg, f"{key}_by_output", by_output)
    if "fail_on" in table:
        v = _str(table, "fail_on", source)
        if v not in FAIL_ON:
            raise KdiagError(f"{source}: fail_on must be one of {', '.join(FAIL_ON)} (got {v!r}).")
        cfg.fail_on = v
    if "replay" in table:
        if not isinstance(table["replay"], bool):
            raise KdiagError(f"{source}: replay must be true or false.")
        cfg.replay = table["replay"]
    if "trust_model" in table:
        if not isinstance(table["trust_model"], bool):
            raise KdiagError(f"{source}: trust_model must be true or false "
                             f"(got {table['trust_model']!r}).")
        cfg.trust_model = table["trust_model"]
    if "caps" in table:
        from kdiag.limits import parse_cap_table

        cfg.caps = parse_cap_table(table["caps"], where=f"{source}: caps")
    return cfg


def _tolerance(v: Any, key: str, source: str) -> tuple[float | None, dict[str, float]]:
    """`atol = 1e-4` (every output), or a table of output name -> tolerance with an optional
    `default` for the rest: `atol = {default = 1e-5, logits = 1e-3}`, the file's spelling of
    `--atol 1e-5 --atol logits=1e-3`."""
    if not isinstance(v, dict):
        return _tolerance_number(v, key, key, source), {}
    if not v:
        raise KdiagError(f"{source}: {key} is an empty table; write {key} = 1e-5, or "
                         f"{key} = {{default = 1e-5, OUTPUT = 1e-3}}.")
    default = None
    by_output: dict[str, float] = {}
    for name, x in v.items():
        number = _tolerance_number(x, f"{key}.{name}", key, source)
        if name == "default":
            default = number
        else:
            by_output[name] = number
    return default, by_output


def _tolerance_number(x: Any, where: str, key: str, source: str) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float) or not (
            x >= 0 and math.isfinite(x)):
        raise KdiagError(f"{source}: {where} must be a number >= 0 (got {x!r}); write "
                         f"{key} = 1e-5 for every output, or a table of output names with an "
                         f"optional default: {key} = {{default = 1e-5, logits = 1e-3}}.")
    return float(x)


def _str(table: dict, key: str, source: str) -> str:
    v = table[key]
    if not isinstance(v, str) or not v.strip():
        raise KdiagError(f"{source}: {key} must be a non-empty string (got {v!r}).")
    return v.strip()


def _str_list(table: dict, key: str, source: str) -> list[str]:
    v = table[key]
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
        raise KdiagError(f"{source}: {key} must be a list of strings (got {v!r}).")
    return [x.strip() for x in v]


def _path(base: Path, value: str) -> str:
    """Resolve against the config's folder; show it relative to the working directory."""
    p = Path(value).expanduser()
    if not p.is_absolute():
        p = base / p
    p = Path(os.path.normpath(p.absolute()))
    try:
        return p.relative_to(Path.cwd().absolute()).as_posix() or "."
    except ValueError:
        return str(p)


def _expectations(v: Any, source: str) -> list[str]:
    """Strings NAME:DTYPE:SHAPE, or tables {name, dtype, shape}; returned as strings."""
    items = v if isinstance(v, list) else [v]
    out = []
    for item in items:
        if isinstance(item, str) and item.strip():
            out.append(item.strip())
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            extra = set(item) - {"name", "dtype", "shape"}
            if extra:
                raise KdiagError(f"{source}: expect_output entries take name, dtype, shape "
                                 f"(unknown: {', '.join(sorted(extra))}).")
            shape = item.get("shape")
            if shape is not None and not (isinstance(shape, list) and all(
                    isinstance(d, int) and not isinstance(d, bool) for d in shape)):
                raise KdiagError(f"{source}: expect_output shape must be a list of integers "
                                 f"(-1 for any size), got {shape!r}.")
            dims = "*" if shape is None else ",".join(str(d) for d in shape) or "()"
            out.append(f"{item['name']}:{item.get('dtype') or '*'}:{dims}")
        else:
            raise KdiagError(f"{source}: expect_output entries are strings like "
                             f"\"score:float32:-1,1\" or tables {{name, dtype, shape}}; got {item!r}.")
    return out


def _payloads(v: Any, base: Path, source: str) -> list[PayloadEntry]:
    if not isinstance(v, list):
        raise KdiagError(f"{source}: payloads must be a list of {{file, content_type}} tables.")
    out = []
    for item in v:
        if isinstance(item, str) and item.strip():
            out.append(PayloadEntry(_path(base, item.strip())))
            continue
        if not isinstance(item, dict) or not isinstance(item.get("file"), str):
            raise KdiagError(f"{source}: each payloads entry needs a file, e.g. "
                             "{file = \"examples/request.json\", content_type = "
                             f"\"application/json\"}}; got {item!r}.")
        extra = set(item) - {"file", "content_type"}
        if extra:
            raise KdiagError(f"{source}: payloads entries take file and content_type "
                             f"(unknown: {', '.join(sorted(extra))}).")
        ct = item.get("content_type")
        if ct is not None and (not isinstance(ct, str) or not ct.strip()):
            raise KdiagError(f"{source}: content_type of {item['file']} must be a string.")
        out.append(PayloadEntry(_path(base, item["file"]), ct))
    return out
