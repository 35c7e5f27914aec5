"""``mfphys order`` and ``mfphys perturb``: output against the run file, and bad input.

Runs are small teacher-student trainings (no files needed); the order table's numbers are
checked against the run file's stored order parameters (computed at training time), and
bad input must give one clear line, a non-zero exit and leave files alone.
"""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest

from mfphys import store
from mfphys.cli.order import QUANTITIES, TABLE_ROWS, parse_fractions
from mfphys.errors import MfphysError
from mfphys.stats import format_stat
from mfphys.train import TrainConfig, train
from tests.helpers import one_error_line

R = 2


def make_run(path, mode="gbp", dead=False):
    cfg = TrainConfig(dataset="teacher", layers=(20, 16, 12, 10), n_train=500, n_test=300, epochs=3, batch_size=100,
                      replicas=R, backend="numpy", mode=mode, eval_samples=4)
    result = train(cfg)
    if dead:  # pretend inputs 0..4 were constant, as ~111 MNIST pixels are (docs/model.md section 6)
        result.dead_inputs = np.arange(20) < 5
    store.save_run(result, path)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("runs")
    (d / "scan").mkdir()
    (d / "scan" / "scan.json").write_text("{}")  # what `order` must recognise, not read as netCDF
    return {"gbp": make_run(d / "gbp.nc", dead=True), "bp": make_run(d / "bp.nc", mode="bp"), "scan": d / "scan"}






# --- mfphys order ----------------------------------------------------------------------------


def test_order_table_shows_every_layer_and_the_live_column(runs, cli):
    res = cli("order", runs["gbp"])
    assert res.exit_code == 0, res.output
    for text in ("layer 1", "layer 1 live", "layer 2", "layer 3", "15 of 20 vary", *TABLE_ROWS):
        assert text in res.stdout, text
    # sparsity and frac_uip are one set: one row, named once
    rows = [line.split()[0] for line in res.stdout.splitlines() if line.strip()]
    assert "sparsity" not in rows and "frac_uip (= sparsity)" in res.stdout


def test_piped_order_table_keeps_every_value_on_its_row(runs, cli):
    """stdout is not a terminal (a pipe, `| less`, a file): the table is not squeezed to 80 columns,
    even where COLUMNS says 80 (it describes a terminal, not a file)."""
    res = cli("order", runs["gbp"], env={"COLUMNS": "80"})
    ds = store.open_run(runs["gbp"])
    (row,) = [line for line in res.stdout.splitlines() if line.strip().startswith("frac_vip ")]
    assert row.count("±") == 4, row  # layer 1, layer 1 live, layers 2 and 3
    for value in (ds.frac_vip.sel(layer=l).values for l in (1, 2, 3)):
        assert format_stat(value) in row


def json_columns(res):
    assert res.exit_code == 0, res.output
    return {(c["layer"], c["inputs"]): c["values"] for c in json.loads(res.stdout)["columns"]}


def test_order_json_equals_the_stored_order_parameters(runs, cli):
    ds = store.open_run(runs["gbp"])
    cols = json_columns(cli("order", runs["gbp"], "--json"))
    assert set(cols) == {(1, "all"), (1, "live"), (2, "all"), (3, "all")}
    for name in ("sparsity", "frac_vip", "frac_uip", "frac_variable", "frac_vip_exact", "mean_pi", "mean_xi",
                 "weight_var", "entropy", "entropy_median", "frac_point"):
        for l in (1, 2, 3):
            stored = ds[name].sel(layer=l).values
            np.testing.assert_allclose(cols[(l, "all")][name]["replicas"], stored, rtol=1e-6, err_msg=name)
            assert cols[(l, "all")][name]["mean"] == pytest.approx(stored.mean(), rel=1e-6)
        if name + "_live" in ds:
            np.testing.assert_allclose(cols[(1, "live")][name]["replicas"], ds[name + "_live"].sel(layer=1).values,
                                       rtol=1e-6, err_msg=name)


