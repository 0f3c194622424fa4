"""What scripts.train says on the console: the device and replay lines, one line per evaluation
(periodic and final, announced before the long ones), the solved line, the progress bar kept to
one line with the last evaluation in it, and the warning of a video that cannot be made.

The fake Atari env pays scripted rewards whatever the agent does, so its evaluation returns depend
only on the seeded no-op starts (1..30 frames whose rewards fall before the episode starts): the
lines below are exact for any network, machine or speed.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.dqn.config import TrainConfig
from agents.dqn.replay import sizing
from agents.evaluation.evaluate import action_shares
from agents.run.checks import format_bytes
from scripts import train as train_script

FAKE = ["--env", "fake", "--preset", "smoke", "--seed", "1", "--torch-threads", "1",
        "--no-record-video", "--log-every-steps", "100"]  # fmt: skip
TRAINED = re.compile(r"trained (\S+) for (\d+) agent steps \(\d+/s\)")  # the speed varies


def run_train(capsys, args: list[str]) -> tuple[int, list[str], str]:
    code = train_script.main(args)
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def without_speed(lines: list[str]) -> list[str]:
    """The lines with the steps per second of the 'trained ...' line taken out."""
    return [
        f"trained {m[1]} for {m[2]} agent steps (-/s)" if (m := TRAINED.fullmatch(line)) else line
        for line in lines
    ]


def periodic_run(out: Path) -> list[str]:
    return [
        *FAKE, "--total-steps", "300", "--learning-starts", "299", "--eval-every-steps", "100",
        "--eval-episodes", "2", "--final-eval-episodes", "3", "--output-dir", str(out),
    ]  # fmt: skip


def most_played(out: Path) -> str:
    """The final line's ``; most played: ...`` from the actions counted in summary.json."""
    summary = json.loads((out / "summary.json").read_text())
    shares = action_shares(summary["eval_action_counts"], summary["eval_action_names"])
    return f"; most played: {shares}"


def periodic_lines(out: Path) -> list[str]:
    same = "return 23.50 +- 0.50 over 2 episodes (epsilon 0.05, nature protocol)"
    return [
        "device: cpu (networks), cpu (replay)",
        "replay: 307 transitions (2.2 MB) on cpu: --buffer-size 2,000 capped at what "
        "--total-steps 300 can fill",
        f"eval @ step 100: {same}",  # the same seeds each time: the same no-op starts
        f"eval @ step 200: {same}",
        f"eval @ step 300: {same}",
        "evaluating 3 episodes ...",
        "final eval @ step 300: return 24.67 +- 1.70 over 3 episodes (epsilon 0.05, nature "
        "protocol)" + most_played(out),
        "trained fake for 300 agent steps (-/s)",
        "evaluation: mean return 24.67 over 3 episodes (epsilon 0.05)",
        f"outputs: {out}/summary.json, {out}/metrics.csv, {out}/checkpoints/",
    ]


