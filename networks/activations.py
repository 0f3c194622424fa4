"""The lecture's activation functions, by name.

McCulloch-Pitts threshold, sigmoid (S), tanh (T), asinh (L, ln(z + sqrt(z^2 + 1))),
gaussian (G, exp(-z^2 / 2)), identity (Z), ReLU and PReLU (He et al. 2015). Each name maps to a
``torch.nn.Module`` factory so that networks can take an activation as a plain string.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class Threshold(nn.Module):
    """McCulloch-Pitts step: 1 where z > 0, else 0 (its gradient is zero almost everywhere)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z > 0).to(z.dtype)


class Asinh(nn.Module):
    """The lecture's L: ln(z + sqrt(z^2 + 1)) = asinh(z)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.asinh(z)


class Gaussian(nn.Module):
    """The lecture's G: exp(-z^2 / 2)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * z * z)


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "threshold": Threshold,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "asinh": Asinh,
    "gaussian": Gaussian,
    "identity": nn.Identity,
    "relu": nn.ReLU,
    "prelu": nn.PReLU,
}

# The lecture's one-letter names.
ALIASES = {"s": "sigmoid", "t": "tanh", "l": "asinh", "g": "gaussian", "z": "identity"}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module for ``name`` (case-insensitive; the lecture letters work too)."""
    key = name.lower()
    key = ALIASES.get(key, key)
    if key not in ACTIVATIONS:
        accepted = ", ".join(sorted(ACTIVATIONS) + sorted(k.upper() for k in ALIASES))
        raise ValueError(f"unknown activation {name!r}; accepted: {accepted}")
    return ACTIVATIONS[key]()
