"""Oracles for mfphys.scan.spec: option values, cell keys and order, hashes, the command line and TOML.

No training here: specs are checked against hand-written keys and layers, against
``hashlib`` on the cell's configuration JSON, and against each other (TOML vs options).
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from mfphys import scan
from mfphys.errors import MfphysError
from mfphys.scan import folder as scan_folder
from mfphys.train import TrainConfig
from tests.helpers import SCAN_GRID, SCAN_TINY, tiny_spec


@pytest.mark.parametrize("coords, key", [
    ((("depth", 2), ("n_train", 1000)), "depth=2,n_train=1000"),
    ((("lr", 1e-5), ("dataset", "fashion-mnist")), "lr=1e-05,dataset=fashion-mnist"),
    ((("host_noise", True), ("width", 100)), "host_noise=true,width=100"),
    ((("dataset", "a/b c"),), "dataset=a%2Fb%20c"),
])
def test_cell_key(coords, key):
    assert scan.cell_key(coords) == key


def test_cells_architecture_and_order():
    spec = tiny_spec()
    cells = spec.cells()
    assert spec.dims == ("depth", "n_train") and spec.shape == (3, 3)
    assert [c.key for c in cells[:4]] == ["depth=1,n_train=200", "depth=1,n_train=400", "depth=1,n_train=600",
                                          "depth=2,n_train=200"]
    for c in cells:
        d, p = dict(c.coords)["depth"], dict(c.coords)["n_train"]
        assert c.config.layers == (20,) + (16,) * d + (10,)
        assert c.config.n_train == p and c.config.replicas == 2 and c.config.seed == 0
        assert c.config_hash == hashlib.sha256(c.config.to_json().encode()).hexdigest()


def test_spec_and_scan_json_walk_the_grid_alike():
    """ScanSpec.cells and the readers of a scan.json share one grid walk: same order, same keys."""
    spec = tiny_spec(lr="0.1,0.05", host_noise="false,true")
    meta = {"dims": list(spec.dims), "grid": spec.grid_dict}  # as run_scan writes it to scan.json
    assert [(c.index, c.coords, c.key) for c in spec.cells()] == scan_folder._grid_cells(meta)
    assert spec.cells()[1].key == "depth=1,n_train=200,lr=0.1,host_noise=true"


@pytest.mark.parametrize("name, text, value", [
    ("host_noise", "false", False), ("host_noise", "True", True), ("host_noise", "0", False),
    ("host_noise", "yes", True), ("n_test", "all", None), ("n_test", "200", 200), ("depth", " 2 ", 2),
    ("lr", "1e-3", 0.001), ("dataset", " teacher ", "teacher"), ("decay_on", "m, xi", ("m", "xi")),
])
def test_coerce_option(name, text, value):
    got = scan.coerce_option(name, text, "test")
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("name, value", [("n_train", "1e3"), ("depth", "2.0"), ("epochs", 3.0), ("seed", True)])
def test_integer_options_take_integers_only(name, value):
    """As `mfphys train` and TrainConfig: 1e3 or 2.0 are refused here too, not read as integers."""
    with pytest.raises(MfphysError, match=f"{name} takes int values"):
        scan.coerce_option(name, value, "test")


def test_list_values_are_scanned_single_values_fixed():
    spec = tiny_spec(lr="0.1,0.05", width="8")
    assert spec.dims == ("depth", "n_train", "lr") and spec.shape == (3, 3, 2)
    assert spec.fixed_dict["width"] == 8 and "lr" not in spec.fixed_dict
    assert {c.config.lr for c in spec.cells()} == {0.1, 0.05}


def test_scan_hash_pins_the_configuration():
    assert tiny_spec().scan_hash() == tiny_spec(epochs=" 3").scan_hash()  # same values, other spelling
    assert tiny_spec().scan_hash() != tiny_spec(epochs="4").scan_hash()
    assert tiny_spec().scan_hash() != tiny_spec(depth="3,2,1").scan_hash()  # grid order is part of it
    assert tiny_spec().default_name() == f"teacher-scan-{tiny_spec().scan_hash()[:10]}"


@pytest.mark.parametrize("over, message", [
    ({"depth": "1,,2"}, "malformed --depth"),
    ({"depth": "1,x"}, "depth takes int"),
    ({"depth": "1,1"}, "lists a value twice"),
    ({"depth": None}, "give the depth values"),
    ({"depth": "-1"}, "must be >= 0"),
    ({"replicas": "2,3"}, "replicas cannot be scanned"),
    ({"batch_size": "500"}, "--batch-size 500 is larger than n_train 200"),
    ({"dataset": "mnist"}, "784 pixels"),
    ({"lr": "-1"}, "--lr must be a positive"),
    ({"lr": "nan"}, "--lr must be a positive number, got nan"),
    ({"activation": "foo"}, "unknown --activation"),
    ({"name": "../x"}, "plain folder name"),
])
def test_bad_options(over, message):
    opts = {**SCAN_GRID, **SCAN_TINY, **over}
    name = opts.pop("name", None)
    with pytest.raises(MfphysError, match=message.replace("+", r"\+")):
        scan.spec_from_options({k: v for k, v in opts.items()}, name=name)


def test_unknown_parameter():
    with pytest.raises(MfphysError, match="unknown parameter 'dept'"):
        scan.ScanSpec.build({"dept": [1], "n_train": [200]})


TOML = """
name = "from-file"
[grid]
depth = [1, 2, 3]
n_train = [200, 400, 600]
[fixed]
dataset = "teacher"
input-dim = 20
width = 16
epochs = 3
batch_size = 100
replicas = 2
n_test = 200
backend = "numpy"
"""


def test_toml_equals_options(tmp_path):
    path = tmp_path / "scan.toml"
    path.write_text(TOML)
    spec = scan.ScanSpec.from_toml(path)
    assert spec.name == "from-file"
    assert spec.scan_hash() == tiny_spec().scan_hash()
    over = scan.spec_from_options({"epochs": "2", "lr": "0.1,0.2"}, config=path)  # the command line wins
    assert over.fixed_dict["epochs"] == 2 and over.dims == ("depth", "n_train", "lr")


@pytest.mark.parametrize("text, message", [
    ("[grid]\ndepth = [1,", "not valid TOML"),
    (TOML.replace("width = 16", "widht = 16"), "unknown parameter 'widht'"),
    ("depht = 1\n" + TOML, "unknown top-level key"),
    (TOML.replace("depth = [1, 2, 3]", 'depth = ["a"]'), "depth takes int"),
    (TOML.replace("depth = [1, 2, 3]", "depth = []"), "depth has no values"),
    ("grid = 3", "grid must be a table"),
])
def test_bad_toml(tmp_path, text, message):
    path = tmp_path / "scan.toml"
    path.write_text(text)
    with pytest.raises(MfphysError, match=message):
        scan.ScanSpec.from_toml(path)


def test_missing_toml(tmp_path):
    with pytest.raises(MfphysError, match="no such file"):
        scan.ScanSpec.from_toml(tmp_path / "nope.toml")


def test_spec_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny_spec().name = "x"
    assert isinstance(tiny_spec().cells()[0].config, TrainConfig)
