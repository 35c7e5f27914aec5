"""The command line's family adapters (cli/families/): which module serves which family."""

from __future__ import annotations

import types

import pytest

from mfphys import registry
from mfphys.cli import families
from mfphys.errors import MfphysError

#: what the training life cycle (cli/train.py) and the other commands ask of an adapter
INTERFACE = ("NAME", "TITLE", "PANEL", "OPTIONS", "SCAN_OPTIONS", "MEMORY_HINT", "resolve", "config", "default_out",
             "describe", "label", "estimate", "load_data", "running", "run_attrs", "epoch_status", "timings",
             "summary", "order", "scan_summary", "perturb_target", "perturb_label", "perturb_run", "perturb_candidates",
             "perturb_baseline")


@pytest.mark.parametrize("name", registry.builtin_names())
def test_every_builtin_family_has_a_whole_adapter(name):
    adapter = families.adapter(name)
    assert adapter.__name__ == f"mfphys.cli.families.{name}" and adapter.NAME == name
    missing = [a for a in INTERFACE if not hasattr(adapter, a)]
    assert not missing, missing


def test_the_families_own_options_do_not_overlap_the_common_ones():
    from mfphys.cli.train import COMMON

    own = [o for name in families.names() for o in families.adapter(name).OPTIONS]
    assert len(own) == len(set(own)) and not set(own) & set(COMMON)


def _register(monkeypatch, name, frontend):
    family = types.SimpleNamespace(name=name, frontend=frontend)
    monkeypatch.setattr(registry, "is_family", lambda n: n == name or n in registry.BUILTIN)
    monkeypatch.setattr(registry, "get", lambda n=None: family)


def test_another_package_s_family_is_served_by_its_frontend_module(monkeypatch):
    _register(monkeypatch, "toy", "mfphys.cli.families.ffn")
    assert families.adapter("toy") is families.adapter("ffn")


def test_a_family_without_a_frontend_gets_the_generic_adapter(monkeypatch):
    _register(monkeypatch, "toy", None)
    generic = families.adapter("toy")
    assert generic.__name__ == "mfphys.cli.families.generic" and generic.SCAN_OPTIONS == ()
    with pytest.raises(MfphysError, match="the model family 'toy' has no command-line options"):
        generic.resolve({"family": "toy"}, set())


def test_an_unknown_family_is_one_clear_error():
    with pytest.raises(MfphysError, match="unknown --family 'gru': choose one of ffn, rnn"):
        families.adapter("gru")
