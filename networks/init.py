"""Weight initialisation schemes for the convolutional and (non-noisy) linear layers of a network.

- ``torch``: PyTorch's defaults (each layer's ``reset_parameters``: Kaiming-uniform weights with
  a = sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and biases of the same bound).
- ``xavier``: Glorot-uniform weights (Glorot & Bengio 2010), U(-b, b) with
  b = sqrt(6 / (fan_in + fan_out)), and zero biases. This is what Dopamine's JAX networks use
  (``dopamine/jax/networks.py``: ``kernel_init=nn.initializers.xavier_uniform()`` with flax's
  default zero bias), the ``FullRainbowNetwork`` behind the published Atari-100k DER and
  DrQ(epsilon) runs among them. For a convolution both fans include the kernel's area, as in flax.

``NoisyLinear`` layers keep their own initialisation (Fortunato et al. 2018) under both schemes.
"""

from __future__ import annotations

from torch import nn

WEIGHT_INITS = ("torch", "xavier")


def initialize(module: nn.Module, scheme: str) -> nn.Module:
    """Apply ``scheme`` (one of ``WEIGHT_INITS``) to the ``nn.Linear`` and ``nn.Conv2d`` layers of
    ``module`` whose own ``reset_parameters`` has just drawn PyTorch's defaults (a new network, or
    layers being reset): nothing to redraw for ``torch``; for ``xavier`` their weights are redrawn
    from torch's global generator and their biases zeroed. Returns ``module``."""
    if scheme not in WEIGHT_INITS:
        raise ValueError(
            f"weight init {scheme!r} is not accepted; use one of {', '.join(WEIGHT_INITS)}"
        )
    if scheme == "torch":
        return module
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module
