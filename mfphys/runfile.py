"""Training into a run file that exists while the run trains: created at the start, rewritten
at checkpoints, finished, or continued later (docs/file-format.md "Checkpoints").

:func:`plan_run` looks at the file a run is to be written to and says what to do: start a
new run, resume an interrupted one, continue a finished one to more epochs, or nothing (it is
done); everything else (another configuration, another mode, a file that is not a run, a
damaged one, a run being written right now) is refused with one line before anything is
written. :func:`train_run` then trains with the steps of the run's model family
(``prepare``, ``init_state`` or ``resume_state``, ``train_epoch`` ..., ``finish``), writing
the file at the start, at checkpoints (:class:`CheckpointPolicy`), when asked to stop, and at
the end. On the NumPy backend a resumed run ends with exactly the numbers of an uninterrupted
one: the state holds every random stream.

Every model family goes through the same code: its :class:`mfphys.family.ModelFamily` names
its steps, its configuration class and how its state goes to and comes from a file;
:func:`family_of` asks the registry for it by the configuration, so ``train_run(Plan("new",
path, config))`` trains a run of any family with checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import time
from pathlib import Path
from typing import Callable, NamedTuple

from . import registry, runlog, store
from ._compat import legacy_getattr
from .dynamics import DYNAMICS_EVERY
from .errors import MfphysError
from .fileio import (
    boot_id,
    check_destination,
    check_readable,
    claim_file,
    config_differences,
    process_alive,
    utc_now,
)

#: default checkpoint cadence: a checkpoint once this many seconds have passed since the last
#: one (none by epoch count); its cost at this default is in bench/README.md
CHECKPOINT_SECONDS = 10.0
CHECKPOINT_EVERY = 0


class CheckpointPolicy(NamedTuple):
    """When a run rewrites its file while training: after an epoch, once ``every`` epochs
    (0: not by count) or ``seconds`` seconds (0: not by time) have passed since the last write.

    The time-based checkpoints also keep to about ``share`` of the time (2 %): after a write
    that took ``c`` seconds the next one waits at least ``c / share`` seconds, so a run whose
    file is large (many replicas) is not slowed down by its checkpoints."""

    every: int = CHECKPOINT_EVERY
    seconds: float = CHECKPOINT_SECONDS
    share: float = 0.02

    def due(self, epochs_since: int, seconds_since: float, last_cost: float = 0.0) -> bool:
        if self.every > 0 and epochs_since >= self.every:
            return True
        return self.seconds > 0 and seconds_since >= max(self.seconds, last_cost / self.share if self.share else 0.0)

    def validate(self) -> CheckpointPolicy:
        if not isinstance(self.every, int) or isinstance(self.every, bool) or self.every < 0:
            raise MfphysError(f"--checkpoint-every must be an integer >= 0 (0 = not by epochs), got {self.every}")
        if not (isinstance(self.seconds, (int, float)) and math.isfinite(self.seconds) and self.seconds >= 0):
            raise MfphysError(f"--checkpoint-seconds must be a number >= 0 (0 = not by time), got {self.seconds}")
        return self


def family_of(config):
    """The model family (:class:`mfphys.family.ModelFamily`) that trains ``config``."""
    return registry.of_config(config)


def _file_text(family) -> str:
    return f"a {family.title} run file (model {family.name})"


class Interrupted(KeyboardInterrupt):
    """Training stopped when asked, after a whole epoch; the run file holds that epoch (status
    ``interrupted``). A ``KeyboardInterrupt``, so that code that does not know it stops too.
    ``evaluating``: it stopped in the final evaluation, every epoch trained and on disk; resuming
    the file only runs the evaluation."""

    def __init__(self, path: Path, epoch: int, epochs: int, evaluating: bool = False):
        what = "during the final evaluation, after" if evaluating else "after"
        super().__init__(f"interrupted {what} epoch {epoch} of {epochs}")
        self.path, self.epoch, self.epochs, self.evaluating = Path(path), epoch, epochs, evaluating


class StopAfterEpoch(KeyboardInterrupt):
    """Raised by a progress callback of :func:`train_run` to stop after the epoch it reports, as
    ``stop()`` does: the epoch is written (status ``interrupted``) and :class:`Interrupted`
    raised. A front end whose callback is the only hook it has into the loop (a scan's cells)
    stops this way on the first Ctrl-C; elsewhere it is an interrupt like any other."""


def writer_info() -> dict:
    """Who writes a run file: this process (pid, host, boot id), for :func:`writer_alive`."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "boot_id": boot_id(), "started": utc_now()}


def writer_alive(attrs) -> bool | None:
    """Whether the process that writes a run file (its ``writer`` attribute) still runs: True or
    False, or None when it runs on another machine (cannot tell). A file that is not ``running``
    has no live writer."""
    if store.run_status(attrs) != "running":
        return False
    try:
        info = json.loads(attrs.get("writer", "{}"))
    except (TypeError, ValueError):
        return False
    if not isinstance(info, dict) or "pid" not in info:
        return False
    return process_alive(info["pid"], info.get("host"), info.get("boot_id"))


def being_written(path) -> bool:
    """True if a live process writes the run file at ``path`` right now (it must not be replaced)."""
    try:
        return bool(writer_alive(store.read_attrs(path)))
    except MfphysError:
        return False


def reuse_plan(path, config) -> Plan:
    """What a command that owns ``path`` (``mfphys reproduce``) does to get ``config`` trained
    there: continue a checkpoint or a shorter finished run of this configuration, or start anew
    over a file of another configuration or a damaged one; a file a live process writes is
    refused (:func:`plan_run`'s one line)."""
    path = Path(path)
    if path.exists():
        try:
            return plan_run(path, config)
        except MfphysError:
            if being_written(path):
                raise
    return Plan("new", path, config, stamp=file_stamp(path))


class Plan(NamedTuple):
    """What :func:`train_run` does with ``path``: ``action`` "new", "resume" (an interrupted
    run, or a running one whose writer is gone), "extend" (a finished run continued to
    ``config.epochs``) or "done" (nothing: the file is finished); ``state`` is the file's
    state (host arrays) and ``attrs`` its attributes, for the last three."""

    action: str
    path: Path
    config: object  # the run's configuration, of any family
    state: object | None = None  # the family's training state
    attrs: dict = {}
    #: the file as :func:`plan_run` saw it (:func:`file_stamp`); :func:`train_run` refuses to act
    #: on a plan whose file changed since (None: not checked)
    stamp: tuple | None = None


def file_stamp(path) -> tuple:
    """What tells one version of a file from another: inode, size, modification time (every
    write of a run file is a rename, a new inode); ``("missing",)`` for no file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return ("missing",)
    except OSError:
        return ("unreadable",)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def plan_run(path, config, *, resume: bool = False) -> Plan:
    """Decide what training ``config`` into ``path`` means, reading only what is needed.

    ``resume``: the user asked to continue this file (``--resume``); then it must exist, and a
    run marked running on another machine is taken as gone. Without it a missing file means a
    new run. Raises :class:`MfphysError` (one line; nothing written) for a file that is not an
    mfphys run, a damaged one, a run of another mode or configuration (``epochs`` aside), fewer
    epochs than the file has done, or a run whose writer still runs.
    """
    path = check_destination(path, what="--resume" if resume else "--out")
    stamp = file_stamp(path)
    if not path.exists():
        if resume:
            raise MfphysError(f"--resume {path}: no such file")
        return Plan("new", path, config, stamp=stamp)
    check_readable(path, what="run file")
    keep = "nothing was written" + ("" if resume else "; give another --out or move the file away")
    try:
        attrs = store.read_attrs(path)
    except MfphysError as exc:
        raise MfphysError(f"{exc}; {keep}") from None
    try:
        store.file_kind(attrs, expect="run", where=str(path))
    except MfphysError as exc:
        raise MfphysError(f"{exc}; {keep}") from None
    status = store.run_status(attrs)
    if status == "running":
        alive = writer_alive(attrs)
        who = _writer_text(attrs)
        if alive:
            raise MfphysError(f"{path} is being written right now by {who}; wait for it or stop it")
        if alive is None and not resume:
            raise MfphysError(f"{path} is marked running by {who} (another machine); if that process is gone, "
                              f"continue it with --resume {path}")
    family = family_of(config)
    try:
        found = registry.of_attrs(attrs)
    except MfphysError as exc:
        raise MfphysError(f"{path}: {exc}; {keep}") from None
    if found is not family:
        option = "" if family.name == registry.DEFAULT else f" (--model {family.name})"
        raise MfphysError(f"{path} is {_file_text(found)}: {family.title} training{option} cannot continue it; "
                          f"{keep}")
    old = store.config_from_attrs(attrs, path)
    if old.mode != config.mode:
        raise MfphysError(f"{path} was made by --mode {old.mode}, not {config.mode}; {keep}")
    diffs = config_differences(old, config, ignore=family.continue_ignores)
    if diffs:
        more = f"; ... ({len(diffs)} differences)" if len(diffs) > 3 else ""
        raise MfphysError(f"{path} was made by another configuration ({'; '.join(diffs[:3])}{more}); {keep}")
    done = _int(attrs.get("epochs_done"), old.epochs if status == "done" else None)
    if done is None:
        raise MfphysError(f"{path}: damaged run file: no epochs_done attribute; {keep}")
    if config.epochs < done:
        raise MfphysError(f"{path} has {done} epochs done already: give --epochs {done} or more to continue it")
    if status == "done" and (config.epochs == done or family.over(attrs)):
        return Plan("done", path, config, None, attrs, stamp)
    ds = store.read_dataset(path)
    state = family.state_from_dataset(ds, path)
    if state.epoch != done:
        raise MfphysError(f"{path}: damaged run file: epochs_done is {done} but its state is at epoch {state.epoch}")
    return Plan("extend" if status == "done" else "resume", path, config, state, dict(ds.attrs), stamp)


def _int(value, default):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _writer_text(attrs) -> str:
    try:
        info = json.loads(attrs.get("writer", "{}"))
        return f"process {info['pid']} on {info['host']}"
    except (TypeError, ValueError, KeyError):
        return "another process"


def train_run(plan: Plan, *, policy: CheckpointPolicy = CheckpointPolicy(),
              dynamics_every: int = DYNAMICS_EVERY, data_dir=None, dataset=None,
              callback: Callable | None = None,
              stop: Callable[[], bool] | None = None, on_start: Callable | None = None,
              command: str | None = None, attrs: dict | None = None, initial_checkpoint: bool = True,
              write_done: bool = True, epoch_log: bool = True):
    """Train ``plan`` (not "done") into its file and return the finished result (of the
    configuration's family: a feed-forward ``TrainResult``, a recurrent ``RnnResult``, ...).

    The file is written at the start (``initial_checkpoint``; status ``running``, after the
    data loaded, so bad input leaves no file), whenever ``policy`` says so, and at the end
    (``write_done``: status ``done``, with the final state so that it can be continued).
    ``stop()`` is asked after every epoch: when true, the epoch is written with status
    ``interrupted`` and :class:`Interrupted` raised. A ``KeyboardInterrupt`` in the middle of
    an epoch marks the last checkpoint ``interrupted``; a run that fails (divergence) removes
    a file it created, or marks the one it resumed ``interrupted``. ``attrs`` are added to
    every write (a scan cell's ``config_hash``); ``on_start(state)`` is called once the first
    file is written. ``epoch_log``: append every epoch's scalars to ``<path>.log.jsonl``
    (:mod:`mfphys.runlog`; cut back to the resumed epoch at the start, removed at the end).
    """
    return train_runs([plan], policy=policy, dynamics_every=dynamics_every, data_dir=data_dir, dataset=dataset,
                      callback=callback, stop=stop, on_start=on_start, command=command, attrs=[attrs],
                      initial_checkpoint=initial_checkpoint, write_done=write_done, epoch_log=epoch_log)[0]


class _Steps(NamedTuple):
    """The family steps :func:`train_runs` drives: one plan's own, or several plans packed into
    one run (docs/scans.md "Packed cells"); ``split`` makes the packed run's result (or
    epoch-log line) one per plan."""

    setup: object
    state: object
    results: Callable  # result -> [result per plan]
    logs: Callable  # (setup, state) -> [epoch-log line per plan]


def _steps(family, plans, data_dir, dataset, dynamics_every) -> _Steps:
    if len(plans) == 1:
        plan = plans[0]
        setup = family.prepare(plan.config, data_dir=data_dir, dataset=dataset, dynamics_every=dynamics_every)
        state = family.init_state(setup) if plan.state is None else family.resume_state(setup, plan.state)
        return _Steps(setup, state, lambda result: [result], lambda setup, state: [family.epoch_log(setup, state)])
    setup = family.prepare_packed([p.config for p in plans], data_dir=data_dir, dynamics_every=dynamics_every)
    if all(p.state is None for p in plans):
        state = family.init_state(setup)
    elif any(p.state is None for p in plans):
        raise MfphysError("packed runs start together or resume together: give every plan a state or none")
    else:
        state = family.resume_state(setup, family.join_states(setup, [p.state for p in plans]))
    return _Steps(setup, state, lambda result: family.unpack(setup, result), family.packed_epoch_logs)


def train_runs(plans, *, policy: CheckpointPolicy = CheckpointPolicy(),
               dynamics_every: int = DYNAMICS_EVERY, data_dir=None, dataset=None,
               callback: Callable | None = None,
               stop: Callable[[], bool] | None = None, on_start: Callable | None = None,
               command: str | None = None, attrs=None, initial_checkpoint: bool = True,
               write_done: bool = True, epoch_log: bool = True) -> list:
    """:func:`train_run` for several plans trained as one packed run (docs/scans.md "Packed
    cells"): configurations of one family and one :meth:`~mfphys.family.ModelFamily.pack_key`,
    all new or all resumed from checkpoints after the same epoch. Each plan's file is written,
    claimed, checkpointed, marked and removed as :func:`train_run` does it for a run alone, with
    that configuration's own numbers (the family's :meth:`~mfphys.family.ModelFamily.unpack`);
    one result per plan. ``attrs``: one dict (or None) per plan. ``callback`` sees the packed
    run's records; ``on_start`` and ``dataset`` are for a single plan. :class:`Interrupted`
    names the first plan's file.
    """
    plans = list(plans)
    if not plans:
        raise MfphysError("no run to train")
    for plan in plans:
        if plan.action == "done":
            raise MfphysError(f"{plan.path} is done: nothing to train")
    policy = policy.validate()
    family = family_of(plans[0].config)
    if len(plans) > 1 and (dataset is not None or on_start is not None):
        raise MfphysError("a packed run loads its own data and has no on_start")
    attrs = list(attrs) if attrs is not None else [None] * len(plans)
    config = plans[0].config
    now = utc_now()
    writer = writer_info()
    files = []  # per plan: segments, history line, created, epoch log, written?
    for plan in plans:
        old = plan.attrs or {}
        segments = _segments(old) + [{"action": plan.action, "from_epoch": plan.state.epoch if plan.state else 0,
                                      "epochs": plan.config.epochs, "started": now,
                                      "command": command or "mfphys.train"}]
        what = {"new": "", "resume": f" (resumed at epoch {segments[-1]['from_epoch']})",
                "extend": f" (continued from {segments[-1]['from_epoch']} to {plan.config.epochs} epochs)"}[plan.action]
        line = f"{now} {command or 'mfphys.train'}{what}"
        created = old.get("created", now)
        files.append({"segments": segments, "history": f"{old['history']}\n{line}" if old.get("history") else line,
                      "created": created, "log": runlog.EpochLog(plan.path, created) if epoch_log else None,
                      "wrote": False})

    def write(state, status, results=None):
        results = results if results is not None else steps.results(family.current_result(steps.setup, state))
        for plan, f, res, extra in zip(plans, files, results, attrs):
            ds = family.checkpoint_to_dataset(res, status=status, writer=writer, segments=f["segments"],
                                             dynamics_every=steps.setup.dynamics_every, command=command,
                                             created=f["created"], history=f["history"], attrs=extra)
            store.write_atomic(ds, plan.path)
            f["wrote"] = True

    with contextlib.ExitStack() as claims:
        for plan in plans:
            claims.enter_context(claim_file(plan.path))
        claims.enter_context(family.running(config))
        for plan in plans:
            if plan.stamp is not None and file_stamp(plan.path) != plan.stamp:
                raise MfphysError(f"{plan.path} changed since this command looked at it (another process wrote "
                                  f"it); nothing was written: run the command again")
        steps = _steps(family, plans, data_dir, dataset, dynamics_every)
        setup, state = steps.setup, steps.state
        evaluating = False
        try:
            if initial_checkpoint:
                write(state, "running")
            for f in files:
                if f["log"] is not None:
                    f["log"].start(state.epoch)
            if on_start is not None:
                on_start(state)
            last_epoch, last_time, cost = state.epoch, time.monotonic(), 0.0
            while not family.finished(setup, state):
                state, record = family.train_epoch(setup, state)
                if epoch_log:
                    for f, line in zip(files, steps.logs(setup, state)):
                        if line is not None:  # None: that plan's run ended before this epoch
                            f["log"].append(line)
                asked = False
                if callback is not None:
                    try:
                        callback(record)
                    except StopAfterEpoch:
                        asked = True
                if asked or (stop is not None and stop()):
                    write(state, "interrupted")
                    raise Interrupted(plans[0].path, state.epoch, config.epochs)
                t = time.monotonic()
                if not family.finished(setup, state) and policy.due(state.epoch - last_epoch, t - last_time, cost):
                    write(state, "running")
                    last_epoch, last_time = state.epoch, time.monotonic()
                    cost = last_time - t
            if write_done and (state.epoch != last_epoch or not all(f["wrote"] for f in files)):
                # every epoch on disk before the final evaluation starts: a Ctrl-C (or a kill)
                # during it keeps the training, and --resume only evaluates (docs/file-format.md)
                write(state, "running")
            evaluating = True
            results = steps.results(family.finish(setup, state, keep_state=write_done))
        except Interrupted:
            raise
        except BaseException as exc:
            for plan, f in zip(plans, files):
                if f["wrote"] and plan.action == "new" and not isinstance(exc, KeyboardInterrupt):
                    with contextlib.suppress(OSError):
                        plan.path.unlink()  # a failed new run leaves nothing behind, as before checkpoints
                elif f["wrote"]:
                    with contextlib.suppress(Exception):
                        mark(plan.path, "interrupted")
                if f["log"] is not None and not plan.path.exists():
                    f["log"].remove()  # no run file for it to complete
            if any(f["wrote"] for f in files) and evaluating and isinstance(exc, KeyboardInterrupt):
                raise Interrupted(plans[0].path, state.epoch, config.epochs, evaluating=True) from None
            raise
        if write_done:
            write(state, "done", results)
        for f in files:
            if f["log"] is not None:
                f["log"].remove()  # the finished file (or the caller's) holds every epoch
        return results


def mark(path, status: str) -> None:
    """Rewrite a run file with another ``status`` (its last checkpoint kept as it is)."""
    ds = store.read_dataset(path)
    ds.attrs.update(status=status, updated=utc_now())
    store.write_atomic(ds, path)


def _segments(attrs) -> list:
    try:
        seg = json.loads(attrs.get("segments", "[]"))
    except (TypeError, ValueError):
        return []
    return seg if isinstance(seg, list) else []


__getattr__ = legacy_getattr(__name__)
