"""The contract every model family keeps with the engine, one suite parametrized over every registered family.

The families are the built-in ones and a toy family defined only inside the tests
(``tests/models/toypkg``) and registered through the entry-point group ``mfphys.families``, as
another installed package would register one: that it passes the same suite, with no shared
file naming it, is the proof that a new family plugs in (docs/design.md "Adding a model family").

Oracles: a run file read back holds the in-memory run's numbers; a run killed (SIGKILL) after a
checkpoint and resumed ends bit for bit as the uninterrupted run (NumPy); a run continued to
more epochs as the run trained to those epochs at once (dynamics aside: the snapshot epochs
depend on the length); the budget's disk estimate against the real file size; a scan cell
against the family's own counts; ``mfphys order`` against the family's order reports; the
perturbation's f = 0 point against the unperturbed one; the TUI opening the file as a run.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
from typing import Any, Callable, NamedTuple

import numpy as np
import pytest

from mfphys import registry, scan, storage, store
from mfphys.runfile import CheckpointPolicy, plan_run, train_run
from tests.helpers import (
    REPO,
    SCAN_FIXED,
    SIZE,
    app_for,
    assert_same_run,
    pilot_test,
    select,
    tiny_config,
    wait_for_checkpoint,
)

from .toy import toy_env, toy_installed

EPOCHS = 4


class Case(NamedTuple):
    """A tiny run of a family and a one-cell scan of it (each a few seconds at most)."""

    config: Callable[[int], Any]  # epochs -> configuration
    scan_grid: dict
    scan_fixed: dict


def _rnn_config(epochs: int):
    from mfphys.models.rnn.tasks import preset

    return dataclasses.replace(preset("multisensory"), n=12, epochs=epochs, eval_samples=2, test_repeats=1,
                               dtype="float64", backend="numpy", replicas=2, seed=1,
                               stop_min_epoch=EPOCHS + 1)  # the stop rule never ends a replica early


def _toy_config(epochs: int):
    from mfphys_toy.family import ToyConfig

    return ToyConfig(epochs=epochs)


CASES = {
    "ffn": Case(lambda epochs: tiny_config(epochs=epochs), {"depth": [1], "n_train": [200]}, SCAN_FIXED),
    "rnn": Case(_rnn_config, {"steps": [7], "n_train": [256]},
                {"n": 16, "epochs": 1, "replicas": 2, "n_test": 200, "eval_samples": 2, "backend": "numpy"}),
    "toy": Case(_toy_config, {"n_in": [8], "n_train": [64]}, {"epochs": 2}),
}

with toy_installed():
    FAMILIES = registry.names()


@pytest.fixture(scope="module", autouse=True)
def _toy():
    with toy_installed():
        yield


@pytest.fixture(params=FAMILIES)
def name(request) -> str:
    assert request.param in CASES, f"model family {request.param!r} has no tiny case in tests/models/test_contract.py"
    return request.param


@pytest.fixture
def family(name):
    return registry.get(name)


@pytest.fixture
def case(name) -> Case:
    return CASES[name]


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """Each family's uninterrupted run of EPOCHS epochs as a run file (trained once per family)."""
    folder, made = tmp_path_factory.mktemp("reference"), {}

    def get(name):
        if name not in made:
            path = folder / f"{name}.nc"
            train_run(plan_run(path, CASES[name].config(EPOCHS)), policy=CheckpointPolicy(0, 0))
            made[name] = path
        return made[name]

    return get


def test_the_toy_family_comes_from_its_entry_point():
    assert "toy" in registry.names() and "toy" not in registry.builtin_names()
    assert type(registry.get("toy")).__module__ == "mfphys_toy.family"
    assert set(FAMILIES) >= {"ffn", "rnn", "toy"}


def test_file_round_trip(name, family, case, references):
    """The run file holds the in-memory run: configuration, parameters, learning curves; its family is found
    from the file alone."""
    ds = store.open_run(references(name))
    mem = family.train(case.config(EPOCHS))
    assert registry.of_attrs(ds.attrs) is family and store.model_of(ds.attrs) == name
    assert ds.attrs["status"] == "done" and int(ds.attrs["epochs_done"]) == EPOCHS
    assert store.config_from_attrs(ds.attrs) == mem.config
    for stored, trained in zip(family.params_from_dataset(ds), mem.params):
        for a, b in zip(stored, trained):
            np.testing.assert_array_equal(a, np.asarray(b))
    np.testing.assert_array_equal(ds["train_loss"].values, mem.history["train_loss"])
    family.check_parameters(ds, references(name))


def _paced(name: str, path, gate, config) -> subprocess.Popen:
    code = f"""
import sys, time
from pathlib import Path
from mfphys import registry, runfile
family = registry.get({name!r})
config = family.config_class.from_json({config.to_json()!r})
gate = Path({str(gate)!r})
def wait(record):
    while not (gate / f"go-{{record.epoch}}").exists():
        time.sleep(0.01)
runfile.train_run(runfile.plan_run(Path({str(path)!r}), config), policy=runfile.CheckpointPolicy(every=1, seconds=0),
                  callback=wait)
"""
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=toy_env(), cwd=REPO)


