"""The ``mfphys`` command: typer app wiring the sub-commands together."""

from __future__ import annotations

import typer

from . import data as data_cmd
from . import train as train_cmd

app = typer.Typer(
    name="mfphys",
    help="Mean-field spike-and-slab ensembles of deep networks (Li & Huang, PRL 2020).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("train")(train_cmd.train)
app.add_typer(data_cmd.app, name="data")


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
