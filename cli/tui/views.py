"""The main-pane views: a run, a scan, a perturbation file, or a message (errors, empty folder).

Each view gets plain data from the view models (:mod:`mfphys.cli.tui.models`) through
``show(...)`` and draws it; none
reads files. Updates replace widget contents in place (no remounting), so the live refresh
does not flicker.
"""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Static

from mfphys.stats import format_stat, replica_stats

from .models.format import plain, short
from .models.listing import Entry
from .models.run import HIST_NAMES, PerturbationSummary, RunSummary, curve_stats, hist_counts, layer_table
from .models.scan_grid import NETWORK, Grid
from .widgets import Bars, Heatmap, LinePlot, Series

RUN_COLOUR = "#5fafff"
BP_COLOUR = "#ffaf00"
VARIABLE_COLOUR = "#87d787"


def entry_line(entry: Entry) -> str:
    parts = [entry.kind, entry.mode, entry.dataset, entry.architecture, entry.date]
    return " · ".join(escape(p) for p in parts if p)


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


class MessageView(VerticalScroll):
    """A message in the main pane: the selected file's error, an empty folder, a hint."""

    DEFAULT_CSS = """
    MessageView { padding: 1 2; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="message-text")

    def show(self, text: str | Text) -> None:
        self.query_one("#message-text", Static).update(text)


class RunView(VerticalScroll):
    """Learning curves (with the BP baseline), per-layer order parameters, pi/m/Xi histograms."""

    DEFAULT_CSS = """
    RunView { padding: 0 1; }
    RunView #run-head { height: auto; margin-bottom: 1; }
    RunView #run-curves { height: 11; }
    RunView #run-order { height: auto; max-height: 12; margin: 1 0; }
    RunView #run-hists { height: 8; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="run-head")
        with Horizontal(id="run-curves"):
            yield LinePlot(id="plot-loss")
            yield LinePlot(id="plot-acc")
        yield DataTable(id="run-order", show_cursor=False, zebra_stripes=True)
        yield Static(id="hist-head")
        with Horizontal(id="run-hists"):
            yield Bars(id="hist-pi", colour="#d7875f")
            yield Bars(id="hist-m", colour="#5fafff")
            yield Bars(id="hist-xi", colour="#87d787")

    def show(self, entry: Entry, run: RunSummary, *, layer_index: int, stat: str) -> None:
        head = Text.from_markup(f"[b]{escape(run.name)}[/b]  {entry_line(entry)}\n")
        head.append(f"{run.replicas} replica(s), {run.epoch.size} epochs", style="dim")
        if run.baseline_name:
            head.append("   BP baseline: ", style=BP_COLOUR)
            head.append(run.baseline_name)
        head.append("\ntest acc ")
        head.append(format_stat(run.final["test_acc"]), style="bold")
        head.append(" mean-field")
        if "test_acc_sampled" in run.final:
            head.append(" · ")
            head.append(format_stat(run.final["test_acc_sampled"]), style="bold")
            head.append(" sampled")
        self.query_one("#run-head", Static).update(head)
        spread = stat == "spread"
        for wid, key, title in (("#plot-loss", "train_loss", "train loss"), ("#plot-acc", "test_acc", "test acc")):
            series = self._series(run.epoch, run.curves[key], "gbp" if run.mode != "bp" else "bp",
                                  RUN_COLOUR if run.mode != "bp" else BP_COLOUR, spread)
            if key in run.baseline:
                series += self._series(run.baseline_epoch, run.baseline[key], "BP", BP_COLOUR, spread)
            what = "replicas" if spread else "mean"
            self.query_one(wid, LinePlot).plot(series, title=f"{title} ({what})", xlabel="epoch")
        header, rows = layer_table(run)
        _fill_table(self.query_one("#run-order", DataTable), header, rows)
        layer = int(run.layers[layer_index]) if run.layers.size else 0
        self.query_one("#hist-head", Static).update(
            Text.from_markup(f"[b]histograms, layer {layer}[/b] [dim](of {run.layers.size}; l/L to change; "
                             f"counts over {run.replicas} replica(s))[/dim]"))
        for n in HIST_NAMES:
            bars = self.query_one(f"#hist-{n}", Bars)
            if n in run.hist and run.layers.size:
                edges, counts = hist_counts(run, n, layer_index)
                bars.show(counts, edges, title={"xi": "Xi"}.get(n, n))
            else:
                bars.show([], [0, 1], title=n)

    @staticmethod
    def _series(epoch, values, label, colour, spread) -> list[Series]:
        if spread:
            return [Series(label if r == 0 else "", epoch, values[r], colour) for r in range(values.shape[0])]
        mean, _ = curve_stats(values)
        return [Series(label, epoch, mean, colour)]


class ScanView(Vertical):
    """Heatmap of one order parameter over the scanned grid, for one layer; the cell under the cursor below."""

    DEFAULT_CSS = """
    ScanView { padding: 0 1; }
    ScanView #scan-head { height: auto; margin-bottom: 1; }
    ScanView #scan-cell { height: auto; min-height: 2; border-top: solid $primary-darken-2; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="scan-head")
        yield Heatmap(id="heatmap")
        yield Static(id="scan-cell")

    def show(self, entry: Entry, grid: Grid, *, params: list[str], layers: list[int], stat: str,
             show_values: bool) -> None:
        head = Text.from_markup(f"[b]{escape(entry.name)}[/b]  {entry_line(entry)}\n")
        head.append(entry.status_text + "\n", style="dim")
        head.append(grid.param, style="bold reverse")
        head.append(f" ({params.index(grid.param) + 1}/{len(params)})  ", style="dim")
        if grid.layer is None:
            head.append("not per layer", style="bold")
        else:
            head.append("whole network" if grid.layer == NETWORK else f"layer {grid.layer}", style="bold reverse")
            head.append(f" ({layers.index(grid.layer) + 1}/{len(layers)})", style="dim")
        head.append("  " + ("std over replicas" if stat == "spread" else "mean over replicas"), style="bold")
        head.append("  values " + ("on" if show_values else "off"), style="dim")
        if grid.reduced:
            head.append(f"\naveraged over {', '.join(grid.reduced)}", style="dim")
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
            text.append(f"   {grid.param} = {format_stat(vals)}  (std {short(grid.spread[i, j], 8)}, "
                        f"{int(grid.n[i, j])} replica(s))\nreplicas: ")
            text.append(" ".join(short(v, 7) for v in vals), style="dim")
        elif status == "done":
            text.append("   no value (the layer does not exist at this depth)", style="dim")
        self.query_one("#scan-cell", Static).update(text)


class PerturbationView(VerticalScroll):
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
        yield DataTable(id="pert-table", show_cursor=False, zebra_stripes=True)

    def show(self, entry: Entry, p: PerturbationSummary) -> None:
        head = Text.from_markup(f"[b]{escape(p.name)}[/b]  {entry_line(entry)}\n")
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
