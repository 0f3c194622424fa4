"""Many training runs at once on Ray Core: each run of a sweep (``scripts.sweep_plan``:
the grid, the commands, the run states) one ``python -m scripts.train`` process inside one Ray
task (``scripts/sweep.py`` is the command line, ``scripts.sweep_report`` the report).

- The Ray task (``run_command``): runs one command with its output appended to the run's log,
  returns the exit code and the wall time; a cancel (``ray.cancel``) reaches it as
  ``KeyboardInterrupt`` and is forwarded to the training process as SIGTERM (it checkpoints and
  exits), and the task waits for it.
- Failures (``read_failures``, ``FAILURES_FILE``): ``OUTPUT_DIR/failures.json`` keeps each run's
  failed attempts (exit code, the last line of its log) over invocations until the run finishes:
  the report reads it, and attempt numbers go on from it.
- The scheduling loop (``Scheduler``): submits every pending run at once (Ray queues them by the
  CPUs and GPUs each asks for), collects them with ``ray.wait`` as they end and resubmits a
  failed one, from the state it left, up to ``retries`` times; SIGINT, SIGTERM or SIGHUP (not
  when ignored, as under ``nohup``) cancels every task and waits for the runs to stop.

Nothing here imports Ray at module level: the command line's ``--dry-run`` and ``--report`` work
without the extra.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.run.interrupts import SIGNAL_EXIT_CODES, detach_from_terminal, stop_signals
from scripts._cli import one_line
from scripts.atari100k_report import read_json
from scripts.sweep_plan import (
    Plan,
    SweepRun,
    move_aside,
    needs_set_aside,
    result_of,
    state_of,
)

STOP_EXIT_CODES = (*SIGNAL_EXIT_CODES.values(), *(-int(sig) for sig in SIGNAL_EXIT_CODES))
"""Exit codes of a process stopped by SIGINT, SIGTERM or SIGHUP: ``scripts.train`` and
``scripts.evaluate`` exit 130, 143 or 129; a process killed by the signal itself gives -2, -15
or -1."""
POLL_SECONDS = 0.5
"""How often the Ray task looks for a cancel while its process runs, and the driver for a
signal while it waits: a cancel is an exception raised between Python instructions, never
inside a blocking wait."""
INSTALL_HINT = "pip install -e .[distributed]"


def import_ray():
    """Ray, or one ``ValueError`` line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError(
            f"running a sweep needs Ray, which is not installed: {INSTALL_HINT} "
            "(--dry-run and --report work without it)"
        ) from None
    return ray


# -- the Ray task -------------------------------------------------------------------------------
def package_root() -> Path:
    """The folder holding the ``agents`` and ``scripts`` packages on this node (this file is
    scripts/sweep_tasks.py)."""
    return Path(__file__).resolve().parents[1]


def run_command(
    command: Sequence[str], log_path: str, header: str, threads: int, workdir: str, gpus: float
) -> tuple[int, float]:
    """Run ``command`` (a Ray task's body): its stdout and stderr appended to ``log_path`` after
    ``header``, in ``workdir`` (the sweep's working directory, so relative run directories mean
    the same as for the driver; this package's folder where the node lacks it), with
    ``threads`` OpenMP/MKL threads, no GPU when it reserved none (``gpus``; Ray shows a task
    the GPUs it reserved) and this package importable. Returns the exit code and the
    wall time in seconds. A cancel of the task (``ray.cancel``: ``KeyboardInterrupt`` here)
    sends the process SIGTERM, and the task waits for it to checkpoint and exit; a second cancel
    sends a second SIGTERM (``scripts.train`` then stops at once, if it comes a second or more
    after the first: ``agents.run.interrupts.REPEAT_WINDOW_S``)."""
    root = package_root()
    cwd = Path(workdir) if Path(workdir).is_dir() else root
    log = Path(log_path) if Path(log_path).is_absolute() else cwd / log_path
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if gpus == 0:  # a run that reserved no GPU must not take one from the runs that did
        env["CUDA_VISIBLE_DEVICES"] = ""
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    command = [sys.executable, *command[1:]]  # the Python of this node, with this package
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "a") as out:
        out.write(header + "\n")
        out.flush()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        code = None
        while code is None:
            try:
                code = proc.wait(timeout=POLL_SECONDS)
            except subprocess.TimeoutExpired:
                continue
            except KeyboardInterrupt:  # the sweep was stopped
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
        seconds = time.monotonic() - start
        out.write(f"# exit code {code} after {seconds:.1f} s\n")
    return code, seconds


