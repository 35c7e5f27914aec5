"""Tests of mfphys.data: IDX reading, MNIST search/verification/download, teacher data.

Offline and fast: real MNIST comes from the read-only folder of conftest's ``mnist_dir``
fixture ($MFPHYS_DATA_DIR, else the CI's data folder), every other file is
written under tmp_path, and the download mirrors point at an unreachable address or at a
local ``file://`` folder, never at the network.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from mfphys import data
from mfphys.errors import MfphysError

# independent copy of the published values (the table in docs/data.md; the oracle, not the module's own table)
README_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
README_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
README_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
UNREACHABLE = "http://127.0.0.1:9/"
STEMS = data.IDX_FILES


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """No user cache, no env data folder, no system folders, no network, for every test.

    (conftest's session-scoped ``mnist_dir`` reads MFPHYS_DATA_DIR before this runs.)
    """
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    monkeypatch.delenv("MFPHYS_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "MIRRORS", {"mnist": (UNREACHABLE,), "fashion-mnist": (UNREACHABLE,)})
    monkeypatch.setattr(data, "SYSTEM_DIRS", {"mnist": (), "fashion-mnist": (tmp_path_factory.mktemp("none"),)})
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT_S", 2.0)


def _real(src: Path, stem: str) -> Path:
    """The real file of ``stem`` in ``src`` (.gz or uncompressed, whichever is there)."""
    return data._files_in(src)[stem]


def _raw(src: Path, stem: str) -> bytes:
    """Uncompressed bytes of the real file of ``stem``."""
    path = _real(src, stem)
    return gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()


def _link_folder(src: Path, dst: Path, skip=(), *, gz: bool = False) -> Path:
    """A folder of symlinks to the real files (nothing is written to src).

    With ``gz`` every file is named ``<stem>.gz`` (a download mirror): uncompressed
    originals are then compressed into dst instead of linked.
    """
    dst.mkdir(parents=True, exist_ok=True)
    for stem in STEMS:
        if stem in skip:
            continue
        path = _real(src, stem)
        if path.name.endswith(".gz"):
            (dst / f"{stem}.gz").symlink_to(path)
        elif gz:
            (dst / f"{stem}.gz").write_bytes(gzip.compress(path.read_bytes(), compresslevel=1))
        else:
            (dst / stem).symlink_to(path)
    return dst


def _idx_bytes(arr: np.ndarray, code: int) -> bytes:
    """Our own IDX encoder, to test the reader against."""
    head = bytes([0, 0, code, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


# --------------------------------------------------------------------------- real MNIST


def test_mnist_shapes_dtypes_ranges(mnist_dir):
    ds = data.load_dataset("mnist", data_dir=mnist_dir)
    assert ds.name == "mnist" and ds.n_classes == 10 and ds.input_dim == 784
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.y_train.shape == (60000,) and ds.y_test.shape == (10000,)
    for x in (ds.x_train, ds.x_test):
        assert x.dtype == np.float32 and x.flags.c_contiguous
        assert x.min() == 0.0 and x.max() == 1.0
    for y in (ds.y_train, ds.y_test):
        assert y.dtype == np.int64 and y.min() == 0 and y.max() == 9
    # pixels / 255 exactly: every value is k/255 for an integer k
    k = ds.x_test[:100] * np.float32(255)
    np.testing.assert_allclose(k, np.round(k), atol=1e-4)
    assert len(ds.checksum) == 64 and int(ds.checksum, 16) >= 0
    assert ds.source == str(mnist_dir)


def test_mnist_arrays_are_read_only(mnist_dir):
    ds = data.load_dataset("mnist", data_dir=mnist_dir, n_train=10)
    with pytest.raises(ValueError):
        ds.x_train[0, 0] = 1.0
    with pytest.raises(ValueError):
        ds.y_test[0] = 1


def test_mnist_class_counts_match_readme(mnist_dir):
    ds = data.load_dataset("mnist", data_dir=mnist_dir)
    assert np.bincount(ds.y_train, minlength=10).tolist() == README_TRAIN_COUNTS
    assert np.bincount(ds.y_test, minlength=10).tolist() == README_TEST_COUNTS


def test_first_n_slicing(mnist_dir):
    full = data.load_dataset("mnist", data_dir=mnist_dir)
    part = data.load_dataset("mnist", data_dir=mnist_dir, n_train=10000, n_test=500)
    assert part.x_train.shape == (10000, 784) and part.x_test.shape == (500, 784)
    np.testing.assert_array_equal(part.x_train, full.x_train[:10000])
    np.testing.assert_array_equal(part.y_train, full.y_train[:10000])
    np.testing.assert_array_equal(part.y_test, full.y_test[:500])
    assert part.x_train.flags.c_contiguous
    summary = data.dataset_summary(part)
    assert summary == {
        "name": "mnist",
        "P": 10000,
        "P_test": 500,
        "N0": 784,
        "n_classes": 10,
        "checksum": full.checksum,
        "source": str(mnist_dir),
    }


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_train": 70000}, "--n-train 70000 is larger than the 60000 training images of mnist"),
        ({"n_train": 0}, "--n-train must be positive"),
        ({"n_train": -5}, "--n-train must be positive"),
        ({"n_train": 2.5}, "--n-train must be a whole number"),
        ({"n_test": 10001}, "--n-test 10001 is larger than the 10000 test images of mnist"),
        ({"n_test": 0}, "--n-test must be positive"),
    ],
)
def test_bad_sizes(mnist_dir, kwargs, message):
    with pytest.raises(MfphysError, match=message):
        data.load_dataset("mnist", data_dir=mnist_dir, **kwargs)


def test_unknown_dataset_lists_choices():
    with pytest.raises(MfphysError, match="unknown dataset 'cifar'.*mnist, fashion-mnist, teacher"):
        data.load_dataset("cifar")
    with pytest.raises(MfphysError, match="choose one of"):
        data.where("cifar")


def test_name_spellings_accepted(mnist_dir):
    assert data.where("MNIST", data_dir=mnist_dir) == mnist_dir
    assert data.load_dataset(" Mnist ", data_dir=mnist_dir, n_train=3).name == "mnist"
    with pytest.raises(MfphysError, match="fashion-mnist not found"):
        data.load_dataset("Fashion_MNIST", download=False)


def test_dead_inputs_first_10000_mnist(mnist_dir):
    """docs/model.md section 6 says about 111; measured: exactly 111 (67 over all 60,000)."""
    ds = data.load_dataset("mnist", data_dir=mnist_dir, n_train=10000)
    dead = data.dead_inputs(ds.x_train)
    assert dead.shape == (784,) and dead.dtype == bool
    assert int(dead.sum()) == 111
    # dead pixels are 0 in every image and lie at the border (the whole top row), none in the centre
    assert np.all(ds.x_train[:, dead] == 0)
    img = dead.reshape(28, 28)
    assert img[0].all() and not img[4:24, 4:24].any()
    # more images can only revive pixels
    full = data.dead_inputs(data.load_dataset("mnist", data_dir=mnist_dir).x_train)
    assert not np.any(full & ~dead) and int(full.sum()) == 67


def test_dead_inputs_synthetic():
    x = np.array([[0.0, 1.0, 3.0], [0.0, 2.0, 3.0], [0.0, 1.0, 3.0]])
    assert data.dead_inputs(x).tolist() == [True, False, True]
    assert data.dead_inputs(x[:1]).tolist() == [True, True, True]
    with pytest.raises(ValueError):
        data.dead_inputs(np.zeros((0, 3)))


# --------------------------------------------------------------------------- verification


def test_verify_real_files(mnist_dir):
    rows = data.verify("mnist", data_dir=mnist_dir)
    assert [Path(f).name.removesuffix(".gz") for f, _, _ in rows] == list(STEMS)
    assert [sha for _, sha, _ in rows] == [README_SHA256[s] for s in STEMS]
    assert all(ok for _, _, ok in rows)
    assert data.SHA256["mnist"] == README_SHA256


def test_corrupted_copy_fails_verification(mnist_dir, tmp_path):
    folder = _link_folder(mnist_dir, tmp_path / "bad", skip=("t10k-labels-idx1-ubyte",))
    raw = bytearray(_raw(mnist_dir, "t10k-labels-idx1-ubyte"))
    raw[100] = (raw[100] + 1) % 10  # still a valid IDX file with valid labels: only the hash can tell
    bad = folder / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(bytes(raw)))
    assert data.read_idx(bad).shape == (10000,)
    with pytest.raises(MfphysError, match=r"t10k-labels-idx1-ubyte\.gz failed verification"):
        data.load_dataset("mnist", data_dir=folder)
    rows = data.verify("mnist", data_dir=folder)
    assert [ok for _, _, ok in rows] == [True, True, True, False]
    assert rows[3][1] != README_SHA256["t10k-labels-idx1-ubyte"]


def test_gz_and_raw_read_the_same(mnist_dir, tmp_path):
    folder = _link_folder(mnist_dir, tmp_path / "mixed", skip=("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))
    for s in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / s).write_bytes(_raw(mnist_dir, s))
        (folder / f"{s}.gz").write_bytes(gzip.compress(_raw(mnist_dir, s), compresslevel=1))
        np.testing.assert_array_equal(data.read_idx(folder / s), data.read_idx(folder / f"{s}.gz"))
        (folder / f"{s}.gz").unlink()
    assert data.read_idx(folder / "t10k-images-idx3-ubyte").shape == (10000, 28, 28)
    assert data.where("mnist", data_dir=folder) == folder
    mixed = data.load_dataset("mnist", data_dir=folder, n_train=100)
    ref = data.load_dataset("mnist", data_dir=mnist_dir, n_train=100)
    # the checksum is of the uncompressed bytes, so compression does not change it
    assert mixed.checksum == ref.checksum
    np.testing.assert_array_equal(mixed.x_test, ref.x_test)
    assert all(ok for _, _, ok in data.verify("mnist", data_dir=folder))


# --------------------------------------------------------------------------- read_idx


@pytest.mark.parametrize(
    "code, dtype",
    [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32), (0x0D, np.float32), (0x0E, np.float64)],
)
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trip(tmp_path, code, dtype, compress):
    offset = 0 if code == 0x08 else 7  # negative values too, except for the unsigned type
    arr = (np.arange(24).reshape(2, 3, 4) - offset).astype(dtype)
    raw = _idx_bytes(arr, code)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    out = data.read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


GOOD = _idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4), 0x08)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "not an IDX file"),
        (b"\x00\x00", "not an IDX file"),
        (b"\x01\x00\x08\x01" + GOOD[4:], "bad magic number"),
        (GOOD[:2] + b"\x0a" + GOOD[3:], "unknown element type"),
        (b"\x00\x00\x08\x00", "zero dimensions"),
        (GOOD[:6], "truncated: header"),
        (GOOD[:-1], "truncated: shape"),
        (GOOD + b"\x00", "malformed"),
    ],
)
def test_malformed_idx(tmp_path, raw, message):
    path = tmp_path / "broken-idx"
    path.write_bytes(raw)
    with pytest.raises(MfphysError, match=message) as err:
        data.read_idx(path)
    assert "broken-idx" in str(err.value) and "\n" not in str(err.value)


def test_truncated_gzip(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(GOOD)[:-10])
    with pytest.raises(MfphysError, match=r"cut\.gz is a damaged or truncated gzip"):
        data.read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(MfphysError, match="cannot read"):
        data.read_idx(tmp_path / "nope")


# --------------------------------------------------------------------------- search order


def test_data_dir_takes_precedence_over_env(mnist_dir, tmp_path, monkeypatch):
    env_dir = _link_folder(mnist_dir, tmp_path / "env")
    arg_dir = _link_folder(mnist_dir, tmp_path / "arg")
    monkeypatch.setenv("MFPHYS_DATA_DIR", str(env_dir))
    assert data.load_dataset("mnist", data_dir=arg_dir, n_train=10).source == str(arg_dir)
    assert data.load_dataset("mnist", n_train=10).source == str(env_dir)
    assert data.where("mnist") == env_dir


def test_explicit_data_dir_without_files_is_an_error(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MFPHYS_DATA_DIR", str(mnist_dir))
    partial = _link_folder(mnist_dir, tmp_path / "partial", skip=("t10k-labels-idx1-ubyte",))
    with pytest.raises(MfphysError, match=r"does not hold mnist: missing t10k-labels-idx1-ubyte"):
        data.load_dataset("mnist", data_dir=partial)
    with pytest.raises(MfphysError, match="does not exist"):
        data.load_dataset("mnist", data_dir=tmp_path / "nowhere")
    assert data.where("mnist", data_dir=partial) is None


def test_env_folder_that_does_not_exist_is_an_error_not_a_download(tmp_path, monkeypatch):
    """A typo in MFPHYS_DATA_DIR must not end in a download (or in "set MFPHYS_DATA_DIR")."""
    monkeypatch.setenv("MFPHYS_DATA_DIR", str(tmp_path / "typo"))
    monkeypatch.setattr(data, "fetch", lambda name: pytest.fail("no download may be tried"))
    for call in (lambda: data.load_dataset("mnist"), lambda: data.where("mnist"), lambda: data.verify("mnist")):
        with pytest.raises(MfphysError, match=rf"MFPHYS_DATA_DIR={tmp_path / 'typo'} does not exist: point it at"):
            call()
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("MFPHYS_DATA_DIR", str(tmp_path / "a-file"))
    with pytest.raises(MfphysError, match="MFPHYS_DATA_DIR=.* is a file, not a folder"):
        data.where("mnist")
    assert data.load_dataset("teacher", n_train=10, teacher=data.TeacherConfig(n_in=5)).x_train.shape == (10, 5)


def test_data_dir_that_is_a_file_says_so(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(MfphysError, match=r"--data-dir .*f is a file, not a folder"):
        data.load_dataset("mnist", data_dir=tmp_path / "f")


def test_not_found_message_names_the_folder_and_what_to_do(mnist_dir, tmp_path):
    partial = _link_folder(mnist_dir, tmp_path / "partial", skip=("t10k-labels-idx1-ubyte",))
    msg = data.not_found_message("mnist", partial)
    assert str(partial) in msg and "missing t10k-labels-idx1-ubyte" in msg and "train-images" not in msg
    msg = data.not_found_message("mnist")
    assert f"searched {data.cache_dir('mnist')}" in msg and "mfphys data fetch mnist" in msg
    assert "train-images-idx3-ubyte.gz" in msg and "\n" not in msg


def test_env_subfolder_and_cache(mnist_dir, tmp_path, monkeypatch):
    root = tmp_path / "datasets"
    _link_folder(mnist_dir, root / "mnist")
    monkeypatch.setenv("MFPHYS_DATA_DIR", str(root))
    assert data.where("mnist") == root / "mnist"
    monkeypatch.delenv("MFPHYS_DATA_DIR")
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
    assert data.cache_dir("mnist") == xdg / "mfphys" / "mnist"
    assert data.where("mnist") is None
    _link_folder(mnist_dir, xdg / "mfphys" / "mnist")
    assert data.load_dataset("mnist", n_train=5).source == str(xdg / "mfphys" / "mnist")


def test_cache_dir_default_and_relative_xdg(monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data.cache_dir("fashion-mnist") == Path.home() / ".cache" / "mfphys" / "fashion-mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid per the XDG spec: ignored
    assert data.cache_dir("mnist") == Path.home() / ".cache" / "mfphys" / "mnist"


def test_mnist_files_are_not_taken_for_fashion(mnist_dir, monkeypatch):
    monkeypatch.setenv("MFPHYS_DATA_DIR", str(mnist_dir))
    assert data.where("mnist") == mnist_dir
    assert data.where("fashion-mnist") is None  # the search skips them and goes on
    with pytest.raises(MfphysError, match="is the MNIST file, not fashion-mnist"):
        data.load_dataset("fashion-mnist", data_dir=mnist_dir)


def test_debian_fashion_folder_is_searched(tmp_path, monkeypatch):
    debian = tmp_path / "usr-share-datasets-fashion-mnist"
    debian.mkdir()
    for s in STEMS:
        (debian / f"{s}.gz").write_bytes(b"")
    monkeypatch.setattr(data, "SYSTEM_DIRS", {"mnist": (), "fashion-mnist": (debian,)})
    assert data.where("fashion-mnist") == debian
    assert data.where("mnist") is None


def test_fashion_structure_check(tmp_path):
    """Fashion-MNIST has no hash table: a wrong shape must still be caught."""
    folder = tmp_path / "fm"
    folder.mkdir()
    for s in STEMS:
        n = 10000 if s.startswith("t10k") else 60000
        arr = np.zeros((n, 28, 28) if "images" in s else (n,), np.uint8)
        if s == "t10k-images-idx3-ubyte":
            arr = np.zeros((10000, 28, 27), np.uint8)
        (folder / s).write_bytes(_idx_bytes(arr, 0x08))
    with pytest.raises(MfphysError, match=r"t10k-images-idx3-ubyte failed verification: .*\(10000, 28, 27\)"):
        data.load_dataset("fashion-mnist", data_dir=folder)
    assert [ok for _, _, ok in data.verify("fashion-mnist", data_dir=folder)] == [True, True, False, True]


# --------------------------------------------------------------------------- download


def test_offline_download_gives_helpful_error(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(MfphysError) as err:
        data.load_dataset("mnist")
    msg = str(err.value)
    assert "mnist not found and could not be downloaded (offline?)" in msg
    assert "train-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path / "mfphys" / "mnist") in msg
    assert "--data-dir" in msg and "MFPHYS_DATA_DIR" in msg and "\n" not in msg
    assert list((tmp_path / "mfphys" / "mnist").iterdir()) == []  # no partial files left


def test_download_off_error(tmp_path):
    with pytest.raises(MfphysError, match="fashion-mnist not found .* download is off"):
        data.load_dataset("fashion-mnist", download=False)


def test_download_from_mirror_into_cache(mnist_dir, tmp_path, monkeypatch):
    """A file:// mirror stands in for the network: the first mirror fails, the second serves."""
    mirror = _link_folder(mnist_dir, tmp_path / "mirror", gz=True)
    monkeypatch.setattr(data, "MIRRORS", {"mnist": (UNREACHABLE, mirror.as_uri() + "/")})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache = tmp_path / "xdg" / "mfphys" / "mnist"
    ds = data.load_dataset("mnist", n_train=20)
    assert ds.source == str(cache)
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{s}.gz" for s in STEMS)
    assert not any(p.is_symlink() for p in cache.iterdir())
    assert ds.checksum == data.load_dataset("mnist", data_dir=mnist_dir, n_train=20).checksum
    assert data.where("mnist") == cache


def test_download_that_fails_verification_is_not_kept(mnist_dir, tmp_path, monkeypatch):
    mirror = _link_folder(mnist_dir, tmp_path / "mirror", skip=("train-labels-idx1-ubyte",), gz=True)
    # a valid IDX label file, but the wrong one: only the hash can tell
    (mirror / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_raw(mnist_dir, "t10k-labels-idx1-ubyte")))
    monkeypatch.setattr(data, "MIRRORS", {"mnist": (mirror.as_uri() + "/",)})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(MfphysError, match=r"downloaded train-labels-idx1-ubyte\.gz failed verification"):
        data.fetch("mnist")
    cache = tmp_path / "xdg" / "mfphys" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == ["train-images-idx3-ubyte.gz"]


