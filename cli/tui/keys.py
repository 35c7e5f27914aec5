"""Every key of the TUI in one place: the app's bindings, the keys that widgets handle, the tab order.

The help screen (:mod:`.screens`) and the footer are generated from these, so they cannot drift.
"""

from __future__ import annotations

import string

from textual.actions import parse
from textual.binding import Binding


def view(action: str, *args) -> str:
    """The action of a view key: the app passes ``action(*args)`` on to the view in the main pane,
    which says whether it applies there (its ``check_action``) and does it (its ``action_*``)."""
    return f"view({', '.join(repr(a) for a in (action, *args))})"

#: the app's keys. `/` is a priority binding: it acts as the app receives it, before the keys
#: typed after it are passed on, and moves the focus to the filter box at once, so those keys
#: reach the box and act as text, not as the keys below. The others act in the order typed with
#: the keys that widgets handle (moving in the list or the runs table, then marking).
#: The view keys (``view(...)``) act on the view in the main pane whatever has the focus (mostly
#: the sidebar list), so they are bound here, in the footer's order, and routed to that view.
APP_KEYS = [
    Binding("q", "quit", "quit", tooltip="quit"),
    Binding("question_mark", "help", "help", key_display="?", tooltip="this help screen"),
    Binding("slash", "filter", "filter", key_display="/", priority=True,
            tooltip="filter box (words match name, kind, status, dataset, architecture, date, tags, note; "
                    "tag:NAME a tag, lr=0.05 a setting); while it has the focus, every letter is text"),
    Binding("escape", "clear_filter", "clear filter", show=False, key_display="esc",
            tooltip="clear the filter, from anywhere (the focus leaves the filter box for the list)"),
    Binding("t", "table", "runs",
            tooltip="runs table: every run with its settings and results (again: back to the view)"),
    Binding("space", "mark", "mark", key_display="space",
            tooltip="mark / unmark a run (table row, sidebar entry or the run shown) for the curve overlay"),
    Binding("M", "clear_marks", "clear marks", show=False, tooltip="unmark every run"),
    Binding("p", view("cycle_param", 1), "param",
            tooltip="scan: next order parameter; run: next order parameter of the trajectories plot"),
    Binding("P", view("cycle_param", -1), "param back", show=False, tooltip="scan, run: previous order parameter"),
    Binding("l", view("cycle_layer", 1), "layer",
            tooltip="scan, run: next layer (heatmap; histograms); recurrent model: next matrix"),
    Binding("L", view("cycle_layer", -1), "layer back", show=False, tooltip="scan, run: previous layer or matrix"),
    Binding("o", view("toggle_output"), "out/in",
            tooltip="scan: count layers from the output (output layer, output-1 ...) or from the input"),
    Binding("i", view("toggle_inputs"), "inputs",
            tooltip="scan, run: layer 1 over the inputs that vary (the default) or over all inputs"),
    Binding("n", view("toggle_diagonal"), "diagonal", show=False,
            tooltip="run, scan of the recurrent model: the recurrent matrix with or without its diagonal"),
    Binding("v", view("toggle_values"), "values", tooltip="scan: show / hide the numbers in the heatmap cells"),
    Binding("d", view("toggle_dynamics"), "dyn",
            tooltip="scan: show / hide the parameter against epoch, one line per cell of the cursor's row "
                    "(or column)"),
    Binding("c", view("toggle_along"), "row/col", show=False,
            tooltip="scan, with d: the lines of the cursor's row (one per column) or of its column; runs "
                    "table: show / hide the columns of tags and of the settings that differ (or --columns)"),
    Binding("s", view("toggle_spread"), "spread",
            tooltip="scan: mean vs std over replicas; run: mean curve vs every replica's curve "
                    "(each view keeps its own choice, shown in its header)"),
    Binding("e", view("export"), "export", tooltip="export the view's numbers (CSV) and plot (PNG)"),
    Binding("r", "refresh", "refresh", show=False,  # the app refreshes by itself; ? lists it
            tooltip="re-read the folder now (it also refreshes by itself)"),
]


#: the actions of the view keys, which each view answers for (``views.EntryView``)
VIEW_ACTIONS = frozenset(parse(b.action)[2][0] for b in APP_KEYS if parse(b.action)[1] == "view")

#: letters and digits that start the filter when typed in the sidebar list (those that are no key)
FILTER_STARTERS = [c for c in string.ascii_letters + string.digits if c not in {b.key for b in APP_KEYS}]


#: where tab moves the focus, in order (shift+tab: backwards); the view is the one in the main pane
TAB_ORDER = ("filter box", "sidebar list", "view (run or perturbation: scrolls; scan: heatmap; runs table)")

#: keys handled by widgets rather than app bindings (sidebar list, filter box, heatmap, runs table)
EXTRA_KEYS = (
    ("up / down", "sidebar: previous / next entry (the view follows); runs table: previous / next row"),
    ("letters, digits", "sidebar: start filtering with that character (those that are not keys above)"),
    ("enter", "filter box: back to the list, keeping the filter; runs table: open the run under the cursor"),
    ("arrows", "heatmap (click or tab to focus it): move the cell cursor; the cell's values show below"),
    ("1 .. 9", "runs table: sort by column 1 .. 9 (again: the other way); a click on a header does the same"),
    ("tab / shift+tab", "move the focus: " + " -> ".join(TAB_ORDER) + " -> filter box again"),
)
