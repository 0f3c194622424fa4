"""Heads that turn a torso's features into outputs, and the ``Network`` that joins the two.

A network is a torso plus a head, composed per variant (as in DQN Zoo): the plain Q-network, its
Rainbow variants (Hessel et al. 2018) and the supervised classifiers differ only in the head.

- ``QHead``: one linear layer (Mnih et al. 2015), optionally noisy, optionally after a hidden layer.
- ``DuelingHead``: Wang et al. 2016, "Dueling Network Architectures", Q = V + A - mean_a A.
- ``DistributionalHead``: C51, Bellemare et al. 2017: per action a softmax over a fixed support of
  atoms; ``forward`` gives Q = sum_z z p(z) so acting works as with any Q head. Its dueling form
  adds V and mean-subtracted A before the softmax, as in Rainbow.
- ``noisy=True`` swaps every linear layer of a head for ``NoisyLinear`` (Fortunato et al. 2018);
  ``reset_noise(module)`` redraws the noise of all of them.
- ``hidden``: each stream's own ReLU hidden layer. The dueling network (Wang et al. 2016, 4.1)
  and Rainbow's (Hessel et al. 2018) split right after the convolutions into a value stream and
  an advantage stream, each a 512-unit hidden layer then an output layer, all noisy in Rainbow:
  ``NatureCNN(features=0)`` with ``hidden=512`` builds that (``agents.dqn.agent.build_q_network``).
"""

from __future__ import annotations

import torch
from torch import nn

from networks.noisy import NoisyLinear, reset_noise

__all__ = [
    "ClassifierHead",
    "DistributionalHead",
    "DuelingHead",
    "Network",
    "NoisyLinear",
    "QHead",
    "reset_noise",
]


def _linear(in_features: int, out_features: int, noisy: bool, sigma0: float = 0.5) -> nn.Module:
    if noisy:
        return NoisyLinear(in_features, out_features, sigma0)
    return nn.Linear(in_features, out_features)


def _stream(
    in_features: int, out_features: int, hidden: int, noisy: bool, sigma0: float = 0.5
) -> nn.Module:
    """One linear layer, or linear -> ReLU -> linear when ``hidden`` > 0."""
    if hidden == 0:
        return _linear(in_features, out_features, noisy, sigma0)
    return nn.Sequential(
        _linear(in_features, hidden, noisy, sigma0),
        nn.ReLU(),
        _linear(hidden, out_features, noisy, sigma0),
    )


def _check_sizes(in_features: int, num_actions: int, hidden: int) -> None:
    if in_features < 1:
        raise ValueError(f"in_features must be >= 1, got {in_features}")
    if num_actions < 1:
        raise ValueError(f"num_actions must be >= 1, got {num_actions}")
    if hidden < 0:
        raise ValueError(f"hidden must be >= 0 (0: no hidden layer), got {hidden}")


class QHead(nn.Module):
    """One linear layer: features -> one action value per action (Mnih et al. 2015).

    ``hidden`` > 0 puts a ReLU hidden layer of that width before it (the Noisy-Nets DQN of
    Fortunato et al. 2018, whose 512-unit layer is noisy too, on a conv-only torso)."""

    def __init__(
        self,
        in_features: int,
        num_actions: int,
        *,
        noisy: bool = False,
        sigma0: float = 0.5,
        hidden: int = 0,
    ) -> None:
        super().__init__()
        _check_sizes(in_features, num_actions, hidden)
        self.linear = _stream(in_features, num_actions, hidden, noisy, sigma0)
        self.num_actions = num_actions

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)


class DuelingHead(nn.Module):
    """Value and advantage streams joined as Q = V + A - mean_a A (Wang et al. 2016, eq. 9).

    ``hidden`` > 0 puts a ReLU hidden layer of that width in each stream; the default 0 maps the
    torso's features (512 for ``NatureCNN``, which already ends in a hidden layer) straight to V
    and A.
    """

    def __init__(
        self,
        in_features: int,
        num_actions: int,
        hidden: int = 0,
        noisy: bool = False,
        sigma0: float = 0.5,
    ) -> None:
        super().__init__()
        _check_sizes(in_features, num_actions, hidden)
        self.value = _stream(in_features, 1, hidden, noisy, sigma0)
        self.advantage = _stream(in_features, num_actions, hidden, noisy, sigma0)
        self.num_actions = num_actions

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        value = self.value(features)  # (B, 1)
        advantage = self.advantage(features)  # (B, A)
        return value + advantage - advantage.mean(dim=1, keepdim=True)


class DistributionalHead(nn.Module):
    """C51: per action, log-probabilities over ``num_atoms`` atoms evenly spaced in [v_min, v_max].

    ``log_probs(features)`` is (B, A, atoms), a log_softmax over the atoms; ``forward`` returns
    Q = sum_z z p(z), (B, A). With ``dueling`` the logits are V (B, 1, atoms) + A - mean_a A
    (Hessel et al. 2018). ``hidden`` as in ``DuelingHead`` (0: no hidden layer).
    """

    def __init__(
        self,
        in_features: int,
        num_actions: int,
        num_atoms: int = 51,
        v_min: float = -10.0,
        v_max: float = 10.0,
        dueling: bool = False,
        noisy: bool = False,
        hidden: int = 0,
        sigma0: float = 0.5,
    ) -> None:
        super().__init__()
        _check_sizes(in_features, num_actions, hidden)
        if num_atoms < 2:
            raise ValueError(f"num_atoms must be >= 2, got {num_atoms}")
        if not v_min < v_max:
            raise ValueError(f"v_min must be below v_max, got v_min={v_min}, v_max={v_max}")
        self.num_actions = num_actions
        self.num_atoms = num_atoms
        self.dueling = dueling
        self.register_buffer("support", torch.linspace(v_min, v_max, num_atoms))
        # Per-action logits (the advantage stream when dueling), and the value stream.
        self.actions = _stream(in_features, num_actions * num_atoms, hidden, noisy, sigma0)
        self.value = _stream(in_features, num_atoms, hidden, noisy, sigma0) if dueling else None

    def log_probs(self, features: torch.Tensor) -> torch.Tensor:
        """(B, A, atoms) log-probabilities of the return distribution of each action."""
        logits = self.actions(features).view(-1, self.num_actions, self.num_atoms)
        if self.value is not None:
            value = self.value(features).view(-1, 1, self.num_atoms)
            logits = value + logits - logits.mean(dim=1, keepdim=True)
        return torch.log_softmax(logits, dim=-1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (self.log_probs(features).exp() * self.support).sum(dim=-1)


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

    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities over the atoms, (batch, actions, atoms): distributional heads only."""
        if not hasattr(self.head, "log_probs"):
            raise TypeError(f"{type(self.head).__name__} has no return distribution")
        return self.head.log_probs(self.torso(x))

    @property
    def support(self) -> torch.Tensor:
        """The atoms of a distributional head's support, (atoms,)."""
        if not hasattr(self.head, "support"):
            raise TypeError(f"{type(self.head).__name__} has no return distribution")
        return self.head.support
