"""Running a scan: train every cell that is not done yet, here or on a Dask cluster.

:func:`run_scan` checks the folder and the data before writing anything, keeps the cells
already done (their ``config_hash`` attribute says so), copies matching cells of other scan
folders (``reuse``), trains the rest one by one or on ``dask.distributed`` workers, and
writes every file itself, so the files are the same whichever way the cells ran.
The contract (folder layout, resume) is in :mod:`mfphys.scan` and docs/scans.md.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shlex
import shutil
import socket
import sys
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

from .. import __version__, registry, store
from ..checks import check_scan_options
from ..errors import MfphysError
from ..fileio import atomic_file, make_folder, read_json, utc_now, write_json_atomic
from ..runfile import CheckpointPolicy, Plan, train_run, train_runs
from .folder import (
    KIND,
    FolderLock,
    _check_folder,
    _clean_stale,
    _owner,
    _Paths,
    _remove_own_markers,
    claim_cell,
    read_scan_json,
)
from .spec import Cell, ScanSpec


class ScanEvent(NamedTuple):
    """What :func:`run_scan` reports to its callback.

    ``kind``: "begin" (counts known), "cell_start", "epoch" (sequential runs: ``record`` is
    the :class:`mfphys.train.EpochRecord`), "cell_done", "cell_failed" (``error`` set),
    "tick" (counts refreshed while cells run on Dask), "end".
    ``counts``: {"total", "done", "failed", "running", "pending"}.
    """

    kind: str
    cell: Cell | None
    counts: dict
    record: Any = None
    error: str = ""


class ScanReport(NamedTuple):
    """What :func:`run_scan` returns: the folder's cell counts after the call, and what the call did."""

    folder: Path
    total: int
    done: int
    failed: int
    trained: int  # cells trained (done or failed) by this call
    skipped: int  # cells found done and left untouched
    reused: int  # cells copied from the ``reuse`` folders
    seconds: float
    failed_cells: tuple  # ((key, error), ...)


def _cell_done(p: _Paths, cell: Cell, *, foreign_ok: bool = False) -> bool:
    """True if the cell's file is complete and ours; False if missing or corrupt (to be retrained).
    A readable file of another configuration is refused (we never write over it), unless
    ``foreign_ok`` (a folder we only read from, ``reuse``): then it is just not a match."""
    path = p.nc(cell.key)
    if not path.exists():
        return False
    try:
        # the attributes only: a resume must not read every finished cell's arrays again
        attrs = store.read_attrs(path)
    except MfphysError:
        return False  # only written atomically, so a bad file is damage: retrain it
    if attrs.get("config_hash") == cell.config_hash:
        return True
    if foreign_ok:
        return False
    why = "has no config_hash" if "config_hash" not in attrs else "was made by a different configuration"
    raise MfphysError(f"{path} {why}: it is not a cell of this scan; move it away (nothing was written)")


def _copy_atomic(src: Path, dst: Path) -> None:
    with atomic_file(dst) as tmp:
        shutil.copyfile(src, tmp)


def _preflight(cells: Sequence[Cell], data_dir) -> None:
    """Load each distinct data set once at its largest n_train (each family knows its data), so
    that missing MNIST files or a too-large n_train stop the scan with one line before anything
    is written."""
    by_family: dict = {}
    for cell in cells:
        by_family.setdefault(cell.model, []).append(cell.config)
    for model, configs in by_family.items():
        registry.get(model).preflight(configs, data_dir)


def _error_record(exc: BaseException, cell: Cell) -> dict:
    rec = {"error": str(exc) if isinstance(exc, MfphysError) else f"{type(exc).__name__}: {exc}",
           "error_type": type(exc).__name__, "config_hash": cell.config_hash, "scan_cell": dict(cell.coords),
           "time": utc_now(), "host": socket.gethostname(), "mfphys_version": __version__}
    if not isinstance(exc, MfphysError):
        rec["traceback"] = "".join(traceback.format_exception(exc))
    return rec


