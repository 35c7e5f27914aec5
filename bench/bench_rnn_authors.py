"""The recurrent model's row-wise MNIST epoch side by side with the reference implementation's.

For the row-wise MNIST protocol (28 steps of 28 pixels, N = 100, 200 mini-batches of 128, one
BLAS thread for both) this times, interleaved round by round in one process so that the load of
the machine hits all of them alike:

- our epoch as a run makes it (``mfphys.models.rnn.train.train_epoch``: the 200 mini-batch steps
  and the noise-free test evaluation on the 10,000 test images), float32 (the preset), with the
  next mini-batch's noise drawn on a second thread (the default on a machine with two cores) and
  drawn in line;
- the reference implementation's epoch (``--authors DIR``: the ``Results/MNIST digit
  classification`` folder of https://github.com/ZouWenXuan/Spike-and-Slab-RNN, NumPy, float64,
  as published): its ``train`` over the same 200 mini-batches of 128 and its noise-free
  ``test`` on the 10,000 test images (its per-epoch sampled test, which we do not make, left out);

and prints wall-clock medians and the ratios.

    python bench/bench_rnn_authors.py --authors DIR [--rounds 4] [--dtype float32] [--json out.json]

Nothing here is a test.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import time
from pathlib import Path

import numpy as np


def authors_epoch(folder, ds, batches, b_size):
    """The reference's network and one epoch of it (``train`` + noise-free ``test``) on our copy of
    the data: float32 images in [0, 1] and one-hot labels, as its own loader makes them.

    Its script defines its functions and classes, then loads MNIST and trains at the top level;
    only the definitions (the text before ``import loadm``) are run here, and the globals its
    functions read (``net1``, ``n_rec``, ``learn_rate``) are set as its script sets them."""
    path = os.path.join(folder, "BPTT-SAS-28by28.py")
    with open(path) as fh:
        src = fh.read()
    head = src.split("import loadm")[0]
    ns = {"__name__": "reference"}
    exec(compile(head, path, "exec"), ns)
    np.random.seed(0)  # noqa: NPY002 (their code draws from NumPy's global stream)
    ns["n_rec"] = 100
    ns["learn_rate"] = np.full(9, 1e-3)
    ns["net1"] = ns["RNN"](28, 100, 10)
    onehot = np.eye(10)
    train_data, train_label = ds.x_train.astype(np.float32), onehot[ds.y_train]
    test_data, test_label = ds.x_test.astype(np.float32), onehot[ds.y_test]

    def epoch():
        with contextlib.redirect_stdout(io.StringIO()):  # they print a progress line per mini-batch
            ns["train"](ns["net1"], b_size, batches, train_data, train_label, ns["learn_rate"], "Adam")
            ns["test"](ns["net1"], test_data, test_label, sampling=False)

    return epoch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--authors", required=True, help="the 'Results/MNIST digit classification' folder of the "
                                                      "reference repository")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--data-dir", default=os.environ.get("MFPHYS_DATA_DIR"))
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    from mfphys.data import load_dataset
    from mfphys.models.rnn import noise
    from mfphys.models.rnn.train import init_state, prepare, train_epoch
    from mfphys.rnn import preset

    threadpool_limits(1, user_api="blas")  # both sides on one BLAS thread (the preset's blas_threads)
    ds = load_dataset("mnist", data_dir=a.data_dir)
    cfg = dataclasses.replace(preset("row_mnist"), dtype=a.dtype, epochs=10 * (a.rounds + 1), eval_samples=0)
    setups = {}
    for ahead in (True, False):
        setup = prepare(cfg, dataset=ds, dynamics_every=0)
        setups[ahead] = [setup, init_state(setup)]
    theirs = authors_epoch(a.authors, ds, cfg.batches_per_epoch, cfg.batch_size)
    pays = noise.ahead_pays
    print(f"load average before: {os.getloadavg()}; noise drawn ahead pays here: "
          f"{pays([np.random.default_rng()])}", flush=True)
    times: dict[str, list] = {}
    for rnd in range(a.rounds + 1):  # round 0 warms up
        for ahead, st in setups.items():
            noise.ahead_pays = (lambda rngs: pays(rngs)) if ahead else (lambda rngs: False)
            try:
                t0 = time.perf_counter()
                st[1], _ = train_epoch(st[0], st[1])
                t = time.perf_counter() - t0
            finally:
                noise.ahead_pays = pays
            if rnd:
                times.setdefault(f"ours {a.dtype}, noise {'ahead' if ahead else 'in line'}", []).append(t)
        t0 = time.perf_counter()
        theirs()
        if rnd:
            times.setdefault("reference (float64)", []).append(time.perf_counter() - t0)
        print(f"round {rnd}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"\nwall-clock, medians over {a.rounds} interleaved rounds (seconds per epoch, one BLAS thread, "
          "test evaluation included):")
    for k, v in med.items():
        print(f"  {k:40s} {v:.3f}")
    ref = med["reference (float64)"]
    for k, v in med.items():
        if k.startswith("ours"):
            print(f"  reference / {k}: {ref / v:.2f}x")
    print(f"load average after: {os.getloadavg()}")
    if a.json:
        Path(a.json).write_text(json.dumps({"load_after": os.getloadavg(), "epoch": med, "rounds": times}, indent=1))


if __name__ == "__main__":
    main()
