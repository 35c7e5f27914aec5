"""``mfphys tui``: a Textual terminal UI to browse and monitor runs and scans (docs/tui.md).

Textual is imported only when the command runs, so the rest of the CLI starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..common import user_errors


@user_errors
def tui(
    runs_dir: Path = typer.Argument(Path("runs"), help="folder of run files and scan folders"),
    export_dir: Optional[Path] = typer.Option(None, help="where `e` writes CSV/PNG exports (default: RUNS_DIR)"),
    interval: float = typer.Option(2.5, help="seconds between refreshes of the folder (0: only on `r`)"),
):
    """Browse and monitor runs and scans in a terminal UI (q quits, ? lists the keys)."""
    from mfphys.errors import MfphysError

    if not runs_dir.is_dir():
        raise MfphysError(f"no such folder: {runs_dir} (make runs with `mfphys train`, or give a folder)")
    if interval < 0:
        raise MfphysError(f"--interval must be >= 0, got {interval}")
    from .app import MfphysTUI

    MfphysTUI(runs_dir, export_dir=export_dir, interval=interval).run()