# -- failures.json ------------------------------------------------------------------------------
FAILURES_FILE = "failures.json"
"""``OUTPUT_DIR/failures.json``: run name -> ``{"path", "failed", "attempts"}``, each run's failed
attempts over every invocation of the sweep, so that ``--report`` shows a run that failed earlier
as failed and a later invocation numbers its attempts on. ``failed``: the sweep gave up on the run
after its retries (false while a retry follows, or after a stop); ``attempts``: one record per
failed attempt (``attempt`` number, ``state`` it started from, ``exit_code``, ``seconds``, Ray's
``error``, the ``last_line`` of its log, when it ``ended``). A run's entry goes when it finishes."""
LAST_LINE_CHARS = 300


def read_failures(output_dir: Path) -> dict[str, dict[str, Any]]:
    """The entries of ``OUTPUT_DIR/failures.json``; none when it is absent or unreadable."""
    data = read_json(output_dir / FAILURES_FILE) or {}
    return {
        name: entry
        for name, entry in data.items()
        if isinstance(entry, dict) and isinstance(entry.get("attempts"), list)
    }


def write_failures(output_dir: Path, failures: dict[str, dict[str, Any]]) -> None:
    """Write ``OUTPUT_DIR/failures.json`` atomically (``agents.run.checkpoint.atomic_write``)."""
    import json

    from agents.run.checkpoint import atomic_write

    data = json.dumps(failures, indent=2) + "\n"
    atomic_write(output_dir / FAILURES_FILE, lambda f: f.write(data.encode()))


def last_log_line(log: Path, tail_bytes: int = 65536) -> str | None:
    """The last line the latest attempt's process wrote to its log (``run_command``'s header and
    ``# exit code`` lines aside), cut to ``LAST_LINE_CHARS``; None when it wrote nothing or the
    log cannot be read."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - tail_bytes))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        text = line.strip()
        if not text or text.startswith("# exit code "):
            continue
        return None if text.startswith("# attempt ") else text[:LAST_LINE_CHARS]
    return None


# -- the scheduling loop ------------------------------------------------------------------------
@dataclass
class Attempt:
    """One try of a run: the state it started from, its exit code (None when Ray lost the task
    or it was cancelled before it started), its wall time, and Ray's error if any."""

    state: str
    exit_code: int | None
    seconds: float
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Outcome:
    """What became of one run in this invocation: 'skipped' (finished before), 'finished',
    'failed' (after its retries), 'stopped' (by the sweep's own stop) or 'pending'."""

    run: SweepRun
    attempts: list[Attempt] = field(default_factory=list)
    status: str = "pending"


