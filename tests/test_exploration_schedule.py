"""Exploration as a fraction of the run (CleanRL's exploration_fraction), kept on resume, and one
warning line for each schedule a run is too short to complete."""

from __future__ import annotations

import pytest
from helpers import stop_at

from agents.dqn.config import TrainConfig, epsilon_decay_length, schedule_warnings
from agents.dqn.presets import cartpole, cleanrl, preset, rainbow
from agents.run.checkpoint import load_checkpoint
from agents.run.tracking import read_metrics
from scripts.train import main as train_main
from scripts.train import parse_config

CARTPOLE = [
    "--preset", "cartpole", "--env", "CartPole-v1", "--learning-starts", "200",
    "--buffer-size", "1000", "--log-every-steps", "100", "--checkpoint-every-steps", "100000",
    "--eval-every-steps", "0", "--target-update-steps", "150", "--no-progress",
    "--no-record-video", "--final-eval-episodes", "0",
]  # fmt: skip


def epsilons(run) -> dict[int, float]:
    return dict(read_metrics(run / "metrics.csv")["charts/epsilon"])


def test_cleanrl_decays_epsilon_over_a_tenth_of_any_run_length():
    assert epsilon_decay_length(cleanrl()) == 1_000_000  # of the default 10M steps
    assert epsilon_decay_length(cleanrl().replace(total_steps=500_000)) == 50_000
    assert epsilon_decay_length(cleanrl().replace(total_steps=4_000)) == 400
    # without a fraction the length in steps is used as it is
    assert epsilon_decay_length(TrainConfig(total_steps=4_000)) == 1_000_000


def test_an_explicit_decay_length_replaces_a_presets_fraction():
    assert epsilon_decay_length(cleanrl().replace(epsilon_decay_steps=5_000)) == 5_000
    config, _ = parse_config(["--preset", "cleanrl", "--epsilon-decay-steps", "5000"])
    assert config.epsilon_decay_fraction is None and epsilon_decay_length(config) == 5_000
    config, _ = parse_config(["--preset", "cleanrl", "--total-steps", "20000"])
    assert config.epsilon_decay_fraction == 0.1 and epsilon_decay_length(config) == 2_000
    config, _ = parse_config(["--preset", "cartpole", "--epsilon-decay-fraction", "0.5"])
    assert epsilon_decay_length(config) == 50_000  # half of the preset's 100k steps


def test_a_short_run_reaches_the_final_epsilon_at_its_fraction(tmp_path):
    out = tmp_path / "run"
    args = [*CARTPOLE, "--epsilon-decay-fraction", "0.25", "--total-steps", "1200"]
    assert train_main([*args, "--output-dir", str(out)]) == 0
    eps = epsilons(out)  # 1.0 -> 0.02 (the cartpole preset's end) over 300 steps
    assert eps[100] == pytest.approx(1.0 - 100 / 300 * 0.98)
    assert eps[200] == pytest.approx(1.0 - 200 / 300 * 0.98)
    assert eps[300] == eps[1200] == pytest.approx(0.02)
    assert load_checkpoint(out)["epsilon_decay_steps"] == 300


def test_extending_a_resumed_run_keeps_the_decay_it_started_with(tmp_path, monkeypatch):
    """A run of 1,000 steps with fraction 0.5 decays over 500 steps; stopped at 300 and resumed
    with --total-steps 4000 it goes on decaying over those 500 steps (the fraction of the new
    total, 2,000 steps, would send epsilon from 0.41 back up to 0.85 at step 300)."""
    out = tmp_path / "run"
    args = [*CARTPOLE, "--epsilon-decay-fraction", "0.5", "--total-steps", "1000"]
    with monkeypatch.context() as patch:
        stop_at(patch, 300)
        assert train_main([*args, "--output-dir", str(out)]) == 130
    assert load_checkpoint(out)["epsilon_decay_steps"] == 500
    assert train_main(["--resume", str(out), "--total-steps", "4000"]) == 0
    state = load_checkpoint(out)
    assert state["global_step"] == 4000 and state["epsilon_decay_steps"] == 500
    assert state["config"]["total_steps"] == 4000
    eps = epsilons(out)
    for step in (100, 300, 400, 500, 600, 4000):
        assert eps[step] == pytest.approx(1.0 + min(step / 500, 1.0) * (0.02 - 1.0)), step


def test_an_epsilon_decay_longer_than_the_run_is_one_warning_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main([*CARTPOLE, "--total-steps", "2000", "--output-dir", str(out)]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "warning: --epsilon-decay-steps 10000 is longer than --total-steps 2000: epsilon ends "
        "the run at 0.804 instead of 0.02"
    ]
    assert epsilons(out)[2000] == pytest.approx(0.804)


def test_a_target_never_updated_once_learning_starts_is_one_warning_line(tmp_path, capsys):
    args = [*CARTPOLE, "--epsilon-decay-steps", "500", "--total-steps", "1000"]
    assert train_main([*args, "--target-update-steps", "1000", "--learning-starts", "999",
                       "--output-dir", str(tmp_path / "a")]) == 0  # fmt: skip
    assert capsys.readouterr().err == ""  # its one sync, at step 1000, follows the first update
    assert train_main([*args, "--target-update-steps", "800", "--learning-starts", "900",
                       "--output-dir", str(tmp_path / "b")]) == 0  # fmt: skip
    assert capsys.readouterr().err.splitlines() == [
        "warning: --target-update-steps 800 leaves no target update between --learning-starts "
        "900 and --total-steps 1000: the target network stays the initial network"
    ]


def test_which_schedules_warn():
    short = cartpole().replace(total_steps=2_000)
    assert len(schedule_warnings(short)) == 1
    # the epsilon decay a resumed run started with is the one compared with the new total
    assert schedule_warnings(short, epsilon_decay_steps=2_000) == []
    assert schedule_warnings(short.replace(epsilon_decay_fraction=1.0)) == []
    assert schedule_warnings(short.replace(noisy=True)) == []  # no epsilon to decay
    assert schedule_warnings(short.replace(epsilon_start=0.02)) == []  # constant epsilon
    assert schedule_warnings(cleanrl().replace(total_steps=100_000)) == []  # 10% of the run
    for name in ("smoke", "cartpole", "cartpole-rainbow", "der", "fast", "nature", "cleanrl"):
        assert schedule_warnings(preset(name)) == [], name
    # evaluations, checkpoints, logs and the beta anneal may outlast a run without a warning
    long_tail = short.replace(eval_every_steps=10**6, checkpoint_every_steps=10**6,
                              log_every_steps=10**6, epsilon_decay_steps=1_000)  # fmt: skip
    assert schedule_warnings(long_tail) == []
    assert schedule_warnings(rainbow().replace(total_steps=30_000)) == []
