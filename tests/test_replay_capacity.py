"""The replay is allocated for what the run can fill, not the whole --buffer-size, says its size
before allocating it, and a saved replay of a shorter run grows when the run is extended."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import stop_at

from agents.dqn.build import build_trainer
from agents.dqn.config import TrainConfig
from agents.dqn.presets import cartpole_rainbow, smoke
from agents.dqn.replay.prioritized import PrioritizedReplay, PrioritizedSampler, flat_index
from agents.dqn.replay.sizing import grow_replay, replay_bytes, replay_slots
from agents.dqn.replay.uniform import ReplayBuffer
from agents.run.checkpoint import load_checkpoint
from scripts.train import main as train_main

QUIET = {"eval_every_steps": 0, "final_eval_episodes": 0, "record_video": False,
         "progress": False}  # fmt: skip
PIXELS = [
    "--env", "fake-pixels", "--preset", "smoke", "--learning-starts", "100", "--buffer-size",
    "2000", "--log-every-steps", "100", "--checkpoint-every-steps", "100000",
    "--eval-every-steps", "0", "--target-update-steps", "100", "--save-replay", "--no-progress",
    "--no-record-video", "--final-eval-episodes", "0",
]  # fmt: skip


def test_the_cap_is_the_runs_steps_per_stream_plus_the_least_a_stream_needs():
    config = TrainConfig(total_steps=4_000, buffer_size=1_000_000)
    assert replay_slots(config, num_envs=1, frame_stack=4) == 4_000 + 4 + 1 + 2
    assert replay_slots(config, num_envs=4, frame_stack=4) == 1_000 + 7  # 4,028 transitions
    assert replay_slots(config.replace(n_step=3), num_envs=3, frame_stack=1) == 1_334 + 6
    long = TrainConfig(total_steps=10_000_000, buffer_size=1_000_000)
    assert replay_slots(long, num_envs=1, frame_stack=4) == 1_000_000
    assert replay_slots(long, num_envs=16, frame_stack=4) == 62_500


def test_a_short_runs_replay_is_capped_and_announced_before_allocation(tmp_path, capsys):
    config = smoke().replace(env="fake-pixels", total_steps=4_000, buffer_size=1_000_000,
                             output_dir=str(tmp_path), **QUIET)  # fmt: skip
    replay = build_trainer(config).replay
    assert (replay.num_streams, replay.slots) == (1, 4_007)  # not 1,000,000 (7.06 GB)
    assert replay.nbytes == replay_bytes(1, 4_007, (84, 84), torch.uint8, False) == 28_328_532
    assert capsys.readouterr().out.splitlines() == [
        "device: cpu (networks), cpu (replay)",
        "replay: 4,007 transitions (28.3 MB) on cpu: --buffer-size 1,000,000 capped at what "
        "--total-steps 4,000 can fill",
    ]


def test_a_capped_replay_over_parallel_envs(tmp_path, capsys):
    config = smoke().replace(env="fake", num_envs=4, total_steps=4_000, buffer_size=1_000_000,
                             output_dir=str(tmp_path), **QUIET)  # fmt: skip
    replay = build_trainer(config).replay
    assert (replay.num_streams, replay.slots) == (4, 1_007)
    assert capsys.readouterr().out.splitlines() == [
        "device: cpu (networks), cpu (replay)",
        "replay: 4,028 transitions (28.5 MB) on cpu: --buffer-size 1,000,000 capped at what "
        "--total-steps 4,000 can fill",
    ]


def test_a_run_longer_than_the_buffer_keeps_buffer_size(tmp_path, capsys):
    config = smoke().replace(env="fake-pixels", total_steps=5_000, buffer_size=1_000,
                             output_dir=str(tmp_path), **QUIET)  # fmt: skip
    replay = build_trainer(config).replay
    assert (replay.num_streams, replay.slots) == (1, 1_000)
    assert replay.nbytes == 7_075_056
    assert capsys.readouterr().out.splitlines() == [
        "device: cpu (networks), cpu (replay)",
        "replay: 1,000 transitions (7.1 MB) on cpu",
    ]


def test_prioritized_replay_follows_the_cap(tmp_path, capsys):
    config = cartpole_rainbow().replace(total_steps=600, learning_starts=200,
                                        output_dir=str(tmp_path), **QUIET)  # fmt: skip
    replay = build_trainer(config).replay
    assert isinstance(replay, PrioritizedReplay)
    assert replay.replay.slots == 600 + 1 + 3 + 2  # frame stack 1, n-step 3; buffer 50,000
    assert replay.sampler.capacity == 606
    allocated = replay.replay.nbytes + replay.sampler.tree.tree.numel() * 8
    assert allocated == replay_bytes(1, 606, (4,), torch.float32, True) == 23_136
    assert capsys.readouterr().out.splitlines() == [
        "device: cpu (networks), cpu (replay)",
        "prioritized replay: 606 transitions (23.1 kB) on cpu: --buffer-size 50,000 capped at "
        "what --total-steps 600 can fill",
    ]


def fill(replays, steps, resets_per_stream, rng, num_streams=2, frame=(2, 3)):
    """The same ``steps`` vector steps into each replay; each stream ends an episode
    ``resets_per_stream`` times, at its own steps."""
    first = replays[0].replay if isinstance(replays[0], PrioritizedReplay) else replays[0]
    shape = (num_streams, first.frame_stack, *frame)
    ends = [set(rng.choice(np.arange(2, steps - 1), resets_per_stream, replace=False))
            for _ in range(num_streams)]  # fmt: skip
    for t in range(steps):
        obs = rng.integers(0, 255, shape, dtype=np.uint8)
        done = np.array([t in e for e in ends])
        action, reward = rng.integers(4, size=num_streams), rng.normal(size=num_streams)
        for replay in replays:
            if not replay.started:
                replay.start(obs)
            else:
                replay.add(action, reward, done, np.zeros(num_streams, bool), obs, done, obs)


def stored(replay) -> set[tuple]:
    """Every sampleable transition's content (stacks, action, n-step reward and discount)."""
    buffer = replay.replay if isinstance(replay, PrioritizedReplay) else replay
    streams = buffer._streams.repeat_interleave(buffer.slots)
    slots = torch.arange(buffer.slots).repeat(buffer.num_streams)
    keep = buffer.sampleable(streams, slots)
    b = buffer.gather(streams[keep], slots[keep])
    return {
        (o.numpy().tobytes(), int(a), round(float(r), 5), n.numpy().tobytes(), float(d))
        for o, a, r, n, d in zip(b.obs, b.action, b.reward, b.next_obs, b.discount)
    }


