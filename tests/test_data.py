"""Data sets: digits splits, the IDX reader, IDX folders, and the missing-MNIST message.

Nothing here touches the network: every MNIST lookup runs with ``download=False`` and
``urllib.request.urlopen`` replaced by a function that fails the test.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

import bsl.data as data_mod
from bsl.data import DataError, load_dataset, read_idx

pytestmark = pytest.mark.usefixtures("single_thread")  # small tensors: threads only wait

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the test suite must not download anything")

    monkeypatch.setattr(data_mod.urllib.request, "urlopen", refuse)


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file holding ``array``."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    return header + a.tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def write_idx_folder(
    folder: Path, *, n_train: int = 20, n_test: int = 8, hw: tuple[int, int] = (5, 6),
    test_hw: tuple[int, int] | None = None, seed: int = 0, gz: bool = True,
) -> dict[str, np.ndarray]:
    """Write a tiny synthetic IDX data set (the four standard file names) into ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, *hw), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 4).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, *(test_hw or hw)), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 3).astype(np.uint8),
    }
    for key, fname in IDX_NAMES.items():
        write_idx(folder / (fname if gz else fname[:-3]), arrays[key])
    return arrays


# -- digits -------------------------------------------------------------------------------


def test_digits_split_sizes_shape_and_range() -> None:
    ds = load_dataset("digits", seed=0)
    assert ds.name == "digits" and ds.n_classes == 10
    assert ds.x_train.shape == (1437, 1, 8, 8) and ds.x_test.shape == (360, 1, 8, 8)
    assert ds.y_train.shape == (1437,) and ds.y_test.shape == (360,)
    assert ds.input_shape == (1, 8, 8)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    for x in (ds.x_train, ds.x_test):
        assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert set(ds.y_train.tolist()) == set(range(10)) == set(ds.y_test.tolist())
    # Stratified: every class has about a tenth of the test set.
    counts = torch.bincount(ds.y_test, minlength=10)
    assert int(counts.min()) >= 34 and int(counts.max()) <= 38


def test_digits_is_seeded() -> None:
    a, b, c = load_dataset("digits", seed=3), load_dataset("digits", seed=3), load_dataset("digits", seed=4)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)
    # Train and test never share an image row of the full set (a split, not a resample).
    assert len(a.y_train) + len(a.y_test) == 1797


def test_limits_keep_seeded_subsets() -> None:
    full = load_dataset("digits", seed=1)
    a = load_dataset("digits", seed=1, train_limit=100, test_limit=30)
    b = load_dataset("digits", seed=1, train_limit=100, test_limit=30)
    c = load_dataset("digits", seed=2, train_limit=100, test_limit=30)
    assert a.x_train.shape == (100, 1, 8, 8) and a.x_test.shape == (30, 1, 8, 8)
    assert len(a.y_train) == 100 and len(a.y_test) == 30
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)
    # The subset is drawn from the seed's own split, labels staying with their images.
    flat = full.x_train.reshape(len(full.y_train), -1)
    for img, label in zip(a.x_train[:10], a.y_train[:10], strict=True):
        match = (flat == img.reshape(1, -1)).all(1)
        assert bool(match.any()) and label in full.y_train[match].tolist()


def test_unknown_dataset() -> None:
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")


# -- read_idx -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("shape", [(7,), (4, 3, 5), (2, 1, 3, 2)])
def test_read_idx_round_trip(tmp_path: Path, suffix: str, shape: tuple[int, ...]) -> None:
    a = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    out = read_idx(write_idx(tmp_path / f"file-idx{suffix}", a))
    assert out.dtype == np.uint8
    assert out.shape == shape
    assert np.array_equal(out, a)


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_read_idx_bad_magic(tmp_path: Path, suffix: str) -> None:
    raw = bytearray(idx_bytes(np.zeros((3, 2), dtype=np.uint8)))
    raw[2] = 0x0D  # float data, not unsigned bytes
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(gzip.compress(bytes(raw)) if suffix else bytes(raw))
    with pytest.raises(DataError, match="bad magic"):
        read_idx(path)


def test_read_idx_not_an_idx_file(tmp_path: Path) -> None:
    path = tmp_path / "archive.zip"
    path.write_bytes(b"PK\x03\x04 not an idx file at all")
    with pytest.raises(DataError, match="bad magic"):
        read_idx(path)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="bad magic"):
        read_idx(path)


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("change", [-1, -17, +3])
def test_read_idx_size_mismatch(tmp_path: Path, suffix: str, change: int) -> None:
    raw = idx_bytes(np.ones((4, 5, 5), dtype=np.uint8))
    raw = raw[:change] if change < 0 else raw + b"\x00" * change
    path = tmp_path / f"short{suffix}"
    path.write_bytes(gzip.compress(raw) if suffix else raw)
    with pytest.raises(DataError, match=r"truncated or corrupt.*\[4, 5, 5\] \(100 bytes\)"):
        read_idx(path)


def test_read_idx_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "header"
    path.write_bytes(bytes([0, 0, 8, 3]) + (4).to_bytes(4, "big"))  # 3 dims announced, 1 given
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(path)


def test_read_idx_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "fake-idx1-ubyte.gz"
    path.write_bytes(idx_bytes(np.arange(10, dtype=np.uint8)))  # raw data under a .gz name
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_idx(path)


