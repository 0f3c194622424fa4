"""The ``dqn`` benchmark suite: end-to-end DQN throughput at the ``cleanrl`` replay ratio.

Rows (Breakout, nature protocol, 1 update of batch 32 per 4 agent steps, Adam 1e-4):
- ``baseline``: a plain single-file style DQN measured in this same process: the single-env
  gymnasium chain, a replay that stores stacked observation and next observation as uint8 arrays,
  numpy sampling, and the same network and optimizer (the design of the well-known PyTorch
  single-file DQNs). It is the reference the ratios are taken against.
- ``package/N=1``, ``N=4``, ``N=16``: the trainer of ``agents.dqn.build.build_trainer`` with the
  ``cleanrl`` preset, learning from the start after a fill, eager update.
- ``update``: one eager gradient step of ``DQNAgent`` on a batch of 32 (ms); ``replay_sample``:
  microseconds per
  sampled batch of 32 stacks and next stacks; ``replay_bytes_per_transition``.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

from agents.dqn.agent import DQNAgent, build_q_network
from agents.dqn.build import build_trainer
from agents.dqn.presets import cleanrl
from agents.dqn.replay.uniform import ReplayBuffer
from envs.atari import make_atari_env

GAME = "Breakout"
FILL_STEPS = 1_000
DEFAULT_STEPS = 4_000


def baseline_steps_per_s(steps: int, fill: int = FILL_STEPS, seed: int = 0) -> float:
    """Agent steps/s of a plain single-env DQN with a stacked-observation replay."""
    env = make_atari_env(GAME, "nature", "train", seed=seed)
    n_actions = int(env.action_space.n)
    capacity = fill + steps
    obs_buf = np.zeros((capacity, 4, 84, 84), dtype=np.uint8)
    next_buf = np.zeros_like(obs_buf)
    act_buf = np.zeros(capacity, dtype=np.int64)
    rew_buf = np.zeros(capacity, dtype=np.float32)
    done_buf = np.zeros(capacity, dtype=np.float32)
    torch.manual_seed(seed)
    q = build_q_network((4, 84, 84), n_actions)
    target = build_q_network((4, 84, 84), n_actions)
    target.load_state_dict(q.state_dict())
    opt = torch.optim.Adam(q.parameters(), lr=1e-4)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset()
    start = 0.0
    for t in range(fill + steps):
        if t == fill:
            start = time.perf_counter()
        if rng.random() < 0.1:
            action = int(rng.integers(n_actions))
        else:
            with torch.no_grad():
                action = int(q(torch.from_numpy(np.asarray(obs))[None]).argmax(1)[0])
        next_obs, reward, terminated, truncated, _ = env.step(action)
        obs_buf[t], next_buf[t], act_buf[t] = obs, next_obs, action
        rew_buf[t], done_buf[t] = reward, float(terminated)
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
        if t >= fill and t % 4 == 0:
            idx = rng.integers(0, t + 1, 32)
            o = torch.from_numpy(obs_buf[idx])
            n = torch.from_numpy(next_buf[idx])
            with torch.no_grad():
                y = torch.from_numpy(rew_buf[idx]) + 0.99 * target(n).max(1).values * (
                    1 - torch.from_numpy(done_buf[idx])
                )
            pred = q(o).gather(1, torch.from_numpy(act_buf[idx])[:, None]).squeeze(1)
            loss = F.mse_loss(pred, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if t % 1000 == 0:
            target.load_state_dict(q.state_dict())
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def package_steps_per_s(num_envs: int, steps: int, fill: int = FILL_STEPS) -> float:
    """Agent steps/s of the package's loop once updates run (cleanrl ratio, eager update)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = cleanrl().replace(
            env=GAME, num_envs=num_envs, total_steps=fill + steps, learning_starts=fill,
            buffer_size=max(10_000, fill + steps), epsilon_decay_steps=fill, eval_every_steps=0,
            final_eval_episodes=0, record_video=False, progress=False, output_dir=tmp,
            checkpoint_every_steps=10**9, device="cpu",
        )  # fmt: skip
        trainer = build_trainer(config)
        summary = trainer.run()
    return float(summary["learning_sps"])


def update_and_sample_costs(repeats: int = 50) -> dict[str, float]:
    """Eager update ms (batch 32), replay sample microseconds, replay bytes per transition."""
    replay = ReplayBuffer(10_000, 1, (84, 84), frame_stack=4)
    rng = np.random.default_rng(0)
    replay.start(rng.integers(0, 255, (1, 4, 84, 84), dtype=np.uint8))
    for t in range(5_000):
        obs = rng.integers(0, 255, (1, 4, 84, 84), dtype=np.uint8)
        replay.add([t % 4], [0.0], [t % 500 == 499], [False], obs)
    replay.sample(32)
    start = time.perf_counter()
    for _ in range(repeats * 4):
        batch = replay.sample(32)
    sample_us = (time.perf_counter() - start) / (repeats * 4) * 1e6
    agent = DQNAgent.build(cleanrl(), (4, 84, 84), 4, torch.device("cpu"), seed=0)
    agent.update(batch)
    start = time.perf_counter()
    for _ in range(repeats):
        agent.update(batch)
    update_ms = (time.perf_counter() - start) / repeats * 1e3
    full = ReplayBuffer(1_000_000, 1, (84, 84), frame_stack=4)
    per_transition = full.nbytes / 1_000_000
    del full
    return {"update_ms": update_ms, "sample_us": sample_us, "bytes_per_transition": per_transition}


def dqn_suite(steps: int | None = None) -> dict[str, dict[str, float]]:
    steps = DEFAULT_STEPS if steps is None else steps
    base = baseline_steps_per_s(steps)
    rows = {
        "baseline (stacked replay, single env)": {"steps_per_s": round(base, 1), "vs_baseline": 1.0}
    }
    for n in (1, 4, 16):
        sps = package_steps_per_s(n, steps)
        rows[f"package N={n}"] = {"steps_per_s": round(sps, 1), "vs_baseline": round(sps / base, 2)}
    costs = update_and_sample_costs()
    rows["update (eager, batch 32)"] = {"ms": round(costs["update_ms"], 2)}
    rows["replay sample (batch 32)"] = {"us": round(costs["sample_us"], 1)}
    rows["replay bytes per transition (1M)"] = {"bytes": round(costs["bytes_per_transition"], 1)}
    return rows
