"""The ``rainbow`` benchmark suite: the update cost of each Rainbow component relative to plain
DQN (Nature CNN, batch 32, 4x84x84 uint8 stacks, eager, CPU), measured in one process, and the
prioritized sampler's throughput at 1M transitions."""

from __future__ import annotations

import time

import numpy as np
import torch

from agents.dqn.agent import DQNAgent
from agents.dqn.presets import cleanrl
from agents.dqn.replay.prioritized import PrioritizedReplay, PrioritizedSampler, benchmark_sampling
from agents.dqn.replay.uniform import ReplayBuffer

VARIANTS = {
    "plain DQN": {},
    "double": {"double_dqn": True},
    "dueling": {"dueling": True},
    "3-step": {"n_step": 3},
    "prioritized": {"prioritized": True},
    "distributional": {"distributional": True},
    "noisy": {"noisy": True},
    "all six": {
        "double_dqn": True,
        "dueling": True,
        "n_step": 3,
        "prioritized": True,
        "distributional": True,
        "noisy": True,
    },  # fmt: skip
}


def update_ms(switches: dict, repeats: int) -> float:
    """Mean milliseconds of sample + update (+ priority write-back) on a filled replay."""
    config = cleanrl().replace(**switches)
    replay = ReplayBuffer(5_000, 1, (84, 84), n_step=config.n_step, seed=0)
    store = replay
    if config.prioritized:
        store = PrioritizedReplay(replay, PrioritizedSampler(replay.slots, beta_steps=10_000))
    rng = np.random.default_rng(0)
    store.start(rng.integers(0, 255, (1, 4, 84, 84), dtype=np.uint8))
    for t in range(2_000):
        frame = rng.integers(0, 255, (1, 4, 84, 84), dtype=np.uint8)
        store.add([t % 6], [float(t % 3 == 0)], [t % 400 == 399], [False], frame)
    agent = DQNAgent.build(config, (4, 84, 84), 6, torch.device("cpu"), seed=0)

    def step() -> None:
        batch = store.sample(32, 0)
        metrics = agent.update(batch)
        if config.prioritized:
            store.update_priorities(batch, metrics["td_error"])

    step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats * 1e3


def rainbow_suite(steps: int | None = None) -> dict[str, dict[str, float]]:
    repeats = steps or 30
    rows: dict[str, dict[str, float]] = {}
    base = update_ms({}, repeats)
    for name, switches in VARIANTS.items():
        ms = base if not switches else update_ms(switches, repeats)
        rows[f"update: {name}"] = {"ms": round(ms, 2), "vs_plain": round(ms / base, 2)}
    per = benchmark_sampling(capacity=1_000_000, batch_size=32, repeats=200)
    rows["prioritized sample (1M, batch 32)"] = {"us": round(per["sample_us"], 1)}
    rows["prioritized priority update (batch 32)"] = {"us": round(per["update_us"], 1)}
    return rows
