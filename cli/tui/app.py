"""``MfphysTUI``: browse and monitor the runs, scans and perturbation files of a folder.

Layout: a sidebar (filter box + list of entries) and a main pane that switches between the
run, scan, perturbation, runs-table and message views. Reading happens in worker threads through
the view models of :mod:`mfphys.cli.tui.models` (cached by file signature); a timer re-lists
the folder every few seconds and reloads the open entry only when its files changed.

The app routes: what was read goes to its view, and the view keys to the view shown
(:mod:`.views`), which keeps its own choices and does its keys. The app keeps the folder's
entries, the filter, the marks (shared by the sidebar, the runs table and the run view's
overlay), the workers and the exports.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

from rich.markup import escape
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import ContentSwitcher, Footer, Header, Input, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from mfphys.errors import MfphysError

from .keys import APP_KEYS
from .models.cache import CACHE
from .models.format import one_line
from .models.listing import KINDS, Entry, filter_entries, find_baseline, list_entries
from .models.run import PerturbationSummary, RunSummary, load_perturbation, load_run
from .models.runs_table import read_numbers, run_rows
from .models.scan_grid import ScanPayload, load_scan
from .screens import HelpScreen
from .sidebar import EntryList, entry_prompt
from .views import (
    ChoiceChanged,
    DrawFailed,
    EntryView,
    ExportRequested,
    MessageView,
    PerturbationView,
    RunsTable,
    RunsTableView,
    RunView,
    ScanView,
)

#: the view of each kind of payload (what a worker read), by its id in the main pane
VIEW_OF = {RunSummary: "run", ScanPayload: "scan", PerturbationSummary: "perturbation"}


class MfphysTUI(App):
    """Browse and monitor runs and scans (``mfphys tui``)."""

    TITLE = "mfphys"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    #sidebar { width: 46; max-width: 40%; border-right: solid $primary-darken-2; }
    #filter { margin: 0 0; }
    #entries { height: 1fr; border: none; }
    #entries > .option-list--option { padding: 0 0 0 1; }
    #count { height: auto; max-height: 3; color: $text-muted; padding: 0 1; }
    #main { width: 1fr; }
    /* the runs table takes the whole width: the filter box above it, the list hidden */
    #body.-table { layout: vertical; }
    #body.-table #sidebar { width: 1fr; max-width: 100%; height: auto; border-right: none; }
    #body.-table #entries, #body.-table #count { display: none; }
    #body.-table #main { height: 1fr; }
    """
    BINDINGS = APP_KEYS

    def __init__(self, root: str | Path = "runs", *, export_dir: str | Path | None = None,
                 interval: float = 2.5, select: str | Path | None = None, columns: tuple = ()):
        super().__init__()
        self.columns = tuple(columns)  # the runs table's extra columns (mfphys tui --columns)
        self.root = Path(root)
        self.select = Path(select) if select is not None else None  # the entry to show first
        self.export_dir = Path(export_dir) if export_dir is not None else self.root
        self.interval = interval
        self.entries: list[Entry] = []
        self.shown_entries: list[Entry] = []
        self.current: Entry | None = None  # the highlighted entry
        self.loaded: Loaded | None = None  # what the main pane shows
        self.table_mode = False  # the main pane shows the runs table
        self.marked: list[Path] = []  # runs marked for the curve overlay, in marking order
        self.last_export: list[Path] = []
        self._loading: Path | None = None  # the entry a worker is reading now
        self.sub_title = f"{self.root.name or self.root}/"

    # --- layout ---------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="body"):
            with Vertical(id="sidebar"):
                # while it has the focus, the box owns every printable key (Textual's
                # Input.check_consume_key), so no app key fires while a filter is typed, q included
                yield Input(placeholder="/ filter (name, kind, status ...)", id="filter", select_on_focus=False)
                yield EntryList(id="entries")
                yield Static(id="count")
            with ContentSwitcher(initial="message", id="main"):
                yield MessageView(id="message")
                yield RunView(id="run")
                yield ScanView(id="scan")
                yield PerturbationView(id="perturbation")
                yield RunsTableView(id="table", folder_name=self.root.resolve().name or "runs", columns=self.columns)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#message", MessageView).show(Text("reading " + str(self.root) + " ...", style="dim"))
        self.screen.set_focus(self.query_one("#entries", EntryList))
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
        from textual.css.query import NoMatches

        try:
            self.query_one("#entries", EntryList)
        except NoMatches:  # the app is closing: a listing finished after its screen went away
            return
        self.entries = entries
        if self.select is not None:  # `mfphys tui FILE`: that entry first
            want = self.select.resolve()
            self.current = next((e for e in entries if e.path.resolve() == want), self.current)
            self.select = None
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
        if self.table_mode:
            self.load_table()

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
        elif entry != shown or self._baseline_changed(entry) or self._overlays_changed(entry):
            self.load_current()  # a run file rewritten at a checkpoint is read again (cached by signature)
        elif entry.status == "running" and isinstance(payload, RunSummary):
            self.query_one("#run", RunView).show_progress(entry)  # the ETA counts down between checkpoints

    def _baseline_changed(self, entry: Entry) -> bool:
        """Whether a run's BP baseline appeared, vanished or changed since the run view was drawn."""
        if entry.kind != "run" or self.loaded is None or not isinstance(self.loaded.payload, RunSummary):
            return False
        base = find_baseline(entry, self.entries)
        return self.loaded.baseline != (base.path, base.signature) if base else self.loaded.baseline is not None

    def _overlay_entries(self, entry: Entry) -> list[Entry]:
        """The marked runs to draw with ``entry``'s curves (not itself), in marking order."""
        if entry.kind != "run" or entry.error:
            return []
        by_path = {e.path: e for e in self.entries}
        return [by_path[p] for p in self.marked if p != entry.path and p in by_path and by_path[p].ok]

    def _overlays_changed(self, entry: Entry) -> bool:
        """Whether the marked runs, or their files, changed since the run view was drawn."""
        if self.loaded is None or not isinstance(self.loaded.payload, RunSummary):
            return False
        return self.loaded.overlay_key != tuple((e.path, e.signature) for e in self._overlay_entries(entry))

    def scan_read_due(self, payload: ScanPayload) -> bool:
        """Whether a scan whose cells changed may be read again now.

        Reads are throttled to one per ``max(interval, 4 x the last read's duration)`` seconds,
        so monitoring a big scan costs at most about a quarter of a core; in between, the
        running / pending / finished marks come from ``scan_status`` (file names only).
        """
        return time.monotonic() - payload.loaded_at >= max(self.interval, 4 * payload.seconds)

    def _update_sidebar(self, *, redraw: bool = False) -> None:
        """Show the entries the filter lets through; ``redraw``: every line again (marks changed)."""
        box = self.query_one("#filter", Input)
        visible = filter_entries(self.entries, box.value)
        olist = self.query_one("#entries", EntryList)
        marked = set(self.marked)
        ids = [str(e.path) for e in visible]
        if ids == [str(e.path) for e in self.shown_entries]:
            for old, new in zip(self.shown_entries, visible):
                # in place: no flicker, cursor kept; a running run's ETA counts down
                if redraw or old != new or new.eta_at is not None:
                    olist.replace_option_prompt(str(new.path), entry_prompt(new, marked=new.path in marked))
        else:
            keep = self.current.path if self.current is not None else None
            olist.set_options(Option(entry_prompt(e, marked=e.path in marked), id=str(e.path)) for e in visible)
            if visible:
                idx = next((i for i, e in enumerate(visible) if e.path == keep), 0)
                olist.highlighted = idx
        self.shown_entries = visible
        self._update_count()

    def _update_count(self) -> None:
        """The line under the list: how many entries the filter lets through, and what the main
        pane shows when that is not one of them (a filter matching nothing keeps the last view)."""
        text = self.query_one("#filter", Input).value.strip()
        count = f"{len(self.shown_entries)} of {len(self.entries)} entries"
        if text:
            count += f" match '{text}'"
        # mfphys files of other kinds (a reproduction's datasets) are not errors: they are named apart
        other = sum(1 for e in self.entries if e.kind not in KINDS and e.error.startswith("an mfphys "))
        n_err = sum(1 for e in self.entries if e.error) - other
        if n_err:
            count += f", {n_err} with errors"
        if other:
            count += f", {other} other mfphys file{'s' * (other > 1)}"
        if self.table_mode:
            count += "; showing: runs table"
        elif self.loaded is not None and self.loaded.entry.path not in {e.path for e in self.shown_entries}:
            count += f"; showing: {self.loaded.entry.title}"
        self.query_one("#count", Static).update(count)

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._update_sidebar()
        if self.table_mode:
            self._draw_table()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self._focus_list()

    def _focus_list(self) -> None:
        """Done with the filter box: back to the list, or to the runs table, which hides the list."""
        target = self.query_one("#runs-table", RunsTable) if self.table_mode else self.query_one("#entries", EntryList)
        self.screen.set_focus(target)

    @on(OptionList.OptionHighlighted, "#entries")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        entry = next((e for e in self.shown_entries if str(e.path) == event.option.id), None)
        if entry is None:
            return
        self.current = entry
        self.refresh_bindings()  # "mark" applies to runs only
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
            self._load(self.current, tuple(self._overlay_entries(self.current)))

    @work(thread=True, exclusive=True, group="load")
    def _load(self, entry: Entry, overlay_entries: tuple = ()) -> None:
        base = find_baseline(entry, self.entries) if entry.kind == "run" and not entry.error else None
        try:
            payload = self._read(entry, base)
        except MfphysError as exc:
            payload = str(exc)
        except Exception as exc:
            payload = f"cannot read {entry.path}: {type(exc).__name__}: {one_line(exc)}"
        overlays = []
        if isinstance(payload, RunSummary):
            for e in overlay_entries:
                try:
                    overlays.append((e.title, read_numbers(e.path)))
                except MfphysError:  # a marked run that cannot be read is left out of the plot
                    continue
        key = tuple((e.path, e.signature) for e in overlay_entries)
        if not get_current_worker().is_cancelled:  # the user moved on to another entry
            self.call_from_thread(self._loaded, entry, payload, (base.path, base.signature) if base else None,
                                  tuple(overlays), key)

    def _read(self, entry: Entry, base: Entry | None):
        if entry.error:
            return f"{entry.path}\n\n{entry.error}"
        if entry.kind == "run":
            return load_run(entry.path, name=entry.title, baseline=base.path if base else None)
        if entry.kind == "scan":
            t0 = time.monotonic()
            ds = load_scan(entry.path)
            return ScanPayload(ds, entry.data_signature, time.monotonic(), time.monotonic() - t0)
        if entry.kind == "perturbation":
            return load_perturbation(entry.path, name=entry.title)
        return f"{entry.path}: nothing to show for kind {entry.kind!r}"

    def _loaded(self, entry: Entry, payload, base_key=None, overlays=(), overlay_key=()) -> None:
        if self._loading == entry.path:
            self._loading = None
        if self.current is None or entry.path != self.current.path:
            return  # the user moved on
        self.loaded = Loaded(entry, payload, base_key, overlays, overlay_key)
        self._draw()

    # --- the runs table -------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="table")
    def load_table(self) -> None:
        """Read every run's row (small variables only, cached per file version) in a worker thread."""
        rows = run_rows(list(self.entries))
        if not get_current_worker().is_cancelled:
            self.call_from_thread(self._table_loaded, rows)

    def _table_loaded(self, rows) -> None:
        self.query_one("#table", RunsTableView).rows = rows
        if self.table_mode:
            self._draw_table()

    def _draw_table(self, loading: bool = False) -> None:
        """The runs table from the rows read so far: those the filter lets through, sorted."""
        self.query_one("#table", RunsTableView).show([e.path for e in self.shown_entries], marked=self.marked,
                                                     filter_text=self.query_one("#filter", Input).value,
                                                     loading=loading)

    def leave_table(self) -> None:
        """Back from the runs table to the view of the highlighted entry."""
        if not self.table_mode:
            return
        self.table_mode = False
        self.query_one("#body").remove_class("-table")
        switcher = self.query_one("#main", ContentSwitcher)
        if self.loaded is None:
            switcher.current = "message"
        self._draw()
        self._update_count()
        self.refresh_bindings()

    @on(RunsTable.RowSelected, "#runs-table")
    def _open_row(self, event: RunsTable.RowSelected) -> None:
        path = Path(event.row_key.value)
        names = [e.path for e in self.shown_entries]
        self.leave_table()
        olist = self.query_one("#entries", EntryList)
        self.screen.set_focus(olist)
        if path in names:
            olist.highlighted = names.index(path)

    # --- routing --------------------------------------------------------------------------

    @property
    def view_kind(self) -> str | None:
        """What the main pane shows: "table", "run", "scan", "perturbation", or None (a message)."""
        if self.table_mode:
            return "table"
        return self.payload_kind

    @property
    def payload_kind(self) -> str | None:
        """The kind of the loaded entry's view (whether or not the runs table covers it)."""
        if self.loaded is None:
            return None
        return VIEW_OF.get(type(self.loaded.payload))

    @property
    def shown_view(self) -> EntryView:
        """The view in the main pane, which the view keys go to (the message view: none applies)."""
        return self.query_one(f"#{self.view_kind or 'message'}", EntryView)

    def _show_message(self, text) -> None:
        self.query_one("#message", MessageView).show(text)
        if not self.table_mode:
            self.query_one("#main", ContentSwitcher).current = "message"
        self.loaded = None
        self._update_count()
        self.refresh_bindings()

    def _draw(self, entry: Entry | None = None) -> None:
        """Show the loaded payload in its view; ``entry``: a newer listing of it (scan marks)."""
        if self.loaded is None:
            return
        if entry is not None:
            self.loaded = self.loaded._replace(entry=entry)
        try:
            view = self._route(self.loaded)
        except Exception as exc:
            self._show_message(DrawFailed(self.loaded.entry, exc).text)
            return
        if not self.table_mode:  # the runs table stays in front until `t` or a move in the list
            self.query_one("#main", ContentSwitcher).current = view
        self._update_count()
        self.refresh_bindings()

    def _route(self, loaded: Loaded) -> str:
        """Give what was read to its view, which draws it with its own choices; returns the view's id."""
        entry, payload = loaded.entry, loaded.payload
        kind = VIEW_OF.get(type(payload))
        if kind == "run":
            self.query_one("#run", RunView).show(entry, payload, overlays=loaded.overlays)
        elif kind == "scan":
            if not self.query_one("#scan", ScanView).show(entry, payload):
                self.query_one("#message", MessageView).show(Text(f"{entry.name}: no parameter to show yet",
                                                                  style="yellow"))
                return "message"
        elif kind == "perturbation":
            self.query_one("#perturbation", PerturbationView).show(entry, payload)
        else:  # an error text
            self.query_one("#message", MessageView).show(Text(str(payload), style="red"))
            return "message"
        return kind

    @on(DrawFailed)
    def _draw_failed(self, event: DrawFailed) -> None:
        if self.loaded is not None and event.entry is not None and event.entry.path == self.loaded.entry.path:
            self._show_message(event.text)

    @on(ChoiceChanged)
    def _choice_changed(self, event: ChoiceChanged) -> None:
        """A choice made in one view that applies to the others too (inputs, the diagonal)."""
        for view in self.query_one("#main", ContentSwitcher).children:
            if isinstance(view, EntryView) and view is not event.view and event.name in view.SHARED:
                setattr(view, event.name, event.value)

    # --- actions --------------------------------------------------------------------------

    def check_action(self, action: str, parameters) -> bool | None:
        if len(self.screen_stack) > 1:
            return False  # the help screen is up: its own keys (esc, q, ?) close it
        if action == "view":  # a view key: the view shown says whether it applies
            return self.shown_view.check_action(parameters[0], tuple(parameters[1:]))
        if action == "mark":
            return True if self.table_mode or self._mark_target() is not None else None
        if action == "clear_marks":
            return True if self.marked else None
        return True

    async def action_view(self, action: str, *args) -> None:
        """A view key: the view shown does ``action(*args)``."""
        await self.run_action(("", action, args), self.shown_view)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.BINDINGS))

    def action_filter(self) -> None:
        # at once, not on the next turn of the event loop (Widget.focus): the keys typed after `/`
        # are passed on to the focused widget as soon as the app reads them
        self.screen.set_focus(self.query_one("#filter", Input))

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        if self.focused is box:  # done with the filter: back to the list
            self._focus_list()

    def action_table(self) -> None:
        if self.table_mode:
            focus_was_in_table = isinstance(self.focused, RunsTable)
            self.leave_table()
            if focus_was_in_table:
                self.screen.set_focus(self.query_one("#entries", EntryList))
            return
        self.table_mode = True
        self.query_one("#body").add_class("-table")
        self.query_one("#main", ContentSwitcher).current = "table"
        self._draw_table(loading=True)
        self.screen.set_focus(self.query_one("#runs-table", RunsTable))
        self._update_count()
        self.refresh_bindings()
        self.load_table()

    def _mark_target(self) -> Path | None:
        """The run that space marks: the runs table's row, else the highlighted sidebar entry."""
        if self.table_mode:
            path = self.query_one("#runs-table", RunsTable).cursor_path
            return Path(path) if path is not None else None
        if self.current is not None and self.current.kind == "run" and self.current.ok:
            return self.current.path
        return None

    def action_mark(self) -> None:
        path = self._mark_target()
        if path is None:
            return
        if path in self.marked:
            self.marked.remove(path)
        else:
            self.marked.append(path)
        self._marks_changed()

    def action_clear_marks(self) -> None:
        self.marked.clear()
        self._marks_changed()

    def _marks_changed(self) -> None:
        self._update_sidebar(redraw=True)
        if self.table_mode:
            self._draw_table()
        if self.payload_kind == "run":
            self.load_current()  # the overlay: curves of marked runs (cached reads)
        self.refresh_bindings()

    def action_refresh(self) -> None:
        CACHE.clear()
        self.refresh_entries()
        if self.current is not None:
            self.load_current()

    @on(ExportRequested)
    def _export_requested(self, event: ExportRequested) -> None:
        self.export_view(event.write)

    @work(thread=True, exclusive=True, group="export")
    def export_view(self, write) -> None:
        """Write a view's export (``write(folder)``, from the view) into the export folder."""
        try:
            paths = write(self.export_dir)
        except Exception as exc:
            self.call_from_thread(self.notify, one_line(exc), title="export failed", severity="error")
            return
        self.last_export = paths
        self.call_from_thread(self.notify, "\n".join(p.name for p in paths), title=f"exported to {self.export_dir}")


class Loaded(NamedTuple):
    """What the main pane shows: the entry as listed, what was read (a RunSummary, ScanPayload,
    PerturbationSummary, or an error text); for a run, its BP baseline's (path, signature), and
    the marked runs drawn with it: ``(name, RunNumbers)`` and their ((path, signature), ...)."""

    entry: Entry
    payload: object
    baseline: tuple | None = None
    overlays: tuple = ()
    overlay_key: tuple = ()


