"""The sidebar: its list of entries, each drawn as two lines (the filter box is a plain Input)."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Input, OptionList

from .families import panels_for
from .keys import FILTER_STARTERS
from .models.format import middle_ellipsis
from .models.listing import Entry

STATUS_STYLE = {"done": "green", "running": "yellow", "pending": "grey62", "failed": "red", "error": "bold red",
                "interrupted": "#ff8700", "stopped": "#ff5f5f"}
KIND_STYLE = {"run": "#5fafff", "scan": "#d787ff", "perturbation": "#87d787"}


def entry_prompt(e: Entry, width: int = 42, marked: bool = False) -> Text:
    """Two lines for the sidebar: the name; kind, status, dataset, architecture and date (or the error);
    ``rnn`` before the dataset for a recurrent run's files.

    The name is the file's own (``mfphys train --name``) when it has one, else its path name,
    shortened in the middle, where default names (dataset, architecture, mode, seed, time)
    are alike, so that two runs of the same day stay apart. The second line is cut at the end.
    A run marked for the curve overlay starts with a dot. An entry always takes two lines.
    """
    first = Text("● " if marked else "", style="bold #ff5f87")
    first.append(middle_ellipsis(e.title, width - len(first.plain)), style="bold")
    second = Text()
    second.append(e.kind, style=KIND_STYLE.get(e.kind, "bold red"))
    second.append(" ")
    second.append(e.status_text, style=STATUS_STYLE.get(e.status, ""))
    if e.error:
        second.append(": " + e.error, style="red")
    else:
        # a recurrent run (or its perturbation) says so: "rnn mnist 28-100-10 x28"; so does another family
        for part in (" ".join(p for p in (panels_for(e.model).tag, e.dataset, e.architecture) if p),
                     e.date[:10]):
            if part:
                second.append(" · " + part, style="dim")
    for line in (first, second):
        line.truncate(width, overflow="ellipsis")
    return Text("\n").join([first, second])


class EntryList(OptionList):
    """The sidebar list; a letter or digit that is not a key starts the filter with it.

    These are priority bindings, which act as the app receives the key, and the focus moves to
    the filter box at once (``Screen.set_focus``, not ``Widget.focus``, which waits for the next
    turn of the event loop): keys typed quickly after the first are passed on to the focused
    widget, which must be the box by then, not this list, where they would act as keys.
    """

    BINDINGS = [Binding(c, f"start_filter({c!r})", show=False, priority=True) for c in FILTER_STARTERS]

    def action_start_filter(self, character: str) -> None:
        box = self.app.query_one("#filter", Input)
        self.screen.set_focus(box)
        box.insert_text_at_cursor(character)

    def on_key(self, event) -> None:
        if event.key in ("up", "down", "pageup", "pagedown", "home", "end"):
            self.app.leave_table()  # moving in the list means: show me that entry

    def on_click(self) -> None:
        self.app.leave_table()
