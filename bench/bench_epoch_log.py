"""What the epoch log costs, and how far a watcher is behind the trainer (docs/file-format.md "The epoch log").

    python bench/bench_epoch_log.py                   # the default MNIST run, R = 1, float32
    python bench/bench_epoch_log.py --replicas 8 --json bench/results/epoch-log.json

Cost: for the default set-up (784-100-100-10, first 10,000 MNIST images, batch 500, gBP) it
times one training epoch (median) and one line of the log (the family's ``epoch_log`` and
``EpochLog.append``: JSON, open, write, flush, close), at an epoch without and with the
dynamics, and prints the bytes of each line.

Lag: it trains a run in another process (``train_run`` at the default checkpoint policy; the
process writes its epoch to a side file right after each line of the log: the truth) and polls
every ``--poll`` seconds how many epochs a watcher sees: ``open_run(log=False)`` (the last
checkpoint, what the TUI showed before the log), ``open_run`` (with the log) and the TUI
sidebar's entry (``list_entries``). The TUI reads at its ``--interval`` (default 2.5 s) on top
of this. Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

TRAINER = """
import sys
from pathlib import Path
from mfphys import runfile
from mfphys.train import TrainConfig
path, side, epochs, replicas = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
config = TrainConfig(epochs=epochs, replicas=replicas)

def told(record):
    tmp = side.with_suffix(".tmp")
    tmp.write_text(str(record.epoch))
    tmp.replace(side)

runfile.train_run(runfile.plan_run(path, config), callback=told)
"""


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cost(replicas: int, repeat: int) -> dict:
    from mfphys import registry, runlog
    from mfphys.train import TrainConfig

    config = TrainConfig(epochs=10, replicas=replicas)
    family = registry.of_config(config)
    setup = family.prepare(config)
    with family.running(config):
        state = family.init_state(setup)
        epoch_times, lines = [], {}
        with tempfile.TemporaryDirectory() as tmp:
            log = runlog.EpochLog(Path(tmp) / "a.nc", "now")
            log.start(0)
            while state.epoch < 5:
                t0 = time.perf_counter()
                state, _ = family.train_epoch(setup, state)
                epoch_times.append(time.perf_counter() - t0)
                kind = "dyn" if state.dynamics.epochs[-1] == state.epoch else "plain"
                if kind not in lines or kind == "dyn":
                    rec = family.epoch_log(setup, state)
                    lines[kind] = (median_time(lambda s=state: log.append(family.epoch_log(setup, s)), repeat),
                                   len(runlog._line({**rec, "at": time.time()})))
    epoch = statistics.median(epoch_times[1:])
    out = {"epoch_seconds": epoch}
    for kind, (sec, size) in lines.items():
        out[f"line_{kind}_seconds"], out[f"line_{kind}_bytes"] = sec, size
        out[f"line_{kind}_share"] = sec / epoch
    return out


def lag(replicas: int, epochs: int, poll: float) -> dict:
    from cli.tui.models.cache import CACHE
    from cli.tui.models.listing import list_entries
    from mfphys import open_run
    from mfphys.errors import MfphysError

    with tempfile.TemporaryDirectory() as tmp:
        path, side = Path(tmp) / "live.nc", Path(tmp) / "epoch.txt"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, "-c", TRAINER, str(path), str(side), str(epochs), str(replicas)],
                                env=env, cwd=REPO)
        samples = []
        try:
            while proc.poll() is None:
                time.sleep(poll)
                try:
                    truth = int(side.read_text())
                    t0 = time.perf_counter()
                    ds_ckpt = open_run(path, log=False)
                    t1 = time.perf_counter()
                    ds = open_run(path)
                    t2 = time.perf_counter()
                    CACHE.clear()
                    entry = next(e for e in list_entries(tmp) if e.path.name == "live.nc")
                    if ds.attrs.get("status") == "done":
                        break
                except (OSError, ValueError, MfphysError, StopIteration):
                    continue
                samples.append({"truth": truth, "checkpoint": truth - ds_ckpt.sizes["epoch"],
                                "log": truth - ds.sizes["epoch"], "sidebar": truth - (entry.epochs_done or 0),
                                "read_checkpoint_s": t1 - t0, "read_log_s": t2 - t1})
        finally:
            proc.wait()
    out = {"polls": len(samples), "poll_seconds": poll}
    for k in ("checkpoint", "log", "sidebar"):
        v = [s[k] for s in samples]
        out[f"behind_{k}_mean"] = statistics.mean(v) if v else float("nan")
        out[f"behind_{k}_max"] = max(v) if v else float("nan")
    for k in ("read_checkpoint_s", "read_log_s"):
        out[k] = statistics.median(s[k] for s in samples) if samples else float("nan")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=25, help="epochs of the watched run")
    ap.add_argument("--repeat", type=int, default=51, help="repetitions of each timed line (median)")
    ap.add_argument("--poll", type=float, default=0.5, help="seconds between the watcher's reads")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    result = {"replicas": args.replicas, "loadavg": os.getloadavg()}
    result.update(cost(args.replicas, args.repeat))
    print(json.dumps(result), flush=True)
    result.update(lag(args.replicas, args.epochs, args.poll))
    result["loadavg_after"] = os.getloadavg()
    for k, v in result.items():
        print(f"{k:24} {v:.4g}" if isinstance(v, float) else f"{k:24} {v}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
