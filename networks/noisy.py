"""Noisy linear layers with factorised Gaussian noise, and a helper that redraws their noise.

Follows Fortunato et al. 2018, "Noisy Networks for Exploration", section 3 (factorised noise, as
Rainbow uses it, Hessel et al. 2018): the layer computes ``y = (mu_w + sigma_w * eps_w) x + mu_b +
sigma_b * eps_b`` with ``eps_w = f(eps_out) f(eps_in)^T`` and ``eps_b = f(eps_out)``, where
``eps_in`` (p = in_features values) and ``eps_out`` (q = out_features values) are standard normal
and ``f(x) = sign(x) sqrt(|x|)``. Initialisation (section 3.2): mu ~ U(-1/sqrt(p), 1/sqrt(p)) and
sigma = sigma0 / sqrt(p), for weights and biases alike, with sigma0 = 0.5.

The noise stays fixed between calls to ``reset_noise()``; in ``eval()`` mode only mu is used, so
evaluation is deterministic.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def scale_noise(eps: torch.Tensor) -> torch.Tensor:
    """The paper's f(x) = sign(x) sqrt(|x|)."""
    return eps.sign() * eps.abs().sqrt()


class NoisyLinear(nn.Module):
    """A linear layer ``in_features -> out_features`` with learnt, factorised Gaussian noise.

    Parameters ``weight_mu``, ``weight_sigma`` (q, p) and ``bias_mu``, ``bias_sigma`` (q,); buffers
    ``eps_in`` (p,) and ``eps_out`` (q,) hold the current noise factors already passed through f,
    so they follow ``.to(device)`` and are saved in the ``state_dict``.
    """

    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"NoisyLinear sizes must be positive, got in_features={in_features}, "
                f"out_features={out_features}"
            )
        if not sigma0 >= 0.0:
            raise ValueError(f"sigma0 must be >= 0, got {sigma0}")
        self.in_features = in_features
        self.out_features = out_features
        self.sigma0 = sigma0
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_sigma = nn.Parameter(torch.empty(out_features, in_features))
        self.bias_mu = nn.Parameter(torch.empty(out_features))
        self.bias_sigma = nn.Parameter(torch.empty(out_features))
        self.register_buffer("eps_in", torch.zeros(in_features))
        self.register_buffer("eps_out", torch.zeros(out_features))
        self.reset_parameters()
        self.reset_noise()

    def reset_parameters(self) -> None:
        """mu ~ U(-1/sqrt(p), 1/sqrt(p)), sigma = sigma0 / sqrt(p) (Fortunato et al., 3.2)."""
        bound = 1.0 / math.sqrt(self.in_features)
        with torch.no_grad():
            self.weight_mu.uniform_(-bound, bound)
            self.bias_mu.uniform_(-bound, bound)
            self.weight_sigma.fill_(self.sigma0 * bound)
            self.bias_sigma.fill_(self.sigma0 * bound)

    @torch.no_grad()
    def reset_noise(self, generator: torch.Generator | None = None) -> None:
        """Draw new eps_in and eps_out in place (global RNG unless ``generator`` is given)."""
        self.eps_in.normal_(generator=generator)
        self.eps_out.normal_(generator=generator)
        self.eps_in.copy_(scale_noise(self.eps_in))
        self.eps_out.copy_(scale_noise(self.eps_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight_mu, self.bias_mu)
        if not self.training:
            return out
        # (sigma_w * eps_out eps_in^T) x == eps_out * (sigma_w (eps_in * x)): no (q, p) noise matrix
        # is ever built.
        noise = F.linear(x * self.eps_in, self.weight_sigma) + self.bias_sigma
        return out + noise * self.eps_out

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"sigma0={self.sigma0}"
        )


def reset_noise(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Redraw the noise of every ``NoisyLinear`` inside ``module`` (a head or a whole network)."""
    for layer in module.modules():
        if isinstance(layer, NoisyLinear):
            layer.reset_noise(generator)
