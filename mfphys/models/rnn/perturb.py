"""The targeted-perturbation experiment on one matrix of a recurrent run (docs/model-rnn.md section 9).

The feed-forward experiment of docs/model.md section 7.3 (:mod:`mfphys.perturb`), with a
matrix (input, recurrent or output) in place of a layer: in that matrix, remove (``pi = 1``) a
random fraction ``f`` of the very important connections, nested across fractions and drawn
from ``replica_rngs(seed, R, SELECT_VIP)``, against the control that removes as many random
variable connections (``SELECT_VARIABLE``). The choice of the candidates, the random order, the
counts and the removal are :func:`mfphys.perturb.targeted_removal`'s, shared by both families.

What differs is the evaluation (docs/model-rnn.md section 5): the noise-free mean-field network
(mode ``mean``) and ``samples`` quenched networks per replica, on the run's task. The error in
percent is ``100 (1 - accuracy)``: the MNIST test accuracy of the run's sequences, or for the
multisensory task the psychometric accuracy averaged over the three modalities. Every
evaluation re-creates the generators ``replica_rngs(seed, R, EVAL)`` (common random numbers:
the same test trials, weight draws and private noise for every condition), so ``f = 0`` is the
unperturbed network and, with the run's seed, its mean-field error is the run's stored one.
The sampled draws are not the run's: its evaluation drew the ``noisy`` mode's noise first.

``diagonal=False`` leaves the recurrent self-connections out of both pools (they start at
``m = 1`` in the MNIST presets, section 7), as ``mfphys order --no-diagonal`` leaves them out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ... import __version__, order
from ... import storage as store
from ...backend import EVAL, get_backend, replica_rngs
from ...checks import MAX_SAMPLES, check_int, is_int
from ...errors import MfphysError
from ...fileio import quote, utc_now
from ...layers import Layer
from ...perturbation import (
    FRACTIONS,
    PerturbResult,
    check_fractions,
    check_mode,
    perturbation_dataset,
    targeted_removal,
)
from . import evaluate, tasks
from . import store as rnn_store
from .model import MATRICES, RnnParams
from .order import RECURRENT, offdiagonal
from .store import MODEL

#: the matrix removed from when none is named
DEFAULT_MATRIX = "recurrent"


def check_arguments(matrix: str, samples: int, fractions, *, diagonal: bool = True) -> np.ndarray:
    """Validate the experiment's arguments (one clear line each); returns the fractions."""
    if matrix not in MATRICES:
        raise MfphysError(f"--matrix must be one of {', '.join(MATRICES)}, got {quote(matrix)}")
    if not diagonal and matrix != "recurrent":
        raise MfphysError(f"--no-diagonal leaves out the recurrent self-connections: it needs --matrix recurrent, "
                          f"got --matrix {matrix}")
    if is_int(samples) and samples < 1:
        raise MfphysError(f"--samples must be at least 1, got {samples}")
    check_int("--samples", samples, low=1, high=MAX_SAMPLES)
    return check_fractions(fractions)


def replace_matrix(params: RnnParams, matrix: str, layer: Layer) -> RnnParams:
    return params._replace(**{matrix: layer})


def candidate_mask(params: RnnParams, matrix: str, *, diagonal: bool = True):
    """The per-connection mask of :func:`mfphys.perturb.candidates`: None (every connection), or
    the off-diagonal connections of the recurrent matrix when ``diagonal`` is False."""
    if diagonal:
        return None
    return offdiagonal(params[RECURRENT].m.shape[-1])


def task_inputs(config, *, dataset=None, data_dir=None):
    """The run's test inputs: ``("mnist", x (P, T, N_in), labels)`` from its MNIST test images cut into
    ``config.steps`` steps, or ``("multisensory", None, task)`` (the trials depend on the replica's
    generator and are drawn at every evaluation)."""
    if config.task != "mnist":
        return ("multisensory", None, tasks.Multisensory())
    from ...data import load_dataset

    ds = dataset if dataset is not None else load_dataset("mnist", n_train=config.n_train, n_test=config.n_test,
                                                          data_dir=data_dir)
    return ("mnist", tasks.mnist_sequences(ds.x_test, config.steps), np.asarray(ds.y_test))


def evaluate_errors(params: RnnParams, test, config, *, samples: int, seed: int, be=None):
    """Test error in percent of the recurrent ensemble: quenched networks (R, K) and the noise-free
    mean field (R,), with the generators re-created from ``seed`` (module docstring)."""
    be = be or get_backend("numpy", str(params.recurrent.m.dtype))
    spec, bp, R = config.spec(), config.mode == "bp", params.recurrent.m.shape[0]
    rngs = replica_rngs(seed, R, EVAL)
    dev = RnnParams(*(Layer(*(be.asarray(v) for v in layer)) for layer in params))
    kind, x, labels = test
    if kind == "multisensory":
        trials = tasks.multisensory_trials(labels, rngs, phase="test", repeats=config.test_repeats, dtype=be.dtype)
        x = trials.x
    xd = be.asarray(x)
    accs = []
    for mode in ("mean", "quenched"):
        out = be.to_numpy(evaluate.outputs(dev, xd, spec, mode=mode, rngs=rngs, samples=samples, bp=bp))
        if kind == "mnist":
            accs.append(np.asarray(evaluate.accuracy(out, labels), dtype=float))
        else:  # the psychometric accuracy, averaged over the modalities
            p_high = tasks.psychometric(out[..., -1, :], trials, labels)
            accs.append(np.asarray(tasks.psychometric_accuracy(p_high, labels), dtype=float).mean(axis=-1))
    acc_mf, acc_q = accs
    return 100 * (1 - acc_q), 100 * (1 - acc_mf)