def test_read_idx_truncated_gzip(tmp_path: Path) -> None:
    gz = gzip.compress(idx_bytes(np.random.default_rng(2).integers(0, 256, 3000, dtype=np.uint8)))
    path = tmp_path / "cut-idx1-ubyte.gz"
    path.write_bytes(gz[: len(gz) // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_idx(path)


def test_read_idx_corrupt_gzip_stream(tmp_path: Path) -> None:
    """A gzip file whose deflate stream is damaged (here: its first block header)."""
    gz = bytearray(gzip.compress(idx_bytes(np.random.default_rng(3).integers(0, 256, 1000, dtype=np.uint8))))
    gz[12] ^= 0xFF
    path = tmp_path / "flipped-idx1-ubyte.gz"
    path.write_bytes(bytes(gz))
    with pytest.raises(Exception) as info:  # noqa: PT011  (the type is what is checked)
        gzip.decompress(bytes(gz))
    assert isinstance(info.value, zlib.error), "the damage must reach zlib, as intended"
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_idx(path)


def test_read_idx_crc_mismatch(tmp_path: Path) -> None:
    gz = bytearray(gzip.compress(idx_bytes(np.random.default_rng(4).integers(0, 256, 1000, dtype=np.uint8))))
    gz[-6] ^= 0xFF  # inside the stored CRC32
    path = tmp_path / "crc-idx1-ubyte.gz"
    path.write_bytes(bytes(gz))
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_idx(path)


# -- IDX folders --------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder(tmp_path: Path, gz: bool) -> None:
    arrays = write_idx_folder(tmp_path / "set", gz=gz)
    ds = load_dataset("idx", data_dir=tmp_path / "set")
    assert ds.name == "idx"
    assert ds.x_train.shape == (20, 1, 5, 6) and ds.x_test.shape == (8, 1, 5, 6)
    assert ds.input_shape == (1, 5, 6)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    np.testing.assert_allclose(ds.x_train[:, 0].numpy(), arrays["train_images"] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(ds.x_test[:, 0].numpy(), arrays["test_images"] / 255.0, rtol=1e-6)
    assert ds.y_train.tolist() == arrays["train_labels"].tolist()
    assert ds.y_test.tolist() == arrays["test_labels"].tolist()
    assert ds.n_classes == 4
    assert float(ds.x_train.min()) >= 0 and float(ds.x_train.max()) <= 1


def test_idx_folder_with_limits_and_test_file_names(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    write_idx_folder(folder)
    (folder / "t10k-images-idx3-ubyte.gz").rename(folder / "test-images-idx3-ubyte.gz")
    (folder / "t10k-labels-idx1-ubyte.gz").rename(folder / "test-labels-idx1-ubyte.gz")
    ds = load_dataset("idx", data_dir=str(folder), train_limit=7, test_limit=3, seed=5)
    assert ds.x_train.shape == (7, 1, 5, 6) and ds.x_test.shape == (3, 1, 5, 6)
    again = load_dataset("idx", data_dir=str(folder), train_limit=7, test_limit=3, seed=5)
    assert torch.equal(ds.x_train, again.x_train)


def test_data_dir_env_with_one_folder_per_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = write_idx_folder(tmp_path / "data" / "mnist", seed=9)
    monkeypatch.setenv("BSL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BSL_CACHE_DIR", str(tmp_path / "cache"))
    ds = load_dataset("mnist", download=False)
    assert ds.name == "mnist"
    assert ds.y_train.tolist() == arrays["train_labels"].tolist()
    assert not (tmp_path / "cache").exists()


def test_idx_without_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BSL_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="needs --data-dir"):
        load_dataset("idx")


def test_idx_folder_missing_a_file(tmp_path: Path) -> None:
    write_idx_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"no idx IDX files found.*t10k-labels-idx1-ubyte\.gz"):
        load_dataset("idx", data_dir=tmp_path)


def test_idx_folder_with_a_corrupt_file(tmp_path: Path) -> None:
    write_idx_folder(tmp_path)
    bad = tmp_path / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz"):
        load_dataset("idx", data_dir=tmp_path)


def test_idx_folder_count_mismatch(tmp_path: Path) -> None:
    write_idx_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(19, dtype=np.uint8))
    with pytest.raises(DataError, match=r"train images \(20, 5, 6\) and labels \(19,\) do not match"):
        load_dataset("idx", data_dir=tmp_path)


def test_idx_folder_train_and_test_image_sizes_must_agree(tmp_path: Path) -> None:
    """Test images of another size cannot be fed to a network built for the train images:
    the folder is refused when loaded, not with a shape error in the middle of a run."""
    write_idx_folder(tmp_path, hw=(5, 6), test_hw=(6, 5))
    with pytest.raises(DataError, match=r"(?s)5\D6.*6\D5"):  # names both image sizes
        load_dataset("idx", data_dir=tmp_path)


# -- MNIST not available ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_missing_mnist_says_where_to_put_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    monkeypatch.setenv("BSL_CACHE_DIR", str(cache))
    monkeypatch.delenv("BSL_DATA_DIR", raising=False)
    with pytest.raises(DataError) as info:
        load_dataset(name, download=False)
    message = str(info.value)
    assert f"{name} is not available" in message
    assert "downloads are off" in message
    assert str(cache / name) in message
    for fname in IDX_NAMES.values():
        assert fname in message
    assert "--data-dir" in message and "BSL_DATA_DIR" in message
    assert list(cache.iterdir()) == [], "nothing is created when downloads are off"


def test_missing_files_in_named_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BSL_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"no mnist IDX files found there or in .*mnist"):
        load_dataset("mnist", data_dir=tmp_path / "nowhere", download=False)
