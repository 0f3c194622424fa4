"""What several test modules need to drive a training run: start one in a subprocess and wait
for it, run the command line in-process, stop a run at a step, snapshot a directory, and read an
mp4 back."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from agents.dqn.loop import Trainer
from agents.run.directory import LOCK_NAME
from scripts.train import main as train_main

ROOT = Path(__file__).resolve().parents[1]


def start_training(args: list[str], cwd: Path = ROOT) -> subprocess.Popen:
    """``python -m scripts.train ARGS`` in a subprocess (wandb off, one OpenMP thread)."""
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "scripts.train", *args], cwd=cwd, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def start_in_terminal(module: str, args: list[str], env: dict[str, str],
                      cwd: Path = ROOT) -> tuple[subprocess.Popen, int]:  # fmt: skip
    """``python -m module args`` on a pseudo-terminal of its own, as from a shell in a terminal
    window: a new session whose controlling terminal it is, stdin, stdout and stderr on it.
    Returns the process and the terminal's master end: closing it hangs the terminal up, as a
    closed window or a dropped ssh connection does (the kernel sends the session SIGHUP)."""
    master, slave = os.openpty()
    take_terminal = (  # a fresh interpreter in the new session (no Python between fork and exec)
        "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
        "os.execv(sys.executable, [sys.executable, '-m', *sys.argv[1:]])"
    )
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", take_terminal, module, *args], cwd=cwd, env=env,
            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        )  # fmt: skip
    finally:
        os.close(slave)
    return process, master


def read_terminal(master: int, process: subprocess.Popen, until=None,
                  timeout_s: float = 600.0) -> str:  # fmt: skip
    """What the process of ``start_in_terminal`` prints, read until ``until()`` holds (None:
    until the terminal has nothing more and the process has ended)."""
    printed = b""
    deadline = time.monotonic() + timeout_s  # a hang guard only
    while until is None or not until():
        if until is not None and process.poll() is not None:
            raise AssertionError(f"exited before it was due: {printed.decode()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"timed out; it printed: {printed.decode()[-3000:]}")
        if select.select([master], [], [], 0.02)[0]:
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # EIO: every process has closed the terminal
                chunk = b""
            printed += chunk
            if not chunk and until is None:
                break
        elif until is None and process.poll() is not None:
            break
    return printed.decode(errors="replace")


def hang_up_when(condition, process: subprocess.Popen, master: int,
                 timeout_s: float = 600.0) -> str:  # fmt: skip
    """Read the terminal of ``start_in_terminal`` until ``condition()`` holds, then hang it up
    (close its master end) and wait for the process; returns what it printed before."""
    try:
        printed = read_terminal(master, process, condition, timeout_s)
    finally:
        os.close(master)
    process.wait(timeout=timeout_s)
    return printed


def wait_for(condition, process: subprocess.Popen, timeout_s: float = 600.0) -> None:
    """Wait until ``condition()`` holds while ``process`` runs. The timeout only guards against a
    hang: a loaded machine may take minutes where an idle one takes seconds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"training exited early: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out waiting for the training run")
        time.sleep(0.02)


def run_train(capsys, args: list[str]) -> tuple[int, list[str], list[str]]:
    """``scripts.train`` in-process: exit code, stdout lines, stderr lines (of this call only)."""
    capsys.readouterr()
    code = train_main(args)
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def stop_at(monkeypatch, step: int) -> None:
    """Act as if SIGINT arrived during the step that reaches ``step`` (the step still finishes
    and is checkpointed; an evaluation due then is left due, made first by a resumed run)."""
    log = Trainer._log

    def log_then_stop(self, *args):
        if self.global_step == step:
            self.stop_signal = signal.SIGINT
        return log(self, *args)

    monkeypatch.setattr(Trainer, "_log", log_then_stop)


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (but the lock file, whose pid a refused run may rewrite)
    with its bytes."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != LOCK_NAME
    }


def capture_facts(path: Path) -> tuple[int, int, int, float]:
    """(frames decoded, width, height, fps) as OpenCV reads the mp4, every frame decoded."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames, sizes = 0, set()
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames += 1
        sizes.add((frame.shape[1], frame.shape[0]))
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    assert len(sizes) == 1, sizes
    return frames, *sizes.pop(), fps
