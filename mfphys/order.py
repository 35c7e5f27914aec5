"""Order parameters of a trained ensemble (docs/model.md section 6).

Pure functions of the parameter arrays ``pi``, ``m``, ``xi`` of one layer, shaped
``(R, N_out, N_in)`` (replica first); every per-layer quantity is returned per replica,
shape ``(R,)``. Thresholds are named parameters with documented defaults:

- ``tol = 0.01``: ``pi <= tol`` counts as "always present", ``pi >= 1 - tol`` as absent;
- ``xi_tol = 1e-4``: ``Xi <= xi_tol`` counts as deterministic (very important);
- ``xi_zero = 1e-8``: below this the slab is treated as a point mass in the entropy
  (the reference code's threshold).

``tol = xi_tol = 0`` gives the reference code's exact-equality categories, which the hard
projection of docs/model.md section 4 makes meaningful.
"""

from __future__ import annotations

import math

import numpy as np

from .backend import namespace_of, to_host
from .errors import MfphysError
from .model import moments

TOL = 0.01
XI_TOL = 1e-4
XI_ZERO = 1e-8

#: the per-layer scalar order parameters every run file carries (public schema, docs/file-format.md)
SCALARS = ("sparsity", "frac_vip", "frac_uip", "frac_variable", "mean_pi", "mean_xi", "weight_var", "entropy")

#: ``sparsity`` and ``frac_uip`` are the same set, pi >= 1 - tol (docs/order-parameters.md): files
#: keep both names, tables and plots show one, under this label
DISPLAY_NAMES = {"frac_uip": "frac_uip (= sparsity)", "sparsity": "frac_uip (= sparsity)"}


def display_name(name: str) -> str:
    """How tables and plots label an order parameter (one label for sparsity and frac_uip)."""
    return DISPLAY_NAMES.get(name, name)


def categories(pi, xi, *, tol: float = TOL, xi_tol: float = XI_TOL):
    """Boolean masks (vip, uip, variable) of docs/model.md section 6; they partition the connections.

    very important: ``pi <= tol`` and ``Xi <= xi_tol``; unimportant: ``pi >= 1 - tol``
    (checked first, so a connection is never both); variable: the rest.
    """
    uip = pi >= 1 - tol
    vip = (pi <= tol) & (xi <= xi_tol) & ~uip
    return vip, uip, ~(vip | uip)


def entropy(pi, m, xi, *, xi_zero: float = XI_ZERO):
    """Entropy per connection in nats, elementwise, in closed form (docs/model.md section 6).

    For ``Xi > xi_zero``::

        S = -pi ln(pi + (1 - pi) N(0; m, Xi)) - (1 - pi) ln(1 - pi) + (1 - pi) ln(2 pi e Xi) / 2

    which is the exact expectation of the reference code's Monte-Carlo estimator
    ``-E[ln P(w)]`` (a spike draw scores the spike mass plus the slab density at 0, a slab
    draw the slab density alone). For ``Xi <= xi_zero`` the slab is a point at ``m``: the
    binary entropy ``-pi ln pi - (1-pi) ln(1-pi)`` when ``m != 0`` and ``0 < pi < 1``, else 0
    (spike and slab coincide, or one of them has no mass).
    """
    xp = namespace_of(pi, m, xi)
    q = 1 - pi
    slab = xi > xi_zero
    xis = xp.where(slab, xi, 1)  # keep the logs finite where the branch is not taken
    dens0 = xp.exp(-m * m / (2 * xis)) / xp.sqrt(2 * math.pi * xis)
    with np.errstate(divide="ignore", invalid="ignore"):
        qlnq = xp.where(q > 0, q * xp.log(xp.where(q > 0, q, 1)), 0)
        plnp = xp.where(pi > 0, pi * xp.log(xp.where(pi > 0, pi, 1)), 0)
        spike_term = xp.where(pi > 0, pi * xp.log(xp.where(pi > 0, pi + q * dens0, 1)), 0)
    s_slab = -spike_term - qlnq + q * 0.5 * xp.log(2 * math.pi * math.e * xis)
    s_point = xp.where(m != 0, -plnp - qlnq, 0)
    return xp.where(slab, s_slab, s_point)


