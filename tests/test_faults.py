"""Faults: signals, kill -9 at random moments, non-finite training, unwritable output."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch
from helpers import start_training, wait_for

from agents.dqn.build import build_trainer
from agents.dqn.presets import preset
from agents.dqn.replay.io import load_replay
from agents.run.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from agents.run.faults import NonFiniteLossError
from agents.run.tracking import read_metrics
from scripts.train import main as train_main

ROOT = Path(__file__).resolve().parents[1]
CARTPOLE = [
    "--preset", "cartpole", "--env", "CartPole-v1", "--learning-starts", "200",
    "--buffer-size", "5000", "--log-every-steps", "50", "--eval-every-steps", "0",
    "--final-eval-episodes", "0", "--no-progress", "--no-record-video",
    "--epsilon-decay-steps", "1000",  # within the short runs: no schedule warning on stderr
]  # fmt: skip


def logged_step(run_dir: Path) -> int:
    path = run_dir / "metrics.csv"
    if not path.exists():
        return -1
    steps = [s for s, _ in read_metrics(path).get("charts/epsilon", [])]
    return max(steps, default=-1)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_checkpoints_flushes_and_exits_with_its_code(tmp_path, sig, code):
    out = tmp_path / "run"
    process = start_training(
        [
            *CARTPOLE,
            "--total-steps",
            "1000000",
            "--checkpoint-every-steps",
            "1000000",
            "--output-dir",
            str(out),
        ]  # fmt: skip
    )
    wait_for(lambda: logged_step(out) >= 400, process)  # updates are running
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=600)  # a hang guard, see wait_for
    assert process.returncode == code, stderr
    state = load_checkpoint(out)
    assert state["global_step"] >= 400
    assert f"stopped by {signal.Signals(sig).name} at global step {state['global_step']}" in stdout
    assert logged_step(out) <= state["global_step"]
    metrics = read_metrics(out / "metrics.csv")
    assert metrics["charts/epsilon"][-1][0] == state["global_step"] // 50 * 50
    assert "Traceback" not in stderr


def check_run_dir(out: Path) -> int:
    """The newest checkpoint (and its replay) loads and metrics.csv parses; returns its step."""
    state = load_checkpoint(out)
    assert torch.isfinite(state["model"]["head.linear.weight"]).all()
    if "replay" in state:
        from agents.dqn.replay.sizing import make_replay
        from envs.vector import make_vector_env

        config = preset("cartpole").replace(buffer_size=5000)
        envs = make_vector_env("CartPole-v1", 1, seed=0)
        load_replay(make_replay(config, envs, torch.device("cpu")), out / "checkpoints" /
                    state["replay"])  # fmt: skip
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0] == "global_step,wall_seconds,metric,value"
    series = read_metrics(out / "metrics.csv")
    assert all(len(points) > 0 for points in series.values())
    return state["global_step"]


def test_kill_9_at_random_moments_never_leaves_a_broken_run(tmp_path):
    out = tmp_path / "run"
    rng = random.Random(1234)
    args = [*CARTPOLE, "--total-steps", "1000000", "--checkpoint-every-steps", "100",
            "--save-replay", "--keep-checkpoints", "2"]  # fmt: skip
    steps = []
    for attempt in range(10):
        if attempt == 0:
            process = start_training([*args, "--output-dir", str(out)])
        else:
            process = start_training(["--resume", str(out)])
        before = latest_checkpoint(out / "checkpoints")

        def saved_a_new_checkpoint(before=before) -> bool:
            return latest_checkpoint(out / "checkpoints") not in (None, before)

        wait_for(saved_a_new_checkpoint, process)
        time.sleep(rng.uniform(0.0, 1.5))
        process.send_signal(signal.SIGKILL)
        process.communicate()
        steps.append(check_run_dir(out))
        # every checkpoint is a periodic one: a resume never writes one off the schedule
        names = [p.name for p in list_checkpoints(out / "checkpoints")]
        assert all(int(name[5:17]) % 100 == 0 for name in names), names
        # a write cut short leaves at most its own temporary, removed by the next save
        assert len(list((out / "checkpoints").glob(".*.tmp"))) <= 2
    assert steps == sorted(steps) and steps[-1] > steps[0]


def test_non_finite_parameters_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path):
    config = preset("cartpole").replace(
        env="CartPole-v1", total_steps=3000, learning_starts=200, buffer_size=2000,
        log_every_steps=500, checkpoint_every_steps=100, eval_every_steps=0,
        final_eval_episodes=0, progress=False, record_video=False, output_dir=str(tmp_path),
    )  # fmt: skip
    trainer = build_trainer(config)
    update = trainer.agent.update

    def poisoned(batch):
        metrics = update(batch)
        if trainer.agent.updates == 150:  # at global step 350
            with torch.no_grad():
                next(trainer.agent.online.parameters())[0, 0] = float("nan")
        return metrics

    trainer.agent.update = poisoned
    with pytest.raises(NonFiniteLossError, match="global step 400") as error:
        trainer.run()
    assert "NaN or infinite" in str(error.value)
    state = load_checkpoint(tmp_path)
    assert state["global_step"] == 300  # the checkpoint at 400 was refused
    for tensor in state["model"].values():
        assert torch.isfinite(tensor).all()


def test_non_finite_loss_exits_1_with_one_line_naming_the_step(tmp_path, capsys):
    code = train_main(
        [
            *CARTPOLE,
            "--total-steps",
            "2000",
            "--learning-rate",
            "1e30",
            "--loss",
            "mse",
            "--checkpoint-every-steps",
            "100",
            "--output-dir",
            str(tmp_path),
        ]  # fmt: skip
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "global step" in err[0], err
    assert "NaN or infinite" in err[0] or "became" in err[0]
    check_run_dir(tmp_path)


def test_an_unwritable_output_dir_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code = train_main([*CARTPOLE, "--total-steps", "500", "--output-dir", str(blocker / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "--output-dir" in err[0] and "cannot be written" in err[0]


def test_a_full_disk_while_checkpointing_fails_in_one_line_and_keeps_the_previous_one(
    tmp_path, monkeypatch, capsys
):
    real_fsync = os.fsync

    def fsync_until_full(fd):  # the disk fills up while the second checkpoint is written
        if "step_000000000600.pt" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_until_full)
    code = train_main(
        [
            *CARTPOLE,
            "--total-steps",
            "2000",
            "--checkpoint-every-steps",
            "300",
            "--output-dir",
            str(tmp_path),
        ]  # fmt: skip
    )
    monkeypatch.undo()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "No space left on device" in err[0], err
    assert "the newest checkpoint written before it is intact" in err[0]
    names = [p.name for p in (tmp_path / "checkpoints").iterdir()]
    assert names == ["step_000000000300.pt"]  # no temporary file, no torn checkpoint
    assert load_checkpoint(tmp_path)["global_step"] == 300
