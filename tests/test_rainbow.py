"""The Rainbow switches on the one agent: each builds, trains and keeps its contract."""

import numpy as np
import pytest
import torch

from agents.dqn.agent import DQNAgent
from agents.dqn.build import build_trainer
from agents.dqn.presets import cartpole_rainbow, smoke
from agents.dqn.replay.prioritized import PrioritizedReplay, PrioritizedSampler
from agents.dqn.replay.uniform import ReplayBuffer
from networks import DistributionalHead, DuelingHead, NoisyLinear

SWITCHES = {
    "double": {"double_dqn": True},
    "dueling": {"dueling": True},
    "n_step": {"n_step": 3},
    "prioritized": {"prioritized": True},
    "distributional": {"distributional": True, "v_min": 0.0, "v_max": 100.0},
    "noisy": {"noisy": True},
}


def short_run(tmp_path, env="CartPole-v1", **switches):
    config = smoke().replace(
        env=env, total_steps=400, learning_starts=100, train_frequency=2, eval_every_steps=0,
        final_eval_episodes=1, record_video=False, progress=False, output_dir=str(tmp_path),
        **switches,
    )  # fmt: skip
    trainer = build_trainer(config)
    summary = trainer.run()
    return trainer, summary


@pytest.mark.parametrize("name", [*SWITCHES, "all"])
def test_each_switch_trains_on_vectors(tmp_path, name):
    switches = (
        {k: v for s in SWITCHES.values() for k, v in s.items()} if name == "all" else SWITCHES[name]
    )
    trainer, summary = short_run(tmp_path, **switches)
    assert trainer.agent.updates == (400 - 100) // 2
    assert np.isfinite(summary["eval_mean_return"])
    head = trainer.agent.online.head
    if switches.get("distributional"):
        assert isinstance(head, DistributionalHead)
    elif switches.get("dueling"):
        assert isinstance(head, DuelingHead)
    has_noisy = any(isinstance(m, NoisyLinear) for m in head.modules())
    assert has_noisy == bool(switches.get("noisy"))


def test_all_switches_on_the_nature_cnn(tmp_path):
    switches = {k: v for s in SWITCHES.values() for k, v in s.items()}
    trainer, _ = short_run(tmp_path, env="fake-pixels", **switches)
    assert trainer.agent.updates == 150
    assert trainer.agent.online.torso.flatten_size == 3136


def test_noisy_turns_epsilon_off_and_acts_deterministically_in_eval(tmp_path):
    trainer, _ = short_run(tmp_path, noisy=True)
    assert trainer.epsilon() == 0.0
    net = trainer.agent.online.eval()
    x = torch.randn(5, 4)
    torch.testing.assert_close(net(x), net(x))
    net.train()
    q1 = trainer.agent.act(np.zeros((64, 4), dtype=np.float32), 0.0)
    x = torch.randn(3, 4)
    outputs = {tuple(trainer.agent.online(x).flatten().tolist()) for _ in range(3)}
    assert len(outputs) == 1  # fixed noise between resets
    assert q1.shape == (64,)


def test_distributional_update_minimises_the_projected_cross_entropy():
    config = smoke().replace(env="CartPole-v1", distributional=True, v_min=-2.0, v_max=2.0,
                             num_atoms=5, learning_rate=1e-2)  # fmt: skip
    agent = DQNAgent.build(config, (4,), 2, torch.device("cpu"), seed=0)
    replay = ReplayBuffer(64, 1, (4,), torch.float32, frame_stack=1, gamma=0.9)
    replay.start(np.zeros((1, 4), dtype=np.float32))
    for t in range(40):  # every transition terminal with reward 1: the target is all mass on z=1
        replay.add([t % 2], [1.0], [True], [False], np.full((1, 4), t, np.float32), [True],
                   np.full((1, 4), t, np.float32))  # fmt: skip
    batch = replay.sample(16)
    for _ in range(200):
        metrics = agent.update(batch)
    assert metrics["losses/td_loss"].item() < 0.05  # cross-entropy near 0: p(z=1) near 1
    torch.testing.assert_close(metrics["losses/q_values"], torch.tensor(1.0), atol=0.05, rtol=0)


def test_prioritized_replay_samples_only_complete_transitions_and_follows_priorities():
    replay = ReplayBuffer(60, 2, (1,), torch.float32, frame_stack=1, n_step=2, seed=0)
    prio = PrioritizedReplay(replay, PrioritizedSampler(2 * replay.slots, alpha=1.0, beta_steps=10))
    prio.start(np.zeros((2, 1), dtype=np.float32))
    rng = np.random.default_rng(0)
    for t in range(200):
        done = rng.random(2) < 0.1
        prio.add(rng.integers(0, 2, 2), np.ones(2), done, np.zeros(2, bool),
                 np.full((2, 1), t, np.float32), done, np.full((2, 1), -t, np.float32))  # fmt: skip
    batch = prio.sample(256, step=5)
    assert replay.sampleable(batch.stream, batch.slot).all()
    assert batch.weights.max().item() == pytest.approx(1.0)
    # Make one transition dominant: it must then fill most of a batch.
    chosen = (batch.stream == batch.stream[0]) & (batch.slot == batch.slot[0])
    prio.update_priorities(batch, torch.where(chosen, 1e6, 1e-3))
    again = prio.sample(256, step=10)
    share = ((again.stream == batch.stream[0]) & (again.slot == batch.slot[0])).float().mean()
    assert share > 0.9


def test_cartpole_rainbow_solves_cartpole(tmp_path):
    """All six components on: mean evaluation return >= 475 over 10 episodes within 100k steps."""
    summary = build_trainer(
        cartpole_rainbow().replace(output_dir=str(tmp_path), progress=False)
    ).run()
    assert summary["global_step"] <= 100_000
    assert summary["eval_episodes"] == 10 and summary["eval_mean_return"] >= 475