def _train_cell(cell: Cell, data_dir, marker: str | None, owner: dict, blas_threads: int | None,
                callback=None, partial: str | None = None, checkpoint: CheckpointPolicy | None = None):
    """Train one cell (in this process or on a Dask worker). Returns ("done", TrainResult, where)
    or ("failed", error record, where); never raises for a failing cell.

    With ``checkpoint`` and a ``partial`` path in a folder this process sees, the cell is
    checkpointed there while it trains and resumed from there when a killed scan left one."""
    where = f"{socket.gethostname()}:{os.getpid()}"
    if marker is not None and Path(marker).parent.is_dir():  # a worker without the shared folder skips it
        with contextlib.suppress(MfphysError):
            write_json_atomic({"pid": os.getpid(), "host": socket.gethostname(), "started": utc_now(), **owner},
                               Path(marker))
    limits = contextlib.nullcontext()
    if blas_threads:
        # the same thread count everywhere gives the same numbers (OpenBLAS's sums depend on it);
        # and one single-threaded process per core beats multi-threaded BLAS on a CPU (docs/scans.md,
        # "Parallel and distributed runs")
        with contextlib.suppress(ImportError):
            from threadpoolctl import threadpool_limits

            limits = threadpool_limits(blas_threads)
    try:
        with limits:
            if checkpoint is None or partial is None or not Path(partial).parent.is_dir():
                return "done", _train_in_memory(cell, data_dir, callback), where
            return "done", _train_checkpointed(cell, Path(partial), data_dir, checkpoint, callback), where
    except Exception as exc:
        return "failed", _error_record(exc, cell), where


def _train_in_memory(cell: Cell, data_dir, callback):
    """Train a cell without checkpoints (a Dask worker that does not see the scan folder), with
    its family's steps in memory."""
    return registry.get(cell.model).train(cell.config, data_dir=data_dir, callback=callback)


def _cell_dataset(cell: Cell, result, *, command: str | None, fixed: dict):
    """The run-file Dataset of a trained cell, of any model family (before the scan's attributes)."""
    family = registry.get(cell.model)
    return family.run_to_dataset(result, command=command, **family.cell_options(fixed))


def _cell_plan(cell: Cell, partial: Path) -> Plan:
    """What training ``cell`` into its checkpoint ``partial`` means: resume from it when it is
    one of this cell's configuration, else start anew (another file there is stale: removed)."""
    state, attrs = None, {}
    if partial.exists():
        try:
            attrs = store.read_attrs(partial)
            if attrs.get("config_hash") == cell.config_hash:
                state = store.state_from_dataset(store.read_dataset(partial), partial)
        except MfphysError:
            state = None
        if state is None:
            attrs = {}
            partial.unlink(missing_ok=True)
    return Plan("new" if state is None else "resume", partial, cell.config, state, attrs)


def _checkpoint_attrs(cell: Cell) -> dict:
    return {"config_hash": cell.config_hash, "scan_cell": json.dumps(dict(cell.coords))}


#: the command a cell's checkpoint records
CHECKPOINT_COMMAND = "mfphys scan (checkpoint of a cell)"


def _train_checkpointed(cell: Cell, partial: Path, data_dir, checkpoint: CheckpointPolicy, callback):
    """Train a cell with checkpoints in ``partial``, from its last checkpoint when there is one of
    this cell's configuration (:func:`_cell_plan`). Either model family:
    :mod:`mfphys.runfile` trains a recurrent configuration with the recurrent steps."""
    return train_run(_cell_plan(cell, partial), policy=checkpoint, data_dir=data_dir, callback=callback,
                     initial_checkpoint=False, write_done=False, command=CHECKPOINT_COMMAND,
                     attrs=_checkpoint_attrs(cell))


def _index_cell(p: _Paths, ds, cell: Cell) -> None:
    """Add a cell just written to the scan index (docs/scans.md, "The scan index"). The index is a
    cache of the cell files: if this fails, the next reader reads the cell's file instead."""
    from . import index
    from .view import cell_record

    with contextlib.suppress(OSError, MfphysError, ValueError, TypeError):
        st = os.stat(p.nc(cell.key))
        index.append(p.index, [cell_record(ds, cell.key, cell.coords, (st.st_mtime_ns, st.st_size))])


class ClusterSpec(NamedTuple):
    """A batch-scheduler cluster for a scan's cells (``mfphys scan --cluster``, docs/scans.md,
    "Clusters: SLURM, PBS, SGE"): ``jobs`` batch jobs of ``cores`` cores each, every core one
    single-threaded Dask worker, started through dask-jobqueue.

    ``memory`` per job (e.g. "16GB"; None: twice the largest cell's estimate per core),
    ``walltime`` ("02:00:00"), ``queue`` (partition), ``account`` (SGE: project), ``job_extra``:
    lines added to the job script's header (``--qos=normal`` for SLURM, ``-l mem=4gb`` for PBS).
    The scan folder and the data folder must be on a file system the compute nodes share.
    """

    kind: str  # slurm, pbs or sge
    jobs: int = 1
    cores: int = 1
    memory: str | None = None
    walltime: str | None = None
    queue: str | None = None
    account: str | None = None
    job_extra: tuple = ()


#: --cluster kinds: the dask-jobqueue class and the command that submits a job
CLUSTERS = {"slurm": ("SLURMCluster", "sbatch"), "pbs": ("PBSCluster", "qsub"), "sge": ("SGECluster", "qsub")}


