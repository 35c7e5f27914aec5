"""mfphys: the mean-field spike-and-slab ensemble model of Li & Huang (PRL 125, 178301, 2020).

Public surface for scripts::

    import mfphys
    result = mfphys.train(mfphys.TrainConfig(epochs=10))
    mfphys.save_run(result, "runs/demo.nc")
    ds = mfphys.open_run("runs/demo.nc")        # an xarray.Dataset

``import mfphys`` is light: it loads NumPy and the training engine; the storage and scan
names (xarray, netCDF4, Dask) are loaded on first use (PEP 562), so a script that only trains
never imports them, and the ``mfphys`` command starts fast.
The front ends (``mfphys.cli``: typer, rich, Textual, matplotlib) are never imported by the
library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

from . import _process  # (first: a Ctrl-C while importing is one line in the command)

_process.install()

from . import _compat  # noqa: E402
from ._lazy import lazy_exports  # noqa: E402

_compat.install()  # the module paths of earlier versions keep working (the table is in _compat)

# Eager: `mfphys.train` must stay the function even after `import mfphys.train` (the submodule
# import binds the module, through its legacy path, to the package attribute; this import, run
# first, registers that path and rebinds the attribute to the function).
from .errors import DivergenceError, MfphysError  # noqa: E402
from .registry import families  # noqa: E402
from .train import TrainConfig, TrainResult, train  # noqa: E402

#: public name -> the module that defines it, loaded on first access
_LAZY = {
    "open_run": "store", "open_runs": "store", "save_run": "store", "run_to_dataset": "store",
    "ScanSpec": "scan", "open_scan": "scan", "run_scan": "scan", "run_adaptive_scan": "scan",
}

__all__ = ["__version__", "families", "MfphysError", "DivergenceError", "TrainConfig", "TrainResult", "train",
           "open_run", "open_runs", "save_run", "run_to_dataset", "ScanSpec", "open_scan", "run_scan",
           "run_adaptive_scan"]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())


if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names come from __getattr__
    from .scan import ScanSpec, open_scan, run_adaptive_scan, run_scan
    from .store import open_run, open_runs, run_to_dataset, save_run
