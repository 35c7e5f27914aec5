"""``mfphys tui``: a Textual terminal UI to browse and monitor runs and scans (docs/tui.md).

Textual is imported only when the command runs, so the rest of the CLI starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..common import user_errors


def resolve_target(path: Path) -> tuple[Path, Path | None]:
    """The folder to list and the entry to show first, for ``mfphys tui PATH``.

    A folder of runs is listed as it is; a run, perturbation or other ``.nc`` file, or a scan
    folder (one with ``scan.json``), opens its parent folder with that entry shown.
    """
    from mfphys.errors import MfphysError

    if path.is_file():
        if path.suffix != ".nc":
            raise MfphysError(f"{path} is not a run file (.nc) or a folder of runs")
        return _parent(path), path
    if not path.is_dir():
        raise MfphysError(f"no such folder or file: {path} (make runs with `mfphys train`, or give a folder)")
    if (path / "scan.json").is_file():
        return _parent(path), path
    return path, None


def _parent(path: Path) -> Path:
    # `mfphys tui a.nc` in the folder of the run: list ".", but by its name (the app's title shows it)
    return path.parent if path.parent != Path(".") else path.absolute().parent


@user_errors
def tui(
    runs_dir: Path = typer.Argument(Path("runs"), help="folder of run files and scan folders, or one run file "
                                                       "or scan folder to open (its folder is listed)"),
    export_dir: Optional[Path] = typer.Option(None, help="where `e` writes CSV/PNG exports (default: RUNS_DIR)"),
    interval: float = typer.Option(2.5, help="seconds between refreshes of the folder (0: only on `r`)"),
    columns: Optional[str] = typer.Option(None, help="extra columns of the runs table (`t`), comma-separated: "
                                                     "configuration fields and tags, note (e.g. lr,seed,tags); "
                                                     "`c` there shows and hides them"),
):
    """Browse and monitor runs and scans in a terminal UI (q quits, ? lists the keys)."""
    from mfphys.errors import MfphysError

    root, select = resolve_target(runs_dir)
    if interval < 0:
        raise MfphysError(f"--interval must be >= 0, got {interval}")
    from .app import MfphysTUI

    chosen = tuple(c.strip() for c in columns.split(",") if c.strip()) if columns else ()
    MfphysTUI(root, export_dir=export_dir, interval=interval, select=select, columns=chosen).run()
