"""The targeted-perturbation experiment (docs/model.md section 7.3).

In one layer, remove (set ``pi = 1``) a fraction ``f`` of the *very important* connections
(``pi <= tol`` and ``Xi <= xi_tol``, :func:`mfphys.order.categories`), chosen at random; as
the control, remove the same *number* of connections chosen at random among the *variable*
ones. The test error (%) is measured on sampled sub-networks (docs/model.md section 5, mean over
``samples`` draws) and on the noise-free mean-field network. The paper's finding: removing
important connections hurts far more.

Choices, each a named parameter (docs/order-parameters.md says why):

- **nested removals**: each replica draws one random order of its candidates per pool, and
  fraction ``f`` removes the first ``round(f * n)`` of that order, so the removed set grows
  with ``f`` (the curve is not re-randomised at every point, and does not depend on the
  grid);
- **common random numbers**: every evaluation re-creates the same per-replica sampling
  generators (``backend.replica_rngs(seed, R, EVAL)``, as ``mfphys train`` uses for
  ``test_acc_sampled``), so all fractions and both arms see the same noise draws and differ
  only by the removed connections; with the run's seed and ``samples = eval_samples``,
  ``f = 0`` reproduces the run's ``test_acc_sampled`` exactly;
- **dead inputs** (docs/model.md section 6): by default, in layer 1 only connections from inputs
  that vary over the training set are candidates. A connection from a constant-zero pixel
  is "variable" (it kept its initial ``Xi``) but removing it changes nothing, which would
  make the control look harmless for a trivial reason (``live=None`` keeps them);
- **cap**: when a layer has fewer variable connections than the VIP count to match, the
  control removes all of them and ``n_removed_variable < n_removed`` records it.

This module holds the experiment on one weight matrix, whatever the network
(:func:`targeted_removal`, pure functions of plain arrays) and its dataset
(:func:`perturbation_dataset`, the storage edge); it names no model family. Each family says
how to evaluate its network with one matrix changed (``mfphys/models/<name>/perturb.py``), and
:func:`mfphys.perturb.perturb_run` runs the experiment on any run file.
"""

from __future__ import annotations

import json
from typing import Callable, NamedTuple

import numpy as np
import xarray as xr

from . import __version__, order
from .backend import SELECT_VARIABLE, SELECT_VIP, replica_rngs
from .errors import MfphysError
from .layers import Layer
from .storage import KIND_ATTR

#: rank given to connections outside a candidate pool (never removed)
NOT_CANDIDATE = np.iinfo(np.int64).max


class PerturbResult(NamedTuple):
    """Outcome of :func:`targeted_removal`; errors are in percent. F fractions, R replicas, K draws."""

    fractions: np.ndarray  # (F,)
    n_vip: np.ndarray  # (R,) very important candidates in the layer
    n_variable: np.ndarray  # (R,) variable candidates in the layer
    n_removed: np.ndarray  # (F, R) very important connections removed = the number to match
    n_removed_variable: np.ndarray  # (F, R) variable connections removed (capped at n_variable)
    error_vip: np.ndarray  # (F, R, K) test error of each sampled sub-network, VIP removed
    error_variable: np.ndarray  # (F, R, K) the same, variable removed (control)
    error_vip_mf: np.ndarray  # (F, R) noise-free mean-field test error, VIP removed
    error_variable_mf: np.ndarray  # (F, R) the same, variable removed
    error_base: np.ndarray  # (R, K) unperturbed network, sampled
    error_base_mf: np.ndarray  # (R,) unperturbed network, mean-field


def candidates(layer: Layer, *, tol: float = order.TOL, xi_tol: float = order.XI_TOL, live=None):
    """Masks (vip, variable), each (R, N_out, N_in), of the connections that may be removed.

    ``live``: optional (N_in,) boolean; connections from inputs where it is False are in
    neither pool (dead inputs of layer 1, see the module docstring). An (N_out, N_in) mask
    works the same way per connection (the recurrent diagonal, docs/model-rnn.md section 9).
    """
    vip, _, variable = order.categories(np.asarray(layer.pi), np.asarray(layer.xi), tol=tol, xi_tol=xi_tol)
    if live is not None:
        live = np.asarray(live, dtype=bool)
        vip, variable = vip & live, variable & live
    return vip, variable


