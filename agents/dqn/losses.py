"""The DQN family's losses as pure functions: networks, batch and flags in; loss, mean Q of the
taken actions and per-sample priorities out. Nothing here reads or changes an agent's state.

Batches carry ``discount`` = gamma^n, or 0 after a termination (a truncated episode bootstraps),
so the targets need no terminal flag: ``y = r + discount * Q_target(s', a*)``. ``dqn_loss``
follows Mnih et al. 2015 (Huber "error clipping") with the Double DQN target of van Hasselt et
al. 2016 as a flag; ``c51_loss`` Bellemare et al. 2017. ``CompiledLoss`` is the one place the
update is compiled.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import nn

from agents.dqn.replay.uniform import Batch
from networks import Network, categorical_projection

LossTerms = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # loss, mean Q taken, priorities


def td_target(
    reward: torch.Tensor,
    discount: torch.Tensor,
    next_q_target: torch.Tensor,
    next_q_online: torch.Tensor | None = None,
) -> torch.Tensor:
    """``r + discount * Q_target(s', a*)``; a* = argmax of the online net when given (Double DQN),
    else of the target net."""
    chooser = next_q_target if next_q_online is None else next_q_online
    best = chooser.argmax(dim=1, keepdim=True)
    return reward + discount * next_q_target.gather(1, best).squeeze(1)


def td_loss(
    q_taken: torch.Tensor,
    target: torch.Tensor,
    kind: str = "huber",
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (importance-weighted) TD loss and the per-sample TD errors ``target - q``.

    Huber with delta 1 (the Nature paper's clipping of the error term to [-1, 1]) or squared error.
    The target is treated as a constant.
    """
    target = target.detach()
    if kind == "huber":
        per_sample = F.smooth_l1_loss(q_taken, target, reduction="none", beta=1.0)
    elif kind == "mse":
        per_sample = F.mse_loss(q_taken, target, reduction="none")
    else:
        raise ValueError(f"unknown loss {kind!r}; accepted: huber, mse")
    return weighted_mean(per_sample, weights), target - q_taken.detach()


def weighted_mean(per_sample: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Mean of the per-sample losses, each scaled by its importance weight when given
    (prioritized replay, Schaul et al. 2016)."""
    if weights is not None:
        per_sample = per_sample * weights
    return per_sample.mean()


def dqn_loss(
    online: nn.Module,
    target: nn.Module,
    batch: Batch,
    *,
    double: bool,
    kind: str = "huber",
    target_is_online: bool = False,
) -> LossTerms:
    """The DQN update's loss as a pure function: (loss, mean Q of the taken actions, per-sample
    priority |TD error|).

    ``double``: the Double DQN target (van Hasselt et al. 2016), the online network choosing the
    next action and the target network evaluating it; ``target_is_online``: the target holds the
    online weights (a hard sync since the last optimizer step, no noise), so the target's forward
    pass serves as the chooser and the online network runs once. ``kind``: huber or mse."""
    q = online(batch.obs)
    q_taken = q.gather(1, batch.action[:, None]).squeeze(1)
    with torch.no_grad():
        next_target = target(batch.next_obs)
        next_online = None
        if double:
            next_online = next_target if target_is_online else online(batch.next_obs)
        y = td_target(batch.reward, batch.discount, next_target, next_online)
    loss, td_error = td_loss(q_taken, y, kind, batch.weights)
    return loss, q_taken.detach().mean(), td_error.abs()


def c51_loss(
    online: Network,
    target: Network,
    batch: Batch,
    *,
    double: bool,
    kind: str = "huber",
    target_is_online: bool = False,
) -> LossTerms:
    """The C51 update's loss as a pure function (Bellemare et al. 2017): (importance-weighted mean
    cross-entropy between the projected target distribution and the online one, mean Q of the
    taken actions, per-sample cross-entropy as the priority, as in Rainbow).

    Both networks end in a ``DistributionalHead`` (``Network.log_probs``, ``Network.support``).
    ``double``: the online network's expected values choose the next action, else the target's.
    ``kind`` and ``target_is_online`` are accepted for a signature shared with ``dqn_loss`` and
    have no effect: the loss is a cross-entropy, and the chooser's expected values come from
    the online head (``double``) or the target's distribution (already computed)."""
    del kind, target_is_online
    support = online.support
    log_p = online.log_probs(batch.obs)  # (B, A, atoms)
    rows = torch.arange(log_p.shape[0], device=log_p.device)
    log_p_taken = log_p[rows, batch.action]
    with torch.no_grad():
        target_p = target.log_probs(batch.next_obs).exp()
        if double:
            chooser = online(batch.next_obs)
        else:
            chooser = (target_p * target.support).sum(-1)
        best = chooser.argmax(dim=1)
        projected = categorical_projection(
            target_p[rows, best], batch.reward, batch.discount, support
        )
    q_taken = (log_p_taken.detach().exp() * support).sum(-1)
    per_sample = -(projected * log_p_taken).sum(-1)
    return weighted_mean(per_sample, batch.weights), q_taken.detach().mean(), per_sample.detach()


class CompiledLoss:
    """A loss function run through ``torch.compile`` (forward and backward as one graph), compiled
    at its first call; the one place the update is compiled.

    A compiler that cannot work on this machine (no C compiler for the CPU backend, a GPU Triton
    does not support) costs one warning and the run goes on with the eager function, which
    computes the same step; an error of the loss itself is raised again by the eager call."""

    def __init__(self, fn, mode: str | None = None) -> None:
        self.eager = fn
        self.compiled = True
        self._fn = torch.compile(fn, mode=mode, dynamic=False)
        self._first = True

    def __call__(self, *args, **kwargs) -> LossTerms:
        if not self._first:
            return self._fn(*args, **kwargs)
        try:
            terms = self._fn(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - any compiler failure, reported in one line
            first_line = (str(error).strip().splitlines() or [""])[0][:200]
            print(
                f"warning: torch.compile of the update failed ({type(error).__name__}: "
                f"{first_line}); the update runs eager (--compile off avoids this attempt)",
                file=sys.stderr, flush=True,
            )  # fmt: skip
            self._fn, self.compiled = self.eager, False
            self._first = False
            return self._fn(*args, **kwargs)
        self._first = False
        return terms
