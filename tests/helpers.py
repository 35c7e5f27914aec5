"""Helpers shared by the tests (imported as ``from tests.helpers import ...``, never from conftest)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mfphys.backend import get_backend

REPO = Path(__file__).resolve().parents[1]

#: parametrize over backends: ``@pytest.mark.parametrize("backend", BACKENDS)``
BACKENDS = ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)]


def mnist_path() -> Path:
    """Real MNIST for the tests: $MFPHYS_DATA_DIR, else the data folder CI keeps beside the repository."""
    env = os.environ.get("MFPHYS_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data" / "mnist"


def backend64(name: str):
    return get_backend(name, "float64")


def one_error_line(res, expect: str, code: int = 2) -> None:
    """A CLI result ended with exit ``code`` and exactly one ``error: ...`` line containing ``expect``."""
    assert res.exit_code == code, (res.exit_code, res.output)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], res.stderr


def snapshot(folder: Path) -> dict:
    """Every file below ``folder``: relative path -> (SHA-256, mtime_ns), to prove nothing was touched
    (a scan folder's ``.lock``, rewritten by every scan process that takes it, is left out)."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


#: what differs between two runs with the same numbers: wall-clock times
TIMING_VARIABLES = ("epoch_seconds", "eval_seconds")


def assert_same_run(a, b, *, dynamics: bool = True) -> None:
    """Two run files (datasets) hold the same numbers, bit for bit: parameters, Adam's moments,
    learning curves, sampled evaluation, order parameters, random-stream states and, with
    ``dynamics``, the order parameters recorded during training; times left out."""
    import numpy as np

    names = {k for k in a.data_vars if k not in TIMING_VARIABLES}
    if not dynamics:
        names = {k for k in names if not k.startswith(("dyn_", "snap_"))}
    assert names == {k for k in b.data_vars if k not in TIMING_VARIABLES and (dynamics or not k.startswith(
        ("dyn_", "snap_")))}, sorted(names ^ set(b.data_vars))
    for k in sorted(names):
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)
    for k in ("epochs_done", "adam_count", "opt_count", "replicas_active", "rng_state", "config"):
        assert a.attrs.get(k) == b.attrs.get(k), k


def assert_same_scan_views(a, b) -> None:
    """Two scan folders' ``open_scan`` views hold the same numbers, bit for bit (times aside)."""
    import numpy as np

    from mfphys import scan

    va, vb = scan.open_scan(a), scan.open_scan(b)
    for k in va.data_vars:
        if k not in TIMING_VARIABLES and not k.endswith("seconds") and va[k].dtype.kind == "f":
            np.testing.assert_array_equal(va[k].values, vb[k].values, err_msg=k)


def default_sigint() -> None:
    """A child's Ctrl-C as a terminal gives it: a test suite started in the background by a
    non-interactive shell (``pytest &``) ignores SIGINT, its children inherit that, and Python
    then installs no KeyboardInterrupt handler. ``preexec_fn`` of the subprocesses below."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_mfphys(*args, **kw) -> subprocess.Popen:
    """``python -m mfphys ARGS`` as a real subprocess (for signals), one BLAS thread, wide output."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "mfphys", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO, preexec_fn=default_sigint, **kw)


