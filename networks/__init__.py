"""Shared building blocks (torch only): activations, MLP, conv torsos, heads, lecture filters."""

from networks.activations import make_activation
from networks.cnn import LeNet5, NatureCNN
from networks.distributional import categorical_projection
from networks.heads import ClassifierHead, DistributionalHead, DuelingHead, Network, QHead
from networks.init import WEIGHT_INITS, initialize
from networks.mlp import MLP
from networks.noisy import NoisyLinear, reset_noise

__all__ = [
    "MLP",
    "ClassifierHead",
    "DistributionalHead",
    "DuelingHead",
    "LeNet5",
    "NatureCNN",
    "Network",
    "NoisyLinear",
    "QHead",
    "WEIGHT_INITS",
    "categorical_projection",
    "initialize",
    "make_activation",
    "reset_noise",
]
