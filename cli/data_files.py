"""``mfphys data where|verify|fetch``: find, check (SHA-256) or download the MNIST-family IDX files."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from mfphys import data as data_mod

from .common import console, fail, user_errors

app = typer.Typer(help="Find, verify and fetch datasets (MNIST, Fashion-MNIST).", no_args_is_help=True)

NAME = typer.Argument("mnist", help="mnist or fashion-mnist")
DATA_DIR = typer.Option(None, help="folder with the IDX files (else $MFPHYS_DATA_DIR, then the user cache)")


@app.command()
@user_errors
def where(name: str = NAME, data_dir: Optional[Path] = DATA_DIR):
    """Print the folder the dataset would be read from (exit 1 if none holds it)."""
    path = data_mod.where(name, data_dir)
    if path is None:
        fail(data_mod.not_found_message(name, data_dir), 1)
    console.print(str(path), markup=False, highlight=False)


@app.command()
@user_errors
def verify(name: str = NAME, data_dir: Optional[Path] = DATA_DIR):
    """Check the SHA-256 of the uncompressed files (exit 1 if any fails)."""
    rows = data_mod.verify(name, data_dir)
    t = Table(title=f"{name}: {data_mod.where(name, data_dir)}")
    for c in ("file", "sha256 (uncompressed)", "ok"):
        t.add_column(c)
    for f, sha, ok in rows:
        t.add_row(f, sha, "[green]yes" if ok else "[red]NO")
    console.print(t)
    if not all(ok for *_, ok in rows):
        fail("some files failed verification", 1)


@app.command()
@user_errors
def fetch(name: str = NAME):
    """Download the dataset from the public mirrors into the user cache, verified."""
    console.print(f"{name} is in {data_mod.fetch(name)}", markup=False, highlight=False)
