"""The recurrent model in ``mfphys train --model rnn`` and ``mfphys order`` (docs/model-rnn.md section 9)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import typer

from mfphys.errors import MfphysError
from mfphys.runfile import CHECKPOINT_EVERY, CHECKPOINT_SECONDS
from mfphys.stats import format_stat
from mfphys.train import DYNAMICS_EVERY

from .common import command_line, console, make_progress, run_path

#: ``mfphys train`` options that apply to a recurrent run; any other given explicitly is refused
RNN_OPTIONS = ("model", "preset", "dry_run", "epochs", "replicas", "seed", "n_train", "n_test", "backend", "dtype",
               "mode", "eval_samples", "data_dir", "out", "quiet", "name", "tag", "note", "blas_threads", "resume",
               "checkpoint_every", "checkpoint_seconds", "dynamics_every")
#: options of a recurrent run that override the preset (RnnConfig field names)
OVERRIDES = ("epochs", "replicas", "seed", "n_train", "n_test", "backend", "dtype", "mode", "eval_samples",
             "blas_threads")
#: options that only the MNIST presets read
MNIST_ONLY = ("n_train", "n_test", "data_dir")


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_options(given: set, model: str) -> None:
    """Refuse, in one line, options given explicitly that the model does not read."""
    if model == "ffn":
        if "preset" in given:
            raise MfphysError("--preset is an option of --model rnn (the recurrent presets); a feed-forward run "
                              "takes --protocol")
        return
    bad = sorted(given - set(RNN_OPTIONS))
    if bad:
        raise MfphysError(f"{', '.join(option_name(b) for b in bad)} {'does' if len(bad) == 1 else 'do'} not apply "
                          f"to --model rnn (it takes --preset, {', '.join(option_name(o) for o in OVERRIDES)}, "
                          f"--out, --name, --tag, --note, --resume, --checkpoint-every, --checkpoint-seconds, "
                          f"--dynamics-every, -q)")


def rnn_config(preset_name: str, values: dict, given: set, base=None):
    """The preset (or ``base``, a resumed file's configuration) with the options given explicitly
    applied (an MNIST preset with ``--n-train N`` reads ``min(batches_per_epoch, N // batch_size)``
    mini-batches per epoch)."""
    from mfphys.rnn import preset

    base = preset(preset_name) if base is None else base
    if base.task != "mnist":
        bad = [option_name(o) for o in MNIST_ONLY if o in given]
        if bad:
            raise MfphysError(f"{', '.join(bad)}: the {preset_name} task generates its trials (no data set)")
    from mfphys.rnn.config import with_n_train

    changes = {k: values[k] for k in OVERRIDES if k in given}
    cfg = dataclasses.replace(base, **changes)
    if base.task == "mnist" and changes.get("n_train") is not None:
        try:
            cfg = with_n_train(cfg, changes["n_train"])
        except MfphysError as exc:  # the rule's message, in the option's spelling
            raise MfphysError(str(exc).replace("n_train", "--n-train", 1)) from None
    return cfg


def default_out(cfg, preset_name: str, name: str | None) -> Path:
    """``runs/<name>.nc``, or ``runs/rnn-<preset>-<mode>-seed<seed>-<time>.nc`` made unique."""
    return run_path(f"rnn-{preset_name}-{cfg.mode}-seed{cfg.seed}", name)


def resumed_config(resume: Path):
    """The configuration and preset of the recurrent run file ``resume`` (``--resume``), or one line."""
    from mfphys import store

    if not resume.exists():
        raise MfphysError(f"--resume {resume}: no such file")
    try:
        attrs = store.read_attrs(resume)
        store.file_kind(attrs, expect="run", where=str(resume))
        model = store.model_of(attrs)
    except MfphysError as exc:
        raise MfphysError(f"{exc}; nothing was written") from None
    if model != "rnn":
        raise MfphysError(f"--resume {resume} is a feed-forward run file: continue it without --model rnn; "
                          f"nothing was written")
    return store.config_from_attrs(attrs, resume), attrs.get("preset")


def print_estimate(cfg, preset_name: str, estimate, out: Path) -> None:
    """What ``--dry-run`` prints for a recurrent run: the job, its memory by part, its file."""
    from mfphys.rnn.store import architecture_label

    from .train import estimate_table

    data = (f"{cfg.n_train or 60000} MNIST images in {cfg.steps} steps" if cfg.task == "mnist"
            else "generated multisensory trials")
    console.print(f"rnn {cfg.mode} {architecture_label(cfg)} ({preset_name}): {cfg.replicas} replica(s), up to "
                  f"{cfg.epochs} epochs of {cfg.batches_per_epoch or 'all'} mini-batches of {cfg.batch_size}, {data}, "
                  f"{cfg.dtype}")
    estimate_table(estimate, out)


def train(preset_name: str | None, values: dict, given: set, *, out, name, tags, note, data_dir, quiet: bool,
          resume: Path | None = None, checkpoint_every: int = CHECKPOINT_EVERY,
          checkpoint_seconds: float = CHECKPOINT_SECONDS, dynamics_every: int = DYNAMICS_EVERY,
          dry_run: bool = False) -> None:
    """``mfphys train --model rnn``: train the preset into a run file that exists from the start
    (status running), rewritten at checkpoints; Ctrl-C saves the last epoch (exit 130); the same
    command again, or ``--resume FILE``, continues it (docs/model-rnn.md section 9)."""
    from mfphys import runfile, store
    from mfphys.fileio import check_writable

    from .common import err_console, stop_on_ctrl_c

    if resume is not None and out is not None and out != resume:
        raise MfphysError(f"--resume writes to the file it continues ({resume}): leave out --out {out}")
    base = None
    if resume is not None:
        base, stored = resumed_config(resume)
        if preset_name is not None and stored and preset_name != stored:
            raise MfphysError(f"--resume {resume} was made from --preset {stored}, not {preset_name}; "
                              f"nothing was written")
        preset_name = stored or preset_name or "row_mnist"
    preset_name = preset_name or "row_mnist"
    cfg = rnn_config(preset_name, values, given, base)
    out = resume or (Path(out) if out is not None else default_out(cfg, preset_name, name))
    policy = runfile.CheckpointPolicy(checkpoint_every, checkpoint_seconds).validate()
    plan = runfile.plan_run(out, cfg, resume=resume is not None)
    if plan.action == "done":
        console.print(f"{out} is done ({plan.attrs.get('epochs_done', cfg.epochs)} epochs): nothing to train "
                      f"(give more --epochs to continue it)")
        return
    from mfphys import budget
    from mfphys.fileio import check_free_space

    estimate = budget.rnn_estimate(cfg)
    if dry_run:
        print_estimate(cfg, preset_name, estimate, out)
    out = check_writable(out)
    budget.check_memory(estimate, hint="use fewer --replicas, a smaller --eval-samples or --n-test, or a preset "
                                       "with fewer steps")
    check_free_space(out, estimate.disk)
    if dry_run:
        return
    done = plan.state.epoch if plan.state is not None else 0
    dataset = None
    if cfg.task == "mnist":  # a data problem is one error line, before any progress bar
        from mfphys.data import load_dataset

        dataset = load_dataset("mnist", n_train=cfg.n_train, n_test=cfg.n_test, data_dir=data_dir)
    old = plan.attrs or {}  # a resumed run keeps its labels unless new ones are given
    labels = store.label_attrs(name or old.get("name") or out.stem, tags or json.loads(old.get("tags", "[]")),
                               note or old.get("note"))
    with make_progress() as progress, stop_on_ctrl_c() as stop:
        task = progress.add_task(f"rnn {preset_name} {cfg.mode}", total=cfg.epochs, completed=done, status="",
                                 visible=not quiet)

        def on_start(state):
            if not quiet:
                what = {"new": "writing", "resume": f"resuming at epoch {done}:",
                        "extend": f"continuing from epoch {done}:"}[plan.action]
                console.print(f"{what} {out}; watch it: mfphys tui {out.parent}")

        def on_epoch(e):
            loss = np.nanmean(np.where(e.active, e.train_loss, np.nan))
            acc = "" if np.all(np.isnan(e.test_acc)) else f"  test acc {np.nanmean(e.test_acc):.4f}"
            progress.update(task, completed=e.epoch, status=f"loss {loss:.4f}{acc}")

        try:
            result = runfile.train_run(plan, policy=policy, dynamics_every=dynamics_every, dataset=dataset,
                                       callback=on_epoch, stop=stop, on_start=on_start, command=command_line(),
                                       attrs={**labels, "preset": preset_name})
        except runfile.Interrupted as exc:
            progress.stop()
            err_console.print(f"interrupted after epoch {exc.epoch} of {exc.epochs}: {out} holds it (status "
                              f"interrupted); continue with: mfphys train --resume {out}", markup=False)
            raise typer.Exit(130) from None
    if quiet:
        return
    ds = store.open_run(out)
    from .order import order_table

    console.print(order_table(out, ds, _reports(ds, store.run_tolerances(ds), diagonal=True),
                              store.run_tolerances(ds), rows=SUMMARY_ROWS, label=column_label, kind="rnn "))
    for line in accuracy_lines(ds):
        console.print(line)
    console.print(f"{result.backend}, {result.timings['train_seconds']:.1f} s training, "
                  f"{result.timings['eval_seconds']:.1f} s evaluation; wrote {out}")


# --- order ------------------------------------------------------------------------------------

#: rows of ``train``'s summary table (``mfphys order`` shows every order parameter)
SUMMARY_ROWS = ("frac_vip", "frac_uip", "frac_variable", "mean_pi", "mean_xi", "entropy")


def _reports(ds, tol: dict, *, diagonal: bool):
    """``(column label, values)`` per matrix: the recurrent one with or without its diagonal."""
    from mfphys import store
    from mfphys.rnn.model import MATRICES
    from mfphys.rnn.order import NODIAG, matrix_reports

    reports = matrix_reports(store.params_from_dataset(ds), **tol)
    keep = "all" if diagonal else NODIAG
    return [next(r for r in reports if r[0] == m and (m != "recurrent" or r[1] == keep)) for m in MATRICES]


def column_label(matrix: str, connections: str) -> str:
    return matrix + (" (no diagonal)" if connections != "all" else "")


def accuracy_lines(ds) -> list[str]:
    """The accuracies of every evaluation mode (docs/model-rnn.md section 5), mean ± error over replicas."""
    out = []
    modes = [m for m in ("mf", "noisy", "quenched", "annealed") if f"test_acc_{m}" in ds]
    if modes:
        parts = [f"{m} {format_stat(ds[f'test_acc_{m}'].values)}" for m in modes]
        if "test_acc_quenched_vote" in ds:
            parts.append(f"quenched vote {format_stat(ds.test_acc_quenched_vote.values)}")
        out.append("test accuracy: " + ", ".join(parts))
    for m in ("mf", "noisy", "quenched", "annealed"):
        name = f"psychometric_acc_{m}"
        if name in ds:
            acc = ds[name].mean("draw") if "draw" in ds[name].dims else ds[name]
            per = ", ".join(f"{mod} {format_stat(acc.sel(modality=mod).values)}" for mod in ds.modality.values)
            out.append(f"psychometric accuracy ({m}): {per}")
    if "stop_epoch" in ds and ds.attrs.get("task") == "multisensory":
        out.append(f"stopped at epoch {'/'.join(str(int(e)) for e in ds.stop_epoch.values)} (per replica)")
    return out


def order_command(run, ds, tol: dict, *, diagonal: bool, as_json: bool, as_csv: bool, names) -> None:
    """``mfphys order`` on a recurrent run file: one column per matrix."""
    import csv
    import json
    import sys

    from mfphys.stats import mean_err

    from .order import TABLE_ROWS, _num

    reports = _reports(ds, tol, diagonal=diagonal)
    R = int(ds.sizes["replica"])
    if as_csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["matrix", "connections", "replica", *names])
        for matrix, c, v in reports:
            for r in range(R):
                w.writerow([matrix, c, r, *(repr(float(v[k][r])) for k in names)])
        return
    if as_json:
        out = {"file": str(run), "model": "rnn", "tolerances": tol, "replicas": R, "diagonal": diagonal,
               "columns": [{"matrix": matrix, "connections": c,
                            "values": {k: {"mean": _num(mean_err(v[k])[0]), "err": _num(mean_err(v[k])[1]),
                                           "replicas": [_num(x) for x in np.asarray(v[k], dtype=float)]}
                                       for k in names}}
                           for matrix, c, v in reports]}
        typer.echo(json.dumps(out, indent=1))
        return
    from .order import order_table

    console.print(order_table(run, ds, reports, tol, rows=TABLE_ROWS, label=column_label, kind="rnn "))
    for line in accuracy_lines(ds):
        console.print(line)
