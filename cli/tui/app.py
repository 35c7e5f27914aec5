"""``MfphysTUI``: browse and monitor the runs, scans and perturbation files of a folder.

Layout: a sidebar (filter box + list of entries) and a main pane that switches between the
run, scan, perturbation and message views. Reading happens in worker threads through
the view models of :mod:`mfphys.cli.tui.models` (cached by file signature); a timer re-lists
the folder every few seconds and reloads the open entry only when its files changed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import ContentSwitcher, Footer, Header, Input, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from mfphys.errors import MfphysError

from .export import export_perturbation, export_run, export_scan
from .models.cache import CACHE
from .models.format import one_line
from .models.listing import Entry, filter_entries, find_baseline, list_entries
from .models.run import PerturbationSummary, RunSummary, load_perturbation, load_run
from .models.scan_grid import Grid, load_scan, overlay_status, scan_grid, scan_layers, scan_params
from .screens import HelpScreen
from .views import MessageView, PerturbationView, RunView, ScanView
from .widgets import Heatmap

STATUS_STYLE = {"done": "green", "running": "yellow", "pending": "grey62", "failed": "red", "error": "bold red"}
KIND_STYLE = {"run": "#5fafff", "scan": "#d787ff", "perturbation": "#87d787"}


def entry_prompt(e: Entry, width: int = 42) -> Text:
    """Two lines for the sidebar: the name; kind, status, dataset, architecture and date (or the error).

    Each line is cut to ``width`` with an ellipsis, so an entry always takes two lines.
    """
    first = Text(e.name, style="bold")
    second = Text()
    second.append(e.kind, style=KIND_STYLE.get(e.kind, "bold red"))
    second.append(" ")
    second.append(e.status_text, style=STATUS_STYLE.get(e.status, ""))
    if e.error:
        second.append(": " + e.error, style="red")
    else:
        for part in (f"{e.dataset} {e.architecture}".strip(), e.date[:10]):
            if part:
                second.append(" · " + part, style="dim")
    for line in (first, second):
        line.truncate(width, overflow="ellipsis")
    return Text("\n").join([first, second])


class EntryList(OptionList):
    """The sidebar list; a letter or digit typed here starts the filter with it."""

    def on_key(self, event) -> None:
        ch = event.character
        if ch and len(ch) == 1 and ch.isalnum() and event.key not in self.app.bound_keys:
            box = self.app.query_one("#filter", Input)
            box.focus()
            box.insert_text_at_cursor(ch)
            event.stop()
            event.prevent_default()


class MfphysTUI(App):
    """Browse and monitor runs and scans (``mfphys tui``)."""

    TITLE = "mfphys"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    #sidebar { width: 46; border-right: solid $primary-darken-2; }
    #filter { margin: 0 0; }
    #entries { height: 1fr; border: none; }
    #entries > .option-list--option { padding: 0 0 0 1; }
    #count { height: 1; color: $text-muted; padding: 0 1; }
    #main { width: 1fr; }
    """
    BINDINGS = [
        Binding("q", "quit", "quit", tooltip="quit"),
        Binding("question_mark", "help", "help", key_display="?", tooltip="this help screen"),
        Binding("slash", "filter", "filter", key_display="/",
                tooltip="filter the sidebar (words match name, kind, status, dataset, architecture, date)"),
        Binding("p", "cycle_param(1)", "param", tooltip="scan: next order parameter"),
        Binding("P", "cycle_param(-1)", "param back", show=False, tooltip="scan: previous order parameter"),
        Binding("l", "cycle_layer(1)", "layer", tooltip="scan, run: next layer (heatmap; histograms)"),
        Binding("L", "cycle_layer(-1)", "layer back", show=False, tooltip="scan, run: previous layer"),
        Binding("v", "toggle_values", "values", tooltip="scan: show / hide the numbers in the heatmap cells"),
        Binding("s", "toggle_spread", "mean/spread",
                tooltip="scan: mean vs std over replicas; run: mean curve vs every replica's curve"),
        Binding("e", "export", "export", tooltip="export the view's numbers (CSV) and plot (PNG)"),
        Binding("r", "refresh", "refresh", tooltip="re-read the folder now (it also refreshes by itself)"),
    ]

    def __init__(self, root: str | Path = "runs", *, export_dir: str | Path | None = None,
                 interval: float = 2.5):
        super().__init__()
        self.root = Path(root)
        self.export_dir = Path(export_dir) if export_dir is not None else self.root
        self.interval = interval
        self.entries: list[Entry] = []
        self.shown_entries: list[Entry] = []
        self.current: Entry | None = None  # the highlighted entry
        self.loaded: Loaded | None = None  # what the main pane shows
        self.param: str | None = None
        self.layer: int | str | None = None  # scan layer: a number or scan_grid.NETWORK
        self.layer_index = 0  # run histograms
        self.stat = "mean"
        self.show_values = False
        self.last_export: list[Path] = []
        self._loading: Path | None = None  # the entry a worker is reading now
        self.bound_keys = {b.key for b in self.BINDINGS}
        self.sub_title = f"{self.root.name or self.root}/"

    # --- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="sidebar"):
                yield Input(placeholder="/ filter (name, kind, status ...)", id="filter",
                            select_on_focus=False)
                yield EntryList(id="entries")
                yield Static(id="count")
            with ContentSwitcher(initial="message", id="main"):
                yield MessageView(id="message")
                yield RunView(id="run")
                yield ScanView(id="scan")
                yield PerturbationView(id="perturbation")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#message", MessageView).show(Text("reading " + str(self.root) + " ...", style="dim"))
        self.query_one("#entries", EntryList).focus()
        self.refresh_entries()
        if self.interval and self.interval > 0:
            self.set_interval(self.interval, self._tick)

    def _tick(self) -> None:
        """The live refresh: list the folder again, unless the previous listing is still running."""
        if not any(w.group == "list" and not w.is_finished for w in self.workers):
            self.refresh_entries()

    # --- listing --------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="list")
    def refresh_entries(self) -> None:
        try:
            entries = list_entries(self.root)
        except Exception as exc:
            self.call_from_thread(self._show_message, Text(one_line(exc), style="red"))
            return
        if not get_current_worker().is_cancelled:  # a newer listing replaced this one
            self.call_from_thread(self._apply_entries, entries)

    def _apply_entries(self, entries: list[Entry]) -> None:
        self.entries = entries
        self._update_sidebar()
        if self.current is not None:
            now = next((e for e in entries if e.path == self.current.path), None)
            if now is None:
                self._show_message(Text(f"{self.current.name} is gone (deleted or moved)", style="yellow"))
                self.current = None
            else:
                self.current = now
                self._follow(now)
        if not entries:
            self._show_message(Text.from_markup(
                f"No runs or scans in [b]{escape(str(self.root))}[/b] yet.\n\n"
                "Make one with, e.g.\n  mfphys train --dataset teacher --layers 784,100,10 --epochs 5 "
                f"--out {escape(str(self.root))}/demo.nc\nThis view refreshes by itself."))

    def _follow(self, entry: Entry) -> None:
        """Bring the main pane up to date with a new listing of the entry it shows (live refresh)."""
        if self._loading == entry.path:
            return  # a read is in flight; the next refresh compares again
        shown = self.loaded.entry if self.loaded is not None else None
        if shown is None or shown.path != entry.path:
            self.load_current()
            return
        payload = self.loaded.payload
        if isinstance(payload, ScanPayload):
            if entry.data_signature != payload.signature and self.scan_read_due(payload):
                self.load_current()
            elif entry != shown:
                self._draw(entry=entry)  # new running/pending marks, without reading the cells
        elif entry != shown or self._baseline_changed(entry):
            self.load_current()

    def _baseline_changed(self, entry: Entry) -> bool:
        """Whether a run's BP baseline appeared, vanished or changed since the run view was drawn."""
        if entry.kind != "run" or self.loaded is None or not isinstance(self.loaded.payload, RunSummary):
            return False
        base = find_baseline(entry, self.entries)
        return self.loaded.baseline != (base.path, base.signature) if base else self.loaded.baseline is not None

    def scan_read_due(self, payload: ScanPayload) -> bool:
        """Whether a scan whose cells changed may be read again now.

        Reads are throttled to one per ``max(interval, 4 x the last read's duration)`` seconds,
        so monitoring a big scan costs at most about a quarter of a core; in between, the
        running / pending / finished marks come from ``scan_status`` (file names only).
        """
        return time.monotonic() - payload.loaded_at >= max(self.interval, 4 * payload.seconds)

    def _update_sidebar(self) -> None:
        box = self.query_one("#filter", Input)
        visible = filter_entries(self.entries, box.value)
        olist = self.query_one("#entries", EntryList)
        ids = [str(e.path) for e in visible]
        if ids == [str(e.path) for e in self.shown_entries]:
            for old, new in zip(self.shown_entries, visible):
                if old != new:  # in place: no flicker, cursor kept
                    olist.replace_option_prompt(str(new.path), entry_prompt(new))
        else:
            keep = self.current.path if self.current is not None else None
            olist.set_options(Option(entry_prompt(e), id=str(e.path)) for e in visible)
            if visible:
                idx = next((i for i, e in enumerate(visible) if e.path == keep), 0)
                olist.highlighted = idx
        self.shown_entries = visible
        n_err = sum(1 for e in self.entries if e.error)
        count = f"{len(visible)} of {len(self.entries)} entries"
        if n_err:
            count += f", {n_err} with errors"
        self.query_one("#count", Static).update(count)

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._update_sidebar()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self.query_one("#entries", EntryList).focus()

    def on_key(self, event) -> None:
        box = self.query_one("#filter", Input)
        if event.key == "escape" and self.focused is box:
            box.value = ""
            self.query_one("#entries", EntryList).focus()
            event.stop()

    @on(OptionList.OptionHighlighted, "#entries")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        entry = next((e for e in self.shown_entries if str(e.path) == event.option.id), None)
        if entry is None:
            return
        self.current = entry
        if self._loading == entry.path or (self.loaded is not None and self.loaded.entry.path == entry.path):
            self._follow(entry)  # already shown or being read: no new read unless it changed
            return
        self.load_current()
        self.set_timer(0.3, lambda: self._loading_notice(entry))

    def _loading_notice(self, entry: Entry) -> None:
        """Say what is being read when a read takes a while (a scan of many cells)."""
        if self.current is None or self.current.path != entry.path:
            return
        if self.loaded is not None and self.loaded.entry.path == entry.path:
            return
        what = f" ({entry.cells[-1]} cells)" if entry.cells else ""
        self._show_message(Text(f"reading {entry.name}{what} ...", style="dim"))

    # --- loading --------------------------------------------------------------------------

    def load_current(self) -> None:
        """Read the highlighted entry in a worker thread; the view is drawn when it is done."""
        if self.current is not None:
            self._loading = self.current.path
            self._load(self.current)

    @work(thread=True, exclusive=True, group="load")
    def _load(self, entry: Entry) -> None:
        base = find_baseline(entry, self.entries) if entry.kind == "run" and not entry.error else None
        try:
            payload = self._read(entry, base)
        except MfphysError as exc:
            payload = str(exc)
        except Exception as exc:
            payload = f"cannot read {entry.path}: {type(exc).__name__}: {one_line(exc)}"
        if not get_current_worker().is_cancelled:  # the user moved on to another entry
            self.call_from_thread(self._loaded, entry, payload, (base.path, base.signature) if base else None)

    def _read(self, entry: Entry, base: Entry | None):
        if entry.error:
            return f"{entry.path}\n\n{entry.error}"
        if entry.kind == "run":
            return load_run(entry.path, name=entry.name, baseline=base.path if base else None)
        if entry.kind == "scan":
            t0 = time.monotonic()
            ds = load_scan(entry.path)
            return ScanPayload(ds, entry.data_signature, time.monotonic(), time.monotonic() - t0)
        if entry.kind == "perturbation":
            return load_perturbation(entry.path, name=entry.name)
        return f"{entry.path}: nothing to show for kind {entry.kind!r}"

    def _loaded(self, entry: Entry, payload, base_key=None) -> None:
        if self._loading == entry.path:
            self._loading = None
        if self.current is None or entry.path != self.current.path:
            return  # the user moved on
        self.loaded = Loaded(entry, payload, base_key)
        self._draw()

    # --- drawing --------------------------------------------------------------------------

    @property
    def view_kind(self) -> str | None:
        if self.loaded is None or isinstance(self.loaded.payload, str):
            return None
        return {RunSummary: "run", ScanPayload: "scan", PerturbationSummary: "perturbation"}.get(
            type(self.loaded.payload))

    def _show_message(self, text) -> None:
        self.query_one("#message", MessageView).show(text)
        self.query_one("#main", ContentSwitcher).current = "message"
        self.loaded = None
        self.refresh_bindings()

    def _draw(self, entry: Entry | None = None) -> None:
        """Show the loaded payload with the current choices; ``entry``: a newer listing of it (scan marks)."""
        if self.loaded is None:
            return
        if entry is not None:
            self.loaded = self.loaded._replace(entry=entry)
        try:
            self._draw_payload(self.loaded.entry, self.loaded.payload)
        except Exception as exc:
            self._show_message(Text(f"cannot show {self.loaded.entry.name}: {type(exc).__name__}: "
                                    f"{one_line(exc)}", style="red"))
        self.refresh_bindings()

    def _draw_payload(self, entry: Entry, payload) -> None:
        switcher = self.query_one("#main", ContentSwitcher)
        if isinstance(payload, str):
            self.query_one("#message", MessageView).show(Text(payload, style="red"))
            switcher.current = "message"
        elif isinstance(payload, RunSummary):
            self.layer_index = min(self.layer_index, max(payload.layers.size - 1, 0))
            self.query_one("#run", RunView).show(entry, payload, layer_index=self.layer_index, stat=self.stat)
            switcher.current = "run"
        elif isinstance(payload, ScanPayload):
            grid = self.current_grid()
            if grid is None:
                self.query_one("#message", MessageView).show(Text(f"{entry.name}: no parameter to show yet",
                                                                  style="yellow"))
                switcher.current = "message"
            else:
                self.query_one("#scan", ScanView).show(entry, grid, params=payload.params, layers=payload.layers,
                                                       stat=self.stat, show_values=self.show_values)
                switcher.current = "scan"
        elif isinstance(payload, PerturbationSummary):
            self.query_one("#perturbation", PerturbationView).show(entry, payload)
            switcher.current = "perturbation"

    def current_grid(self) -> Grid | None:
        """The heatmap's numbers for the current parameter and layer (from the cached combined dataset)."""
        if self.loaded is None or not isinstance(self.loaded.payload, ScanPayload):
            return None
        p = self.loaded.payload
        if not p.params:
            return None
        if self.param not in p.params:
            self.param = p.params[0]
        if p.layers and self.layer not in p.layers:
            self.layer = p.layers[0]
        entry = self.loaded.entry
        key = (self.param, self.layer, entry.cell_status)
        if key not in p.grids:
            overlay = overlay_status(p.ds, entry.cell_status) if entry.cell_status else None
            p.grids = {k: v for k, v in p.grids.items() if k[2] == entry.cell_status}  # drop stale marks
            p.grids[key] = scan_grid(p.ds, self.param, self.layer, overlay=overlay)
        return p.grids[key]

    @on(Heatmap.CursorMoved)
    def _cursor_moved(self, event: Heatmap.CursorMoved) -> None:
        grid = self.current_grid()
        if grid is not None:
            self.query_one("#scan", ScanView).show_cell(grid, event.cursor)

    # --- actions --------------------------------------------------------------------------

    def check_action(self, action: str, parameters) -> bool | None:
        view = self.view_kind
        if action in ("cycle_param", "toggle_values"):
            return True if view == "scan" else None
        if action in ("cycle_layer", "toggle_spread"):
            return True if view in ("scan", "run") else None
        if action == "export":
            return True if view is not None else None
        return True

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.BINDINGS))

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_cycle_param(self, step: int) -> None:
        if self.view_kind != "scan":
            return
        params = self.loaded.payload.params
        i = params.index(self.param) if self.param in params else 0
        self.param = params[(i + step) % len(params)]
        self._draw()

    def action_cycle_layer(self, step: int) -> None:
        kind = self.view_kind
        if kind == "scan":
            layers = self.loaded.payload.layers
            if layers:
                i = layers.index(self.layer) if self.layer in layers else 0
                self.layer = layers[(i + step) % len(layers)]
        elif kind == "run":
            n = max(self.loaded.payload.layers.size, 1)
            self.layer_index = (self.layer_index + step) % n
        self._draw()

    def action_toggle_values(self) -> None:
        self.show_values = not self.show_values
        self._draw()

    def action_toggle_spread(self) -> None:
        self.stat = "spread" if self.stat == "mean" else "mean"
        self._draw()

    def action_refresh(self) -> None:
        CACHE.clear()
        self.refresh_entries()
        if self.current is not None:
            self.load_current()

    def action_export(self) -> None:
        if self.view_kind is None:
            return
        entry, payload = self.loaded.entry, self.loaded.payload
        if isinstance(payload, ScanPayload):
            job = ("scan", entry.name, self.current_grid(), self.stat)
        elif isinstance(payload, RunSummary):
            job = ("run", entry.name, payload, self.layer_index)
        else:
            job = ("perturbation", entry.name, payload, None)
        self.export_view(job)

    @work(thread=True, exclusive=True, group="export")
    def export_view(self, job) -> None:
        kind, name, what, extra = job
        try:
            if kind == "scan":
                paths = export_scan(name, what, self.export_dir, stat=extra)
            elif kind == "run":
                paths = export_run(name, what, extra, self.export_dir)
            else:
                paths = export_perturbation(name, what, self.export_dir)
        except Exception as exc:
            self.call_from_thread(self.notify, one_line(exc), title="export failed", severity="error")
            return
        self.last_export = paths
        self.call_from_thread(self.notify, "\n".join(p.name for p in paths), title=f"exported to {self.export_dir}")


class Loaded(NamedTuple):
    """What the main pane shows: the entry as listed, what was read (a RunSummary, ScanPayload,
    PerturbationSummary, or an error text) and, for a run, its BP baseline's (path, signature)."""

    entry: Entry
    payload: object
    baseline: tuple | None = None


class ScanPayload:
    """A loaded scan: the combined Dataset, its parameters and layers, and the grids drawn so far.

    ``signature``: the scan's data signature when read; ``loaded_at``, ``seconds``: when and
    how long the read took (for throttling re-reads of a scan being written).
    """

    def __init__(self, ds, signature=(), loaded_at: float = 0.0, seconds: float = 0.0):
        self.ds = ds
        self.signature = signature
        self.loaded_at = loaded_at
        self.seconds = seconds
        self.params = scan_params(ds)
        self.layers = scan_layers(ds)
        self.grids: dict = {}