def connect(address: str | None) -> bool:
    """Join Ray: the instance this process already has (tests; left running), the cluster at
    ``address`` (``auto``, ``ray://HOST:10001``), else a private instance with this machine's
    CPUs. True when this call started the connection (the caller shuts it down)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address)
    else:
        ray.init(num_cpus=os.cpu_count() or 1)
    return True


def check_resources(plan: Plan, local: bool) -> str:
    """Refuse (local instance) or warn about (a cluster: its autoscaler may add nodes) runs
    asking for more CPUs or GPUs than the Ray cluster has: they would wait forever. Returns a
    line describing the cluster."""
    ray = import_ray()
    have = ray.cluster_resources()
    cpus, gpus = float(have.get("CPU", 0)), float(have.get("GPU", 0))
    line = f"Ray: {cpus:g} CPUs, {gpus:g} GPUs"
    for flag, want, got, what in (
        ("--cpus-per-run", plan.cpus_per_run, cpus, "CPUs"),
        ("--gpus-per-run", plan.gpus_per_run, gpus, "GPUs"),
    ):
        if want > got:
            text = f"{flag}: {want:g} is more than the {got:g} {what} of the Ray cluster"
            if local:
                raise ValueError(f"{text}; no run could start; use at most {got:g}")
            line += f"; warning: {text}: runs wait until a node with them joins"
    return line


class Scheduler:
    """Runs the pending runs of a sweep as Ray tasks: all submitted at once, collected with
    ``ray.wait`` as they end, a failed one resubmitted (from the state it left: resumed when it
    left a checkpoint, set aside and started again when not) until it has had
    ``1 + plan.retries`` attempts in this invocation. SIGINT or SIGTERM cancels every task (each
    forwards SIGTERM to its process, which checkpoints and exits) and the loop waits for them all;
    ``stop_signal`` then names the signal. Each failed attempt is recorded in
    ``OUTPUT_DIR/failures.json`` (``FAILURES_FILE``) as it ends, and a run's record goes when it
    finishes; attempt numbers go on from the failed attempts recorded there
    (``OUTPUT_DIR/logs/NAME.log``: attempt 3 of 4 after two earlier ones)."""

    def __init__(
        self,
        runs: Sequence[SweepRun],
        plan: Plan,
        output_dir: Path,
        say: Callable[[str], None] = lambda line: print(line, flush=True),
    ) -> None:
        self.runs, self.plan, self.say = list(runs), plan, say
        self.output_dir, self.logs = output_dir, output_dir / "logs"
        self.failures = read_failures(output_dir)
        self.earlier = {
            run.name: len(self.failures[run.name]["attempts"])
            for run in runs
            if run.name in self.failures
        }
        """Failed attempts of each run in earlier invocations (failures.json)."""
        self.outcomes = {run.name: Outcome(run) for run in runs}
        self.in_flight: dict[Any, tuple[SweepRun, str]] = {}
        self.stop_signal: int | None = None
        self.signals = 0
        self.cancels = 0
        self._task = None

    def log_path(self, run: SweepRun) -> Path:
        return self.logs / f"{run.name}.log"

    def attempt_number(self, run: SweepRun) -> int:
        """The number of ``run``'s latest attempt, counting its failed attempts of earlier
        invocations."""
        return self.earlier.get(run.name, 0) + len(self.outcomes[run.name].attempts)

    def record_failure(self, run: SweepRun, attempt: Attempt, gave_up: bool) -> None:
        """Add ``attempt`` to ``run``'s entry of failures.json and write it."""
        entry = self.failures.setdefault(
            run.name, {"path": str(run.path), "failed": False, "attempts": []}
        )
        entry["failed"] = gave_up
        entry["attempts"].append(
            {
                "attempt": self.attempt_number(run),
                **attempt.as_dict(),
                "last_line": last_log_line(self.log_path(run)),
                "ended": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
        )
        write_failures(self.output_dir, self.failures)

    def clear_failure(self, run: SweepRun, finished: bool) -> None:
        """``finished``: drop ``run``'s entry of failures.json; else (stopped) mark it no longer
        given up. Writes the file when that changed it."""
        entry = self.failures.get(run.name)
        if entry is None or (not finished and not entry["failed"]):
            return
        if finished:
            del self.failures[run.name]
        else:
            entry["failed"] = False
        write_failures(self.output_dir, self.failures)

    def submit(self, run: SweepRun) -> None:
        """Decide ``run``'s state now (setting aside a directory without a checkpoint) and
        submit the process that takes it on as a Ray task."""
        ray = import_ray()
        if self._task is None:
            self._task = ray.remote(max_retries=0)(run_command)  # retried here, from its state
        state = state_of(run.path)
        if state == "new" and needs_set_aside(run.path):
            self.say(f"{run.name}: no checkpoint in {run.path}; moved to {move_aside(run.path)}")
        command = self.plan.command(run, state)
        attempt = self.attempt_number(run) + 1
        total = self.earlier.get(run.name, 0) + 1 + self.plan.retries
        header = (
            f"# attempt {attempt} of {total} ({state}) at "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {shlex.join(command)}"
        )
        ref = self._task.options(
            num_cpus=self.plan.cpus_per_run, num_gpus=self.plan.gpus_per_run
        ).remote(
            command,
            str(self.log_path(run)),
            header,
            self.plan.threads,
            os.getcwd(),
            self.plan.gpus_per_run,
        )
        self.in_flight[ref] = (run, state)

    def on_signal(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:  # the terminal is gone: print nowhere, not to it (EIO)
            detach_from_terminal()
        if self.stop_signal is None:
            self.stop_signal = signum
        self.signals += 1  # the loop cancels the tasks (no Ray call inside a signal handler)

    def run(self) -> dict[str, Outcome]:
        """Run every run that has not finished; returns each run's ``Outcome``."""
        ray = import_ray()
        previous = {sig: signal.getsignal(sig) for sig in stop_signals()}
        for sig in previous:
            signal.signal(sig, self.on_signal)
        try:
            for run in self.runs:
                if state_of(run.path) == "finished":
                    self.outcomes[run.name].status = "skipped"
                    self.clear_failure(run, finished=True)  # finished since it failed
                elif self.stop_signal is None:
                    self.submit(run)
            while self.in_flight:
                if self.cancels < self.signals:
                    self.cancels = self.signals
                    for ref in self.in_flight:
                        ray.cancel(ref)
                done, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=POLL_SECONDS)
                for ref in done:
                    self.collect(ref)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.in_flight:  # only after an error of the sweep itself: stop the runs
                for ref in self.in_flight:
                    ray.cancel(ref)
                ray.wait(list(self.in_flight), num_returns=len(self.in_flight), timeout=60)
        for outcome in self.outcomes.values():
            if outcome.status == "pending":
                outcome.status = "stopped"
        return self.outcomes

    def collect(self, ref: Any) -> None:
        """Record the attempt that ``ref`` ran and decide: finished, stopped, retried or
        failed."""
        ray = import_ray()
        run, state = self.in_flight.pop(ref)
        outcome = self.outcomes[run.name]
        try:
            code, seconds = ray.get(ref)
            error = None
        except ray.exceptions.TaskCancelledError:
            code, seconds, error = None, 0.0, "cancelled before it started"
        except ray.exceptions.RayError as lost:  # its worker or node died, or the task raised
            code, seconds, error = None, 0.0, one_line(lost).split(" Traceback")[0][:300]
        attempt = Attempt(state, code, seconds, error)
        outcome.attempts.append(attempt)
        minutes = seconds / 60
        if self.stop_signal is not None and (code is None or code in STOP_EXIT_CODES):
            outcome.status = "stopped"
            self.clear_failure(run, finished=False)
            if code is None:
                self.say(f"{run.name}: {error}; the same command starts it")
            else:
                self.say(
                    f"{run.name}: stopped after {minutes:.1f} min with its checkpoint; the "
                    "same command continues it"
                )
            return
        if code == 0 and state_of(run.path) == "finished":
            outcome.status = "finished"
            self.clear_failure(run, finished=True)
            result = result_of(run.path) or {}
            self.say(
                f"{run.name}: finished in {minutes:.1f} min, mean return "
                f"{result.get('mean_return', math.nan):.2f} over "
                f"{result.get('episodes')} episodes"
            )
            return
        why = error or (
            f"exited with code {code}" if code else "exited with code 0 without a final evaluation"
        )
        left = 1 + self.plan.retries - len(outcome.attempts)
        retry = left > 0 and self.stop_signal is None
        self.record_failure(run, attempt, gave_up=not retry)
        number = self.attempt_number(run)
        if retry:
            self.say(
                f"{run.name}: {why} after {minutes:.1f} min (attempt {number}, log "
                f"{self.log_path(run)}); trying again"
            )
            self.submit(run)
            return
        outcome.status = "failed"
        earlier = self.earlier.get(run.name, 0)
        self.say(
            f"{run.name}: failed: {why} after {number} attempt{'s' if number != 1 else ''}"
            + (f" ({earlier} in earlier sweeps)" if earlier else "")
            + f" (log {self.log_path(run)}; {FAILURES_FILE})"
        )
