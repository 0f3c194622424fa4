"""Every fault ends in a known state (issue 15): an exception anywhere in the training loop, a real
full disk, and SIGINT/SIGTERM in every phase of scripts.train and scripts.evaluate.

Each case asserts the exit code, the exact number of stderr lines (no traceback) and what is left
on disk: the checkpoints (each loadable, finite), no temporary file or folder, no replay without
its checkpoint; and that ``--resume`` continues from what was left.

Signals are sent to real processes in the phase under test: ``DQN_TEST_PAUSE=phase[:N]`` makes
the process write ``DQN_TEST_PAUSE_MARKER`` when it reaches the phase and wait there for the
signal (``agents.run.interrupts.pause_point``); waits are hang guards only.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import hang_up_when, read_terminal, run_train, start_in_terminal, wait_for

import agents.dqn.build
import agents.dqn.loop
from agents.dqn.agent import DQNAgent
from agents.dqn.replay.uniform import ReplayBuffer
from agents.evaluation.evaluate import evaluate
from agents.run.checkpoint import list_checkpoints, load_checkpoint
from agents.run.interrupts import REPEAT_WINDOW_S
from agents.run.tracking import Tracker, read_metrics
from scripts.train import main as train_main

ROOT = Path(__file__).resolve().parents[1]
CARTPOLE = [
    "--preset", "cartpole", "--env", "CartPole-v1", "--learning-starts", "200",
    "--buffer-size", "5000", "--log-every-steps", "50", "--eval-every-steps", "0",
    "--final-eval-episodes", "0", "--no-progress", "--no-record-video",
    "--epsilon-decay-steps", "300", "--target-update-steps", "100",  # no schedule warning
]  # fmt: skip
# ale-py prints this banner on stderr when it builds a single (rendering) env: not ours
ALE_BANNER = ("A.L.E: Arcade Learning Environment", "[Powered by Stella]")


class Boom(RuntimeError):
    """The injected fault."""


def steps(out: Path) -> list[int]:
    return [int(p.name[5:17]) for p in list_checkpoints(out / "checkpoints")]


def temporaries(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if ".tmp" in p.name)


def check_left(out: Path, expected_steps: list[int]) -> None:
    """The checkpoints are exactly these, each loads with finite weights; no temporary file or
    folder; every saved replay belongs to a checkpoint; metrics.csv parses."""
    assert steps(out) == expected_steps
    replays = {p.name for p in (out / "checkpoints").glob("replay_*")}
    named = set()
    for path in list_checkpoints(out / "checkpoints"):
        state = load_checkpoint(path)
        assert all(torch.isfinite(t).all() for t in state["model"].values())
        if state.get("replay"):
            named.add(state["replay"])
    assert replays <= named, f"replays without their checkpoint: {replays - named}"
    assert temporaries(out) == []
    if (out / "metrics.csv").exists():
        read_metrics(out / "metrics.csv")


# -- an exception anywhere in the loop ----------------------------------------------------------
def counted(real, when, method: bool = True):
    """``real`` that raises Boom on the call where ``when(count, *args)`` is true."""
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if when(calls[0], *args, **kwargs):
            raise Boom("injected")
        return real(*args, **kwargs)

    return wrapper


def fault_env_step(patch):
    make = agents.dqn.build.make_vector_env

    def make_failing(*args, **kwargs):
        envs = make(*args, **kwargs)
        envs.step = counted(envs.step, lambda n, *_: n == 351)  # the step after 350
        return envs

    patch.setattr(agents.dqn.build, "make_vector_env", make_failing)


def fault_optimizer_step(patch):
    real = torch.optim.Adam.step
    calls = [0]

    def step(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 101:  # the update of step 301, caught half-way through its parameters
            with torch.no_grad():
                self.param_groups[0]["params"][0].add_(1.0)
            raise Boom("injected")
        return real(self, *args, **kwargs)

    patch.setattr(torch.optim.Adam, "step", step)


def fault_checkpoint_write(patch):
    patch.setattr(torch, "save", counted(torch.save, lambda n, *_: n == 2))  # the one at 400


def fault_tracker_log(patch):
    def when(n, self, metrics, step):
        return step == 350 and "charts/SPS" in metrics

    patch.setattr(Tracker, "log", counted(Tracker.log, when))


def fault_evaluation(patch):
    patch.setattr(agents.dqn.loop, "evaluate", counted(evaluate, lambda n, *_, **__: True))


SAVED = "saved"  # an emergency checkpoint of that step
# id: (inject, extra flags, global step and phase named, checkpoints left, emergency checkpoint)
FAULTS = {
    "acting": (
        lambda p: p.setattr(DQNAgent, "act", counted(DQNAgent.act, lambda n, *_: n == 351)),
        [], (350, "acting"), [200, 350], SAVED,
    ),
    "env step": (fault_env_step, [], (350, "env step"), [200, 350], SAVED),
    "replay write": (
        lambda p: p.setattr(ReplayBuffer, "add", counted(ReplayBuffer.add, lambda n, *_: n == 351)),
        [], (351, "replay"), [200, 351], SAVED,
    ),
    "replay write, saved replay": (
        lambda p: p.setattr(ReplayBuffer, "add", counted(ReplayBuffer.add, lambda n, *_: n == 351)),
        ["--save-replay"], (351, "replay"), [200, 351], SAVED,
    ),
    "update": (
        lambda p: p.setattr(
            DQNAgent, "update", counted(DQNAgent.update, lambda n, self, _: self.updates == 100)
        ),
        [], (301, "update"), [200, 301], SAVED,
    ),
    "inside an optimizer step": (
        fault_optimizer_step, [], (301, "update"), [200], "inside an optimizer step"
    ),
    "target sync": (
        lambda p: p.setattr(DQNAgent, "sync_target",
                            counted(DQNAgent.sync_target, lambda n, *_: n == 3)),
        [], (300, "target sync"), [200], "target network was synced",
    ),
    "logging": (fault_tracker_log, [], (350, "logging"), [200, 350], SAVED),
    "evaluation": (
        fault_evaluation, ["--eval-every-steps", "300", "--eval-episodes", "1"],
        (300, "evaluation"), [200, 300], SAVED,
    ),
    "checkpoint write": (
        fault_checkpoint_write, [], (400, "checkpoint"), [200], "while a checkpoint was written"
    ),
    "final evaluation": (
        fault_evaluation, ["--final-eval-episodes", "1"], (600, "final evaluation"),
        [200, 400, 600], SAVED,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", FAULTS, ids=list(FAULTS))
def test_an_exception_anywhere_in_the_loop_ends_in_one_line_and_a_resumable_state(
    tmp_path, capsys, monkeypatch, case
):
    inject, flags, (step, phase), left, emergency = FAULTS[case]
    out = tmp_path / "run"
    args = [*CARTPOLE, *flags, "--total-steps", "600", "--checkpoint-every-steps", "200",
            "--output-dir", str(out)]  # fmt: skip
    with monkeypatch.context() as patch:
        inject(patch)
        code, _, err = run_train(capsys, args)
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith(f"train: error: at global step {step} ({phase}): Boom: injected; ")
    check_left(out, left)
    newest = list_checkpoints(out / "checkpoints")[-1]
    if emergency == SAVED:
        assert f"checkpoint {newest} holds the last good state (global step {step}" in err[0]
        state = load_checkpoint(newest)
        assert state["global_step"] == step
        envs_dropped = phase in ("env step", "replay")
        assert (state["obs"] is None) == envs_dropped
        assert ("without the envs' episodes" in err[0]) == envs_dropped
        assert ("without" in err[0] and "the replay" in err[0]) == ("--save-replay" in flags)
        assert "replay" not in state
    else:
        assert f"no emergency checkpoint (the error came {emergency}" in err[0] or (
            f"no emergency checkpoint (the error came while the {emergency}" in err[0]
        ), err[0]
        assert err[0].endswith(
            f"the newest checkpoint written before it is intact: {newest} (global step 200)"
        )
    assert not (out / "summary.json").exists()
    code, _, _ = run_train(capsys, ["--resume", str(out)])  # continues from what was left
    assert code == 0
    assert json.loads((out / "summary.json").read_text())["global_step"] == 600
    assert steps(out)[-1] == 600 and temporaries(out) == []


def test_an_evaluation_episode_longer_than_eval_max_steps_is_truncated_not_an_error(
    tmp_path, capsys
):
    """--eval-max-steps caps a gymnasium env's episodes too (it raised mid-run before)."""
    out = tmp_path / "run"
    args = [*CARTPOLE, "--eval-every-steps", "150", "--eval-episodes", "3", "--eval-max-steps",
            "5", "--total-steps", "300", "--output-dir", str(out)]  # fmt: skip
    code, _, err = run_train(capsys, args)
    assert code == 0 and err == []
    returns = [value for _, value in read_metrics(out / "metrics.csv")["eval/mean_return"]]
    assert len(returns) == 2 and all(r <= 5 for r in returns)


