"""Settings declared once: a dataclass field carries its type, default, help, range and choices.

Everything else is derived from that one declaration, so a new setting is one line:

* the command-line flags (``cli.py`` turns each :class:`Setting` into an argparse argument);
* ``config.toml`` and preset tables (:func:`to_table` / :func:`from_table`);
* validation with one-line errors (:func:`check`), for the CLI and the Python API alike;
* the command line that reproduces a settings object (:func:`to_argv`, for ``mmbench run --plan``).

A field is declared with :func:`setting`; its Python type annotation gives the kind
(``int``, ``float``, ``str``, ``bool``, ``list[...]`` of those, optionally ``| None``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any

from robustbench_mm.core.errors import UserError
from robustbench_mm.core.untrusted import clip

SPEC = "robustbench_mm.setting"
KINDS = (bool, int, float, str)
MAX_TEXT = 4096  # longest string setting (paths included)
MAX_ITEMS = 1000  # longest list setting


@dataclass(frozen=True)
class Spec:
    """What a field means beyond its type."""

    help: str
    flag: str = ""  # default: --name-with-dashes
    choices: tuple[str, ...] = ()
    low: float | None = None  # smallest allowed value (inclusive unless low_open)
    low_open: bool = False
    high: float | None = None  # largest allowed value (inclusive unless high_open)
    high_open: bool = False
    per_dataset: bool = False  # None stands for the dataset's default
    unique: bool = False  # lists: a repeated value is dropped (the first one stays)
    sort: bool = False  # lists: kept sorted (radii, severities)
    cli: bool = True  # False: recorded in config.toml, never a flag
    aliases: tuple[str, ...] = ()  # further flags accepted for this setting


def setting(default: Any, help: str, **spec: Any) -> Any:
    """A dataclass field with its :class:`Spec` (list defaults are copied per instance)."""
    meta = {SPEC: Spec(help, **spec)}
    if isinstance(default, list):
        return field(default_factory=functools.partial(list, default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Setting:
    """One declared field, resolved from its dataclass: name, kind and spec."""

    name: str
    kind: type  # bool, int, float or str
    is_list: bool
    optional: bool
    default: Any
    spec: Spec

    @property
    def flag(self) -> str:
        return self.spec.flag or "--" + self.name.replace("_", "-")

    def label(self, cli: bool) -> str:
        """How a message names this setting: the flag on the command line, the keyword in Python."""
        return self.flag if cli else self.name


def settings_of(cls: type) -> tuple[Setting, ...]:
    """The declared settings of a dataclass, in declaration order."""
    return _settings_of(cls)


@functools.cache
def _settings_of(cls: type) -> tuple[Setting, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get(SPEC)
        if spec is None:
            continue
        kind, is_list, optional = _kind(hints[f.name], f"{cls.__name__}.{f.name}")
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        out.append(Setting(f.name, kind, is_list, optional, default, spec))
    return tuple(out)


def _kind(hint: Any, where: str) -> tuple[type, bool, bool]:
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        rest = [a for a in args if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else hint
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        if item in KINDS:
            return item, True, optional
    elif hint in KINDS:
        return hint, False, optional
    raise TypeError(f"{where}: unsupported setting type {hint!r}")  # a declaration bug, not user input


def find(cls: type, name: str) -> Setting:
    for s in settings_of(cls):
        if s.name == name:
            return s
    raise KeyError(name)


# ------------------------------------------------------------------------------ values


def parse_text(s: Setting, text: str) -> Any:
    """A command-line string as the setting's value: ``"0.01,0.03"`` -> ``[0.01, 0.03]``."""
    if s.is_list:
        return [_parse_one(s, part.strip()) for part in text.split(",") if part.strip()]
    return _parse_one(s, text)


def _parse_one(s: Setting, text: str) -> Any:
    if s.kind in (int, float):
        return parse_number(text, s.kind, s.flag)
    return text


# ASCII only: Python's int() and float() also take other scripts' digits ("٣" is 3), underscores
# ("1_0") and surrounding blanks, none of which a reader of the command line would take for a number
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
MAX_NUMBER_TEXT = 64  # digits beyond this are no setting's value (and int() of 10**5 digits is slow)


def parse_number(text: str, kind: type, name: str) -> int | float:
    """The one parser of numbers typed by a user: ASCII digits, an int or a finite float."""
    pattern, what = (_INT_TEXT, "an integer") if kind is int else (_FLOAT_TEXT, "a finite number")
    if len(text) > MAX_NUMBER_TEXT or not pattern.fullmatch(text):
        hint = " (in ASCII digits 0-9)" if not text.isascii() else ""
        raise UserError(f"{name} must be {what}{hint}, got {clip(text, 40)}")
    if kind is int:
        return int(text)
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf
        raise UserError(f"{name} must be a finite number, got {clip(text, 40)}")
    return value


