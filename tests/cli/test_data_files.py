"""``mfphys data where|verify``: what a user without the files is told, and output that survives a pipe."""

from __future__ import annotations

from mfphys import data as data_mod
from tests.helpers import one_error_line


def test_where_names_the_given_folder_and_what_it_lacks(tmp_path, cli):
    empty = tmp_path / "mnist-files"
    empty.mkdir()
    res = cli("data", "where", "--data-dir", empty)
    one_error_line(res, f"--data-dir {empty} does not hold mnist: missing train-images-idx3-ubyte", code=1)
    assert "t10k-labels-idx1-ubyte" in res.stderr and "cache" not in res.stderr.split("missing")[0]
    (tmp_path / "f").write_text("x")
    one_error_line(cli("data", "where", "--data-dir", tmp_path / "f"), "is a file, not a folder", code=1)


def test_where_without_files_says_how_to_get_them(tmp_path, cli):
    res = cli("data", "where", env={"MFPHYS_DATA_DIR": "", "XDG_CACHE_HOME": str(tmp_path)})
    cache = tmp_path / "mfphys" / "mnist"
    one_error_line(res, f"mnist not found (searched {cache}): run `mfphys data fetch mnist` to download it into "
                        f"{cache}, or, offline, copy train-images-idx3-ubyte.gz", code=1)


def test_a_missing_env_folder_is_named(tmp_path, cli):
    res = cli("data", "where", env={"MFPHYS_DATA_DIR": str(tmp_path / "typo")})
    one_error_line(res, f"MFPHYS_DATA_DIR={tmp_path / 'typo'} does not exist")


def test_piped_verify_prints_whole_file_names(mnist_dir, tmp_path, cli):
    """CliRunner's stdout is not a terminal, as with `| less` or `> file`: nothing may be cut."""
    deep = tmp_path / ("a-rather-long-folder-name-" * 4) / "mnist"
    deep.mkdir(parents=True)
    for f in data_mod._files_in(mnist_dir).values():
        (deep / f.name).symlink_to(f)
    res = cli("data", "verify", "--data-dir", deep)
    assert res.exit_code == 0, res.output
    for f in data_mod._files_in(deep).values():
        (line,) = [x for x in res.stdout.splitlines() if f.name in x]
        assert str(f) in line and line.count("yes") == 1
