"""What live recurrent run files cost: checkpoints and the order-parameter dynamics, against training.

    python bench/bench_rnn_checkpoint.py                  # row_mnist, R = 1, float32, 3 epochs
    python bench/bench_rnn_checkpoint.py --epochs 4 --json bench/results/rnn-checkpoint.json

For the row-wise MNIST preset (28 steps of 28 pixels, N = 100, 200 mini-batches of 128 per
epoch) it times one training epoch (median over the epochs), one sample of the order
parameters per matrix (``mfphys.rnn.train.dynamics_order``, with the no-diagonal variants), one
histogram snapshot, one checkpoint (building the dataset and writing the netCDF file atomically,
fsync included) and the file's size, and, end to end, ``train_rnn`` in memory against the same
run trained into a live file at the defaults (``mfphys train --model rnn``). Speed is measured
here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench_checkpoint import median_time  # the script's folder is on sys.path (python bench/...)

from mfphys import order, runfile, store
from mfphys.data import load_dataset
from mfphys.model import Layer
from mfphys.rnn import preset, train_rnn
from mfphys.rnn import train as rt
from mfphys.rnn.model import RnnParams
from mfphys.rnn.store import rnn_checkpoint_to_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--replicas", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5, help="repetitions of each small timed piece (median)")
    ap.add_argument("--end-to-end", type=int, default=3, help="runs of each kind in the end-to-end comparison")
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--data-dir", default=os.environ.get("MFPHYS_DATA_DIR"))
    ap.add_argument("--json", help="also write the numbers to this JSON file")
    args = ap.parse_args()

    cfg = dataclasses.replace(preset("row_mnist"), epochs=args.epochs, replicas=args.replicas, backend=args.backend,
                              eval_samples=2)
    ds = load_dataset("mnist", n_train=cfg.n_train, n_test=cfg.n_test, data_dir=args.data_dir)
    out: dict = {"config": f"row_mnist, {args.epochs} epochs, R={cfg.replicas}, {cfg.dtype}, {cfg.backend}",
                 "defaults": {"dynamics_every": rt.DYNAMICS_EVERY, "checkpoint_seconds": runfile.CHECKPOINT_SECONDS}}
    with rt.running(cfg), tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        setup = rt.prepare(cfg, dataset=ds, dynamics_every=0)
        state = rt.init_state(setup)
        epochs = []
        while not rt.finished(setup, state):
            t0 = time.perf_counter()
            state, _ = rt.train_epoch(setup, state)
            epochs.append(time.perf_counter() - t0)
        epoch = statistics.median(epochs)
        host = RnnParams(*(Layer(*(setup.be.to_numpy(v) for v in layer)) for layer in state.params))
        sample = median_time(lambda: rt.dynamics_order(host), args.repeat)

        def snap():
            edges = order.histogram_edges(host)
            return [order.histogram(getattr(layer, k), e) for k, e in edges.items() for layer in host]

        snapshot = median_time(snap, args.repeat)
        path = tmp / "c.nc"
        building = median_time(lambda: rnn_checkpoint_to_dataset(rt.current_result(setup, state), status="running"),
                               args.repeat)
        dsc = rnn_checkpoint_to_dataset(rt.current_result(setup, state), status="running")
        writing = median_time(lambda: store.write_atomic(dsc, path), args.repeat)
        out["pieces_seconds"] = {"epoch": epoch, "epochs": epochs, "dynamics_sample": sample, "snapshot": snapshot,
                                 "checkpoint_dataset": building, "checkpoint_write": writing}
        out["checkpoint_bytes"] = path.stat().st_size

        mems, files = [], []
        live = tmp / "live.nc"
        for _ in range(args.end_to_end):  # alternated, the fastest of each kind: a busy machine is noisy
            t0 = time.perf_counter()
            train_rnn(cfg, dataset=ds)
            mems.append(time.perf_counter() - t0)
            live.unlink(missing_ok=True)
            t0 = time.perf_counter()
            runfile.train_run(runfile.Plan("new", live, cfg), dataset=ds)
            files.append(time.perf_counter() - t0)
        mem, file = min(mems), min(files)
        out["end_to_end_seconds"] = {"in_memory": mems, "live_file": files, "overhead_of_fastest": file / mem - 1}
        out["final_file_bytes"] = live.stat().st_size
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
