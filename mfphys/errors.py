"""The one exception type for user mistakes (the project's error convention).

Anything the user can fix (a bad option, a missing file, a diverging run) is raised as
:class:`MfphysError`; the CLI prints its message as one line on stderr and exits non-zero.
Internal bugs are ordinary exceptions and keep their traceback.
"""

from __future__ import annotations


class MfphysError(Exception):
    """A user-facing error: the message is one clear line saying what is wrong and what to do."""

    #: process exit code the CLI uses for this error
    exit_code: int = 2


class DivergenceError(MfphysError):
    """Training produced a non-finite loss or parameter."""

    exit_code = 3