def start_python(code: str) -> subprocess.Popen:
    """``python -c CODE`` in the repository (``tests.helpers`` importable), one BLAS thread."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=REPO, preexec_fn=default_sigint)


async def wait_until(pilot, cond, what: str, *, timeout: float = 30.0, check=None) -> None:
    """Let the app run until ``cond()`` holds; ``check()`` is called on every round (to stop early
    on a failed helper process). The timeout only guards against a hang: no test asserts on speed."""
    import time

    deadline = time.monotonic() + timeout
    while not cond():
        if check is not None:
            check()
        if time.monotonic() > deadline:
            pytest.fail(f"the app did not show {what} (gave up after {timeout} s)")
        await pilot.pause(0.05)


def wait_for_checkpoint(path: Path, epochs: int, proc: subprocess.Popen, timeout: float = 120.0) -> int:
    """Poll the run file ``path`` until its checkpoint holds at least ``epochs`` epochs; returns
    that count. Fails if ``proc`` ends first (it should still be training) or time runs out."""
    import time

    from mfphys.errors import MfphysError
    from mfphys.store import read_attrs

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            pytest.fail(f"the process ended (exit {proc.returncode}) before epoch {epochs}: {proc.stderr.read()}")
        try:
            done = int(read_attrs(path).get("epochs_done", -1)) if path.exists() else -1
        except MfphysError:
            done = -1
        if done >= epochs:
            return done
        time.sleep(0.005)
    pytest.fail(f"{path} did not reach epoch {epochs} in {timeout} s")


# --- tiny scans (tests/scan, tests/cli/test_scan.py) --------------------------------------------------

#: options of a tiny teacher-student scan cell: 20 inputs, width 16, 3 epochs (a 3 x 3 scan takes ~1 s)
SCAN_TINY = dict(dataset="teacher", input_dim="20", width="16", epochs="3", batch_size="100", replicas="2",
                 n_test="200", backend="numpy")
SCAN_GRID = dict(depth="1,2,3", n_train="200,400,600")


def tiny_spec(**over):
    """The spec of the tiny 3 x 3 scan, options as command-line text (``over`` replaces some)."""
    from mfphys.scan import spec_from_options

    return spec_from_options({**SCAN_GRID, **SCAN_TINY, **over})


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped): a marker's owner that is gone."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --- the terminal UI (tests/tui/) ----------------------------------------------------------------
# Fixture folders are made by the project's own code (mfphys.train, mfphys.scan.run_scan,
# mfphys.perturb) with tiny teacher-student networks; the stored dates are pinned so that the
# snapshots do not change from day to day. Imports are local: most tests never need them.

#: the stored creation date of every fixture file
CREATED = "2026-01-15T09:30:00+00:00"
#: the terminal size of the pilot and snapshot tests
SIZE = (120, 40)
SCAN_FIXED = dict(dataset="teacher", input_dim=20, width=16, epochs=2, batch_size=100, replicas=2, n_test=200,
                  backend="numpy", eval_samples=2)


def tiny_config(**kw):
    """A TrainConfig of a tiny teacher-student run (2 replicas, 3 epochs, a few seconds)."""
    from mfphys.train import TrainConfig

    base = dict(dataset="teacher", layers=(20, 16, 10), n_train=300, n_test=300, epochs=3, batch_size=100,
                replicas=2, backend="numpy", eval_samples=2, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def write_run(path: Path, cfg):
    """Train ``cfg`` and write its run file with a pinned creation date."""
    from mfphys import store
    from mfphys.train import train

    result = train(cfg)
    ds = store.run_to_dataset(result, command="tests")
    ds.attrs.update(created=CREATED, history=f"{CREATED} tests")
    store.write_atomic(ds, path)
    return result


def write_checkpoint(path: Path, cfg, epochs: int, *, status: str = "running", writer: dict | None = None):
    """A run file as ``mfphys train`` leaves it after ``epochs`` epochs of ``cfg``: trained with the
    steps of ``mfphys.train`` and written by the checkpointing code (``store.checkpoint_to_dataset``
    + ``store.write_atomic``), with ``status`` and ``writer`` (default: this live process)."""
    from mfphys import runfile, store
    from mfphys.train import current_result, init_state, prepare, train_epoch

    setup = prepare(cfg)
    state = init_state(setup)
    for _ in range(epochs):
        state, _ = train_epoch(setup, state)
    ds = store.checkpoint_to_dataset(current_result(setup, state), status=status, created=CREATED,
                                     writer=runfile.writer_info() if writer is None else writer,
                                     segments=[{"action": "new", "from_epoch": 0, "epochs": cfg.epochs,
                                                "started": CREATED, "command": "tests"}])
    store.write_atomic(ds, path)
    return ds


#: a run trained by ``mfphys.runfile.train_run`` in another process, a checkpoint every
#: ``every`` epochs (0: none between the start and the end), each epoch held back until the test
#: creates ``<gate>/go-<epoch>`` (see start_paced_run)
_PACED_RUN = """
import sys, time
from pathlib import Path
from mfphys import runfile
from tests.helpers import tiny_config

path, gate, epochs, every = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
config = tiny_config(epochs=epochs)
family = runfile.family_of(config)
train_epoch = family.train_epoch

def paced(setup, state):
    while not (gate / f"go-{state.epoch + 1}").exists():
        time.sleep(0.01)
    return train_epoch(setup, state)

