"""The ``mfphys`` command: typer app wiring the sub-commands together."""

from __future__ import annotations

import inspect

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


def unwrap(text: str | None) -> str | None:
    """A docstring for ``--help``: single line breaks inside a paragraph joined, so that the
    terminal wraps each paragraph to its own width (typer keeps them, which at 80 columns
    breaks lines twice); indented lines (examples) and blank lines stay as they are."""
    if not text:
        return text
    out: list[str] = []
    for line in inspect.cleandoc(text).split("\n"):
        joinable = out and out[-1] and line and not line[0].isspace() and not out[-1][0].isspace()
        if joinable:
            out[-1] += " " + line
        else:
            out.append(line)
    return "\n".join(out)


@app.command()
def version():
    """Print the package version and the backend that --backend auto would pick."""
    from mfphys import __version__
    from mfphys.backend import gpu_status

    ok, why = gpu_status()
    typer.echo(f"mfphys {__version__}; GPU: {'yes' if ok else 'no'} ({why})")


def _unwrap_help(typer_app) -> None:
    for info in typer_app.registered_commands:
        if info.help is None and info.callback is not None:
            info.help = unwrap(info.callback.__doc__)
    for group in typer_app.registered_groups:
        _unwrap_help(group.typer_instance)


_unwrap_help(app)


def main():  # console-script entry point
    app()


if __name__ == "__main__":
    main()
