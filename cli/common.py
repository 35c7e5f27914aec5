"""Helpers shared by the CLI commands: one-line errors, parsing, consoles."""

from __future__ import annotations

import contextlib
import functools
import shlex
import signal
import sys
import threading

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from mfphys.errors import MfphysError

console = Console(soft_wrap=True)  # long lines (paths) stay whole, for copy and paste
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2):
    """Print one clear line on stderr and exit non-zero."""
    err_console.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


def user_errors(fn):
    """Turn :class:`MfphysError` (and Ctrl-C) into one stderr line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MfphysError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("interrupted", markup=False)
            raise typer.Exit(130) from None

    return wrapper


def parse_ints(text: str, option: str) -> tuple[int, ...]:
    """``784,100,10`` -> (784, 100, 10), or one clear error naming the option."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise MfphysError(f"{option} must be comma-separated integers like 784,100,100,10, got {text!r}") from None
    if any(v <= 0 for v in values):
        raise MfphysError(f"{option} must be positive integers, got {text!r}")
    return values


def is_tty() -> bool:
    return sys.stderr.isatty()


def command_line() -> str:
    """The command as the user typed it (``mfphys train --epochs 5``), for a file's ``history``."""
    return "mfphys " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def make_progress(*, transient: bool = False, quiet: bool = False) -> Progress:
    """The one progress-bar layout of every long loop: description, bar, n/N, status, time, eta.

    Bars go to stderr, so tables and results on stdout stay clean when piped.
    """
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("eta"),
                    TimeRemainingColumn(), console=err_console, transient=transient, disable=quiet)


@contextlib.contextmanager
def stop_on_ctrl_c(message: str = "stopping after this epoch (Ctrl-C again to stop at once)"):
    """Yield ``stop()``: the first Ctrl-C only makes it true (the loop finishes its step and
    saves), a second one interrupts at once (``KeyboardInterrupt``). Outside the main thread,
    where no signal handler can be set, Ctrl-C interrupts at once as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    asked = []

    def handler(signum, frame):
        if asked:
            signal.default_int_handler(signum, frame)
        asked.append(True)
        err_console.print(message, markup=False)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(asked)
    finally:
        signal.signal(signal.SIGINT, previous)
