"""Screenshots to look at: the TUI at 80x24 (SVG) and the run view's exported figures (PNG).

    python bench/screens.py bench/results/screens      # writes SVGs and PNGs there

It trains a small MNIST-shaped teacher run (gBP, 3 replicas, 12 epochs) and its BP baseline
(20 epochs: longer than the gBP run, as happens), a 2 x 2 scan, then photographs the TUI at
80 x 24 on the run view, the scan view and the runs table with its settings columns (``c``),
and exports the run view's figures (``e``): the curves (train loss on a log axis where it spans
decades, the BP baseline dashed grey), the dynamics (the BP baseline's constant VIP fraction of 1
in the legend, not squashing the axis) and a histogram (log counts).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_folder(root: Path) -> None:
    from mfphys import store
    from mfphys.scan import run_scan, spec_from_options
    from mfphys.train import TrainConfig, train

    base = dict(dataset="teacher", layers=(100, 50, 50, 10), n_train=2000, n_test=1000, batch_size=100,
                replicas=3, backend="numpy", eval_samples=3)
    for name, mode, epochs, tags in (("demo-gbp", "gbp", 12, ["demo"]), ("demo-bp", "bp", 20, ["demo", "baseline"])):
        ds = store.run_to_dataset(train(TrainConfig(**base, mode=mode, epochs=epochs)), name=name, tags=tags,
                                  note="screenshot run")
        store.write_atomic(ds, root / f"{name}.nc")
    ds = store.run_to_dataset(train(TrainConfig(**{**base, "lr": 0.05}, epochs=6)), name="demo-lr005", tags=["demo"])
    store.write_atomic(ds, root / "demo-lr005.nc")
    spec = spec_from_options({"dataset": "teacher", "input_dim": "100", "width": "50", "depth": "1,2",
                              "n_train": "500,1000", "epochs": "4", "replicas": "2", "n_test": "500",
                              "backend": "numpy", "eval_samples": "2"})
    run_scan(spec, root / "scan")


async def shoot(root: Path, out: Path) -> list[Path]:
    from mfphys.cli.tui.app import MfphysTUI

    written = []
    app = MfphysTUI(root, interval=0, export_dir=out)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(40):
            await pilot.pause(0.1)
            if app.shown_entries:
                break

        async def settle():
            for _ in range(20):
                await pilot.pause(0.1)
                if app._loading is None:
                    break
            await pilot.pause(0.3)

        async def select(name):
            names = [e.name for e in app.shown_entries]
            target = names.index(name)
            current = names.index(app.current.name) if app.current is not None else 0
            key = "down" if target >= current else "up"
            app.query_one("#entries").focus()
            for _ in range(abs(target - current)):
                await pilot.press(key)
            await settle()

        await select("demo-gbp")
        written.append(Path(app.save_screenshot(str(out / "tui-80x24-run.svg"))))
        await pilot.press("e")
        await settle()
        await select("scan")
        written.append(Path(app.save_screenshot(str(out / "tui-80x24-scan.svg"))))
        await pilot.press("t")
        await settle()
        await pilot.press("c")
        await settle()
        written.append(Path(app.save_screenshot(str(out / "tui-80x24-runs-table.svg"))))
    return written


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/screens").resolve()
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        root.mkdir()
        make_folder(root)
        written = asyncio.run(shoot(root, out))
    for p in sorted(out.glob("*.png")):
        written.append(p)
    for p in written:
        print(p)
    shutil.rmtree(out / "__pycache__", ignore_errors=True)


if __name__ == "__main__":
    main()
