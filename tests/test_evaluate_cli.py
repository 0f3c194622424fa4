"""scripts/evaluate.py: protocol epsilons, summary and CSV contents, evaluating on another game."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import capture_facts

from agents.dqn.agent import build_q_network
from agents.dqn.config import TrainConfig
from agents.evaluation.env_switch import EnvInterface, check_env_switch
from agents.evaluation.evaluate import action_shares
from agents.run.checkpoint import config_to_dict, save_checkpoint
from envs.scores import HUMAN_SCORE_SET, human_normalized
from scripts import evaluate as evaluate_script

PONG = ("NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE")
BREAKOUT = ("NOOP", "FIRE", "RIGHT", "LEFT")


def make_checkpoint(run: Path, env_id: str, obs_shape, num_actions: int, **config) -> Path:
    """An untrained Q-network saved in the training checkpoint format."""
    cfg = TrainConfig(env=env_id, **config)
    net = build_q_network(obs_shape, num_actions, cfg.hidden, cfg)
    state = {"config": config_to_dict(cfg), "env_id": env_id, "obs_shape": list(obs_shape),
             "num_actions": num_actions, "model": net.state_dict(), "global_step": 0}  # fmt: skip
    return save_checkpoint(run / "checkpoints", state, 0)


@pytest.fixture(scope="module")
def pong_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("pong")
    make_checkpoint(run, "Pong", (4, 84, 84), 6, eval_epsilon=0.07)
    return run


@pytest.fixture(scope="module")
def pixels_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("pixels")
    make_checkpoint(run, "fake-pixels", (4, 84, 84), 2, eval_epsilon=0.07, protocol="machado")
    return run


def run_evaluate(run: Path, out: Path, *args: str) -> tuple[int, dict | None]:
    rc = evaluate_script.main([str(run), "--output-dir", str(out), *args])
    summary = out / "summary.json"
    return rc, json.loads(summary.read_text()) if summary.exists() else None


# --- protocol and epsilon ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "protocol", "epsilon", "noop_max", "sticky"),
    [
        ([], "machado", 0.07, 0, 0.25),  # the run's protocol and eval epsilon
        (["--protocol", "nature"], "nature", 0.05, 30, 0.0),  # Mnih et al. 2015
        (["--protocol", "machado"], "machado", 0.001, 0, 0.25),  # Dopamine's epsilon_eval
        (["--protocol", "machado", "--epsilon", "0.2"], "machado", 0.2, 0, 0.25),
        (["--epsilon", "0"], "machado", 0.0, 0, 0.25),
    ],
)
def test_epsilon_defaults_to_the_protocol_given_else_the_run(
    pixels_run, tmp_path, args, protocol, epsilon, noop_max, sticky
):
    rc, summary = run_evaluate(pixels_run, tmp_path, "--episodes", "3", *args)
    assert rc == 0
    assert summary["protocol"] == protocol and summary["epsilon"] == epsilon
    assert (summary["noop_max"], summary["repeat_action_probability"]) == (noop_max, sticky)
    assert summary["max_episode_frames"] == 108_000
    assert summary["lengths"] == [8, 8, 8]  # PixelChoiceEnv's fixed episode length


def test_summary_without_human_scores_still_names_the_score_set(pixels_run, tmp_path, capsys):
    rc, summary = run_evaluate(pixels_run, tmp_path, "--episodes", "4")
    assert rc == 0
    returns = np.array(summary["returns"])
    assert len(returns) == 4 and np.all((returns >= 0) & (returns <= 8))
    assert summary["mean_return"] == pytest.approx(returns.mean())
    assert summary["median_return"] == pytest.approx(np.median(returns))
    assert summary["std_return"] == pytest.approx(returns.std())
    assert (summary["min_return"], summary["max_return"]) == (returns.min(), returns.max())
    assert summary["human_normalized"] is None and summary["human_score_set"] == HUMAN_SCORE_SET
    assert summary["checkpoint_kind"] == "q-network" and summary["forced"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episodes.csv", "summary.json"]
    assert "human-normalized" not in capsys.readouterr().out


@pytest.mark.atari
def test_pong_summary_csv_and_the_frame_cap(pong_run, tmp_path, capsys):
    rc, summary = run_evaluate(pong_run, tmp_path, "--episodes", "2", "--max-episode-frames", "400")
    assert rc == 0
    # 400 frames = 100 agent steps of 4 frames: the cap reaches the env through evaluate
    assert summary["lengths"] == [100, 100] and summary["max_episode_frames"] == 400
    assert summary["env"] == summary["trained_env"] == "ALE/Pong-v5"
    assert (summary["protocol"], summary["epsilon"]) == ("nature", 0.07)
    mean = float(np.mean(summary["returns"]))
    assert summary["human_normalized"] == pytest.approx(human_normalized("Pong", mean))
    assert summary["human_score_set"] == "dqn_zoo"
    with open(tmp_path / "episodes.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["return"]) for r in rows] == summary["returns"]
    assert [int(r["length"]) for r in rows] == [100, 100]
    out = capsys.readouterr().out
    assert "nature protocol, epsilon 0.07" in out and "(dqn_zoo)" in out
    assert sum(summary["action_counts"]) == 200 and len(summary["action_names"]) == 6
    shares = action_shares(summary["action_counts"], summary["action_names"])
    assert f"\nmost played: {shares}\n" in out


# --- another game ------------------------------------------------------------------------------


@pytest.mark.atari
@pytest.mark.parametrize(
    ("game", "words"),
    [
        ("Breakout", ["ALE/Pong-v5", "ALE/Breakout-v5", "6 actions", "4 actions (NOOP, FIRE, "
                      "RIGHT, LEFT)", "--force"]),
        ("Bowling", ["ALE/Pong-v5", "ALE/Bowling-v5", "6 actions (NOOP, FIRE, UP, DOWN, UPFIRE, "
                     "DOWNFIRE)", "--force"]),
    ],
)  # fmt: skip
def test_another_action_set_is_refused_in_one_line(pong_run, tmp_path, capsys, game, words):
    rc, summary = run_evaluate(pong_run, tmp_path, "--env", game, "--episodes", "1")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and summary is None
    assert len(err.splitlines()) == 1 and all(w in err for w in words), err


@pytest.mark.atari
def test_the_same_action_set_plays_without_a_warning(pong_run, tmp_path, capsys):
    rc, summary = run_evaluate(
        pong_run, tmp_path, "--env", "SpaceInvaders", "--episodes", "1", "--max-episode-frames",
        "200",
    )  # fmt: skip
    assert rc == 0 and capsys.readouterr().err == ""
    assert summary["env"] == "ALE/SpaceInvaders-v5" and summary["trained_env"] == "ALE/Pong-v5"
    assert summary["forced"] is False and summary["lengths"] == [50]


@pytest.mark.atari
def test_force_plays_with_actions_mapped_by_name_and_warns_once(pong_run, tmp_path, capsys):
    npz = tmp_path / "breakout.npz"
    rc, summary = run_evaluate(
        pong_run, tmp_path, "--env", "Breakout", "--force", "--episodes", "1", "--epsilon", "1",
        "--max-episode-frames", "400", "--save-trajectories", str(npz),
    )  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 0 and len(err) == 1
    assert "warning: --force" in err[0] and "ALE/Breakout-v5" in err[0] and "2 unmatched" in err[0]
    assert summary["forced"] is True and summary["env"] == "ALE/Breakout-v5"
    with np.load(npz, allow_pickle=False) as data:
        assert tuple(data["action_meanings"]) == BREAKOUT
        actions = data["actions"]
    # epsilon 1 draws all 6 Pong actions; RIGHTFIRE and LEFTFIRE became NOOP
    assert set(actions.tolist()) <= {0, 1, 2, 3} and len(actions) <= 100
    # the counts are of the actions Breakout was played with, step for step the trajectory's
    assert summary["action_counts"] == np.bincount(actions, minlength=4).tolist()
    assert summary["action_names"] == list(BREAKOUT)


@pytest.mark.atari
def test_another_observation_shape_is_refused_even_with_force(pong_run, tmp_path, capsys):
    rc, _ = run_evaluate(pong_run, tmp_path, "--env", "CartPole-v1", "--force")
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "ALE/Pong-v5" in err and "CartPole-v1" in err and "(4, 84, 84) vs (4,)" in err


def test_action_tables_by_name_and_by_index():
    pong = EnvInterface("ALE/Pong-v5", (4, 84, 84), 6, PONG)
    breakout = EnvInterface("ALE/Breakout-v5", (4, 84, 84), 4, BREAKOUT)
    assert check_env_switch(pong, EnvInterface("x", (4, 84, 84), 6, PONG)) == (None, None)
    table, warning = check_env_switch(pong, breakout, force=True)
    assert table.tolist() == [0, 1, 2, 3, 0, 0] and "by name, 2 unmatched" in warning
    table, _ = check_env_switch(breakout, pong, force=True)
    assert table.tolist() == [0, 1, 2, 3]
    unnamed = EnvInterface("a", (4,), 3, None)
    table, warning = check_env_switch(unnamed, EnvInterface("b", (4,), 2, None), force=True)
    assert table.tolist() == [0, 1, 0] and "by index, 1 unmatched" in warning
    with pytest.raises(ValueError, match=r"3 actions vs 2 actions; pass --force"):
        check_env_switch(unnamed, EnvInterface("b", (4,), 2, None))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--force"], "--force: only means something with --env"),
        (["--max-episode-frames", "0"], "--max-episode-frames: 0"),
        (["--record", "v", "--save-trajectories", "t.npz"], "cannot be combined with --record"),
        (["--epsilon", "1.5"], "--epsilon: 1.5"),
        (["--env", "Pongg"], "Pongg"),
    ],
)
def test_bad_input_exits_2_with_one_line(pixels_run, tmp_path, capsys, args, message):
    rc, summary = run_evaluate(pixels_run, tmp_path, *args)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and summary is None
    assert len(err.splitlines()) == 1 and message in err, err


# --- videos ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env_id", "obs_shape", "actions", "fps", "size"),
    [
        ("CartPole-v1", (4,), 2, 50.0, (600, 400)),
        ("Acrobot-v1", (6,), 3, 15.0, (500, 500)),
        ("MountainCar-v0", (2,), 3, 30.0, (600, 400)),
        ("fake", (4, 84, 84), 4, 15.0, (320, 420)),  # the Atari chain: 60 Hz / frame skip 4
    ],
)
def test_record_writes_one_video_per_episode_at_the_games_speed(
    tmp_path, capsys, env_id, obs_shape, actions, fps, size
):
    run, videos = tmp_path / "run", tmp_path / "videos"
    make_checkpoint(run, env_id, obs_shape, actions, eval_epsilon=0.0)
    # 40 frames: 10 agent steps at most (a gymnasium env's step cap, the Atari chain's frames)
    rc, summary = run_evaluate(run, tmp_path / "eval", "--episodes", "2", "--record",
                               str(videos), "--max-episode-frames", "40")  # fmt: skip
    assert rc == 0
    paths = [str(videos / "episode_000.mp4"), str(videos / "episode_001.mp4")]
    assert sorted(str(p) for p in videos.iterdir()) == paths
    lengths = summary["lengths"]
    assert len(lengths) == 2 and all(1 <= n <= 10 for n in lengths), lengths
    assert summary["videos"] == paths and summary["video_fps"] == fps
    assert summary["video_frames"] == [n + 1 for n in lengths]  # the reset frame, one per step
    for path, n in zip(paths, lengths):
        assert capture_facts(Path(path)) == (n + 1, *size, fps)
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == [
        f"video: {path} ({n + 1} frames at {fps:g} fps, {(n + 1) / fps:.2f} s)"
        for path, n in zip(paths, lengths)
    ]


def test_record_best_keeps_the_best_episodes_video(tmp_path, capsys):
    run, videos = tmp_path / "run", tmp_path / "videos"
    make_checkpoint(run, "CartPole-v1", (4,), 2, eval_epsilon=1.0)  # random play
    rc, summary = run_evaluate(run, tmp_path / "eval", "--episodes", "3", "--record", str(videos),
                               "--record-best")  # fmt: skip
    assert rc == 0
    best = int(np.argmax(summary["returns"]))
    assert [p.name for p in videos.iterdir()] == [f"episode_{best:03d}.mp4"]
    assert summary["video_frames"] == [summary["lengths"][best] + 1]
    assert capture_facts(videos / f"episode_{best:03d}.mp4")[0] == summary["lengths"][best] + 1


def test_record_refuses_an_env_without_rgb_frames_in_one_line(pixels_run, tmp_path, capsys):
    videos = tmp_path / "videos"
    rc, summary = run_evaluate(pixels_run, tmp_path / "eval", "--record", str(videos))
    err = capsys.readouterr().err.splitlines()
    assert rc == 2 and summary is None
    assert err == [
        "evaluate: error: --record: 'fake-pixels' cannot be recorded: it renders no rgb_array "
        "frames (its render modes: none); recordable: Atari games, fake, and gymnasium envs that "
        "render rgb_array frames (CartPole-v1, Acrobot-v1, MountainCar-v0...)"
    ]
    assert not videos.exists() and not (tmp_path / "eval").exists()
