"""Periodic resets of the last layers (Nikishin et al. 2022): what is reset, what is kept, and
when."""

from __future__ import annotations

import csv

import torch

from agents.dqn.agent import DQNAgent, reset_layer_names
from agents.dqn.build import build_trainer
from agents.dqn.presets import preset
from agents.dqn.replay.uniform import Batch


def pixel_batch(seed: int = 0, size: int = 8) -> Batch:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randint(0, 256, (size, 4, 84, 84), dtype=torch.uint8, generator=g)
    return Batch(obs, torch.randint(0, 6, (size,), generator=g), torch.rand(size, generator=g),
                 obs.flip(0), torch.full((size,), 0.9), torch.zeros(size, dtype=torch.long),
                 torch.zeros(size, dtype=torch.long))  # fmt: skip


def trained_drq_agent(seed: int = 0, layers: str = "head") -> DQNAgent:
    config = preset("drq").replace(compile="off", augment=False, reset_layers=layers)
    agent = DQNAgent.build(config, (4, 84, 84), 6, torch.device("cpu"), seed=seed)
    for i in range(3):
        agent.update(pixel_batch(i))
    agent.sync_target()
    agent.update(pixel_batch(3))  # online and target differ again
    return agent


def check_reset(agent: DQNAgent, renewed: tuple[str, ...], expected: int) -> None:
    """Reset ``agent``: the online parameters under ``renewed`` (and only they) get new weights,
    the target keeps its own until its next sync, and the optimizer starts afresh for every
    parameter, as ``reset_weights`` in Nikishin et al.'s code."""
    agent.sync_target()  # the target holds the online weights, as after drq's per-step sync
    online = {k: v.clone() for k, v in agent.online.state_dict().items()}
    target_before = {k: v.clone() for k, v in agent.target.state_dict().items()}
    assert agent.target_is_online
    assert all(len(agent.optimizer.state[p]) for p in agent.online.parameters())
    assert agent.reset_head() == expected
    after, target = agent.online.state_dict(), agent.target.state_dict()
    for key, value in after.items():
        assert (not torch.equal(value, online[key])) == key.startswith(renewed), key
        assert torch.equal(target[key], target_before[key]), key  # untouched until its sync
    assert not agent.target_is_online  # the loss must run the target network again
    assert len(agent.optimizer.state) == 0
    metrics = agent.update(pixel_batch(4))  # Adam starts every moment afresh
    assert torch.isfinite(metrics["losses/td_loss"])
    assert all(float(agent.optimizer.state[p]["step"]) == 1.0 for p in agent.online.parameters())
    agent.sync_target()  # the next sync hands the target the reset layers, as trained since
    for key, value in agent.online.state_dict().items():
        assert torch.equal(agent.target.state_dict()[key], value), key


def test_a_reset_renews_the_output_layers_only_by_default():
    # drq's head: dueling value 512 -> 1 and advantage 512 -> 6 layers after the shared 512-unit
    # layer, which is kept, as the reference's reset_head = True, reset_projection = False
    agent = trained_drq_agent()
    assert agent.config.reset_layers == "head"
    check_reset(agent, ("head.value.", "head.advantage."), (512 + 1) + (512 * 6 + 6))
    assert (512 + 1) + (512 * 6 + 6) == 3_591


def test_a_dense_reset_also_renews_the_512_unit_layer_and_keeps_the_convolutions():
    agent = trained_drq_agent(layers="dense")
    # the shared 7744 -> 512 layer ('SAME' convolutions) too: 3,965,440 + 513 + 3,078
    expected = 7744 * 512 + 512 + (512 + 1) + (512 * 6 + 6)
    assert expected == 3_969_031
    check_reset(agent, ("head.", "torso.fc."), expected)


def test_the_output_layers_of_each_stream_are_found_in_every_head():
    def names(name: str, layers: str, **changes) -> list[str]:
        config = preset(name).replace(compile="off", **changes)
        agent = DQNAgent.build(config, (4, 84, 84), 6, torch.device("cpu"), seed=0)
        return reset_layer_names(agent.online, layers)

    assert names("nature", "head") == ["head.linear"]
    assert names("nature", "dense") == ["head", "torso.fc"]
    # rainbow: C51 with a 512-unit hidden layer per stream (Linear, ReLU, Linear): the last
    assert names("rainbow", "head") == ["head.actions.2", "head.value.2"]
    assert names("rainbow", "dense") == ["head"]  # no fc in its torso: the streams' hiddens
    # dueling streams: each with its own 512-unit layer (Wang 2016), or sharing one (Dopamine)
    assert names("nature", "head", dueling=True) == ["head.value.2", "head.advantage.2"]
    shared = {"dueling": True, "shared_hidden": True}
    assert names("nature", "head", **shared) == ["head.value", "head.advantage"]
    assert names("nature", "dense", **shared) == ["head", "torso.fc"]


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