@pytest.mark.parametrize("resets", [5, 6])
def test_the_reserve_keeps_every_transition_until_more_than_n_plus_2_episode_ends(resets):
    config = TrainConfig(total_steps=50, buffer_size=10**6, n_step=3)
    slots = replay_slots(config, num_envs=2, frame_stack=4)  # 25 + 4 + 3 + 2
    capped = ReplayBuffer(2 * slots, 2, (2, 3), frame_stack=4, n_step=3)
    unbounded = ReplayBuffer(2 * 1_000, 2, (2, 3), frame_stack=4, n_step=3)
    fill([capped, unbounded], 26, resets, np.random.default_rng(resets))  # start + 25 steps
    if resets <= config.n_step + 2:
        assert stored(capped) == stored(unbounded)
    else:  # one more episode end: each stream's oldest transition is overwritten
        assert stored(capped) < stored(unbounded)
        assert len(stored(unbounded)) - len(stored(capped)) == 2


@pytest.mark.parametrize("prioritized", [False, True])
@pytest.mark.parametrize("steps", [20, 70], ids=["unwrapped", "wrapped"])
def test_a_grown_replay_keeps_the_transitions_and_goes_on_as_a_larger_one(steps, prioritized):
    def make(slots):
        replay = ReplayBuffer(2 * slots, 2, (2, 3), frame_stack=3, n_step=2, seed=5)
        if prioritized:
            replay = PrioritizedReplay(replay, PrioritizedSampler(2 * slots, alpha=0.6))
        return replay

    small, large, reference = make(40), make(100), make(500)
    rng = np.random.default_rng(steps)
    fill([small, reference], steps, 4, rng)
    if prioritized:  # some learned priorities, not only the initial maximum
        batch = small.sample(16, 0)
        small.update_priorities(batch, torch.linspace(0.1, 3.0, 16))
    before = stored(small)
    grow_replay(small, large)
    assert before <= stored(large) <= stored(reference)  # nothing lost, nothing made up
    if steps < 40:
        assert stored(large) == stored(reference)
    a, b = (r.replay if prioritized else r for r in (small, large))
    assert (b.written, len(b), b.started) == (a.written, len(a), True)
    assert torch.equal(b.generator.get_state(), a.generator.get_state())
    if prioritized:
        streams = b._streams.repeat_interleave(b.slots)
        slots = torch.arange(b.slots).repeat(2)
        leaves = large.sampler.tree.get(flat_index(streams, slots, b.slots))
        assert torch.equal(leaves > 0, b.sampleable(streams, slots))
        assert large.sampler.tree.get(flat_index(streams, slots, b.slots)).max() <= float(
            small.sampler.max_priority
        )
        kept = small.sampler.tree.get(flat_index(streams[: a.slots], slots[: a.slots], a.slots))
        assert set(kept[kept > 0].tolist()) <= set(leaves.tolist())  # learned ones carried over
        assert torch.equal(large.sampler.max_priority, small.sampler.max_priority)
    fill([large, reference], 50, 3, rng)  # 50 more steps fit in the larger ring
    assert stored(large) <= stored(reference)
    assert len(stored(large)) >= len(before) + 2 * 45


