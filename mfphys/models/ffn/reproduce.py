"""The paper's four experiments end to end (docs/model.md section 7), as datasets.

1. ``curves``: test error vs epoch, gBP vs BP (784-100-100-10, first 10k MNIST images);
2. ``distributions``: histograms of pi, m, Xi per layer of the trained gBP ensemble and the
   category fractions (very important / unimportant / variable);
3. ``perturbation``: test error vs removed fraction of the first layer's very important
   connections, against the same number of variable ones (docs/model.md section 7.3);
4. ``entropy``: entropy per connection vs layer for 784-100-100-100-10 trained on
   10k, 20k, 30k and 40k images;
5. ``dynamics``: how the categories sort themselves while learning: the very important,
   unimportant and variable fractions and the entropy per connection of each layer against
   epoch, from the order parameters the gBP run of (1) records while it trains
   (docs/file-format.md "Dynamics").

Everything lands in one folder (default ``runs/paper/``): the run files the experiments train
(reused when present with the same configuration, so an interrupted ``reproduce`` resumes),
one dataset per experiment (``curves.nc``, ``distributions.nc``, ``perturbation.nc``,
``entropy.nc``, ``dynamics.nc``) and, made by the CLI, one PNG figure each. The entropy experiment is a scan
(``mfphys.scan``) over ``n_train`` at depth 3, in ``<folder>/entropy-scan/``.

This module only computes and stores; figures and progress bars are the CLI's
(``cli/reproduce.py``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import xarray as xr

from ... import __version__
from ... import storage as store
from ...errors import MfphysError
from ...layers import architecture
from ...stats import sample_std
from .train import TrainConfig

EXPERIMENTS = ("curves", "distributions", "perturbation", "entropy", "dynamics")
#: the experiments that use the gBP run of the protocol (``run-gbp.nc``)
GBP_EXPERIMENTS = ("curves", "distributions", "perturbation", "dynamics")
#: the order parameters of the dynamics experiment (docs/model.md section 6)
DYNAMICS_PARAMS = ("frac_vip", "frac_uip", "frac_variable", "entropy")

#: seconds per replica, per epoch and per 10,000 training images of the default 784-100-100-10
#: network on the project's 2-core CPU (float32, NumPy), evaluation and file writing included,
#: from the full `mfphys reproduce all` (docs/reproduction.md); used only to announce the
#: expected duration
CPU_SECONDS_PER_REPLICA_EPOCH_10K = 0.2
#: seconds of a reproduction besides training and evaluation: start-up, loading MNIST, the
#: figures and the files (measured on the 2-core CPU, bench/README.md "Estimates")
OVERHEAD_SECONDS = 5.0


@dataclass(frozen=True)
class Protocol:
    """The experiments' settings; the defaults are the paper's (docs/model.md sections 4 and 7)."""

    seeds: int = 3
    epochs: int = 100
    n_train: int = 10_000
    n_test: int | None = None
    batch_size: int = 500
    layers: tuple = (784, 100, 100, 10)
    entropy_depth: int = 3
    entropy_width: int = 100
    entropy_sizes: tuple = (10_000, 20_000, 30_000, 40_000)
    fractions: tuple = tuple(round(0.1 * i, 10) for i in range(11))
    samples: int = 10
    perturb_layer: int = 1
    seed: int = 0
    backend: str = "auto"
    dtype: str = "float32"

    @classmethod
    def quick(cls, **overrides) -> Protocol:
        """A reduced version that runs in a few minutes on a laptop CPU (used by the tests)."""
        base = dict(seeds=2, epochs=6, n_train=5000, n_test=2000, batch_size=100,
                    entropy_sizes=(1000, 2000, 3000, 4000),
                    fractions=(0.0, 0.25, 0.5, 0.75, 1.0), samples=3)
        return cls(**{**base, **overrides})

    def train_config(self, mode: str) -> TrainConfig:
        return TrainConfig(layers=self.layers, n_train=self.n_train, n_test=self.n_test, epochs=self.epochs,
                           batch_size=self.batch_size,
                           replicas=self.seeds, seed=self.seed, mode=mode, backend=self.backend, dtype=self.dtype,
                           eval_samples=self.samples)

    def entropy_layers(self) -> tuple:
        return (self.layers[0],) + (self.entropy_width,) * self.entropy_depth + (self.layers[-1],)

    def estimate_seconds(self, experiments=EXPERIMENTS, *, calibrate: bool = False) -> float:
        """Expected duration of ``experiments``: the runs they train (the gBP run; the BP run only
        for the curves; the entropy scan's cells), with their evaluations
        (:func:`mfphys.models.ffn.budget.train_seconds`), the perturbation's evaluation passes,
        and :data:`OVERHEAD_SECONDS` for start-up, figures and files.

        ``calibrate``: a few training steps of each shape are timed on this machine now (what
        ``mfphys reproduce`` announces; the load of the moment enters through them); else the
        per-epoch cost measured on the idle 2-core CPU (:data:`CPU_SECONDS_PER_REPLICA_EPOCH_10K`,
        scaled by FLOPs)."""
        from .budget import FORWARD_SHARE, step_seconds, train_seconds

        steps: dict = {}

        def step(cfg) -> float:
            key = (cfg.layers, cfg.batch_size, cfg.replicas, cfg.mode)
            if key not in steps:
                if calibrate:
                    steps[key] = step_seconds(cfg)
                else:  # the measured epoch (evaluation included, hence / 1.3) spread over its steps
                    flops = sum(a * b for a, b in zip(cfg.layers[:-1], cfg.layers[1:]))
                    ref = 784 * 100 + 100 * 100 + 100 * 10
                    steps[key] = (CPU_SECONDS_PER_REPLICA_EPOCH_10K * flops / ref * cfg.batch_size / 10_000
                                  * cfg.replicas / 1.3 * (1 / 3 if cfg.mode == "bp" else 1))
            return steps[key]

        from ...budget import load_factor

        total = OVERHEAD_SECONDS * (load_factor() if calibrate else 1.0)
        gbp = self.train_config("gbp")
        if set(GBP_EXPERIMENTS) & set(experiments):
            total += train_seconds(gbp, step(gbp))
        if "curves" in experiments:
            bp = self.train_config("bp")
            total += train_seconds(bp, step(bp))
        if "perturbation" in experiments:
            # (2 F + 1) evaluations of ``samples`` sampled networks per seed, each a forward pass
            # over the test set (a step holds all seeds: the seeds cancel)
            n_test = self.n_test if self.n_test is not None else 10_000
            total += (step(gbp) * FORWARD_SHARE * n_test / self.batch_size
                      * (2 * len(self.fractions) + 1) * self.samples)
        if "entropy" in experiments:
            for n in self.entropy_sizes:
                cfg = dataclasses.replace(gbp, layers=self.entropy_layers(), n_train=n)
                total += train_seconds(cfg, step(cfg))
        return total

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def _attrs(kind: str, protocol: Protocol, **extra) -> dict:
    return {store.KIND_ATTR: kind, "mfphys_version": __version__, "protocol": protocol.to_json(), **extra}


def train_or_reuse(config: TrainConfig, path: Path, *, data_dir=None, callback=None,
                   dynamics: bool = False) -> xr.Dataset:
    """The run file at ``path`` if it holds exactly ``config``, else train it and write it there
    (:func:`mfphys.reproduce.train_or_reuse`, the experiments' one way to get a run trained).

    ``dynamics``: the file must also hold the order parameters recorded while training (a file
    written before they existed is trained again; on NumPy with the same numbers)."""
    from ...reproduce import train_or_reuse as shared  # experiments train through the run-file layer

    return shared(config, path, data_dir=data_dir, callback=callback,
                  complete=(lambda ds: "dyn_epoch" in ds.coords) if dynamics else None)


# --- 1. learning curves -------------------------------------------------------------------------


def curves_dataset(gbp: xr.Dataset, bp: xr.Dataset, protocol: Protocol) -> xr.Dataset:
    """Test error (%) vs epoch for gBP and BP, per replica, with mean and spread over replicas."""
    err = xr.concat([100 * (1 - gbp.test_acc), 100 * (1 - bp.test_acc)], dim=xr.DataArray(["gbp", "bp"],
                                                                                            dims="mode"))
    sampled = xr.concat([100 * (1 - gbp.test_acc_sampled), 100 * (1 - bp.test_acc_sampled)], dim=err.mode)
    ds = xr.Dataset({
        "test_error": err.assign_attrs(long_name="noise-free mean-field test error", units="%"),
        "test_error_mean": err.mean("replica").assign_attrs(long_name="test error, mean over replicas", units="%"),
        "test_error_std": err.reduce(sample_std, dim="replica").assign_attrs(
            long_name="test error, standard deviation over replicas", units="%"),
        "train_loss": xr.concat([gbp.train_loss, bp.train_loss], dim=err.mode).assign_attrs(
            long_name="mean training cross-entropy of the epoch", units="nats"),
        "test_error_sampled": sampled.assign_attrs(long_name="test error of sampled sub-networks at the end "
                                                             "(mean over draws)", units="%"),
    })
    ds.attrs = _attrs("reproduction", protocol, experiment="curves", title="test error vs epoch, gBP vs BP",
                      architecture=gbp.attrs["architecture"])
    return ds


# --- 2. distributions ------------------------------------------------------------------------------


def distributions_dataset(gbp: xr.Dataset, protocol: Protocol) -> xr.Dataset:
    """Histograms of pi, m, Xi per layer (summed over replicas) and the category fractions."""
    keep = [k for k in gbp.data_vars if k.startswith("hist_") or k.startswith("frac_") or k in (
        "sparsity", "mean_pi", "mean_xi", "weight_var")]
    ds = gbp[keep].assign_coords({f"{n}_edge": gbp[f"{n}_edge"] for n in ("pi", "m", "xi")})
    for name in ("pi", "m", "xi"):
        ds[f"hist_{name}_total"] = gbp[f"hist_{name}"].sum("replica").assign_attrs(
            long_name=f"histogram of {name} per layer, all replicas", units="connections")
    ds.attrs = _attrs("reproduction", protocol, experiment="distributions",
                      title="distributions of pi, m, Xi per layer after training (gBP)",
                      order_tolerances=gbp.attrs["order_tolerances"], architecture=gbp.attrs["architecture"])
    return ds


# --- 3. perturbation -------------------------------------------------------------------------------


def perturbation_dataset(run_path: Path, protocol: Protocol, *, data_dir=None, callback=None) -> xr.Dataset:
    """docs/model.md section 7.3 on the gBP run at ``run_path`` (see :mod:`mfphys.perturb`)."""
    from . import perturb

    ds = perturb.perturb_run(run_path, layer=protocol.perturb_layer, fractions=np.asarray(protocol.fractions),
                             samples=protocol.samples, backend=protocol.backend, data_dir=data_dir,
                             callback=callback)
    ds.attrs.update(_attrs("perturbation", protocol, experiment="perturbation"))
    return ds


# --- 4. entropy ------------------------------------------------------------------------------------


def entropy_spec(protocol: Protocol):
    from ...scan import ScanSpec

    return ScanSpec.build(
        {"depth": [protocol.entropy_depth], "n_train": list(protocol.entropy_sizes)},
        {"width": protocol.entropy_width, "epochs": protocol.epochs, "replicas": protocol.seeds,
         "seed": protocol.seed, "backend": protocol.backend, "dtype": protocol.dtype, "n_test": protocol.n_test,
         "batch_size": protocol.batch_size,
         "eval_samples": protocol.samples},
        name="entropy-scan")


def entropy_dataset(scan_folder: Path, protocol: Protocol) -> xr.Dataset:
    """Entropy per connection (mean, median, regime fractions) vs layer and n_train."""
    from ...scan import open_scan

    scan = open_scan(scan_folder).sel(depth=protocol.entropy_depth)
    if not (scan.status == "done").all():
        bad = {str(k): str(v) for k, v in zip(scan.n_train.values, scan.status.values)}
        raise MfphysError(f"the entropy scan in {scan_folder} is not complete: {bad}")
    keep = [k for k in ("entropy", "entropy_median", "frac_point", "entropy_live", "entropy_median_live",
                        "frac_point_live", "mean_xi", "sparsity", "frac_vip", "frac_uip", "frac_variable",
                        "test_acc") if k in scan]
    ds = scan[keep]
    ds["entropy_mean"] = ds.entropy.mean("replica").assign_attrs(long_name="entropy per connection, mean over "
                                                                           "replicas", units="nats")
    ds["entropy_std"] = ds.entropy.reduce(sample_std, dim="replica").assign_attrs(
        long_name="entropy per connection, standard deviation over replicas", units="nats")
    ds.attrs = _attrs("reproduction", protocol, experiment="entropy",
                      title="entropy per connection vs layer and training-set size",
                      architecture=architecture(protocol.entropy_layers()))
    return ds


# --- 5. dynamics ----------------------------------------------------------------------------------


def dynamics_dataset(gbp: xr.Dataset, protocol: Protocol) -> xr.Dataset:
    """The VIP, UIP and variable fractions and the entropy per connection of each layer against
    epoch while the gBP ensemble learns (``dyn_epoch``: 0 = the initial parameters), per seed,
    with mean and standard deviation over seeds.

    ``<name>`` counts layer 1 over the inputs that vary in the training set (the run file's
    ``dyn_<name>_live``, docs/order-parameters.md: the dead pixels keep their initial
    connections); ``<name>_all_inputs`` counts every input; deeper layers are the same in both.
    """
    if "dyn_epoch" not in gbp.coords:
        raise MfphysError("the gBP run holds no order parameters recorded while training (a run file written "
                          "before they existed): delete run-gbp.nc and run mfphys reproduce dynamics again")
    ds = xr.Dataset(coords={"replica": gbp.replica, "dyn_epoch": gbp.dyn_epoch, "layer": gbp.layer})
    for name in DYNAMICS_PARAMS:
        every = gbp[f"{store.DYN}{name}"].transpose("replica", "dyn_epoch", "layer")
        live = gbp[f"{store.DYN}{name}_live"].transpose(*every.dims) if f"{store.DYN}{name}_live" in gbp else every
        long = store.LONG_NAMES[name][0]
        units = store.LONG_NAMES[name][1]
        ds[name] = live.assign_attrs(long_name=f"{long} while training, layer 1 over live inputs", units=units)
        ds[f"{name}_all_inputs"] = every.assign_attrs(long_name=f"{long} while training, layer 1 over all inputs",
                                                      units=units)
        ds[f"{name}_mean"] = live.mean("replica").assign_attrs(long_name=f"{long}, mean over seeds", units=units)
        ds[f"{name}_std"] = live.reduce(sample_std, dim="replica").assign_attrs(
            long_name=f"{long}, standard deviation over seeds", units=units)
    ds["dyn_epoch"].attrs.update(long_name="epochs after which the order parameters were recorded "
                                           "(0: the initial parameters)", units="1")
    ds.attrs = _attrs("reproduction", protocol, experiment="dynamics",
                      title="connection categories and entropy per layer while learning (gBP)",
                      order_tolerances=gbp.attrs["order_tolerances"], architecture=gbp.attrs["architecture"])
    return ds


def run_entropy_scan(protocol: Protocol, folder: Path, *, data_dir=None, callback: Callable | None = None,
                     workers: int | None = None) -> Path:
    from ...scan import run_scan

    report = run_scan(entropy_spec(protocol), folder, data_dir=data_dir, callback=callback, workers=workers,
                      command="mfphys reproduce entropy")
    if report.failed:
        first = report.failed_cells[0][1] if report.failed_cells else ""
        raise MfphysError(f"entropy scan: {report.failed} cell(s) failed ({first}); see {folder}")
    return folder