def _batch_cluster(spec: ClusterSpec, memory: int):
    """A dask-jobqueue cluster of ``spec`` with its jobs submitted (``memory``: the default per
    job, bytes). Imported only here: dask-jobqueue is an optional extra (``mfphys[cluster]``)."""
    cls, kwargs = _batch_options(spec, memory)
    try:
        cluster = cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise MfphysError(f"--cluster {spec.kind}: {exc}") from None
    cluster.scale(jobs=spec.jobs)
    return cluster


def _batch_options(spec: ClusterSpec, memory: int) -> tuple[type, dict]:
    """The dask-jobqueue class and keyword arguments of ``spec``; one clear error where it cannot run here."""
    if spec.kind not in CLUSTERS:
        raise MfphysError(f"--cluster {spec.kind!r}: choose one of {', '.join(CLUSTERS)}")
    if spec.jobs < 1 or spec.cores < 1:
        raise MfphysError(f"--jobs and --cores must be >= 1, got {spec.jobs} and {spec.cores}")
    name, submit = CLUSTERS[spec.kind]
    if shutil.which(submit) is None:
        raise MfphysError(f"--cluster {spec.kind}: {submit} is not on this machine's PATH; run the scan on a "
                          f"machine that submits {spec.kind.upper()} jobs (a login node)")
    try:
        import dask_jobqueue
    except ImportError:
        raise MfphysError("--cluster needs dask-jobqueue: pip install 'mfphys[cluster]'") from None
    kwargs: dict[str, Any] = {"cores": spec.cores, "processes": spec.cores,  # one single-threaded worker per core
                              "memory": spec.memory or f"{max(1, -(-2 * memory * spec.cores // 2**30))}GiB",
                              "job_extra_directives": list(spec.job_extra), "silence_logs": "error",
                              # dashboard on a free port: 8787 may be taken by another scan's cluster
                              "scheduler_options": {"dashboard_address": ":0"}}
    if spec.walltime:
        kwargs["walltime"] = spec.walltime
    if spec.queue:
        kwargs["queue"] = spec.queue
    if spec.account:
        kwargs["project" if spec.kind == "sge" else "account"] = spec.account
    from ..data import ENV_VAR

    if os.environ.get(ENV_VAR):  # PBS and SGE jobs do not inherit the submitting shell's environment
        kwargs["job_script_prologue"] = [f"export {ENV_VAR}={shlex.quote(os.environ[ENV_VAR])}"]
    return getattr(dask_jobqueue, name), kwargs


def _connect(workers: int | None, scheduler: str | None, timeout: float, cluster: ClusterSpec | None = None,
             memory: int = 0):
    """A dask.distributed Client (and the LocalCluster or batch cluster we own, or None)."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise MfphysError("--workers/--scheduler need dask.distributed: pip install 'mfphys[dist]'") from None
    if cluster is not None:
        batch = _batch_cluster(cluster, memory)
        return Client(batch), batch
    if scheduler:
        # a Client that failed to connect complains from its __del__ when collected: keep that
        # traceback off the user's terminal, the one line below says it all
        hook, sys.unraisablehook = sys.unraisablehook, lambda unraisable: None
        try:
            try:
                return Client(scheduler, timeout=timeout), None
            except Exception as exc:
                why = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            gc.collect()
        finally:
            sys.unraisablehook = hook
        raise MfphysError(f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s ({why}); "
                          "is `dask scheduler` running there?")
    import logging

    import dask

    # Dask's nanny gives workers OMP/MKL/OPENBLAS_NUM_THREADS=1 (what we want: one single-threaded
    # process per core, docs/scans.md) and MALLOC_TRIM_THRESHOLD_=65536, which switches off glibc's
    # adaptive mmap threshold: every large NumPy temporary is then mmapped and freed again
    # (measured: +30-100% system time in training). Keep the first, drop the second.
    environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
               if k != "MALLOC_TRIM_THRESHOLD_"}
    settings = {"distributed.nanny.pre-spawn-environ": environ}
    if sys.platform == "linux":
        # workers forked from this process start with mfphys imported and the data loaded (the
        # preflight's in-process cache) instead of a fresh interpreter importing everything and
        # reading the data again: the fixed cost of a local cluster drops from seconds per worker
        # to a fraction of a second (bench/bench_workers.py; docs/scans.md, "Parallel and
        # distributed runs"). BLAS threads are set per cell (threadpoolctl), not by environment.
        settings["distributed.worker.multiprocessing-method"] = "fork"
    with dask.config.set(settings), _workers_ignore_ctrl_c():
        # dashboard on a free port: the default 8787 may be taken by another scan's cluster; the
        # library's own logs only above ERROR: what fails in a cell is reported by the scan itself,
        # and a Ctrl-C must not end in the workers' complaints about the scheduler they lost
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.CRITICAL)
    return Client(cluster), cluster


@contextlib.contextmanager
def _workers_ignore_ctrl_c():
    """Start the local cluster's worker processes with SIGINT ignored (a disposition that a
    spawned process inherits): a terminal's Ctrl-C goes to the whole process group, and the
    workers must not each print a KeyboardInterrupt traceback. This process alone handles it,
    and stops the cluster (docs/guarantees.md "Kills and Ctrl-C")."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _discard_new_folder(p: _Paths, lock) -> None:
    """Nothing of a scan this process began landed (no scan.json): leave no folder behind."""
    lock.__exit__()
    with contextlib.suppress(OSError):
        p.lock.unlink()
        for sub in (p.cells, p.folder):
            sub.rmdir()


