"""One run per directory: a directory holding a run is refused unless --resume or --overwrite,
a running run's directory is locked (two real processes), the default directory is new for each
run, and --overwrite deletes only a run's own files. Each refusal: exit code 2, one line, and
nothing on disk changed."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from helpers import run_train, snapshot, start_training, wait_for

import agents.dqn.build
from agents.dqn.config import TrainConfig
from agents.run.checkpoint import config_to_dict, list_checkpoints
from agents.run.directory import LOCK_NAME, RunLock, claim_output_dir
from agents.run.tracking import read_metrics
from scripts.train import main as train_main

ROOT = Path(__file__).resolve().parents[1]
CARTPOLE = [
    "--preset", "cartpole", "--env", "CartPole-v1", "--learning-starts", "100",
    "--buffer-size", "1000", "--log-every-steps", "100", "--eval-every-steps", "0",
    "--target-update-steps", "100", "--epsilon-decay-steps", "200", "--no-progress",
    "--no-record-video", "--final-eval-episodes", "0",
]  # fmt: skip


def fake_run(directory: Path, *names: str) -> None:
    """A directory holding the named files of a run (config.json one of this package's)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name == "config.json":
            path.write_text(json.dumps(config_to_dict(TrainConfig())))
        elif name == "checkpoints":
            path.mkdir()
        else:
            path.write_bytes(b"old run\n")


# -- a directory holding a run ------------------------------------------------------------------
HELD = {
    "config.json": ("config.json",),
    "metrics.csv": ("metrics.csv",),
    "summary.json": ("summary.json",),
    "checkpoints/": ("checkpoints",),
    "summary.json, checkpoints/": ("summary.json", "checkpoints/step_000000000300.pt"),
}


@pytest.mark.parametrize("listed", HELD, ids=list(HELD))
def test_a_directory_holding_a_run_is_refused_without_resume_or_overwrite(tmp_path, capsys, listed):
    out = tmp_path / "run"
    fake_run(out, *HELD[listed])
    before = snapshot(out)
    code, stdout, err = run_train(
        capsys, [*CARTPOLE, "--total-steps", "300", "--output-dir", str(out)]
    )
    assert code == 2 and stdout == []
    assert err == [
        f"train: error: --output-dir: {out} already holds a run ({listed}); continue it with "
        f"--resume {out}, or start over there with --overwrite (deletes that run)"
    ]
    assert snapshot(out) == before


def test_a_finished_run_is_not_overwritten_by_a_second_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main([*CARTPOLE, "--total-steps", "300", "--output-dir", str(out)]) == 0
    before = snapshot(out)
    code, _, err = run_train(capsys, [*CARTPOLE, "--total-steps", "200", "--seed", "2",
                                "--output-dir", str(out)])  # fmt: skip
    assert code == 2 and len(err) == 1 and "already holds a run" in err[0], err
    assert snapshot(out) == before


def test_overwrite_deletes_the_old_run_before_the_new_one_starts(tmp_path, capsys):
    out = tmp_path / "run"
    args = [*CARTPOLE, "--checkpoint-every-steps", "100", "--output-dir", str(out)]
    assert train_main([*args, "--total-steps", "400"]) == 0
    (out / "videos").mkdir()
    (out / "videos" / "final.mp4").write_bytes(b"old video")
    (out / "evaluation").mkdir()
    (out / "evaluation" / "summary.json").write_text("{}")
    code, stdout, err = run_train(
        capsys, [*args, "--total-steps", "200", "--seed", "2", "--overwrite"]
    )
    assert code == 0, err
    assert stdout[0] == f"--overwrite: deleted the run that was in {out}"
    # the old run's step 300 and 400 checkpoints would sort as newer than the new run's: gone
    assert [p.name for p in list_checkpoints(out / "checkpoints")] == [
        "step_000000000100.pt", "step_000000000200.pt"]  # fmt: skip
    assert not (out / "videos").exists() and not (out / "evaluation").exists()
    assert max(s for s, _ in read_metrics(out / "metrics.csv")["charts/epsilon"]) == 200
    assert json.loads((out / "config.json").read_text())["seed"] == 2
    assert json.loads((out / "summary.json").read_text())["global_step"] == 200


def test_overwrite_of_a_directory_without_a_run_deletes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, stdout, _ = run_train(capsys, [*CARTPOLE, "--total-steps", "200", "--overwrite",
                                   "--output-dir", str(out)])  # fmt: skip
    assert code == 0 and not any("deleted" in line for line in stdout)
    assert (out / "notes.txt").read_text() == "mine" and (out / "summary.json").exists()


def _foreign_file(out: Path) -> None:
    (out / "notes.txt").write_text("not a run's file")


def _foreign_checkpoint(out: Path) -> None:
    (out / "checkpoints" / "best.pt").write_bytes(b"a file kept by hand")


def _symlink(out: Path) -> None:
    (out.parent / "elsewhere").mkdir()
    (out / "data").symlink_to(out.parent / "elsewhere")


def _foreign_config(out: Path) -> None:
    (out / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 768}))


OVERWRITE_REFUSED = [
    (_foreign_file, "also holds files that are not a run's (notes.txt)"),
    (_foreign_checkpoint, "also holds files that are not a run's (checkpoints/best.pt)"),
    (_symlink, "also holds files that are not a run's (data)"),
    (_foreign_config, "config.json is not the config.json of a run of this package"),
]


