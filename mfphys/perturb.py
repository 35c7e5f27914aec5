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

Everything above the "storage edge" section is a pure function of plain arrays (no xarray);
:func:`perturb_run` (run file in) and :func:`perturbation_dataset` (``xarray.Dataset`` out)
are the storage edge.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import xarray as xr

from . import __version__, model, order, store
from .backend import EVAL, SELECT_VARIABLE, SELECT_VIP, get_backend, replica_rngs
from .errors import MfphysError
from .fileio import utc_now
from .train import evaluate_sampled, load_data

#: rank given to connections outside a candidate pool (never removed)
NOT_CANDIDATE = np.iinfo(np.int64).max


class PerturbResult(NamedTuple):
    """Outcome of :func:`perturbation`; errors are in percent. F fractions, R replicas, K draws."""

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


def candidates(layer: model.Layer, *, tol: float = order.TOL, xi_tol: float = order.XI_TOL, live=None):
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


def remove(layer: model.Layer, mask) -> model.Layer:
    """The layer with the connections in ``mask`` absent (``pi = 1``: spike only, docs/model.md section 1)."""
    return layer._replace(pi=np.where(mask, np.ones((), dtype=layer.pi.dtype), layer.pi))


def evaluate_errors(params, x, y, *, samples: int, seed: int, activation: str = "relu", be=None):
    """Test error in percent: per sampled sub-network (R, K) and of the mean-field net (R,).

    The sampling generators are re-created from ``seed`` on every call (common random
    numbers across conditions, see the module docstring).
    """
    be = be or get_backend("numpy", str(params[0].m.dtype))
    R = params[0].m.shape[0]
    acc, _ = evaluate_sampled(params, x, y, n_draws=samples, rngs=replica_rngs(seed, R, EVAL),
                              activation=activation, be=be)
    logits = model.predict(tuple(model.Layer(*(be.asarray(v) for v in l)) for l in params), be.asarray(x),
                           activation=activation)
    acc_mf = be.to_numpy((logits.argmax(axis=-1) == be.xp.asarray(y)).mean(axis=-1))
    return 100 * (1 - np.asarray(acc, dtype=float)), 100 * (1 - np.asarray(acc_mf, dtype=float))


def check_fractions(fractions) -> np.ndarray:
    f = np.asarray(fractions, dtype=float).ravel()
    if f.size == 0 or not np.all(np.isfinite(f)) or f.min() < 0 or f.max() > 1:
        raise MfphysError(f"fractions must be numbers in [0, 1], got {f.tolist()}")
    return f


def check_arguments(n_layers: int, layer: int, samples: int, fractions) -> np.ndarray:
    """Validate the experiment's arguments (one clear line each); returns the fractions."""
    if not 1 <= layer <= n_layers:
        raise MfphysError(f"--layer must be between 1 and {n_layers} for this {n_layers}-layer run, got {layer}")
    if samples < 1:
        raise MfphysError(f"--samples must be at least 1, got {samples}")
    return check_fractions(fractions)


def perturbation(params, layer: int, fractions, x, y, *, samples: int = 10, seed: int = 0,
                 tol: float = order.TOL, xi_tol: float = order.XI_TOL, live=None, activation: str = "relu",
                 be=None, callback: Callable[[], None] | None = None) -> PerturbResult:
    """Run the experiment of docs/model.md section 7.3 on ``layer`` (1-based) of ``params``.

    ``params``: host arrays of all layers, (R, N_out, N_in) each; ``x``, ``y``: the test
    set; ``live``: (N_in,) mask of the layer's inputs allowed as candidates (None: all).
    ``callback`` is called after each of the ``2 F + 1`` evaluations (progress bars).
    """
    fractions = check_arguments(len(params), layer, samples, fractions)

    def errors(layer_params):
        ps = params[: layer - 1] + (layer_params,) + params[layer:]
        return evaluate_errors(ps, x, y, samples=samples, seed=seed, activation=activation, be=be)

    return targeted_removal(params[layer - 1], errors, fractions, samples=samples, seed=seed, tol=tol,
                            xi_tol=xi_tol, live=live, callback=callback)


