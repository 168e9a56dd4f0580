"""TOML in and out: Python's tomllib reads, a minimal writer writes flat tables of scalars and lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.untrusted import plain

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


def to_toml(values: dict[str, Any], table: str | None = None) -> str:
    """One table (``[table]`` header unless None) of scalars and lists; None values are omitted."""
    lines = [f"[{_key(table)}]"] if table else []
    for key, value in values.items():
        if value is not None:
            lines.append(f"{_key(key)} = {_value(value)}")
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    bare = key.replace("-", "").replace("_", "").replace(".", "").isalnum()
    return key if bare else _value(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        escaped = "".join(c if c >= " " and c != "\x7f" else f"\\u{ord(c):04x}" for c in escaped)
        return '"' + escaped + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


MAX_DEPTH = 8  # tables and lists within tables: every file the bench writes nests at most 3 deep


def loads(text: str, where: str) -> dict[str, Any]:
    """Parsed TOML, at most MAX_DEPTH levels deep (a crafted "[[[[..." cannot exhaust the stack)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{where} is not valid TOML: {str(exc)[:160]}") from None
    except RecursionError:  # tomllib's parser recurses once per level of nesting
        raise UserError(f"{where} is nested too deep (more than {MAX_DEPTH} levels)") from None
    deep = _too_deep(data)
    if deep is not None:
        raise UserError(f"{where}: {deep} is nested too deep (more than {MAX_DEPTH} levels)")
    return data


def _too_deep(data: dict[str, Any]) -> str | None:
    """The dotted key (``run.x``) whose value nests deeper than MAX_DEPTH (walked without recursion)."""
    stack: list[tuple[Any, int, str]] = [(value, 1, str(key)) for key, value in data.items()]
    while stack:
        item, depth, name = stack.pop()
        if depth > MAX_DEPTH:
            return plain(name, 60)
        if isinstance(item, dict):
            stack.extend((v, depth + 1, f"{name}.{k}") for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, depth + 1, name) for v in item)
    return None


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"config file {path} is a directory") from None
    except UnicodeDecodeError:
        raise UserError(f"config file {path} is not UTF-8 text") from None
    return loads(text, f"config file {path}")
