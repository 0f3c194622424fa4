"""DQN math against hand-computed values, and the loop's step accounting."""

import math

import numpy as np
import pytest
import torch

from agents.dqn.actor import linear_schedule
from agents.dqn.agent import build_q_network, epsilon_greedy
from agents.dqn.build import build_trainer
from agents.dqn.config import epsilon_decay_length
from agents.dqn.losses import c51_loss, dqn_loss, td_loss, td_target
from agents.dqn.presets import PRESETS, cartpole, preset, smoke
from agents.dqn.replay.uniform import Batch
from agents.dqn.validation import validate
from networks import DistributionalHead, Network


def test_td_target_by_hand():
    reward = torch.tensor([1.0, 0.5, -1.0])
    discount = torch.tensor([0.99, 0.0, 0.99**3])  # bootstrap / terminal / 3-step
    next_q = torch.tensor([[1.0, 3.0], [5.0, 2.0], [-2.0, -4.0]])
    torch.testing.assert_close(
        td_target(reward, discount, next_q),
        torch.tensor([1.0 + 0.99 * 3.0, 0.5, -1.0 - 0.99**3 * 2.0]),
    )


def test_double_dqn_target_evaluates_the_online_argmax_with_the_target_net():
    next_target = torch.tensor([[1.0, 3.0], [5.0, 2.0]])
    next_online = torch.tensor([[9.0, 0.0], [0.0, 9.0]])  # picks actions 0 and 1
    out = td_target(torch.zeros(2), torch.ones(2), next_target, next_online)
    torch.testing.assert_close(out, torch.tensor([1.0, 2.0]))


def test_losses_by_hand():
    q = torch.tensor([0.0, 0.0, 0.0], requires_grad=True)
    target = torch.tensor([0.5, -2.0, 3.0])
    huber, err = td_loss(q, target, "huber")
    # Huber (delta 1): 0.5 * 0.5^2 = 0.125 ; |e| - 0.5 = 1.5 ; 2.5
    assert huber.item() == pytest.approx((0.125 + 1.5 + 2.5) / 3)
    torch.testing.assert_close(err, target)
    mse, _ = td_loss(q, target, "mse")
    assert mse.item() == pytest.approx((0.25 + 4.0 + 9.0) / 3)
    huber.backward()
    # gradient is the clipped error: -clip(e, -1, 1) / 3
    torch.testing.assert_close(q.grad, torch.tensor([-0.5, 1.0, -1.0]) / 3)
    weighted, _ = td_loss(q.detach(), target, "mse", weights=torch.tensor([1.0, 0.0, 0.0]))
    assert weighted.item() == pytest.approx(0.25 / 3)
    with pytest.raises(ValueError, match="'l1'.*huber, mse"):
        td_loss(q, target, "l1")


def test_linear_epsilon_schedule():
    assert linear_schedule(1.0, 0.1, 100, 0) == 1.0
    assert linear_schedule(1.0, 0.1, 100, 50) == pytest.approx(0.55)
    assert linear_schedule(1.0, 0.1, 100, 100) == pytest.approx(0.1)
    assert linear_schedule(1.0, 0.1, 100, 10_000) == pytest.approx(0.1)


def test_epsilon_greedy_rates():
    q = torch.tensor([[0.0, 1.0, 0.0, 0.0]]).repeat(20_000, 1)
    g = torch.Generator().manual_seed(0)
    assert (epsilon_greedy(q, 0.0, g) == 1).all()
    a = epsilon_greedy(q, 0.4, g)
    # greedy with prob 0.6 + 0.4/4 = 0.7
    assert (a == 1).float().mean().item() == pytest.approx(0.7, abs=0.015)


def test_q_network_shapes():
    assert build_q_network((4, 84, 84), 6)(torch.zeros(2, 4, 84, 84, dtype=torch.uint8)).shape == (
        2,
        6,
    )
    mlp = build_q_network((4,), 2, hidden=(16, 16))
    assert mlp(torch.zeros(3, 4)).shape == (3, 2)


@pytest.mark.parametrize("num_envs", [1, 4])
def test_replay_ratio_and_target_sync_count_agent_steps(tmp_path, num_envs):
    """cleanrl ratio: 1 update per 4 agent steps for any N; target sync every 100 agent steps."""
    config = smoke().replace(
        env="CartPole-v1", num_envs=num_envs, total_steps=800, learning_starts=400,
        train_frequency=4, target_update_steps=100, eval_every_steps=0,
        final_eval_episodes=0, record_video=False, progress=False, output_dir=str(tmp_path),
    )  # fmt: skip
    trainer = build_trainer(config)
    syncs = []
    original = trainer.agent.sync_target
    trainer.agent.sync_target = lambda: (syncs.append(trainer.global_step), original())[1]
    trainer.run()
    assert trainer.global_step == 800
    assert trainer.agent.updates == (800 - 400) // 4  # as CleanRL: at steps 404, 408, ..., 800
    assert syncs == list(range(100, 801, 100))