def test_evaluate_caps_a_gymnasium_episode_at_max_episode_steps():
    def balance(obs, epsilon):  # keeps CartPole up for hundreds of steps
        return (obs[:, 2] + obs[:, 3] > 0).astype(np.int64)

    capped = evaluate(balance, "CartPole-v1", 3, 0.0, max_steps_per_episode=60,
                      max_episode_steps=50)  # fmt: skip
    assert capped["lengths"] == [50, 50, 50]
    own = evaluate(balance, "CartPole-v1", 2, 0.0, max_steps_per_episode=600,
                   max_episode_steps=10_000)  # fmt: skip
    assert max(own["lengths"]) <= 500  # CartPole-v1's own limit is kept when shorter


# -- a full disk ----------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A real 2 MB filesystem (tmpfs); skipped where mounting is not permitted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_real_full_disk_while_checkpointing_is_one_line_and_keeps_every_checkpoint(
    small_disk, tmp_path, capsys
):
    out = small_disk / "run"
    args = [*CARTPOLE, "--total-steps", "4000", "--checkpoint-every-steps", "100",
            "--keep-checkpoints", "100", "--output-dir", str(out)]  # fmt: skip
    code, _, err = run_train(capsys, args)
    assert code == 1 and len(err) == 1, err
    assert "No space left on device" in err[0] and "Traceback" not in err[0]
    left = steps(out)
    assert len(left) >= 3 and left == list(range(100, 100 * len(left) + 1, 100))
    check_left(out, left)
    assert f"(global step {left[-1]})" in err[0]
    copy = tmp_path / "copy"  # the same run, given room: it resumes from the newest checkpoint
    shutil.copytree(out, copy)
    code, _, _ = run_train(capsys, ["--resume", str(copy), "--total-steps", str(left[-1] + 100)])
    assert code == 0 and steps(copy)[-1] == left[-1] + 100


