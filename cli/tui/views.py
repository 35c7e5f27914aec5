"""The main-pane views: a run, a scan, a perturbation file, the runs table, or a message (errors, empty folder).

Each view gets plain data from the view models (:mod:`mfphys.cli.tui.models`) through
``show(...)`` and draws it; none reads files. Each view keeps its own choices (layer, parameter,
mean or spread, ...) as reactive attributes and does its own keys (``action_*``; the app routes
the view keys of :mod:`.keys` to the view shown, whose ``check_action`` says which apply), so
the choices stay while other entries are shown. Updates replace widget contents in place (no
remounting), so the live refresh does not flicker.
"""

from __future__ import annotations

import numpy as np
from rich.markup import escape
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import var
from textual.widgets import DataTable, Static

from mfphys.stats import format_stat, replica_stats

from .export import export_perturbation, export_run, export_runs_table, export_scan
from .families import panels_for
from .keys import VIEW_ACTIONS
from .models.format import duration, middle_ellipsis, one_line, plain, shell_path, short
from .models.listing import Entry
from .models.run import (
    HIST_NAMES,
    RNN_MODES,
    PerturbationSummary,
    RunSummary,
    accuracy_table,
    baseline_trajectory,
    curve_stats,
    dyn_label,
    dyn_params,
    hist_counts,
    layer_table,
    part_name,
    psychometric,
    psychometric_modes,
    trajectory,
)
from .models.runs_table import COLUMNS, NUMERIC, RunRow, differing_columns, row_cells, sort_rows
from .models.scan_grid import (
    NETWORK,
    Grid,
    ScanPayload,
    Trajectories,
    has_nodiag,
    layer_label,
    overlay_status,
    scan_trajectories,
)
from .widgets import Bars, Heatmap, LinePlot, Series, colour_at, hex_colour

RUN_COLOUR = "#5fafff"
BP_COLOUR = "#ffaf00"
VARIABLE_COLOUR = "#87d787"
#: colours of overlaid runs (after the shown run's blue and the BP baseline's orange)
OVERLAY_COLOURS = ("#ff5f87", "#87d787", "#d787ff", "#5fd7d7", "#d7d75f", "#ff8700", "#afafaf")
LEGEND_WIDTH = 24  # a run's name in a plot's legend, cut in the middle beyond this
#: colours of the layers in the trajectory plot (layer 1, 2, ...; the BP baseline is orange)
LAYER_COLOURS = ("#5fafff", "#87d787", "#d787ff", "#5fd7d7", "#d7d75f", "#ff5f87", "#afafaf")
#: colours of the multisensory modalities in the psychometric plots (visual, auditory, both)
MODALITY_COLOURS = ("#5fafff", "#87d787", "#ff5f87", "#d7d75f")


def entry_parts(entry: Entry) -> list[str]:
    """What the entry is, as the words of its heading: kind, model and mode, task and preset
    (recurrent runs), the perturbed matrix (recurrent perturbations), dataset, architecture, date."""
    mode = panels_for(entry.model).mode_label(entry.mode)
    dataset = entry.dataset
    if entry.preset and entry.preset != dataset:
        dataset = f"{dataset} ({entry.preset})" if dataset else entry.preset
    matrix = ""
    if entry.matrix:  # the perturbed matrix; "recurrent nodiag": its self-connections left out
        name, _, nodiag = entry.matrix.partition(" ")
        matrix = f"{name} matrix" + (" without its diagonal" if nodiag else "")
    return [entry.kind, mode, matrix, dataset, entry.architecture, entry.date]


def entry_line(entry: Entry) -> str:
    return " · ".join(escape(p) for p in entry_parts(entry) if p)


def entry_heading(entry: Entry) -> Text:
    """The entry's name in bold (its own name and, if that differs, the file's), then what it is."""
    head = Text(entry.title, style="bold")
    if entry.label and entry.label != entry.name:
        head.append(f" ({entry.name})", style="dim")
    head.append("  ")
    head.append_text(Text.from_markup(entry_line(entry)))
    return head


def _static_table(table: DataTable) -> DataTable:
    # a table that only shows numbers takes no focus: tab goes sidebar -> view -> filter
    table.can_focus = False
    return table


def _fill_table(table: DataTable, header, rows) -> None:
    """Replace a DataTable's contents only when they changed (keeps the cursor and avoids redraws)."""
    key = (tuple(header), tuple(tuple(r) for r in rows))
    if getattr(table, "_mfphys_key", None) == key:
        return
    table._mfphys_key = key
    table.clear(columns=True)
    for h in header:
        table.add_column(h, key=h)
    table.add_rows(rows)


class ExportRequested(Message):
    """A view's numbers and plot to export: ``write(folder)`` writes them and returns the files
    (the app runs it in a worker thread, into its export folder)."""

    def __init__(self, write):
        super().__init__()
        self.write = write


class ChoiceChanged(Message):
    """A choice that more than one view makes (``inputs``: live or all; ``diagonal``: the
    recurrent matrix with or without it) changed in one: the app gives it to the others, so the
    choice applies to every view (docs/tui.md)."""

    def __init__(self, view, name: str, value):
        super().__init__()
        self.view, self.name, self.value = view, name, value


