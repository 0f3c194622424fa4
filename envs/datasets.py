"""Supervised data for the lecture's baselines (numpy, no torch): xor, digits, MNIST, Atari frames
(played through ``envs.atari``).

- ``xor``: the four corners of the unit square, labelled x1 XOR x2 (Minsky and Papert 1969, the
  lecture's example of a problem no single perceptron solves), with small clipped noise.
- ``digits``: scikit-learn's bundled 8x8 handwritten digits (UCI "Optical Recognition of
  Handwritten Digits", 1797 images), a fixed stratified 80/20 split with seed 0 (1437/360).
- ``mnist``: LeCun et al. 1998, read from the four standard IDX files (raw or gzip).
- ``atari-frames``: observations of K Atari games under a uniform random policy, labelled by game:
  the (4, 84, 84) uint8 stacks of the ``nature`` protocol (Mnih et al. 2015) that the DQN sees;
  test frames come from other episodes (other env seeds) than training frames.
- ``trajectories:PATH``: a teacher's play recorded by ``scripts.evaluate --save-trajectories``
  (``envs.trajectories``), observations labelled by the teacher's action, for behaviour cloning
  (Pomerleau 1991); split into train and test by whole episodes.

Images are ``(N, channels, height, width)``, float32 in [0, 1] (uint8 is allowed too, scaled by
the trainer); vectors are ``(N, features)``. Add a dataset by writing a loader that returns a
``Dataset`` and putting it in ``LOADERS`` (or in ``FILE_LOADERS`` for datasets named
``kind:PATH``, whose loader takes the path first). Augmentation lives in ``envs.augment``.
"""

from __future__ import annotations

import gzip
import inspect
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from envs.atari import canonical_game_id, make_atari_env, rom_name
from envs.augment import FLIPS
from envs.trajectories import load_trajectories, split_episodes

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
ATARI_FRAME_GAMES = ("Pong", "Breakout", "SpaceInvaders", "Seaquest", "MsPacman")
ATARI_FRAME_SPLITS = ("train", "test")


