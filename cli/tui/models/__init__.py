"""The TUI's view models: pure functions from files to small plain structures (no widgets here).

Everything the app shows comes from these modules, so it can be tested without a terminal:

- :mod:`.listing`: the entries of a folder (runs, scans, perturbation files, problem files),
  the sidebar filter and a run's BP baseline;
- :mod:`.run`: a run file (curves, per-layer order parameters, histograms) and a perturbation file;
- :mod:`.scan_grid`: a scan's combined dataset reduced to the grid a heatmap draws;
- :mod:`.cache`: results cached by file signature, so the live refresh re-reads only what changed;
- :mod:`.format`: numbers, dates and errors as short text.

Reads go through ``mfphys.store`` and ``mfphys.scan``; means and spreads over replicas come
from ``mfphys.stats``. Every exception becomes an error entry or an
:class:`mfphys.errors.MfphysError`, never a crash: a run or scan may be half-written or
vanish between a listing and a read.
"""