class DrawFailed(Message):
    """A view could not draw its entry after a key (a file with something unforeseen): the app says so."""

    def __init__(self, entry: Entry, error: Exception):
        super().__init__()
        self.entry, self.error = entry, error

    @property
    def text(self) -> Text:
        return Text(f"cannot show {self.entry.name}: {type(self.error).__name__}: {one_line(self.error)}",
                    style="red")


class EntryView:
    """What the main-pane views share (a mixin before the Textual container): the view keys.

    A view key applies where the view has its action (``action_<name>``) and :meth:`applies`
    agrees; elsewhere it is shown dimmed and does nothing. ``SHARED``: the choices this view
    makes that apply to the other views too (:class:`ChoiceChanged`).
    """

    SHARED: tuple[str, ...] = ()
    entry: Entry | None = None  # what the view shows

    def check_action(self, action: str, parameters) -> bool | None:
        if action in VIEW_ACTIONS:
            return True if callable(getattr(self, f"action_{action}", None)) and self.applies(action) else None
        return super().check_action(action, parameters)

    def applies(self, action: str) -> bool:
        """Whether the view key ``action``, which this view has, applies to what it shows now."""
        return True

    def draw(self) -> None:
        """Draw what the view shows with its current choices."""

    def redraw(self) -> None:
        """Draw again after a key changed a choice; a failure goes to the app as a message."""
        try:
            self.draw()
        except Exception as exc:
            self.post_message(DrawFailed(self.entry, exc))
            return
        self.refresh_bindings()  # a choice may enable another key (d: c)

    def share(self, name: str) -> None:
        """Tell the other views that the shared choice ``name`` changed here."""
        self.post_message(ChoiceChanged(self, name, getattr(self, name)))

    def export(self, write) -> None:
        self.post_message(ExportRequested(write))


class ConnectionChoices:
    """The shared choices of which connections a run or scan view counts (a mixin after
    :class:`EntryView`): layer 1 over live or all inputs (``i``), the recurrent matrix with or
    without its diagonal; only these views have the keys."""

    def action_toggle_inputs(self) -> None:
        self.inputs = "all" if self.inputs == "live" else "live"
        self.share("inputs")
        self.redraw()

    def action_toggle_diagonal(self) -> None:
        self.diagonal = not self.diagonal
        self.share("diagonal")
        self.redraw()


