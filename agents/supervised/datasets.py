"""Supervised data for the lecture's baselines (numpy, no torch): the ``Dataset`` type, the
registry of loaders (``LOADERS``, ``FILE_LOADERS``, ``load_dataset``) and the xor, digits and
MNIST loaders; the Atari-frames and trajectory loaders live in their own modules.

- ``xor``: the four corners of the unit square, labelled x1 XOR x2 (Minsky and Papert 1969, the
  lecture's example of a problem no single perceptron solves), with small clipped noise.
- ``digits``: scikit-learn's bundled 8x8 handwritten digits (UCI "Optical Recognition of
  Handwritten Digits", 1797 images), a fixed stratified 80/20 split with seed 0 (1437/360).
- ``mnist``: LeCun et al. 1998, read from the four standard IDX files (raw or gzip).
- ``atari-frames`` (``atari_frames``): observations of K Atari games under a uniform random
  policy, labelled by game: the (4, 84, 84) uint8 stacks of the ``nature`` protocol (Mnih et al.
  2015) that the DQN sees; test frames come from other episodes (other env seeds) than training
  frames.
- ``trajectories:PATH`` (``trajectories``): a teacher's play recorded by ``scripts.evaluate
  --save-trajectories``, observations labelled by the teacher's action, for behaviour cloning
  (Pomerleau 1991); split into train and test by whole episodes.

Images are ``(N, channels, height, width)``, float32 in [0, 1] (uint8 is allowed too, scaled by
the trainer); vectors are ``(N, features)``. Add a dataset by writing a loader that returns a
``Dataset`` and putting it in ``LOADERS`` (or in ``FILE_LOADERS`` for datasets named
``kind:PATH``, whose loader takes the path first). Augmentation lives in ``augment``.
"""

from __future__ import annotations

import gzip
import inspect
from collections.abc import Callable
from pathlib import Path

import numpy as np

from agents.supervised.atari_frames import load_atari_frames
from agents.supervised.data import Dataset
from agents.supervised.trajectories import load_trajectories_dataset

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_SOURCES = (
    "the MNIST site http://yann.lecun.com/exdb/mnist/ or one of its mirrors, "
    "e.g. https://ossci-datasets.s3.amazonaws.com/mnist/"
)


def load_xor(
    train_size: int = 400, test_size: int = 100, noise: float = 0.1, seed: int = 0
) -> Dataset:
    """Points around the corners of [0, 1]^2; label = x1 XOR x2 of the corner.

    Noise is Gaussian with std ``noise``, clipped to +-0.4 so the four clusters never touch.
    """
    if train_size < 4 or test_size < 4:
        raise ValueError(f"xor needs at least 4 points per split, got {train_size}/{test_size}")
    rng = np.random.default_rng(seed)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
        which = np.arange(n) % 4  # balanced: every corner n/4 times
        jitter = np.clip(rng.normal(0.0, noise, size=(n, 2)), -0.4, 0.4)
        x = (corners[which] + jitter).astype(np.float32)
        y = (corners[which, 0] != corners[which, 1]).astype(np.int64)
        order = rng.permutation(n)
        return x[order], y[order]

    x_train, y_train = sample(train_size)
    x_test, y_test = sample(test_size)
    return Dataset("xor", x_train, y_train, x_test, y_test, class_names=("0", "1"))


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits as (N, 1, 8, 8) in [0, 1]; stratified 80/20 split, seed 0."""
    try:
        from sklearn.datasets import load_digits as sk_load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as err:  # scikit-learn is an optional (dev) dependency
        raise ValueError("dataset 'digits' needs scikit-learn: pip install scikit-learn") from err
    bunch = sk_load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None, :, :]  # pixel values are 0..16
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=0
    )
    names = tuple(str(c) for c in range(10))
    return Dataset("digits", x_train, y_train, x_test, y_test, class_names=names)


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (LeCun's MNIST format; gzip if the name ends in .gz) as a numpy array.

    Header: two zero bytes, a type code (0x08 = uint8), the number of dimensions, then each
    dimension as a big-endian uint32; the data follow in C order.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    types = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in types:
        raise ValueError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(types[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: header says shape {shape} ({expected} bytes) "
            f"but the file holds {len(raw) - header} bytes of data"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape)


def _find_idx(data_dir: Path, stem: str) -> Path:
    for candidate in (data_dir / stem, data_dir / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise ValueError(
        f"MNIST file {stem} (or {stem}.gz) not found in {data_dir}; download the four IDX files "
        f"({', '.join(MNIST_FILES.values())}) from {MNIST_SOURCES} into --data-dir"
    )


def load_mnist(data_dir: Path | str = Path("data/mnist")) -> Dataset:
    """MNIST from the standard IDX files in ``data_dir`` as (N, 1, 28, 28) floats in [0, 1]."""
    data_dir = Path(data_dir)
    arrays = {key: read_idx(_find_idx(data_dir, stem)) for key, stem in MNIST_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"MNIST {split} files in {data_dir} do not match: images {images.shape}, "
                f"labels {labels.shape}; expected (N, rows, cols) and (N,)"
            )

    def scale(images: np.ndarray) -> np.ndarray:
        return (images.astype(np.float32) / 255.0)[:, None, :, :]

    return Dataset(
        "mnist",
        scale(arrays["train_images"]),
        arrays["train_labels"].astype(np.int64),
        scale(arrays["test_images"]),
        arrays["test_labels"].astype(np.int64),
        class_names=tuple(str(c) for c in range(10)),
    )


LOADERS: dict[str, Callable[..., Dataset]] = {
    "xor": load_xor,
    "digits": load_digits,
    "mnist": load_mnist,
    "atari-frames": load_atari_frames,
}
FILE_LOADERS: dict[str, Callable[..., Dataset]] = {
    "trajectories": load_trajectories_dataset,
}
"""Datasets read from a file, named ``kind:PATH``; the loader gets PATH as its first argument."""


def dataset_kind(name: str) -> str:
    """The registry key of a dataset name: 'trajectories:runs/pong.npz' -> 'trajectories'."""
    kind, sep, _ = name.partition(":")
    return kind if sep and kind in FILE_LOADERS else name


def load_dataset(name: str, **options: object) -> Dataset:
    """The dataset registered as ``name`` in ``LOADERS`` (or ``kind:PATH`` in ``FILE_LOADERS``),
    built with the loader's ``options``."""
    kind, sep, path = name.partition(":")
    if sep and kind in FILE_LOADERS:
        if not path:
            raise ValueError(f"dataset {name!r} names no file; use {kind}:PATH")
        loader, args, fixed = FILE_LOADERS[kind], (path,), 1
    elif name in LOADERS:
        loader, args, fixed = LOADERS[name], (), 0
    else:
        file_kinds = ", ".join(f"{k}:PATH" for k in sorted(FILE_LOADERS))
        raise ValueError(
            f"unknown dataset {name!r}; accepted: {', '.join(sorted(LOADERS))}, {file_kinds}"
        )
    accepted = list(inspect.signature(loader).parameters)[fixed:]
    unknown = [key for key in options if key not in accepted]
    if unknown:
        raise ValueError(
            f"dataset {name!r} takes no option {unknown[0]!r}; "
            f"accepted: {', '.join(accepted) or 'none'}"
        )
    return loader(*args, **options)
