"""Opening a large scan: ``open_scan`` with and without the scan index, and the TUI's first picture.

    python bench/bench_scan_index.py                       # 10,000 cells in /tmp/mfphys-bench-scan
    python bench/bench_scan_index.py --cells 2000 --folder /tmp/s/bench-scan --sample 0

Generates (once; kept for reruns) a scan of depth 1-4 x n_train (25 values) x seed (``--cells``
/ 100 values): scan.json as ``mfphys scan`` writes it, and one genuine cell file per cell. One
tiny teacher run per depth is trained for real; each cell file is a copy of its depth's run with
the attributes ``run_scan`` gives a cell (``scan_cell``, ``config_hash``, ``config``,
``scan_hash``, ``scan_name``), so every file has the format, size and attributes of a real cell
(only the numbers are shared between cells of one depth); the index records are those
``run_scan`` appends as each cell is written. Then, each in a fresh process (the
files in the page cache, as on a machine that just wrote them):

* ``no index``: ``open_scan(folder, index=False)`` reads every cell file (as before the index),
  timed on a copy of the scan that holds ``--sample`` of its cells (the others pending), and
  scaled to the whole scan;
* ``rebuild``: ``open_scan`` of that copy without ``cells.index``: reads every cell file and
  writes the index (what a reader does when the index is missing);
* ``cold``: ``open_scan(folder)`` with the index; ``warm``: a second call in the same process;
* ``tui``: the TUI started on the folder's parent (``App.run_test``), from start to the first
  heatmap of the scan drawn (``Heatmap.grid`` set), the index present.

Prints one line per measurement, with the process's CPU time (user + system, all threads: close
to the wall time on a quiet machine, and much less sensitive to other jobs) and the load
average; ``--json`` writes them to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

FIXED = dict(dataset="teacher", input_dim=20, width=16, epochs=10, batch_size=100, replicas=2, n_test=200,
             backend="numpy", eval_samples=2)


def spec_for(n_cells: int):
    from mfphys import scan

    seeds = max(1, n_cells // 100)
    return scan.ScanSpec.build({"depth": [1, 2, 3, 4], "n_train": list(range(100, 2600, 100)),
                                "seed": list(range(seeds))}, FIXED, name="bench-scan")


def generate(folder: Path, n_cells: int) -> None:
    """The scan folder: scan.json and one genuine cell file per cell (see the module docstring)."""
    import dataclasses

    import netCDF4

    from mfphys import __version__, registry, store
    from mfphys.fileio import utc_now, write_json_atomic
    from mfphys.scan.index import append
    from mfphys.scan.view import _cell_summary, cell_record
    from mfphys.train import train

    spec = spec_for(n_cells)
    if (folder / "scan.json").exists() and (folder / "cells.index").exists() \
            and len(list((folder / "cells").glob("*.nc"))) == len(spec.cells()):
        return
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "cells").mkdir(parents=True)
    write_json_atomic({store.KIND_ATTR: "scan", "mfphys_version": __version__, "name": spec.name,
                       "model": spec.model, "dims": list(spec.dims), "grid": spec.grid_dict,
                       "fixed": spec.fixed_dict, **registry.get(spec.model).scan_meta(spec.fixed_dict),
                       "scan_hash": spec.scan_hash(), "created": utc_now(),
                       "command": "bench/bench_scan_index.py"}, folder / "scan.json")
    templates = {}
    t0 = time.perf_counter()
    records = []
    for cell in spec.cells():
        depth = dict(cell.coords)["depth"]
        if depth not in templates:
            path = folder / f".template-{depth}.nc"
            cfg = dataclasses.replace(cell.config, n_train=200, seed=0)
            store.write_atomic(store.run_to_dataset(train(cfg)), path)
            templates[depth] = (path, _cell_summary(str(path), 0, 0))
        path = folder / "cells" / f"{cell.key}.nc"
        shutil.copyfile(templates[depth][0], path)
        attrs = {"scan_cell": json.dumps(dict(cell.coords)), "config_hash": cell.config_hash,
                 "config": cell.config.to_json(), "scan_name": spec.name,
                 "scan_hash": spec.scan_hash(), "trained_on": "bench", "blas_threads": "1"}
        with netCDF4.Dataset(path, "a") as nc:  # the attributes run_scan gives a cell file
            nc.setncatts(attrs)
        # the record run_scan appends to the index as the cell is written
        summary = templates[depth][1].copy()
        summary.attrs.update(attrs)
        st = path.stat()
        records.append(cell_record(summary, cell.key, cell.coords, (st.st_mtime_ns, st.st_size)))
        if len(records) == 100:
            append(folder / "cells.index", records)
            records = []
    append(folder / "cells.index", records)
    for path, _ in templates.values():
        path.unlink()
    print(f"generated {len(spec.cells())} cells in {time.perf_counter() - t0:.0f} s", flush=True)


OPEN = """
import sys, time, json
t0 = time.perf_counter()
from mfphys import scan
ds = scan.open_scan(sys.argv[1], index=sys.argv[2] == "1")
t1, c1 = time.perf_counter(), time.process_time()
ds2 = scan.open_scan(sys.argv[1], index=sys.argv[2] == "1")
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({"first": t1 - t0, "second": t2 - t1, "cpu_first": c1, "cpu_second": c2 - c1,
                  "done": int((ds.status == "done").sum())}))