def test_presets_are_valid_and_cleanrl_matches_its_source():
    for name in PRESETS:
        validate(preset(name), machine=False)  # the presets, not this machine's memory
    r = preset("rainbow")
    assert (r.learning_rate, r.optimizer_eps, r.n_step, r.priority_alpha) == (
        6.25e-5,
        1.5e-4,
        3,
        0.5,
    )
    assert (r.priority_beta_start, r.target_update_steps, r.learning_starts) == (0.4, 8_000, 20_000)
    assert r.double_dqn and r.dueling and r.distributional and r.noisy and r.prioritized
    c = preset("cleanrl")
    assert (c.optimizer, c.learning_rate, c.buffer_size, c.learning_starts) == (
        "adam",
        1e-4,
        1_000_000,
        80_000,
    )
    assert (c.target_update_steps, c.train_frequency, c.epsilon_end) == (1_000, 4, 0.01)
    assert c.epsilon_decay_fraction == 0.1  # exploration_fraction: 10% of each run's length
    assert epsilon_decay_length(c) == 1_000_000 == c.total_steps // 10
    assert epsilon_decay_length(c.replace(total_steps=500_000)) == 50_000
    n = preset("nature")
    assert (n.optimizer, n.learning_rate, n.loss, n.target_update_steps) == (
        "rmsprop",
        2.5e-4,
        "huber",
        10_000,
    )


def test_cartpole_solved_within_100k_steps(tmp_path):
    """The cartpole preset reaches a mean evaluation return >= 475 over 10 episodes."""
    summary = build_trainer(cartpole().replace(output_dir=str(tmp_path), progress=False)).run()
    assert summary["global_step"] <= 100_000
    assert summary["eval_episodes"] == 10
    assert summary["eval_mean_return"] >= 475


def test_nature_cnn_agent_learns_from_pixels(tmp_path):
    """fake-pixels: the rewarded action is the side of a bright block; optimal return is 8."""
    config = smoke().replace(
        env="fake-pixels", total_steps=3_000, buffer_size=3_000, batch_size=32, learning_starts=300,
        train_frequency=2, target_update_steps=200, learning_rate=2.5e-4, gamma=0.0,
        epsilon_decay_steps=1_500, eval_epsilon=0.0, eval_every_steps=0, final_eval_episodes=10,
        record_video=False, progress=False, output_dir=str(tmp_path), torch_threads=1,
    )  # fmt: skip
    summary = build_trainer(config).run()
    assert summary["eval_mean_return"] == 8.0
    np.testing.assert_array_equal(summary["eval_returns"], [8.0] * 10)


def _fixed_linear(*weights: float) -> torch.nn.Module:
    net = torch.nn.Linear(1, len(weights), bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor(weights)[:, None])
    return net


def _one_transition(weights=None) -> Batch:
    return Batch(
        obs=torch.tensor([[1.0]]), action=torch.tensor([0]), reward=torch.tensor([1.0]),
        next_obs=torch.tensor([[2.0]]), discount=torch.tensor([0.5]),
        stream=torch.tensor([0]), slot=torch.tensor([0]), weights=weights,
    )  # fmt: skip


def test_dqn_loss_is_a_pure_function_of_networks_batch_and_flags():
    """Q(s) = (1, 2), Q_target(s') = (6, 1), Q_online(s') = (2, 4); action 0, r 1, discount 0.5.
    DQN: y = 1 + 0.5 * 6 = 4, error 3, Huber 3 - 0.5 = 2.5. Double: the online argmax is action 1,
    y = 1 + 0.5 * 1 = 1.5, error 0.5, Huber 0.125 (mse 0.25). Importance weight 0.5 halves it."""
    online, target = _fixed_linear(1.0, 2.0), _fixed_linear(3.0, 0.5)
    before = [p.clone() for p in (*online.parameters(), *target.parameters())]
    loss, q_mean, priority = dqn_loss(online, target, _one_transition(), double=False)
    assert (loss.item(), q_mean.item(), priority.tolist()) == (2.5, 1.0, [3.0])
    loss, _, priority = dqn_loss(online, target, _one_transition(), double=True)
    assert (loss.item(), priority.tolist()) == (0.125, [0.5])
    loss, _, _ = dqn_loss(online, target, _one_transition(), double=True, kind="mse")
    assert loss.item() == 0.25
    weighted = _one_transition(weights=torch.tensor([0.5]))
    assert dqn_loss(online, target, weighted, double=True)[0].item() == 0.0625
    # the target standing in for the online chooser: Q_target(s') = (6, 1) picks action 0
    loss, _, _ = dqn_loss(online, target, _one_transition(), double=True, target_is_online=True)
    assert loss.item() == 2.5
    after = [p for p in (*online.parameters(), *target.parameters())]
    assert all(torch.equal(a, b) for a, b in zip(before, after))  # nothing stepped or changed
    assert all(p.grad is None for p in after)


def test_c51_loss_by_hand_on_a_two_atom_support():
    """Support (0, 1); online logits 0 everywhere (p = 1/2 per atom), target puts all mass on
    atom 1 for both actions. r = 0, discount 0.5: the target atom 1 lands on 0.5, projected
    (1/2, 1/2); cross-entropy -(1/2 log 1/2 + 1/2 log 1/2) = log 2; Q taken = 1/2."""
    torso = torch.nn.Flatten()
    online = Network(torso, DistributionalHead(1, 2, num_atoms=2, v_min=0.0, v_max=1.0))
    target = Network(torso, DistributionalHead(1, 2, num_atoms=2, v_min=0.0, v_max=1.0))
    with torch.no_grad():
        for p in online.head.parameters():
            p.zero_()
        for p in target.head.parameters():
            p.zero_()
        target.head.actions.bias.copy_(torch.tensor([-20.0, 20.0, -20.0, 20.0]))
    batch = _one_transition()._replace(reward=torch.tensor([0.0]))
    for double in (False, True):
        loss, q_mean, priority = c51_loss(online, target, batch, double=double)
        assert loss.item() == pytest.approx(math.log(2), abs=1e-6)
        assert q_mean.item() == pytest.approx(0.5, abs=1e-6)
        assert priority.tolist() == pytest.approx([math.log(2)], abs=1e-6)
