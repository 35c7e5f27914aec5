"""mfphys: the mean-field spike-and-slab ensemble model of Li & Huang (PRL 125, 178301, 2020).

Public surface for scripts::

    import mfphys
    result = mfphys.train(mfphys.TrainConfig(epochs=10))
    mfphys.save_run(result, "runs/demo.nc")
    ds = mfphys.open_run("runs/demo.nc")        # an xarray.Dataset
"""

__version__ = "0.1.0"

from .errors import DivergenceError, MfphysError  # noqa: E402
from .store import open_run, save_run, run_to_dataset  # noqa: E402
from .train import TrainConfig, TrainResult, train  # noqa: E402
from .scan import ScanSpec, open_scan, run_scan  # noqa: E402

__all__ = ["__version__", "MfphysError", "DivergenceError", "TrainConfig", "TrainResult", "train", "open_run",
           "save_run", "run_to_dataset", "ScanSpec", "open_scan", "run_scan"]