REPLAY_RUN = [*CARTPOLE, "--buffer-size", "200000", "--checkpoint-every-steps", "100"]


def test_a_real_full_disk_while_saving_the_replay_leaves_no_orphan(small_disk, capsys):
    """A resumed run that saves its replay (100,004 transitions, 2.8 MB) on a 2 MB disk: the disk
    fills during the replay's write."""
    out = small_disk / "run"
    assert train_main([*REPLAY_RUN, "--total-steps", "300", "--output-dir", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in (out / "checkpoints").iterdir()}
    capsys.readouterr()
    code, _, err = run_train(
        capsys, ["--resume", str(out), "--total-steps", "100000", "--save-replay"]
    )
    assert code == 1 and len(err) == 1, err
    assert "No space left on device" in err[0] and ".replay_000000000400.tmp" in err[0]
    assert err[0].endswith("is intact: " + str(out / "checkpoints" / "step_000000000300.pt")
                           + " (global step 300)")  # fmt: skip
    check_left(out, [100, 200, 300])
    assert {p.name: p.read_bytes() for p in (out / "checkpoints").iterdir()} == before


def start_limited(args: list[str], max_file_bytes: int) -> subprocess.CompletedProcess:
    """scripts.train with no file larger than ``max_file_bytes`` (writes past it fail with
    EFBIG): the closest thing to a full disk that needs no root."""

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "scripts.train", *args]
    return subprocess.run(command, cwd=ROOT, env=env, preexec_fn=limit, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


def test_a_file_size_limit_while_checkpointing_is_one_line(tmp_path):
    """The non-root stand-in for a full disk: checkpoints of 164 kB fit under 200 kB, the first
    with the optimizer's state (308 kB, at step 300) does not."""
    out = tmp_path / "run"
    done = start_limited([*CARTPOLE, "--total-steps", "600", "--checkpoint-every-steps", "100",
                          "--output-dir", str(out)], 200_000)  # fmt: skip
    err = done.stderr.splitlines()
    assert done.returncode == 1 and len(err) == 1, done.stderr
    assert "File too large" in err[0] and "at global step 300 (checkpoint)" in err[0]
    check_left(out, [100, 200])


def test_a_file_size_limit_while_saving_the_replay_leaves_no_orphan(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main([*REPLAY_RUN, "--total-steps", "300", "--output-dir", str(out)]) == 0
    done = start_limited(
        ["--resume", str(out), "--total-steps", "100000", "--save-replay"], 1_000_000
    )
    err = done.stderr.splitlines()
    assert done.returncode == 1 and len(err) == 1, done.stderr
    assert "File too large" in err[0] and ".replay_000000000400.tmp" in err[0]
    check_left(out, [100, 200, 300])


# -- SIGINT and SIGTERM in every phase -----------------------------------------------------------
def start(script: str, args: list[str], marker: Path, pause: str | None = None,
          signals: int = 1, prefix: tuple[str, ...] = ()) -> subprocess.Popen:  # fmt: skip
    """``python -m script args`` (after ``prefix``, a command that runs it, in a session of
    its own), paused in phase ``pause`` (see ``agents.run.interrupts.pause_point``)."""
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    if pause is not None:
        env.update(DQN_TEST_PAUSE=pause, DQN_TEST_PAUSE_MARKER=str(marker),
                   DQN_TEST_PAUSE_SIGNALS=str(signals))  # fmt: skip
    return subprocess.Popen([*prefix, sys.executable, "-m", script, *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=bool(prefix))  # fmt: skip


def signal_in_phase(process, marker: Path, sig: int, count: int = 1):
    """Send ``sig`` once the process waits in its phase (``count`` times, each after the last
    was received); returns (exit code, stdout lines, stderr lines less ale-py's banner)."""
    wait_for(marker.exists, process)
    for k in range(1, count + 1):
        process.send_signal(sig)
        if k < count:
            wait_for(lambda k=k: f"signal {k}" in marker.read_text(), process)
            time.sleep(REPEAT_WINDOW_S + 0.05)  # sooner, it is the first delivered again
    out, err = process.communicate(timeout=600)  # a hang guard
    assert "Traceback" not in err
    err_lines = [line for line in err.splitlines() if not line.startswith(ALE_BANNER)]
    return process.returncode, out.splitlines(), err_lines


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name != ".lock"}  # fmt: skip


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory) -> Path:
    """A finished 300-step CartPole run (checkpoints at 100, 200, 300)."""
    out = tmp_path_factory.mktemp("cartpole") / "run"
    args = [*CARTPOLE, "--total-steps", "300", "--checkpoint-every-steps", "100"]
    assert train_main([*args, "--output-dir", str(out)]) == 0
    return out


def test_a_signal_during_the_start_up_of_a_new_run_leaves_nothing(tmp_path):
    out, marker = tmp_path / "run", tmp_path / "marker"
    args = [*CARTPOLE, "--total-steps", "600", "--output-dir", str(out)]
    process = start("scripts.train", args, marker, pause="startup")
    code, stdout, err = signal_in_phase(process, marker, signal.SIGINT)
    assert code == 130 and err == []
    assert stdout == [f"stopped by SIGINT during start-up; no run was started in {out}"]
    assert not out.exists()


def test_a_signal_during_the_start_up_of_a_resumed_run_changes_nothing(cartpole_run, tmp_path):
    out, marker = tmp_path / "run", tmp_path / "marker"
    shutil.copytree(cartpole_run, out)
    before = snapshot(out)
    process = start("scripts.train", ["--resume", str(out), "--total-steps", "600"], marker,
                    pause="startup")  # fmt: skip
    code, stdout, err = signal_in_phase(process, marker, signal.SIGTERM)
    assert code == 143 and err == []
    assert stdout == [
        f"stopped by SIGTERM during start-up; the run in {out} is as it was; continue with "
        f"--resume {out}"
    ]
    assert snapshot(out) == before


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_while_the_modules_load_is_one_line(tmp_path, sig):
    out = tmp_path / "run"
    process = start("scripts.train", [*CARTPOLE, "--output-dir", str(out)], tmp_path / "m")
    status = Path(f"/proc/{process.pid}/status")

    def catches_it() -> bool:  # the start-up's handler is in place (its bit of SigCgt)
        line = next(x for x in status.read_text().splitlines() if x.startswith("SigCgt:"))
        return bool(int(line.split()[1], 16) & (1 << (sig - 1)))

    wait_for(catches_it, process)
    process.send_signal(sig)
    out_text, err = process.communicate(timeout=600)
    assert process.returncode == 128 + sig and err == "", err
    name = signal.Signals(sig).name
    assert out_text.splitlines()[-1].startswith(f"stopped by {name} during start-up; ")
    assert not out.exists()


def stop_line(sig: int, step: int, out: Path) -> str:
    checkpoint = out / "checkpoints" / f"step_{step:012d}.pt"
    name = signal.Signals(sig).name
    return f"stopped by {name} at global step {step}; checkpoint {checkpoint}; continue with " \
        f"--resume {out}"  # fmt: skip


def test_a_signal_during_a_periodic_evaluation_stops_at_once_and_resume_makes_it(tmp_path, capsys):
    out, marker = tmp_path / "run", tmp_path / "marker"
    args = [*CARTPOLE, "--total-steps", "600", "--checkpoint-every-steps", "200",
            "--eval-every-steps", "200", "--eval-episodes", "2",
            "--output-dir", str(out)]  # fmt: skip
    process = start("scripts.train", args, marker, pause="evaluation")
    code, stdout, err = signal_in_phase(process, marker, signal.SIGTERM)
    assert code == 143 and err == []
    assert stdout[-1] == stop_line(signal.SIGTERM, 200, out)
    check_left(out, [200])
    assert load_checkpoint(out)["next_eval"] == 200  # still due: made first on resume
    assert "eval/mean_return" not in read_metrics(out / "metrics.csv")
    assert json.loads((out / "summary.json").read_text())["stopped_by"] == "SIGTERM"
    code, _, _ = run_train(capsys, ["--resume", str(out)])
    assert code == 0
    assert [s for s, _ in read_metrics(out / "metrics.csv")["eval/mean_return"]] == [200, 400, 600]


def test_a_signal_during_the_final_evaluation_keeps_the_final_checkpoint(tmp_path, capsys):
    out, marker = tmp_path / "run", tmp_path / "marker"
    args = [*CARTPOLE, "--total-steps", "300", "--checkpoint-every-steps", "200",
            "--final-eval-episodes", "2", "--output-dir", str(out)]  # fmt: skip
    process = start("scripts.train", args, marker, pause="evaluation")
    code, stdout, err = signal_in_phase(process, marker, signal.SIGINT)
    assert code == 130 and err == []
    assert stdout[-1] == stop_line(signal.SIGINT, 300, out)
    check_left(out, [200, 300])
    assert json.loads((out / "summary.json").read_text())["stopped_by"] == "SIGINT"
    code, _, _ = run_train(capsys, ["--resume", str(out)])
    assert code == 0 and json.loads((out / "summary.json").read_text())["eval_episodes"] == 2
    check_left(out, [200, 300])


WRITES = [  # (phase, extra flags, checkpoints and replays left after one signal, after two)
    ("checkpoint:2", [], ([100, 200], []), ([100], [])),
    ("replay:2", ["--save-replay"], ([100, 200], ["replay_000000000200"]),
     ([100], ["replay_000000000100"])),
]  # fmt: skip


@pytest.mark.parametrize("signals", [1, 2], ids=["one signal", "a second signal"])
@pytest.mark.parametrize(("pause", "flags", "once", "twice"), WRITES, ids=["checkpoint", "replay"])
def test_a_signal_while_a_checkpoint_is_written_leaves_no_half_written_file(
    tmp_path, capsys, pause, flags, once, twice, signals
):
    """One signal: the write finishes, then the run stops. A second one: the write is abandoned,
    its temporary file or folder removed, the previous checkpoint (and replay) kept."""
    out, marker = tmp_path / "run", tmp_path / "marker"
    args = [*CARTPOLE, *flags, "--total-steps", "600", "--checkpoint-every-steps", "100",
            "--output-dir", str(out)]  # fmt: skip
    sig = signal.SIGTERM if signals == 1 else signal.SIGINT
    process = start("scripts.train", args, marker, pause=pause, signals=signals)
    code, stdout, err = signal_in_phase(process, marker, sig, count=signals)
    assert code == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig] and err == []
    left, replays = once if signals == 1 else twice
    check_left(out, left)
    assert sorted(p.name for p in (out / "checkpoints").glob("replay_*")) == replays
    if signals == 1:
        assert stdout[-1] == stop_line(sig, 200, out)
    else:
        newest = out / "checkpoints" / "step_000000000100.pt"
        assert stdout[-1] == (
            f"stopped by SIGINT at global step 200 before a checkpoint of it was written; the "
            f"newest checkpoint written before it is intact: {newest} (global step 100); "
            f"continue with --resume {out}"
        )
        code, _, _ = run_train(capsys, ["--resume", str(out)])
        assert code == 0 and steps(out)[-1] == 600


