"""The pure drawing functions of the plot widgets (cli/tui/widgets.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mfphys.cli.tui.widgets import VIRIDIS, Series, bar_columns, braille_canvas, colour_at, ink_for


def test_colour_scale_runs_from_dark_to_bright():
    assert colour_at(0) == VIRIDIS[0] and colour_at(1) == VIRIDIS[-1]
    assert colour_at(-3) == VIRIDIS[0] and colour_at(7) == VIRIDIS[-1]
    lum = [0.2126 * r + 0.7152 * g + 0.0722 * b for r, g, b in (colour_at(t) for t in np.linspace(0, 1, 50))]
    assert np.all(np.diff(lum) > 0)
    assert (ink_for(colour_at(0)), ink_for(colour_at(1))) == ("white", "black")


def test_braille_canvas_draws_a_diagonal_corner_to_corner():
    bits, owner = braille_canvas([Series("", np.array([0.0, 1.0]), np.array([0.0, 1.0]), "red")], 10, 5,
                                 (0, 1), (0, 1))
    assert bits[4, 0] & 0x40  # bottom-left dot (x=0, y=3 of the last row)
    assert bits[0, 9] & 0x08  # top-right dot (x=1, y=0 of the first row)
    assert (owner >= 0).sum() == (bits > 0).sum() and np.all(bits.any(axis=0))  # one unbroken line


@pytest.mark.parametrize("n, width, total_cols", [(40, 80, 80), (40, 30, 20), (40, 40, 40), (7, 3, 3)])
def test_bar_columns_keep_every_count(n, width, total_cols):
    counts = np.arange(n, dtype=float)
    cols = bar_columns(counts, width)
    assert len(cols) == total_cols <= width
    assert cols.sum() == pytest.approx(counts.sum() * (width // n if width >= n else 1))
