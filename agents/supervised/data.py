"""``Dataset``: the train/test split every supervised baseline trains on (its loaders are in
``agents.supervised.datasets``, ``atari_frames`` and ``trajectories``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.supervised.augment import FLIPS


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
