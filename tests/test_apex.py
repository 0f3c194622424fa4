"""Ape-X (agents/distributed): the actors' epsilons and chunks, the learner's replay fed by Ray
actors against a local reference run of the same actors, initial priorities, the replay ratio, an
actor killed mid-run, and resume."""

import json
import math

import numpy as np
import pytest
import torch

from agents.distributed.actors import ApexActor, actor_epsilons, actor_seed
from agents.distributed.apex import ApexTrainer, ingest
from agents.distributed.pool import ActorPool, EnvSpec
from agents.dqn.build import build_trainer
from agents.dqn.losses import dqn_loss
from agents.dqn.presets import preset
from agents.dqn.replay.sizing import make_replay
from agents.dqn.replay.uniform import ReplayBuffer

FIELDS = ("first", "action", "reward", "terminated", "truncated", "complete")


def test_actor_epsilons_are_the_papers_formula():
    assert actor_epsilons(1) == [0.4]
    eps = actor_epsilons(8)
    assert eps[0] == 0.4 and eps[1] == pytest.approx(0.4**2) and eps[7] == pytest.approx(0.4**8)
    assert eps[7] == pytest.approx(0.00065536)
    assert all(a > b for a, b in zip(eps, eps[1:]))
    assert actor_epsilons(3, 0.5, 2.0) == pytest.approx([0.5, 0.25, 0.125])
    with pytest.raises(ValueError, match="num_actors"):
        actor_epsilons(0)


def test_apex_preset_matches_the_paper():
    c = preset("apex")
    assert (c.n_step, c.double_dqn, c.dueling, c.prioritized) == (3, True, True, True)
    assert (c.priority_alpha, c.priority_beta_start, c.priority_beta_end) == (0.6, 0.4, 0.4)
    assert (c.buffer_size, c.learning_starts, c.batch_size) == (2_000_000, 50_000, 512)
    assert (c.optimizer, c.rmsprop_alpha, c.optimizer_eps) == ("rmsprop", 0.95, 1.5e-7)
    assert c.learning_rate == pytest.approx(0.00025 / 4) and c.max_grad_norm == 40.0
    assert c.target_update_steps == 2_500 * c.train_frequency  # 2,500 batches
    assert (c.actor_chunk_steps, c.actor_epsilon, c.actor_epsilon_alpha) == (50, 0.4, 7.0)


def tiny_config(**changes):
    base = dict(env="fake", num_actors=2, actor_cpus=0.5, actor_chunk_steps=10, total_steps=400,
                learning_starts=200, buffer_size=4_000, batch_size=8, n_step=3,
                prioritized=True, priority_alpha=0.6, double_dqn=True, record_video=False,
                progress=False, final_eval_episodes=1, eval_max_steps=300,
                checkpoint_every_steps=10_000, log_every_steps=100,
                )  # fmt: skip
    base.update(changes)
    return preset("smoke").replace(**base)


def tiny(tmp_path, **changes):
    return tiny_config(output_dir=str(tmp_path / "run"), **changes)


def reference_stream(config, index, weights, steps):
    """What actor ``index`` produces in ``steps`` vector steps, stored the single-process way
    (``ReplayBuffer.start`` and ``add`` on a ring that never wraps)."""
    actor = ApexActor(config, index, config.num_actors)
    actor.set_weights(weights, 1)
    ring = actor.ring
    big = ReplayBuffer(capacity=4 * steps + 64, num_streams=1, frame_shape=actor.frame_shape,
                       frame_stack=ring.frame_stack, n_step=ring.n_step,
                       gamma=ring.gamma)  # fmt: skip
    obs, _ = actor.actor.reset(0)
    big.start(obs)
    for _ in range(steps):
        step = actor.actor.step_now(actor.actor.act(actor.steps))
        big.add(*step.replay_fields())
        actor.actor.observe(step)
        actor.steps += 1
    actor.close()
    return big


def stream_rows(replay, stream):
    n = int(replay.cursor[stream]) + 1
    rows = {name: getattr(replay, name)[stream, :n].clone() for name in FIELDS}
    rows["frames"] = replay.frames[stream, :n].clone()
    return rows


