"""Metrics log, wandb fallbacks, atomic and safe checkpoints."""

import csv
import os
import pickle
import sys

import pytest
import torch

from agents.run.checkpoint import (
    CheckpointError,
    atomic_torch_save,
    check_compatible,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from agents.run.tracking import MetricsLog, Tracker, read_metrics, resolve_wandb_mode


def test_metrics_log_is_long_format_and_survives_a_torn_line(tmp_path):
    log = MetricsLog(tmp_path / "metrics.csv")
    log.log({"charts/episodic_return": 21.0, "losses/td_loss": 0.5}, step=100)
    log.log({"charts/episodic_return": float("nan")}, step=200)  # non-finite values are skipped
    log.close()
    with open(tmp_path / "metrics.csv", "a") as f:
        f.write("300,1.0,charts/episodic_ret")  # a kill mid-write
    series = read_metrics(tmp_path / "metrics.csv")
    assert series == {"charts/episodic_return": [(100, 21.0)], "losses/td_loss": [(100, 0.5)]}
    with open(tmp_path / "metrics.csv") as f:
        assert next(csv.reader(f)) == ["global_step", "wall_seconds", "metric", "value"]


def test_wandb_mode_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_wandb_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert resolve_wandb_mode("auto") == "online"
    assert resolve_wandb_mode("disabled") == "disabled"


def test_wandb_failure_warns_once_and_local_metrics_continue(tmp_path, monkeypatch, capsys):
    class BrokenWandb:
        Settings = dict

        @staticmethod
        def init(**kwargs):
            raise ConnectionError("api.wandb.ai unreachable")

    monkeypatch.setitem(sys.modules, "wandb", BrokenWandb)
    tracker = Tracker(tmp_path, {"a": 1}, track=True, mode="online")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "unreachable" in err[0] and "unreachable" in err[1]
    assert "wandb online mode could not start" in err[0] and "trying offline mode" in err[0]
    assert "wandb offline mode could not start" in err[1] and "local metrics" in err[1]
    tracker.log({"charts/SPS": 10.0}, step=5)
    tracker.finish()
    assert read_metrics(tmp_path / "metrics.csv") == {"charts/SPS": [(5, 10.0)]}


def test_wandb_offline_run_logs_against_global_step(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    tracker = Tracker(tmp_path, {"lr": 1e-4}, track=True, mode="offline", project="tests")
    assert tracker.wandb_mode == "offline" and tracker.wandb_run_id
    tracker.log({"charts/episodic_return": 3.0}, step=10)
    tracker.finish({"eval_mean_return": 3.0})
    assert list((tmp_path / "wandb").glob("offline-run-*"))


def test_checkpoints_are_atomic_rotated_and_loadable(tmp_path):
    for step in (100, 200, 300, 400):
        save_checkpoint(tmp_path, {"global_step": step, "w": torch.ones(3) * step}, step, keep=2)
    names = [p.name for p in list_checkpoints(tmp_path)]
    assert names == ["step_000000000300.pt", "step_000000000400.pt"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    state = load_checkpoint(tmp_path)
    assert state["global_step"] == 400 and state["w"].tolist() == [400.0] * 3


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, {"global_step": 1}, 1)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(tmp_path, {"global_step": 2}, 2)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["step_000000000001.pt"]
    assert load_checkpoint(latest_checkpoint(tmp_path))["global_step"] == 1


class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = ""


def test_loading_never_runs_pickled_code(tmp_path):
    global MARKER
    MARKER = str(tmp_path / "pwned")
    path = tmp_path / "step_000000000001.pt"
    with open(path, "wb") as f:
        pickle.dump({"format_version": 1, "x": Payload()}, f)
    torch.save({"format_version": 1, "evil": Payload()}, tmp_path / "step_000000000002.pt")
    for p in (path, tmp_path / "step_000000000002.pt"):
        with pytest.raises(CheckpointError, match="cannot be loaded"):
            load_checkpoint(p)
    assert not (tmp_path / "pwned").exists()


def test_truncated_file_gives_one_error_naming_it(tmp_path):
    path = atomic_torch_save(
        {"format_version": 1, "w": torch.zeros(1000)}, tmp_path / "step_000000000005.pt"
    )
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=f"{path}.*cannot be loaded"):
        load_checkpoint(path)


def test_incompatible_checkpoint_names_both_sides():
    state = {"path": "ck.pt", "env_id": "Pong", "obs_shape": [4, 84, 84], "num_actions": 6}
    check_compatible(state, "Pong", (4, 84, 84), 6)
    with pytest.raises(CheckpointError, match="made for Pong.*6 actions.*Breakout.*4 actions"):
        check_compatible(state, "Breakout", (4, 84, 84), 4)


def test_online_wandb_without_a_server_falls_back_to_offline_within_bounded_time(
    tmp_path, monkeypatch, capsys
):
    import wandb

    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    init, attempts = wandb.init, []

    def recording_init(*args, **kwargs):
        attempts.append((kwargs["mode"], kwargs["settings"].init_timeout))
        return init(*args, **kwargs)

    monkeypatch.setattr(wandb, "init", recording_init)
    tracker = Tracker(
        tmp_path, {"a": 1}, track=True, mode="online", run_id="fallback1", init_timeout_seconds=3
    )
    # Each attempt is bounded by wandb's own 3 s wait (no wall-clock check: a loaded machine
    # may take longer to start wandb's service, and no test depends on the machine's speed).
    assert attempts == [("online", 3), ("offline", 3)]
    assert tracker.wandb_mode == "offline" and tracker.wandb_run_id == "fallback1"
    tracker.log({"charts/SPS": 10.0}, step=5)
    tracker.finish()
    warning = [line for line in capsys.readouterr().err.splitlines() if "warning:" in line]
    assert len(warning) == 1 and "trying offline mode" in warning[0], warning
    assert read_metrics(tmp_path / "metrics.csv") == {"charts/SPS": [(5, 10.0)]}
    assert list((tmp_path / "wandb").glob("offline-run-*-fallback1"))