def test_a_signal_delivered_twice_at_once_is_one_stop(tmp_path):
    """A signal that arrives again at once (as a process group's members get it, or GNU timeout
    sends it) while the checkpoint is written is the same stop: the write finishes and the run
    stops with it, as after one signal."""
    out, marker = tmp_path / "run", tmp_path / "marker"
    args = [*CARTPOLE, "--total-steps", "600", "--checkpoint-every-steps", "100",
            "--output-dir", str(out)]  # fmt: skip
    process = start("scripts.train", args, marker, pause="checkpoint:2")
    wait_for(marker.exists, process)
    os.kill(process.pid, signal.SIGINT)
    os.kill(process.pid, signal.SIGTERM)  # e.g. a suite forwarding Ctrl-C to its runs
    out_text, err = process.communicate(timeout=600)
    assert process.returncode == 130 and "Traceback" not in err
    assert out_text.splitlines()[-1] == stop_line(signal.SIGINT, 200, out)
    check_left(out, [100, 200])
    assert json.loads((out / "summary.json").read_text())["stopped_by"] == "SIGINT"


@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs GNU coreutils' timeout")
def test_a_run_under_gnu_timeout_stops_with_its_checkpoint(tmp_path):
    """``timeout -s INT`` sends its signal to the command and then to the command's process
    group: one stop, the checkpoint of the step written, the stop line printed."""
    out, marker = tmp_path / "run", tmp_path / "marker"
    args = [*CARTPOLE, "--total-steps", "600", "--checkpoint-every-steps", "100",
            "--output-dir", str(out)]  # fmt: skip
    process = start("scripts.train", args, marker, pause="checkpoint:2",
                    prefix=("timeout", "-s", "INT", "3600"))  # fmt: skip
    wait_for(marker.exists, process)
    process.send_signal(signal.SIGINT)  # timeout passes it on as at its deadline: twice
    out_text, err = process.communicate(timeout=600)
    assert process.returncode == 130 and "Traceback" not in err
    assert out_text.splitlines()[-1] == stop_line(signal.SIGINT, 200, out)
    check_left(out, [100, 200])