family.train_epoch = paced
plan = runfile.plan_run(path, config)
runfile.train_run(plan, policy=runfile.CheckpointPolicy(every=every, seconds=0))
"""


def start_paced_run(path: Path, gate: Path, epochs: int, every: int = 1) -> subprocess.Popen:
    """``mfphys.runfile.train_run`` of a tiny run into ``path`` in a subprocess: the file is written
    at the start (0 epochs, status running), epoch k trains once the test creates
    ``gate / f"go-{k}"`` (then its line of the epoch log and, every ``every`` epochs, a
    checkpoint are written), and last the file with status done."""
    gate.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", _PACED_RUN, str(path), str(gate), str(epochs), str(every)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def write_perturbation(path: Path, result, cfg) -> None:
    from mfphys import store
    from mfphys.perturb import perturbation, perturbation_dataset
    from mfphys.train import load_data

    data = load_data(cfg)
    res = perturbation(result.params, 1, [0.0, 0.25, 0.5, 1.0], data.x_test, data.y_test, samples=2, seed=0)
    ds = perturbation_dataset(res, attrs={"source": "gbp.nc", "layer": 1, "created": CREATED,
                                          "dataset": "teacher", "architecture": store.architecture(cfg.layers)})
    store.write_atomic(ds, path)


class _Stop(Exception):
    pass


def _pin_created(folder: Path) -> None:
    import json

    meta = json.loads((folder / "scan.json").read_text())
    meta["created"] = CREATED
    (folder / "scan.json").write_text(json.dumps(meta, indent=1))


def write_scan(folder: Path, depth, n_train, *, stop_at_cell: int | None = None, **fixed):
    """``run_scan`` of tiny cells into ``folder``; ``stop_at_cell = k`` stops it as cell k starts.
    Returns the scan's ``ScanSpec``."""
    import contextlib

    from mfphys import scan

    spec = scan.ScanSpec.build({"depth": list(depth), "n_train": list(n_train)}, {**SCAN_FIXED, **fixed},
                               name=folder.name)
    started = []

    def stop(ev):
        if ev.kind == "cell_start":
            started.append(ev.cell)
            if stop_at_cell is not None and len(started) > stop_at_cell:
                raise _Stop
        if ev.kind == "begin" and stop_at_cell == 0:
            raise _Stop

    with contextlib.suppress(_Stop):  # cells one at a time (not packed), as stop_at_cell counts them
        scan.run_scan(spec, folder, callback=stop, pack=False)
    _pin_created(folder)
    return spec


def mark_running(folder: Path, key: str) -> None:
    """A ``.running`` marker owned by this (live) process, as a scan in progress writes it."""
    import json
    import socket

    from mfphys.fileio import boot_id

    info = {"pid": os.getpid(), "host": socket.gethostname(), "started": CREATED, "owner_pid": os.getpid(),
            "owner_host": socket.gethostname(), "boot_id": boot_id()}
    (folder / "cells" / f"{key}.running").write_text(json.dumps(info))


def mark_failed(folder: Path, key: str, error: str) -> None:
    import json

    (folder / "cells" / f"{key}.failed.json").write_text(json.dumps({"error": error, "config_hash": "x"}))


def make_runs(root: Path) -> Path:
    """A healthy folder: a gBP run, its BP baseline, a perturbation file and a finished 2 x 2 scan."""
    root.mkdir(parents=True, exist_ok=True)
    cfg = tiny_config()
    result = write_run(root / "gbp.nc", cfg)
    write_run(root / "bp.nc", tiny_config(mode="bp"))
    write_perturbation(root / "pert.nc", result, cfg)
    write_scan(root / "scan", depth=(1, 2), n_train=(200, 400))
    return root


def make_broken(root: Path) -> Path:
    """A folder of problems: corrupt and foreign .nc files, an empty scan, a scan still being written."""
    import numpy as np
    import xarray as xr

    root.mkdir(parents=True, exist_ok=True)
    (root / "corrupt.nc").write_bytes(b"CDF\x01" + bytes(range(256)) * 4)
    xr.Dataset({"t": ("x", np.arange(3.0))}).to_netcdf(root / "foreign.nc", engine="netcdf4")
    write_scan(root / "empty-scan", depth=(1, 2), n_train=(200,), stop_at_cell=0)
    spec = write_scan(root / "writing-scan", depth=(1, 2), n_train=(200, 400), stop_at_cell=1)
    cells = spec.cells()
    mark_running(root / "writing-scan", cells[1].key)
    mark_failed(root / "writing-scan", cells[2].key, "training diverged at epoch 2: try a smaller --lr")
    (root / "not-a-scan").mkdir(exist_ok=True)
    (root / "not-a-scan" / "scan.json").write_text('{"grid": ')
    (root / ".gbp.nc.123.tmp").write_bytes(b"half")
    return root


