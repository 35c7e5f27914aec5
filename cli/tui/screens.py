"""The help screen (``?``): every key, generated from the bindings so it cannot drift."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from .keys import EXTRA_KEYS, TAB_ORDER

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