@dataclass(frozen=True)
class Dataset:
    """A train/test split; ``label_preserving_flips`` names the flips that keep every label;
    ``recording`` says, for a recorded policy's actions, where and how it played (env_id,
    protocol, epsilon, episodes, path)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    label_preserving_flips: tuple[str, ...] = ()
    recording: dict[str, Any] | None = None

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


def atari_frame_seed(seed: int, game: str, split: str) -> int:
    """The env seed of one game's ``split`` ("train" or "test") in ``load_atari_frames``.

    Derived from (seed, ROM name, split) by numpy's SeedSequence: train and test play different
    episodes, and a game's frames do not depend on which other games are loaded with it.
    """
    if seed < 0 or split not in ATARI_FRAME_SPLITS:
        raise ValueError(f"need seed >= 0 and split in {ATARI_FRAME_SPLITS}, got {seed}, {split!r}")
    key = [seed, zlib.crc32(rom_name(game).encode()), ATARI_FRAME_SPLITS.index(split)]
    return int(np.random.SeedSequence(key).generate_state(1)[0])


def collect_atari_frames(game: str, count: int, seed: int, keep_every_steps: int = 4) -> np.ndarray:
    """``count`` random-policy observations of ``game`` as (count, 4, 84, 84) uint8 stacks.

    The env is ``make_atari_env(game, protocol="nature", mode="eval", seed=seed)``, the stacks
    the DQN sees; episodes follow one another, and every ``keep_every_steps``-th observation is
    kept (consecutive stacks share three frames, so keeping all would add near-copies).
    """
    if count < 0 or keep_every_steps < 1:
        raise ValueError(
            f"need count >= 0 and keep_every_steps >= 1, got {count}, {keep_every_steps}"
        )
    env = make_atari_env(game, protocol="nature", mode="eval", seed=seed)
    rng = np.random.default_rng(seed)  # the policy's own generator: reproducible per seed
    frames = np.empty((count, *env.observation_space.shape), np.uint8)
    kept = steps = 0
    try:
        env.reset()
        while kept < count:
            obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
            steps += 1
            if steps % keep_every_steps == 0:
                frames[kept] = obs
                kept += 1
            if terminated or truncated:
                env.reset()
    finally:
        env.close()
    return frames


def load_atari_frames(
    games: Sequence[str] = ATARI_FRAME_GAMES,
    frames_per_game: int = 400,
    test_frames_per_game: int = 200,
    keep_every_steps: int = 4,
    seed: int = 0,
) -> Dataset:
    """Which game is this? Random-policy observations of ``games``, label = index in ``games``.

    ``frames_per_game`` training and ``test_frames_per_game`` test observations per game (one
    observation = one (4, 84, 84) stack, kept every ``keep_every_steps`` agent steps), stored as
    uint8; the trainer divides by 255 once per batch. Test frames come from a separately seeded
    env (``atari_frame_seed``), so from other episodes than the training frames: frames of one
    episode a few steps apart are near-copies and would make the test score meaningless. No
    flips are declared. Class names are the games' gymnasium names without "ALE/" and "-v5".
    """
    # rom_name raises on an unknown game, naming the closest ones; a bare string is one game.
    roms = [] if isinstance(games, str) else [rom_name(g) for g in games]
    if len(roms) < 2 or len(set(roms)) != len(roms):
        raise ValueError(
            f"atari-frames needs a sequence of two or more different games, got {games!r}"
        )
    sizes = {"frames_per_game": frames_per_game, "test_frames_per_game": test_frames_per_game}
    for name, value in {**sizes, "keep_every_steps": keep_every_steps}.items():
        if value < 1:
            raise ValueError(f"atari-frames: bad {name} {value!r}; accepted: >= 1")
    if seed < 0:
        raise ValueError(f"atari-frames: bad seed {seed!r}; accepted: >= 0")
    rng = np.random.default_rng(seed)
    splits = []
    for split, count in zip(ATARI_FRAME_SPLITS, sizes.values()):
        x = np.concatenate(
            [collect_atari_frames(g, count, atari_frame_seed(seed, g, split), keep_every_steps)
             for g in games]
        )  # fmt: skip
        y = np.repeat(np.arange(len(games), dtype=np.int64), count)
        order = rng.permutation(len(x))
        splits += [x[order], y[order]]
    names = tuple(re.sub(r"^ALE/|-v\d+$", "", canonical_game_id(g)) for g in games)
    return Dataset("atari-frames", *splits, class_names=names)


def load_trajectories_dataset(
    path: Path | str, test_fraction: float = 0.2, seed: int = 0
) -> Dataset:
    """A teacher's recorded play: inputs are its observations as it saw them (uint8 (C, H, W)
    stacks for Atari), labels the actions it took, classes the env's action names.

    Split by whole episodes (``envs.trajectories.split_episodes``, seeded): consecutive steps are
    near-copies, so test steps come from episodes never trained on. Needs at least 2 episodes.
    """
    t = load_trajectories(path)
    if t.num_episodes < 2:
        raise ValueError(
            f"trajectory file {path} holds {t.num_episodes} episode; behaviour cloning splits by "
            "episode and needs at least 2 (one to train on, one to test on); record more with "
            "scripts.evaluate --episodes 2 or more"
        )
    train_ids, test_ids = split_episodes(t.num_episodes, test_fraction, seed)
    train, test = np.isin(t.episode, train_ids), np.isin(t.episode, test_ids)
    recording = {
        "path": str(path), "env_id": t.env_id, "protocol": t.protocol, "epsilon": t.epsilon,
        "episodes": t.num_episodes, "steps": t.num_steps,
        "train_episodes": train_ids.tolist(), "test_episodes": test_ids.tolist(),
        "mean_return": float(t.episode_returns.mean()),
    }  # fmt: skip
    return Dataset(
        "trajectories", t.observations[train], t.actions[train], t.observations[test],
        t.actions[test], class_names=t.action_meanings, recording=recording,
    )  # fmt: skip


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
