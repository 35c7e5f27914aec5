"""Tiny recurrent run files for the TUI tests (docs/file-format.md "Recurrent runs"), made once per
session by the ``rnn_dir`` fixture (tests/tui/conftest.py), and a synthetic recurrent scan.

The folder holds, beside one feed-forward run (a mixed folder):

- ``rnn-mnist.nc``: row-wise MNIST (``row_mnist`` preset), N = 20, 2 replicas, 2 epochs;
- ``rnn-multi.nc``: the multisensory task, N = 20, 2 replicas, 3 epochs, and its BPTT twin
  ``rnn-multi-bp.nc`` (the BP baseline the run view finds);
- ``rnn-dyn.nc``: ``rnn-mnist`` with order-parameter trajectories ``dyn_<name>`` and
  ``dyn_<name>_nodiag`` (replica, dyn_epoch, matrix) added, as recurrent runs are to record them;
- ``rnn-multi.perturb-recurrent-nodiag.nc``: ``mfphys perturb --matrix recurrent --no-diagonal``
  of the multisensory run (3 fractions, 2 samples).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from tests.helpers import CREATED, tiny_config, write_run

#: the order parameters given trajectories in ``rnn-dyn.nc``
DYN = ("frac_vip", "sparsity", "frac_variable", "entropy", "mean_xi", "mean_pi", "weight_var")
MATRICES = ("input", "recurrent", "output")


def _write(ds, path: Path) -> None:
    from mfphys import store

    ds.attrs.update(created=CREATED, history=f"{CREATED} tests")
    store.write_atomic(ds, path)


def with_dynamics(ds, epochs=(0, 1, 2)):
    """``ds`` (a recurrent run) with trajectories of its order parameters: the value at the last
    recorded epoch is the run's own, earlier ones move linearly from half of it."""
    import xarray as xr

    ds = ds.copy()
    t = np.linspace(0.5, 1.0, len(epochs))[None, :, None]
    ds = ds.assign_coords(dyn_epoch=np.asarray(epochs))
    for k in DYN:
        for suffix in ("", "_nodiag"):
            final = ds[k + suffix].transpose("replica", "matrix").values[:, None, :]
            ds[f"dyn_{k}{suffix}"] = xr.Variable(("replica", "dyn_epoch", "matrix"), final * t,
                                                 attrs={"long_name": f"{k} while training", "units": "1"})
    return ds


def make_rnn_runs(root: Path, mnist_dir: Path) -> Path:
    from mfphys import rnn, store
    from mfphys.data import load_dataset
    from mfphys.rnn.perturb import perturb_run
    from mfphys.rnn.store import rnn_run_to_dataset

    root.mkdir(parents=True)
    write_run(root / "ffn-teacher.nc", tiny_config())
    data = load_dataset("mnist", n_train=256, n_test=200, data_dir=mnist_dir)
    cfg = dataclasses.replace(rnn.preset("row_mnist"), n=20, n_train=256, batches_per_epoch=2, epochs=2, n_test=200,
                              backend="numpy", replicas=2, eval_samples=2, test_repeats=1)
    mnist = rnn_run_to_dataset(rnn.train_rnn(cfg, dataset=data), preset="row_mnist")
    _write(mnist, root / "rnn-mnist.nc")
    _write(with_dynamics(store.open_run(root / "rnn-mnist.nc")), root / "rnn-dyn.nc")
    ms = dataclasses.replace(rnn.preset("multisensory"), n=20, epochs=3, backend="numpy", replicas=2, eval_samples=2)
    for mode, name in (("gbp", "rnn-multi"), ("bp", "rnn-multi-bp")):
        result = rnn.train_rnn(dataclasses.replace(ms, mode=mode))
        _write(rnn_run_to_dataset(result, preset="multisensory"), root / f"{name}.nc")
    pert = perturb_run(root / "rnn-multi.nc", matrix="recurrent", fractions=[0.0, 0.5, 1.0], samples=2,
                       diagonal=False, backend="numpy")
    _write(pert, root / "rnn-multi.perturb-recurrent-nodiag.nc")
    return root


def recurrent_scan(steps=(7, 28), n_train=(256, 512, 1024), R=2, dyn_epochs=(0, 1, 2), seed=0):
    """A combined dataset of the shape a recurrent scan has: the grid ``steps`` x ``n_train``,
    order parameters (steps, n_train, replica, matrix) with ``_nodiag`` variants, accuracies,
    the learning curves and trajectories ``dyn_<name>`` (..., dyn_epoch, matrix); every cell done
    but the last, which is pending (NaN)."""
    import xarray as xr

    rng = np.random.default_rng(seed)
    S, N, M, T, E = len(steps), len(n_train), len(MATRICES), len(dyn_epochs), 3
    grid = ("steps", "n_train")
    data = {}
    for k in ("sparsity", "frac_vip", "frac_uip", "frac_variable", "mean_pi", "mean_xi", "weight_var", "entropy"):
        v = rng.uniform(0.05, 0.5, (S, N, R, M))
        nodiag = v.copy()
        nodiag[..., 1] += 0.25  # the recurrent column differs without the diagonal
        data[k] = (grid + ("replica", "matrix"), v)
        data[k + "_nodiag"] = (grid + ("replica", "matrix"), nodiag)
        t = np.linspace(0.5, 1.0, T)[None, None, None, :, None]
        data["dyn_" + k] = (grid + ("replica", "dyn_epoch", "matrix"), v[:, :, :, None, :] * t)
        data["dyn_" + k + "_nodiag"] = (grid + ("replica", "dyn_epoch", "matrix"), nodiag[:, :, :, None, :] * t)
    data["test_acc"] = (grid + ("replica", "epoch"), rng.uniform(0.1, 0.9, (S, N, R, E)))
    data["train_loss"] = (grid + ("replica", "epoch"), rng.uniform(0.5, 2.0, (S, N, R, E)))
    data["test_acc_mf"] = (grid + ("replica",), data["test_acc"][1][..., -1])
    status = np.full((S, N), "done", dtype=object)
    status[-1, -1] = "pending"
    ds = xr.Dataset(data, coords={"steps": list(steps), "n_train": list(n_train), "replica": np.arange(R),
                                  "matrix": list(MATRICES), "dyn_epoch": list(dyn_epochs),
                                  "epoch": np.arange(1, E + 1)})
    for k in list(ds.data_vars):
        ds[k] = ds[k].where(xr.DataArray(status != "pending", dims=grid))
    ds["status"] = (grid, status.astype(str))
    ds["error"] = (grid, np.full((S, N), "", dtype=object).astype(str))
    return ds
