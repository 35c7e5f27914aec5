"""The package's boundaries: what gets installed, what the library imports, what an import changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.helpers import REPO

UI = ("typer", "textual", "rich", "click", "matplotlib")


def _run(code: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _library_modules() -> list[str]:
    mods = []
    for path in sorted((REPO / "mfphys").rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        if rel.name in ("__main__",):
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        mods.append(".".join(parts))
    return mods


def test_library_imports_no_ui(tmp_path):
    """Every library module imports without typer, rich, Textual or matplotlib (UI only in mfphys.cli)."""
    mods = _library_modules()
    code = ("import importlib, json, sys\n"
            f"for m in {mods!r}: importlib.import_module(m)\n"
            f"print(json.dumps(sorted(u for u in {UI!r} if u in sys.modules)))")
    assert json.loads(_run(code, tmp_path)) == []


def test_import_mfphys_is_light(tmp_path):
    """``import mfphys`` loads neither xarray, netCDF4, Dask nor the scan machinery; the lazy names work."""
    code = ("import json, sys, mfphys\n"
            "heavy = sorted(m for m in ('xarray', 'netCDF4', 'dask', 'distributed', 'mfphys.scan', 'mfphys.store')"
            " if m in sys.modules)\n"
            "ok = callable(mfphys.train) and callable(mfphys.open_run) and callable(mfphys.open_scan)\n"
            "print(json.dumps([heavy, ok]))")
    assert json.loads(_run(code, tmp_path)) == [[], True]


def test_train_stays_the_function_after_submodule_import(tmp_path):
    code = "import mfphys.train, mfphys.store, mfphys; print(callable(mfphys.train), mfphys.train.__module__)"
    assert _run(code, tmp_path) == "True mfphys.models.ffn.train"  # the function, from the family's folder


def test_no_top_level_cli_package(tmp_path):
    """The front ends are ``mfphys.cli``; no package named ``cli`` is importable outside the checkout."""
    code = "import importlib.util as u; print(u.find_spec('cli') is None, u.find_spec('mfphys.cli') is not None)"
    assert _run(code, tmp_path) == "True True"


def test_cli_import_changes_no_global_state(tmp_path):
    """Importing every front-end module leaves matplotlib's backend and rcParams as they were."""
    code = ("import matplotlib, json\n"
            "before = (matplotlib.get_backend(), dict(matplotlib.rcParams))\n"
            "import pkgutil, importlib, mfphys.cli\n"
            "for m in pkgutil.walk_packages(mfphys.cli.__path__, 'mfphys.cli.'): importlib.import_module(m.name)\n"
            "print(json.dumps((matplotlib.get_backend(), dict(matplotlib.rcParams)) == before))")
    assert _run(code, tmp_path) == "true"


def test_every_package_folder_is_installed():
    """pyproject.toml lists packages explicitly (cli/ is mapped to mfphys.cli): none may be missing."""
    conf = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, dirs = set(conf["packages"]), conf["package-dir"]
    found = set()
    for name, folder in dirs.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((name, *rel)))
    assert found == listed


@pytest.mark.parametrize("argv", [["--help"], ["version"]])
def test_python_dash_m(argv, tmp_path):
    out = subprocess.run([sys.executable, "-m", "mfphys", *argv], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "mfphys" in out.stdout


#: what the command line must not load to print its help or version: they alone take longer than the
#: whole start (xarray and pandas about 0.3 s, Dask, matplotlib and Textual each about as much)
HEAVY = ("xarray", "pandas", "netCDF4", "dask", "distributed", "dask_jobqueue", "matplotlib", "textual")


@pytest.mark.parametrize("argv", [["--help"], ["version"], ["train", "--help"], ["scan", "--help"],
                                  ["order", "--help"], ["perturb", "--help"], ["scan-plot", "--help"],
                                  ["reproduce", "--help"], ["tui", "--help"], ["data", "--help"]],
                         ids=" ".join)
def test_cli_start_is_light(argv, tmp_path):
    """``mfphys --help``, ``mfphys version`` and every command's help import none of the heavy libraries."""
    code = ("import json, sys\n"
            "from mfphys.cli.main import app\n"
            f"try:\n    app({argv!r}, prog_name='mfphys')\nexcept SystemExit as exc:\n    assert not exc.code, exc\n"
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    assert json.loads(_run(code, tmp_path).splitlines()[-1]) == []
