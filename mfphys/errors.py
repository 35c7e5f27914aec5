"""The one exception type for user mistakes (the project's error convention).

Anything the user can fix (a bad option, a missing file, a diverging run) is raised as
:class:`MfphysError`; the CLI prints its message as one line on stderr and exits non-zero.
Internal bugs are ordinary exceptions and keep their traceback.
"""

from __future__ import annotations

#: how much of a value given by the user a message quotes (:func:`quote`), and the longest message
QUOTE_CHARS = 80
MESSAGE_CHARS = 4000


def clip(text, limit: int = QUOTE_CHARS) -> str:
    """``str(text)`` cut to a bounded prefix: a message never echoes megabytes of input."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text):,} characters)"


def quote(value, limit: int = QUOTE_CHARS) -> str:
    """``repr(value)`` (a path as it is), cut to a bounded prefix (:func:`clip`)."""
    from pathlib import PurePath

    return clip(str(value) if isinstance(value, PurePath) else repr(value), limit)


class MfphysError(Exception):
    """A user-facing error: the message is one clear line saying what is wrong and what to do.

    Values are quoted through :func:`quote` (a bounded prefix); a message longer than
    :data:`MESSAGE_CHARS` all the same is cut in its middle, so its start and its advice stay."""

    #: process exit code the CLI uses for this error
    exit_code: int = 2

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], str) and len(args[0]) > MESSAGE_CHARS:
            text, half = args[0], MESSAGE_CHARS // 2
            args = (f"{text[:half]} ...({len(text) - 2 * half:,} characters left out)... {text[-half:]}",)
        super().__init__(*args)


class DivergenceError(MfphysError):
    """Training produced a non-finite loss or parameter."""

    exit_code = 3
