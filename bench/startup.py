"""Start-up time of the command line and of ``import mfphys``: median and minimum of N runs.

    python bench/startup.py [--runs 9]

Each command runs in a fresh process; the numbers include the interpreter's own start
(``python -c pass`` is printed as the floor). tests/test_packaging.py checks that none of these
commands imports xarray, pandas, netCDF4, Dask, matplotlib or Textual.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import mfphys": [sys.executable, "-c", "import mfphys"],
    "mfphys --help": [sys.executable, "-m", "mfphys", "--help"],
    "mfphys version": [sys.executable, "-m", "mfphys", "version"],
    "mfphys train --help": [sys.executable, "-m", "mfphys", "train", "--help"],
    "mfphys scan --help": [sys.executable, "-m", "mfphys", "scan", "--help"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    for name, cmd in COMMANDS.items():
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            times.append(time.perf_counter() - t0)
        print(f"{name:22s} median {statistics.median(times):.3f} s   min {min(times):.3f} s")


if __name__ == "__main__":
    main()
