"""Plot widgets drawn with Rich text: braille line plots, bar histograms, a heatmap with a colour bar.

The drawing is split into pure functions (``braille_canvas``, ``bar_columns``, ``colour_at``,
``heatmap_text`` ...) that tests can call with arrays, and thin widgets that call them with
their current size. No data loading here: a view hands each widget plain NumPy arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget

from .models.format import coord_label, short
from .models.scan_grid import Grid

# --- colour scale ------------------------------------------------------------------------------

#: viridis, sampled at 9 evenly spaced points (perceptually uniform, readable in grey)
VIRIDIS = ((68, 1, 84), (71, 45, 123), (59, 82, 139), (44, 114, 142), (33, 145, 140), (40, 174, 128),
           (94, 201, 98), (173, 220, 48), (253, 231, 37))
NAN_BG = "#303030"
STATUS_MARK = {"pending": ("·", "#303030"), "running": ("…", "#5f5f00"), "failed": ("✗", "#870000"),
               "unread": ("+", "#005f5f")}


def colour_at(t: float) -> tuple[int, int, int]:
    """The colour scale at ``t`` in [0, 1] (clipped), linear between the VIRIDIS stops."""
    t = min(1.0, max(0.0, float(t)))
    x = t * (len(VIRIDIS) - 1)
    i = min(int(x), len(VIRIDIS) - 2)
    f = x - i
    a, b = VIRIDIS[i], VIRIDIS[i + 1]
    return tuple(round(a[k] + (b[k] - a[k]) * f) for k in range(3))


def hex_colour(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def ink_for(rgb) -> str:
    """Black or white text, whichever reads better on ``rgb`` (relative luminance)."""
    r, g, b = (c / 255 for c in rgb)
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "white"


def value_range(values: np.ndarray) -> tuple[float, float]:
    """(min, max) of the finite values, widened when they are all equal; (0, 1) when none."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < 1e-12 * max(1.0, abs(hi)):
        pad = 0.5 if lo == 0 else abs(lo) * 0.05
        return lo - pad, hi + pad
    return lo, hi


# --- braille line plot -------------------------------------------------------------------------

#: bit of the braille dot at (x, y) within one character cell (2 wide, 4 tall)
_DOTS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))


@dataclass(frozen=True)
class Series:
    label: str
    x: np.ndarray
    y: np.ndarray
    colour: str


def braille_canvas(series, width: int, height: int, xlim, ylim):
    """Rasterise line series onto ``height`` x ``width`` braille cells.

    Returns ``(bits, owner)``: per cell the braille dot bits and the index of the last series
    that drew there (-1 for none). Consecutive finite points are joined by straight lines;
    a NaN breaks the line.
    """
    W, H = 2 * width, 4 * height
    bits = np.zeros((height, width), dtype=np.int32)
    owner = np.full((height, width), -1, dtype=np.int32)
    (x0, x1), (y0, y1) = xlim, ylim
    sx = (W - 1) / (x1 - x0) if x1 > x0 else 0.0
    sy = (H - 1) / (y1 - y0) if y1 > y0 else 0.0

    def plot(px, py, k):
        if 0 <= px < W and 0 <= py < H:
            r, c = py // 4, px // 2
            bits[r, c] |= _DOTS[px % 2][py % 4]
            owner[r, c] = k

    for k, s in enumerate(series):
        xs = np.asarray(s.x, dtype=float)
        ys = np.asarray(s.y, dtype=float)
        prev = None
        for x, y in zip(xs, ys):
            if not (np.isfinite(x) and np.isfinite(y)):
                prev = None
                continue
            px = round((x - x0) * sx) if sx else W // 2
            py = (H - 1) - round((y - y0) * sy) if sy else H // 2
            if prev is None:
                plot(px, py, k)
            else:
                # Bresenham-like: enough steps that no dot is skipped
                n = max(abs(px - prev[0]), abs(py - prev[1]), 1)
                for i in range(1, n + 1):
                    plot(round(prev[0] + (px - prev[0]) * i / n), round(prev[1] + (py - prev[1]) * i / n), k)
            prev = (px, py)
    return bits, owner


