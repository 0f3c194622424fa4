"""The ``drq`` benchmark suite: what Dopamine's network costs the ``drq`` update on this machine.

Two networks, everything else the ``drq`` preset (augmentation, 10-step double and dueling
targets, Adam, target sync after each update), on random 4x84x84 uint8 batches of 32, eager,
one process: ``valid`` (the paper's convolutions, 3,136 features, PyTorch's initial weights: what
``drq`` ran before it matched Dopamine) and ``dopamine`` (the preset: 'SAME' convolutions, 7,744
features, Glorot-uniform weights). They are timed in alternating rounds so that a machine whose
speed drifts slows both alike; ``vs_valid`` is each one's time over the first's. ``act_ms`` is one
batch-1 forward pass (acting), ``params`` the network's size.

The augmentation, against the way ``drq`` first did it (``previous_augment``: a gather of rows
then one of columns, whose indices span every channel, and the brightness scaling in two passes
that each allocate), also in alternating rounds: ``augment`` and ``augment, previous`` time both
augmentations of one update (observations and next observations); ``dopamine, previous
augmentation`` is the whole update with the previous augmentation put back in the agent, so
``vs_valid`` of it and of ``dopamine`` show what the change saves per update.

Denormals: ``adam, denormals kept`` and ``adam, denormals flushed`` time Adam's step on
Dopamine's network when 16% of its first moments are floats below 1.2e-38 (Boxing's share after
40k updates of ``drq``: the moments of weights whose gradient stays 0 decay there), with the CPU
handling them and with them flushed to zero as a run sets it (``agents.dqn.build.configure_torch``),
in alternating rounds from the same state.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch

import agents.dqn.agent as agent_module
from agents.dqn.agent import DQNAgent, build_optimizer, build_q_network
from agents.dqn.augment import augment_batch, random_offsets
from agents.dqn.presets import drq
from agents.dqn.replay.uniform import Batch

VARIANTS = {
    "valid": {"conv_padding": "valid", "weight_init": "torch"},
    "dopamine": {},
}


def random_batch(generator: torch.Generator, size: int = 32) -> Batch:
    obs = torch.randint(0, 256, (size, 4, 84, 84), dtype=torch.uint8, generator=generator)
    nxt = torch.randint(0, 256, (size, 4, 84, 84), dtype=torch.uint8, generator=generator)
    action = torch.randint(0, 6, (size,), generator=generator)
    reward = torch.rand(size, generator=generator)
    zeros = torch.zeros(size, dtype=torch.long)
    return Batch(obs, action, reward, nxt, torch.full((size,), 0.99**10), zeros, zeros)


def previous_augment(
    images: torch.Tensor, pad: int, intensity: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``augment_batch`` as ``drq`` first computed it: the same random draws and the same numbers,
    by a gather of rows then one of columns and two allocating passes of scaling."""
    b, c, h, w = images.shape
    offsets = random_offsets(b, pad, images.device, generator)
    rows = (torch.arange(h) + (offsets[:, :1] - pad)).clamp_(0, h - 1)[:, None, :, None]
    cols = (torch.arange(w) + (offsets[:, 1:] - pad)).clamp_(0, w - 1)[:, None, None, :]
    out = images.gather(2, rows.expand(b, c, h, w)).gather(3, cols.expand(b, c, h, w))
    x = out.float() * (1.0 / 255.0)
    n = torch.randn((b, 1, 1, 1), generator=generator)
    return x * (1.0 + intensity * n.clamp(-2.0, 2.0))


@contextlib.contextmanager
def previous_augmentation() -> Iterator[None]:
    """The agent's update augments with ``previous_augment`` inside the block."""
    current = agent_module.augment_batch
    agent_module.augment_batch = previous_augment
    try:
        yield
    finally:
        agent_module.augment_batch = current


