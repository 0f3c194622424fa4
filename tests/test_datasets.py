"""Supervised datasets: xor, the fixed digits split, MNIST IDX files, the registry, augmentation."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from agents.supervised import datasets
from agents.supervised.augment import augment_images, shift_images
from agents.supervised.datasets import (
    Dataset,
    load_dataset,
    load_digits,
    load_mnist,
    load_xor,
    read_idx,
)

# --- xor ---------------------------------------------------------------------------------------


def test_xor_shapes_labels_and_balance() -> None:
    d = load_xor()
    assert d.x_train.shape == (400, 2) and d.x_test.shape == (100, 2)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.input_shape == (2,) and d.num_classes == 2 and not d.is_image
    assert np.bincount(d.y_train).tolist() == [200, 200]
    assert np.bincount(d.y_test).tolist() == [50, 50]
    for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
        corner = np.rint(x).astype(int)  # noise is clipped to 0.4, so rounding finds the corner
        assert np.all((corner == 0) | (corner == 1))
        assert np.array_equal(y, corner[:, 0] ^ corner[:, 1])
        assert np.abs(x - corner).max() <= 0.4 + 1e-6


def test_xor_is_reproducible_per_seed() -> None:
    assert np.array_equal(load_xor(seed=3).x_train, load_xor(seed=3).x_train)
    assert not np.array_equal(load_xor(seed=3).x_train, load_xor(seed=4).x_train)


def test_xor_rejects_tiny_splits() -> None:
    with pytest.raises(ValueError, match="at least 4"):
        load_xor(train_size=3)


# --- digits ------------------------------------------------------------------------------------


def test_digits_split_is_fixed_and_stratified() -> None:
    a, b = load_digits(), load_digits()
    assert len(a.x_train) == 1437 and len(a.x_test) == 360
    assert a.input_shape == (1, 8, 8) and a.num_classes == 10 and a.is_image
    assert a.x_train.dtype == np.float32
    assert a.x_train.min() == 0.0 and a.x_train.max() == 1.0  # pixels 0..16 divided by 16
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    total = np.bincount(a.y_train, minlength=10) + np.bincount(a.y_test, minlength=10)
    assert total.sum() == 1797
    # Stratified: every class keeps 20% of its images in the test split, up to rounding.
    assert np.abs(np.bincount(a.y_test, minlength=10) - 0.2 * total).max() <= 1.0
    # The split itself is pinned (seed 0), so reported accuracies always mean the same 360.
    assert a.y_test[:10].tolist() == [7, 6, 3, 7, 7, 3, 2, 8, 9, 3]


def test_digits_never_declares_a_flip() -> None:
    assert load_digits().label_preserving_flips == ()


# --- MNIST IDX files ---------------------------------------------------------------------------


def _idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_mnist(folder: Path, gz: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, size=(3, 4, 5), dtype=np.uint8),
        "train_labels": np.array([7, 0, 9], dtype=np.uint8),
        "test_images": rng.integers(0, 256, size=(2, 4, 5), dtype=np.uint8),
        "test_labels": np.array([1, 2], dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in datasets.MNIST_FILES.items():
        data = _idx_bytes(arrays[key])
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_mnist_reads_idx_files(tmp_path: Path, gz: bool) -> None:
    arrays = _write_mnist(tmp_path, gz)
    d = load_mnist(tmp_path)
    assert d.x_train.shape == (3, 1, 4, 5) and d.x_test.shape == (2, 1, 4, 5)
    assert d.x_train.dtype == np.float32
    np.testing.assert_array_equal(d.x_train[:, 0] * 255.0, arrays["train_images"])
    assert d.x_train[0, 0, 0, 0] == np.float32(arrays["train_images"][0, 0, 0] / 255.0)
    assert d.y_train.tolist() == [7, 0, 9] and d.y_test.tolist() == [1, 2]
    assert d.class_names == tuple("0123456789")


def test_read_idx_header_arithmetic(tmp_path: Path) -> None:
    path = tmp_path / "a-idx2-ubyte"
    path.write_bytes(bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]))
    assert read_idx(path).tolist() == [[1, 2, 3], [4, 5, 6]]


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    bad_magic = tmp_path / "bad"
    bad_magic.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(bad_magic)
    truncated = tmp_path / "short"
    truncated.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 4, 1, 2]))  # says 4 values, holds 2
    with pytest.raises(ValueError, match="holds 2 bytes"):
        read_idx(truncated)


def test_mnist_missing_file_names_it_and_its_source(tmp_path: Path) -> None:
    _write_mnist(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(ValueError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte" in message and str(tmp_path) in message
    assert "yann.lecun.com/exdb/mnist" in message and "mirror" in message
    assert "train-images-idx3-ubyte" in message  # the full list of files to fetch
    assert "\n" not in message


# --- registry ----------------------------------------------------------------------------------


def test_load_dataset_by_name_and_options(tmp_path: Path) -> None:
    assert load_dataset("xor", train_size=8, test_size=4).x_train.shape == (8, 2)
    _write_mnist(tmp_path, gz=True)
    assert load_dataset("mnist", data_dir=tmp_path).x_test.shape == (2, 1, 4, 5)


def test_load_dataset_rejects_unknown_names_and_options() -> None:
    accepted = "accepted: atari-frames, digits, mnist, xor"
    with pytest.raises(ValueError, match=rf"unknown dataset 'cifar'; {accepted}"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match=r"dataset 'digits' takes no option 'data_dir'"):
        load_dataset("digits", data_dir="x")


def test_registry_is_a_plain_dict_to_extend(monkeypatch: pytest.MonkeyPatch) -> None:
    def load_toy(size: int = 4) -> Dataset:
        x = np.zeros((size, 1, 2, 2), np.float32)
        return Dataset("toy", x, np.arange(size) % 2, x, np.arange(size) % 2, ("a", "b"))

    monkeypatch.setitem(datasets.LOADERS, "toy", load_toy)
    assert load_dataset("toy", size=6).x_train.shape == (6, 1, 2, 2)


def test_dataset_checks_lengths_and_flips() -> None:
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="differ in length"):
        Dataset("bad", x, np.zeros(3, np.int64), x, np.zeros(2, np.int64), ("a", "b"))
    with pytest.raises(ValueError, match="unknown flip 'diagonal'"):
        Dataset("bad", x, np.zeros(2), x, np.zeros(2), ("a", "b"), ("diagonal",))


# --- augmentation ------------------------------------------------------------------------------


def _dot_image(row: int, col: int, size: int = 8) -> np.ndarray:
    x = np.zeros((1, 1, size, size), np.float32)
    x[0, 0, row, col] = 1.0
    return x


@pytest.mark.parametrize(("dy", "dx"), [(0, 0), (1, -2), (-3, 3), (2, 0)])
def test_shift_moves_pixels_by_exactly_the_amount(dy: int, dx: int) -> None:
    out = shift_images(_dot_image(3, 4), [dy], [dx])
    assert out.shape == (1, 1, 8, 8)
    assert np.argwhere(out[0, 0] == 1.0).tolist() == [[3 + dy, 4 + dx]]
    assert out.sum() == 1.0


def test_shift_pads_with_zeros_and_drops_what_leaves_the_frame() -> None:
    x = np.ones((2, 1, 4, 4), np.float32)
    out = shift_images(x, [1, 0], [0, -2])
    assert out[0, 0, 0].tolist() == [0, 0, 0, 0] and out[0].sum() == 12  # top row filled with 0
    assert out[1, 0, :, 2:].sum() == 0 and out[1].sum() == 8  # two right columns are 0
    assert shift_images(_dot_image(0, 0), [-1], [0]).sum() == 0.0  # pushed out of the frame


def test_augment_keeps_shape_dtype_and_range() -> None:
    x = np.random.default_rng(0).random((16, 3, 10, 12), dtype=np.float32)
    out = augment_images(x, np.random.default_rng(1), 2, 0.2, ("horizontal", "vertical"))
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not np.array_equal(out, x)


def test_augment_on_digits_only_shifts_never_flips() -> None:
    d = load_digits()
    x = d.x_train[:64]
    out = augment_images(x, np.random.default_rng(0), 1, 0.0, d.label_preserving_flips)
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    for i in range(len(x)):
        matches = [s for s in shifts if np.array_equal(out[i], shift_images(x[i : i + 1], *s)[0])]
        assert matches, f"image {i} is not a shift of its input by at most one pixel"


def test_flips_only_when_the_dataset_allows_them() -> None:
    x = np.random.default_rng(0).random((64, 1, 5, 5), dtype=np.float32)
    rng = np.random.default_rng(0)
    out = augment_images(x, rng, max_shift_pixels=0, intensity_jitter=0.0, flips=("horizontal",))
    mirrored = np.array([np.array_equal(o, xi[..., ::-1]) for o, xi in zip(out, x)])
    same = np.array([np.array_equal(o, xi) for o, xi in zip(out, x)])
    assert np.all(mirrored | same) and mirrored.any() and same.any()
    plain = augment_images(x, rng, max_shift_pixels=0, intensity_jitter=0.0, flips=())
    assert np.array_equal(plain, x)


def test_intensity_jitter_scales_each_image_channel_within_bounds() -> None:
    x = np.full((32, 2, 4, 4), 0.5, np.float32)
    out = augment_images(x, np.random.default_rng(0), 0, 0.1)
    factor = out / x
    per_channel = factor[:, :, 0, 0]
    assert np.allclose(factor, per_channel[:, :, None, None])  # one factor per image and channel
    assert per_channel.min() >= 0.9 and per_channel.max() <= 1.1
    assert per_channel.std() > 0.02


def test_augment_rejects_bad_settings() -> None:
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="max_shift_pixels"):
        augment_images(x, np.random.default_rng(0), -1, 0.1)
    with pytest.raises(ValueError, match="unknown flip 'sideways'"):
        augment_images(x, np.random.default_rng(0), 1, 0.1, ("sideways",))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        augment_images(np.zeros((2, 3), np.float32), np.random.default_rng(0))
