"""The edges of the ``mfphys`` process (docs/guarantees.md "The process"): a Ctrl-C while the
command is still importing its libraries ends it with the one line ``interrupted`` and exit
code 130, as a Ctrl-C later does, not a KeyboardInterrupt traceback.

Installed by ``mfphys/__init__.py`` only when this process *is* the ``mfphys`` command (its
console script, or ``python -m mfphys``): a script or test that imports mfphys keeps Python's
own behaviour.
"""

from __future__ import annotations

import os
import sys


def is_command() -> bool:
    """Whether this process runs the ``mfphys`` command (not a script importing the library)."""
    argv0 = os.path.basename(sys.argv[0]) if sys.argv else ""
    orig = getattr(sys, "orig_argv", [])
    return argv0 == "mfphys" or (len(orig) >= 3 and orig[1] == "-m" and orig[2] == "mfphys")


def _hook(exc_type, exc, tb) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        try:
            sys.stderr.write("interrupted\n")
            sys.stderr.flush()
        finally:
            os._exit(130)  # nothing was started yet: no files to close, no state to save
    sys.__excepthook__(exc_type, exc, tb)


def install() -> None:
    if is_command() and sys.excepthook is sys.__excepthook__:
        sys.excepthook = _hook