def _close_dask(client, cluster, *, quick: bool) -> None:
    """Close the client and the cluster we own; after a Ctrl-C without waiting long for the cells
    the workers were training (their checkpoints are on disk; the rerun resumes them)."""
    if not quick:
        client.close()
        if cluster is not None:
            cluster.close()
        return
    # the workers first (before the scheduler they report to goes), each side waiting briefly
    if cluster is not None:
        with contextlib.suppress(Exception):
            cluster.close(timeout=5)
    with contextlib.suppress(Exception):
        client.close(timeout=3)


def _cost(cell: Cell) -> float:
    """Rough relative cost of a cell, to start the big ones first on a cluster."""
    return registry.get(cell.model).cost(cell.config)


class ScanPlan(NamedTuple):
    """What a scan would do: cells by state, and the memory, disk and time it needs."""

    total: int
    done: int
    todo: tuple  # the cells to train
    parallel: int  # cells that run at once
    memory: int  # bytes of the cells running at once (largest cells)
    disk: int  # bytes of the cell files still to write
    seconds: float | None  # estimated wall time (calibrated), None when not calibrated
    free_memory: int | None
    free_disk: int | None
    #: the sizes (cells) of the packed groups among ``todo``, each one run (docs/scans.md "Packed cells")
    packed: tuple = ()


def _blas_limit(threads: int | None):
    """At most ``threads`` BLAS threads inside the ``with`` block (nothing without threadpoolctl)."""
    if threads:
        with contextlib.suppress(ImportError):
            from threadpoolctl import threadpool_limits

            return threadpool_limits(threads)
    return contextlib.nullcontext()


def plan_scan(spec: ScanSpec, folder: str | os.PathLike, *, workers: int | None = None,
              calibrate: bool = False, blas_threads: int | None = 1, pack: bool = True,
              pack_replicas: int | None = None) -> ScanPlan:
    """The cells of ``spec`` not done in ``folder`` yet, and what they need: memory (the largest
    runs, ``workers`` of them at once: a packed group of cells is one run, ``pack``), disk (every
    cell file) and, with ``calibrate``, the time from a short calibration of each distinct cell
    shape (the family's :meth:`~mfphys.family.ModelFamily.calibrate`), timed with the BLAS threads
    the cells get (``blas_threads``: on a shared machine two threads can be several times slower
    than one). Reads file names (and the attributes of checkpoints) only; writes nothing."""
    from .. import budget
    from ..fileio import free_bytes
    from .folder import scan_status

    cells = spec.cells()
    status = {}
    if Path(folder, "scan.json").exists():
        status = scan_status(folder)["cells"]
    todo = tuple(c for c in cells if status.get(c.key) != "done")
    groups = _packed_groups(todo, _Paths(Path(folder)), pack_replicas or PACK_REPLICAS,
                            parallel=max(1, workers or 1)) if pack else []
    packed = {c.key for g in groups for c in g}
    # a cell file holds no optimiser state (state=False), where the family's files can leave it out
    ests = [registry.get(c.model).estimate(c.config, state=False) for c in todo]
    peaks = sorted([e.peak for c, e in zip(todo, ests) if c.key not in packed]
                   + [registry.get(g[0].model).packed_estimate([c.config for c in g]).peak for g in groups],
                   reverse=True)
    parallel = max(1, min(workers or 1, len(peaks) or 1))
    memory = sum(peaks[:parallel])
    seconds = None
    if calibrate and todo:
        steps: dict = {}
        total = 0.0
        for c in todo:
            family = registry.get(c.model)
            key = family.calibration_key(c.config)
            if key not in steps:
                with _blas_limit(blas_threads):
                    steps[key] = family.calibrate(c.config)
            total += family.seconds(c.config, steps[key])
        seconds = total / parallel
    return ScanPlan(len(cells), len(cells) - len(todo), todo, parallel, memory, sum(e.disk for e in ests), seconds,
                    budget.available_memory(), free_bytes(folder), tuple(len(g) for g in groups))