def targeted_removal(target: model.Layer, errors, fractions, *, samples: int, seed: int,
                     tol: float = order.TOL, xi_tol: float = order.XI_TOL, live=None,
                     callback: Callable[[], None] | None = None) -> PerturbResult:
    """The experiment on one matrix of connections, whatever network it belongs to.

    ``target``: the (R, N_out, N_in) layer whose connections are removed; ``errors(layer)``
    gives the test errors in percent, (R, samples) sampled and (R,) mean-field, of the network
    with ``layer`` in place of ``target`` (a feed-forward layer, or a matrix of a recurrent
    network, docs/model-rnn.md section 9); ``live``: a mask broadcast against (N_out, N_in),
    False where a connection is no candidate. Everything else as in :func:`perturbation`.
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


def check_model(ds, run_path) -> None:
    """Refuse a recurrent run: it has matrices, not layers (``mfphys.rnn.perturb.perturb_run``,
    docs/model-rnn.md section 9)."""
    if store.model_of(ds.attrs) != "ffn":
        raise MfphysError(f"{run_path} is a recurrent run (model rnn): it has matrices, not layers; "
                          f"mfphys.rnn.perturb.perturb_run (mfphys perturb --matrix) takes it "
                          f"(docs/model-rnn.md section 9)")


def check_mode(cfg, run_path, allow_bp: bool = False) -> None:
    """Refuse a BP run (unless ``allow_bp``): with pi = Xi = 0 every connection is very important
    and none is variable, so the control arm removes nothing and the comparison means nothing
    (docs/model.md section 7.3)."""
    if cfg.mode == "bp" and not allow_bp:
        raise MfphysError(f"{run_path} is a BP run: every connection is very important (pi = Xi = 0) and none is "
                          f"variable, so there is no control to compare with; --allow-bp runs it anyway")


def perturb_run(run_path, *, layer: int = 1, fractions=FRACTIONS, samples: int = 10, seed: int | None = None,
                tol: float | None = None, xi_tol: float | None = None, exact: bool = False,
                all_inputs: bool = False, backend: str = "auto", data_dir=None,
                callback: Callable[[], None] | None = None, command: str | None = None,
                allow_bp: bool = False, dataset=None):
    """The whole experiment on a run file: an ``xarray.Dataset`` (not written; see ``store.write_atomic``).

    Reads the run's parameters and configuration, loads its test set (``train.load_data``,
    ``data_dir`` as for training), and runs :func:`perturbation`. Defaults: the run's seed,
    the tolerances its order parameters were computed with (``order_tolerances``), and in
    layer 1 only connections from live inputs (``all_inputs=True`` keeps dead ones).
    A BP run is refused unless ``allow_bp`` (:func:`check_mode`). ``dataset``: the run's data,
    already loaded (``train.load_data``). Everything is validated before the data are loaded.
    """
    run_path = Path(run_path)
    ds = store.open_trained_run(run_path)
    check_model(ds, run_path)
    params = store.params_from_dataset(ds)
    fractions = check_arguments(len(params), layer, samples, fractions)
    t = store.run_tolerances(ds, tol=tol, xi_tol=xi_tol, exact=exact)
    cfg = store.config_from_dataset(ds)
    check_mode(cfg, run_path, allow_bp)
    seed = cfg.seed if seed is None else int(seed)
    live = None if (all_inputs or layer != 1) else store.live_inputs(ds)
    be = get_backend(backend, cfg.dtype)
    data = dataset if dataset is not None else load_data(cfg, data_dir)
    result = perturbation(params, layer, fractions, data.x_test, data.y_test, samples=samples, seed=seed,
                          tol=t["tol"], xi_tol=t["xi_tol"], live=live, activation=cfg.activation, be=be,
                          callback=callback)
    now = utc_now()
    return perturbation_dataset(result, attrs={
        "title": f"targeted perturbation of layer {layer}: {run_path.name}",
        "source": str(run_path), "dataset": str(ds.attrs.get("dataset", "")),
        "architecture": str(ds.attrs.get("architecture", "")), "layer": layer, "tol": t["tol"],
        "xi_tol": t["xi_tol"], "seed": seed, "samples": samples,
        "candidates": "live inputs only" if live is not None else "all inputs",
        "dead_inputs_excluded": 0 if live is None else int((~live).sum()),
        "backend": be.describe(), "config": ds.attrs["config"], "created": now,
        "history": f"{now} {command or 'mfphys.perturb.perturb_run'}",
    })


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
    ds.attrs = {store.KIND_ATTR: KIND, "mfphys_version": __version__,
                "capped": int(bool(np.any(r.n_removed_variable < r.n_removed))),
                **{k: json.dumps(v) if isinstance(v, dict) else v for k, v in attrs.items()}}
    return ds