@pytest.mark.xdist_group("ray")
def test_every_transition_arrives_once_with_the_actors_priorities(tmp_path, ray_local):
    """No updates (train_frequency beyond the run) and no new weights: each Ray actor acts with
    the learner's initial network, so its stream in the learner's replay must equal, slot by
    slot, what the same actor (same seeds) stores the single-process way; and each transition's
    priority must be (|TD error| + eps)^alpha under that network."""
    config = tiny(tmp_path, train_frequency=100_000, weights_every_updates=1_000_000)
    trainer = build_trainer(config)
    weights = {k: v.clone() for k, v in trainer.agent.online.state_dict().items()}
    summary = trainer.run()
    replay = trainer.replay.replay
    assert summary["updates"] == 0 and summary["global_step"] == 400
    steps = [s // config.num_envs for s in trainer.pool.actor_steps]
    assert sum(steps) == 400 and all(s % 10 == 0 and s > 0 for s in steps)
    assert summary["transitions_received"] == 400 == len(replay)
    for index, count in enumerate(steps):
        ours = stream_rows(replay, index)
        ref = stream_rows(reference_stream(config, index, weights, count), 0)
        for name in ("frames", "first", "complete"):
            assert torch.equal(ours[name], ref[name]), (index, name)
        done = ref["complete"]  # a slot's action and outcome mean something once it is complete
        for name in ("action", "reward", "terminated", "truncated"):
            assert torch.equal(ours[name][done], ref[name][done]), (index, name)
    # initial priorities: every sampleable slot holds (|delta| + 1e-6)^0.6 under the weights
    streams = torch.arange(2).repeat_interleave(replay.slots)
    slots = torch.arange(replay.slots).repeat(2)
    ok = replay.sampleable(streams, slots)
    stream, slot = streams[ok], slots[ok]
    net = trainer.agent.online
    net.load_state_dict(weights)
    with torch.no_grad():
        _, _, delta = dqn_loss(net, net, replay.gather(stream, slot), double=True,
                               target_is_online=True)  # fmt: skip
    leaves = trainer.replay.sampler.tree.get(stream * replay.slots + slot)
    expected = (delta.double() + 1e-6) ** 0.6
    assert len(stream) > 350
    assert torch.allclose(leaves, expected, rtol=1e-5, atol=1e-7)
    assert summary["bytes_per_transition"] < 100  # fake frames: a few bytes, compressed


@pytest.mark.xdist_group("ray")
def test_the_replay_ratio_holds_and_the_actors_get_new_weights(tmp_path, ray_local):
    config = tiny(tmp_path, train_frequency=4, weights_every_updates=5, learning_starts=200)
    trainer = build_trainer(config)
    summary = trainer.run()
    assert summary["global_step"] == 400
    assert summary["updates"] == (400 - 200) // 4 == trainer.agent.updates
    assert trainer.pool.version >= 50 // 5  # published every 5 updates (and once at the start)
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert any(",actors/steps_per_second," in r for r in rows)
    assert summary["actor_epsilons"] == pytest.approx([0.4, 0.4**8])
    assert trainer.pool.describe() == (
        "actors: 2 x 1 env on Ray (a private instance on this machine), epsilon 0.4 to 0.000655"
    )


@pytest.mark.xdist_group("ray")
def test_a_killed_actor_is_replaced_and_the_run_reaches_its_total(tmp_path, ray_local, monkeypatch):
    config = tiny(tmp_path, total_steps=600, train_frequency=4)
    killed, replaced = [], []
    original_step, original_replace = ApexTrainer._step, ActorPool.replace

    def step_then_kill(self):
        original_step(self)
        if self.global_step >= 200 and not killed:
            self.pool.kill(0)
            killed.append(self.global_step)

    def replace(self, index, error):
        replaced.append(int(trainer.replay.replay.cursor[index]))  # its pending slot then
        original_replace(self, index, error)

    monkeypatch.setattr(ApexTrainer, "_step", step_then_kill)
    monkeypatch.setattr(ActorPool, "replace", replace)
    trainer = build_trainer(config)
    summary = trainer.run()
    assert killed and summary["global_step"] == 600
    assert summary["actor_restarts"] == 1 and summary["lost_chunks"] == 1
    assert trainer.pool.incarnations == [1, 0]
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["lost_chunks"] == 1 and saved["transitions_received"] == 600
    assert replaced == [replaced[0]]  # replaced once, when its call failed


def test_a_restarted_actor_cuts_the_last_episode_of_its_stream():
    """A new incarnation's first chunk (``fresh``) on a stream that holds data: the last stored
    transition becomes a truncation, the abandoned pending slot stays incomplete, and the new
    episode begins in the slot after it; its transitions keep their own priorities."""
    config = tiny_config(actor_chunk_steps=7)
    replay = make_replay(config, EnvSpec.probe(config), torch.device("cpu"), fill_cap=False)
    old = ApexActor(config, 0, 2)
    for _ in range(3):
        ingest(replay, old.collect(), config.num_envs)
    buffer = replay.replay
    pending = int(buffer.cursor[0])
    last = (pending - 1) % buffer.slots
    was_complete = bool(buffer.complete[0, last])
    new = ApexActor(config, 0, 2, incarnation=1)
    chunk = new.collect()
    ingest(replay, chunk, config.num_envs)
    assert not bool(buffer.complete[0, pending]) and bool(buffer.first[0, pending + 1])
    assert bool(buffer.truncated[0, last]) == was_complete
    (records, ages, errors), = chunk.records()  # fmt: skip
    assert int(buffer.cursor[0]) == pending + len(records.action)
    at = (buffer.cursor[0] - torch.tensor(ages).long()) % buffer.slots
    leaves = replay.sampler.tree.get(at)
    assert torch.allclose(leaves, (torch.tensor(errors).double() + 1e-6) ** 0.6, rtol=1e-5)
    old.close()
    new.close()


@pytest.mark.xdist_group("ray")
def test_a_checkpointed_run_resumes_with_its_replay(tmp_path, ray_local):
    config = tiny(tmp_path, total_steps=300, train_frequency=4, save_replay=True,
                  final_eval_episodes=0)  # fmt: skip
    first = build_trainer(config).run()
    assert first["global_step"] == 300
    longer = config.replace(total_steps=500)
    trainer = build_trainer(longer, resume=True)
    assert trainer.global_step == 300 and len(trainer.replay) == 300
    assert trainer.pool.incarnations == [1, 1]  # new episodes with new seeds
    summary = trainer.run()
    assert summary["global_step"] == 500 and summary["updates"] == (500 - 200) // 4


def test_a_chunk_ships_each_frame_once_compressed():
    """fake-pixels: 84x84 frames stacked 4 deep; a chunk carries one frame per slot (plus the
    pending slot it completes), compressed, and the records rebuild the ring's slots."""
    config = preset("smoke").replace(env="fake-pixels", num_actors=2, actor_chunk_steps=25)
    actor = ApexActor(config, 1, 2)
    assert actor.epsilon == pytest.approx(0.4**8)
    assert actor.agent.generator.initial_seed() == actor_seed(1, 1, 2, 0)
    first = actor.collect()
    second = actor.collect()
    assert first.fresh and not second.fresh and first.steps == second.steps == 25
    (records, ages, errors), = second.records()  # fmt: skip
    k = len(records.action)
    assert k >= 26 and records.frames.shape == (k, 84, 84)
    assert second.raw_frame_bytes == k * 84 * 84
    assert second.nbytes < second.raw_frame_bytes / 4  # compressed
    assert second.nbytes / second.steps < 4 * 84 * 84 / 8  # far below stacked observations
    assert len(ages) == len(errors) and np.all(errors >= 0) and np.all(ages >= config.n_step)
    ring = actor.ring
    end = int(ring.cursor[0])
    idx = (end - np.arange(k)[::-1]) % ring.slots
    assert np.array_equal(records.frames, ring.frames[0, idx].numpy())
    assert math.isclose(float(records.reward.sum()), float(ring.reward[0, idx].sum()))
    actor.close()


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_two_actors_learn_cartpole(tmp_path, ray_local):
    """A real learner: the cartpole preset (uniform replay) fed by 2 Ape-X actors (epsilons 0.4
    and 0.4^8) reaches an evaluation mean of 475 within 80k agent steps (one run solved
    at 60k: 500 over 10 episodes). Actors' chunks arrive in an order Ray decides, so the run is
    not bitwise repeatable; the threshold leaves room."""
    config = preset("cartpole").replace(
        num_actors=2, actor_cpus=0.5, total_steps=80_000, progress=False,
        output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    summary = build_trainer(config).run()
    assert summary["solved_at_step"] is not None and summary["eval_mean_return"] >= 475


def test_an_actor_that_keeps_dying_stops_the_run():
    from agents.distributed.pool import MAX_INCARNATIONS

    config = tiny_config()
    pool = ActorPool(config, EnvSpec.probe(config))
    pool.incarnations[1] = MAX_INCARNATIONS
    with pytest.raises(RuntimeError, match=f"actor 1 died {MAX_INCARNATIONS + 1} times"):
        pool.replace(1, RuntimeError("out of memory"))
    assert pool.lost_chunks == 1 and pool.restarts == 1