def _check_budget(plan: ScanPlan, folder: Path, remote: bool) -> None:
    """Refuse, before anything is written, a scan whose cells cannot fit in memory or on disk."""
    from .. import budget
    from ..fileio import check_free_space, mib

    if plan.todo and not remote and plan.free_memory is not None and plan.memory > budget.MARGIN * plan.free_memory:
        what = f"{plan.parallel} runs at once" if plan.parallel > 1 else "its largest run"
        raise MfphysError(f"not enough memory: {what} need(s) about {mib(plan.memory)}, but {mib(plan.free_memory)} "
                          f"is available; use fewer --replicas or --workers, or smaller cells "
                          f"(mfphys scan --dry-run shows the estimate)")
    if plan.todo:
        check_free_space(folder / "cells" / "cell.nc", plan.disk)


def run_scan(spec: ScanSpec, folder: str | os.PathLike, *, workers: int | None = None,
             scheduler: str | None = None, callback: Callable[[ScanEvent], None] | None = None,
             data_dir=None, retry_failed: bool = True, command: str | None = None,
             connect_timeout: float = 5.0, blas_threads: int | None = 1,
             reuse: Sequence[str | os.PathLike] = (),
             checkpoint: CheckpointPolicy | None = CheckpointPolicy(), pack: bool = True,
             pack_replicas: int | None = None, cluster: ClusterSpec | None = None) -> ScanReport:
    """Train every cell of ``spec`` that is not done yet into ``folder``; see :mod:`mfphys.scan`.

    ``workers``: run cells on a local Dask cluster of that many single-threaded processes;
    ``scheduler``: on the existing Dask cluster at that address; ``cluster``: on Dask workers in
    batch jobs this call submits (SLURM, PBS or SGE, :class:`ClusterSpec`) and cancels when it
    ends; none of them: here, one by one.
    ``retry_failed``: train cells recorded as failed again (default) or leave them failed.
    ``blas_threads``: BLAS threads per cell, wherever it runs (None: the library's default).
    OpenBLAS's results depend on its thread count, so the default 1 is what makes a cell's
    numbers the same sequentially, on a local cluster and on a remote one (on one machine
    type); on a multi-core CPU run cells in parallel with ``workers`` instead.
    ``reuse``: other scan folders whose finished cells of the same key and ``config_hash``
    are copied instead of trained (to grow a scan by a row or a column).
    ``checkpoint``: when a cell rewrites its checkpoint ``cells/<key>.partial.nc`` while it
    trains (None: never); a rerun resumes a half-trained cell from it (docs/scans.md).
    ``pack`` (default): train cells that their family can batch together (the same arrays, e.g.
    cells that differ in their seed only) as one computation each group, at most
    ``pack_replicas`` replicas (default :data:`PACK_REPLICAS`) and what fits in memory per group,
    GPU memory included (:func:`_packed_groups`); the cells' files, checkpoints and numbers are
    those of the cells trained alone, and a scan stopped in the middle of a group resumes every
    cell of it from its checkpoint (docs/scans.md, "Packed cells"). On Dask each group is one
    task, the groups first.
    Bad input (a folder that is not this scan's, missing data, an unreachable scheduler)
    raises :class:`MfphysError` before anything is written. Failed cells do not raise: see
    the returned :class:`ScanReport`.
    """
    t0 = time.perf_counter()
    if sum(x is not None for x in (workers, scheduler, cluster)) > 1:
        raise MfphysError("give one of --workers (a local Dask cluster), --scheduler (an existing one) or "
                          "--cluster (batch jobs)")
    check_scan_options(workers=workers, blas_threads=blas_threads, connect_timeout=connect_timeout)
    p = _Paths(Path(folder))
    name = spec.name or p.folder.name
    meta = _check_folder(spec, p)
    cells = spec.cells()
    data_dir = str(Path(data_dir).resolve()) if data_dir is not None else None

    sources = [_Paths(Path(r)) for r in reuse]
    for src in sources:
        read_scan_json(src.folder)  # a clear error if it is not a scan folder

    def classify(meta):
        """(done, failed before, to train, to copy) for the folder as it is now."""
        done, failed_old, todo, copies = [], [], [], []
        for cell in cells:
            if meta is not None and _cell_done(p, cell):
                done.append(cell)
            elif (src := next((s for s in sources if _cell_done(s, cell, foreign_ok=True)), None)) is not None:
                copies.append((cell, src))
            elif meta is not None and not retry_failed and p.failed(cell.key).exists():
                failed_old.append(cell)
            else:
                todo.append(cell)
        return done, failed_old, todo, copies

    done, failed_old, todo, copies = classify(meta)
    skipped_claimed = []
    plan = plan_scan(spec, p.folder, workers=workers, pack=pack, pack_replicas=pack_replicas)
    _check_budget(plan, p.folder, remote=scheduler is not None or cluster is not None)
    if todo and scheduler is None:
        _preflight(todo, data_dir)

    client = dask_cluster = None
    if todo and (workers is not None or scheduler is not None or cluster is not None):
        client, dask_cluster = _connect(workers, scheduler, connect_timeout, cluster,
                                        memory=plan.memory // max(plan.parallel, 1))
    owner = _owner()
    created = not p.folder.exists()
    lock = FolderLock(p, owner)
    try:
        make_folder(p.folder, what="scan folder")
        lock.__enter__()
        # again, now that no other scan process can change the folder: a scan that finished
        # between the first look and the lock leaves nothing to train
        meta = _check_folder(spec, p)
        done, failed_old, todo, copies = classify(meta)
        if meta is None:
            write_json_atomic({store.KIND_ATTR: KIND, "mfphys_version": __version__, "name": name,
                                "model": spec.model, "dims": list(spec.dims), "grid": spec.grid_dict,
                                "fixed": spec.fixed_dict,
                                **registry.get(spec.model).scan_meta(spec.fixed_dict),
                                "scan_hash": spec.scan_hash(), "created": utc_now(),
                                "command": command or "mfphys.scan.run_scan"}, p.scan_json)
        make_folder(p.cells, what="cells folder")
        _clean_stale(p)
        for cell, src in copies:  # the bytes of a finished cell, copied atomically
            _copy_atomic(src.nc(cell.key), p.nc(cell.key))
            done.append(cell)

        counts = {"total": len(cells), "done": len(done), "failed": len(failed_old), "running": 0,
                  "pending": len(todo)}
        failures = [(c.key, (read_json(p.failed(c.key)) or {}).get("error", "")) for c in failed_old]
        emit = callback or (lambda ev: None)
        emit(ScanEvent("begin", None, dict(counts)))

        def finish(cell, outcome, payload, where):
            counts["pending"] -= 1
            if outcome == "done":
                ds = _cell_dataset(cell, payload, command=command, fixed=spec.fixed_dict)
                ds.attrs.update(scan_cell=json.dumps(dict(cell.coords)), config_hash=cell.config_hash,
                                scan_name=name, scan_hash=spec.scan_hash(), mfphys_version=__version__,
                                trained_on=where, blas_threads=str(blas_threads or "default"))
                try:
                    store.write_atomic(ds, p.nc(cell.key))
                except MfphysError as exc:  # a full disk, say: this cell failed, the scan goes on
                    outcome, payload = "failed", _error_record(exc, cell)
                else:
                    _index_cell(p, ds, cell)
            if outcome == "done":
                for done_with in (p.failed(cell.key), p.partial(cell.key)):
                    with contextlib.suppress(FileNotFoundError):
                        done_with.unlink()
                counts["done"] += 1
                emit(ScanEvent("cell_done", cell, dict(counts)))
            else:
                with contextlib.suppress(MfphysError):  # the record itself may not fit on a full disk
                    write_json_atomic({**payload, "trained_on": where}, p.failed(cell.key))
                counts["failed"] += 1
                failures.append((cell.key, payload["error"]))
                emit(ScanEvent("cell_failed", cell, dict(counts), error=payload["error"]))
            with contextlib.suppress(FileNotFoundError):
                p.running(cell.key).unlink()

        # packed groups first, then the cells that train alone (a group of one), in scan order
        packs = _packed_groups(todo, p, pack_replicas or PACK_REPLICAS, parallel=max(1, workers or 1)) \
            if pack else []
        packed = {c.key for group in packs for c in group}
        groups = packs + [[c] for c in todo if c.key not in packed]
        if client is None:
            for group in groups:
                _run_pack(group, p, owner, data_dir, blas_threads, counts, emit, finish, skipped_claimed, checkpoint)
        else:
            _run_dask(client, groups, p, owner, data_dir, blas_threads, counts, emit, finish, skipped_claimed,
                      checkpoint)
        emit(ScanEvent("end", None, dict(counts)))
    except BaseException:
        if created and not p.scan_json.exists():
            _discard_new_folder(p, lock)
        raise
    finally:
        # this process's claims go whatever stopped it: also one that an interrupt caught between
        # claiming a cell and starting it, and the markers Dask workers wrote for it
        with contextlib.suppress(OSError):
            _remove_own_markers(p, owner)
        lock.__exit__()
        if client is not None:
            _close_dask(client, dask_cluster, quick=isinstance(sys.exc_info()[1], KeyboardInterrupt))
    return ScanReport(p.folder, len(cells), counts["done"], counts["failed"], len(todo), len(done) - len(copies),
                      len(copies), time.perf_counter() - t0, tuple(failures))


#: the most replicas a packed group trains at once (all its cells' replicas together)
PACK_REPLICAS = 64


def _checkpoint_epoch(p: _Paths, cell: Cell) -> int:
    """The epoch a cell's checkpoint (``cells/<key>.partial.nc``) holds, 0 without a usable one."""
    partial = p.partial(cell.key)
    if not partial.exists():
        return 0
    try:
        attrs = store.read_attrs(partial)
    except MfphysError:
        return 0
    if attrs.get("config_hash") != cell.config_hash:
        return 0
    try:
        return int(attrs.get("epochs_done", 0))
    except (TypeError, ValueError):
        return 0


def _packed_groups(todo: Sequence[Cell], p: _Paths, max_replicas: int, *,
                   device_free: int | None = None, parallel: int = 1) -> list[list[Cell]]:
    """The groups of two or more cells to train as one batched run each: cells whose family gives
    them the same :meth:`~mfphys.family.ModelFamily.pack_key` and whose checkpoints (left by a
    stopped scan) are after the same epoch (none: 0), in scan order, each group at most
    ``max_replicas`` replicas and small enough that its batched run fits in the memory available
    (the family's :meth:`~mfphys.family.ModelFamily.packed_estimate`, :data:`mfphys.budget.MARGIN`),
    the GPU's included (``device_free``: the free GPU memory; default that of a CuPy backend
    when the cells compute on one, :func:`_device_free`), with ``parallel`` runs at once
    (``--workers``) sharing it: a group gets its share, so that packing never makes a scan
    need more memory than its cells alone would take with as many runs at once."""
    from .. import budget

    by_key: dict = {}
    for cell in todo:
        key = registry.get(cell.model).pack_key(cell.config)
        if key is not None:
            by_key.setdefault((cell.model, key, _checkpoint_epoch(p, cell)), []).append(cell)
    free = budget.available_memory()
    free = None if free is None else free // parallel
    groups = []
    for (model, _, _), cells in by_key.items():
        if len(cells) < 2:
            continue
        family = registry.get(model)
        gpu = device_free if device_free is not None else _device_free(cells[0].config)
        gpu = None if gpu is None else gpu // parallel

        def fits(group, family=family, gpu=gpu):
            if sum(c.config.replicas for c in group) > max_replicas:
                return False
            estimate = family.packed_estimate([c.config for c in group])
            if gpu is not None and budget.device_estimate(estimate) > budget.MARGIN * gpu:
                return False
            return free is None or estimate.peak <= budget.MARGIN * free

        # in scan order, each group as large as fits: packed cells may differ in their data size
        # (the family's estimate of a group counts its largest), so every group is checked
        chunk: list = []
        for cell in cells:
            if chunk and not fits([*chunk, cell]):
                groups += [chunk] if len(chunk) > 1 else []
                chunk = []
            chunk.append(cell)
        groups += [chunk] if len(chunk) > 1 else []
    return groups


def _device_free(config) -> int | None:
    """Free memory of the GPU a configuration computes on (None: it computes on the CPU)."""
    from .. import budget
    from ..backend import get_backend

    backend = getattr(config, "backend", "numpy")
    if backend == "numpy":
        return None
    try:
        return budget.device_memory(get_backend(backend, getattr(config, "dtype", "float32")))
    except Exception:  # no GPU after all (auto on a CPU machine): host memory only
        return None


def _claim_group(group: list[Cell], p: _Paths, owner, counts, skipped, emit=None) -> list[Cell]:
    """The cells of ``group`` this process claims (:func:`claim_cell`); a cell another scan process
    trains counts as no longer pending here, is noted in ``skipped`` and, with ``emit``, ticks."""
    claimed = []
    for cell in group:
        if claim_cell(p, cell.key, owner):
            claimed.append(cell)
        else:  # another scan process trains it
            counts["pending"] -= 1
            skipped.append(cell.key)
            if emit is not None:
                emit(ScanEvent("tick", None, dict(counts)))
    return claimed


def _run_pack(group: list[Cell], p: _Paths, owner, data_dir, blas_threads, counts, emit, finish, skipped,
              checkpoint: CheckpointPolicy | None = None) -> None:
    """Claim the cells of a group (packed, or one cell alone), train them here as one run
    (checkpointed as each cell is alone) and write each cell as it would be written trained
    alone (the claims go whatever happens, an interrupt included). A packed group's epochs are
    reported as its first cell's."""
    claimed = _claim_group(group, p, owner, counts, skipped, emit)
    if not claimed:
        return
    try:
        counts["running"] = len(claimed)
        for cell in claimed:
            emit(ScanEvent("cell_start", cell, dict(counts)))
        outcomes = _train_pack(claimed, data_dir, [str(p.running(c.key)) for c in claimed], owner, blas_threads,
                               partials=[str(p.partial(c.key)) for c in claimed], checkpoint=checkpoint,
                               callback=lambda rec: emit(ScanEvent("epoch", claimed[0], dict(counts), rec)))
        for cell, (outcome, payload, where) in zip(claimed, outcomes):
            counts["running"] -= 1
            finish(cell, outcome, payload, where)
    finally:
        for cell in claimed:
            with contextlib.suppress(FileNotFoundError):
                p.running(cell.key).unlink()


def _train_pack(cells: list[Cell], data_dir, markers, owner: dict, blas_threads: int | None, *,
                partials=None, checkpoint: CheckpointPolicy | None = None, callback=None) -> list:
    """Train packed cells as one run: one ("done", result, where) per cell, checkpointed in
    ``partials`` as each cell is trained alone (and resumed from them, all after the same epoch)
    when this process sees the scan folder. When the packed run fails (one cell diverges, say),
    every cell is trained alone instead, from its own checkpoint, so each cell ends as it would
    have without packing."""
    if len(cells) == 1:
        return [_train_cell(cells[0], data_dir, markers[0], owner, blas_threads, callback,
                            None if partials is None else partials[0], checkpoint)]
    where = f"{socket.gethostname()}:{os.getpid()}"
    for marker in markers:
        if not Path(marker).parent.is_dir():  # a worker without the shared folder
            continue
        with contextlib.suppress(MfphysError):
            write_json_atomic({"pid": os.getpid(), "host": socket.gethostname(), "started": utc_now(), **owner},
                               Path(marker))
    limits = contextlib.nullcontext()
    if blas_threads:  # as in _train_cell: the thread count is part of the numbers
        with contextlib.suppress(ImportError):
            from threadpoolctl import threadpool_limits

            limits = threadpool_limits(blas_threads)
    alone = [None] * len(cells) if partials is None else partials
    try:
        with limits:
            family = registry.get(cells[0].model)
            if checkpoint is None or partials is None or not Path(partials[0]).parent.is_dir():
                results = family.train_packed([c.config for c in cells], data_dir=data_dir)
            else:
                plans = [_cell_plan(c, Path(f)) for c, f in zip(cells, partials)]
                if len({pl.state.epoch if pl.state is not None else 0 for pl in plans}) != 1 or \
                        len({pl.action for pl in plans}) != 1:
                    raise MfphysError("the cells' checkpoints are after different epochs")
                results = train_runs(plans, policy=checkpoint, data_dir=data_dir, callback=callback,
                                     initial_checkpoint=False, write_done=False, command=CHECKPOINT_COMMAND,
                                     attrs=[_checkpoint_attrs(c) for c in cells])
        return [("done", r, where) for r in results]
    except Exception:
        return [_train_cell(c, data_dir, None, owner, blas_threads, callback, f, checkpoint)
                for c, f in zip(cells, alone)]


def _run_dask(client, groups, p: _Paths, owner, data_dir, blas_threads, counts, emit, finish, skipped,
              checkpoint=None) -> None:
    """Claim the cells of every group (a packed group, or one cell alone) and train each group as
    one Dask task, biggest first (idle workers take the first ones); write each cell here as its
    group's results arrive."""
    from dask.distributed import wait

    tag = uuid.uuid4().hex[:8]
    futures = {}
    for group in sorted(groups, key=lambda g: sum(_cost(c) for c in g), reverse=True):
        claimed = _claim_group(group, p, owner, counts, skipped)
        if not claimed:
            continue
        kind = "pack" if len(claimed) > 1 else "cell"
        f = client.submit(_train_pack, claimed, data_dir, [str(p.running(c.key)) for c in claimed], owner,
                          blas_threads, partials=[str(p.partial(c.key)) for c in claimed], checkpoint=checkpoint,
                          key=f"mfphys-{kind}-{claimed[0].key}-{tag}",
                          priority=int(sum(_cost(c) for c in claimed)), pure=False)
        futures[f] = claimed
    pending = set(futures)
    while pending:
        try:
            finished, pending = wait(pending, timeout=0.5, return_when="FIRST_COMPLETED")
        except TimeoutError:
            finished = set()
        for f in finished:
            cells = futures.pop(f)
            if f.status == "finished":
                outcomes = f.result()
            else:  # the task itself crashed (a worker killed by the OOM killer: KilledWorker, say)
                outcomes = [("failed", _error_record(f.exception(), c), "dask") for c in cells]
            for cell, (outcome, payload, where) in zip(cells, outcomes):
                finish(cell, outcome, payload, where)
            f.release()
        # a worker adds "started" to a cell's marker (claimed at submission) when the cell starts
        counts["running"] = sum(1 for f, cells in futures.items() for c in cells
                                if f.status == "pending" and "started" in (read_json(p.running(c.key)) or {}))
        emit(ScanEvent("tick", None, dict(counts)))
