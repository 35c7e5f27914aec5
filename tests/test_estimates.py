"""Time estimates (docs/cli.md "How long"): what they count, and that the texts say what the code does.

Oracles: the structure of the estimate (a part that must be counted makes it larger, by the
formula's own terms), the protocol objects the commands run, never a wall-clock time.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from mfphys.models.ffn.budget import FORWARD_SHARE, train_seconds
from mfphys.models.ffn.reproduce import OVERHEAD_SECONDS, Protocol
from mfphys.rnn.reproduce import RnnProtocol
from mfphys.train import TrainConfig


def test_train_seconds_counts_the_evaluations_by_the_test_set():
    """A small training set with a large test set spends most of its time evaluating: the
    estimate grows with n_test and eval_samples, not only with the training steps."""
    small = TrainConfig(dataset="teacher", layers=(784, 100, 10), n_train=1000, n_test=10_000, epochs=10)
    steps = 10 * math.ceil(1000 / 500)
    assert train_seconds(small, 1.0) == pytest.approx(steps + (10 + 10) * FORWARD_SHARE * 10_000 / 500)
    assert train_seconds(small, 1.0) > 2 * steps  # the evaluations outweigh the 20 steps here
    assert train_seconds(dataclasses.replace(small, n_test=100), 1.0) < train_seconds(small, 1.0)
    assert train_seconds(dataclasses.replace(small, eval_samples=0), 1.0) < train_seconds(small, 1.0)


def test_reproduce_estimate_counts_the_training_an_experiment_needs():
    """``reproduce perturbation --quick`` announced about 2 s and took 35 s: the gBP run it trains
    first was left out. Each experiment now counts the runs it trains."""
    p = Protocol.quick()
    alone = p.estimate_seconds(["perturbation"])
    assert alone > OVERHEAD_SECONDS and alone > p.estimate_seconds(["distributions"])  # training + passes
    assert p.estimate_seconds(["curves"]) > p.estimate_seconds(["distributions"])  # the BP run too
    assert p.estimate_seconds(["distributions", "dynamics"]) == pytest.approx(p.estimate_seconds(["dynamics"]))
    assert p.estimate_seconds(["entropy"]) > OVERHEAD_SECONDS


def test_quick_recurrent_help_says_the_epochs_the_code_trains(cli):
    res = cli("reproduce", "--help", env={"COLUMNS": "200"})
    assert res.exit_code == 0
    epochs = RnnProtocol.quick().epochs
    assert f"row-wise MNIST, default {RnnProtocol().epochs}, {epochs} with --quick" in " ".join(res.output.split())


def test_psychometric_trains_no_row_wise_mnist():
    """The multisensory experiment trains no row-wise MNIST run (its announcement, built from
    these configurations, names only the multisensory one)."""
    assert set(RnnProtocol.quick().configs(["psychometric"])) == {"multisensory"}
    assert RnnProtocol.quick().estimate_seconds(["psychometric"]) < RnnProtocol.quick().estimate_seconds()
