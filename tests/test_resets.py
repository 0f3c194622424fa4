"""Periodic resets of the layers after the convolutions (Nikishin et al. 2022): what is reset,
what is kept, and when."""

from __future__ import annotations

import csv

import torch

from agents.dqn.agent import DQNAgent
from agents.dqn.build import build_trainer
from agents.dqn.presets import preset
from agents.dqn.replay.uniform import Batch


def pixel_batch(seed: int = 0, size: int = 8) -> Batch:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randint(0, 256, (size, 4, 84, 84), dtype=torch.uint8, generator=g)
    return Batch(obs, torch.randint(0, 6, (size,), generator=g), torch.rand(size, generator=g),
                 obs.flip(0), torch.full((size,), 0.9), torch.zeros(size, dtype=torch.long),
                 torch.zeros(size, dtype=torch.long))  # fmt: skip


def trained_drq_agent(seed: int = 0) -> DQNAgent:
    config = preset("drq").replace(compile="off", augment=False)
    agent = DQNAgent.build(config, (4, 84, 84), 6, torch.device("cpu"), seed=seed)
    for i in range(3):
        agent.update(pixel_batch(i))
    agent.sync_target()
    agent.update(pixel_batch(3))  # online and target differ again
    return agent


def test_a_reset_renews_the_dense_layers_keeps_the_convolutions_and_their_optimizer_state():
    agent = trained_drq_agent()
    online = {k: v.clone() for k, v in agent.online.state_dict().items()}
    conv = list(agent.online.torso.convs.parameters())
    conv_state = {id(p): agent.optimizer.state[p]["exp_avg"].clone() for p in conv}
    reset = agent.reset_head()
    # drq's network: the shared 7744 -> 512 layer ('SAME' convolutions), then dueling value
    # 512 -> 1 and advantage 512 -> 6 output layers: 3,965,440 + 513 + 3,078 parameters
    assert reset == 7744 * 512 + 512 + (512 + 1) + (512 * 6 + 6) == 3_969_031
    after = agent.online.state_dict()
    for key, value in after.items():
        changed = not torch.equal(value, online[key])
        assert changed == (not key.startswith("torso.convs")), key
    for p in conv:
        assert torch.equal(agent.optimizer.state[p]["exp_avg"], conv_state[id(p)])
    dense = [*agent.online.torso.fc.parameters(), *agent.online.head.parameters()]
    assert all(p not in agent.optimizer.state or not agent.optimizer.state[p] for p in dense)
    target = agent.target.state_dict()
    for key, value in after.items():  # the target: the same new dense layers, its own convs
        same = torch.equal(value, target[key])
        assert same == (not key.startswith("torso.convs")), key
    metrics = agent.update(pixel_batch(4))  # Adam starts the reset layers' moments afresh
    assert torch.isfinite(metrics["losses/td_loss"])
    assert all(float(agent.optimizer.state[p]["step"]) == 1.0 for p in dense)
    assert all(float(agent.optimizer.state[p]["step"]) == 5.0 for p in conv)


def test_a_reset_is_drawn_from_the_agents_seed_alone():
    first, second = trained_drq_agent(seed=4), trained_drq_agent(seed=4)
    torch.manual_seed(123)  # the global generator plays no part
    first.reset_head()
    torch.manual_seed(999)
    second.reset_head()
    for a, b in zip(first.online.parameters(), second.online.parameters()):
        assert torch.equal(a, b)
    other = trained_drq_agent(seed=5)
    other.reset_head()
    assert not torch.equal(first.online.head.advantage.weight, other.online.head.advantage.weight)


def test_resets_fall_at_every_multiple_below_the_total_and_are_logged(tmp_path):
    config = preset("smoke").replace(
        env="fake-pixels", total_steps=100, learning_starts=10, reset_every_steps=20,
        eval_every_steps=0, final_eval_episodes=0, record_video=False, progress=False,
        output_dir=str(tmp_path), compile="off",
    )  # fmt: skip
    trainer = build_trainer(config)
    calls = []
    real = trainer.agent.reset_head
    trainer.agent.reset_head = lambda: calls.append(trainer.global_step) or real()
    trainer.run()
    assert calls == [20, 40, 60, 80]  # none at 100: the run's end, as Nikishin et al.
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["metric"] == "charts/resets"]
    assert [(int(r["global_step"]), float(r["value"])) for r in rows] == [
        (20, 1.0),
        (40, 2.0),
        (60, 3.0),
        (80, 4.0),
    ]
    state = trainer.learner.state_dict()
    assert state["next_reset"] == 100


def test_no_reset_without_the_switch_and_older_checkpoints_load(tmp_path):
    config = preset("smoke").replace(
        env="fake", total_steps=60, learning_starts=10, eval_every_steps=0,
        final_eval_episodes=0, record_video=False, progress=False, output_dir=str(tmp_path),
    )  # fmt: skip
    trainer = build_trainer(config)
    trainer.agent.reset_head = lambda: (_ for _ in ()).throw(AssertionError("reset"))
    trainer.run()
    state = trainer.learner.state_dict()
    assert state["next_reset"] is None
    del state["next_reset"]  # a checkpoint written before resets existed
    trainer.learner.load_state_dict(state)
    assert trainer.learner.next_reset == float("inf")