def line_plot_text(series, width: int, height: int, *, title: str = "", ylim=None, xlabel: str = "",
                   legend: bool = True) -> Text:
    """A titled braille plot with y labels at the top and bottom and x labels under the axis.

    ``legend``: the series' labels after the title, in their colours (leave it to the caller
    when the labels are too long for one line: several runs overlaid).
    """
    text = Text(no_wrap=True, overflow="crop")
    head = Text(title, style="bold")
    for s in series if legend else ():
        if s.label:
            head.append("  ")
            head.append("━ " + s.label, style=s.colour)
    head.truncate(width, overflow="ellipsis")  # one line: a long legend must not push the plot down
    text.append_text(head)
    rows = max(height - 2, 1)
    finite_x = [np.asarray(s.x, float)[np.isfinite(np.asarray(s.x, float))] for s in series]
    finite_x = np.concatenate(finite_x) if finite_x else np.zeros(0)
    xlim = (float(finite_x.min()), float(finite_x.max())) if finite_x.size else (0.0, 1.0)
    if ylim is None:
        ylim = value_range(np.concatenate([np.asarray(s.y, float).ravel() for s in series]) if series else [])
    ylab = [short(ylim[1], 7), short(ylim[0], 7)]
    lw = max(len(t) for t in ylab)
    cols = max(width - lw - 1, 2)
    bits, owner = braille_canvas(series, cols, rows, xlim, ylim)
    for r in range(rows):
        text.append("\n")
        label = ylab[0] if r == 0 else ylab[1] if r == rows - 1 else ""
        text.append(label.rjust(lw) + ("┤" if label else "│"), style="dim")
        line = Text()
        for c in range(cols):
            k = owner[r, c]
            line.append(chr(0x2800 + int(bits[r, c])), style=series[k].colour if k >= 0 else None)
        text.append_text(line)
    left, right = short(xlim[0], 6), short(xlim[1], 6)
    axis = " " * lw + "└" + left
    mid = xlabel
    pad = cols - len(left) - len(right) - len(mid)
    axis += " " * max(pad // 2, 1) + mid + " " * max(pad - pad // 2, 1) + right
    text.append("\n")
    text.append(axis[: width], style="dim")
    return text


class LinePlot(Widget):
    """Line plot of a few series (braille dots); set data with :meth:`plot`."""

    DEFAULT_CSS = """
    LinePlot { height: 1fr; width: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.series: list[Series] = []
        self.title = ""
        self.xlabel = ""
        self.legend = True

    def plot(self, series, *, title: str = "", xlabel: str = "", legend: bool = True) -> None:
        self.series, self.title, self.xlabel, self.legend = list(series), title, xlabel, legend
        self.refresh()

    def render(self) -> Text:
        w, h = self.size.width, self.size.height
        if not self.series or w < 8 or h < 3:
            return Text(self.title + "\n(no data)", style="dim")
        return line_plot_text(self.series, w, h, title=self.title, xlabel=self.xlabel, legend=self.legend)


# --- histogram ---------------------------------------------------------------------------------

_BLOCKS = " ▁▂▃▄▅▆▇█"


def bar_columns(counts: np.ndarray, width: int) -> np.ndarray:
    """Counts regrouped into ``<= width`` columns: whole bins repeated, or neighbouring bins summed."""
    counts = np.asarray(counts, dtype=float)
    n = counts.size
    if n == 0 or width <= 0:
        return np.zeros(0)
    if width >= n:
        return np.repeat(counts, width // n)
    group = math.ceil(n / width)
    pad = (-n) % group
    return np.concatenate([counts, np.zeros(pad)]).reshape(-1, group).sum(axis=1)


def bars_text(counts, edges, width: int, height: int, *, title: str = "", colour: str = "cyan") -> Text:
    """Vertical bars (eighth blocks) of ``counts``, the title with the largest count, edge labels below."""
    counts = np.asarray(counts, dtype=float)
    cols = bar_columns(counts, width)
    rows = max(height - 2, 1)
    top = cols.max() if cols.size and cols.max() > 0 else 1.0
    text = Text(no_wrap=True, overflow="crop")
    text.append(title, style="bold")
    text.append(f"  max {int(counts.max()) if counts.size else 0}", style="dim")
    eighths = np.round(cols / top * rows * 8).astype(int)
    for r in range(rows):
        text.append("\n")
        level = (rows - 1 - r) * 8
        line = "".join(_BLOCKS[min(max(e - level, 0), 8)] for e in eighths)
        text.append(line, style=colour)
    left, right = short(edges[0], 6), short(edges[-1], 6)
    text.append("\n")
    text.append((left + " " * max(len(cols) - len(left) - len(right), 1) + right)[:width], style="dim")
    return text


class Bars(Widget):
    """Histogram as vertical bars; set data with :meth:`show`."""

    DEFAULT_CSS = """
    Bars { height: 1fr; width: 1fr; padding: 0 1 0 0; }
    """

    def __init__(self, *, colour: str = "cyan", id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.colour = colour
        self.counts = np.zeros(0)
        self.edges = np.zeros(0)
        self.title = ""

    def show(self, counts, edges, *, title: str = "") -> None:
        self.counts, self.edges, self.title = np.asarray(counts), np.asarray(edges), title
        self.refresh()

    def render(self) -> Text:
        w, h = self.size.width, self.size.height
        if self.counts.size == 0 or w < 4 or h < 3:
            return Text(self.title + "\n(no data)", style="dim")
        return bars_text(self.counts, self.edges, w, h, title=self.title, colour=self.colour)


# --- heatmap -----------------------------------------------------------------------------------


def heatmap_text(grid: Grid, width: int, height: int, *, stat: str = "mean", show_values: bool = False,
                 cursor: tuple[int, int] | None = None) -> Text:
    """The heatmap of ``grid`` (rows x columns), colour scale below, in ``width`` x ``height`` cells.

    Done cells are coloured by the shown statistic (mean or spread over replicas); cells that
    are pending, running or failed show a mark on grey or red; a done cell without a value
    (e.g. a layer the network does not have) shows ``-``. ``show_values`` writes the numbers in.
    """
    shown = grid.shown(stat)
    lo, hi = value_range(shown)
    nr, nc = shown.shape
    row_labels = [coord_label(v) for v in grid.rows]
    lw = max([len(grid.row_dim)] + [len(s) for s in row_labels]) + 1
    cw = max(3, min(9, (width - lw) // max(nc, 1)))
    ch = max(1, min(3, (height - 4) // max(nr, 1)))
    bw = cw - 1  # the coloured block; one blank column between cells
    mid = (ch - 1) // 2
    text = Text(no_wrap=True, overflow="crop")
    if grid.col_dim:
        text.append(" " * lw + grid.col_dim + " →\n", style="dim")
    text.append(grid.row_dim.rjust(lw - 1) + " ", style="bold")
    for j in range(nc):
        text.append(coord_label(grid.cols[j])[:bw].center(bw) + " ", style="bold")
    for i in range(nr):
        for k in range(ch):
            text.append("\n")
            text.append((row_labels[i] if k == mid else "").rjust(lw - 1) + " ", style="bold")
            for j in range(nc):
                status = str(grid.status[i, j])
                v = shown[i, j]
                if status in STATUS_MARK:
                    mark, bg = STATUS_MARK[status]
                    body, style = mark, Style(color="white", bgcolor=bg)
                elif not np.isfinite(v):
                    body, style = "-", Style(color="grey62", bgcolor=NAN_BG)
                else:
                    rgb = colour_at((v - lo) / (hi - lo))
                    body = short(v, bw) if show_values else ""
                    style = Style(color=ink_for(rgb), bgcolor=hex_colour(rgb))
                here = cursor == (i, j)
                if here:  # the cursor: colours swapped, and a pointer in the gap
                    style += Style(reverse=True, bold=True)
                text.append((body if k == mid else "").center(bw), style=style)
                text.append("◂" if here and k == mid else " ", style="bold")
    # colour bar
    text.append("\n\n")
    bar_w = max(min(width - lw - 20, 40), 8)
    text.append(" " * lw)
    text.append(short(lo, 8) + " ", style="bold")
    for x in range(bar_w):
        text.append(" ", style=Style(bgcolor=hex_colour(colour_at(x / (bar_w - 1)))))
    text.append(" " + short(hi, 8), style="bold")
    text.append("\n" + " " * lw)
    text.append("· pending  … running  ✗ failed  + done, not read yet  - no value", style="dim")
    return text


class Heatmap(Widget, can_focus=True):
    """Heatmap of a scan :class:`~mfphys.cli.tui.models.scan_grid.Grid`; arrow keys move a cursor over the cells."""

    DEFAULT_CSS = """
    Heatmap { height: 1fr; width: 1fr; }
    Heatmap:focus { background: $boost; }
    """
    BINDINGS = [
        Binding("up", "move(-1, 0)", "cell up", show=False),
        Binding("down", "move(1, 0)", "cell down", show=False),
        Binding("left", "move(0, -1)", "cell left", show=False),
        Binding("right", "move(0, 1)", "cell right", show=False),
    ]

    class CursorMoved(Message):
        def __init__(self, heatmap: Heatmap, cursor: tuple[int, int]):
            super().__init__()
            self.heatmap = heatmap
            self.cursor = cursor

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.grid: Grid | None = None
        self.stat = "mean"
        self.show_values = False
        self.cursor = (0, 0)

    def show(self, grid: Grid, *, stat: str, show_values: bool) -> None:
        self.grid, self.stat, self.show_values = grid, stat, show_values
        nr, nc = grid.mean.shape
        self.cursor = (min(self.cursor[0], nr - 1), min(self.cursor[1], nc - 1))
        self.refresh()

    def action_move(self, dr: int, dc: int) -> None:
        if self.grid is None:
            return
        nr, nc = self.grid.mean.shape
        self.cursor = (min(max(self.cursor[0] + dr, 0), nr - 1), min(max(self.cursor[1] + dc, 0), nc - 1))
        self.refresh()
        self.post_message(self.CursorMoved(self, self.cursor))

    def render(self) -> Text:
        if self.grid is None:
            return Text("(no scan loaded)", style="dim")
        return heatmap_text(self.grid, self.size.width, self.size.height, stat=self.stat,
                            show_values=self.show_values, cursor=self.cursor)