def test_order_exact_and_tolerances_recompute(runs, cli):
    ds = store.open_run(runs["gbp"])
    exact = json_columns(cli("order", runs["gbp"], "--json", "--exact"))
    for l in (1, 2, 3):
        np.testing.assert_allclose(exact[(l, "all")]["frac_vip"]["replicas"], ds.frac_vip_exact.sel(layer=l).values)
    loose = json_columns(cli("order", runs["gbp"], "--json", "--tol", "0.3", "--xi-tol", "1"))
    strict = json_columns(cli("order", runs["gbp"], "--json"))
    for key in loose:
        assert np.all(np.array(loose[key]["frac_vip"]["replicas"]) >= strict[key]["frac_vip"]["replicas"])
    xi_zero = float(np.median(ds.xi_2.values))
    point = json_columns(cli("order", runs["gbp"], "--json", "--xi-zero", repr(xi_zero)))
    np.testing.assert_allclose(point[(2, "all")]["frac_point"]["replicas"],
                               (ds.xi_2.values <= xi_zero).mean(axis=(1, 2)))


def test_order_csv_has_one_row_per_layer_inputs_and_replica(runs, cli):
    res = cli("order", runs["gbp"], "--csv")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert len(rows) == 4 * R
    assert list(rows[0]) == ["layer", "inputs", "replica", *QUANTITIES]
    ds = store.open_run(runs["gbp"])
    row = next(r for r in rows if r["layer"] == "2" and r["replica"] == "1")
    assert float(row["entropy"]) == pytest.approx(float(ds.entropy.sel(layer=2, replica=1)), rel=1e-6)


def test_order_of_a_bp_run(runs, cli):
    cols = json_columns(cli("order", runs["bp"], "--json"))
    for values in cols.values():
        assert values["frac_vip"]["mean"] == 1 and values["entropy"]["mean"] == 0
        assert values["mean_pi"]["mean"] == 0 and values["frac_point"]["mean"] == 1


# --- mfphys perturb --------------------------------------------------------------------------


def test_perturb_writes_a_dataset_next_to_the_run(runs, cli):
    res = cli("perturb", runs["gbp"], "--fractions", "0:1:0.5", "--samples", "4", "--tol", "0.05",
                 "--xi-tol", "0.01")
    assert res.exit_code == 0, res.output
    out = runs["gbp"].with_name("gbp.perturb-layer1.nc")
    assert str(out) in res.stdout.replace("\n", "") and "fraction" in res.stdout
    pds = store.read_dataset(out)
    run = store.open_run(runs["gbp"])
    assert pds.attrs[store.KIND_ATTR] == "perturbation" and pds.attrs["source"] == str(runs["gbp"])
    assert pds.attrs["layer"] == 1 and pds.attrs["tol"] == 0.05 and pds.attrs["config"] == run.attrs["config"]
    assert pds.attrs["candidates"] == "live inputs only" and pds.attrs["dead_inputs_excluded"] == 5
    assert pds.fraction.values.tolist() == [0.0, 0.5, 1.0] and dict(pds.sizes)["sample"] == 4
    # f = 0 with the run's seed and as many draws as training used: the run's own sub-networks
    np.testing.assert_allclose(pds.error_vip.sel(fraction=0).values, 100 * (1 - run.test_acc_sampled.values),
                               atol=1e-6)
    np.testing.assert_allclose(pds.error_base_mf.values, 100 * (1 - run.test_acc.isel(epoch=-1).values), atol=1e-6)


def test_perturb_a_bp_run_when_allowed(runs, tmp_path, cli):
    out = tmp_path / "bp-pert.nc"
    res = cli("perturb", runs["bp"], "--allow-bp", "--fractions", "0,1", "--samples", "1", "--out", out, "-q")
    assert res.exit_code == 0, res.output
    assert store.read_dataset(out).n_variable.values.tolist() == [0] * R


def test_perturb_exact_all_inputs_and_out(runs, tmp_path, cli):
    out = tmp_path / "sub" / "p.nc"
    res = cli("perturb", runs["gbp"], "--layer", "2", "--fractions", "0,1", "--samples", "2", "--exact",
                 "--all-inputs", "--seed", "4", "--out", out, "-q")
    assert res.exit_code == 0 and res.stdout == "", res.output
    pds = store.read_dataset(out)
    assert pds.attrs["layer"] == 2 and pds.attrs["tol"] == 0 and pds.attrs["seed"] == 4


@pytest.mark.parametrize("text,want", [
    ("0:1:0.1", [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]),
    ("0:1:0.3", [0, 0.3, 0.6, 0.9]),
    ("0.2:0.2:0.1", [0.2]),
    ("0,0.5,1", [0, 0.5, 1]),
    ("0.25", [0.25]),
])
def test_parse_fractions(text, want):
    assert parse_fractions(text).tolist() == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("text", ["0:1", "0:1:0", "0:1:-0.1", "1:0:0.1", "a,b", "0,1.5", "-0.1", "", "0:2:0.5",
                                  "0,0.5,0.5", "nan"])
