"""The categorical (C51) projection of a target return distribution onto a fixed support.

Follows Bellemare et al. 2017, "A Distributional Perspective on Reinforcement Learning",
Algorithm 1: each atom z_j of the next-state distribution moves to ``r + discount * z_j``, is
clipped to [v_min, v_max], and its probability is split between the two neighbouring support
points in proportion to closeness. An atom that lands exactly on a support point (floor == ceil)
puts all its mass there, so no probability is lost. A discount of 0 marks a terminal transition:
all mass goes to the neighbours of clip(r).
"""

from __future__ import annotations

import torch


def categorical_projection(
    next_probs: torch.Tensor,
    rewards: torch.Tensor,
    discounts: torch.Tensor,
    support: torch.Tensor,
) -> torch.Tensor:
    """Project ``r + discount * z`` with probabilities ``next_probs`` onto ``support``.

    ``next_probs`` (B, atoms) rows sum to 1; ``rewards`` and ``discounts`` (B,) (the discount
    already holds gamma^n and is 0 for terminal transitions); ``support`` (atoms,) evenly spaced
    from v_min to v_max. Returns (B, atoms) probabilities, rows summing to 1. Vectorised, no loop.
    """
    if support.ndim != 1 or support.shape[0] < 2:
        raise ValueError(
            f"support must be 1-D with at least 2 atoms, got shape {tuple(support.shape)}"
        )
    num_atoms = support.shape[0]
    if next_probs.ndim != 2 or next_probs.shape[1] != num_atoms:
        raise ValueError(
            f"next_probs must be (batch, {num_atoms}) to match the support, "
            f"got shape {tuple(next_probs.shape)}"
        )
    batch = next_probs.shape[0]
    if tuple(rewards.shape) != (batch,) or tuple(discounts.shape) != (batch,):
        raise ValueError(
            f"rewards and discounts must be ({batch},), "
            f"got {tuple(rewards.shape)} and {tuple(discounts.shape)}"
        )
    dtype = next_probs.dtype
    z = support.to(dtype)
    v_min, v_max = z[0], z[-1]
    delta_z = (v_max - v_min) / (num_atoms - 1)
    target_z = rewards.to(dtype)[:, None] + discounts.to(dtype)[:, None] * z[None, :]
    target_z = torch.minimum(torch.maximum(target_z, v_min), v_max)
    # Fractional index of each moved atom; clamped so rounding cannot step outside the support.
    b = ((target_z - v_min) / delta_z).clamp(0, num_atoms - 1)
    lower = b.floor()
    upper_weight = b - lower  # 0 when b sits on a support point: all mass to `lower`
    lower_index = lower.long()
    upper_index = (lower_index + 1).clamp(max=num_atoms - 1)
    projected = torch.zeros_like(next_probs)
    projected.scatter_add_(1, lower_index, next_probs * (1.0 - upper_weight))
    projected.scatter_add_(1, upper_index, next_probs * upper_weight)
    return projected