# -- SIGHUP: the terminal hangs up ----------------------------------------------------------------
def quiet_env(pause: str, marker: Path) -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
            "DQN_TEST_PAUSE": pause, "DQN_TEST_PAUSE_MARKER": str(marker)}  # fmt: skip


def test_a_terminal_that_hangs_up_while_a_checkpoint_is_written_stops_the_run_with_it(
    tmp_path, capsys
):
    """The run's terminal closes (SIGHUP to its session) while it writes the checkpoint of step
    200: the write finishes and the run stops with it, exit 129, though its stop line can no
    longer be printed (the terminal answers EIO); summary.json says how it ended, and --resume
    continues it."""
    out, marker = tmp_path / "run", tmp_path / "marker"
    args = [*CARTPOLE, "--total-steps", "600", "--checkpoint-every-steps", "100",
            "--output-dir", str(out)]  # fmt: skip
    process, terminal = start_in_terminal("scripts.train", args, quiet_env("checkpoint:2", marker))
    printed = hang_up_when(marker.exists, process, terminal)
    assert process.returncode == 129, printed
    assert "Traceback" not in printed
    check_left(out, [100, 200])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped_by"] == "SIGHUP" and summary["global_step"] == 200
    code, _, _ = run_train(capsys, ["--resume", str(out)])
    assert code == 0 and steps(out)[-1] == 600