def perturbation(params: RnnParams, matrix: str, fractions, test, config, *, samples: int = 10, seed: int = 0,
                 tol: float = order.TOL, xi_tol: float = order.XI_TOL, diagonal: bool = True, be=None,
                 callback: Callable[[], None] | None = None) -> PerturbResult:
    """The experiment on ``matrix`` of ``params`` (host arrays); ``test`` from :func:`task_inputs`."""
    fractions = check_arguments(matrix, samples, fractions, diagonal=diagonal)

    def errors(layer):
        return evaluate_errors(replace_matrix(params, matrix, layer), test, config, samples=samples, seed=seed, be=be)

    return targeted_removal(getattr(params, matrix), errors, fractions, samples=samples, seed=seed, tol=tol,
                            xi_tol=xi_tol, live=candidate_mask(params, matrix, diagonal=diagonal),
                            callback=callback)


def perturb_run(run_path, *, matrix: str = DEFAULT_MATRIX, fractions=FRACTIONS, samples: int = 10,
                seed: int | None = None, tol: float | None = None, xi_tol: float | None = None,
                exact: bool = False, diagonal: bool = True, backend: str = "auto", data_dir=None, dataset=None,
                callback: Callable[[], None] | None = None, command: str | None = None, allow_bp: bool = False):
    """The experiment on a recurrent run file: an ``xarray.Dataset`` (not written), of the same
    schema as the feed-forward one (:func:`mfphys.perturb.perturbation_dataset`) with the attribute
    ``matrix`` in place of ``layer``. Defaults as :func:`mfphys.perturb.perturb_run`: the run's
    seed and tolerances; a BP run refused unless ``allow_bp``. ``dataset``: the MNIST data, loaded."""
    run_path = Path(run_path)
    ds = store.open_run(run_path)
    if ds.attrs.get(store.KIND_ATTR) == "run" and ds.attrs.get("model") != MODEL:
        raise MfphysError(f"{run_path} is a feed-forward run: --matrix is for recurrent runs (a feed-forward run "
                          f"takes --layer)")
    store.check_family_run(ds, run_path, MODEL, "recurrent")
    rnn_store.check_parameters(ds, run_path)
    fractions = check_arguments(matrix, samples, fractions, diagonal=diagonal)
    t = store.run_tolerances(ds, tol=tol, xi_tol=xi_tol, exact=exact)
    cfg = rnn_store.config_from_attrs(ds.attrs, run_path)
    check_mode(cfg, run_path, allow_bp)
    seed = cfg.seed if seed is None else check_int("--seed", seed, low=0)
    params = rnn_store.params_from_dataset(ds)
    be = get_backend(backend, cfg.dtype)
    test = task_inputs(cfg, dataset=dataset, data_dir=data_dir)
    from .train import running

    # BLAS on the run's thread count, as in training (docs/model-rnn.md section 7): the per-step
    # products are small, and two threads on a busy 2-core CPU made this 15x slower than one
    with running(cfg):
        result = perturbation(params, matrix, fractions, test, cfg, samples=samples, seed=seed, tol=t["tol"],
                              xi_tol=t["xi_tol"], diagonal=diagonal, be=be, callback=callback)
    now = utc_now()
    n = params[RECURRENT].m.shape[-1]
    return perturbation_dataset(result, attrs={
        "title": f"targeted perturbation of the {matrix} matrix: {run_path.name}",
        "source": str(run_path), "model": "rnn", "matrix": matrix, "task": cfg.task,
        "dataset": str(ds.attrs.get("dataset", "")), "architecture": str(ds.attrs.get("architecture", "")),
        "tol": t["tol"], "xi_tol": t["xi_tol"], "seed": seed, "samples": samples,
        "evaluation": "noise-free mean field (mf) and quenched sampled networks; error = 100 (1 - "
                      + ("test accuracy)" if cfg.task == "mnist" else "psychometric accuracy, mean over modalities)"),
        "candidates": "all connections" if diagonal else "off-diagonal connections",
        "diagonal_excluded": 0 if diagonal else n,
        "backend": be.describe(), "config": ds.attrs["config"], "mfphys_version": __version__, "created": now,
        "history": f"{now} {command or 'mfphys.rnn.perturb.perturb_run'}",
    })