def make_big_scan(folder: Path, depths=range(10), n_trains=tuple(range(100, 1300, 100))):
    """A scan of len(depths) x len(n_trains) cells (120 by default), written cheaply.

    ``run_scan`` writes scan.json (stopped before any cell); then one tiny run per depth is
    trained and written once per n_train with that cell's ``scan_cell`` and ``config_hash``
    attributes, as ``run_scan`` would write it. Returns the scan's ``ScanSpec``.
    """
    import dataclasses
    import json
    import shutil

    import netCDF4

    from mfphys import store
    from mfphys.train import train

    spec = write_scan(folder, depth=tuple(depths), n_train=n_trains, stop_at_cell=0, epochs=1)
    templates = {}
    for cell in spec.cells():
        c = dict(cell.coords)
        if c["depth"] not in templates:
            templates[c["depth"]] = folder / f"template-{c['depth']}.nc"
            cfg = dataclasses.replace(cell.config, n_train=200)
            store.write_atomic(store.run_to_dataset(train(cfg)), templates[c["depth"]])
        path = folder / "cells" / f"{cell.key}.nc"
        shutil.copyfile(templates[c["depth"]], path)
        with netCDF4.Dataset(path, "a") as nc:  # the attributes run_scan adds to a cell file
            nc.setncatts({"scan_cell": json.dumps(c), "config_hash": cell.config_hash})
    for t in templates.values():
        t.unlink()
    return spec


def app_for(root, **kw):
    """The TUI on ``root``, without the live refresh unless ``interval`` is given."""
    from mfphys.cli.tui.app import MfphysTUI

    return MfphysTUI(root, interval=kw.pop("interval", 0), **kw)


def screen_text(app) -> str:
    """The app's screen as plain text (what a terminal shows), for assertions.

    Read from Textual's public SVG screenshot (``App.export_screenshot``): every ``<text>`` run
    of characters is put back at its column (x over the character width) on its line (the
    ``line-N`` clip path); the window title, which has no line, is left out.
    """
    import html
    import re

    from rich.cells import cell_len

    width, height = app.size
    rows = [[" "] * width for _ in range(height)]
    for attrs, body in re.findall(r"<text ([^>]*)>([^<]*)</text>", app.export_screenshot()):
        a = dict(re.findall(r'([\w-]+)="([^"]*)"', attrs))
        line = re.search(r"-line-(\d+)\)", a.get("clip-path", ""))
        text = html.unescape(body).replace("\xa0", " ")
        if line is None or not text:
            continue
        y, col = int(line.group(1)), round(float(a["x"]) * len(text) / float(a["textLength"]))
        for ch in text:
            if 0 <= y < height and 0 <= col < width:
                rows[y][col] = ch
                for k in range(1, cell_len(ch)):  # the second cell of a wide character
                    if col + k < width:
                        rows[y][col + k] = ""
            col += cell_len(ch)
    return "\n".join("".join(r).rstrip() for r in rows)


def static_text(app, selector: str) -> str:
    """The text a ``Static`` widget shows (its public ``content``), without styles."""
    from textual.widgets import Static

    return str(app.query_one(selector, Static).content)


async def settle(app, pilot, rounds: int = 3) -> None:
    """Wait until the app's worker threads are done and their results are drawn."""
    import contextlib

    from textual.worker import WorkerCancelled

    for _ in range(rounds):
        for worker in list(app.workers):
            with contextlib.suppress(WorkerCancelled):  # replaced by a newer one (live refresh): fine
                await worker.wait()
        await pilot.pause()


async def select(app, pilot, name: str) -> None:
    """Highlight the sidebar entry called ``name`` and wait for its view."""
    from mfphys.cli.tui.app import EntryList

    await settle(app, pilot)
    olist = app.query_one("#entries", EntryList)
    names = [e.name for e in app.shown_entries]
    olist.highlighted = names.index(name)
    await settle(app, pilot)
    assert app.current is not None and app.current.name == name


