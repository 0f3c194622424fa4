"""Behaviour cloning: trajectory files, the episode split, the classifier checkpoint, the clone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.dqn.agent import build_q_network
from agents.dqn.config import TrainConfig
from agents.evaluation.evaluate import evaluate, load_policy, save_trajectories
from agents.run.checkpoint import (
    config_to_dict,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from agents.supervised.classifier import build_classifier
from agents.supervised.datasets import load_dataset
from agents.supervised.trajectories import TrajectoryRecorder, load_trajectories, split_episodes
from envs.fake import pixel_choice_side
from scripts import evaluate as evaluate_script
from scripts import train_supervised

EPISODE_STEPS = 8  # PixelChoiceEnv's default episode length


def scripted_teacher(epsilon_seed: int = 0):
    """Names the block's side; with probability epsilon a uniform random action instead."""
    rng = np.random.default_rng(epsilon_seed)

    def policy(obs: np.ndarray, epsilon: float) -> np.ndarray:
        sides = np.array([pixel_choice_side(o) for o in obs])
        explore = rng.random(len(obs)) < epsilon
        return np.where(explore, rng.integers(2, size=len(obs)), sides)

    return policy


def record(path: Path, episodes: int, epsilon: float, num_envs: int = 4) -> dict:
    """Play the scripted teacher on fake-pixels through ``evaluate`` and save the trajectories."""
    recorder = TrajectoryRecorder()
    summary = evaluate(scripted_teacher(), "fake-pixels", episodes, epsilon, "nature", seed=1,
                       num_envs=num_envs, recorder=recorder)  # fmt: skip
    save_trajectories(path, recorder.finish("fake-pixels", "nature", epsilon, ("LEFT", "RIGHT")))
    return summary


# --- the file ----------------------------------------------------------------------------------


def test_npz_holds_exactly_the_reported_episodes(tmp_path):
    # 7 episodes on 3 envs: quotas 3, 2, 2; episodes played beyond a quota are not kept.
    summary = record(tmp_path / "t.npz", episodes=7, epsilon=0.5, num_envs=3)
    with np.load(tmp_path / "t.npz", allow_pickle=False) as data:
        d = {key: data[key] for key in data.files}
    steps = 7 * EPISODE_STEPS
    assert d["observations"].shape == (steps, 4, 84, 84) and d["observations"].dtype == np.uint8
    assert d["actions"].dtype == np.int64 and d["rewards"].dtype == np.float32
    assert d["episode"].tolist() == np.repeat(np.arange(7), EPISODE_STEPS).tolist()
    assert d["episode_lengths"].tolist() == [8] * 7 and d["episode_lengths"].sum() == steps
    assert np.flatnonzero(d["episode_start"]).tolist() == list(range(0, steps, 8))
    assert np.flatnonzero(d["done"]).tolist() == list(range(7, steps, 8))
    # returns: the sums of the stored rewards, in the order evaluate reported them
    sums = d["rewards"].reshape(7, 8).sum(axis=1)
    assert d["episode_returns"].tolist() == sums.tolist() == summary["returns"]
    assert 0 < d["rewards"].sum() < steps  # epsilon 0.5: some wrong choices
    # each reward belongs to the action taken on the stored observation
    sides = np.array([pixel_choice_side(o) for o in d["observations"]])
    assert np.array_equal(d["rewards"], (d["actions"] == sides).astype(np.float32))
    # stacks never mix episodes: zero padding at a start, a sliding window inside an episode
    obs = d["observations"]
    for t in range(steps):
        if d["episode_start"][t]:
            assert not obs[t, :3].any() and obs[t, 3].any()
        else:
            assert np.array_equal(obs[t, :3], obs[t - 1, 1:])
    assert (d["env_id"].shape, str(d["env_id"]), str(d["protocol"])) == (
        (),
        "fake-pixels",
        "nature",
    )
    assert float(d["epsilon"]) == 0.5 and int(d["num_actions"]) == 2
    assert tuple(d["action_meanings"]) == ("LEFT", "RIGHT")


