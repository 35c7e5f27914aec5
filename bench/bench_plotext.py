"""The TUI's hand-written braille plots (cli/tui/widgets.py) against textual-plotext, per refresh.

    pip install textual-plotext && python bench/bench_plotext.py

Renders the same 48 x 12 plot (three curves of 100 points, and on a log y axis; a 40-bin
histogram) as text with each, interleaved, twice, and prints the median milliseconds
(bench/README.md "TUI plots"). textual-plotext is not a dependency of mfphys: this script is the
measurement behind that choice.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
from rich.text import Text

from mfphys.cli.tui.widgets import Series, bars_text, line_plot_text

W, H = 48, 12
RNG = np.random.default_rng(0)
X = np.arange(1, 101)
YS = [np.cumsum(RNG.normal(size=100)) for _ in range(3)]
SERIES = [Series(f"L{i}", X, y, c) for i, (y, c) in enumerate(zip(YS, ["red", "green", "blue"]))]
COUNTS = RNG.integers(0, 1000, 40)
EDGES = np.linspace(0, 1, 41)


def ours_lines():
    line_plot_text(SERIES, W, H, title="frac_vip vs epoch", xlabel="epoch")


def ours_bars():
    bars_text(COUNTS, EDGES, W, H, title="pi")


def _plotext(draw):
    from textual_plotext.plot import Plot

    p = Plot()
    draw(p)
    p.plotsize(W, H)
    p._set_size(W, H)  # as textual_plotext.PlotextPlot.render does
    Text.from_ansi(p.build())


def plotext_lines(log: bool = False):
    def draw(p):
        for i, y in enumerate(YS):
            p.plot(X.tolist(), (np.abs(y) + 0.01 if log else y).tolist(), label=f"L{i}", marker="braille")
        if log:
            p.yscale("log")
        p.title("frac_vip vs epoch")
        p.xlabel("epoch")

    _plotext(draw)


def plotext_bars():
    def draw(p):
        p.bar(((EDGES[:-1] + EDGES[1:]) / 2).tolist(), COUNTS.tolist())
        p.title("pi")

    _plotext(draw)


def median_ms(fn, n: int = 60) -> float:
    fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.1f}")
    for _ in range(2):  # interleaved, twice
        print(f"lines: braille {median_ms(ours_lines):.2f} ms, plotext {median_ms(plotext_lines):.2f} ms, "
              f"plotext log-y {median_ms(lambda: plotext_lines(True)):.2f} ms; "
              f"bars: braille {median_ms(ours_bars):.2f} ms, plotext {median_ms(plotext_bars):.2f} ms")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