def pilot_test(fn):
    """Run an ``async def`` test in its own event loop (no async pytest plugin needed)."""
    import asyncio
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


def press_fast(app, *keys: str) -> None:
    """Queue ``keys`` (Textual key names: ``"a"``, ``"slash"``, ``"space"``, ``"down"``) all at once,
    as a fast typist (or a paste) delivers them.

    ``Pilot.press`` waits for the app to settle after each key, so it cannot show keys that
    arrive before the app has acted on the previous one: this posts them without waiting.
    """
    from textual import events

    chars = {"space": " ", "slash": "/", "question_mark": "?"}
    for key in keys:
        app.post_message(events.Key(key, chars.get(key, key if len(key) == 1 else None)))


def type_fast(app, text: str) -> None:
    """:func:`press_fast` of the characters of ``text``."""
    names = {" ": "space", "/": "slash", "?": "question_mark"}
    press_fast(app, *(names.get(ch, ch) for ch in text))

# --- the recurrent model (tests/models/rnn/) -------------------------------------------------------------


def rnn_spec(**kw):
    """A tiny recurrent network for gradient checks: N = 20 units, 5 inputs, 3 outputs."""
    from mfphys.rnn.model import RnnSpec

    base = dict(n_in=5, n=20, n_out=3, alpha=0.2)
    base.update(kw)
    return RnnSpec(**base)


def rnn_params(rng, spec, R=1, *, masked=False, bp=False):
    """Random parameters away from the boundaries (pi in [0.05, 0.9], Xi > 0) and their input mask.

    Values are drawn in the reference scaling (weights of order 1/sqrt(fan_in)) and converted to
    ``spec.scaling`` (m' = sqrt(n) m, Xi' = n Xi), so both scalings give the same dynamics. With
    ``masked`` about 30 % of the input connections are held at pi = 1, m = Xi = 0."""
    import math

    import numpy as np

    from mfphys.model import Layer
    from mfphys.rnn.model import RnnParams, clamp_masked

    mats = []
    for (n_out, n_in), n, stochastic in zip(spec.shapes, spec.n_eff, spec.stochastic(bp=bp)):
        shape = (R, n_out, n_in)
        pi = rng.uniform(0.05, 0.9, shape) if stochastic else np.zeros(shape)
        m = rng.normal(0, 1.5 / math.sqrt(n_in), shape) * math.sqrt(n)
        xi = rng.uniform(0.05, 0.8, shape) / n_in * n if stochastic else np.zeros(shape)
        mats.append(Layer(pi, m, xi))
    mask = rng.random(spec.shapes[0]) > 0.3 if masked else None
    return clamp_masked(RnnParams(*mats), mask), mask


class StopAt:
    """``stop()`` that answers True after epoch ``n`` (what the first Ctrl-C does)."""

    def __init__(self, n):
        self.n, self.epoch = n, 0

    def record(self, rec):
        self.epoch = rec.epoch

    def __call__(self):
        return self.epoch >= self.n


def on_emulation() -> bool:
    """Whether ``cupy`` is the CuPy emulation of tests/fake_cupy (``MFPHYS_FAKE_CUPY=1``)."""
    import importlib

    return bool(getattr(importlib.import_module("cupy"), "_FAKE", False))


def counted_syncs():
    """``with counted_syncs() as c:`` -> ``c.syncs`` and ``c.copies``, lists of ``(what, "file:line")``:
    the host synchronisations and host-to-device copies inside the block. Only the CuPy emulation
    counts them (a test asking on a real GPU is skipped; it uses :func:`no_syncs` there)."""
    import cupy

    if not getattr(cupy, "_FAKE", False):
        pytest.skip("counting host syncs needs the CuPy emulation (MFPHYS_FAKE_CUPY=1)")
    return cupy.count()


def no_syncs():
    """A block in which a host synchronisation raises (``cupyx.allow_synchronize(False)``, on a
    real GPU and on the emulation; CuPy's own detection, which misses syncs outside CuPy)."""
    import cupyx

    if not hasattr(cupyx, "allow_synchronize"):
        pytest.skip("this CuPy has no cupyx.allow_synchronize")
    return cupyx.allow_synchronize(False)
