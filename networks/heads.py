"""Heads that turn a torso's features into outputs, and the ``Network`` that joins the two.

A network is a torso plus a head, composed per variant (as in DQN Zoo): the plain Q-network and
the supervised classifiers differ only in the head. Later variants (dueling, distributional,
noisy) add heads here.
"""

from __future__ import annotations

import torch
from torch import nn


class QHead(nn.Module):
    """One linear layer: features -> one action value per action (Mnih et al. 2015)."""

    def __init__(self, in_features: int, num_actions: int) -> None:
        super().__init__()
        if num_actions < 1:
            raise ValueError(f"num_actions must be >= 1, got {num_actions}")
        self.linear = nn.Linear(in_features, num_actions)
        self.num_actions = num_actions

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)


class ClassifierHead(nn.Module):
    """Optional dropout, then one linear layer: features -> class logits (softmax in the loss)."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(in_features, num_classes)
        self.num_classes = num_classes

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(features))


class Network(nn.Module):
    """``head(torso(x))``: the composition every agent and baseline uses."""

    def __init__(self, torso: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.torso = torso
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.torso(x))