def test_resume_after_a_kill_is_bit_identical(name, case, references, tmp_path):
    path, gate = tmp_path / "killed.nc", tmp_path / "gate"
    gate.mkdir()
    config = case.config(EPOCHS)
    proc = _paced(name, path, gate, config)
    try:
        for k in (1, 2):
            (gate / f"go-{k}").touch()
        wait_for_checkpoint(path, 2, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    attrs = storage.read_attrs(path)
    assert attrs["status"] == "running" and int(attrs["epochs_done"]) == 2  # what the kill left
    plan = plan_run(path, config, resume=True)
    assert plan.action == "resume" and plan.state.epoch == 2
    train_run(plan, policy=CheckpointPolicy(0, 0))
    assert_same_run(store.open_run(path), store.open_run(references(name)))


def test_extension_continues_to_the_numbers_of_a_longer_run(name, case, references, tmp_path):
    path = tmp_path / "short.nc"
    train_run(plan_run(path, case.config(2)), policy=CheckpointPolicy(0, 0))
    plan = plan_run(path, case.config(EPOCHS))
    assert plan.action == "extend" and plan.state.epoch == 2
    train_run(plan, policy=CheckpointPolicy(0, 0))
    ds = store.open_run(path)
    assert json.loads(ds.attrs["segments"])[-1]["action"] == "extend"
    assert_same_run(ds, store.open_run(references(name)), dynamics=False)


def test_dynamics_are_recorded(family, references, name):
    ds = store.open_run(references(name))
    dyn = [k for k in ds.data_vars if k.startswith("dyn_")]
    assert dyn and "dyn_frac_vip" in ds
    epochs = list(ds["dyn_epoch"].values)
    assert epochs[0] == 0 and epochs[-1] == EPOCHS
    assert ds["dyn_frac_vip"].dims == ("replica", "dyn_epoch", family.unit)
    final = family.order_reports(ds, store.run_tolerances(ds))  # the last sample is the final parameters'
    full = [v["frac_vip"] for _, inputs, v in final if inputs == "all"][: ds.sizes[family.unit]]
    np.testing.assert_allclose(ds["dyn_frac_vip"].isel(dyn_epoch=-1).values, np.stack(full, axis=-1))


def test_the_budget_covers_the_real_file(family, case, references, name):
    estimate = family.estimate(case.config(EPOCHS), state=True)
    size = references(name).stat().st_size
    assert size <= estimate.disk, (size, estimate.disk)
    assert estimate.peak >= sum(estimate.memory.values()) * 0.5 > 0


def test_a_scan_cell(name, family, case, tmp_path, mnist_dir):
    spec = scan.ScanSpec.build(case.scan_grid, case.scan_fixed, model=name)
    report = scan.run_scan(spec, tmp_path / "scan", data_dir=mnist_dir)
    assert report.trained == 1 and report.failed == 0
    view = scan.open_scan(tmp_path / "scan")
    assert view.attrs["model"] == name and (view["status"].values == "done").all()
    assert np.isfinite(view["test_error"].values).all()
    options = {**dict(spec.fixed), **{k: v[0] for k, v in spec.grid}}
    np.testing.assert_array_equal(view["n_connections"].values.ravel(), family.connections(options))
    cell = store.open_run(scan.cell_path(tmp_path / "scan", **{k: v[0] for k, v in spec.grid}))
    assert registry.of_attrs(cell.attrs) is family and cell.attrs["status"] == "done"


def test_order_command(cli, family, references, name):
    path = references(name)
    ds = store.open_run(path)
    reports = family.order_reports(ds, store.run_tolerances(ds))
    res = cli("order", path, "--json")
    assert res.exit_code == 0, res.output
    columns = json.loads(res.stdout)["columns"]
    assert len(columns) >= len({(r[0]) for r in reports}) > 0
    first = reports[0][2]["frac_vip"]
    assert columns[0]["values"]["frac_vip"]["replicas"] == pytest.approx(list(np.asarray(first, dtype=float)))
    table = cli("order", path)
    assert table.exit_code == 0 and "frac_vip" in table.stdout


def test_a_perturbation(family, case, references, name, mnist_dir):
    from mfphys.perturb import perturb_run

    targets = family.perturb_targets(case.config(EPOCHS))
    assert targets, f"{name} has no perturbation target"
    pds = perturb_run(references(name), target=targets[0], fractions=[0.0, 0.5, 1.0], samples=2, seed=0,
                      data_dir=mnist_dir)
    assert pds.attrs["mfphys_kind"] == "perturbation" and pds.sizes["fraction"] == 3
    assert (pds["n_removed"].isel(fraction=0).values == 0).all()
    np.testing.assert_array_equal(pds["error_vip_sample"].isel(fraction=0).values, pds["error_base_sample"].values)


@pytest.mark.parametrize("shown", FAMILIES)
@pilot_test
async def test_the_tui_opens_the_run(shown, references, tmp_path):
    import shutil

    shutil.copy(references(shown), tmp_path / f"{shown}-run.nc")
    app = app_for(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await select(app, pilot, f"{shown}-run")
        assert app.view_kind == "run"
        from tests.helpers import static_text

        assert static_text(app, "#run-head").strip()


def test_a_family_without_command_line_adapter(cli, references, tmp_path):
    """The toy family sets no ``frontend``: ``order`` and ``perturb`` work through the generic adapter,
    ``train`` and ``scan`` are refused in one line."""
    from tests.helpers import one_error_line

    out = tmp_path / "toy.perturb.nc"
    res = cli("perturb", references("toy"), "--fractions", "0,1", "--samples", "2", "--out", out)
    assert res.exit_code == 0, res.output
    assert "readout" in res.stdout and store.open_run(out).attrs["matrix"] == "readout"
    one_error_line(cli("train", "--family", "toy", "--out", tmp_path / "t.nc"), "toy")
    assert not (tmp_path / "t.nc").exists()
