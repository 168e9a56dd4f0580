"""The one exception type that means "the user gave us something we cannot use".

The CLI catches :class:`UserError`, prints its message as one line on stderr and exits
with status 2. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    """Bad input from the user: unknown names, out-of-range numbers, unreadable files."""


def clip(value: Any, limit: int = 80) -> str:
    """``value`` for an error message, at most ``limit`` characters, on one line.

    User data is never formatted whole: only scalars and strings are shown (their text cut to
    ``limit``); anything else is named by its type, so a crafted deep or self-referencing
    structure cannot make the message itself expensive.
    """
    if isinstance(value, (bool, int, float)):
        text = repr(value) if not isinstance(value, int) or value.bit_length() <= 256 else f"<an integer of {value.bit_length()} bits>"
    elif isinstance(value, (str, bytes)):
        text = repr(value[: limit + 1])
    else:
        size = f" of {len(value)}" if isinstance(value, (list, tuple, dict, set)) else ""
        text = f"<a {type(value).__name__}{size}>"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
