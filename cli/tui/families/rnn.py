"""The recurrent family (``model`` "rnn", docs/model-rnn.md): per matrix (input, recurrent,
output), the recurrent one with or without its diagonal, the accuracy of every evaluation mode
and, for the multisensory task, psychometric curves."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text

from mfphys.stats import format_stat

from ..models.run import RNN_MODES, live_note
from .generic import FamilyPanels


@dataclass(frozen=True)
class RecurrentPanels(FamilyPanels):
    def accuracy_line(self, entry, run) -> Text:
        return rnn_accuracy_line(run)

    def order_note(self, run, inputs: str, diagonal: bool) -> str:
        return live_note(run, inputs, diagonal)  # the recurrent column with or without its diagonal


def rnn_accuracy_line(run) -> Text:
    """A recurrent run's accuracy line: the noise-free mean field and the quenched networks (the
    table below the curves has every mode); multisensory: the psychometric accuracy, mean over
    the modalities."""
    line = Text()
    if run.accuracies:
        line.append("\ntest acc ")
        for k, mode in enumerate(m for m in ("mf", "quenched") if m in run.accuracies):
            line.append(" · " if k else "")
            line.append(format_stat(run.accuracies[mode]), style="bold")
            line.append(" " + RNN_MODES[mode])
    elif run.psychometric_acc:
        line.append("\npsychometric acc ")
        for k, mode in enumerate(m for m in ("mf", "quenched") if m in run.psychometric_acc):
            acc = run.psychometric_acc[mode]
            line.append(" · " if k else "")
            line.append(format_stat(acc.reshape(acc.shape[0], -1).mean(axis=1)), style="bold")
            line.append(" " + RNN_MODES[mode])
        line.append(" (mean over modalities)", style="dim")
    else:
        line.append("\ntest acc ")
        line.append(format_stat(run.final["test_acc"]) if run.epoch.size else "-", style="bold")
        line.append(" mean-field")
    return line


RNN = RecurrentPanels(name="rnn", part_dim="matrix", diagonal=True, evaluation=True, psychometric=True, tag="rnn")
