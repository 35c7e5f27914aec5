"""Numbers, dates and errors as short text (cli/tui/models/format.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mfphys.cli.tui.models.format import coord_label, one_line, plain, short, short_date


@pytest.mark.parametrize("v, width, text", [(0.123456, 6, "0.1235"), (2.0, 6, "2"), (1e-5, 6, "1.0e-5"),
                                            (123456.7, 6, "123457"), (float("nan"), 6, "nan"), (0.0, 4, "0")])
def test_short_numbers_fit(v, width, text):
    assert short(v, width) == text and len(text) <= width


def test_dates_coordinates_and_errors():
    assert short_date("2026-11-27T04:04:36+00:00") == "2026-11-27 04:04" and short_date(None) == ""
    assert (coord_label(np.float64(400.0)), coord_label(np.int64(3)), coord_label("relu")) == ("400", "3", "relu")
    assert type(plain(np.int64(3))) is int and plain("x") == "x"
    assert one_line(ValueError("first\nsecond")) == "first" and one_line(ValueError()) == "ValueError"
