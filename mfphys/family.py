"""What a model family provides to the shared engine: the typed protocol :class:`ModelFamily`.

mfphys runs several model families (the paper's feed-forward network, docs/model.md; the
recurrent follow-up, docs/model-rnn.md) over one engine. The engine (run files, checkpoints and
resume, dynamics, scans, budget, the perturbation and reproduce drivers, ``open_run`` /
``open_runs`` / ``open_scan``) never asks "which family is this?" by name: it asks the family
object the registry (:mod:`mfphys.registry`) returns for a configuration, a run file's ``model``
attribute or a scan's ``model`` key, and calls the methods below.

A family is one object (a subclass instance of :class:`ModelFamily`), defined in its own folder
(``mfphys/models/<name>/family.py``) or in another installed package that registers it under
the entry-point group ``mfphys.families`` (docs/design.md "Adding a model family"). Its
methods are thin: they import the family's modules when first called, so that registering a
family costs nothing at start-up.

The parts, in the order a run meets them:

- **configuration**: :attr:`config_class` (a frozen dataclass with ``to_json``,
  ``from_json``, ``validate``, ``replicas``, ``epochs``, ``seed``, ``mode``), :meth:`presets`;
- **training steps** (a run is steps on a state, docs/design.md): :meth:`prepare`,
  :meth:`init_state`, :meth:`resume_state`, :meth:`train_epoch`, :meth:`finished`,
  :meth:`finish`, :meth:`current_result`, :meth:`running`; :meth:`train` is those steps in
  memory; :meth:`epoch_log`, one epoch's line of the scalar log beside a run file;
- **run file schema** in and out: :meth:`run_to_dataset`, :meth:`checkpoint_to_dataset`,
  :meth:`state_from_dataset`, :meth:`params_from_dataset`, :meth:`check_parameters`;
- **order parameters per weight matrix**: :attr:`unit` (the dimension that indexes them in run
  files, ``layer`` or ``matrix``) and :meth:`order_reports`;
- **budget**: :meth:`estimate` (memory and disk before anything is allocated),
  :meth:`calibrate` and :meth:`seconds` (time);
- **scans**: :meth:`scan_axes` (its option schema, the always-scanned axes, defaults, one
  cell's configuration and check); :meth:`adaptive_axes` (the continuous axes of an adaptive scan);
- **perturbation**: :meth:`perturb_targets`, :meth:`perturb_run`;
- **reproduce**: :meth:`experiments`;
- **front ends**: :attr:`frontend`, the module of the CLI/TUI adapter (the library never
  imports it).
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple


def option_kind(default) -> str:
    """The kind of a scan option from its default value (:class:`ScanAxes`)."""
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, tuple):
        return "tuple"
    return "str"



class ScanAxes(NamedTuple):
    """What a scan needs of a family: its options and how one cell's configuration is built.

    ``options``: option name -> kind (``int``, ``int?`` (None = all), ``float``, ``str``,
    ``bool``, ``tuple``); ``always_scanned``: the grid's first dimensions, always present (the
    family's phase-diagram plane); ``not_scannable``: options held fixed only; ``defaults(given)``:
    every option's default given the options set so far; ``config(options)``: one cell's
    configuration from all its options; ``check(config, options)``: raise
    :class:`~mfphys.errors.MfphysError` for a cell that cannot run; ``name_prefix(fixed)``: the
    start of the scan's default folder name; ``hash_key``: whether the family's name enters the
    scan hash (False only for the family whose scans were hashed before there were families);
    ``added_later``: options added after the first release, with the default that reproduces the
    older scans (they enter the hash only where they differ from it).
    """

    options: Mapping[str, str]
    always_scanned: tuple[str, ...]
    not_scannable: tuple[str, ...]
    defaults: Callable[[Mapping], dict]
    config: Callable[[Mapping], Any]
    check: Callable[[Any, Mapping], None]
    name_prefix: Callable[[Mapping], str]
    hash_key: bool = True
    added_later: Mapping[str, Any] = {}


class AdaptiveAxis(NamedTuple):
    """A continuous axis of an adaptive scan (docs/scans.md "Adaptive scans"): a number sampled
    anywhere between two bounds, which sets one or more options of a cell.

    ``sets``: the options a value of the axis sets (``n_train`` for the teacher-student
    ``alpha = P/N0``); ``point(value, options)``: the cell nearest to ``value`` given the cell's
    other options, as ``(coordinate, {option: value})`` (an integer option is rounded, the
    recurrent step count goes to the nearest divisor of the image); ``scale``: the scale
    (``log`` or ``linear``) used when the user names none.
    """

    sets: tuple[str, ...]
    point: Callable[[float, Mapping], tuple[Any, dict]]
    scale: str = "linear"


def rounded_point(name: str) -> Callable[[float, Mapping], tuple[Any, dict]]:
    """The :attr:`AdaptiveAxis.point` of an integer option: the nearest integer, at least 1."""

    def point(value: float, options: Mapping) -> tuple[Any, dict]:
        v = max(1, int(round(float(value))))
        return v, {name: v}

    return point


def float_point(name: str) -> Callable[[float, Mapping], tuple[Any, dict]]:
    """The :attr:`AdaptiveAxis.point` of a real option: the value itself."""

    def point(value: float, options: Mapping) -> tuple[Any, dict]:
        return float(value), {name: float(value)}

    return point


class Experiment(NamedTuple):
    """One experiment of ``mfphys reproduce``: its name, a one-line description, and the
    family's function that runs it (``run(folder, *, quick, data_dir, ...)`` -> dataset(s))."""

    name: str
    description: str
    run: Callable[..., Any]


