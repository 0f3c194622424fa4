"""Resume trusts the checkpoint: config.json must match the config saved in the checkpoint (the
game included), a malformed config.json is one line, and a resumed run repeats no evaluation and
no checkpoint, takes no --total-steps at or below what is done, and re-runs nothing once finished.
Each refusal: exit code 2, one line, nothing on disk changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import run_train, snapshot, stop_at

from agents.dqn.loop import Trainer
from agents.run.checkpoint import list_checkpoints, load_checkpoint
from agents.run.directory import (
    RunDirError,
    check_resume,
    config_difference,
    read_run_config,
)
from agents.run.tracking import read_metrics
from scripts.train import main as train_main

QUIET = ["--no-progress", "--no-record-video", "--final-eval-episodes", "0"]
CARTPOLE = [
    "--preset", "cartpole", "--env", "CartPole-v1", "--learning-starts", "100",
    "--buffer-size", "1000", "--log-every-steps", "100", "--eval-every-steps", "0",
    "--target-update-steps", "100", "--epsilon-decay-steps", "200", *QUIET,
]  # fmt: skip
TIMING = ("charts/SPS",)


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> Path:
    """A CartPole run stopped (SIGINT) at step 300 of 600: resumable."""
    out = tmp_path_factory.mktemp("base") / "run"
    with pytest.MonkeyPatch.context() as patch:
        stop_at(patch, 300)
        assert train_main([*CARTPOLE, "--total-steps", "600", "--output-dir", str(out)]) == 130
    return out


@pytest.fixture
def resumable(stopped_run, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(stopped_run, out)
    return out


# -- config.json against the checkpoint ---------------------------------------------------------
EDITS = [
    ("learning_rate", 0.1),
    ("num_envs", 2),
    ("gamma", 0.5),
    ("env", "Acrobot-v1"),
    ("dueling", True),
    ("seed", 7),
    ("preset", "nature"),
    ("hidden", [64, 64]),
    ("exp_name", "renamed"),
    ("eval_every_steps", 50),
]


@pytest.mark.parametrize(("key", "value"), EDITS, ids=[k for k, _ in EDITS])
def test_an_edited_config_json_is_refused_naming_the_key_and_both_values(
    resumable, capsys, key, value
):
    path = resumable / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), key: value}))
    checkpoint = list_checkpoints(resumable / "checkpoints")[-1]
    saved = load_checkpoint(checkpoint)["config"][key]
    before = snapshot(resumable)
    code, stdout, err = run_train(capsys, ["--resume", str(resumable)])
    assert code == 2 and stdout == []
    assert err == [
        f"train: error: --resume: {key} is {json.dumps(value)} in {path} but {json.dumps(saved)} "
        f"in the checkpoint {checkpoint}; a run resumes with the settings it was started with "
        "(restore config.json, or start a new run)"
    ]
    assert snapshot(resumable) == before


def test_settings_that_may_change_on_resume_may_differ_in_config_json(resumable):
    path = resumable / "config.json"
    edited = {"log_every_steps": 50, "checkpoint_every_steps": 250, "keep_checkpoints": 5,
              "device": "cpu", "save_replay": True, "output_dir": "/moved/elsewhere"}  # fmt: skip
    path.write_text(json.dumps({**json.loads(path.read_text()), **edited}))
    assert train_main(["--resume", str(resumable), "--total-steps", "700"]) == 0
    state = load_checkpoint(resumable)
    assert state["global_step"] == 700 and state["config"]["log_every_steps"] == 50


def test_the_game_is_compared_by_its_canonical_id():
    ours = {"env": "pong", "gamma": 0.99}
    assert config_difference(ours, {"env": "ALE/Pong-v5", "gamma": 0.99}) == []
    assert config_difference(ours, {"env": "PongNoFrameskip-v4", "gamma": 0.99}) == []
    assert config_difference(ours, {"env": "SpaceInvaders", "gamma": 0.5}) == ["env", "gamma"]
    assert config_difference(ours, {"gamma": 0.99, "total_steps": 5}) == []  # missing: skipped


def test_a_checkpoint_whose_env_id_is_another_game_is_refused(resumable):
    state = load_checkpoint(resumable)
    state["env_id"] = "Acrobot-v1"  # its config says CartPole-v1, its env id does not
    config = read_run_config(resumable / "config.json")
    with pytest.raises(RunDirError, match=r"env is \"CartPole-v1\" .* but \"Acrobot-v1\""):
        check_resume(config, state, resumable)


@pytest.mark.atari
def test_a_pong_checkpoint_copied_into_another_games_run_is_refused(tmp_path, capsys):
    """Pong and SpaceInvaders have the same observation shape and 6 actions each: only the game
    tells the checkpoint is another run's."""
    pong, invaders = tmp_path / "pong", tmp_path / "invaders"
    args = ["--env", "Pong", "--preset", "smoke", "--total-steps", "100", "--learning-starts",
            "96", "--buffer-size", "200", "--log-every-steps", "50", *QUIET]  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        stop_at(patch, 50)
        assert train_main([*args, "--output-dir", str(pong)]) == 130
    state = load_checkpoint(pong)
    assert state["obs_shape"] == [4, 84, 84] and state["num_actions"] == 6
    invaders.mkdir()
    config = {**json.loads((pong / "config.json").read_text()), "env": "SpaceInvaders"}
    (invaders / "config.json").write_text(json.dumps(config))
    shutil.copytree(pong / "checkpoints", invaders / "checkpoints")
    before = snapshot(invaders)
    code, _, err = run_train(capsys, ["--resume", str(invaders)])
    assert code == 2 and len(err) == 1, err
    assert f'--resume: env is "SpaceInvaders" in {invaders / "config.json"} but "Pong"' in err[0]
    assert snapshot(invaders) == before