def saved_slots(run) -> int:
    state = load_checkpoint(run)
    return json.loads((run / "checkpoints" / state["replay"] / "meta.json").read_text())["slots"]


def test_extending_a_short_run_grows_its_saved_replay(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main([*PIXELS, "--total-steps", "300", "--output-dir", str(out)]) == 0
    first = load_checkpoint(out)
    assert saved_slots(out) == 307  # wrapped: 37 of the 8-step episodes ended in 300 steps
    capsys.readouterr()
    assert train_main(["--resume", str(out), "--total-steps", "600"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        "device: cpu (networks), cpu (replay)",
        "replay: 607 transitions (4.3 MB) on cpu: --buffer-size 2,000 capped at what "
        "--total-steps 600 can fill",
        "replay: the saved replay of 307 transitions (a shorter run's) goes on in this one's 607",
    ]
    second = load_checkpoint(out)
    assert second["global_step"] == 600 and saved_slots(out) == 607
    assert second["updates"] - first["updates"] == 300 // 4  # the replay came back: no refill
    # extended past --buffer-size: the replay is the whole buffer, and the 607 slots grow into it
    assert train_main(["--resume", str(out), "--total-steps", "3000"]) == 0
    assert saved_slots(out) == 2_000
    assert load_checkpoint(out)["updates"] - second["updates"] == 2_400 // 4


def test_a_saved_replay_larger_than_the_new_cap_is_kept(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        stop_at(patch, 300)
        assert train_main([*PIXELS, "--total-steps", "600", "--output-dir", str(out)]) == 130
    assert saved_slots(out) == 607
    capsys.readouterr()
    assert train_main(["--resume", str(out), "--total-steps", "400"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == [
        "device: cpu (networks), cpu (replay)",
        "replay: 607 transitions (4.3 MB) on cpu: the size of the saved replay it resumes "
        "(--buffer-size 2,000)",
    ]
    state = load_checkpoint(out)
    assert state["global_step"] == 400 and saved_slots(out) == 607
    assert state["updates"] == (400 - 100) // 4  # no refill


def test_extending_a_prioritized_run_keeps_its_replay_and_beta_schedule(tmp_path):
    out = tmp_path / "run"
    args = ["--preset", "cartpole-rainbow", "--learning-starts", "200", "--log-every-steps",
            "100", "--eval-every-steps", "0", "--save-replay", "--no-progress",
            "--no-record-video", "--final-eval-episodes", "0",
            "--output-dir", str(out)]  # fmt: skip
    assert train_main([*args, "--total-steps", "600"]) == 0
    first = load_checkpoint(out)
    assert saved_slots(out) == 606 and first["priority_beta_steps"] == 600
    assert train_main(["--resume", str(out), "--total-steps", "1200"]) == 0
    second = load_checkpoint(out)
    assert saved_slots(out) == 1_206
    assert second["updates"] - first["updates"] == 600  # an update per step, no refill
    assert second["priority_beta_steps"] == 600  # beta stays at 1, not back to 0.7
