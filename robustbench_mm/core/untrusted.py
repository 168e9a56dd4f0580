"""Values we did not make (metadata read from files): check their types, show them safely.

A message about bad input must never grow with the input. ``repr`` of a crafted value can
take unbounded time and memory: a list nested 60 deep whose levels share references pickles
into a few hundred kilobytes yet has 2**60 leaves, and ``str`` of a 10**6-digit integer is
quadratic. So nothing here calls ``repr``/``str`` on a container or a big number: :func:`clip`
walks at most ``limit`` nodes, and the checkers test types before looking at contents.

The checkers are small combinators (``text(64)``, ``integer(0, 2**32 - 1)``,
``listof(text(255), 100_000)``) that return the value, normalised, or raise :class:`Invalid`
saying what was expected and what was found; the caller names the file and the field.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

Checker = Callable[[Any], Any]

_BIG_INT_BITS = 256  # bigger integers are shown by size, never converted to decimal


class Invalid(Exception):
    """A value failed a checker: ``expected`` (a phrase) and the offending ``got`` and ``where``."""

    def __init__(self, expected: str, got: Any, where: str = "", shown: str | None = None) -> None:
        super().__init__(expected)
        self.expected, self.got, self.where, self.shown = expected, got, where, shown

    def describe(self, field: str) -> str:
        """``field[where] must be <expected>, got <clipped value>``: one bounded line."""
        shown = self.shown if self.shown is not None else clip(self.got, 60)
        return f"{field}{self.where} must be {self.expected}, got {shown}"


# ------------------------------------------------------------------------------ showing


def clip(value: Any, limit: int = 80) -> str:
    """A one-line rendering of ``value`` of at most ``limit`` characters, built in O(limit)."""
    parts: list[str] = []
    _render(value, parts, [limit + 1], depth=3)
    text = "".join(parts)
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def _render(value: Any, out: list[str], budget: list[int], depth: int) -> None:
    if budget[0] <= 0:
        return
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        _render_container(value, out, budget, depth)
        return
    piece = _scalar(value, budget[0])
    out.append(piece)
    budget[0] -= len(piece)


def _scalar(value: Any, room: int) -> str:
    if value is None or isinstance(value, (bool, float)):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if value.bit_length() <= _BIG_INT_BITS else f"<int of {value.bit_length()} bits>"
    if isinstance(value, (str, bytes)):
        return repr(value[: room + 1])  # slice first: repr of the whole could be huge
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):  # tensors and arrays: their size, not their data
        dims = tuple(shape)[:8]
        return (
            f"<{type(value).__name__[:20]} {'x'.join(str(int(d)) for d in dims) or 'scalar'} {str(value.dtype)[:20]}>"
        )
    return f"<{type(value).__name__[:40]}>"


def _render_container(value: Any, out: list[str], budget: list[int], depth: int) -> None:
    opening, closing = "()" if isinstance(value, tuple) else "[]" if isinstance(value, list) else "{}"
    if depth <= 0:
        out.append(f"{opening}…{closing}")
        budget[0] -= 3
        return
    out.append(opening)
    budget[0] -= 1
    items = iter(value.items()) if isinstance(value, dict) else iter(value)
    for index, item in enumerate(items):
        if budget[0] <= 0:
            return
        if index:
            out.append(", ")
            budget[0] -= 2
        if isinstance(value, dict):
            _render(item[0], out, budget, depth - 1)
            out.append(": ")
            budget[0] -= 2
            _render(item[1], out, budget, depth - 1)
        else:
            _render(item, out, budget, depth - 1)
    out.append(closing)
    budget[0] -= 1


def plain(value: Any, limit: int = 80) -> str:
    """A str as itself (control characters escaped, cut to ``limit``); anything else as :func:`clip`."""
    if not isinstance(value, str):
        return clip(value, limit)
    head = value[: limit + 1]
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in head)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def clip_path(path: str | os.PathLike, limit: int = 160) -> str:
    """A path for a message: its tail if long (the tail names the file), control characters escaped."""
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "backslashreplace")
    tail = text if len(text) <= limit else text[-(limit - 1) :]
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in tail)
    return shown if len(text) <= limit else "…" + shown


# ------------------------------------------------------------------------------ checking


def text(max_len: int, min_len: int = 1, printable: bool = True) -> Checker:
    """A str of ``min_len``..``max_len`` characters (without control characters if ``printable``)."""
    expected = f"a{' printable' if printable else ''} text of {min_len} to {max_len} characters"

    def check(value: Any) -> str:
        if (
            not isinstance(value, str)
            or not min_len <= len(value) <= max_len
            or (printable and not value.isprintable())
        ):
            raise Invalid(expected, value)
        return value

    return check


def integer(lo: int, hi: int) -> Checker:
    """An int (not a bool) in [lo, hi]."""
    expected = f"an integer in [{lo}, {hi}]"

    def check(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise Invalid(expected, value)
        return int(value)

    return check


def number(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Checker:
    """A finite int or float (not a bool) between ``lo`` and ``hi``; returned as a float."""
    expected = f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"

    def check(value: Any) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise Invalid(expected, value)
        if isinstance(value, int) and value.bit_length() > 64:
            raise Invalid(expected, value)
        as_float = float(value)
        above = as_float > lo if lo_open else as_float >= lo
        below = as_float < hi if hi_open else as_float <= hi
        if not (math.isfinite(as_float) and above and below):
            raise Invalid(expected, value)
        return as_float

    return check


def listof(item: Checker, max_items: int, min_items: int = 0, item_name: str = "items") -> Checker:
    """A list (or tuple) of ``min_items``..``max_items`` values that each pass ``item``."""
    expected = f"a list of {min_items} to {max_items} {item_name}"

    def check(value: Any) -> list:
        if not isinstance(value, (list, tuple)) or not min_items <= len(value) <= max_items:
            raise Invalid(expected, value)
        checked = []
        for index, element in enumerate(value):
            try:
                checked.append(item(element))
            except Invalid as exc:
                raise Invalid(exc.expected, exc.got, f"[{index}]{exc.where}", exc.shown) from None
        return checked

    return check


def optional(check: Checker) -> Checker:
    """``None`` or a value that passes ``check``."""

    def maybe(value: Any) -> Any:
        if value is None:
            return None
        try:
            return check(value)
        except Invalid as exc:
            raise Invalid(f"{exc.expected} or None", exc.got, exc.where, exc.shown) from None

    return maybe
