"""Resuming a run: bitwise-identical continuation, saved replay, env state, metrics, wandb id."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import stop_at

from agents.dqn.build import build_trainer
from agents.dqn.replay.io import load_replay, save_replay
from agents.dqn.replay.prioritized import PrioritizedReplay, PrioritizedSampler
from agents.dqn.replay.uniform import ReplayBuffer
from agents.run.checkpoint import list_checkpoints, load_checkpoint
from agents.run.tracking import read_metrics
from envs.state import env_state, restore_env_state
from envs.vector import make_vector_env
from scripts.train import main as train_main

QUIET = ["--no-progress", "--no-record-video", "--final-eval-episodes", "0"]
CARTPOLE = [
    "--env", "CartPole-v1", "--learning-starts", "200", "--buffer-size", "1000",
    "--log-every-steps", "100", "--checkpoint-every-steps", "100000", "--eval-every-steps", "0",
    "--target-update-steps", "150", "--save-replay", *QUIET,
]  # fmt: skip
PIXELS = [
    "--env", "fake-pixels", "--preset", "smoke", "--learning-starts", "100", "--buffer-size",
    "600", "--log-every-steps", "100", "--checkpoint-every-steps", "100000",
    "--eval-every-steps", "0", "--target-update-steps", "100", "--save-replay", *QUIET,
]  # fmt: skip
TIMING = ("charts/SPS",)


def run_straight_and_resumed(tmp_path, monkeypatch, args, half: int):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    total = ["--total-steps", str(2 * half)]
    assert train_main([*args, *total, "--output-dir", str(straight)]) == 0
    with monkeypatch.context() as patch:
        stop_at(patch, half)
        assert train_main([*args, *total, "--output-dir", str(resumed)]) == 130
    assert load_checkpoint(resumed)["global_step"] == half
    assert train_main(["--resume", str(resumed)]) == 0
    return load_checkpoint(straight), load_checkpoint(resumed), straight, resumed


def assert_same_tensors(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_tensors(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.parametrize(
    ("extra", "half"),
    [
        (["--preset", "cartpole"], 1000),
        (["--preset", "cartpole-rainbow"], 1000),  # PER, n-step, C51, dueling, noisy
        (PIXELS, 400),  # conv net, frame stacks, uint8 replay
    ],
    ids=["dqn", "rainbow", "pixels"],
)
def test_stop_and_resume_is_bitwise_identical_to_a_straight_run(tmp_path, monkeypatch, extra, half):
    args = [*CARTPOLE, *extra] if extra[0] == "--preset" else extra
    a, b, straight, resumed = run_straight_and_resumed(tmp_path, monkeypatch, args, half)
    assert a["global_step"] == b["global_step"] == 2 * half
    assert a["updates"] == b["updates"] > 0
    for key in ("model", "target", "optimizer", "agent_rng", "torch_rng", "obs", "env_state"):
        assert_same_tensors(a[key], b[key], key)
    # metrics.csv: the same rows (but the clock), none duplicated by the resume
    ma, mb = read_metrics(straight / "metrics.csv"), read_metrics(resumed / "metrics.csv")
    assert ma.keys() == mb.keys()
    for key in ma:
        if key not in TIMING:
            assert ma[key] == mb[key], key
    steps = [s for s, _ in mb["charts/epsilon"]]
    assert steps == sorted(set(steps)) and len(steps) == 2 * half // 100


def test_a_resumed_run_keeps_one_replay_and_its_epsilon_position(tmp_path):
    out = tmp_path / "run"
    args = [*CARTPOLE, "--preset", "cartpole", "--output-dir", str(out)]
    assert train_main([*args, "--total-steps", "600", "--epsilon-decay-steps", "1000"]) == 0
    assert [p.name for p in (out / "checkpoints").glob("replay_*")] == ["replay_000000000600"]
    assert train_main(["--resume", str(out), "--total-steps", "1000"]) == 0
    assert [p.name for p in (out / "checkpoints").glob("replay_*")] == ["replay_000000001000"]
    epsilon = dict(read_metrics(out / "metrics.csv")["charts/epsilon"])
    # linear 1.0 -> 0.05 over 1000 steps (the cartpole preset's end value), not restarted
    end = load_checkpoint(out)["config"]["epsilon_end"]
    for step in (100, 600, 700, 1000):
        assert epsilon[step] == pytest.approx(1.0 + min(step / 1000, 1.0) * (end - 1.0), abs=1e-6)


def test_resume_without_a_saved_replay_refills_before_updating(tmp_path):
    out = tmp_path / "run"
    args = [a for a in CARTPOLE if a != "--save-replay"]
    args += ["--preset", "cartpole", "--output-dir", str(out)]
    assert train_main([*args, "--total-steps", "500"]) == 0
    updates_before = load_checkpoint(out)["updates"]
    assert train_main(["--resume", str(out), "--total-steps", "800"]) == 0
    state = load_checkpoint(out)
    assert state["global_step"] == 800
    # steps 501..700 refill (learning_starts 200), then 100 steps at one update per step
    assert state["updates"] - updates_before == 100


def test_atari_resume_starts_new_episodes_and_keeps_the_replay(tmp_path):
    out = tmp_path / "run"
    args = ["--env", "Breakout", "--preset", "smoke", "--learning-starts", "100", "--buffer-size",
            "2000", "--log-every-steps", "100", "--eval-every-steps", "0", "--save-replay",
            "--output-dir", str(out), *QUIET]  # fmt: skip
    assert train_main([*args, "--total-steps", "300"]) == 0
    first = load_checkpoint(out)
    assert first["env_state"] is None  # ale_py's C++ vector env cannot be saved
    assert train_main(["--resume", str(out), "--total-steps", "500"]) == 0
    second = load_checkpoint(out)
    assert second["global_step"] == 500
    assert second["updates"] - first["updates"] == 200 // 4  # the replay came back: no refill
    assert second["run_id"] == first["run_id"]


def _filled_replay(prioritized: bool):
    replay = ReplayBuffer(64, 2, (6, 5), frame_stack=3, n_step=2, seed=4)
    if prioritized:
        sampler = PrioritizedSampler(replay.num_streams * replay.slots, alpha=0.6)
        replay = PrioritizedReplay(replay, sampler)
    rng = np.random.default_rng(0)
    replay.start(rng.integers(0, 255, (2, 3, 6, 5), dtype=np.uint8))
    for t in range(50):
        obs = rng.integers(0, 255, (2, 3, 6, 5), dtype=np.uint8)
        done = np.array([t % 17 == 16, False])
        replay.add(rng.integers(4, size=2), rng.normal(size=2), done, np.zeros(2, bool), obs,
                   done, obs)  # fmt: skip
    if prioritized:
        batch = replay.sample(8, 10)
        replay.update_priorities(batch, torch.arange(8.0))
    return replay


@pytest.mark.parametrize("prioritized", [False, True])
def test_saved_replay_restores_every_tensor_and_the_next_batch(tmp_path, monkeypatch, prioritized):
    monkeypatch.setattr("agents.dqn.replay.io.CHUNK_BYTES", 100)  # many chunks per tensor
    replay = _filled_replay(prioritized)
    save_replay(replay, tmp_path / "replay")
    fresh = _filled_replay(prioritized).__class__  # same type, empty
    empty = ReplayBuffer(64, 2, (6, 5), frame_stack=3, n_step=2, seed=99)
    if prioritized:
        empty = fresh(empty, PrioritizedSampler(empty.num_streams * empty.slots, alpha=0.6))
    load_replay(empty, tmp_path / "replay")
    a, b = replay.sample(16, 20), empty.sample(16, 20)
    for x, y in zip(a, b):
        assert (x is None and y is None) or torch.equal(x, y)
    assert not list(tmp_path.glob(".replay*"))  # no temporary directory left


def test_saved_replay_refuses_a_different_shape_and_a_damaged_file(tmp_path):
    replay = _filled_replay(False)
    save_replay(replay, tmp_path / "replay")
    other = ReplayBuffer(64, 2, (6, 4), frame_stack=3, n_step=2)
    with pytest.raises(ValueError, match="resume with the same settings"):
        load_replay(other, tmp_path / "replay")
    path = tmp_path / "replay" / "reward.npy"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match="reward.npy"):
        load_replay(ReplayBuffer(64, 2, (6, 5), frame_stack=3, n_step=2), tmp_path / "replay")


def test_saved_prioritized_replay_of_another_tree_layout_is_refused(tmp_path):
    replay = _filled_replay(True)
    save_replay(replay, tmp_path / "replay")
    meta_path = tmp_path / "replay" / "meta.json"
    meta = json.loads(meta_path.read_text())
    assert meta["sum_tree_branching"] == 128
    del meta["sum_tree_branching"]  # as written before the tree had 128 children per node
    meta_path.write_text(json.dumps(meta))
    empty = ReplayBuffer(64, 2, (6, 5), frame_stack=3, n_step=2)
    empty = PrioritizedReplay(empty, PrioritizedSampler(empty.num_streams * empty.slots))
    with pytest.raises(ValueError, match="'sum_tree_branching': None.*resume with the same"):
        load_replay(empty, tmp_path / "replay")


@pytest.mark.parametrize("env_id", ["CartPole-v1", "fake", "fake-pixels"])
def test_env_state_continues_the_same_episodes(env_id):
    env = make_vector_env(env_id, 2, seed=3)
    env.reset()
    rng = np.random.default_rng(0)
    n = env.single_action_space.n
    for _ in range(37):
        env.step(rng.integers(n, size=2))
    state = env_state(env)
    actions = rng.integers(n, size=(150, 2))
    expected = [env.step(a) for a in actions]
    other = make_vector_env(env_id, 2, seed=99)
    other.reset()
    restore_env_state(other, state)
    for a, want in zip(actions, expected):
        got = other.step(a)
        for i in range(4):
            np.testing.assert_array_equal(got[i], want[i])
        np.testing.assert_array_equal(got[4]["episode_return"], want[4]["episode_return"])
    assert sum(int(w[4]["episode_done"].sum()) for w in expected) > 0  # crossed a reset


def test_atari_vector_env_state_is_reported_unsupported():
    env = make_vector_env("Pong", 1, seed=0)
    env.reset()
    assert env_state(env) is None
    env.close()


RESUME_ERRORS = [
    (lambda d: ["--resume", str(d / "missing")], "--resume: "),
    (lambda d: ["--resume", str(d / "run"), "--learning-rate", "0.1"], "--learning-rate"),
    (lambda d: ["--resume", str(d / "empty")], "no checkpoint"),
]


@pytest.mark.parametrize(
    "make_args", [e[0] for e in RESUME_ERRORS], ids=["missing", "flag", "empty"]
)
def test_resume_errors_exit_2_with_one_line(tmp_path, capsys, make_args):
    message = {e[0]: e[1] for e in RESUME_ERRORS}[make_args]
    out = tmp_path / "run"
    assert train_main([*CARTPOLE, "--preset", "cartpole", "--total-steps", "300",
                       "--output-dir", str(out)]) == 0  # fmt: skip
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text((out / "config.json").read_text())
    capsys.readouterr()
    assert train_main(make_args(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert len(list_checkpoints(out / "checkpoints")) == 1


def test_a_resumed_run_continues_the_same_wandb_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    args = [*CARTPOLE, "--preset", "cartpole", "--track", "--wandb-mode", "offline"]
    assert train_main([*args, "--total-steps", "300", "--output-dir", str(out)]) == 0
    run_id = load_checkpoint(out)["run_id"]
    assert train_main(["--resume", str(out), "--total-steps", "600"]) == 0
    assert load_checkpoint(out)["run_id"] == run_id
    runs = sorted(p.name for p in (out / "wandb").glob("offline-run-*"))
    # offline-run-<time to the second>-<id>: two starts within one second share one folder
    assert 1 <= len(runs) <= 2 and all(name.endswith(f"-{run_id}") for name in runs), runs


def test_resuming_with_an_edited_config_names_the_setting_and_both_values(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main([*CARTPOLE, "--preset", "cartpole", "--total-steps", "300",
                       "--output-dir", str(out)]) == 0  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "dueling": True}))
    capsys.readouterr()
    assert train_main(["--resume", str(out), "--total-steps", "400"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"--resume: dueling is true in {out / 'config.json'} but false in the checkpoint" in err


def test_a_checkpoint_of_another_network_names_both_sides(tmp_path):
    """A library caller resuming with a config whose network differs from the checkpoint's gets
    the network named, even past the settings check."""
    from agents.run.directory import read_run_config

    out = tmp_path / "run"
    assert train_main([*CARTPOLE, "--preset", "cartpole", "--total-steps", "300",
                       "--output-dir", str(out)]) == 0  # fmt: skip
    config = read_run_config(out / "config.json").replace(dueling=True, total_steps=400)
    with pytest.MonkeyPatch.context() as patch:  # past the settings check
        patch.setattr("agents.dqn.build.check_resume", lambda *args: None)
        with pytest.raises(ValueError, match="holds another network than this config builds"):
            build_trainer(config, resume=True)