# -- a malformed config.json --------------------------------------------------------------------
def _merged(**changes):
    return lambda base: json.dumps({**base, **changes})


MALFORMED = [
    (lambda base: "{not json", "is not valid JSON"),
    (lambda base: "", "is not valid JSON"),
    (lambda base: "[1, 2]", "holds a JSON list, not an object of settings"),
    (lambda base: '"cartpole"', "holds a JSON str, not an object of settings"),
    (_merged(learning_rate="fast"), 'learning_rate is "fast", not a finite number'),
    (_merged(gamma=float("nan")), "gamma is NaN, not a finite number"),
    (_merged(total_steps=True), "total_steps is true, not an integer"),
    (_merged(num_envs=1.5), "num_envs is 1.5, not an integer"),
    (_merged(env=None), "env is null, not a string"),
    (_merged(protocol="deepmind"), 'protocol is "deepmind", not one of "nature", "machado"'),
    (_merged(hidden=["a"]), 'hidden is ["a"], not a list of integers'),
    (_merged(wandb_tags="x"), 'wandb_tags is "x", not a list of strings'),
    (_merged(stop_at_return="high"), 'stop_at_return is "high", not a finite number or null'),
    (_merged(dueling="yes"), 'dueling is "yes", not true or false'),
    (_merged(bogus=1), "has unknown settings: 'bogus'"),
]


@pytest.mark.parametrize(("write", "message"), MALFORMED, ids=[m for _, m in MALFORMED])
def test_a_malformed_config_json_is_one_line(resumable, capsys, write, message):
    path = resumable / "config.json"
    path.write_text(write(json.loads(path.read_text())))
    before = snapshot(resumable)
    code, stdout, err = run_train(capsys, ["--resume", str(resumable)])
    assert code == 2 and stdout == [] and len(err) == 1, err
    assert err[0].startswith(f"train: error: --resume: {path}") and message in err[0], err
    assert snapshot(resumable) == before


def test_a_config_json_that_is_not_text_is_one_line(resumable, capsys):
    (resumable / "config.json").write_bytes(b"\xff\xfe\x00garbage")
    code, _, err = run_train(capsys, ["--resume", str(resumable)])
    assert code == 2 and len(err) == 1 and "cannot be read" in err[0], err


# -- exact counters -----------------------------------------------------------------------------
COUNTED = [*CARTPOLE[:-len(QUIET)], "--eval-every-steps", "200", "--eval-episodes", "2",
           "--checkpoint-every-steps", "200", "--keep-checkpoints", "10", "--total-steps", "800",
           "--save-replay",
           *QUIET]  # fmt: skip


def steps_of(run_dir: Path, metric: str) -> list[int]:
    return [s for s, _ in read_metrics(run_dir / "metrics.csv")[metric]]


def assert_same_run(straight: Path, resumed: Path) -> None:
    names = [p.name for p in list_checkpoints(straight / "checkpoints")]
    assert names == [f"step_{s:012d}.pt" for s in (200, 400, 600, 800)]
    assert [p.name for p in list_checkpoints(resumed / "checkpoints")] == names
    assert steps_of(resumed, "eval/mean_return") == steps_of(straight, "eval/mean_return")
    assert steps_of(straight, "eval/mean_return") == [200, 400, 600, 800]
    a, b = read_metrics(straight / "metrics.csv"), read_metrics(resumed / "metrics.csv")
    assert a.keys() == b.keys()
    for key in a:
        if key not in TIMING:
            assert a[key] == b[key], key
    sa, sb = load_checkpoint(straight), load_checkpoint(resumed)
    for name, tensor in sa["model"].items():
        assert torch.equal(tensor, sb["model"][name]), name


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("straight") / "run"
    assert train_main([*COUNTED, "--output-dir", str(out)]) == 0
    return out


