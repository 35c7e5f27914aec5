"""The recurrent model's experiments end to end (docs/model-rnn.md sections 7-9), as datasets.

1. ``rnn-curves``: row-wise MNIST with the ``row_mnist`` reference protocol: the noise-free
   mean-field test accuracy per epoch of the gBP ensemble beside the BPTT baseline, per seed,
   and the final accuracy of every evaluation mode (docs/model-rnn.md section 5) with its
   spread over seeds;
2. ``psychometric``: the ``multisensory`` protocol (stop rule included): P(choose high) against
   the event rate per modality in every evaluation mode, the stop epochs and the psychometric
   accuracy per modality (docs/model-rnn.md section 8);
3. ``rnn-perturbation``: the targeted removal of the recurrent matrix's very important
   connections against as many variable ones (docs/model-rnn.md section 9) on the gBP runs of
   (1), evaluated as the noise-free mean field and quenched networks, per seed.

Everything lands in one folder (default ``runs/rnn-paper/``): the run files trained here
(``rnn-row-gbp.nc``, ``rnn-row-bp.nc``, ``rnn-multisensory.nc``; reused when present with the
same configuration, so an interrupted reproduction resumes) and one dataset per experiment
(``rnn-curves.nc``, ``psychometric.nc``, ``rnn-perturbation.nc``); the CLI adds one PNG each.

This module only computes and stores; figures and progress bars are the CLI's
(``cli/reproduce.py``, ``cli/rnn_figures.py``).
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
from ...fileio import quote
from ...stats import sample_std
from .config import RnnConfig
from .store import SAMPLED
from .tasks import preset

EXPERIMENTS = ("rnn-curves", "psychometric", "rnn-perturbation")
#: the name that runs the three
GROUP = "rnn"
#: the run files, per role
RUN_FILES = {"gbp": "rnn-row-gbp.nc", "bp": "rnn-row-bp.nc", "multisensory": "rnn-multisensory.nc"}
#: the experiments that need each run file
NEEDS = {"rnn-curves": ("gbp", "bp"), "psychometric": ("multisensory",), "rnn-perturbation": ("gbp",)}
#: evaluation modes as the run files name them (docs/model-rnn.md section 5; ``mean`` is ``mf``)
EVAL_MODES = ("mf", "noisy", "quenched", "annealed")

#: seconds per replica and epoch on the project's 2-core CPU (NumPy, float32, one BLAS thread), of
#: a row-wise MNIST epoch of 200 mini-batches (gBP, BPTT) and of a multisensory epoch, from
#: docs/model-rnn.md "Measured"; used only to announce the expected duration
CPU_SECONDS = {"gbp": 1.7, "bp": 0.8, "multisensory": 0.02}
#: seconds of one evaluation pass (the mean field, or one quenched draw) of one replica over 10,000
#: row-wise test sequences on the same CPU, from the full perturbation (89 s for 759 passes): it makes
#: ``(2 F + 1) (1 + samples)`` of them per replica
CPU_SECONDS_EVAL_PASS_10K = 0.12


@dataclass(frozen=True)
class RnnProtocol:
    """The experiments' settings. The defaults are the reference protocols (docs/model-rnn.md
    section 7) with the row-wise run cut to 25 epochs, as the reference reports it.

    ``seeds``/``epochs``/``n_train``/``n_test`` apply to row-wise MNIST (``n_train``: an epoch
    reads ``min(200, n_train // 128)`` mini-batches of the first ``n_train`` images);
    ``ms_seeds``/``ms_epochs`` to the multisensory task (``ms_epochs`` None: the preset's 500, with
    its stop rule). ``fractions`` and ``samples`` are the perturbation's (``samples`` is also K of
    the runs' sampled evaluation modes).
    """

    seeds: int = 3
    epochs: int = 25
    n_train: int | None = None
    n_test: int | None = None
    ms_seeds: int = 3
    ms_epochs: int | None = None
    fractions: tuple = tuple(round(0.1 * i, 10) for i in range(11))
    samples: int = 10
    matrix: str = "recurrent"
    seed: int = 0
    backend: str = "auto"
    dtype: str = "float32"

    @classmethod
    def quick(cls, **overrides) -> RnnProtocol:
        """A reduced version that runs in a few minutes on a 2-core CPU (the tests use smaller still)."""
        base = dict(seeds=2, epochs=5, n_train=12800, n_test=2000, ms_seeds=2, ms_epochs=400,
                    fractions=(0.0, 0.25, 0.5, 0.75, 1.0), samples=3)
        return cls(**{**base, **overrides})

    def validate(self) -> RnnProtocol:
        for name in ("seeds", "epochs", "ms_seeds", "samples"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise MfphysError(f"--{name.replace('_', '-')} must be a positive integer, got {quote(v)}")
        if self.ms_epochs is not None and self.ms_epochs < 1:
            raise MfphysError(f"ms_epochs must be a positive integer or None, got {quote(self.ms_epochs)}")
        self.mnist_config("gbp")
        self.multisensory_config()
        return self

    def mnist_config(self, mode: str) -> RnnConfig:
        """The ``row_mnist`` preset for ``epochs`` epochs, ``seeds`` replicas, gBP or the BPTT baseline."""
        base = preset("row_mnist")
        changes = dict(epochs=self.epochs, replicas=self.seeds, seed=self.seed, mode=mode, backend=self.backend,
                       dtype=self.dtype, eval_samples=self.samples, n_test=self.n_test)
        if self.n_train is not None:
            per = self.n_train // base.batch_size
            if per < 1:
                raise MfphysError(f"n_train {self.n_train} is less than one mini-batch of {base.batch_size}")
            changes.update(n_train=self.n_train, batches_per_epoch=min(base.batches_per_epoch or per, per))
        return dataclasses.replace(base, **changes)

    def multisensory_config(self) -> RnnConfig:
        base = preset("multisensory")
        return dataclasses.replace(base, epochs=self.ms_epochs or base.epochs, replicas=self.ms_seeds,
                                   seed=self.seed, backend=self.backend, dtype=self.dtype,
                                   eval_samples=self.samples)

    def configs(self, experiments) -> dict:
        """The run configurations ``experiments`` need, by role (keys of :data:`RUN_FILES`)."""
        roles = [r for r in RUN_FILES if any(r in NEEDS[e] for e in experiments)]
        return {r: self.multisensory_config() if r == "multisensory" else self.mnist_config(r) for r in roles}

    def estimate_seconds(self, experiments=EXPERIMENTS, *, calibrate: bool = False) -> float:
        """Expected duration of the runs ``experiments`` train and of the perturbation's passes:
        from the costs measured on an otherwise idle 2-core CPU (:data:`CPU_SECONDS`), or, with
        ``calibrate``, the row-wise MNIST runs from a few of their steps timed on this machine now
        (the load of the moment enters through them; a busy machine takes several times longer)."""
        total = 0.0
        for role, cfg in self.configs(experiments).items():
            if calibrate and role != "multisensory":
                from ...registry import of_config

                family = of_config(cfg)
                total += family.seconds(cfg, family.calibrate(cfg))
                continue
            per = CPU_SECONDS[role]
            if role != "multisensory":
                per *= (cfg.batches_per_epoch or 200) / 200
            total += per * cfg.replicas * cfg.epochs
        if "rnn-perturbation" in experiments:
            passes = (2 * len(self.fractions) + 1) * (1 + self.samples) * self.seeds
            total += CPU_SECONDS_EVAL_PASS_10K * passes * (self.n_test or 10_000) / 10_000
        return total

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def _attrs(kind: str, protocol: RnnProtocol, **extra) -> dict:
    return {store.KIND_ATTR: kind, "mfphys_version": __version__, "model": "rnn", "protocol": protocol.to_json(),
            **extra}


def reusable(path: Path, config: RnnConfig) -> xr.Dataset | None:
    """The finished recurrent run file at ``path`` if it holds exactly ``config``, else None."""
    from ...reproduce import reusable as shared  # experiments read runs through the run-file layer

    return shared(path, config)


def train_or_reuse(config: RnnConfig, path: Path, *, data_dir=None, dataset=None, callback=None,
                   preset_name: str | None = None) -> xr.Dataset:
    """:func:`mfphys.reproduce.train_or_reuse` of a recurrent run, with its ``preset`` attribute."""
    from ...reproduce import train_or_reuse as shared  # experiments train through the run-file layer

    return shared(config, path, data_dir=data_dir, dataset=dataset, callback=callback,
                  attrs={"preset": preset_name} if preset_name else None)


def _stats(da: xr.DataArray, what: str, units: str = "1") -> dict:
    """``<name>_mean`` and ``<name>_std`` over the replicas (seeds) of ``da``."""
    long = da.attrs.get("long_name", what)
    return {"mean": da.mean("replica").assign_attrs(long_name=f"{long}, mean over seeds", units=units),
            "std": da.reduce(sample_std, dim="replica").assign_attrs(
                long_name=f"{long}, standard deviation over seeds", units=units)}


def _by_mode(run: xr.Dataset, prefix: str) -> xr.DataArray:
    """``<prefix>_<mode>`` of a run file stacked along ``eval_mode`` (sampled modes: mean over draws)."""
    parts = []
    for m in EVAL_MODES:
        v = run[f"{prefix}_{m}"]
        parts.append(v.mean("draw") if "draw" in v.dims else v)
    return xr.concat(parts, dim=xr.DataArray(list(EVAL_MODES), dims="eval_mode")).drop_vars(
        [c for c in ("draw",) if c in run.coords], errors="ignore")


# --- 1. row-wise MNIST: learning curves and final accuracies ---------------------------------------


def curves_dataset(gbp: xr.Dataset, bp: xr.Dataset, protocol: RnnProtocol) -> xr.Dataset:
    """Test accuracy per epoch (noise-free mean field) of gBP and BPTT, per seed, and the final
    accuracy of every evaluation mode, with mean and standard deviation over seeds."""
    mode = xr.DataArray(["gbp", "bp"], dims="mode")
    acc = xr.concat([gbp.test_acc, bp.test_acc], dim=mode).assign_attrs(
        long_name="test accuracy after the epoch, noise-free mean field", units="1")
    final = xr.concat([_by_mode(gbp, "test_acc"), _by_mode(bp, "test_acc")], dim=mode).assign_attrs(
        long_name="test accuracy at the end per evaluation mode (sampled modes: mean over draws)", units="1")
    vote = xr.concat([gbp.test_acc_quenched_vote, bp.test_acc_quenched_vote], dim=mode).assign_attrs(
        long_name="test accuracy of the majority vote of the quenched draws", units="1")
    loss = xr.concat([gbp.train_loss, bp.train_loss], dim=mode).assign_attrs(
        long_name="mean training cross-entropy of the epoch (noisy mean field)", units="nats")
    seconds = xr.concat([gbp.epoch_seconds.sum("epoch"), bp.epoch_seconds.sum("epoch")], dim=mode).assign_attrs(
        long_name="training time (all seeds together)", units="s")
    data = {"test_acc": acc, "final_acc": final, "final_acc_vote": vote, "train_loss": loss,
            "train_seconds": seconds}
    for name in ("test_acc", "final_acc", "final_acc_vote"):
        for k, v in _stats(data[name], name).items():
            data[f"{name}_{k}"] = v
    ds = xr.Dataset(data)
    ds["eval_mode"].attrs.update(long_name="evaluation mode (docs/model-rnn.md section 5): mf = noise-free mean "
                                           "field, noisy = mean field with noise, quenched/annealed = sampled")
    ds.attrs = _attrs("reproduction", protocol, experiment="rnn-curves",
                      title="row-wise MNIST: test accuracy vs epoch, gBP vs BPTT", task="mnist",
                      architecture=gbp.attrs["architecture"], samples=int(gbp.sizes.get("draw", 0)))
    return ds


# --- 2. multisensory integration: psychometric curves -----------------------------------------------


def psychometric_dataset(run: xr.Dataset, protocol: RnnProtocol) -> xr.Dataset:
    """P(choose high) per evaluation mode, seed, modality and event rate; the psychometric
    accuracy per modality; the stop epochs; mean and standard deviation over seeds."""
    p = _by_mode(run, "p_high").assign_attrs(
        long_name="P(choose high) per modality and event rate (sampled modes: mean over draws)", units="1")
    acc = _by_mode(run, "psychometric_acc").assign_attrs(
        long_name="fraction of correct choices per modality (sampled modes: mean over draws)", units="1")
    data = {"p_high": p, "psychometric_acc": acc, "stop_epoch": run.stop_epoch, "train_loss": run.train_loss}
    for name in ("p_high", "psychometric_acc"):
        for k, v in _stats(data[name], name).items():
            data[f"{name}_{k}"] = v
    for m in SAMPLED:
        data[f"p_high_{m}_draw"] = run[f"p_high_{m}"]
    ds = xr.Dataset(data)
    ds["eval_mode"].attrs.update(long_name="evaluation mode (docs/model-rnn.md section 5)")
    ds.attrs = _attrs("reproduction", protocol, experiment="psychometric", task="multisensory",
                      title="multisensory integration: psychometric curves per modality",
                      architecture=run.attrs["architecture"], stop_rule=json.dumps(
                          {"stop_loss": RnnConfig.from_json(run.attrs["config"]).stop_loss,
                           "stop_min_epoch": RnnConfig.from_json(run.attrs["config"]).stop_min_epoch}))
    return ds


# --- 3. the recurrent perturbation ------------------------------------------------------------------


def perturbation_dataset(run_path: Path, protocol: RnnProtocol, *, data_dir=None, dataset=None,
                         callback: Callable[[], None] | None = None) -> xr.Dataset:
    """docs/model-rnn.md section 9 on the gBP run at ``run_path`` (:mod:`mfphys.rnn.perturb`),
    with the mean and standard deviation over seeds of both arms, both evaluations."""
    from . import perturb

    ds = perturb.perturb_run(run_path, matrix=protocol.matrix, fractions=np.asarray(protocol.fractions),
                             samples=protocol.samples, backend=protocol.backend, data_dir=data_dir,
                             dataset=dataset, callback=callback, command="mfphys reproduce rnn-perturbation")
    for arm in ("vip", "variable"):
        for ev in ("", "_mf"):
            name = f"error_{arm}{ev}"
            for k, v in _stats(ds[name], name, "%").items():
                ds[f"{name}_{k}"] = v
    ds.attrs.update(_attrs("perturbation", protocol, experiment="rnn-perturbation"))
    return ds

