"""DeepMind's centred RMSProp, the optimizer of the Nature DQN.

The Nature DQN (Mnih et al. 2015; DeepMind's released ``NeuralQLearner.lua``) and DQN Zoo
(``optax.rmsprop(decay=0.95, centered=True)``) keep, per parameter, running averages of the
gradient and of its square and step by the gradient over their standard deviation, with the
constant added *inside* the square root::

    mu    <- alpha mu + (1 - alpha) g
    nu    <- alpha nu + (1 - alpha) g^2
    theta <- theta - lr g / sqrt(nu - mu^2 + eps)

with mu and nu starting at 0 and no momentum. torch's ``RMSprop(centered=True)`` instead divides
by ``sqrt(nu - mu^2) + eps``; with the Nature constants its steps are 1.3x to 3.4x smaller than
these, so it is not the same optimizer.

Units of ``eps``: DeepMind's original summed the clipped per-sample gradients of a batch and used
eps = 0.01 (the "min squared gradient" of Extended Data Table 1). For a loss averaged over a
batch of B the gradients are 1/B as large and the same step needs eps = 0.01 / B^2; DQN Zoo uses
0.01 / 32^2 for its batch-mean loss, as the ``nature`` preset does (the package's losses are
batch means).
"""

from __future__ import annotations

import torch


class CenteredRMSprop(torch.optim.Optimizer):
    """Centred RMSProp with eps inside the square root (module docstring).

    The state of each parameter is ``step``, ``grad_avg`` (mu) and ``square_avg`` (nu), the names
    torch's ``RMSprop`` uses for the same averages.
    """

    def __init__(self, params, lr: float, alpha: float = 0.95, eps: float = 0.01 / 32**2) -> None:
        if not lr > 0:
            raise ValueError(f"CenteredRMSprop lr must be > 0, got {lr}")
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"CenteredRMSprop alpha must be in (0, 1), got {alpha}")
        if not eps > 0:
            raise ValueError(f"CenteredRMSprop eps must be > 0, got {eps}")
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, mus, nus = [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "square_avg" not in state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                params.append(p)
                grads.append(p.grad)
                mus.append(state["grad_avg"])
                nus.append(state["square_avg"])
            if not params:
                continue
            alpha, lr, eps = group["alpha"], group["lr"], group["eps"]
            torch._foreach_lerp_(mus, grads, 1.0 - alpha)  # alpha mu + (1 - alpha) g
            torch._foreach_mul_(nus, alpha)
            torch._foreach_addcmul_(nus, grads, grads, value=1.0 - alpha)
            denom = torch._foreach_addcmul(nus, mus, mus, value=-1.0)  # nu - mu^2
            torch._foreach_add_(denom, eps)
            torch._foreach_sqrt_(denom)
            torch._foreach_addcdiv_(params, grads, denom, value=-lr)
        return loss
