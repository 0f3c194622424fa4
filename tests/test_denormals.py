"""A run flushes denormal floats to zero on the CPU (``agents.dqn.build.configure_torch``): Adam's
first moments of weights whose gradient stays 0 decay below 1.2e-38, where x86 CPUs slow down
about a hundredfold, and flushing them changes no weight by more than 1e-37 (a zero bias stays 0
instead of drifting to -1.3e-38)."""

from __future__ import annotations

import torch

from agents.dqn.agent import build_optimizer
from agents.dqn.build import configure_torch
from agents.dqn.config import TrainConfig

SUBNORMAL = 1e-39  # below torch.finfo(torch.float32).tiny = 1.18e-38, above 0


def test_a_run_flushes_denormals_and_torch_by_default_does_not():
    threads = torch.get_num_threads()
    try:
        with torch.random.fork_rng():
            configure_torch(TrainConfig(seed=0), torch.device("cpu"), image_obs=True)
            assert (torch.tensor([SUBNORMAL]) * 1.0).item() == 0.0
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)
    assert 0.0 < (torch.tensor([SUBNORMAL]) * 1.0).item() < 1.2e-38


def adam_after(steps: int, flush: bool) -> list[torch.Tensor]:
    """Weights after ``steps`` Adam steps (drq's settings) from moments of which a quarter are
    denormal, their gradients 0 throughout, as a dead unit's."""
    generator = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(64, 32, generator=generator) * 0.05),
              torch.nn.Parameter(torch.zeros(64))]  # fmt: skip
    optimizer = build_optimizer(TrainConfig(learning_rate=1e-4, optimizer_eps=1.5e-4), params)
    idle = [torch.rand(p.shape, generator=generator) < 0.25 for p in params]
    grads = [
        torch.randn(p.shape, generator=generator).masked_fill(m, 0.0) for p, m in zip(params, idle)
    ]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    optimizer.step()
    for p, m in zip(params, idle):
        optimizer.state[p]["exp_avg"].masked_fill_(m, SUBNORMAL)
    try:
        torch.set_flush_denormal(flush)
        for _ in range(steps):
            optimizer.step()
    finally:
        torch.set_flush_denormal(False)
    return [p.detach().clone() for p in params]


def test_flushing_moves_no_weight_by_more_than_1e_37():
    kept, flushed = adam_after(20, flush=False), adam_after(20, flush=True)
    for a, b in zip(kept, flushed):
        assert (a - b).abs().max().item() < 1e-37
    assert any(not torch.equal(a, b) for a, b in zip(kept, flushed))  # the zero biases differ
