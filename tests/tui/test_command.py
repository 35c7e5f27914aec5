"""The command ``mfphys tui`` (cli/tui/__init__.py): its arguments, before any terminal UI starts."""

from __future__ import annotations


def test_cli_refuses_a_missing_folder_in_one_line(tmp_path, cli):
    result = cli("tui", tmp_path / "nope")
    assert result.exit_code != 0
    assert "no such folder" in result.output and "Traceback" not in result.output


def test_help_lists_the_options(cli):
    result = cli("tui", "--help")
    assert result.exit_code == 0
    assert "--export-dir" in result.output and "--interval" in result.output


def test_cli_refuses_a_file_that_is_not_a_run_file_in_one_line(tmp_path, cli):
    (tmp_path / "notes.txt").write_text("hello")
    result = cli("tui", tmp_path / "notes.txt")
    assert result.exit_code != 0
    assert "not a run file" in result.output and "Traceback" not in result.output