def test_parse_fractions_rejects(text):
    with pytest.raises(MfphysError, match="--fractions"):
        parse_fractions(text)


BAD = [
    (("order", "{missing}"), "no such file"),
    (("order", "{garbage}"), "not a readable netCDF file"),
    (("order", "{gbp}", "--json", "--csv"), "at most one of --json and --csv"),
    (("order", "{gbp}", "--exact", "--tol", "0.1"), "give either --exact or --tol"),
    (("order", "{gbp}", "--tol", "0.7"), "--tol must be in [0, 0.5)"),
    (("order", "{gbp}", "--xi-tol", "-1"), "--xi-tol must be a number >= 0"),
    (("order", "{perturbation}"), "is an mfphys perturbation file, not a run file"),
    (("perturb", "{gbp}", "--fractions", "0:1"), "--fractions takes start:stop:step"),
    (("perturb", "{gbp}", "--fractions", "0,2"), "--fractions takes start:stop:step"),
    (("perturb", "{gbp}", "--layer", "4"), "--layer must be between 1 and 3"),
    (("perturb", "{gbp}", "--samples", "0"), "--samples must be at least 1"),
    (("perturb", "{gbp}", "--out", "{gbp}"), "is the run file itself"),
    (("perturb", "{gbp}", "--out", "{dir}"), "is a directory"),
    (("perturb", "{perturbation}"), "not a run file"),
    (("order", "{scan}"), "is a scan folder, not a file: use mfphys scan-plot"),
    (("perturb", "{bp}"), "is a BP run: every connection is very important"),
]


@pytest.mark.parametrize("args,expect", BAD, ids=[f"{a[0]}-{e[:24]}" for a, e in BAD])
def test_bad_input_is_one_line_and_nothing_is_written_over(runs, tmp_path, args, expect, cli):
    garbage = tmp_path / "garbage.nc"
    garbage.write_text("not netCDF")
    pert = tmp_path / "p.nc"
    store.write_atomic(store.open_run(runs["gbp"]).assign_attrs({store.KIND_ATTR: "perturbation"}), pert)
    # a previous result at the default output path must survive a bad call
    default_out = runs["gbp"].with_name("gbp.perturb-layer1.nc")
    sentinel = b"previous result"
    before = {p: p.read_bytes() for p in (runs["gbp"], garbage, pert)}
    saved = default_out.read_bytes() if default_out.exists() else None
    default_out.write_bytes(sentinel)
    try:
        names = {"missing": tmp_path / "nope.nc", "garbage": garbage, "gbp": runs["gbp"], "perturbation": pert,
                 "dir": tmp_path, "scan": runs["scan"], "bp": runs["bp"]}
        res = cli(*(a.format(**names) for a in args))
        one_error_line(res, expect)
        assert default_out.read_bytes() == sentinel
        assert {p: p.read_bytes() for p in before} == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.nc", "p.nc"]
    finally:
        if saved is None:
            default_out.unlink()
        else:
            default_out.write_bytes(saved)


def test_order_reads_a_partial_run_file(tmp_path, cli):
    """A checkpoint (no sampled evaluation yet) and the file written at the start (no epochs)."""
    from mfphys import store
    from mfphys.runfile import CheckpointPolicy, Interrupted, plan_run, train_run
    from mfphys.train import TrainConfig

    cfg = TrainConfig(dataset="teacher", layers=(20, 16, 10), n_train=200, n_test=100, epochs=5, batch_size=50,
                      backend="numpy")
    path = tmp_path / "r.nc"
    with pytest.raises(Interrupted):  # the file written at the start copied aside, then one epoch
        train_run(plan_run(path, cfg), policy=CheckpointPolicy(0, 0), stop=lambda: True,
                  on_start=lambda state: shutil.copy(path, tmp_path / "start.nc"))
    res = cli("order", path)
    assert res.exit_code == 0, res.output
    assert "a partial run (interrupted): 1 epochs done" in res.stdout and "sampled" not in res.stdout
    assert store.read_attrs(tmp_path / "start.nc")["epochs_done"] == 0
    res = cli("order", tmp_path / "start.nc")
    assert res.exit_code == 0 and "test accuracy" not in res.stdout and "0 epochs done" in res.stdout