"""

TUI = """
import asyncio, sys, time, json
from pathlib import Path
t0 = time.perf_counter()

async def main():
    from mfphys.cli.tui.app import MfphysTUI
    from mfphys.cli.tui.app import EntryList
    from mfphys.cli.tui.widgets import Heatmap
    app = MfphysTUI(Path(sys.argv[1]).parent, interval=0)
    async with app.run_test(size=(120, 40)) as pilot:
        while not any(e.name == Path(sys.argv[1]).name for e in app.shown_entries):
            await pilot.pause(0.01)
        names = [e.name for e in app.shown_entries]
        app.query_one("#entries", EntryList).highlighted = names.index(Path(sys.argv[1]).name)
        while True:
            heats = list(app.query(Heatmap))
            if heats and getattr(heats[0], "grid", None) is not None:
                break
            await pilot.pause(0.01)
        await pilot.pause()
        return heats[0].grid.mean.shape

shape = asyncio.run(main())
print(json.dumps({"first": time.perf_counter() - t0, "cpu_first": time.process_time(), "shape": list(shape)}))
"""


def run(code: str, *args) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=10_000, help="cells of the generated scan (a multiple of 100)")
    ap.add_argument("--folder", type=Path, default=Path("/tmp/mfphys-bench-scan/bench-scan"))
    ap.add_argument("--sample", type=int, default=500, help="cells of the copy on which reading every cell file "
                                                          "is timed (0: not timed)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    generate(args.folder, args.cells)
    results = {"cells": args.cells, "load_before": os.getloadavg()}
    if args.sample:
        # reading every cell file: timed on a copy holding `sample` of the cells (the others pending)
        sample = args.folder.with_name(args.folder.name + f"-sample{args.sample}")
        if not sample.exists():
            (sample / "cells").mkdir(parents=True)
            shutil.copy2(args.folder / "scan.json", sample / "scan.json")
            names = sorted(p.name for p in (args.folder / "cells").glob("*.nc"))
            for name in names[:: max(1, len(names) // args.sample)][: args.sample]:
                shutil.copy2(args.folder / "cells" / name, sample / "cells" / name)
        scale = args.cells / args.sample
        r = run(OPEN, sample, 0)
        results["no_index_cold_sample"], results["no_index_warm_sample"] = r["first"], r["second"]
        print(f"no index:  cold {r['first']:.2f} s (cpu {r['cpu_first']:.2f} s), warm {r['second']:.2f} s for "
              f"{r['done']} cells (x {scale:g}: {r['first'] * scale:.0f} s, cpu {r['cpu_first'] * scale:.0f} s)",
              flush=True)
        (sample / "cells.index").unlink(missing_ok=True)
        r = run(OPEN, sample, 1)
        results["rebuild_sample"] = r["first"]
        print(f"rebuild:   {r['first']:.2f} s (cpu {r['cpu_first']:.2f} s) for {r['done']} cells, index written "
              f"(x {scale:g}: {r['first'] * scale:.0f} s, cpu {r['cpu_first'] * scale:.0f} s)", flush=True)
    for _ in range(3):
        r = run(OPEN, args.folder, 1)
        results.setdefault("index_cold", []).append(r["first"])
        results.setdefault("index_warm", []).append(r["second"])
        results.setdefault("index_cold_cpu", []).append(r["cpu_first"])
        print(f"index:     cold {r['first']:.2f} s (cpu {r['cpu_first']:.2f} s), warm {r['second']:.2f} s "
              f"(cpu {r['cpu_second']:.2f} s) ({r['done']} cells done)", flush=True)
    for _ in range(2):
        r = run(TUI, args.folder)
        results.setdefault("tui_first_picture", []).append(r["first"])
        results.setdefault("tui_first_picture_cpu", []).append(r["cpu_first"])
        print(f"tui:       first picture {r['first']:.2f} s (cpu {r['cpu_first']:.2f} s, heatmap {r['shape']})",
              flush=True)
    results["load_after"] = os.getloadavg()
    print(f"load average before {results['load_before']}, after {results['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