# --------------------------------------------------------------------------- teacher


SMALL = data.TeacherConfig(n_in=50, hidden=(20,), n_classes=4, seed=3, n_train_pool=3000, n_test=500)


def test_teacher_deterministic():
    a = data.load_dataset("teacher", teacher=SMALL)
    data.clear_cache()  # regenerate, do not just hit the cache
    b = data.load_dataset("teacher", teacher=SMALL)
    assert a.x_train is not b.x_train
    for u, v in zip((a.x_train, a.y_train, a.x_test, a.y_test), (b.x_train, b.y_train, b.x_test, b.y_test)):
        np.testing.assert_array_equal(u, v)
    assert a.checksum == b.checksum and a.source == b.source
    assert "seed=3" in a.source
    c = data.load_dataset("teacher", teacher=data.TeacherConfig(**{**SMALL.__dict__, "seed": 4}))
    assert c.checksum != a.checksum
    assert not np.array_equal(c.x_train, a.x_train) and not np.array_equal(c.y_train, a.y_train)


def test_teacher_pool_size_keeps_first_rows_and_test_set():
    a = data.load_dataset("teacher", teacher=SMALL, n_train=1000)
    big = data.load_dataset("teacher", teacher=data.TeacherConfig(**{**SMALL.__dict__, "n_train_pool": 4000}))
    np.testing.assert_array_equal(a.x_train, big.x_train[:1000])
    np.testing.assert_array_equal(a.y_train, big.y_train[:1000])
    np.testing.assert_array_equal(a.x_test, big.x_test)
    assert a.checksum != big.checksum