class ModelFamily(abc.ABC):
    """A model family as the shared engine sees it. Subclass it, fill in the abstract methods,
    and register an instance (:mod:`mfphys.registry`).

    The class attributes name the family: :attr:`name` is the registry key, the ``model``
    attribute of its run files and the ``model`` key of its scans; :attr:`title` the word used
    in messages ("feed-forward"); :attr:`unit` the dimension of its run files that indexes the
    weight matrices (``layer``: 1..L; ``matrix``: names); :attr:`continue_ignores` the
    configuration fields a continued run may change; :attr:`frontend` the dotted module path
    of its CLI/TUI adapter (None: the front ends' generic views).
    """

    name: ClassVar[str]
    title: ClassVar[str]
    unit: ClassVar[str] = "layer"
    #: the keyword of :meth:`perturb_run` that names the matrix (``--layer``, ``--matrix``)
    target_option: ClassVar[str] = "matrix"
    #: whether :func:`mfphys.open_runs` can stack its runs (one architecture: per-connection arrays)
    stackable: ClassVar[bool] = False
    continue_ignores: ClassVar[tuple[str, ...]] = ("epochs",)
    frontend: ClassVar[str | None] = None
    #: whether its run files count layer 1 over live inputs too (the ``_live`` order parameters)
    live_inputs: ClassVar[bool] = False
    #: the run variable of the sampled sub-networks' test accuracy (the adaptive target ``gap``:
    #: sampled minus mean-field error); None: the family records none
    sampled_accuracy: ClassVar[str | None] = None
    #: what :meth:`connections` counts, for the combined scan view's ``n_connections``
    connections_text: ClassVar[str] = "connections of the weight matrix"

    def __repr__(self) -> str:
        return f"<model family {self.name!r} ({self.title})>"

    # -- configuration ---------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def config_class(self) -> type:
        """The configuration class of a run of this family."""

    def presets(self) -> Mapping[str, Any]:
        """Named configurations (``--preset``); empty when the family has none."""
        return {}

    def describe_config(self, config) -> str:
        """A short label of a configuration's architecture (``784-100-100-10``)."""
        return type(config).__name__

    # -- training as steps on a state ------------------------------------------------------------

    @abc.abstractmethod
    def prepare(self, config, *, data_dir=None, dataset=None, dynamics_every: int | None = None):
        """Everything a run needs that is not its state: data on the backend, streams' seeds ..."""

    @abc.abstractmethod
    def init_state(self, setup):
        """The state before the first epoch."""

    @abc.abstractmethod
    def resume_state(self, setup, checkpoint):
        """The state a checkpoint (host arrays, :meth:`state_from_dataset`) continues from."""

    @abc.abstractmethod
    def train_epoch(self, setup, state):
        """One epoch: ``(state, record)``; the record is what a progress callback sees."""

    @abc.abstractmethod
    def finished(self, setup, state) -> bool:
        """Whether the run has nothing more to train."""

    @abc.abstractmethod
    def finish(self, setup, state, *, keep_state: bool = False):
        """The final evaluation: the run's result (host arrays)."""

    @abc.abstractmethod
    def current_result(self, setup, state):
        """The run so far, as a result without its final evaluation (for a checkpoint)."""

    def running(self, config):
        """The context the steps run in (floating-point error handling, BLAS threads)."""
        return contextlib.nullcontext()

    def epoch_log(self, setup, state) -> dict:
        """The line of the epoch log (:mod:`mfphys.runlog`) after ``state.epoch``: ``values``,
        the run file's per-epoch variables at that epoch (each as the variable without its
        ``epoch`` dimension), and ``dyn``, the order parameters when they were recorded after
        that epoch (as ``dyn_<name>`` without ``dyn_epoch``). This default reads a state with a
        ``history`` of arrays whose last axis is the epoch (docs/design.md "Model families")
        and :class:`mfphys.dynamics.Dynamics`; a family with another state overrides it."""
        e = state.epoch
        record = {"epoch": e, "values": {k: v[..., e - 1] for k, v in state.history.items()}}
        dyn = getattr(state, "dynamics", None)
        if dyn is not None and dyn.epochs and dyn.epochs[-1] == e:
            record["dyn"] = dict(dyn.samples[-1])
        return record

    def over(self, attrs) -> bool:
        """Whether a finished run file ended before its ``epochs`` for good (nothing to continue)."""
        return False

    # -- packed cells (docs/scans.md, "Packed cells") ---------------------------------------------
    #
    # Configurations of one pack key train as one run with their replicas side by side: the
    # steps above on the setup of :meth:`prepare_packed`, which :meth:`unpack` splits into one
    # result per configuration and :meth:`join_states` joins back from their checkpoints
    # (:func:`mfphys.runfile.train_runs`). A family that packs implements all four.

    def pack_key(self, config):
        """Configurations with the same key (not None) may train as one batched run
        (:meth:`prepare_packed`); None (the default) trains this configuration alone."""
        return None

    def packed_estimate(self, configs):
        """Memory and disk (:meth:`estimate`) of ``configs`` (one :meth:`pack_key`) trained as one run."""
        return self.estimate(configs[0])

    def prepare_packed(self, configs, *, data_dir=None, dynamics_every: int | None = None):
        """The setup of ``configs`` (one :meth:`pack_key`) trained as one run: :meth:`init_state`,
        :meth:`train_epoch` ... on it train every configuration at once, each with the numbers
        it has alone."""
        raise NotImplementedError(f"the {self.title} family does not pack configurations")

    def join_states(self, setup, states):
        """The host state of a packed run (``setup`` of :meth:`prepare_packed`) from each
        configuration's own host state, all after the same epoch (their checkpoints)."""
        raise NotImplementedError(f"the {self.title} family does not pack configurations")

    def unpack(self, setup, result) -> list:
        """One result per packed configuration (finished, or a checkpoint's part with its state)
        from the packed run's (:meth:`finish`, :meth:`current_result`)."""
        raise NotImplementedError(f"the {self.title} family does not pack configurations")

    def packed_epoch_logs(self, setup, state) -> list[dict]:
        """Each packed configuration's line of the epoch log (:meth:`epoch_log`) after ``state.epoch``;
        None for a configuration whose run alone would have ended before that epoch (a stop rule)."""
        raise NotImplementedError(f"the {self.title} family does not pack configurations")

    def train_packed(self, configs, *, data_dir=None) -> list:
        """One result per configuration of ``configs`` (one :meth:`pack_key`) trained as one batched
        run, each the numbers :meth:`train` gives that configuration alone. Raises when any of
        them fails (a divergence): the caller then trains them one by one. Without a pack key
        the configurations train one after the other."""
        configs = list(configs)
        if self.pack_key(configs[0]) is None:
            return [self.train(c, data_dir=data_dir) for c in configs]
        setup = self.prepare_packed(configs, data_dir=data_dir)
        with self.running(configs[0]):  # one pack key: the same running context for all
            state = self.init_state(setup)
            while not self.finished(setup, state):
                state, _ = self.train_epoch(setup, state)
            return self.unpack(setup, self.finish(setup, state))

    def train(self, config, *, data_dir=None, dataset=None, callback=None):
        """The whole run in memory: the steps above, one after the other."""
        setup = self.prepare(config, data_dir=data_dir, dataset=dataset)
        with self.running(config):
            state = self.init_state(setup)
            while not self.finished(setup, state):
                state, record = self.train_epoch(setup, state)
                if callback is not None:
                    callback(record)
            return self.finish(setup, state)

    def preflight(self, configs, data_dir=None) -> None:  # noqa: B027 (optional: nothing to load by default)
        """Load the data of ``configs`` once (a scan's cells), so that missing files stop a scan
        with one line before anything is written."""

    def load_data(self, config, data_dir=None):
        """The data set of a run (for a perturbation's test set), or None when the family
        generates its inputs."""
        return None

    # -- the run file ----------------------------------------------------------------------------

    @abc.abstractmethod
    def run_to_dataset(self, result, *, command: str | None = None, labels: dict | None = None,
                       **options):
        """The run file's ``xarray.Dataset`` of a finished result (``labels``: name, tags, note;
        ``options``: tolerances and the family's own extras)."""

    @abc.abstractmethod
    def checkpoint_to_dataset(self, result, *, status: str, writer: dict | None = None, segments=None,
                              dynamics_every: int | None = None, command: str | None = None,
                              created: str | None = None, history: str | None = None, attrs: dict | None = None):
        """A live run file: the result so far plus the state resuming needs."""

    @abc.abstractmethod
    def state_from_dataset(self, ds, path=None):
        """The state a run file stores (host arrays), or one clear error for a damaged one."""

    @abc.abstractmethod
    def params_from_dataset(self, ds):
        """The (pi, m, Xi) of every weight matrix a run file stores."""

    @abc.abstractmethod
    def check_parameters(self, ds, path) -> None:
        """Refuse, in one line, a run file whose parameters are missing or damaged."""

    # -- order parameters ------------------------------------------------------------------------

    @abc.abstractmethod
    def order_reports(self, ds, tolerances: Mapping) -> list:
        """Per weight matrix ``(label, inputs, {order parameter: values over replicas})`` of a run
        file, recomputed from its parameters at ``tolerances`` (``mfphys order``); ``inputs`` is
        ``"all"``, or the name of a subset of the matrix's connections (``"live"`` inputs)."""

    # -- budget ------------------------------------------------------------------------------------

    @abc.abstractmethod
    def estimate(self, config, *, state: bool = True, dynamics_every: int | None = None):
        """Memory and disk (:class:`mfphys.budget.Estimate`) of a run, before anything is allocated;
        ``state``: whether the file holds the state for resuming."""

    def calibrate(self, config):
        """Time a few steps of ``config`` on this machine (the calibration :meth:`seconds` reads)."""
        return None

    def seconds(self, config, calibration) -> float:
        """Estimated seconds of a whole run from its calibration (NaN: unknown)."""
        return float("nan")

    def calibration_key(self, config) -> tuple:
        """Configurations with the same key share one calibration (same shapes and backend)."""
        return (self.name, config.to_json())

    def cost(self, config) -> float:
        """A rough relative cost of a run, to order a scan's cells (largest first on Dask)."""
        return float(config.epochs)

    # -- scans, perturbation, reproduce --------------------------------------------------------

    @abc.abstractmethod
    def scan_axes(self) -> ScanAxes:
        """The family's scan options and cell configurations."""

    def adaptive_axes(self) -> Mapping[str, AdaptiveAxis]:
        """The continuous axes an adaptive scan may sample (docs/scans.md "Adaptive scans"):
        by default every scannable integer or real option (rounded or as is, linear scale);
        a family adds derived axes and scales of its own."""
        sa = self.scan_axes()
        out = {}
        for name, kind in sa.options.items():
            if name in sa.not_scannable:
                continue
            if kind == "int":
                out[name] = AdaptiveAxis((name,), rounded_point(name))
            elif kind == "float":
                out[name] = AdaptiveAxis((name,), float_point(name))
        return out

    def scan_meta(self, fixed: Mapping) -> dict:
        """Extra keys of a scan's ``scan.json`` (besides grid, fixed, model, hash)."""
        return {}

    def cell_options(self, fixed: Mapping) -> dict:
        """Extra options of :meth:`run_to_dataset` for a scan's cell, from the scan's fixed options."""
        return {}

    def scan_matrices(self, cells: list[Mapping]) -> list:
        """The coordinate of :attr:`unit` in a combined scan view, given every cell's options."""
        raise NotImplementedError(f"the {self.title} family does not say its scan's weight matrices")

    def connections(self, options: Mapping) -> list[int]:
        """Connections of each weight matrix of a scan cell with these options."""
        raise NotImplementedError(f"the {self.title} family does not count its connections")

    def live_connections(self, options: Mapping, n_dead_inputs: int) -> list[int] | None:
        """Connections of each matrix counting only live inputs (None: the family has no such count)."""
        return None

    def scan_architecture(self, fixed: Mapping, grid: Mapping) -> str:
        """A scan's architecture in one line, from its fixed options and grid."""
        return self.title

    def perturb_targets(self, config) -> tuple[str, ...]:
        """The weight matrices a targeted perturbation can act on (empty: none)."""
        return ()

    def perturb_run(self, run_path, *, target: str | None = None, **options):
        """The targeted perturbation of a trained run file (docs/model.md section 7)."""
        from .errors import MfphysError

        raise MfphysError(f"{run_path}: the {self.title} model has no targeted perturbation")

    def experiments(self) -> Mapping[str, Experiment]:
        """The family's experiments for ``mfphys reproduce`` (name -> :class:`Experiment`)."""
        return {}