class MessageView(EntryView, VerticalScroll):
    """A message in the main pane: the selected file's error, an empty folder, a hint."""

    DEFAULT_CSS = """
    MessageView { padding: 1 2; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="message-text")

    def show(self, text: str | Text) -> None:
        self.query_one("#message-text", Static).update(text)


class RunView(EntryView, ConnectionChoices, VerticalScroll):
    """Learning curves (with the BP baseline), per-layer order parameters, pi/m/Xi histograms.

    Its choices: the histograms' layer (``layer_index``; a recurrent run's matrix), the curves
    (``curves``: "mean" over replicas or every replica's, "replicas"), layer 1 over "live" or
    "all" ``inputs``, the recurrent matrix with its ``diagonal`` or without, and the order
    parameter of the trajectories plot (``dyn_param``).
    """

    SHARED = ("inputs", "diagonal")
    layer_index = var(0)
    curves = var("mean")
    inputs = var("live")
    diagonal = var(True)
    dyn_param: var[str | None] = var(None)

    DEFAULT_CSS = """
    RunView { padding: 0 1; }
    RunView #run-head { height: auto; margin-bottom: 1; }
    RunView #run-curves { height: 11; }
    RunView #run-eval { display: none; height: auto; max-height: 8; margin: 1 0 0 0; }
    RunView.-eval #run-eval { display: block; }
    RunView #run-psych { display: none; height: 11; margin: 1 0 0 0; }
    RunView.-psych #run-psych { display: block; }
    RunView #plot-dyn { height: 10; margin: 1 0 0 0; }
    RunView.-eval.-nodyn #plot-dyn { height: 2; }
    RunView #run-order { height: auto; max-height: 12; margin: 1 0 0 0; }
    RunView #order-note { height: auto; margin-bottom: 1; }
    RunView #run-hists { height: 8; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="run-head")
        with Horizontal(id="run-curves"):
            yield LinePlot(id="plot-loss")
            yield LinePlot(id="plot-acc")
        # the family's panels (families.panels_for): the accuracy of every evaluation mode (recurrent
        # runs), psychometric curves (the multisensory task)
        yield _static_table(DataTable(id="run-eval", show_cursor=False, zebra_stripes=True))
        with Horizontal(id="run-psych"):
            yield LinePlot(id="plot-psych-1")
            yield LinePlot(id="plot-psych-2")
        yield LinePlot(id="plot-dyn")
        yield _static_table(DataTable(id="run-order", show_cursor=False, zebra_stripes=True))
        yield Static(id="order-note")
        yield Static(id="hist-head")
        with Horizontal(id="run-hists"):
            yield Bars(id="hist-pi", colour="#d7875f")
            yield Bars(id="hist-m", colour="#5fafff")
            yield Bars(id="hist-xi", colour="#87d787")

    def show(self, entry: Entry, run: RunSummary, overlays=()) -> None:
        """Draw ``run`` with the view's choices, kept where the run has them (a layer it has, an
        order parameter it recorded); ``overlays``: ``(name, RunNumbers)`` of marked runs, drawn
        with the run's own curves."""
        self.entry, self.run, self.overlays = entry, run, overlays
        self.layer_index = min(self.layer_index, max(run.layers.size - 1, 0))
        params = dyn_params(run)
        if params and self.dyn_param not in params:
            self.dyn_param = params[0]
        self.draw()

    # --- the keys ----------------------------------------------------------------------------

    def applies(self, action: str) -> bool:
        if action == "cycle_param":
            return bool(dyn_params(self.run))  # the trajectories' parameter, where the file has any
        if action == "toggle_inputs":
            return self.family.live_inputs  # a recurrent run has no live inputs: its diagonal is n's
        if action == "toggle_diagonal":
            return self.family.diagonal and self.run.has_nodiag
        return True

    @property
    def family(self):
        """The panels of the run's model family."""
        return panels_for(self.run.model)

    def applied_choices(self) -> tuple[str, bool]:
        """``inputs`` and ``diagonal`` as they apply to the run: a choice its family does not offer
        is not applied (its files are drawn over all inputs, with every connection)."""
        family = self.family
        return (self.inputs if family.live_inputs else "all"), (self.diagonal or not family.diagonal)

    def action_cycle_param(self, step: int) -> None:
        params = dyn_params(self.run)
        i = params.index(self.dyn_param) if self.dyn_param in params else 0
        self.dyn_param = params[(i + step) % len(params)]
        self.redraw()

    def action_cycle_layer(self, step: int) -> None:
        """The histograms' next layer, or a recurrent run's next matrix."""
        self.layer_index = (self.layer_index + step) % max(self.run.layers.size, 1)
        self.redraw()

    def action_toggle_spread(self) -> None:
        self.curves = "replicas" if self.curves == "mean" else "mean"
        self.redraw()

    def action_export(self) -> None:
        name, run, overlays = self.entry.name, self.run, self.overlays
        (index, param), (inputs, diagonal) = (self.layer_index, self.dyn_param), self.applied_choices()
        self.export(lambda folder: export_run(name, run, index, folder, overlays=overlays, dyn_param=param,
                                              inputs=inputs, diagonal=diagonal))

    # --- drawing -----------------------------------------------------------------------------

    def draw(self) -> None:
        entry, run, overlays = self.entry, self.run, self.overlays
        layer_index, dyn_param = self.layer_index, self.dyn_param
        inputs, diagonal = self.applied_choices()
        self._shown = (entry, run)
        family = self.family
        self.set_class(family.evaluation, "-eval")
        self.set_class(family.psychometric and bool(run.p_high), "-psych")
        # a run with an evaluation table and without trajectories: two lines say so, the order table moves up
        self.set_class(not run.dyn, "-nodyn")
        head = entry_heading(entry)
        head.append("\n")
        head.append_text(progress_line(entry, run))
        overlay_names = {name for name, _ in overlays}
        show_baseline = bool(run.baseline) and run.baseline_name not in overlay_names
        if run.baseline_name and show_baseline:
            head.append("   BP baseline: ", style=BP_COLOUR)
            head.append(run.baseline_name)
        head.append_text(family.accuracy_line(entry, run))
        if "test_acc_sampled" in run.final:
            head.append(" · ")
            head.append(format_stat(run.final["test_acc_sampled"]), style="bold")
            head.append(" sampled")
        spread = self.curves == "replicas"
        head.append("\ncurves: ", style="dim")
        head.append("every replica" if spread else "mean over replicas", style="bold")
        head.append("  (s: " + ("mean" if spread else "every replica") + ")", style="dim")
        if overlays:
            head.append("\noverlay: ", style="dim")
            names = [entry.title] + [name for name, _ in overlays]
            for name, colour in zip(names, (RUN_COLOUR,) + OVERLAY_COLOURS * 4):
                head.append("━ " + name, style=colour)
                head.append("  ")
            head.append("(space marks, M clears)", style="dim")
        self.query_one("#run-head", Static).update(head)
        own = "gbp" if run.mode != "bp" else "bp"
        if overlays:  # several runs: each series is named after its run
            own = middle_ellipsis(entry.title, LEGEND_WIDTH)
        for wid, key, title in (("#plot-loss", "train_loss", "train loss"), ("#plot-acc", "test_acc", "test acc")):
            series = self._series(run.epoch, run.curves[key], own,
                                  RUN_COLOUR if run.mode != "bp" or overlays else BP_COLOUR, spread)
            if key in run.baseline and show_baseline:
                series += self._series(run.baseline_epoch, run.baseline[key], "BP", BP_COLOUR, spread)
            for (name, numbers), colour in zip(overlays, OVERLAY_COLOURS * 4):
                series += self._series(numbers.epoch, numbers.curves[key], middle_ellipsis(name, LEGEND_WIDTH),
                                       colour, spread)
            what = "replicas" if spread else "mean"
            if not run.epoch.size:  # the file written at the start: no epoch to draw yet
                series, what = [], "no epoch done yet"
            elif key == "test_acc" and not np.isfinite(run.curves[key]).any() and run.p_high:
                series, what = [], "none for this task"
            # with runs overlaid the legend is the header's "overlay:" line (names too long for a title)
            self.query_one(wid, LinePlot).plot(series, title=f"{title} ({what})", xlabel="epoch",
                                               legend=not overlays)
        if family.evaluation:
            _fill_table(self.query_one("#run-eval", DataTable), *accuracy_table(run))
        if family.psychometric and run.p_high:
            self._psychometric(run, spread)
        self._trajectories(run, dyn_param, inputs, spread, diagonal)
        header, rows = layer_table(run, inputs, diagonal)
        _fill_table(self.query_one("#run-order", DataTable), header, rows)
        note = family.order_note(run, inputs, diagonal)
        self.query_one("#order-note", Static).update(
            Text("±: standard error over replicas" + (f"; {note}" if note else ""), style="dim"))
        what = "all connections"
        if entry.partial or not run.epoch.size:  # a checkpoint: the parameters after its last epoch
            what = f"after epoch {int(run.epoch[-1]) - run.logged if run.epoch.size else 0}"
        if run.part_dim == "matrix" and run.layers.size:
            part = f"[b]histograms, {escape(part_name(run, layer_index))}[/b] ({layer_index + 1} of {run.layers.size})"
        else:
            layer = int(run.layers[layer_index]) if run.layers.size else 0
            part = f"[b]histograms, layer {layer}[/b] of {run.layers.size}"
        self.query_one("#hist-head", Static).update(
            Text.from_markup(f"{part} [dim](l/L): {what}, {run.replicas} replica(s)[/dim]"))
        for n in HIST_NAMES:
            bars = self.query_one(f"#hist-{n}", Bars)
            if n in run.hist and run.layers.size:
                edges, counts = hist_counts(run, n, layer_index)
                bars.show(counts, edges, title={"xi": "Xi"}.get(n, n))
            else:
                bars.show([], [0, 1], title=n)

    def show_progress(self, entry: Entry) -> None:
        """Only the header's progress line again (a running run's ETA counts down between checkpoints)."""
        if getattr(self, "_shown", None) is None or self._shown[0].path != entry.path:
            return
        head = self.query_one("#run-head", Static)
        old = head.content
        if not isinstance(old, Text):
            return
        lines = old.split("\n")
        if len(lines) > 1:
            lines[1] = progress_line(entry, self._shown[1])
            head.update(Text("\n").join(lines))

    def _psychometric(self, run: RunSummary, spread: bool) -> None:
        """The multisensory psychometric curves: P(choose high) against the event rate, one line
        per modality, for the noise-free mean field and a sampled mode beside it."""
        modes = psychometric_modes(run)
        for k, wid in enumerate(("#plot-psych-1", "#plot-psych-2")):
            plot = self.query_one(wid, LinePlot)
            if k >= len(modes):
                plot.plot([], title="")
                continue
            series = []
            for (modality, values), colour in zip(psychometric(run, modes[k]), MODALITY_COLOURS):
                series += self._series(run.rates, values, modality, colour, spread)
            # the legend takes the rest of the title line: "mean over replicas" is the header's
            plot.plot(series, title=f"P(high) {RNN_MODES.get(modes[k], modes[k])}", xlabel="event rate (Hz)")

    def _trajectories(self, run: RunSummary, param: str | None, inputs: str, spread: bool,
                      diagonal: bool = True) -> None:
        """The order parameter ``param`` against epoch while training, one line per layer (layer 1
        over live inputs when ``inputs`` says so) or matrix (the recurrent one without its
        diagonal when ``diagonal`` is False), with the BP baseline's where it has one."""
        plot = self.query_one("#plot-dyn", LinePlot)
        lines = trajectory(run, param, inputs, diagonal) if param else []
        if not lines:
            plot.plot([], title="order parameters while training: none recorded in this file (docs/file-format.md, "
                                "Dynamics)")
            return
        series = []
        for (label, values), colour in zip(lines, LAYER_COLOURS * 4):
            series += self._series(run.dyn_epoch, values, label, colour, spread)
        # the BP run's epochs up to the run's own: a longer baseline does not stretch the epoch axis
        keep = run.baseline_dyn_epoch <= (run.dyn_epoch[-1] if run.dyn_epoch.size else 0)
        bepoch = run.baseline_dyn_epoch[keep]
        base = [(label, v[:, keep]) for label, v in baseline_trajectory(run, param)]
        values = np.concatenate([v.ravel() for _, v in base]) if base else np.zeros(0)
        values = values[np.isfinite(values)]
        if values.size and np.ptp(values) == 0:
            # BP has pi = Xi = 0: its order parameters are constants (frac_vip 1, the others 0); a
            # line at 1 would squash the gBP lines, so the legend gives the value instead
            series.append(Series(f"BP = {short(values[0], 6)}", bepoch, np.full(bepoch.size, np.nan), BP_COLOUR))
        else:
            for k, (_, v) in enumerate(base):  # one legend entry for the BP run's layers
                series += self._series(bepoch, v, "BP" if k == 0 else "", BP_COLOUR, spread)
        what = "replicas" if spread else "mean"
        plot.plot(series, title=f"{dyn_label(param)} vs epoch ({what}; p: next)", xlabel="epoch")

    @staticmethod
    def _series(epoch, values, label, colour, spread) -> list[Series]:
        if spread:
            return [Series(label if r == 0 else "", epoch, values[r], colour) for r in range(values.shape[0])]
        mean, _ = curve_stats(values)
        return [Series(label, epoch, mean, colour)]


def progress_line(entry: Entry, run: RunSummary) -> Text:
    """The run view's second line: replicas and epochs, and for a run that is not finished how far
    it is (running with its ETA, starting, stopped, interrupted) and how to continue it."""
    line = Text(f"{run.replicas} replica(s), ", style="dim")
    done = int(run.epoch.size)
    if not entry.partial:
        line.append(f"{done} epochs", style="dim")
        return line
    total = run.epochs_total if run.epochs_total is not None else entry.epochs
    line.append(f"epoch {done} of {total if total is not None else '?'}", style="bold")
    if entry.status == "running":
        eta = entry.eta_seconds()
        line.append("  starting: the first epoch trains" if done == 0 else "  running", style="bold yellow")
        if eta is not None and done:
            line.append(f", ETA {duration(eta)}", style="yellow")
    else:
        why = "its writer is gone" if entry.status == "stopped" else "stopped by Ctrl-C or a failure"
        line.append(f"  {entry.status}", style="bold #ff8700")
        line.append(f": {why}; continue it with mfphys train --resume {shell_path(entry.path)}", style="dim")
    if run.logged:
        line.append(f"  (curves to epoch {done}; parameters as of epoch {done - run.logged}, "
                    "the last checkpoint)", style="dim")
    return line


class ScanView(EntryView, ConnectionChoices, Vertical):
    """Heatmap of one order parameter over the scanned grid, for one layer; below it, on demand,
    the parameter against epoch for the cells of the cursor's row or column; the cell under the
    cursor at the bottom.

    Its choices: the parameter (``param``) and layer (``part``: a layer number, counted from the
    output when negative, ``scan_grid.NETWORK``, or a recurrent scan's matrix; ``Widget.layer``
    is Textual's), layers counted ``from_output``, mean or spread over replicas (``stat``), the
    numbers in the cells (``show_values``), the plot against epoch (``show_dynamics``) of the
    cursor's "row" or "column" (``along``), layer 1 over "live" or "all" ``inputs``, and the
    recurrent matrix with its ``diagonal`` or without.
    """

    SHARED = ("inputs", "diagonal")
    param: var[str | None] = var(None)
    part = var(None)
    from_output = var(False)
    stat = var("mean")
    show_values = var(False)
    show_dynamics = var(False)
    along = var("row")
    inputs = var("live")
    diagonal = var(True)
    payload: ScanPayload | None = None

    DEFAULT_CSS = """
    ScanView { padding: 0 1; }
    ScanView #scan-head { height: auto; margin-bottom: 1; }
    ScanView #scan-dyn { display: none; height: 14; border-top: solid $primary-darken-2; }
    ScanView.-dyn #scan-dyn { display: block; }
    ScanView #scan-cell { height: auto; min-height: 2; border-top: solid $primary-darken-2; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="scan-head")
        yield Heatmap(id="heatmap")
        yield LinePlot(id="scan-dyn")
        yield Static(id="scan-cell")

    def show(self, entry: Entry, payload: ScanPayload) -> bool:
        """Draw the scan with the view's choices, kept where the scan has them; False when it has
        no parameter to show yet (nothing drawn)."""
        self.entry, self.payload = entry, payload
        if self.current_grid() is None:
            return False
        self.draw()
        return True

    def current_grid(self) -> Grid | None:
        """The heatmap's numbers for the current parameter and layer (from the cached combined dataset)."""
        p = self.payload
        if p is None or not p.params:
            return None
        if self.param not in p.params:
            self.param = p.params[0]
        layers = p.layers_for(self.from_output)
        if layers and self.part not in layers:
            # first shown: the whole network, as scan-plot draws it; else the first layer
            self.part = NETWORK if self.part is None and NETWORK in layers else layers[0]
        return p.grid(self.param, self.part, inputs=self.inputs, cell_status=self.entry.cell_status,
                      diagonal=self.diagonal)

    def current_trajectories(self) -> Trajectories | None:
        """The scan's parameter against epoch for the cursor's row or column (from the cached
        combined dataset, as the heatmap: same parameter, layer, inputs, marks)."""
        grid = self.current_grid()
        if grid is None:
            return None
        ds, status = self.payload.ds, self.entry.cell_status
        overlay = overlay_status(ds, status) if status else None
        return scan_trajectories(ds, grid.param, grid.layer, inputs=self.inputs, along=self.along,
                                 cursor=self.query_one(Heatmap).cursor, overlay=overlay, diagonal=self.diagonal)

    # --- the keys ----------------------------------------------------------------------------

    def applies(self, action: str) -> bool:
        family = panels_for(self.entry.model)
        if action == "toggle_output":
            return family.from_output  # a recurrent scan's matrices are not counted from an end
        if action == "toggle_along":
            return self.show_dynamics
        if action == "toggle_diagonal":
            return family.diagonal and has_nodiag(self.payload.ds)
        return True

    def action_cycle_param(self, step: int) -> None:
        params = self.payload.params
        i = params.index(self.param) if self.param in params else 0
        self.param = params[(i + step) % len(params)]
        self.redraw()

    def action_cycle_layer(self, step: int) -> None:
        layers = self.payload.layers_for(self.from_output)
        if layers:
            i = layers.index(self.part) if self.part in layers else 0
            self.part = layers[(i + step) % len(layers)]
        self.redraw()

    def action_toggle_output(self) -> None:
        self.from_output = not self.from_output
        if self.part != NETWORK:
            layers = self.payload.layers_for(self.from_output)
            self.part = layers[0] if layers else None  # the first of the other count: layer 1, or the output layer
        self.redraw()

    def action_toggle_values(self) -> None:
        self.show_values = not self.show_values
        self.redraw()

    def action_toggle_dynamics(self) -> None:
        self.show_dynamics = not self.show_dynamics
        self.redraw()

    def action_toggle_along(self) -> None:
        self.along = "column" if self.along == "row" else "row"
        self.redraw()

    def action_toggle_spread(self) -> None:
        self.stat = "spread" if self.stat == "mean" else "mean"
        self.redraw()

    def action_export(self) -> None:
        name, grid, stat = self.entry.name, self.current_grid(), self.stat
        trajectories = self.current_trajectories() if self.show_dynamics else None
        self.export(lambda folder: export_scan(name, grid, folder, stat=stat, trajectories=trajectories))

    @on(Heatmap.CursorMoved)
    def _cursor_moved(self, event: Heatmap.CursorMoved) -> None:
        grid = self.current_grid()
        if grid is not None:
            self.show_cell(grid, event.cursor)
            if self.show_dynamics:
                self._draw_trajectories()

    # --- drawing -----------------------------------------------------------------------------

    def draw(self) -> None:
        grid = self.current_grid()
        self._draw_grid(self.entry, grid, params=self.payload.params, layers=self.payload.layers_for(self.from_output),
                        stat=self.stat, show_values=self.show_values)
        self._draw_trajectories()

    def _draw_trajectories(self) -> None:
        if not self.show_dynamics:
            self.show_trajectories(None, shown=False)
            return
        self.show_trajectories(self.current_trajectories(), shown=True, param=self.param or "")

    def show_trajectories(self, t: Trajectories | None, *, shown: bool, param: str = "") -> None:
        """Show (``shown``) the trajectories ``t`` below the heatmap, or hide the plot."""
        self.set_class(shown, "-dyn")
        if not shown:
            return
        plot = self.query_one("#scan-dyn", LinePlot)
        if t is None:
            plot.plot([], title=f"{param}: no value per epoch in this scan (d: hide)")
            return
        n = len(t.labels)
        series = []
        for k, (label, status) in enumerate(zip(t.labels, t.status)):
            # viridis from its blue end on: the darkest purple does not show on a dark terminal
            colour = hex_colour(colour_at(0.25 + 0.75 * k / max(n - 1, 1)))
            text = f"{t.line_dim}={label}" if k == 0 else str(label)
            series.append(Series(text if status == "done" else f"{text} {status}", t.x, t.mean[k], colour))
        # the c key's hint on the epoch axis: the title line is the legend's
        other = t.fixed[0] if t.fixed and t.fixed[0] != t.line_dim else t.line_dim
        plot.plot(series, title=trajectory_title(t), xlabel=f"{t.xlabel} (c: a line per {other})")

    def _draw_grid(self, entry: Entry, grid: Grid, *, params: list[str], layers: list[int], stat: str,
                   show_values: bool) -> None:
        head = entry_heading(entry)
        head.append("\n" + entry.status_text + "\n", style="dim")
        head.append(grid.param, style="bold reverse")
        head.append(f" ({params.index(grid.param) + 1}/{len(params)})  ", style="dim")
        if grid.layer is None:
            head.append("not per layer", style="bold")
        else:
            head.append(layer_label(grid.layer), style="bold reverse")
            head.append(f" ({layers.index(grid.layer) + 1}/{len(layers)})", style="dim")
        head.append("  " + ("std over replicas" if stat == "spread" else "mean over replicas"), style="bold")
        head.append("  values " + ("on" if show_values else "off"), style="dim")
        for line in scan_notes(grid):
            head.append("\n" + line, style="dim")
        self.query_one("#scan-head", Static).update(head)
        heatmap = self.query_one(Heatmap)
        heatmap.show(grid, stat=stat, show_values=show_values)
        self.show_cell(grid, heatmap.cursor)

    def show_cell(self, grid: Grid, cursor) -> None:
        i, j = cursor
        where = f"{grid.row_dim} = {plain(grid.rows[i])}"
        if grid.col_dim:
            where += f", {grid.col_dim} = {plain(grid.cols[j])}"
        status = str(grid.status[i, j])
        text = Text(where + ": ", style="bold")
        text.append(status, style="red" if status == "failed" else "bold")
        if status == "failed" and grid.error[i, j]:
            text.append("  " + str(grid.error[i, j]), style="red")
        elif grid.n[i, j] > 0:
            vals = grid.values[i, j]
            text.append(f"   {grid.param} = {format_stat(vals)}  (± standard error; std {short(grid.spread[i, j], 8)}, "
                        f"{int(grid.n[i, j])} replica(s))\nreplicas: ")
            text.append(" ".join(short(v, 7) for v in vals), style="dim")
        elif status == "done":
            text.append("   no value (the layer does not exist at this depth)", style="dim")
        self.query_one("#scan-cell", Static).update(text)


def trajectory_title(t: Trajectories) -> str:
    """``frac_vip, layer 1 live, depth = 2``: what is plotted against epoch, and for which row or
    column of the heatmap (the legend names the cells, the epoch axis how to switch)."""
    what = t.param
    if t.layer is not None:
        what += ", " + layer_label(t.layer) + (" live" if t.inputs == "live" and t.layer == 1 else "")
        what += " nodiag" if t.diagonal is False else ""
    return what + (f", {t.fixed[0]} = {t.fixed[1]}" if t.fixed else "")


def scan_notes(grid: Grid) -> list[str]:
    """What the heatmap's numbers are, beyond the parameter's name: layers, inputs, averages."""
    notes = []
    if grid.layer == NETWORK:
        notes.append("whole network: mean over each cell's layers, weighted by connections")
    elif isinstance(grid.layer, str):  # a recurrent scan's matrix
        if grid.diagonal is not None:
            notes.append("recurrent matrix without its diagonal, the self-connections (n: all connections)"
                         if not grid.diagonal else
                         "recurrent matrix: all connections, diagonal included (n: without it)")
    elif isinstance(grid.layer, (int, np.integer)) and grid.layer < 0:
        notes.append("layers from the output, at each cell's own depth (o: from the input)")
    elif grid.layer is not None:
        notes.append("layers from the input: the output is layer depth + 1 (o: from it)")
    if grid.inputs == "live":
        notes.append("layer 1 over the inputs that vary in the training set (i: all inputs)")
    elif grid.inputs == "all":
        notes.append("layer 1 over all inputs, constant ones included (i: live inputs only)")
    if grid.reduced:
        notes.append(f"averaged over {', '.join(grid.reduced)}")
    return notes


class PerturbationView(EntryView, VerticalScroll):
    """Test error vs the fraction of very important (or, as a control, variable) connections removed."""

    DEFAULT_CSS = """
    PerturbationView { padding: 0 1; }
    PerturbationView #pert-head { height: auto; margin-bottom: 1; }
    PerturbationView #pert-plot { height: 14; }
    PerturbationView #pert-table { height: auto; max-height: 20; margin-top: 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="pert-head")
        yield LinePlot(id="pert-plot")
        yield _static_table(DataTable(id="pert-table", show_cursor=False, zebra_stripes=True))

    def show(self, entry: Entry, p: PerturbationSummary) -> None:
        self.entry, self.perturbation = entry, p
        self.draw()

    def action_export(self) -> None:
        name, p = self.entry.name, self.perturbation
        self.export(lambda folder: export_perturbation(name, p, folder))

    def draw(self) -> None:
        entry, p = self.entry, self.perturbation
        head = entry_heading(entry)
        head.append("\n")
        head.append("  ".join(f"{k} {v}" for k, v in p.attrs.items() if k != "created"), style="dim")
        self.query_one("#pert-head", Static).update(head)
        colours = {"error_vip": RUN_COLOUR, "error_variable": VARIABLE_COLOUR}
        series = [Series(k, p.fraction, replica_stats(v, axis=1)[0] if v.size else v, colours[k])
                  for k, v in p.errors.items() if k in colours]
        self.query_one("#pert-plot", LinePlot).plot(series, title="test error % (mean over replicas)",
                                                    xlabel="fraction removed")
        names = list(p.errors)
        text_rows = [[short(f, 6)] + [format_stat(v[i]) for v in p.errors.values()] for i, f in enumerate(p.fraction)]
        _fill_table(self.query_one("#pert-table", DataTable), ["fraction", *names], text_rows)


class RunsTable(DataTable):
    """The runs table's grid: one row per run; the digits 1-9 sort by a column (again: the other way)."""

    BINDINGS = [Binding(str(i), f"sort({i - 1})", f"sort by {c}", show=False) for i, c in enumerate(COLUMNS, 1)]

    class SortRequested(Message):
        """A column was chosen for sorting (a digit key or a click on its header)."""

        def __init__(self, column: str):
            super().__init__()
            self.column = column

    #: every column shown: :data:`COLUMNS` and the extra ones (tags, settings), set by the view
    sort_columns: tuple = COLUMNS

    def action_sort(self, index: int) -> None:
        if 0 <= index < len(self.sort_columns):
            self.post_message(self.SortRequested(self.sort_columns[index]))

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        index = event.column_index - 1  # column 0 holds the marks
        if 0 <= index < len(self.sort_columns):
            self.post_message(self.SortRequested(self.sort_columns[index]))

    @property
    def cursor_path(self) -> str | None:
        """The path (row key) of the row under the cursor, or None for an empty table."""
        if self.row_count == 0:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value


class RunsTableView(EntryView, Vertical):
    """Every run of the folder (those the filter lets through) with its settings and results.

    It keeps the rows read so far (``rows``, given by the app's worker) and its sort order
    (``sort``: column, reversed), chosen with the digits or a click on a header.
    """

    sort = var(("name", False))
    #: the extra columns: () none; None: tags and the settings that differ between the runs shown
    #: (``c``); or the columns ``mfphys tui --columns`` chose
    extra = var(())

    DEFAULT_CSS = """
    RunsTableView { padding: 0 1; }
    RunsTableView #table-head { height: auto; margin-bottom: 1; }
    RunsTableView #runs-table { height: 1fr; }
    RunsTableView #table-note { height: auto; border-top: solid $primary-darken-2; }
    """

    def __init__(self, *, folder_name: str = "runs", columns: tuple = (), **kw):
        super().__init__(**kw)
        self.folder_name = folder_name  # the export's name
        self.chosen = tuple(columns)  # mfphys tui --columns: the extra columns c switches on and off
        self.set_reactive(RunsTableView.extra, self.chosen)
        self.rows: list[RunRow] = []
        # what the app showed last: the paths the filter lets through, the marked runs, the filter, reading
        self._paths: frozenset = frozenset()
        self._marked: tuple = ()
        self._filter_text = ""
        self._reading = False

    def show(self, paths, *, marked, filter_text: str = "", loading: bool = False) -> None:
        """The rows of the runs at ``paths`` (those the filter lets through), sorted; ``marked``:
        paths of marked runs; ``loading``: the rows are still being read."""
        self._paths, self._marked = frozenset(paths), tuple(marked)
        self._filter_text, self._reading = filter_text, loading
        self.draw()

    def shown_rows(self) -> list[RunRow]:
        column, reverse = self.sort
        return sort_rows([r for r in self.rows if r.path in self._paths], column, reverse)

    def extra_columns(self, rows) -> tuple:
        """The extra columns shown now (:attr:`extra`; None: those that tell ``rows`` apart)."""
        return differing_columns(rows) if self.extra is None else tuple(self.extra)

    def action_toggle_along(self) -> None:
        """``c``: the extra columns on (the chosen ones, else tags and the settings that differ) or off."""
        self.extra = () if self.extra != () else (self.chosen or None)  # None (the differing ones) is on too
        if self.extra == () and self.sort[0] not in COLUMNS:
            self.sort = ("name", False)  # sorted by a column no longer shown
        self.draw()

    def draw(self) -> None:
        column, reverse = self.sort
        self._fill(self.shown_rows(), column=column, reverse=reverse, marked=self._marked,
                   filter_text=self._filter_text, loading=self._reading)

    @on(RunsTable.SortRequested)
    def _sort_requested(self, event: RunsTable.SortRequested) -> None:
        column, reverse = self.sort
        if column == event.column:
            self.sort = (column, not reverse)
        else:  # numbers and dates: the largest and newest first; text: A to Z
            self.sort = (event.column, event.column in NUMERIC or event.column == "date")
        self.draw()

    def action_export(self) -> None:
        name, rows = self.folder_name, self.shown_rows()
        self.export(lambda folder: export_runs_table(name, rows, folder))

    def compose(self) -> ComposeResult:
        yield Static(id="table-head")
        yield RunsTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="table-note")

    def _fill(self, rows: list[RunRow], *, column: str, reverse: bool, marked, filter_text: str = "",
              loading: bool = False) -> None:
        """Fill the table with ``rows`` (already sorted by ``column``); ``marked``: paths of marked runs.

        Nothing is redrawn when nothing shown changed (the live refresh calls this every few
        seconds), so the cursor and the scroll position stay."""
        marked = {str(p) for p in marked}
        extra = self.extra_columns(rows)
        key = (tuple((str(r.path), *row_cells(r, extra), r.error) for r in rows), frozenset(marked), column, reverse,
               filter_text, loading, extra)
        if getattr(self, "_shown_key", None) == key:
            return
        self._shown_key = key
        head = Text("runs table", style="bold")
        what = f"  {len(rows)} run(s)" + (f" matching '{filter_text}'" if filter_text.strip() else "")
        head.append(what + f", sorted by {column} {'↓' if reverse else '↑'}", style="bold")
        if loading:
            head.append("  reading ...", style="dim")
        head.append("\n1-9 or a click on a header: sort by that column (again: the other way) · space: mark for "
                    "the curve overlay · enter: open the run · c: settings columns · t: back", style="dim")
        self.query_one("#table-head", Static).update(head)
        table = self.query_one(RunsTable)
        keep = table.cursor_path
        table.clear(columns=True)
        table.add_column("", key="mark")
        shown = COLUMNS[:1] + extra + COLUMNS[1:]  # the chosen columns next to the name, in view at 80 columns
        table.sort_columns = shown
        for c in shown:
            label = c + ((" ↓" if reverse else " ↑") if c == column else "")
            table.add_column(Text(label, justify="right" if c in NUMERIC else "left"), key=c)
        for r in rows:
            by_column = dict(zip(COLUMNS + extra, row_cells(r, extra)))
            cells = [Text(by_column[c], justify="right") if c in NUMERIC else by_column[c] for c in shown]
            table.add_row("●" if str(r.path) in marked else "", *cells, key=str(r.path))
        keys = [str(r.path) for r in rows]
        if keep in keys:
            table.move_cursor(row=keys.index(keep), animate=False)
        errors = [r for r in rows if r.error]
        note = Text("accuracy: mean-field test accuracy at the last epoch; sparsity, VIP: fractions of absent and "
                    "very important connections in the whole network (layer 1 over live inputs); means over "
                    "replicas", style="dim")
        if any(r.mode.startswith("rnn") for r in rows):
            note.append("\nrecurrent runs (rnn): accuracy of the final noise-free mean-field evaluation "
                        "(multisensory: psychometric accuracy, mean over modalities); sparsity, VIP over the "
                        "input, recurrent and output matrices", style="dim")
        for r in errors:
            note.append(f"\n{r.name}: {r.error}", style="red")
        self.query_one("#table-note", Static).update(note)