def coerce(s: Setting, value: Any, cli: bool) -> Any:
    """Check a value's type and range; normalise lists. Raises a one-line UserError."""
    name = s.label(cli)
    if value is None:
        if s.optional:
            return None
        raise UserError(f"{name} needs a value")
    if s.is_list:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            value = [value]  # the API takes eps=0.1 for [0.1]
        if len(value) > MAX_ITEMS:
            raise UserError(f"{name} has {len(value)} values; at most {MAX_ITEMS}")
        items = [_coerce_one(s, v, name) for v in value]
        if not items:
            raise UserError(f"{name} is empty; give at least one value or leave it out")
        if s.spec.unique or s.spec.sort:
            items = list(dict.fromkeys(items))
        return sorted(items) if s.spec.sort else items
    return _coerce_one(s, value, name)


def _coerce_one(s: Setting, value: Any, name: str) -> Any:
    kind = s.kind
    if kind is bool:
        if not isinstance(value, bool):
            raise UserError(f"{name} must be true or false, got {clip(value)}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{name} must be an integer, got {clip(value)}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{name} must be a number, got {clip(value)}")
        try:
            value = float(value)
        except OverflowError:  # an int past float's range (the API takes ints for floats)
            raise UserError(f"{name} must be a finite number, got an integer of {value.bit_length()} bits") from None
        if not math.isfinite(value):
            raise UserError(f"{name} must be a finite number, got {value}")
    elif kind is str:
        if not isinstance(value, str):
            raise UserError(f"{name} must be text, got {clip(value)}")
        if len(value) > MAX_TEXT or "\0" in value:
            raise UserError(f"{name} is too long or holds a NUL character")
        if s.spec.choices and value not in s.spec.choices:
            raise UserError(f"unknown {name} {clip(value)}; valid: {', '.join(s.spec.choices)}")
        return value
    low, high = s.spec.low, s.spec.high
    if low is not None and (value <= low if s.spec.low_open else value < low):
        raise UserError(f"{name} must be {'>' if s.spec.low_open else '>='} {_bound(low)}, got {clip(value)}")
    if high is not None and (value >= high if s.spec.high_open else value > high):
        raise UserError(f"{name} must be {'<' if s.spec.high_open else '<='} {_bound(high)}, got {clip(value)}")
    return value


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def check(obj: Any, cli: bool = False) -> None:
    """Validate (and normalise) every declared setting of ``obj`` in place."""
    for s in settings_of(type(obj)):
        setattr(obj, s.name, coerce(s, getattr(obj, s.name), cli))


# ------------------------------------------------------------------------------ tables and argv


def to_table(obj: Any) -> dict[str, Any]:
    """The declared settings as a TOML-ready dict (None values omitted)."""
    return {s.name: getattr(obj, s.name) for s in settings_of(type(obj)) if getattr(obj, s.name) is not None}


def from_table(cls: type, table: Any, where: str) -> Any:
    """An instance of ``cls`` from a TOML table; unknown keys and wrong types are UserErrors."""
    if not isinstance(table, dict):
        raise UserError(f"{where} is not a table of settings")
    known = {s.name: s for s in settings_of(cls)}
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise UserError(f"{where}: unknown setting(s) {clip(', '.join(unknown))}")
    values = {k: coerce(known[k], v, cli=False) for k, v in table.items()}
    return cls(**values)


def to_argv(obj: Any, skip: tuple[str, ...] = ()) -> list[str]:
    """Flags that reproduce ``obj`` from the defaults (every value that differs from its default)."""
    argv: list[str] = []
    for s in settings_of(type(obj)):
        value = getattr(obj, s.name)
        if s.name in skip or not s.spec.cli or value == s.default or value is None:
            continue
        if s.kind is bool:
            argv.append(s.flag if value else "--no-" + s.flag[2:])
        else:
            argv += [s.flag, ",".join(map(_text, value)) if s.is_list else _text(value)]
    return argv


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def replace(obj: Any, **changes: Any) -> Any:
    return dataclasses.replace(obj, **changes)


def is_settings(obj: Any) -> bool:
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type) and bool(settings_of(type(obj)))


__all__ = [
    "Setting",
    "Spec",
    "check",
    "coerce",
    "find",
    "from_table",
    "is_settings",
    "parse_number",
    "parse_text",
    "replace",
    "setting",
    "settings_of",
    "to_argv",
    "to_table",
]
