"""The fast path computes what the plain path computes: compiled vs eager update on the same
batch, overlapped vs sequential env stepping, and the synchronisation-free replay draw."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.dqn.agent import DQNAgent, should_compile
from agents.dqn.build import build_trainer
from agents.dqn.config import TrainConfig
from agents.dqn.loop import Trainer
from agents.dqn.presets import preset
from agents.dqn.replay.uniform import ReplayBuffer


def pixel_batch(seed: int = 0):
    replay = ReplayBuffer(3_000, 2, (84, 84), frame_stack=4, n_step=3, seed=seed)
    rng = np.random.default_rng(seed)
    replay.start(rng.integers(0, 255, (2, 4, 84, 84), dtype=np.uint8))
    for t in range(600):
        obs = rng.integers(0, 255, (2, 4, 84, 84), dtype=np.uint8)
        done = np.array([t % 50 == 49, t % 70 == 69])
        replay.add(rng.integers(4, size=2), rng.normal(size=2), done, np.zeros(2, bool), obs,
                   done, obs)  # fmt: skip
    return replay.sample(32)


@pytest.mark.parametrize(
    "switches",
    [
        {},
        pytest.param(
            {"double_dqn": True, "dueling": True, "distributional": True, "noisy": True},
            marks=pytest.mark.slow,
        ),
    ],
    ids=["dqn", "rainbow-heads"],
)
def test_compiled_update_matches_the_eager_update_on_the_same_batch(switches):
    torch.set_num_threads(1)
    batch = pixel_batch()
    agents = []
    for mode in ("off", "on"):
        config = preset("cleanrl").replace(compile=mode, **switches)
        agents.append(DQNAgent.build(config, (4, 84, 84), 4, torch.device("cpu"), seed=3))
    eager, compiled = agents
    assert not eager.compiled and compiled.compiled
    for _ in range(3):
        a, b = eager.update(batch), compiled.update(batch)
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    for p, q in zip(eager.online.parameters(), compiled.online.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
    assert eager.updates == compiled.updates == 3


def failing_compile(calls: list):
    """A stand-in for torch.compile whose compiled function fails the way a missing compiler
    does, at its first call."""

    def compile_(fn, **kwargs):
        def compiled(*args, **call_kwargs):
            calls.append(kwargs)
            raise RuntimeError("InductorError: Failed to find C compiler.\nSet CXX to one.")

        return compiled

    return compile_


def test_a_compiler_that_fails_leaves_the_eager_update_with_one_warning(monkeypatch, capsys):
    torch.set_num_threads(1)
    batch = pixel_batch()
    eager = DQNAgent.build(preset("cleanrl").replace(compile="off"), (4, 84, 84), 4,
                           torch.device("cpu"), seed=3)  # fmt: skip
    calls: list = []
    monkeypatch.setattr(torch, "compile", failing_compile(calls))
    fallen = DQNAgent.build(preset("cleanrl").replace(compile="on"), (4, 84, 84), 4,
                            torch.device("cpu"), seed=3)  # fmt: skip
    assert fallen.compiled
    for _ in range(3):
        a, b = eager.update(batch), fallen.update(batch)
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert len(calls) == 1 and not fallen.compiled and fallen.updates == 3
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "warning: torch.compile of the update failed (RuntimeError: InductorError: Failed to "
        "find C compiler.); the update runs eager (--compile off avoids this attempt)"
    ]


def test_an_error_of_the_update_itself_is_not_hidden_by_the_fallback(monkeypatch):
    batch = pixel_batch()
    monkeypatch.setattr(torch, "compile", failing_compile([]))
    agent = DQNAgent.build(preset("cleanrl").replace(compile="on"), (4, 84, 84), 4,
                           torch.device("cpu"), seed=3)  # fmt: skip
    bad = batch._replace(action=torch.full_like(batch.action, 7))  # the net has 4 actions
    with pytest.raises(RuntimeError, match="out of bounds"):
        agent.update(bad)


def test_compile_auto_needs_a_conv_net_and_enough_updates():
    long_run = TrainConfig(total_steps=400_000, learning_starts=80_000)  # 80,000 updates
    assert should_compile(long_run, (4, 84, 84))
    assert not should_compile(long_run, (4,))  # MLP: compile time outweighs the gain
    assert not should_compile(long_run.replace(total_steps=100_000), (4, 84, 84))  # 5,000
    assert should_compile(long_run.replace(compile="on", total_steps=90_000), (4,))
    assert not should_compile(long_run.replace(compile="off"), (4, 84, 84))


def run_fake(tmp_path, async_envs: str) -> Trainer:
    config = preset("smoke").replace(
        env="fake", num_envs=2, total_steps=600, learning_starts=100, buffer_size=2_000,
        epsilon_start=1.0, epsilon_end=1.0, eval_every_steps=0, final_eval_episodes=0,
        record_video=False, progress=False, async_envs=async_envs, compile="off",
        output_dir=str(tmp_path / async_envs),
    )  # fmt: skip
    trainer = build_trainer(config)
    trainer.run()
    return trainer


def test_overlapped_stepping_stores_the_same_transitions_and_makes_the_same_updates(tmp_path):
    plain, overlapped = run_fake(tmp_path, "off"), run_fake(tmp_path, "on")
    assert not plain.overlap and overlapped.overlap
    assert plain.agent.updates == overlapped.agent.updates == (600 - 100) // 4
    for name in ("frames", "action", "reward", "terminated", "truncated", "first", "complete"):
        assert torch.equal(getattr(plain.replay, name), getattr(overlapped.replay, name)), name


def test_synchronisation_free_draw_returns_only_sampleable_transitions_uniformly():
    replay = ReplayBuffer(4_000, 2, (3, 3), frame_stack=4, n_step=3, seed=0)
    rng = np.random.default_rng(1)
    replay.start(rng.integers(0, 255, (2, 4, 3, 3), dtype=np.uint8))
    for t in range(2_500):  # wraps the rings: the window around each cursor is unsampleable
        obs = rng.integers(0, 255, (2, 4, 3, 3), dtype=np.uint8)
        done = np.array([t % 37 == 36, t % 41 == 40])
        replay.add(rng.integers(4, size=2), np.ones(2), done, np.zeros(2, bool), obs, done, obs)
    assert len(replay) >= 8 * 32 + 64  # the sampling path without host synchronisation
    counts = torch.zeros(2, replay.slots)
    for _ in range(300):
        stream, slot = replay._draw(32)
        assert bool(replay.sampleable(stream, slot).all())
        counts.index_put_((stream, slot), torch.ones(32), accumulate=True)
    valid = replay.sampleable(
        torch.arange(2).repeat_interleave(replay.slots), torch.arange(replay.slots).repeat(2)
    ).view(2, replay.slots)
    assert counts[~valid].sum() == 0
    expected = 300 * 32 / valid.sum()
    assert abs(counts[0].sum() / counts.sum() - 0.5) < 0.03  # both streams equally
    assert counts[valid].mean() == pytest.approx(float(expected), rel=1e-6)
    assert counts[valid].std() < 2.5 * float(expected) ** 0.5  # about Poisson around the mean


@pytest.mark.parametrize("prioritized", [False, True], ids=["uniform", "prioritized"])
def test_the_updates_of_one_vector_step_get_their_own_batches(tmp_path, monkeypatch, prioritized):
    """16 envs at one update per 4 agent steps: 4 updates per vector step. Uniform replay draws
    their 4 batches in one call of 4 x 32; prioritized replay draws each after the previous
    update's priorities are written."""
    config = preset("smoke").replace(
        env="fake", num_envs=16, total_steps=16 * 40, learning_starts=16 * 20, batch_size=32,
        buffer_size=4_000, train_frequency=4, prioritized=prioritized, eval_every_steps=0,
        final_eval_episodes=0, record_video=False, progress=False, compile="off",
        output_dir=str(tmp_path),
    )  # fmt: skip
    trainer = build_trainer(config)
    draws, batches, events = [], [], []
    sample, update = trainer.replay.sample, trainer.agent.update
    monkeypatch.setattr(
        trainer.replay, "sample",
        lambda size, step: (draws.append(size), events.append("draw"), sample(size, step))[-1],
    )  # fmt: skip
    monkeypatch.setattr(
        trainer.agent, "update",
        lambda batch: (batches.append(batch), events.append("update"), update(batch))[-1],
    )  # fmt: skip
    trainer.run()
    assert trainer.agent.updates == len(batches) == 4 * 20  # vector steps 21..40 earn 4 each
    assert all(batch.obs.shape == (32, 4, 84, 84) for batch in batches)
    if prioritized:
        assert draws == [32] * 80 and events == ["draw", "update"] * 80
    else:
        assert draws == [128] * 20 and events == (["draw"] + ["update"] * 4) * 20
        for first, *rest in zip(*[iter(batches)] * 4):  # one draw split into four batches
            for other in rest:
                assert not torch.equal(first.slot, other.slot)
