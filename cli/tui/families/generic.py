"""The panels every family shares, and the defaults of :class:`FamilyPanels` (the generic family)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from mfphys.stats import format_stat

#: the dimensions that may index a family's weight matrices, in the order they are looked for
PART_DIMS = ("layer", "matrix")


@dataclass(frozen=True)
class FamilyPanels:
    """How the TUI shows one model family's runs and scans, beyond what every family shares."""

    name: str = "generic"
    #: what indexes the weight matrices: "layer" (numbers) or "matrix" (names); None: the file's own
    part_dim: str | None = None
    live_inputs: bool = False  # run: layer 1 over the inputs that vary or over all (key i)
    diagonal: bool = False  # a matrix with or without its diagonal, where the file has `_nodiag` (key n)
    from_output: bool = False  # scan: layers counted from the output (key o)
    evaluation: bool = False  # run: the table of the accuracy in every evaluation mode
    psychometric: bool = False  # run: the psychometric curves, where the file has them
    tag: str = ""  # the word before the mode in headings, the sidebar and the runs table ("rnn")

    def part_of(self, dims) -> str:
        """The dimension of ``dims`` (a file's) that indexes the weight matrices."""
        if self.part_dim is not None:
            return self.part_dim
        return next((d for d in PART_DIMS if d in dims), PART_DIMS[0])

    def mode_label(self, mode: str) -> str:
        """``gbp``, or ``rnn gbp`` for a family with a tag."""
        return f"{self.tag} {mode}".strip() if self.tag else mode

    def accuracy_line(self, entry, run) -> Text:
        """The run header's accuracy line: the mean-field test accuracy at the last epoch."""
        line = Text("\ntest acc ")
        line.append(format_stat(run.final["test_acc"]) if run.epoch.size else "-", style="bold")
        line.append(" mean-field" + (f" (epoch {int(run.epoch[-1])})" if entry.partial and run.epoch.size else ""))
        return line

    def order_note(self, run, inputs: str, diagonal: bool) -> str:
        """The line under the order table: what its columns count."""
        return ""


#: the panels of a family without its own module
GENERIC = FamilyPanels()
