"""Short descriptions of scans for listings and monitors (the TUI's sidebar, docs/tui.md).

Pure functions of what a scan folder holds: its ``scan.json`` (:func:`mfphys.scan.read_scan_json`)
and the cell counts of :func:`mfphys.scan.scan_status` (file names only). No file is read here;
a scan's family (:mod:`mfphys.registry`) says its architecture.
"""

from __future__ import annotations

from collections.abc import Mapping


def scan_architecture(meta: Mapping) -> str:
    """The architecture label of a scan from its ``scan.json`` (``grid`` and ``fixed`` options), in
    its family's words (:meth:`mfphys.family.ModelFamily.scan_architecture`): ``784-100xd-10`` for a
    feed-forward scan over depth, ``28-100-10 xT`` for a recurrent one over steps. ``""`` for a
    scan.json that does not say."""
    from . import registry
    from .errors import MfphysError

    fixed = meta.get("fixed") if isinstance(meta.get("fixed"), Mapping) else {}
    grid = meta.get("grid") if isinstance(meta.get("grid"), Mapping) else {}
    try:
        return registry.of_scan(meta).scan_architecture(fixed, grid)
    except MfphysError:
        return ""


def scan_state(counts: Mapping) -> str:
    """One word for a scan's progress from :func:`mfphys.scan.scan_status` counts: ``done`` (every
    cell), ``running`` (a cell is training), ``failed`` (nothing left to run, some cells failed)
    or ``pending`` (cells left to run, none running now)."""
    done, failed, running, pending, total = (int(counts.get(k, 0)) for k in
                                             ("done", "failed", "running", "pending", "total"))
    if total and done == total:
        return "done"
    if running:
        return "running"
    if failed and not pending:
        return "failed"
    return "pending"


from ._compat import legacy_getattr  # noqa: E402

__getattr__ = legacy_getattr(__name__)
