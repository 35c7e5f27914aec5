"""Scans: grids of training runs over depth x data size (and any other option), resumable.

A scan trains one :func:`mfphys.train.train` run per *cell* of a grid, e.g. depth (number of
hidden layers, docs/model.md section 2) x ``n_train`` (data size P), ``replicas`` seeds per cell
trained together, every other :class:`~mfphys.train.TrainConfig` option held fixed. It is the
"phase diagram" experiment: order parameters (docs/model.md section 6) as functions of depth and P.

Folder layout (docs/scans.md, "The scan folder"; the TUI and analysis scripts rely on it)::

    runs/<name>/scan.json            the scan: grid, fixed options, scan_hash (written first)
    runs/<name>/cells/<key>.nc       one ordinary run file per finished cell
    runs/<name>/cells/<key>.failed.json   a failed cell: error, config_hash, time
    runs/<name>/cells/<key>.running  marker (JSON) while a cell trains

``<key>`` is ``name=value`` per scanned option in grid order, joined by commas, e.g.
``depth=2,n_train=1000`` (see :func:`cell_key`). A cell file carries the run schema
(docs/file-format.md) plus the attributes ``scan_cell`` (JSON of its coordinates),
``config_hash`` (SHA-256 of the cell's ``TrainConfig`` JSON), ``scan_hash`` and ``mfphys_version``.

Resume: a cell whose file opens and carries the expected ``config_hash`` (its attributes are
read, not its arrays) is never trained or written again; everything is written atomically
(temp file + fsync + rename), so a killed scan leaves only complete files behind. Cells run
in this process one after the other, or on a ``dask.distributed`` cluster (``workers`` = a
local cluster, ``scheduler`` = an existing one). Workers only train and return the result;
this process writes every file, so the files are the same whichever way the cells ran, and
workers need no shared file system.

The modules, one concern each: :mod:`~mfphys.scan.spec` (options, grid, :class:`ScanSpec`),
:mod:`~mfphys.scan.folder` (layout, markers, :func:`scan_status`), :mod:`~mfphys.scan.view`
(:func:`open_scan`), :mod:`~mfphys.scan.runner` (:func:`run_scan`), and the adaptive scans
(docs/scans.md "Adaptive scans"): :mod:`~mfphys.scan.adaptive` (:func:`run_adaptive_scan`, on
python-adaptive's learners) and :mod:`~mfphys.scan.adaptive_view` (its cells along ``cell``,
:func:`interpolate`). Every public name is
importable from ``mfphys.scan``; each module is loaded on first use (PEP 562), so reading a
scan's spec or progress does not import xarray, netCDF4 or Dask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

#: public name -> the module of this package that defines it
_LAZY = {
    **dict.fromkeys(("OPTIONS", "DEFAULTS", "ARCH_OPTIONS", "ARCH_DEFAULTS", "N_CLASSES", "NOT_OPTIONS",
                     "NOT_SCANNABLE", "ALWAYS_SCANNED", "Cell", "ScanSpec", "cell_key", "coerce_option",
                     "config_hash", "grid_points", "layers_of", "split_values", "spec_from_options",
                     "RNN_OPTIONS", "RNN_PRESET", "MODELS", "Family", "family", "axes", "config_model"),
                    "spec"),
    **dict.fromkeys(("SCAN_JSON", "CELLS", "KIND", "marker_alive", "read_scan_json", "scan_status"), "folder"),
    **dict.fromkeys(("RENAMED", "open_scan", "cell_path", "network_mean", "select_layer"), "view"),
    **dict.fromkeys(("ScanEvent", "ScanReport", "ScanPlan", "ClusterSpec", "plan_scan", "run_scan"), "runner"),
    **dict.fromkeys(("Axis", "AdaptiveSpec", "AdaptiveReport", "adaptive_spec_from_options", "parse_axis",
                     "plan_adaptive", "run_adaptive_scan", "target_value"), "adaptive"),
    **dict.fromkeys(("open_adaptive", "interpolate", "adaptive_status", "gridded"), "adaptive_view"),
}

__all__ = [
    "ALWAYS_SCANNED", "ARCH_DEFAULTS", "ARCH_OPTIONS", "DEFAULTS", "N_CLASSES", "NOT_OPTIONS", "NOT_SCANNABLE",
    "OPTIONS", "Cell", "ScanSpec", "cell_key", "coerce_option", "config_hash", "grid_points", "layers_of",
    "split_values", "spec_from_options", "RNN_OPTIONS", "RNN_PRESET", "MODELS", "Family", "family", "axes",
    "config_model",
    "CELLS", "KIND", "SCAN_JSON", "marker_alive", "read_scan_json", "scan_status",
    "RENAMED", "cell_path", "network_mean", "open_scan", "select_layer",
    "ScanEvent", "ScanReport", "ScanPlan", "ClusterSpec", "plan_scan", "run_scan",
    "Axis", "AdaptiveSpec", "AdaptiveReport", "adaptive_spec_from_options", "parse_axis", "plan_adaptive",
    "run_adaptive_scan", "target_value", "open_adaptive", "interpolate", "adaptive_status", "gridded",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names come from __getattr__
    from .adaptive import (
        AdaptiveReport,
        AdaptiveSpec,
        Axis,
        adaptive_spec_from_options,
        parse_axis,
        plan_adaptive,
        run_adaptive_scan,
        target_value,
    )
    from .adaptive_view import adaptive_status, gridded, interpolate, open_adaptive
    from .folder import CELLS, KIND, SCAN_JSON, marker_alive, read_scan_json, scan_status
    from .runner import ClusterSpec, ScanEvent, ScanPlan, ScanReport, plan_scan, run_scan
    from .spec import (
        ALWAYS_SCANNED,
        ARCH_DEFAULTS,
        ARCH_OPTIONS,
        DEFAULTS,
        MODELS,
        N_CLASSES,
        NOT_OPTIONS,
        NOT_SCANNABLE,
        OPTIONS,
        RNN_OPTIONS,
        RNN_PRESET,
        Cell,
        ScanSpec,
        cell_key,
        coerce_option,
        config_hash,
        config_model,
        family,
        grid_points,
        layers_of,
        spec_from_options,
        split_values,
    )
    from .view import RENAMED, cell_path, network_mean, open_scan, select_layer