@pytest.mark.parametrize(
    ("spoil", "message"), OVERWRITE_REFUSED, ids=["file", "in-checkpoints", "symlink", "config"]
)
def test_overwrite_refuses_a_directory_holding_anything_but_a_run(tmp_path, capsys, spoil, message):
    out = tmp_path / "run"
    fake_run(out, "config.json", "metrics.csv", "checkpoints/step_000000000100.pt")
    spoil(out)
    before = snapshot(out)
    code, stdout, err = run_train(capsys, [*CARTPOLE, "--total-steps", "200", "--overwrite",
                                     "--output-dir", str(out)])  # fmt: skip
    assert code == 2 and stdout == [] and len(err) == 1, err
    assert err[0].startswith(f"train: error: --overwrite: {out}") and message in err[0], err
    assert "nothing was deleted" in err[0]
    assert snapshot(out) == before


def test_overwrite_and_resume_together_are_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main([*CARTPOLE, "--total-steps", "200", "--output-dir", str(out)]) == 0
    before = snapshot(out)
    code, _, err = run_train(capsys, ["--resume", str(out), "--overwrite"])
    assert code == 2 and err == [
        "train: error: --overwrite: cannot be combined with --resume (one continues the run in "
        "the directory, the other deletes it); give one of them"
    ]
    assert snapshot(out) == before


# -- the lock -----------------------------------------------------------------------------------
def test_a_second_run_on_a_directory_in_use_exits_2_naming_the_holders_pid(tmp_path, capsys):
    out = tmp_path / "run"
    holder = start_training([*CARTPOLE, "--total-steps", "10000000", "--checkpoint-every-steps",
                             "100", "--output-dir", str(out)])  # fmt: skip
    try:
        wait_for(lambda: list_checkpoints(out / "checkpoints"), holder)
        message = (
            f"train: error: --output-dir: {out} is in use by another run (pid {holder.pid}, which "
            f"holds {out / LOCK_NAME}); wait for it to end, or give another --output-dir"
        )
        # a second process: a new run, on the same directory
        second = start_training([*CARTPOLE, "--total-steps", "300", "--output-dir", str(out)])
        _, stderr = second.communicate(timeout=600)
        assert second.returncode == 2 and stderr.splitlines() == [message], stderr
        # and the same in this process: a resume, and an overwrite (which deletes nothing)
        overwrite = [*CARTPOLE, "--total-steps", "300", "--overwrite", "--output-dir", str(out)]
        for args in (["--resume", str(out)], overwrite):
            code, stdout, err = run_train(capsys, args)
            assert code == 2 and stdout == [] and err == [message], err
        assert (out / "config.json").exists() and list_checkpoints(out / "checkpoints")
        assert holder.poll() is None  # the holder runs on, untouched
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate()
    # kill -9 drops the lock with the process: the directory is free again
    RunLock.acquire(out).release()
    assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())


# -- the default directory ----------------------------------------------------------------------
def test_the_default_output_dir_is_new_for_each_run_and_printed_first(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    stamp = time.mktime((2024, 1, 2, 3, 4, 5, 0, 0, -1))
    monkeypatch.setattr("agents.run.directory._now", lambda: stamp)  # two runs in the same second
    seen = []
    for _ in range(2):
        code, stdout, err = run_train(capsys, [*CARTPOLE, "--total-steps", "200"])
        assert code == 0, err
        seen.append(stdout[0])
    base = "runs/CartPole-v1__cartpole__s1__20240102-030405"
    assert seen == [f"run directory: {base}", f"run directory: {base}-2"]
    for name in (base, f"{base}-2"):
        assert json.loads((tmp_path / name / "summary.json").read_text())["global_step"] == 200
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    code, stdout, err = run_train(capsys, [*CARTPOLE, "--total-steps", "200", "--seed", "7"])
    assert code == 0, err
    assert re.fullmatch(r"run directory: runs/CartPole-v1__cartpole__s7__\d{8}-\d{6}", stdout[0])


def test_claiming_a_templated_directory_never_takes_an_existing_one(tmp_path, monkeypatch):
    monkeypatch.setattr("agents.run.directory._now", lambda: 0.0)
    template = str(tmp_path / "{game}_{preset}_{seed}")
    config = TrainConfig(env="ALE/Pong-v5", preset="nature", seed=3, output_dir=template)
    (tmp_path / "Pong_nature_3-2").write_text("a file takes the name too")
    claimed = [claim_output_dir(config) for _ in range(3)]
    names = [Path(c.output_dir).name for c, created in claimed]
    assert names == ["Pong_nature_3", "Pong_nature_3-3", "Pong_nature_3-4"]
    assert all(created for _, created in claimed)
    plain = config.replace(output_dir=str(tmp_path / "mine"))
    assert claim_output_dir(plain) == (plain, False) and not (tmp_path / "mine").exists()


def test_the_wandb_run_takes_the_directory_name_or_exp_name(tmp_path, monkeypatch):
    names = []
    real = agents.dqn.build.Tracker

    def spy(*args, **kwargs):
        names.append(kwargs["name"])
        return real(*args, **kwargs)

    monkeypatch.setattr(agents.dqn.build, "Tracker", spy)
    args = [*CARTPOLE, "--total-steps", "200"]
    assert train_main([*args, "--output-dir", str(tmp_path / "pong-seed1")]) == 0
    assert train_main([*args, "--output-dir", str(tmp_path / "b"), "--exp-name", "my-run"]) == 0
    assert train_main(["--resume", str(tmp_path / "b"), "--total-steps", "300"]) == 0
    assert names == ["pong-seed1", "my-run", "my-run"]
