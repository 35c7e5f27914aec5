"""The ``mfphys`` command: typer app wiring the sub-commands together."""

from __future__ import annotations

import typer

from . import data_files as data_cmd
from . import order as order_cmd
from . import reproduce as reproduce_cmd
from . import scan as scan_cmd
from . import train as train_cmd
from . import tui as tui_cmd

app = typer.Typer(
    name="mfphys",
    help="Mean-field spike-and-slab ensembles of deep networks (Li & Huang, PRL 2020).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("train")(train_cmd.train)
app.command("order")(order_cmd.order)
app.command("perturb")(order_cmd.perturb)
app.command("scan")(scan_cmd.scan)
app.command("scan-plot")(scan_cmd.scan_plot)
app.add_typer(data_cmd.app, name="data")
app.command("tui")(tui_cmd.tui)
app.command("reproduce")(reproduce_cmd.reproduce)


@app.command()
def version():
    """Print the package version and the backend that --backend auto would pick."""
    from mfphys import __version__
    from mfphys.backend import gpu_status

    ok, why = gpu_status()
    typer.echo(f"mfphys {__version__}; GPU: {'yes' if ok else 'no'} ({why})")


def main():  # console-script entry point
    app()


if __name__ == "__main__":
    main()
