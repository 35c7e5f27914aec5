"""The targeted perturbation of a feed-forward run (docs/model.md section 7.3): one layer's
very important connections removed against as many variable ones (the experiment itself is
:func:`mfphys.perturbation.targeted_removal`, the choices are described there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ... import order
from ... import storage as store
from ...backend import EVAL, get_backend, replica_rngs
from ...checks import MAX_SAMPLES, check_int, is_int
from ...errors import MfphysError
from ...fileio import utc_now
from ...perturbation import *  # noqa: F403 (the shared experiment's names, as before the move)
from ...perturbation import (
    FRACTIONS,
    PerturbResult,
    check_fractions,
    check_mode,
    perturbation_dataset,
    targeted_removal,
)
from . import model
from .store import check_parameters, config_from_attrs, params_from_dataset
from .train import evaluate_sampled, load_data


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


def check_arguments(n_layers: int, layer: int, samples: int, fractions) -> np.ndarray:
    """Validate the experiment's arguments (one clear line each); returns the fractions."""
    if not 1 <= layer <= n_layers:
        raise MfphysError(f"--layer must be between 1 and {n_layers} for this {n_layers}-layer run, got {layer}")
    if is_int(samples) and samples < 1:
        raise MfphysError(f"--samples must be at least 1, got {samples}")
    check_int("--samples", samples, low=1, high=MAX_SAMPLES)
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
    ds = store.open_family_run(run_path, "ffn", "feed-forward", unlabelled=True)
    check_parameters(ds, run_path)
    params = params_from_dataset(ds)
    fractions = check_arguments(len(params), layer, samples, fractions)
    t = store.run_tolerances(ds, tol=tol, xi_tol=xi_tol, exact=exact)
    cfg = config_from_attrs(ds.attrs, run_path)
    check_mode(cfg, run_path, allow_bp)
    seed = cfg.seed if seed is None else check_int("--seed", seed, low=0)
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
