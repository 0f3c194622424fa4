"""Supervised data for the lecture's baselines (numpy only): xor, digits, MNIST, and augmentation.

- ``xor``: the four corners of the unit square, labelled x1 XOR x2 (Minsky and Papert 1969, the
  lecture's example of a problem no single perceptron solves), with small clipped noise.
- ``digits``: scikit-learn's bundled 8x8 handwritten digits (UCI "Optical Recognition of
  Handwritten Digits", 1797 images), a fixed stratified 80/20 split with seed 0 (1437/360).
- ``mnist``: LeCun et al. 1998, read from the four standard IDX files (raw or gzip).

Images are ``(N, channels, height, width)``, float32 in [0, 1] (uint8 is allowed too, scaled by
the trainer); vectors are ``(N, features)``. Add a dataset by writing a loader that returns a
``Dataset`` and putting it in ``LOADERS``. Augmentation follows the lecture: shifts (pad with
zeros, crop back), intensity changes, and flips only where the dataset says a flip keeps labels.
"""

from __future__ import annotations

import gzip
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
FLIPS = ("horizontal", "vertical")


@dataclass(frozen=True)
class Dataset:
    """A train/test split; ``label_preserving_flips`` names the flips that keep every label."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    label_preserving_flips: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.x_train) != len(self.y_train) or len(self.x_test) != len(self.y_test):
            raise ValueError(f"dataset {self.name!r}: inputs and labels differ in length")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(f"dataset {self.name!r}: train and test inputs differ in shape")
        bad = [f for f in self.label_preserving_flips if f not in FLIPS]
        if bad:
            raise ValueError(f"unknown flip {bad[0]!r}; accepted: {', '.join(FLIPS)}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3


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
}


def load_dataset(name: str, **options: object) -> Dataset:
    """The dataset registered as ``name`` in ``LOADERS``, built with the loader's ``options``."""
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; accepted: {', '.join(sorted(LOADERS))}")
    loader = LOADERS[name]
    accepted = list(inspect.signature(loader).parameters)
    unknown = [key for key in options if key not in accepted]
    if unknown:
        raise ValueError(
            f"dataset {name!r} takes no option {unknown[0]!r}; "
            f"accepted: {', '.join(accepted) or 'none'}"
        )
    return loader(**options)


def shift_images(x: np.ndarray, dy: int | Sequence[int], dx: int | Sequence[int]) -> np.ndarray:
    """Move image i down by ``dy[i]`` and right by ``dx[i]`` pixels, filling with zeros.

    Equivalent to padding with zeros and cropping back to size; pixels pushed past the border
    are lost. ``x`` is (N, C, H, W); a single int shifts every image by the same amount.
    """
    n, _, h, w = x.shape
    dy_arr = np.broadcast_to(np.asarray(dy, dtype=np.int64), (n,))
    dx_arr = np.broadcast_to(np.asarray(dx, dtype=np.int64), (n,))
    pad = int(max(np.abs(dy_arr).max(initial=0), np.abs(dx_arr).max(initial=0)))
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    rows = (pad - dy_arr)[:, None] + np.arange(h)  # (N, H): source row of each output row
    cols = (pad - dx_arr)[:, None] + np.arange(w)
    batch = np.arange(n)[:, None, None, None]
    channels = np.arange(x.shape[1])[None, :, None, None]
    return padded[batch, channels, rows[:, None, :, None], cols[:, None, None, :]]


def augment_images(
    x: np.ndarray,
    rng: np.random.Generator,
    max_shift_pixels: int = 1,
    intensity_jitter: float = 0.1,
    flips: Sequence[str] = (),
) -> np.ndarray:
    """A randomly augmented copy of a float image batch (N, C, H, W) in [0, 1].

    Each image is shifted by up to ``max_shift_pixels`` in each direction (zero padding), each
    channel's intensity scaled by a factor in [1 - jitter, 1 + jitter] and clipped to [0, 1],
    and each flip in ``flips`` (only those that keep the label) applied with probability 1/2.
    """
    if x.ndim != 4:
        raise ValueError(f"augmentation takes (N, C, H, W) images, got shape {x.shape}")
    if max_shift_pixels < 0 or not 0.0 <= intensity_jitter < 1.0:
        raise ValueError(
            f"need max_shift_pixels >= 0 and intensity_jitter in [0, 1), "
            f"got {max_shift_pixels} and {intensity_jitter}"
        )
    n = len(x)
    out = x
    if max_shift_pixels > 0:
        dy, dx = rng.integers(-max_shift_pixels, max_shift_pixels + 1, size=(2, n))
        out = shift_images(out, dy, dx)
    for flip in flips:
        if flip not in FLIPS:
            raise ValueError(f"unknown flip {flip!r}; accepted: {', '.join(FLIPS)}")
        axis = 3 if flip == "horizontal" else 2
        chosen = rng.random(n) < 0.5
        out = np.where(chosen[:, None, None, None], np.flip(out, axis=axis), out)
    if intensity_jitter > 0:
        factor = rng.uniform(1 - intensity_jitter, 1 + intensity_jitter, size=(n, x.shape[1], 1, 1))
        out = np.clip(out * factor.astype(out.dtype), 0.0, 1.0)
    return np.ascontiguousarray(out, dtype=x.dtype)