def test_a_terminal_that_hangs_up_during_the_start_up_leaves_nothing(tmp_path):
    out, marker = tmp_path / "run", tmp_path / "marker"
    args = [*CARTPOLE, "--total-steps", "600", "--output-dir", str(out)]
    process, terminal = start_in_terminal("scripts.train", args, quiet_env("startup", marker))
    printed = hang_up_when(marker.exists, process, terminal)
    assert process.returncode == 129 and "Traceback" not in printed, printed
    assert not out.exists()


def test_sighup_sent_to_a_run_whose_terminal_is_still_there_prints_its_stop_line(tmp_path):
    """``kill -HUP`` with the terminal open: the run stops as on SIGTERM (exit 129) and, the
    terminal still answering, its stop line is printed there."""
    out, marker = tmp_path / "run", tmp_path / "marker"
    args = [*CARTPOLE, "--total-steps", "600", "--checkpoint-every-steps", "100",
            "--output-dir", str(out)]  # fmt: skip
    process, terminal = start_in_terminal("scripts.train", args, quiet_env("checkpoint:2", marker))
    try:
        read_terminal(terminal, process, marker.exists)
        process.send_signal(signal.SIGHUP)
        printed = read_terminal(terminal, process)
    finally:
        os.close(terminal)
    assert process.wait(timeout=600) == 129, printed
    assert printed.splitlines()[-1] == stop_line(signal.SIGHUP, 200, out)
    check_left(out, [100, 200])