def layer_order(pi, m, xi, *, tol: float = TOL, xi_tol: float = XI_TOL, xi_zero: float = XI_ZERO, mask=None,
                median: bool = True):
    """The scalar order parameters of one layer, each ``(R,)`` (public schema, docs/file-format.md).

    ``mask``: optional boolean (N_out, N_in) or (N_in,) selection of connections (e.g. those
    from inputs that vary in the training set); the averages run over the selected ones.

    - ``sparsity``: fraction with ``pi >= 1 - tol``; ``mean_pi``: mean of ``pi``;
    - ``frac_vip``, ``frac_uip``, ``frac_variable``: the categories (sum to 1);
    - ``mean_xi``: mean ``Xi`` over present connections (``pi < 1 - tol``), NaN if none;
    - ``weight_var``: mean weight variance ``var`` (docs/model.md section 1);
    - ``entropy``: mean entropy per connection (nats), with ``entropy_median`` and the
      fractions of connections in each entropy regime: ``frac_point`` (``Xi <= xi_zero``).

    ``median=False`` leaves out ``entropy_median`` (a sort of every connection: the one costly
    part, skipped by the samples taken during training, :func:`training_order`).
    """
    xp = namespace_of(pi, m, xi)
    if mask is None:
        sel = xp.ones(pi.shape[1:], dtype=bool)
    else:
        sel = xp.broadcast_to(xp.asarray(mask, dtype=bool), pi.shape[1:])
    count = max(int(sel.sum()), 1)

    def mean(a):
        return (a * sel).sum(axis=(-1, -2)) / count

    vip, uip, variable = categories(pi, xi, tol=tol, xi_tol=xi_tol)
    _, var = moments(pi, m, xi)
    present = (~uip) & sel
    n_present = present.sum(axis=(-1, -2))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_xi = xp.where(n_present > 0, (xi * present).sum(axis=(-1, -2)) / xp.maximum(n_present, 1), xp.nan)
    S = entropy(pi, m, xi, xi_zero=xi_zero)
    out = {
        "sparsity": mean(uip),
        "frac_vip": mean(vip),
        "frac_uip": mean(uip),
        "frac_variable": mean(variable),
        "mean_pi": mean(pi),
        "mean_xi": mean_xi,
        "weight_var": mean(var),
        "entropy": mean(S),
        "frac_point": mean(xi <= xi_zero),
    }
    if median:
        out["entropy_median"] = xp.median(S.reshape(S.shape[0], -1)[:, sel.reshape(-1)], axis=-1)
    return out


def histogram(values, edges):
    """Per-replica histogram counts of ``values`` (R, ...) over ``edges`` -> (R, len(edges)-1).

    Values outside the range land in the first or last bin, so every connection is counted.
    """
    xp = namespace_of(values)
    v = values.reshape(values.shape[0], -1)
    if xp is not np:  # the edges where the values are: CuPy's searchsorted takes no host array
        edges = xp.asarray(edges)
    idx = xp.clip(xp.searchsorted(edges, v, side="right") - 1, 0, len(edges) - 2)
    out = xp.zeros((v.shape[0], len(edges) - 1), dtype=np.int64)
    for r in range(v.shape[0]):
        out[r] = xp.bincount(idx[r], minlength=len(edges) - 1)
    return out


#: histogram bins of pi, m and Xi per layer
N_BINS = 40


def run_order(params, *, live_inputs=None, tol: float = TOL, xi_tol: float = XI_TOL, xi_zero: float = XI_ZERO):
    """Order parameters of every layer of a run: name -> (R, L) arrays.

    Besides the :func:`layer_order` scalars at the given tolerances it adds
    ``frac_vip_exact``, ``frac_uip_exact``, ``frac_variable_exact`` (the reference code's
    exact equality, ``tol = xi_tol = 0``) and, when ``live_inputs`` (N_0,) is given,
    ``<name>_live`` versions in which layer 1 counts only connections from inputs that vary
    over the training set (docs/model.md section 6, dead inputs; deeper layers are unchanged).
    """
    xp = namespace_of(params[0].m)
    reports = layer_reports(params, live_inputs=live_inputs, tol=tol, xi_tol=xi_tol, xi_zero=xi_zero)
    out: dict[str, list] = {}
    for l, inputs, values in reports:
        if inputs == "live":
            continue
        rows = dict(values)
        if live_inputs is not None:  # layer 1 over live inputs; deeper layers unchanged
            live = next((v for ll, i, v in reports if ll == l and i == "live"), values)
            rows.update({f"{k}_live": v for k, v in live.items() if not k.endswith("_exact")})
        for k, v in rows.items():
            out.setdefault(k, []).append(v)
    return {k: xp.stack(v, axis=-1) for k, v in out.items()}


def training_order(params, *, live_inputs=None, tol: float = TOL, xi_tol: float = XI_TOL,
                   xi_zero: float = XI_ZERO):
    """The order parameters a run records while it trains (its dynamics, docs/file-format.md):
    name -> (R, L) arrays for every name of :data:`SCALARS` and, when ``live_inputs`` (N_0,) is
    given, ``<name>_live`` (layer 1 over live inputs, deeper layers unchanged).

    The same numbers as :func:`run_order`'s entries of these names (the same
    :func:`layer_order` calls), without the medians and exact-equality categories it adds.
    """
    xp = namespace_of(params[0].m)
    out: dict[str, list] = {}
    for l, (pi, m, xi) in enumerate(params, start=1):
        values = layer_order(pi, m, xi, tol=tol, xi_tol=xi_tol, xi_zero=xi_zero, median=False)
        rows = {k: values[k] for k in SCALARS}
        if live_inputs is not None:
            live = values if l > 1 else layer_order(pi, m, xi, tol=tol, xi_tol=xi_tol, xi_zero=xi_zero,
                                                    mask=live_inputs, median=False)
            rows.update({f"{k}_live": live[k] for k in SCALARS})
        for k, v in rows.items():
            out.setdefault(k, []).append(v)
    return {k: xp.stack(v, axis=-1) for k, v in out.items()}


