"""Data sets: scikit-learn's digits (built in), MNIST, Fashion-MNIST, any IDX folder.

Pixels are scaled to [0, 1] (the firing probability of an input neuron); images are
``(n, 1, height, width)`` float32, labels int64. IDX files are read from a folder the
user names (``--data-dir`` or the ``BSL_DATA_DIR`` environment variable, which holds
one sub-folder per data set or the files themselves), else from the cache folder
(``BSL_CACHE_DIR``, default ``~/.cache/memristor-bsl``), downloading there with an
MD5 check when online.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import shutil
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .seeds import Seeds

DATASETS = ("digits", "digits4", "mnist", "fashion-mnist", "idx")

_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
_MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}


class DataError(ValueError):
    """A data set cannot be found or read; the message says what to do."""


@dataclass
class Dataset:
    """Train and test split of an image classification set."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample: ``(channels, height, width)``."""
        return tuple(self.x_train.shape[1:])

    def to(self, device: str | torch.device) -> Dataset:
        """The same data on a torch device (itself where it is there already)."""
        if self.x_train.device == torch.device(device):
            return self
        return dataclasses.replace(self, **{k: getattr(self, k).to(device)
                                            for k in ("x_train", "y_train", "x_test", "y_test")})


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    seed: int = 0,
    download: bool = True,
    train_limit: int = 0,
    test_limit: int = 0,
) -> Dataset:
    """Load a data set by name; ``*_limit`` > 0 keeps a seeded random subset of that size."""
    seeds = Seeds(seed)
    if name == "digits":
        ds = _digits(seeds.data_split)
    elif name == "digits4":
        ds = _digits4(seeds.data_split)
    elif name in ("mnist", "fashion-mnist", "idx"):
        folder = _find_folder(name, data_dir, download)
        ds = _from_idx(name, folder)
    else:
        raise DataError(f"unknown dataset {name!r}: choose one of {DATASETS}")
    gen = torch.Generator().manual_seed(seeds.data_subset)
    if train_limit:
        keep = torch.randperm(len(ds.y_train), generator=gen)[:train_limit]
        ds.x_train, ds.y_train = ds.x_train[keep], ds.y_train[keep]
    if test_limit:
        keep = torch.randperm(len(ds.y_test), generator=gen)[:test_limit]
        ds.x_test, ds.y_test = ds.x_test[keep], ds.y_test[keep]
    return ds


def _digits(seed: int) -> Dataset:
    """scikit-learn's 8x8 digits (1797 images), split 80/20, stratified and seeded."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    return Dataset("digits", torch.from_numpy(x_tr), torch.from_numpy(y_tr),
                   torch.from_numpy(x_te), torch.from_numpy(y_te), 10)


def _digits4(seed: int) -> Dataset:
    """Digits 0-3 only, 2x2-average-pooled to 4x4: 16 inputs, 4 classes (about 580
    training images). Small enough for a crossbar on a bench (17x8 and 9x4 arrays for
    a 16-8-4 network)."""
    full = _digits(seed)

    def shrink(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        keep = y < 4
        return torch.nn.functional.avg_pool2d(x[keep], 2), y[keep]

    x_tr, y_tr = shrink(full.x_train, full.y_train)
    x_te, y_te = shrink(full.x_test, full.y_test)
    return Dataset("digits4", x_tr, y_tr, x_te, y_te, 4)


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw), checking its header against its size."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read ({exc}); the file is corrupt or truncated") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: truncated or corrupt IDX file: header says {dims} ({expected} bytes), "
            f"file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _from_idx(name: str, folder: Path) -> Dataset:
    files = {key: _locate(folder, fname) for key, fname in _IDX_FILES.items()}
    arrays = {key: read_idx(path) for key, path in files.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{folder}: {split} images {images.shape} and labels {labels.shape} do not match")
    train_hw, test_hw = arrays["train_images"].shape[1:], arrays["test_images"].shape[1:]
    if train_hw != test_hw:
        raise DataError(
            f"{folder}: train images are {train_hw[0]}x{train_hw[1]} but test images are "
            f"{test_hw[0]}x{test_hw[1]}; both splits must have the same image size"
        )

    def imgs(a: np.ndarray) -> Tensor:
        return torch.from_numpy(a.astype(np.float32) / 255.0)[:, None]

    def labs(a: np.ndarray) -> Tensor:
        return torch.from_numpy(a.astype(np.int64))

    n_classes = int(max(arrays["train_labels"].max(), arrays["test_labels"].max())) + 1
    return Dataset(name, imgs(arrays["train_images"]), labs(arrays["train_labels"]),
                   imgs(arrays["test_images"]), labs(arrays["test_labels"]), n_classes)


def _locate(folder: Path, fname: str) -> Path:
    for candidate in (fname, fname[:-3], fname.replace("t10k", "test"), fname.replace("t10k", "test")[:-3]):
        if (folder / candidate).exists():
            return folder / candidate
    raise DataError(f"{folder}: missing {fname}")


def cache_dir() -> Path:
    """Where downloads go: ``BSL_CACHE_DIR`` or ``~/.cache/memristor-bsl``."""
    return Path(os.environ.get("BSL_CACHE_DIR", Path.home() / ".cache" / "memristor-bsl"))


def _has_all(folder: Path) -> bool:
    try:
        for fname in _IDX_FILES.values():
            _locate(folder, fname)
    except DataError:
        return False
    return True


def _find_folder(name: str, data_dir: str | Path | None, download: bool) -> Path:
    named = data_dir or os.environ.get("BSL_DATA_DIR")
    if named:
        base = Path(named)
        for folder in (base, base / name):
            if _has_all(folder):
                return folder
        raise DataError(
            f"{base}: no {name} IDX files found there or in {base / name}; expected "
            f"{', '.join(_IDX_FILES.values())}"
        )
    if name == "idx":
        raise DataError("dataset 'idx' needs --data-dir (a folder of IDX .gz files)")
    folder = cache_dir() / name
    if _has_all(folder):
        return folder
    if download:
        try:
            _download(name, folder)
            return folder
        except OSError as exc:
            reason = f"download failed ({exc})"
    else:
        reason = "downloads are off"
    raise DataError(
        f"{name} is not available: {reason}. Put the four IDX files "
        f"({', '.join(_IDX_FILES.values())}) in {folder} or in a folder named by "
        "--data-dir / BSL_DATA_DIR"
    )


def _download(name: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for fname, md5 in _MD5[name].items():
        target = folder / fname
        if target.exists() and _md5(target) == md5:
            continue
        last: Exception | None = None
        for mirror in _MIRRORS[name]:
            tmp = target.with_suffix(".part")
            try:
                with urllib.request.urlopen(mirror + fname, timeout=30) as resp, tmp.open("wb") as out:
                    shutil.copyfileobj(resp, out)
            except OSError as exc:
                last = exc
                continue
            if _md5(tmp) != md5:
                tmp.unlink()
                last = OSError(f"checksum mismatch for {mirror + fname}")
                continue
            tmp.replace(target)
            break
        else:
            raise OSError(str(last))


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
