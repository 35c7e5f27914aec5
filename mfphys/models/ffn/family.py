"""The feed-forward family as the shared engine sees it (:class:`mfphys.family.ModelFamily`).

Thin: each method imports the family's module it needs when first called, so that the registry
can hand this object out without loading the training code, xarray or the scan options.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...family import Experiment, ModelFamily, ScanAxes

NAME = "ffn"


class FeedForward(ModelFamily):
    """The paper's feed-forward spike-and-slab network (docs/model.md)."""

    name = NAME
    title = "feed-forward"
    unit = "layer"
    target_option = "layer"
    stackable = True
    continue_ignores = ("epochs",)
    frontend = "mfphys.cli.families.ffn"
    live_inputs = True
    connections_text = "connections of the layer (N_l * N_{l-1})"
    sampled_accuracy = "test_acc_sampled"

    @property
    def config_class(self) -> type:
        from .train import TrainConfig

        return TrainConfig

    def presets(self) -> Mapping:
        from .train import PROTOCOLS

        return PROTOCOLS

    def describe_config(self, config) -> str:
        from ...layers import architecture

        return architecture(config.layers)

    # -- steps ---------------------------------------------------------------------------------------

    def prepare(self, config, *, data_dir=None, dataset=None, dynamics_every=None):
        from . import train

        every = train.DYNAMICS_EVERY if dynamics_every is None else dynamics_every
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
        return state.epoch >= setup.config.epochs

    def finish(self, setup, state, *, keep_state: bool = False):
        from .train import finish

        return finish(setup, state, keep_state=keep_state)

    def current_result(self, setup, state):
        from .train import current_result

        return current_result(setup, state)

    def running(self, config):
        from .train import quiet_fp

        return quiet_fp()

    def train(self, config, *, data_dir=None, dataset=None, callback=None):
        from .train import train

        return train(config, data_dir=data_dir, dataset=dataset, callback=callback)

    def pack_key(self, config):
        from .train import pack_key

        return pack_key(config)

    def packed_estimate(self, configs):
        from .budget import train_estimate
        from .train import packed_config

        return train_estimate(packed_config(configs))

    def prepare_packed(self, configs, *, data_dir=None, dynamics_every=None):
        from . import train

        every = train.DYNAMICS_EVERY if dynamics_every is None else dynamics_every
        return train.prepare_packed(configs, data_dir=data_dir, dynamics_every=every)

    def join_states(self, setup, states):
        from .train import join_states

        return join_states(setup, states)

    def unpack(self, setup, result) -> list:
        from .train import unpack

        return unpack(setup, result)

    def packed_epoch_logs(self, setup, state) -> list[dict]:
        from .train import packed_epoch_logs

        return packed_epoch_logs(setup, state)

    def load_data(self, config, data_dir=None):
        from .train import load_data

        return load_data(config, data_dir)

    def preflight(self, configs, data_dir=None) -> None:
        """Load each distinct data set of ``configs`` once, at its largest n_train."""
        from .train import load_data

        biggest: dict = {}
        for c in configs:
            k = (c.dataset, c.layers[0], c.teacher_seed, c.n_test)
            if k not in biggest or c.n_train > biggest[k].n_train:
                biggest[k] = c
        for c in biggest.values():
            load_data(c, data_dir)

    # -- the run file --------------------------------------------------------------------------------

    def run_to_dataset(self, result, *, command=None, labels=None, **options):
        from .store import run_to_dataset

        options.pop("preset", None)  # a recurrent option; feed-forward runs start from no preset
        ds = run_to_dataset(result, command=command, **options)
        ds.attrs.update(labels or {})
        return ds

    def checkpoint_to_dataset(self, result, **kwargs):
        from .store import checkpoint_to_dataset

        return checkpoint_to_dataset(result, **kwargs)

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
        from ...order import layer_reports
        from ...storage import live_inputs
        from .store import params_from_dataset

        return layer_reports(params_from_dataset(ds), live_inputs=live_inputs(ds), **tolerances)

    # -- budget ----------------------------------------------------------------------------------------

    def estimate(self, config, *, state: bool = True, dynamics_every=None):
        from .budget import train_estimate

        return train_estimate(config, dynamics_every=dynamics_every)

    def calibrate(self, config):
        from .budget import step_seconds

        return step_seconds(config)

    def seconds(self, config, calibration) -> float:
        from .budget import train_seconds

        return train_seconds(config, calibration)

    def calibration_key(self, config) -> tuple:
        c = config
        return (NAME, c.layers, c.batch_size, c.replicas, c.dtype, c.mode, c.activation, c.backend)

    def cost(self, config) -> float:
        c = config
        return c.n_train * c.epochs * c.replicas * sum(a * b for a, b in zip(c.layers[:-1], c.layers[1:]))

    # -- scans, perturbation, reproduce ------------------------------------------------------------------

    def scan_axes(self) -> ScanAxes:
        from . import scan
        from .train import ADDED_LATER

        return ScanAxes(scan.OPTIONS, scan.ALWAYS_SCANNED, scan.NOT_SCANNABLE, lambda given: dict(scan.DEFAULTS),
                        scan._ffn_config, scan._ffn_check,
                        lambda fixed: str(fixed.get("dataset", "mixed")), hash_key=False, added_later=ADDED_LATER)

    def adaptive_axes(self) -> Mapping:
        from ...family import AdaptiveAxis
        from .scan import adaptive_alpha

        out = dict(super().adaptive_axes())
        for name in ("n_train", "width", "lr", "input_dim"):  # sizes and rates: their log is what varies
            out[name] = out[name]._replace(scale="log")
        # the teacher-student load alpha = P / N0 (docs/model.md section 2): sets n_train
        out["alpha"] = AdaptiveAxis(("n_train",), adaptive_alpha, "log")
        return out

    def scan_matrices(self, cells) -> list:
        return list(range(1, max(int(c["depth"]) for c in cells) + 2))

    def connections(self, options) -> list[int]:
        from .scan import ARCH_OPTIONS, layers_of

        widths = layers_of({k: options[k] for k in ARCH_OPTIONS})
        return [a * b for a, b in zip(widths[:-1], widths[1:])]

    def live_connections(self, options, n_dead_inputs: int) -> list[int]:
        from .scan import ARCH_OPTIONS, layers_of

        widths = layers_of({k: options[k] for k in ARCH_OPTIONS})
        return [widths[1] * (widths[0] - n_dead_inputs)]

    def scan_meta(self, fixed: Mapping) -> dict:
        return {"width": fixed.get("width")}

    def scan_architecture(self, fixed: Mapping, grid: Mapping) -> str:
        from .scan import scan_architecture

        return scan_architecture(fixed, grid)

    def perturb_targets(self, config) -> tuple[str, ...]:
        return tuple(str(l) for l in range(1, len(config.layers)))

    def perturb_run(self, run_path, *, target=None, **options):
        from .perturb import perturb_run

        if target is not None:
            options["layer"] = int(target)
        return perturb_run(run_path, **options)

    def experiments(self) -> Mapping[str, Experiment]:
        from . import reproduce

        return {name: Experiment(name, f"the paper's {name}", getattr(reproduce, f"{name}_dataset"))
                for name in reproduce.EXPERIMENTS}


FAMILY = FeedForward()
