"""Time estimates against real runs: ``train --dry-run``, ``scan --dry-run`` and the announcement
of ``reproduce`` (docs/cli.md "How long").

    MFPHYS_DATA_DIR=... python bench/bench_estimates.py [--json out.json] [--skip-reproduce]

Each case runs the estimate, then the real command, in fresh processes one after the other, and
prints the estimate, the real wall time, their ratio and the load average before and after: the
estimates time a few steps at the load of that moment, so a load that changes in between moves
the ratio (bench/README.md "Estimates"). Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    "train teacher 784-100-10, P=2000, 10 epochs": (
        ["train", "--dataset", "teacher", "--layers", "784,100,10", "--n-train", "2000", "--epochs", "10",
         "--backend", "numpy", "--blas-threads", "1"], "train"),
    "train MNIST 784-100-100-10, P=10000, 5 epochs, R=3": (
        ["train", "--epochs", "5", "-R", "3", "--backend", "numpy", "--blas-threads", "1"], "train"),
    "scan teacher depth 1,2 x P 1000,3000, 5 epochs": (
        ["scan", "--dataset", "teacher", "--depth", "1,2", "--n-train", "1000,3000", "--epochs", "5",
         "--backend", "numpy"], "scan"),
    "reproduce perturbation --quick": (["reproduce", "perturbation", "--quick", "--backend", "numpy"], "reproduce"),
}


def seconds_of(text: str) -> float | None:
    m = re.search(r"estimated time: ([\d.]+) (s|min)", text) or re.search(r"estimated time\s+([\d.]+) (min)", text) \
        or re.search(r"expected duration about ([\d.]+) (s|min)", text)
    if not m:
        return None
    return float(m.group(1)) * (60 if m.group(2) == "min" else 1)


def run(args, cwd, env):
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "mfphys", *args], cwd=cwd, env=env, capture_output=True, text=True)
    return time.perf_counter() - t0, p.stdout + p.stderr, p.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--skip-reproduce", action="store_true")
    args = ap.parse_args()
    env = {**os.environ, "COLUMNS": "200"}
    results = []
    for name, (cmd, kind) in CASES.items():
        if kind == "reproduce" and args.skip_reproduce:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            load0 = os.getloadavg()[0]
            if kind == "reproduce":  # the announcement is the first line of the real run
                wall, out, rc = run([*cmd, "--out", f"{tmp}/r"], tmp, env)
                est = seconds_of(out)
            else:
                where = ["--out", f"{tmp}/x.nc" if kind == "train" else f"{tmp}/s"]
                _, out, rc = run([*cmd, *where, "--dry-run"], tmp, env)
                est = seconds_of(out)
                wall, out, rc = run([*cmd, *where, "-q"] if kind == "scan" else [*cmd, *where], tmp, env)
            load1 = os.getloadavg()[0]
            shutil.rmtree(tmp, ignore_errors=True)
        row = {"case": name, "estimate_s": est, "real_s": round(wall, 1), "ratio": None if est is None else
               round(est / wall, 2), "load_before": round(load0, 1), "load_after": round(load1, 1), "rc": rc}
        results.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
