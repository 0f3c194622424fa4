"""The ``drq`` benchmark suite: what Dopamine's network costs the ``drq`` update on this machine.

Two networks, everything else the ``drq`` preset (augmentation, 10-step double and dueling
targets, Adam, target sync after each update), on random 4x84x84 uint8 batches of 32, eager,
one process: ``valid`` (the paper's convolutions, 3,136 features, PyTorch's initial weights: what
``drq`` ran before it matched Dopamine) and ``dopamine`` (the preset: 'SAME' convolutions, 7,744
features, Glorot-uniform weights). They are timed in alternating rounds so that a machine whose
speed drifts slows both alike; ``vs_valid`` is each one's time over the first's. ``act_ms`` is one
batch-1 forward pass (acting), ``params`` the network's size.
"""

from __future__ import annotations

import time

import torch

from agents.dqn.agent import DQNAgent
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


def drq_suite(steps: int | None = None) -> dict[str, dict[str, float]]:
    updates = steps or 200
    rounds = 5
    generator = torch.Generator().manual_seed(0)
    batches = [random_batch(generator) for _ in range(8)]
    agents = {}
    for name, change in VARIANTS.items():
        config = drq().replace(compile="off", **change)
        agents[name] = DQNAgent.build(config, (4, 84, 84), 6, torch.device("cpu"), seed=0)
    update_s = dict.fromkeys(VARIANTS, 0.0)
    act_s = dict.fromkeys(VARIANTS, 0.0)
    one = batches[0].obs[:1]
    for agent in agents.values():  # warm-up: allocator, oneDNN kernels
        for b in batches[:3]:
            agent.update(b)
            agent.sync_target()
        agent.act(one, 0.01)
    for _ in range(rounds):
        for name, agent in agents.items():
            start = time.perf_counter()
            for i in range(updates // rounds):
                agent.update(batches[i % len(batches)])
                agent.sync_target()
            update_s[name] += time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(updates // rounds):
                agent.act(one, 0.01)
            act_s[name] += time.perf_counter() - start
    n = (updates // rounds) * rounds
    base = update_s["valid"]
    return {
        name: {
            "update_ms": round(update_s[name] / n * 1e3, 2),
            "vs_valid": round(update_s[name] / base, 3),
            "act_ms": round(act_s[name] / n * 1e3, 3),
            "params": sum(p.numel() for p in agents[name].online.parameters()),
        }
        for name in VARIANTS
    }
