"""Front ends of mfphys: the typer CLI (``mfphys ...``) and the Textual TUI. UI code lives only here."""
