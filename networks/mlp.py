"""Multilayer perceptron of any depth and width (the lecture's MLP), with optional dropout.

Dropout follows Srivastava et al. 2014 (inverted dropout, as ``torch.nn.Dropout`` implements it):
applied after every hidden activation, never after the output layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from networks.activations import make_activation


class MLP(nn.Module):
    """Linear layers ``in_features -> hidden[0] -> ... -> out_features`` with an activation between.

    With ``out_features=None`` the module is a torso: it ends with the last hidden activation and
    ``self.out_features`` is the last hidden width, so a head can be put on top.
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (64, 64),
        out_features: int | None = None,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if in_features < 1 or any(h < 1 for h in hidden):
            raise ValueError(
                f"MLP sizes must be positive, got in_features={in_features}, hidden={list(hidden)}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if out_features is None and not hidden:
            raise ValueError("an MLP torso (out_features=None) needs at least one hidden layer")
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), make_activation(activation)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        if out_features is not None:
            layers.append(nn.Linear(width, out_features))
            width = out_features
        self.layers = nn.Sequential(*layers)
        self.in_features = in_features
        self.out_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1).float())