def drq_suite(steps: int | None = None) -> dict[str, dict[str, float]]:
    updates = steps or 200
    rounds = 5
    per_round = updates // rounds
    generator = torch.Generator().manual_seed(0)
    batches = [random_batch(generator) for _ in range(8)]
    variants = {**VARIANTS, "dopamine, previous augmentation": {}}
    agents = {}
    for name, change in variants.items():
        config = drq().replace(compile="off", **change)
        agents[name] = DQNAgent.build(config, (4, 84, 84), 6, torch.device("cpu"), seed=0)
    augmentations = {"augment": augment_batch, "augment, previous": previous_augment}
    update_s = dict.fromkeys(variants, 0.0)
    act_s = dict.fromkeys(variants, 0.0)
    augment_s = dict.fromkeys(augmentations, 0.0)
    one = batches[0].obs[:1]

    def updates_of(name: str, agent: DQNAgent, count: int) -> None:
        previous = name.endswith("previous augmentation")
        with previous_augmentation() if previous else contextlib.nullcontext():
            for i in range(count):
                agent.update(batches[i % len(batches)])
                agent.sync_target()

    for name, agent in agents.items():  # warm-up: allocator, oneDNN kernels
        updates_of(name, agent, 3)
        agent.act(one, 0.01)
    for _ in range(rounds):
        for name, agent in agents.items():
            start = time.perf_counter()
            updates_of(name, agent, per_round)
            update_s[name] += time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(per_round):
                agent.act(one, 0.01)
            act_s[name] += time.perf_counter() - start
        for name, augment in augmentations.items():
            start = time.perf_counter()
            for i in range(per_round):
                batch = batches[i % len(batches)]
                augment(batch.obs, 4, 0.05, generator)
                augment(batch.next_obs, 4, 0.05, generator)
            augment_s[name] += time.perf_counter() - start
    n = per_round * rounds
    base = update_s["valid"]
    results: dict[str, dict[str, float]] = {
        name: {
            "update_ms": round(update_s[name] / n * 1e3, 2),
            "vs_valid": round(update_s[name] / base, 3),
            "act_ms": round(act_s[name] / n * 1e3, 3),
            "params": sum(p.numel() for p in agents[name].online.parameters()),
        }
        for name in variants
    }
    previous = augment_s["augment, previous"]
    for name, seconds in augment_s.items():
        results[name] = {
            "augment_ms": round(seconds / n * 1e3, 3),
            "vs_previous": round(seconds / previous, 3),
        }
    results.update(denormal_rows(per_round, rounds))
    return results


DENORMAL_SHARE = 0.16


def denormal_rows(steps: int, rounds: int) -> dict[str, dict[str, float]]:
    """Adam's step with 16% denormal first moments, kept and flushed (the module docstring)."""
    generator = torch.Generator().manual_seed(1)
    config = drq()
    network = build_q_network((4, 84, 84), 6, config=config)
    params = list(network.parameters())
    optimizer = build_optimizer(config, params)
    for p in params:
        grad = torch.randn(p.shape, generator=generator) * 1e-3
        idle = torch.rand(p.shape, generator=generator) < DENORMAL_SHARE
        p.grad = grad.masked_fill(idle, 0.0)
    optimizer.step()  # creates the moments
    for p in params:
        optimizer.state[p]["exp_avg"].masked_fill_(p.grad == 0, 1e-39)
    start_state = [{k: v.clone() for k, v in optimizer.state[p].items()} for p in params]
    start_params = [p.detach().clone() for p in params]
    seconds = {"adam, denormals kept": 0.0, "adam, denormals flushed": 0.0}
    try:
        for _ in range(rounds):
            for name in seconds:
                torch.set_flush_denormal(name.endswith("flushed"))
                with torch.no_grad():
                    for p, saved, state in zip(params, start_params, start_state):
                        p.copy_(saved)
                        for key, value in state.items():
                            optimizer.state[p][key].copy_(value)
                start = time.perf_counter()
                for _ in range(steps):
                    optimizer.step()
                seconds[name] += time.perf_counter() - start
    finally:
        torch.set_flush_denormal(False)  # torch's default, for what runs after in this process
    kept = seconds["adam, denormals kept"]
    return {
        name: {"adam_ms": round(s / (steps * rounds) * 1e3, 3), "vs_kept": round(s / kept, 3)}
        for name, s in seconds.items()
    }