def test_teacher_default_shapes_and_balance():
    ds = data.load_dataset("teacher")
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64 and ds.n_classes == 10
    assert ds.x_train.flags.c_contiguous and not ds.x_train.flags.writeable
    assert abs(float(ds.x_train[:2000].mean())) < 0.01 and abs(float(ds.x_train[:2000].std()) - 1) < 0.01
    for y in (ds.y_train, ds.y_test):
        frac = np.bincount(y, minlength=10) / y.size
        assert frac.min() >= 0.02, frac


@pytest.mark.parametrize("hidden", [(), (30, 30)])
def test_teacher_other_depths_balanced(hidden):
    cfg = data.TeacherConfig(n_in=100, hidden=hidden, n_classes=5, n_train_pool=5000, n_test=100)
    ds = data.load_dataset("teacher", teacher=cfg)
    assert (np.bincount(ds.y_train, minlength=5) / 5000).min() >= 0.02


def test_teacher_errors():
    with pytest.raises(MfphysError, match="--n-train 5000 is larger than the 3000 training samples of teacher"):
        data.load_dataset("teacher", teacher=SMALL, n_train=5000)
    with pytest.raises(MfphysError, match="teacher settings apply to the teacher data set only"):
        data.load_dataset("mnist", teacher=SMALL)
    with pytest.raises(MfphysError, match="n_classes must be at least 2"):
        data.TeacherConfig(n_classes=1)
    with pytest.raises(MfphysError, match="n_in must be a positive"):
        data.TeacherConfig(n_in=0)
    with pytest.raises(MfphysError, match="hidden widths"):
        data.TeacherConfig(hidden=(10, 0))
    assert data.TeacherConfig(hidden=[5]).hidden == (5,)
    assert data.where("teacher") is None