def test_a_run_stopped_at_an_evaluation_and_checkpoint_step_repeats_neither(straight_run, tmp_path):
    out = tmp_path / "run"
    with pytest.MonkeyPatch.context() as patch:
        stop_at(patch, 400)  # the step checkpoints, then the run stops at once
        assert train_main([*COUNTED, "--output-dir", str(out)]) == 130
    state = load_checkpoint(out)
    assert state["global_step"] == 400
    # the evaluation due at 400 is not played after the signal: saved due, made on resume
    assert (state["next_eval"], state["next_checkpoint"]) == (400, 600)
    assert steps_of(out, "eval/mean_return") == [200]
    assert train_main(["--resume", str(out)]) == 0
    assert_same_run(straight_run, out)


class Killed(BaseException):
    """Stands for kill -9: ends the run at once, nothing of the loop's own ending runs."""


@pytest.mark.parametrize("old_format", [False, True], ids=["checkpoint", "old-checkpoint"])
def test_a_run_killed_after_a_periodic_checkpoint_resumes_without_repeating_it(
    straight_run, tmp_path, monkeypatch, old_format
):
    """Killed right after its periodic checkpoint at step 400 (and its replay) is written:
    metrics.csv holds the step's rows, no summary. A checkpoint written before the schedule
    positions were saved advanced (old format) resumes the same."""
    out = tmp_path / "run"
    checkpoint = Trainer.checkpoint

    def checkpoint_then_die(self):
        path = checkpoint(self)
        if self.global_step == 400:
            raise Killed
        return path

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "checkpoint", checkpoint_then_die)
        with pytest.raises(Killed):
            train_main([*COUNTED, "--output-dir", str(out)])
    assert not (out / "summary.json").exists()
    assert max(steps_of(out, "charts/epsilon")) == 400
    if old_format:
        path = list_checkpoints(out / "checkpoints")[-1]
        state = torch.load(path, weights_only=True)
        del state["positions_advanced"], state["metrics_rows"]
        state["next_eval"] = state["next_checkpoint"] = 400  # as the loop saved them then
        torch.save(state, path)
    assert train_main(["--resume", str(out)]) == 0
    assert_same_run(straight_run, out)


def test_a_final_evaluation_cut_short_is_made_again_not_logged_twice(tmp_path):
    out = tmp_path / "run"
    args = [*CARTPOLE[:-len(QUIET)], "--no-progress", "--no-record-video", "--final-eval-episodes",
            "2", "--total-steps", "300", "--output-dir", str(out)]  # fmt: skip
    assert train_main(args) == 0
    assert steps_of(out, "eval/mean_return") == [300]
    (out / "summary.json").unlink()  # killed after the final evaluation's rows, before its summary
    checkpoints = snapshot(out / "checkpoints")
    assert train_main(["--resume", str(out)]) == 0
    assert steps_of(out, "eval/mean_return") == [300]
    assert json.loads((out / "summary.json").read_text())["eval_episodes"] == 2
    assert snapshot(out / "checkpoints") == checkpoints  # no extra checkpoint


# -- steps left ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    assert train_main([*CARTPOLE, "--total-steps", "300", "--output-dir", str(out)]) == 0
    return out


def test_resuming_a_finished_run_runs_nothing_and_writes_nothing(finished_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    before = snapshot(out)
    code, stdout, err = run_train(capsys, ["--resume", str(out)])
    assert code == 0 and err == []
    assert stdout == [
        f"train: the run in {out} has already finished (global step 300, summary.json); nothing "
        "was run; give --total-steps above 300 to extend it"
    ]
    assert snapshot(out) == before


@pytest.mark.parametrize("total", [300, 150], ids=["done", "below"])
def test_total_steps_at_or_below_what_is_done_exits_2(finished_run, tmp_path, capsys, total):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    before = snapshot(out)
    code, stdout, err = run_train(capsys, ["--resume", str(out), "--total-steps", str(total)])
    assert code == 2 and stdout == []
    assert err == [
        f"train: error: --total-steps: {total} is not above the 300 agent steps the run in {out} "
        "has done; give a larger total to extend it"
    ]
    assert snapshot(out) == before


@pytest.mark.parametrize("total", [300, 200], ids=["done", "below"])
def test_total_steps_at_or_below_what_a_stopped_run_did_exits_2(resumable, capsys, total):
    before = snapshot(resumable)
    code, _, err = run_train(capsys, ["--resume", str(resumable), "--total-steps", str(total)])
    assert code == 2 and err == [
        f"train: error: --total-steps: {total} is not above the 300 agent steps the run in "
        f"{resumable} has done; give a larger total to extend it"
    ]
    assert snapshot(resumable) == before


def test_a_finished_run_extended_continues(finished_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    assert train_main(["--resume", str(out), "--total-steps", "400"]) == 0
    assert load_checkpoint(out)["global_step"] == 400
    steps = steps_of(out, "charts/epsilon")
    assert steps == [100, 200, 300, 400]