def test_each_evaluation_is_one_line_and_the_final_one_is_announced(tmp_path, capsys):
    out = tmp_path / "run"
    code, lines, _ = run_train(capsys, [*periodic_run(out), "--no-progress"])
    assert code == 0
    assert without_speed(lines) == periodic_lines(out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eval_returns"] == [23.0, 24.0, 27.0]  # the final line's 24.67 +- 1.70
    assert summary["eval_action_names"] == ["NOOP", "FIRE", "RIGHT", "LEFT"]
    # each game is 120 play frames after FIRE, up to 30 of them no-op starts: 22-30 agent steps
    assert 3 * 22 <= sum(summary["eval_action_counts"]) <= 3 * 30


def test_the_progress_bar_stays_one_line_and_shows_the_last_evaluation(tmp_path, capsys):
    out = tmp_path / "run"
    code, lines, err = run_train(capsys, periodic_run(out))  # --progress is on by default
    assert code == 0
    assert without_speed(lines) == periodic_lines(out)  # the same lines, above the bar
    bar = err[err.index("\r") :]  # the warnings of the short schedule come first, each a line
    assert bar.count("\n") == 1 and bar.endswith("\n")  # one line, ended when the bar closes
    last = bar.rstrip("\n").split("\r")[-1]
    assert "300/300" in last and last.endswith(", eval=23.5]"), last
    assert "eval @" not in err and "evaluating" not in err


def test_a_long_periodic_evaluation_is_announced_and_stands_for_the_final_one(tmp_path, capsys):
    out = tmp_path / "run"
    code, lines, _ = run_train(capsys, [
        *FAKE, "--total-steps", "100", "--learning-starts", "99", "--eval-every-steps", "100",
        "--eval-episodes", "30", "--final-eval-episodes", "30", "--no-progress",
        "--output-dir", str(out),
    ])  # fmt: skip
    assert code == 0
    assert without_speed(lines)[2:5] == [
        "evaluating 30 episodes ...",
        "eval @ step 100: return 25.27 +- 2.06 over 30 episodes (epsilon 0.05, nature protocol)",
        "trained fake for 100 agent steps (-/s)",  # made at the last step: not played again
    ]


def test_reaching_stop_at_return_says_solved(tmp_path, capsys):
    out = tmp_path / "run"
    code, lines, _ = run_train(capsys, [
        *FAKE, "--total-steps", "400", "--learning-starts", "399", "--eval-every-steps", "200",
        "--eval-episodes", "2", "--stop-at-return", "20", "--no-progress",
        "--output-dir", str(out),
    ])  # fmt: skip
    assert code == 0
    assert without_speed(lines)[2:] == [
        "eval @ step 200: return 23.50 +- 0.50 over 2 episodes (epsilon 0.05, nature protocol)",
        "solved at step 200: mean return 23.50 >= threshold 20.00",
        "trained fake for 200 agent steps (-/s)",
        "evaluation: mean return 23.50 over 2 episodes (epsilon 0.05)",
        f"outputs: {out}/summary.json, {out}/metrics.csv, {out}/checkpoints/",
    ]
    assert json.loads((out / "summary.json").read_text())["solved_at_step"] == 200


def test_a_threshold_not_reached_says_nothing_of_it(tmp_path, capsys):
    out = tmp_path / "run"
    code, lines, _ = run_train(capsys, [
        *FAKE, "--total-steps", "200", "--learning-starts", "199", "--eval-every-steps", "100",
        "--eval-episodes", "2", "--final-eval-episodes", "0", "--stop-at-return", "23.51",
        "--no-progress", "--output-dir", str(out),
    ])  # fmt: skip
    assert code == 0
    assert without_speed(lines)[2:5] == [
        "eval @ step 100: return 23.50 +- 0.50 over 2 episodes (epsilon 0.05, nature protocol)",
        "eval @ step 200: return 23.50 +- 0.50 over 2 episodes (epsilon 0.05, nature protocol)",
        "trained fake for 200 agent steps (-/s)",
    ]


def test_a_gymnasium_env_is_evaluated_without_a_protocol(tmp_path, capsys):
    out = tmp_path / "run"
    code, lines, _ = run_train(capsys, [
        "--env", "CartPole-v1", "--preset", "smoke", "--total-steps", "200", "--learning-starts",
        "150", "--eval-every-steps", "100", "--eval-episodes", "3", "--final-eval-episodes", "4",
        "--eval-max-steps", "60", "--torch-threads", "1", "--no-record-video", "--no-progress",
        "--output-dir", str(out),
    ])  # fmt: skip
    assert code == 0
    with open(out / "metrics.csv", newline="") as f:
        rows = [(int(r["global_step"]), r["metric"], float(r["value"])) for r in csv.DictReader(f)]
    means = [(s, v) for s, m, v in rows if m == "eval/mean_return"]
    stds = [v for _, m, v in rows if m == "eval/std_return"]
    assert [s for s, _ in means] == [100, 200, 200]  # two periodic, then the final
    expected = [
        f"eval @ step {s}: return {mean:.2f} +- {std:.2f} over 3 episodes (epsilon 0.05)"
        for (s, mean), std in zip(means[:2], stds[:2])
    ]
    expected += [
        "evaluating 4 episodes ...",
        f"final eval @ step 200: return {means[2][1]:.2f} +- {stds[2]:.2f} over 4 episodes "
        "(epsilon 0.05)" + most_played(out),
        "trained CartPole-v1 for 200 agent steps (-/s)",
    ]
    assert without_speed(lines)[:2] == [
        "device: cpu (networks), cpu (replay)",
        "replay: 204 transitions (5.7 kB) on cpu: --buffer-size 2,000 capped at what "
        "--total-steps 200 can fill",
    ]
    assert without_speed(lines)[2:7] == expected
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eval_mean_return"] == means[2][1] and summary["eval_episodes"] == 4
    assert all(1 <= r <= 60 for r in summary["eval_returns"])  # capped at --eval-max-steps
    assert sum(summary["eval_action_counts"]) == sum(summary["eval_returns"])  # +1 per step


def test_an_env_without_rgb_frames_warns_once_and_trains_without_a_video(tmp_path, capsys):
    out = tmp_path / "run"
    code, lines, err = run_train(capsys, [
        "--env", "fake-pixels", "--preset", "smoke", "--total-steps", "100", "--learning-starts",
        "99", "--final-eval-episodes", "1", "--torch-threads", "1", "--record-video",
        "--no-progress", "--output-dir", str(out),
    ])  # fmt: skip
    assert code == 0
    warnings = [line for line in err.splitlines() if "--record-video" in line]
    assert warnings == [
        "warning: --record-video: 'fake-pixels' cannot be recorded: it renders no rgb_array "
        "frames (its render modes: none); the run goes on without a video"
    ]
    assert "video" not in json.loads((out / "summary.json").read_text())
    assert not (out / "videos").exists()
    assert not any(line.startswith("video:") for line in lines)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (8_500, "8.5 kB"),
        (999_949, "999.9 kB"),
        (999_950, "1.0 MB"),
        (28_328_532, "28.3 MB"),
        (999_949_999, "999.9 MB"),
        (999_950_000, "1.00 GB"),
        (7_068_007_056, "7.07 GB"),
        (999, "999 bytes"),
        (999_994_999_999, "999.99 GB"),
        (999_995_000_000, "1.00 TB"),
    ],
)
def test_sizes_are_written_in_bytes_kb_mb_gb_or_tb(size, text):
    assert format_bytes(size) == text


def test_a_replay_of_a_gigabyte_or_more_is_announced_in_gb(monkeypatch, capsys):
    built = []
    monkeypatch.setattr(sizing, "ReplayBuffer", lambda **kwargs: built.append(kwargs) or "replay")
    envs = SimpleNamespace(
        num_envs=1, frame_stack=4, stack_padding="zero",
        single_observation_space=gym.spaces.Box(0, 255, (4, 84, 84), np.uint8),
    )  # fmt: skip
    config = TrainConfig(total_steps=10_000_000, buffer_size=1_000_000)
    assert sizing.make_replay(config, envs, torch.device("cpu")) == "replay"
    assert capsys.readouterr().out.splitlines() == [
        "replay: 1,000,000 transitions (7.07 GB) on cpu"  # announced before it is allocated
    ]
    assert built[0]["capacity"] == 1_000_000
