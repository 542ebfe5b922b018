"""User-facing errors.

Anything a user can cause with a bad flag, path or file raises :class:`LaomError`; the
CLI turns it into one line on stderr and a non-zero exit, so nobody has to read a
traceback to learn which value was wrong.
"""

from __future__ import annotations


class LaomError(Exception):
    """A problem with the user's input, reported as one line (no traceback)."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`LaomError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise LaomError(message)
