"""Shared building blocks (torch only): activations, MLP, conv torsos, heads, lecture filters."""

from networks.activations import make_activation
from networks.cnn import LeNet5, NatureCNN
from networks.heads import ClassifierHead, Network, QHead
from networks.mlp import MLP

__all__ = ["MLP", "ClassifierHead", "LeNet5", "NatureCNN", "Network", "QHead", "make_activation"]
