"""Short descriptions of scans for listings and monitors (the TUI's sidebar, docs/tui.md).

Pure functions of what a scan folder holds: its ``scan.json`` (:func:`mfphys.scan.read_scan_json`)
and the cell counts of :func:`mfphys.scan.scan_status` (file names only). No file is read here.
"""

from __future__ import annotations

from collections.abc import Mapping

#: the options that make a cell's layer widths (:func:`mfphys.scan.layers_of`, docs/model.md section 2)
_ARCH = ("input_dim", "width", "depth")
#: how :func:`scan_architecture` writes an architecture option that takes several values
SYMBOLS = {"input_dim": "N0", "width": "W", "depth": "d"}


def scan_architecture(meta: Mapping) -> str:
    """The architecture label of a scan from its ``scan.json`` (``grid`` and ``fixed`` options).

    When input size, width and depth have one value each, the label of the cells' layer widths
    (:func:`mfphys.model.architecture` of :func:`mfphys.scan.layers_of`): ``784-100-100-10``.
    When the depth is scanned, ``784-100xd-10`` (hidden width x the scanned depth d), with
    ``N0`` or ``W`` in place of a scanned input size or width. Options missing from both take
    :data:`mfphys.scan.ARCH_DEFAULTS`. ``""`` for a scan.json that does not say.
    """
    from .model import architecture
    from .scan import ARCH_DEFAULTS, N_CLASSES, layers_of

    fixed = meta.get("fixed") if isinstance(meta.get("fixed"), Mapping) else {}
    grid = meta.get("grid") if isinstance(meta.get("grid"), Mapping) else {}
    if "rnn" in (meta.get("model"), fixed.get("model")) or "steps" in grid:
        return _rnn_architecture(fixed, grid)
    options, scanned = {}, set()
    for k in _ARCH:
        value = fixed.get(k, grid.get(k, ARCH_DEFAULTS.get(k)))
        if isinstance(value, (list, tuple)):
            if len(value) == 1:
                value = value[0]
            else:
                scanned.add(k)
        options[k] = value
    try:
        if not scanned:
            return architecture(layers_of(options))
        if "depth" not in scanned:  # input size or width scanned at a fixed depth: one symbol per layer
            hidden = [str(SYMBOLS["width"] if "width" in scanned else int(options["width"]))] * int(options["depth"])
        else:
            hidden = [f"{SYMBOLS['width'] if 'width' in scanned else int(options['width'])}xd"]
        first = SYMBOLS["input_dim"] if "input_dim" in scanned else str(int(options["input_dim"]))
        return "-".join([first, *hidden, str(N_CLASSES)])
    except (KeyError, TypeError, ValueError):
        return ""


def _rnn_architecture(fixed: Mapping, grid: Mapping) -> str:
    """A recurrent scan's label as its runs have it (``28-100-10 x28``, ``5-150-2``), from its
    preset with the options it fixes; a scanned number of steps is ``xT`` (and the input size it
    sets ``784/T``), a scanned number of units ``N``. ``""`` when the options do not say."""
    import dataclasses

    from .errors import MfphysError
    from .rnn import preset

    def one(k):
        value = fixed.get(k, grid.get(k))
        if isinstance(value, (list, tuple)):
            return value[0] if len(value) == 1 else None
        return value

    try:
        cfg = preset(str(one("preset") or "row_mnist"))
        for k in ("task", "n", "steps"):
            if one(k) is not None:
                cfg = dataclasses.replace(cfg, **{k: type(getattr(cfg, k))(one(k))})
        n_in, n_out = cfg.io
        steps_scanned = cfg.task == "mnist" and "steps" in grid and one("steps") is None
        n = "N" if "n" in grid and one("n") is None else str(cfg.n)
        label = f"{'784/T' if steps_scanned else n_in}-{n}-{n_out}"
        if cfg.task == "mnist":
            label += " xT" if steps_scanned else f" x{cfg.steps}"
        return label
    except (KeyError, TypeError, ValueError, MfphysError):  # an unknown preset, a bad value
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
