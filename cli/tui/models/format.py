"""Numbers, dates, coordinates and errors as the short text the views show (no widgets here).

Means with their errors are written by :func:`mfphys.stats.format_stat`; what is here is the
TUI's own: a number squeezed into a heatmap cell, a date to the minute, an error on one line.
"""

from __future__ import annotations

import numpy as np


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (for a sidebar line or a notice)."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def short_date(text) -> str:
    """``2026-11-27T04:04:36+00:00`` -> ``2026-11-27 04:04`` (as stored, no time-zone conversion)."""
    text = str(text or "")
    return text[:16].replace("T", " ")


def duration(seconds: float) -> str:
    """A time left as a person reads it: ``42s``, ``3m05s``, ``2h05m``, ``3d04h``."""
    s = max(int(round(float(seconds))), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def short(v, width: int = 6) -> str:
    """A number in at most ``width`` characters (``0.1234``, ``1.2e-4``, ``nan``)."""
    if v is None or not np.isfinite(v):
        return "nan"
    v = float(v)
    if v == 0:
        return "0"
    if v.is_integer() and abs(v) < 10 ** width:
        return str(int(v))
    if 1e-3 <= abs(v) < 10 ** width - 0.5:
        for digits in range(4, -1, -1):
            s = f"{v:.{digits}f}"
            if len(s) <= width:
                return s
    for digits in range(2, -1, -1):
        s = f"{v:.{digits}e}".replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")
        if len(s) <= width:
            return s
    return f"{v:.0e}"[:width]


def plain(v):
    """A NumPy scalar as the Python value (a scanned coordinate in a CSV cell or a status line)."""
    return v.item() if hasattr(v, "item") else v


def coord_label(v) -> str:
    """A scanned coordinate as a heatmap label: ``400`` for 400.0, else as stored."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(plain(v))


def mean_sem_rows(labels, stats) -> list[list]:
    """Table rows ``[label, mean_1, sem_1, mean_2, sem_2, ...]``: one per label, from ``stats`` =
    [(mean, sem), ...] arrays indexed like ``labels``."""
    return [[label] + [x for mean, sem in stats for x in (mean[i], sem[i])] for i, label in enumerate(labels)]


def middle_ellipsis(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut in the middle: default run names differ at
    their ends (``...-seed0-20261127-042936``), so both ends are kept."""
    text = str(text)
    if len(text) <= width or width < 5:
        return text[:max(width, 0)]
    tail = (width - 1) // 2 + 2  # a little more of the end: the time stamp
    head = width - 1 - tail
    return text[:head] + "…" + text[len(text) - tail:]


def shell_path(path) -> str:
    """A path to paste into a command typed in the current folder: relative to it when the
    path is under it (``runs/a.nc``), else absolute; quoted for the shell when it needs it."""
    import shlex
    from pathlib import Path

    full = Path(path).absolute()
    try:
        text = str(full.relative_to(Path.cwd()))
    except ValueError:
        text = str(full)
    return shlex.quote(text)
