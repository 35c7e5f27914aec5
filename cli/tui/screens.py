"""The help screen (``?``): every key, generated from the bindings so it cannot drift."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

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
KEY_NAMES = {"question_mark": "?", "slash": "/", "escape": "esc"}


def key_rows(bindings) -> list[tuple[str, str]]:
    """(keys, what they do) for the help screen, one row per binding, in declaration order."""
    rows = []
    for b in bindings:
        if isinstance(b, Binding) and b.description:
            keys = ", ".join(KEY_NAMES.get(k, k) for k in b.key.split(","))
            rows.append((keys, b.tooltip or b.description))
    return rows


class HelpScreen(ModalScreen):
    """Every key of the app; any of esc, q or ? closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 112; max-width: 96%; height: auto; max-height: 96%;
                                  border: round $primary; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "close help", show=False)]

    def __init__(self, bindings):
        super().__init__()
        self.rows = key_rows(bindings) + list(EXTRA_KEYS)

    def compose(self) -> ComposeResult:
        table = Table(title="mfphys tui: keys", box=None, expand=True, show_header=True, header_style="bold")
        table.add_column("key", style="bold cyan", no_wrap=True)
        table.add_column("action")
        for k, what in self.rows:
            table.add_row(k, what)
        with VerticalScroll():
            yield Static(f"[b]tab order:[/b] {' -> '.join(TAB_ORDER)} -> filter box again (shift+tab: back)",
                         id="help-tab-order")
            yield Static(table, id="help-table")
            yield Static("[dim]esc, q or ? closes this screen[/dim]")
