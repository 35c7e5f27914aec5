"""The recurrent family as the shared engine sees it (:class:`mfphys.family.ModelFamily`).

Thin: each method imports the family's module it needs when first called.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...family import Experiment, ModelFamily, ScanAxes

NAME = "rnn"


def _int(value, default):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class Recurrent(ModelFamily):
    """The spike-and-slab recurrent network (docs/model-rnn.md)."""

    name = NAME
    title = "recurrent"
    unit = "matrix"
    target_option = "matrix"
    stackable = False
    #: a continued run may change its epochs and its BLAS threads (these do not change the numbers)
    continue_ignores = ("epochs", "blas_threads")
    frontend = "mfphys.cli.families.rnn"
    connections_text = "connections of the matrix (N N_in, N^2, N_out N)"
    sampled_accuracy = "test_acc_quenched"

    @property
    def config_class(self) -> type:
        from .config import RnnConfig

        return RnnConfig

    def presets(self) -> Mapping:
        from .tasks import PRESETS

        return PRESETS

    def describe_config(self, config) -> str:
        from .store import architecture_label

        return architecture_label(config)

    # -- steps ---------------------------------------------------------------------------------------

    def prepare(self, config, *, data_dir=None, dataset=None, dynamics_every=None):
        from ...dynamics import DYNAMICS_EVERY
        from . import train

        every = DYNAMICS_EVERY if dynamics_every is None else dynamics_every
        return train.prepare(config, data_dir=data_dir, dataset=dataset, dynamics_every=every)

    def init_state(self, setup):
        from .train import init_state

        return init_state(setup)

    def resume_state(self, setup, checkpoint):
        from .train import resume_state

        return resume_state(setup, checkpoint)

    def train_epoch(self, setup, state):
        from .train import train_epoch

        return train_epoch(setup, state)

    def finished(self, setup, state) -> bool:
        from .train import finished

        return finished(setup, state)

    def finish(self, setup, state, *, keep_state: bool = False):
        from .train import finish

        return finish(setup, state, keep_state=keep_state)

    def current_result(self, setup, state):
        from .train import current_result

        return current_result(setup, state)

    def running(self, config):
        from .train import running

        return running(config)

    def over(self, attrs) -> bool:
        # every replica stopped (the multisensory stop rule): nothing more to train
        return _int(attrs.get("replicas_active"), None) == 0

    def train(self, config, *, data_dir=None, dataset=None, callback=None):
        from .train import train_rnn

        return train_rnn(config, data_dir=data_dir, dataset=dataset, callback=callback)

    def pack_key(self, config):
        from .train import pack_key

        return pack_key(config)

    def packed_estimate(self, configs):
        from .budget import rnn_packed_estimate

        return rnn_packed_estimate(list(configs))

    def prepare_packed(self, configs, *, data_dir=None, dynamics_every=None):
        from ...dynamics import DYNAMICS_EVERY
        from . import train

        every = DYNAMICS_EVERY if dynamics_every is None else dynamics_every
        return train.prepare_packed(configs, data_dir=data_dir, dynamics_every=every)

    def join_states(self, setup, states):
        from .train import join_states

        return join_states(setup, states)

    def unpack(self, setup, result) -> list:
        from .train import unpack

        return unpack(setup, result)

    def packed_epoch_logs(self, setup, state) -> list:
        from .train import packed_epoch_logs

        return packed_epoch_logs(setup, state)

    def preflight(self, configs, data_dir=None) -> None:
        """Every MNIST configuration reads MNIST: its largest training and test sets, once."""
        from ...data import load_dataset

        mnist = [c for c in configs if c.task == "mnist"]
        if mnist:
            n_test = None if any(c.n_test is None for c in mnist) else max(c.n_test for c in mnist)
            load_dataset("mnist", n_train=max(c.n_train for c in mnist), n_test=n_test, data_dir=data_dir)

    # -- the run file --------------------------------------------------------------------------------

    def run_to_dataset(self, result, *, command=None, labels=None, **options):
        from .store import rnn_run_to_dataset

        return rnn_run_to_dataset(result, command=command, labels=labels, **options)

    def checkpoint_to_dataset(self, result, **kwargs):
        from .store import rnn_checkpoint_to_dataset

        return rnn_checkpoint_to_dataset(result, **kwargs)

    def state_from_dataset(self, ds, path=None):
        from .store import state_from_dataset

        return state_from_dataset(ds, path)

    def params_from_dataset(self, ds):
        from .store import params_from_dataset

        return params_from_dataset(ds)

    def check_parameters(self, ds, path) -> None:
        from .store import check_parameters

        check_parameters(ds, path)

    def order_reports(self, ds, tolerances: Mapping) -> list:
        from .order import matrix_reports
        from .store import params_from_dataset

        return matrix_reports(params_from_dataset(ds), **tolerances)

    # -- budget ----------------------------------------------------------------------------------------

    def estimate(self, config, *, state: bool = True, dynamics_every=None):
        from .budget import rnn_estimate

        return rnn_estimate(config, state=state)

    def calibrate(self, config):
        from .budget import rnn_step_seconds

        return rnn_step_seconds(config)

    def seconds(self, config, calibration) -> float:
        from .budget import rnn_train_seconds

        return rnn_train_seconds(config, calibration)

    def calibration_key(self, config) -> tuple:
        c = config
        return (NAME, c.steps, c.n, c.batch_size, c.replicas, c.dtype, c.mode, c.backend)

    def cost(self, config) -> float:
        c = config  # mini-batches x steps x connections per step
        n_in, n_out = c.io
        return c.batches_per_epoch * c.batch_size * c.epochs * c.replicas * c.steps * c.n * (n_in + c.n + n_out)

    # -- scans, perturbation, reproduce ------------------------------------------------------------------

    def scan_axes(self) -> ScanAxes:
        from . import scan

        return ScanAxes(scan.RNN_OPTIONS, ("steps", "n_train"), ("replicas", "preset"), scan._rnn_defaults,
                        scan._rnn_config, scan._rnn_check, lambda fixed: "mnist-rnn")

    def adaptive_axes(self) -> Mapping:
        from ...family import AdaptiveAxis
        from .scan import adaptive_steps

        out = dict(super().adaptive_axes())
        for name in ("n_train", "n", "lr"):
            out[name] = out[name]._replace(scale="log")
        # the temporal depth: only a divisor of the image's 784 pixels is a step count (docs/model-rnn.md section 7)
        out["steps"] = AdaptiveAxis(("steps",), adaptive_steps, "log")
        return out

    def scan_matrices(self, cells) -> list:
        from .model import MATRICES

        return list(MATRICES)

    def connections(self, options) -> list[int]:
        from .config import MNIST_PIXELS

        n, n_in = int(options["n"]), MNIST_PIXELS // int(options["steps"])
        return [n * n_in, n * n, 10 * n]

    def scan_meta(self, fixed: Mapping) -> dict:
        return {}

    def cell_options(self, fixed: Mapping) -> dict:
        """The run file of a scan cell records the preset it started from."""
        return {"preset": fixed.get("preset")}

    def scan_architecture(self, fixed: Mapping, grid: Mapping) -> str:
        from .scan import scan_architecture

        return scan_architecture(fixed, grid)

    def perturb_targets(self, config) -> tuple[str, ...]:
        from .model import MATRICES

        return tuple(MATRICES)

    def perturb_run(self, run_path, *, target=None, **options):
        from .perturb import perturb_run

        if target is not None:
            options["matrix"] = str(target)
        return perturb_run(run_path, **options)

    def experiments(self) -> Mapping[str, Experiment]:
        from . import reproduce

        runs = {"rnn-curves": reproduce.curves_dataset, "psychometric": reproduce.psychometric_dataset,
                "rnn-perturbation": reproduce.perturbation_dataset}
        return {name: Experiment(name, f"the recurrent model's {name}", runs[name]) for name in reproduce.EXPERIMENTS}


FAMILY = Recurrent()