def random_ranks(mask, rngs) -> np.ndarray:
    """A random order of each replica's candidates: ranks 0..n_r-1 where ``mask`` (R, ...) is
    True, :data:`NOT_CANDIDATE` elsewhere. ``rank < k`` then selects k candidates at random."""
    R = mask.shape[0]
    flat = mask.reshape(R, -1)
    ranks = np.full(flat.shape, NOT_CANDIDATE, dtype=np.int64)
    for r, rng in enumerate(rngs):
        idx = np.flatnonzero(flat[r])
        ranks[r, idx[rng.permutation(idx.size)]] = np.arange(idx.size)
    return ranks.reshape(mask.shape)


def removal_counts(fractions, n_candidates) -> np.ndarray:
    """``round(f * n)`` for every fraction (F,) and replica (R,) -> (F, R) integers (half up)."""
    f = np.asarray(fractions, dtype=float)[:, None]
    return np.floor(f * np.asarray(n_candidates)[None, :] + 0.5).astype(np.int64)


def remove(layer: Layer, mask) -> Layer:
    """The layer with the connections in ``mask`` absent (``pi = 1``: spike only, docs/model.md section 1)."""
    return layer._replace(pi=np.where(mask, np.ones((), dtype=layer.pi.dtype), layer.pi))


def check_fractions(fractions) -> np.ndarray:
    f = np.asarray(fractions, dtype=float).ravel()
    if f.size == 0 or not np.all(np.isfinite(f)) or f.min() < 0 or f.max() > 1:
        raise MfphysError(f"fractions must be numbers in [0, 1], got {f.tolist()}")
    return f


def targeted_removal(target: Layer, errors, fractions, *, samples: int, seed: int,
                     tol: float = order.TOL, xi_tol: float = order.XI_TOL, live=None,
                     callback: Callable[[], None] | None = None) -> PerturbResult:
    """The experiment on one matrix of connections, whatever network it belongs to.

    ``target``: the (R, N_out, N_in) layer whose connections are removed; ``errors(layer)``
    gives the test errors in percent, (R, samples) sampled and (R,) mean-field, of the network
    with ``layer`` in place of ``target`` (a feed-forward layer, or a matrix of a recurrent
    network, docs/model-rnn.md section 9); ``live``: a mask broadcast against (N_out, N_in),
    False where a connection is no candidate. ``samples`` sampled networks per evaluation, ``seed`` the random choices'
    streams (``SELECT_VIP``, ``SELECT_VARIABLE``); ``callback`` is called after each of the ``2 F + 1`` evaluations.
    """
    fractions = check_fractions(fractions)
    R = target.pi.shape[0]
    vip, variable = candidates(target, tol=tol, xi_tol=xi_tol, live=live)
    n_vip, n_var = vip.sum(axis=(1, 2)), variable.sum(axis=(1, 2))
    rank_vip = random_ranks(vip, replica_rngs(seed, R, SELECT_VIP))
    rank_var = random_ranks(variable, replica_rngs(seed, R, SELECT_VARIABLE))
    n_removed = removal_counts(fractions, n_vip)
    n_removed_var = np.minimum(n_removed, n_var[None, :])

    def evaluate(layer_params):
        out = errors(layer_params)
        if callback is not None:
            callback()
        return out

    base, base_mf = evaluate(target)
    F = len(fractions)
    err = {k: np.zeros((F, R, samples)) for k in ("vip", "variable")}
    err_mf = {k: np.zeros((F, R)) for k in ("vip", "variable")}
    for i in range(F):
        for arm, ranks, n in (("vip", rank_vip, n_removed[i]), ("variable", rank_var, n_removed_var[i])):
            err[arm][i], err_mf[arm][i] = evaluate(remove(target, ranks < n[:, None, None]))
    return PerturbResult(fractions, n_vip, n_var, n_removed, n_removed_var, err["vip"], err["variable"],
                         err_mf["vip"], err_mf["variable"], base, base_mf)


