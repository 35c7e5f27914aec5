"""Helpers shared by the CLI commands: one-line errors, parsing, consoles."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

import typer
from rich.console import Console, ConsoleDimensions
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from mfphys.errors import MfphysError
from mfphys.fileio import quote

#: the width of tables written to a pipe or a file: wide enough that no table of ours wraps
PIPE_WIDTH = 1000


class _Console(Console):
    """A rich console that does not squeeze tables when its output is not a terminal.

    Rich takes the width of whichever standard stream is a terminal, or ``COLUMNS``, or 80:
    piped through ``less`` or into a file, a table would be cut to that width, its ``±``
    values wrapped over lines and long file names shortened. Written to a pipe or a file, a
    table is as wide as its content (up to :data:`PIPE_WIDTH`): a terminal's width (and
    ``COLUMNS``, which describes one) says nothing about a file.
    """

    @property
    def size(self) -> ConsoleDimensions:
        dims = Console.size.fget(self)
        if not self.is_terminal:
            return ConsoleDimensions(PIPE_WIDTH, dims.height)
        return dims

    @size.setter
    def size(self, new_size) -> None:
        Console.size.fset(self, new_size)

    def on_broken_pipe(self) -> None:
        """The reader closed the pipe (``mfphys order run.nc | head``): what it read is all it
        wanted; end quietly with exit 0 (rich's own choice is exit 1)."""
        _silence_stdout()
        raise SystemExit(0)

    def _check_buffer(self) -> None:
        try:
            super()._check_buffer()
        except BrokenPipeError:
            raise
        except OSError as exc:  # standard output on a full disk (> /dev/full): one line, not a traceback
            raise OutputError(exc.errno, exc.strerror or str(exc)) from None


class OutputError(OSError):
    """Standard output (or error) could not be written; :func:`user_errors` makes it one line."""


console = _Console(soft_wrap=True)  # long lines (paths) stay whole, for copy and paste
err_console = _Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 2):
    """Print one clear line on stderr and exit non-zero."""
    err_console.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that the interpreter's last flush of what could
    not be written raises nothing more at exit."""
    with contextlib.suppress(OSError, ValueError, AttributeError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def user_errors(fn):
    """Turn :class:`MfphysError` (and Ctrl-C) into one stderr line and an exit code.

    The edges of the output too (docs/guarantees.md "The process"): a reader that closed the
    pipe (``mfphys order run.nc | head``) ends the command quietly with exit 0, what it read
    being all it wanted; standard output on a full disk (``> /dev/full``) is one error line."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MfphysError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("interrupted", markup=False)
            raise typer.Exit(130) from None
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(0) from None
        except OutputError as exc:
            _silence_stdout()
            fail(f"cannot write the output: {exc.strerror or exc}", 2)

    return wrapper


def parse_ints(text: str, option: str) -> tuple[int, ...]:
    """``784,100,10`` -> (784, 100, 10), or one clear error naming the option."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise MfphysError(f"{option} must be comma-separated integers like 784,100,100,10, got {quote(text)}") from None
    if any(v <= 0 for v in values):
        raise MfphysError(f"{option} must be positive integers, got {quote(text)}")
    return values


def given_options(ctx: typer.Context, names=None) -> set[str]:
    """The options (parameter names) given on the command line, of ``names`` (None: all the command's).

    The one definition of "given" every command uses: a value from the command line (or an
    environment variable) is given; a default, declared or from a ``default_map``, is not. So an
    option can show its real default in ``--help`` (``[default: 100]``) while a value the user did
    not give stays "not given" (a preset, a TOML file, a resumed file's configuration applies).
    """
    def given(name):
        source = ctx.get_parameter_source(name)
        return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")

    return {k for k in (ctx.params if names is None else names) if given(k)}


def given_values(ctx: typer.Context, names) -> dict:
    """``name -> value as text`` for the options of ``names`` given on the command line, None for the others."""
    given = given_options(ctx, names)
    return {k: str(ctx.params[k]) if k in given else None for k in names}


def option_flag(name: str) -> str:
    """The command-line spelling of a parameter name: ``n_train`` -> ``--n-train``."""
    return "--" + name.replace("_", "-")


def counts_text(c: dict) -> str:
    """The cell counts of a scan event, adding up to the total (the bar shows finished/total before them).

    A scan event's ``pending`` counts the cells not finished yet, the running ones included.
    """
    return (f"cells: {c['done']} done, {c['running']} running, {c['pending'] - c['running']} pending, "
            f"{c['failed']} failed")


def blas_limit(threads: int | None):
    """A context that runs BLAS on ``threads`` threads (None: unchanged), as scan cells do.

    On a machine shared with other jobs, one or two BLAS threads per process often beat one per
    core; OpenBLAS's sums also depend on the thread count (docs/scans.md).
    """
    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(threads)


def is_tty() -> bool:
    return sys.stderr.isatty()


def command_line() -> str:
    """The command as the user typed it (``mfphys train --epochs 5``), for a file's ``history``."""
    return "mfphys " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def calibration_text() -> str:
    """How a time estimate was made, and how the load of the machine enters it: the calibration
    ran at the load average of now, and the run takes longer if the load rises (docs/cli.md "How long")."""
    try:
        load = f" at load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    except (AttributeError, OSError):
        load = ""
    return f"calibrated on this machine now{load}; more load, more time"


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


def run_path(stem: str, name: str | None = None) -> Path:
    """``runs/<name>.nc``, or ``runs/<stem>-<time>.nc`` (time to the second) made unique with
    ``-2``, ``-3``, ...: a default name tells runs apart and never replaces an existing file."""
    import datetime as _dt

    if name is not None:
        return Path("runs") / f"{name}.nc"
    stem = f"{stem}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    path, k = Path("runs") / f"{stem}.nc", 1
    while path.exists():
        k += 1
        path = Path("runs") / f"{stem}-{k}.nc"
    return path
