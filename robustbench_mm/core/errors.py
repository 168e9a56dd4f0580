"""The one exception type that means "the user gave us something we cannot use".

The CLI catches :class:`UserError`, prints its message as one line on stderr and exits
with status 2. Everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user: unknown names, out-of-range numbers, unreadable files."""