def test_under_nohup_a_hang_up_does_not_stop_the_run(tmp_path):
    """``nohup`` starts the run with SIGHUP ignored: it stays ignored, and the run goes on until
    the SIGTERM sent after it, which stops it as usual."""
    out, marker = tmp_path / "run", tmp_path / "marker"
    args = [*CARTPOLE, "--total-steps", "600", "--checkpoint-every-steps", "100",
            "--output-dir", str(out)]  # fmt: skip
    process = subprocess.Popen(
        ["nohup", sys.executable, "-m", "scripts.train", *args], cwd=ROOT,
        env=quiet_env("checkpoint:2", marker), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(marker.exists, process)
    process.send_signal(signal.SIGHUP)  # taken, it would stop the run (129) or kill it (-1)
    time.sleep(0.2)
    process.send_signal(signal.SIGTERM)  # within the repeat window: only a stop if SIGHUP wasn't
    out_text, err = process.communicate(timeout=600)
    assert process.returncode == 143 and "Traceback" not in err, err
    assert out_text.splitlines()[-1] == stop_line(signal.SIGTERM, 200, out)
    check_left(out, [100, 200])


PONG = ["--preset", "fast", "--env", "Pong", "--num-envs", "4", "--compile", "off",
        "--total-steps", "64", "--learning-starts", "48",
        "--eval-every-steps", "0", "--final-eval-episodes", "0", "--log-every-steps", "32",
        "--epsilon-decay-steps", "32", "--target-update-steps", "16", "--no-progress"]  # fmt: skip


def test_a_signal_while_the_video_is_recorded_leaves_no_video_file(tmp_path):
    out, marker = tmp_path / "run", tmp_path / "marker"
    process = start("scripts.train", [*PONG, "--record-video", "--output-dir", str(out)], marker,
                    pause="video")  # fmt: skip
    code, stdout, err = signal_in_phase(process, marker, signal.SIGINT)
    assert code == 130 and err == []
    assert stdout[-1] == stop_line(signal.SIGINT, 64, out)
    check_left(out, [64])
    assert list((out / "videos").iterdir()) == []  # neither final.mp4 nor its temporary file


# -- scripts.evaluate ----------------------------------------------------------------------------
EVALUATE_PHASES = [  # (phase, signal, last stdout line, outputs written)
    ("startup", signal.SIGINT, "stopped by SIGINT during start-up; no summary was written", False),
    ("evaluation", signal.SIGTERM,
     "stopped by SIGTERM during the evaluation; no summary was written", False),
    ("outputs", signal.SIGTERM, "stopped by SIGTERM after the outputs were written", True),
]  # fmt: skip


@pytest.mark.parametrize(("pause", "sig", "line", "written"), EVALUATE_PHASES,
                         ids=[p[0] for p in EVALUATE_PHASES])  # fmt: skip
def test_a_signal_in_each_phase_of_evaluate(cartpole_run, tmp_path, pause, sig, line, written):
    results, marker = tmp_path / "evaluation", tmp_path / "marker"
    args = [str(cartpole_run), "--episodes", "3", "--output-dir", str(results)]
    process = start("scripts.evaluate", args, marker, pause=pause)
    code, stdout, err = signal_in_phase(process, marker, sig)
    assert code == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig] and err == []
    assert stdout[-1] == line and sum("stopped by" in x for x in stdout) == 1
    if written:  # the writes in progress were finished: both files whole
        summary = json.loads((results / "summary.json").read_text())
        rows = (results / "episodes.csv").read_text().splitlines()
        assert summary["episodes"] == 3 and len(rows) == 4
        assert temporaries(results) == []
    else:
        assert not results.exists()


@pytest.fixture(scope="module")
def pong_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pong") / "run"
    assert train_main([*PONG, "--no-record-video", "--output-dir", str(out)]) == 0
    return out


def test_a_signal_while_evaluate_records_leaves_no_video_file(pong_run, tmp_path):
    videos, marker = tmp_path / "videos", tmp_path / "marker"
    args = [str(pong_run), "--episodes", "2", "--record", str(videos), "--output-dir",
            str(tmp_path / "evaluation")]  # fmt: skip
    process = start("scripts.evaluate", args, marker, pause="record")
    code, stdout, err = signal_in_phase(process, marker, signal.SIGTERM)
    assert code == 143 and err == []
    assert stdout[-1] == "stopped by SIGTERM during recording; no summary was written"
    assert not videos.exists() or list(videos.iterdir()) == []
    assert not (tmp_path / "evaluation").exists()