#: the epochs of the histogram snapshots a run records (docs/file-format.md): log-spaced
SNAPSHOT_BASE = (1, 2, 5)


def snapshot_epochs(epochs: int) -> tuple[int, ...]:
    """0 (the initial parameters), 1, 2, 5, 10, 20, 50, 100, ... below ``epochs``, and ``epochs``."""
    out, scale = [0], 1
    while scale < epochs:
        out += [b * scale for b in SNAPSHOT_BASE if b * scale < epochs]
        scale *= 10
    return tuple(out) + (epochs,)


def histogram_edges(params, n_bins: int = N_BINS):
    """Common bin edges for pi ([0, 1]), m (symmetric about 0) and Xi ([0, max]) of a run."""
    m_max = max(float(abs(layer.m).max()) for layer in params) or 1.0
    xi_max = max(float(layer.xi.max()) for layer in params) or 1.0
    return {
        "pi": np.linspace(0.0, 1.0, n_bins + 1),
        "m": np.linspace(-m_max, m_max, n_bins + 1),
        "xi": np.linspace(0.0, xi_max, n_bins + 1),
    }


def layer_reports(params, *, live_inputs=None, tol: float = TOL, xi_tol: float = XI_TOL, xi_zero: float = XI_ZERO):
    """What ``mfphys order`` shows: one entry ``(layer, inputs, values)`` per column.

    ``values`` maps each :func:`layer_order` name, plus ``frac_vip_exact``, ``frac_uip_exact``
    and ``frac_variable_exact`` (``tol = xi_tol = 0``), to a (R,) array. ``inputs`` is
    ``"all"``; when ``live_inputs`` (N_0,) is given, layer 1 gets a second entry with
    ``inputs = "live"`` over the connections from inputs that vary over the training set
    (docs/model.md section 6, dead inputs).
    """
    out = []
    for l, (pi, m, xi) in enumerate(params, start=1):
        masks = [("all", None)]
        if l == 1 and live_inputs is not None:
            masks.append(("live", live_inputs))
        for inputs, mask in masks:
            values = dict(layer_order(pi, m, xi, tol=tol, xi_tol=xi_tol, xi_zero=xi_zero, mask=mask))
            exact = layer_order(pi, m, xi, tol=0.0, xi_tol=0.0, xi_zero=xi_zero, mask=mask)
            for k in ("frac_vip", "frac_uip", "frac_variable"):
                values[f"{k}_exact"] = exact[k]
            out.append((l, inputs, values))
    return out


def resolve_tolerances(stored=None, *, tol=None, xi_tol=None, xi_zero=None, exact: bool = False) -> dict:
    """The thresholds to use: those given, else ``stored`` (a run file's ``order_tolerances``),
    else the defaults; ``exact`` sets ``tol = xi_tol = 0``. Raises MfphysError for bad values."""
    if exact and (tol is not None or xi_tol is not None):
        raise MfphysError("--exact means --tol 0 --xi-tol 0: give either --exact or --tol/--xi-tol")
    t = {"tol": TOL, "xi_tol": XI_TOL, "xi_zero": XI_ZERO, **(stored or {})}
    for name, v in (("tol", tol), ("xi_tol", xi_tol), ("xi_zero", xi_zero)):
        if v is not None:
            t[name] = float(v)
    if exact:
        t["tol"] = t["xi_tol"] = 0.0
    if not (0 <= t["tol"] < 0.5):
        raise MfphysError(f"--tol must be in [0, 0.5) (pi <= tol: present, pi >= 1 - tol: absent), got {t['tol']}")
    for name in ("xi_tol", "xi_zero"):
        if not (t[name] >= 0 and math.isfinite(t[name])):
            raise MfphysError(f"--{name.replace('_', '-')} must be a number >= 0, got {t[name]}")
    return t


def histogram_snapshot(layers) -> dict:
    """The histograms of pi, m, Xi of every layer (or matrix) at once, as a training run records
    them at its snapshot epochs: ``hist_<k>`` (R, layer, bins) and their ``<k>_edges``, host
    arrays whichever backend ``layers`` live on (what a run file stores)."""
    edges = histogram_edges(layers)
    hists = {f"hist_{k}": np.stack([to_host(histogram(getattr(layer, k), e)) for layer in layers], axis=1)
             for k, e in edges.items()}
    hists.update({f"{k}_edges": e for k, e in edges.items()})
    return hists