def test_loading_refuses_bad_files_with_one_clear_message(tmp_path):
    with pytest.raises(ValueError, match=r"missing.npz does not exist; write one with"):
        load_trajectories(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match=r"lacks the arrays observations, actions, rewards"):
        load_trajectories(tmp_path / "other.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match=r"not a readable npz file"):
        load_trajectories(tmp_path / "text.npz")
    record(tmp_path / "good.npz", episodes=2, epsilon=0.0)
    with np.load(tmp_path / "good.npz", allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    np.savez(tmp_path / "bad.npz", **{**arrays, "episode_returns": np.array([8.0, 7.0])})
    with pytest.raises(ValueError, match=r"episode_returns are not the sums of its rewards"):
        load_trajectories(tmp_path / "bad.npz")
    np.savez(tmp_path / "bad.npz", **{**arrays, "episode": np.repeat([0, 2], 8)})
    with pytest.raises(ValueError, match=r"episode indices do not run 0, 1"):
        load_trajectories(tmp_path / "bad.npz")


def test_dataset_splits_by_whole_episodes_reproducibly(tmp_path):
    record(tmp_path / "t.npz", episodes=10, epsilon=0.0)
    a = load_dataset(f"trajectories:{tmp_path / 't.npz'}")
    b = load_dataset(f"trajectories:{tmp_path / 't.npz'}")
    c = load_dataset(f"trajectories:{tmp_path / 't.npz'}", seed=1)
    train, test = a.recording["train_episodes"], a.recording["test_episodes"]
    assert len(test) == 2 and sorted(train + test) == list(range(10))  # round(0.2 * 10)
    assert (b.recording["test_episodes"], split_episodes(10)[1].tolist()) == (test, test)
    assert c.recording["test_episodes"] != test
    assert a.x_train.shape == (64, 4, 84, 84) and a.x_test.shape == (16, 4, 84, 84)
    assert a.x_train.dtype == np.uint8 and a.y_train.dtype == np.int64
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert a.class_names == ("LEFT", "RIGHT") and a.input_shape == (4, 84, 84)
    assert a.recording["env_id"] == "fake-pixels" and a.recording["mean_return"] == 8.0
    # labels are the teacher's actions (epsilon 0: the side shown)
    assert a.y_test.tolist() == [pixel_choice_side(o) for o in a.x_test]


def test_dataset_errors_name_what_is_needed(tmp_path):
    record(tmp_path / "one.npz", episodes=1, epsilon=0.0)
    with pytest.raises(ValueError, match=r"holds 1 episode; .* needs at least 2"):
        load_dataset(f"trajectories:{tmp_path / 'one.npz'}")
    with pytest.raises(ValueError, match=r"does not exist"):
        load_dataset(f"trajectories:{tmp_path / 'none.npz'}")
    with pytest.raises(ValueError, match=r"names no file; use trajectories:PATH"):
        load_dataset("trajectories:")
    with pytest.raises(ValueError, match=r"takes no option 'data_dir'; accepted: test_fraction"):
        load_dataset(f"trajectories:{tmp_path / 'one.npz'}", data_dir="x")
    with pytest.raises(ValueError, match=r"accepted: atari-frames, digits, mnist, xor, traj"):
        load_dataset("trajectory:x.npz")


# --- the clone ---------------------------------------------------------------------------------


def test_classifier_checkpoint_acts_greedily_on_its_logits():
    torch.manual_seed(0)
    net = build_classifier("nature-cnn", (4, 84, 84), 3)
    state = {"kind": "classifier", "classifier": {"model": "nature-cnn"}, "config": {},
             "obs_shape": [4, 84, 84], "num_actions": 3, "model": net.state_dict()}  # fmt: skip
    policy = load_policy(state, torch.device("cpu"))
    obs = np.random.default_rng(0).integers(0, 256, size=(16, 4, 84, 84), dtype=np.uint8)
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(obs)).argmax(1)
    assert torch.equal(policy.act(obs, 0.0), expected)
    with pytest.raises(ValueError, match=r"holds a 'tree' model; accepted: q-network, classifier"):
        load_policy({**state, "kind": "tree"}, torch.device("cpu"))


def test_clone_of_a_scripted_teacher_plays_like_it(tmp_path, capsys):
    teacher = record(tmp_path / "teacher.npz", episodes=30, epsilon=0.0)
    assert teacher["mean_return"] == 8.0
    clone = tmp_path / "clone"
    argv = ["--dataset", f"trajectories:{tmp_path / 'teacher.npz'}", "--model", "nature-cnn",
            "--output-dir", str(clone), "--no-progress"]  # fmt: skip
    assert train_supervised.main(argv) == 0
    summary = json.loads((clone / "summary.json").read_text())
    assert summary["test_accuracy"] >= 0.95
    state = load_checkpoint(latest_checkpoint(clone / "checkpoints"))
    assert summary["checkpoint"] == state["path"]
    assert state["kind"] == "classifier" and state["env_id"] == "fake-pixels"
    assert (state["obs_shape"], state["num_actions"]) == ([4, 84, 84], 2)
    assert state["config"]["protocol"] == "nature" and state["config"]["eval_epsilon"] == 0.0
    assert state["global_step"] == 10 * 3  # 10 epochs of ceil(192 / 64) batches (24 episodes)

    replay = tmp_path / "clone.npz"
    rc = evaluate_script.main([str(clone), "--episodes", "10", "--save-trajectories", str(replay)])
    assert rc == 0
    result = json.loads((clone / "evaluation" / "summary.json").read_text())
    assert result["checkpoint_kind"] == "classifier" and result["epsilon"] == 0.0
    assert result["mean_return"] == teacher["mean_return"] == 8.0  # every side named right
    played = load_trajectories(replay)
    assert played.num_episodes == 10 and played.episode_returns.tolist() == [8.0] * 10
    assert "trajectories: " in capsys.readouterr().out


@pytest.mark.atari
def test_pong_trajectories_from_an_untrained_checkpoint(tmp_path):
    cfg = TrainConfig(env="Pong")
    net = build_q_network((4, 84, 84), 6, cfg.hidden, cfg)
    state = {"config": config_to_dict(cfg), "env_id": "Pong", "obs_shape": [4, 84, 84],
             "num_actions": 6, "model": net.state_dict(), "global_step": 0}  # fmt: skip
    save_checkpoint(tmp_path / "run" / "checkpoints", state, 0)
    npz = tmp_path / "pong.npz"
    rc = evaluate_script.main([str(tmp_path / "run"), "--episodes", "2", "--max-episode-frames",
                               "400", "--save-trajectories", str(npz)])  # fmt: skip
    assert rc == 0
    t = load_trajectories(npz)
    assert t.observations.shape == (200, 4, 84, 84) and t.observations.dtype == np.uint8
    assert t.episode_lengths.tolist() == [100, 100]  # 400 frames of frame skip 4
    assert (t.env_id, t.protocol, t.epsilon) == ("ALE/Pong-v5", "nature", 0.05)
    assert t.action_meanings == ("NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE")
    summary = json.loads((tmp_path / "run" / "evaluation" / "summary.json").read_text())
    assert t.episode_returns.tolist() == summary["returns"]
    assert not t.observations[0, :3].any() and t.observations[0, 3].mean() > 50  # Pong's court
    # the file trains a clone that evaluate can play on the real game
    argv = ["--dataset", f"trajectories:{npz}", "--model", "nature-cnn", "--epochs", "1",
            "--output-dir", str(tmp_path / "clone"), "--no-progress"]  # fmt: skip
    assert train_supervised.main(argv) == 0
    assert evaluate_script.main([str(tmp_path / "clone"), "--episodes", "1",
                                 "--max-episode-frames", "200"]) == 0  # fmt: skip
