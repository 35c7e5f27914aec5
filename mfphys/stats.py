"""Numbers as physicists read them: mean +/- standard error over replicas."""

from __future__ import annotations

import math

import numpy as np


def mean_err(values) -> tuple[float, float]:
    """Mean and standard error of the mean of ``values`` (NaNs ignored; error 0 for one value)."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan
    err = v.std(ddof=1) / math.sqrt(v.size) if v.size > 1 else 0.0
    return float(v.mean()), float(err)


def sample_std(values, axis: int = 0) -> np.ndarray:
    """Standard deviation over ``axis`` with Bessel's correction (ddof = 1); 0 where there is one
    value (NaN stays NaN).

    The spread over replicas (seeds) that every figure, table and dataset of mfphys reports;
    with xarray: ``da.reduce(sample_std, dim="replica")``.
    """
    a = np.asarray(values, dtype=float)
    if a.shape[axis] > 1:
        return a.std(axis=axis, ddof=1)
    return a.take(0, axis=axis) * 0.0


def format_stat(values, digits: int | None = None) -> str:
    """``0.9561 ± 0.0012``: the error with two significant digits and the mean to match."""
    mean, err = mean_err(values)
    if math.isnan(mean):
        return "nan"
    if math.isfinite(err) and err <= 1e-12 * max(1.0, abs(mean)):
        err = 0.0  # equal replicas leave rounding noise (1e-17), not a spread worth 8 digits
    if digits is None:
        digits = 4 if err == 0 or not math.isfinite(err) else max(0, 1 - int(math.floor(math.log10(err))))
        digits = min(digits, 8)
    if err == 0:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {err:.{digits}f}"


def replica_stats(values, axis: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, standard deviation, standard error and count of the finite values along ``axis``,
    vectorised (:func:`mean_err` for every slice at once): NaNs and infinities are left out.

    Returns ``(mean, std, sem, n)``, each shaped like ``values`` without ``axis``. Where there is
    no finite value all three are NaN; with one, ``mean`` is that value, ``std`` is NaN (no
    spread can be measured) and ``sem`` is 0 (as in :func:`mean_err`); otherwise ``std`` has
    Bessel's correction (ddof = 1, as :func:`sample_std`) and ``sem = std / sqrt(n)``. The sums run
    along a contiguous axis, so with finite values the numbers are those of :func:`mean_err`.
    """
    a = np.ascontiguousarray(np.moveaxis(np.asarray(values, dtype=float), axis, -1))
    finite = np.isfinite(a)
    n = finite.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.where(finite, a, 0.0).sum(axis=-1)
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
        dev = np.where(finite, a - mean[..., None], 0.0)
        std = np.where(n > 1, np.sqrt((dev * dev).sum(axis=-1) / np.maximum(n - 1, 1)), np.nan)
        sem = np.where(n > 1, std / np.sqrt(np.maximum(n, 1)), np.where(n == 1, 0.0, np.nan))
    return mean, std, sem, n
