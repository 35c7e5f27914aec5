"""What live run files cost: checkpoints and the order-parameter dynamics, against training.

    python bench/bench_checkpoint.py                 # the default MNIST run, R = 1, float32
    python bench/bench_checkpoint.py --replicas 8 --json bench/results/checkpoint.json

For the default set-up (784-100-100-10, first 10,000 MNIST images, batch 500, gBP) it times
one training epoch (median), one sample of the order parameters (``order.training_order``),
one histogram snapshot, and one checkpoint (building the dataset and writing the netCDF file
atomically, fsync included), and prints each at the defaults (``--dynamics-every``,
``--checkpoint-seconds``, the file written at the start) as a fraction of training time, the
sizes of the files (a finished resumable run file, the same without Adam's moments, a
checkpoint) and, end to end, a run trained in memory against the same run trained into a live
file at the defaults. Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from mfphys import order, runfile, store
from mfphys.train import (
    DYNAMICS_EVERY,
    TrainConfig,
    current_result,
    dynamics_due,
    finish,
    init_state,
    load_data,
    prepare,
    quiet_fp,
    train,
    train_epoch,
)


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=30, help="epochs of the end-to-end comparison")
    ap.add_argument("--repeat", type=int, default=7, help="repetitions of each timed piece (median)")
    ap.add_argument("--end-to-end", type=int, default=3, help="runs of each kind in the end-to-end comparison")
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--data-dir", default=os.environ.get("MFPHYS_DATA_DIR"))
    ap.add_argument("--json", help="also write the numbers to this JSON file")
    args = ap.parse_args()

    cfg = TrainConfig(replicas=args.replicas, backend=args.backend, epochs=100)
    ds = load_data(cfg, args.data_dir)
    out: dict = {"config": f"784-100-100-10 gBP, n_train 10000, batch 500, R={cfg.replicas}, {cfg.dtype}, "
                           f"{cfg.backend}", "defaults": {"dynamics_every": DYNAMICS_EVERY,
                                                          "checkpoint_seconds": runfile.CHECKPOINT_SECONDS,
                                                          "checkpoint_every": runfile.CHECKPOINT_EVERY}}
    with quiet_fp(), tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        setup = prepare(cfg, dataset=ds, dynamics_every=0)
        state = init_state(setup)
        epochs = []
        for _ in range(args.repeat + 1):
            t0 = time.perf_counter()
            state, _ = train_epoch(setup, state)
            epochs.append(time.perf_counter() - t0)
        epoch = statistics.median(epochs[1:])
        host = tuple(type(l)(*(setup.be.to_numpy(v) for v in l)) for l in state.params)
        live = ~setup.dead_inputs
        sample = median_time(lambda: order.training_order(host, live_inputs=live), args.repeat)

        def snapshot():
            edges = order.histogram_edges(host)
            return [np.stack([order.histogram(getattr(layer, k), e) for layer in host], axis=1)
                    for k, e in edges.items()]

        snap = median_time(snapshot, args.repeat)
        writer = runfile.writer_info()

        def checkpoint(path=tmp / "ckpt.nc"):
            res = current_result(setup, state)
            store.write_atomic(store.checkpoint_to_dataset(res, status="running", writer=writer), path)

        ckpt = median_time(checkpoint, args.repeat)
        build = median_time(lambda: store.checkpoint_to_dataset(current_result(setup, state), status="running"),
                            args.repeat)
        sizes = {f"checkpoint (epoch {state.epoch})": (tmp / "ckpt.nc").stat().st_size}

        # a finished run file, resumable (as mfphys train writes it) and without the state (a scan cell)
        while state.epoch < 10:
            state, _ = train_epoch(setup, state)
        short = setup.config.__class__(**{**vars(cfg), "epochs": 10})
        setup.config = short
        result = finish(setup, state, keep_state=True)
        store.write_atomic(store.checkpoint_to_dataset(result, status="done"), tmp / "done.nc")
        store.write_atomic(store.run_to_dataset(result), tmp / "cell.nc")
        sizes["finished run file (mfphys train, resumable)"] = (tmp / "done.nc").stat().st_size
        sizes["finished cell file (no optimizer state)"] = (tmp / "cell.nc").stat().st_size

        E = cfg.epochs
        n_samples = sum(dynamics_due(e, E, DYNAMICS_EVERY) for e in range(E + 1))
        n_snaps = len(order.snapshot_epochs(E))
        train_time = E * epoch
        ckpts = (1 + int(train_time // runfile.CHECKPOINT_SECONDS)) if runfile.CHECKPOINT_SECONDS else 1
        out["seconds"] = {"epoch": epoch, "dynamics sample": sample, "histogram snapshot": snap,
                          "checkpoint (build + write)": ckpt, "checkpoint (build only)": build}
        out["overhead at the defaults, fraction of training (100 epochs)"] = {
            f"dynamics ({n_samples} samples, {n_snaps} snapshots)": (n_samples * sample + n_snaps * snap) / train_time,
            f"checkpoints ({ckpts}: the file at the start + one every {runfile.CHECKPOINT_SECONDS:g} s)":
                ckpts * ckpt / train_time,
            "dynamics every epoch (for comparison)": (E * sample + n_snaps * snap) / train_time,
            "a checkpoint every epoch (for comparison)": ckpt / epoch,
        }
        out["bytes"] = sizes

        # end to end: the same short run in memory (no dynamics between the snapshot epochs, one
        # file at the end) and into a live file at the defaults, alternated, the fastest of each
        n = args.epochs
        short = TrainConfig(**{**vars(cfg), "epochs": n})
        t_plain, t_live = [], []
        for i in range(args.end_to_end):
            t0 = time.perf_counter()
            plain = train(short, dataset=ds, dynamics_every=0)
            store.write_atomic(store.run_to_dataset(plain), tmp / "plain.nc")
            t_plain.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            runfile.train_run(runfile.plan_run(tmp / f"live{i}.nc", short), dataset=ds)
            t_live.append(time.perf_counter() - t0)
        out["end to end"] = {"epochs": n, "in memory, file at the end (s)": min(t_plain),
                             "live file at the defaults (s)": min(t_live), "ratio": min(t_live) / min(t_plain)}

    for section, values in out.items():
        if isinstance(values, dict):
            print(f"{section}:")
            for k, v in values.items():
                text = f"{v:.4g}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)
                if "fraction" in section:
                    text = f"{100 * v:.2f} %"
                print(f"  {k:<70} {text}")
        else:
            print(f"{section}: {values}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