# --- storage edge ------------------------------------------------------------------------------

#: the paper's grid, f = 0, 0.1, ..., 1
FRACTIONS = np.round(np.arange(11) / 10, 12)


def check_mode(cfg, run_path, allow_bp: bool = False) -> None:
    """Refuse a BP run (unless ``allow_bp``): with pi = Xi = 0 every connection is very important
    and none is variable, so the control arm removes nothing and the comparison means nothing
    (docs/model.md section 7.3)."""
    if cfg.mode == "bp" and not allow_bp:
        raise MfphysError(f"{run_path} is a BP run: every connection is very important (pi = Xi = 0) and none is "
                          f"variable, so there is no control to compare with; --allow-bp runs it anyway")


KIND = "perturbation"

_VARS = {
    "error_vip": ("test error of sampled sub-networks (mean over samples), very important connections removed",
                  "%"),
    "error_vip_sample": ("test error of each sampled sub-network, very important connections removed", "%"),
    "error_variable": ("test error of sampled sub-networks (mean over samples), the same number of variable "
                       "connections removed (control)", "%"),
    "error_variable_sample": ("test error of each sampled sub-network, variable connections removed", "%"),
    "error_vip_mf": ("noise-free mean-field test error, very important connections removed", "%"),
    "error_variable_mf": ("noise-free mean-field test error, variable connections removed", "%"),
    "n_removed": ("very important connections removed (round(fraction * n_vip)); the control matches it",
                  "connections"),
    "n_removed_variable": ("variable connections removed (= n_removed unless capped at n_variable)",
                           "connections"),
    "n_vip": ("very important candidate connections in the layer", "connections"),
    "n_variable": ("variable candidate connections in the layer", "connections"),
    "error_base": ("test error of sampled sub-networks (mean over samples), unperturbed", "%"),
    "error_base_sample": ("test error of each sampled sub-network, unperturbed", "%"),
    "error_base_mf": ("noise-free mean-field test error, unperturbed", "%"),
}


def perturbation_dataset(result: PerturbResult, *, attrs: dict):
    """The ``xarray.Dataset`` of a :class:`PerturbResult` (dims fraction, replica, sample).

    ``attrs`` (source run, layer, tolerances, configuration JSON, ...) are stored as given,
    plus ``mfphys_kind = "perturbation"``; dict values are stored as JSON strings.
    """
    r = result
    F, R, K = r.error_vip.shape
    fr, frs = ("fraction", "replica"), ("fraction", "replica", "sample")
    data = {
        "error_vip": (fr, r.error_vip.mean(axis=-1)),
        "error_vip_sample": (frs, r.error_vip),
        "error_variable": (fr, r.error_variable.mean(axis=-1)),
        "error_variable_sample": (frs, r.error_variable),
        "error_vip_mf": (fr, r.error_vip_mf),
        "error_variable_mf": (fr, r.error_variable_mf),
        "n_removed": (fr, r.n_removed),
        "n_removed_variable": (fr, r.n_removed_variable),
        "n_vip": (("replica",), r.n_vip),
        "n_variable": (("replica",), r.n_variable),
        "error_base": (("replica",), r.error_base.mean(axis=-1)),
        "error_base_sample": (("replica", "sample"), r.error_base),
        "error_base_mf": (("replica",), r.error_base_mf),
    }
    variables = {k: xr.Variable(d, np.asarray(v), attrs=dict(zip(("long_name", "units"), _VARS[k])))
                 for k, (d, v) in data.items()}
    coords = {"fraction": ("fraction", np.asarray(r.fractions, dtype=float),
                           {"long_name": "fraction of the very important connections removed", "units": "1"}),
              "replica": np.arange(R), "sample": np.arange(K)}
    ds = xr.Dataset(variables, coords=coords)
    ds.attrs = {KIND_ATTR: KIND, "mfphys_version": __version__,
                "capped": int(bool(np.any(r.n_removed_variable < r.n_removed))),
                **{k: json.dumps(v) if isinstance(v, dict) else v for k, v in attrs.items()}}
    return ds
