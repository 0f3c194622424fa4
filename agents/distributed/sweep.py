"""Many training runs at once on Ray Core: games x seeds x every combination of swept settings,
each run one ``python -m scripts.train`` process inside one Ray task (``scripts/sweep.py`` is the
command line).

- The grid (``Setting``, ``make_grid``): each ``--set KEY=V1,V2`` sweeps one ``TrainConfig``
  field; a cell is a game, one value of every swept field and a seed. A run's directory names its
  cell, ``OUTPUT_DIR/GAME/<set-part>/seedS`` (``Pong/learning_rate=0.0001/seed1``; no set-part
  level without ``--set``), and holds a normal ``scripts.train`` run.
- Run states (``state_of``, ``result_of``): those of the Atari 100k suite (``scripts.atari100k``:
  finished, trained, interrupted, new), so a sweep is resumable the same way: a finished run is
  skipped, an interrupted one resumed (``--resume``), a trained one gets its final evaluation from
  ``scripts.evaluate``, a directory without a checkpoint is set aside and the run starts again.
- The Ray task (``run_command``): runs one command with its output appended to the run's log,
  returns the exit code and the wall time; a cancel (``ray.cancel``) reaches it as
  ``KeyboardInterrupt`` and is forwarded to the training process as SIGTERM (it checkpoints and
  exits), and the task waits for it.
- The scheduling loop (``Scheduler``): submits every pending run at once (Ray queues them by the
  CPUs and GPUs each asks for), collects them with ``ray.wait`` as they end and resubmits a
  failed one, from the state it left, up to ``retries`` times; SIGINT or SIGTERM cancels every
  task and waits for the runs to stop. Each failed attempt goes into ``OUTPUT_DIR/failures.json``
  (``FAILURES_FILE``), kept over invocations until the run finishes: the report reads it, and
  attempt numbers go on from it.
- The report (``build_report``, ``write_report``): per cell the mean final evaluation over seeds,
  the human-normalized score of Atari games, the failed and unfinished runs; per group of swept
  values the mean, median and IQM of the human-normalized scores over the games with
  stratified-bootstrap 95% intervals; and the learning curves (``curves.png``). For an Atari
  100k sweep (``atari100k_sections``) the report opens with the benchmark's table of each group,
  made by ``scripts.atari100k``: the published columns and aggregates beside ours.

Nothing here imports Ray at module level: the grid, the states, the commands and the report work
without the extra (``--dry-run``, ``--report``).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import io
import itertools
import math
import os
import shlex
import signal
import subprocess
import sys
import time
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scripts._cli import one_line
from scripts.atari100k import (
    evaluate_command,
    final_result,
    read_json,
    run_state,
    set_aside,
)

AGGREGATE_NAMES = ("mean", "median", "iqm")
ATARI_100K_STEPS = 100_000
"""Agent steps of an Atari 100k run, those of the published columns."""
STATES = ("new", "interrupted", "trained", "finished")
STOP_EXIT_CODES = (130, 143, -int(signal.SIGINT), -int(signal.SIGTERM))
"""Exit codes of a process stopped by SIGINT or SIGTERM: ``scripts.train`` and
``scripts.evaluate`` exit 130 or 143; a process killed by the signal itself gives -2 or -15."""
POLL_SECONDS = 0.5
"""How often the Ray task looks for a cancel while its process runs, and the driver for a
signal while it waits: a cancel is an exception raised between Python instructions, never
inside a blocking wait."""
INSTALL_HINT = "pip install -e .[distributed]"

SET_BY_SWEEP = {
    "env": "--games (or --suite)",
    "seed": "--seeds",
    "preset": "--preset",
    "output_dir": "--output-dir",
}
"""Settings the sweep gives every run itself, refused in ``--set`` (their flags after ``--``
are refused by ``REFUSED_EXTRA``)."""
REFUSED_EXTRA = {
    "--env": "the sweep sets it; use --games or --suite",
    "--seed": "the sweep sets it; use --seeds",
    "--preset": "the sweep sets it; use --preset before --",
    "--output-dir": "the sweep sets it; use --output-dir before --",
    "--resume": "the sweep resumes interrupted runs itself",
    "--overwrite": "the sweep sets aside a directory without a checkpoint itself",
    "--config": "a resumed run takes no --config; use --set or the flags themselves",
    "--list-games": "it trains nothing",
}
"""``scripts.train`` flags that may not follow ``--``, and why."""
BOOL_WORDS = {
    **dict.fromkeys(("true", "on", "yes", "1"), True),
    **dict.fromkeys(("false", "off", "no", "0"), False),
}
"""How a switch (``--set dueling=true,false``) may be spelled."""


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


# -- the grid -----------------------------------------------------------------------------------
def shown_value(value: object) -> str:
    """A swept value as the run's directory and the report show it: true/false, none, a float
    as Python prints it (1e-4 -> 0.0001), widths of a tuple joined by x (64x64)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return "x".join(shown_value(v) for v in value)
    return str(value)


def value_flags(name: str, value: object) -> list[str]:
    """The ``scripts.train`` flags that set the field ``name`` to ``value``."""
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag] if value else ["--no-" + flag[2:]]
    if value is None:
        return [flag, "none"]
    if isinstance(value, tuple):
        return [flag, *(str(v) for v in value)]
    return [flag, str(value)]


@dataclass(frozen=True)
class Setting:
    """One swept field (``--set KEY=V1,V2``): its ``TrainConfig`` name and its values, each of
    the field's type, in the order given."""

    name: str
    values: tuple[Any, ...]


def _convert(name: str, hint: object, text: str) -> object:
    """``text`` as a value of the field ``name`` (type ``hint``), or one ``ValueError`` line
    naming the value and what the field accepts."""
    from scripts._cli import convert, split_optional

    where = f"--set {name}"
    inner, optional = split_optional(hint)
    if inner is bool:
        if text.lower() not in BOOL_WORDS:
            raise ValueError(f"{where}: {text!r} is not accepted; use true or false")
        return BOOL_WORDS[text.lower()]
    try:
        raw: str | list[str] = text.split() if typing.get_origin(inner) is tuple else text
        return convert(where, hint, raw)
    except argparse.ArgumentError as error:
        raise ValueError(str(error)) from None


def parse_setting(text: str) -> Setting:
    """``KEY=V1,V2`` as a ``Setting``. KEY is a ``TrainConfig`` field in either spelling
    (``learning_rate``, ``learning-rate``, ``--learning-rate``); each value is read as the field's
    type (a tuple field takes its items separated by spaces: ``hidden=64 64,128``). Refused in
    one line: no ``=``, an unknown field (with the closest one), a field the sweep sets itself,
    no value or an empty one, a value of the wrong type, and a value that could not name a
    directory (a ``/`` in it)."""
    from agents.dqn.config import TrainConfig

    key, sep, raw = text.partition("=")
    name = key.strip().lstrip("-").replace("-", "_")
    if not sep or not name:
        raise ValueError(
            f"--set: {text!r} is not accepted; use KEY=V1,V2 with KEY a training setting, "
            "e.g. --set learning_rate=1e-4,3e-4"
        )
    hints = typing.get_type_hints(TrainConfig)
    if name not in hints:
        close = difflib.get_close_matches(name, list(hints), n=1)
        hint = (
            f"; did you mean {close[0]!r}?"
            if close
            else "; accepted: the settings python -m scripts.train --help lists"
        )
        raise ValueError(f"--set: unknown setting {key.strip()!r}{hint}")
    if name in SET_BY_SWEEP:
        raise ValueError(f"--set: {name!r} is set by the sweep itself; use {SET_BY_SWEEP[name]}")
    texts = [part.strip() for part in raw.split(",")]
    if not raw.strip() or not all(texts):
        raise ValueError(
            f"--set {name}: {raw!r} is not accepted; give one or more values separated by "
            f"commas, e.g. --set {name}=V1,V2"
        )
    values: dict[str, object] = {}
    for part in texts:
        value = _convert(name, hints[name], part)
        shown = shown_value(value)
        if "/" in shown or shown in (".", ".."):
            raise ValueError(
                f"--set {name}: {part!r} is not accepted; a value names the run's directory, "
                "so use one without '/'"
            )
        values.setdefault(shown, value)  # 1e-4 and 0.0001 are one value
    return Setting(name, tuple(values.values()))


def parse_settings(texts: Sequence[str]) -> list[Setting]:
    """Every ``--set``, each field swept once."""
    settings = [parse_setting(text) for text in texts]
    names = [s.name for s in settings]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(
                f"--set: {name!r} is given twice; give all its values in one --set {name}=V1,V2"
            )
    return settings


def game_label(game: str) -> str:
    """The name a game goes by in a sweep: an Atari game in its table spelling (``pong``,
    ``ALE/Pong-v5`` -> ``Pong``), any other env id as given (``CartPole-v1``, ``fake``).
    ``ValueError`` for an env id the package cannot make."""
    from envs.atari import canonical_game_id, is_atari_game
    from envs.vector import check_env_id

    name = game.strip()
    if is_atari_game(name):
        return canonical_game_id(name).removeprefix("ALE/").removesuffix("-v5")
    try:
        check_env_id(name)
    except ValueError as error:
        raise ValueError("--games" + str(error).removeprefix("--env")) from None
    return name


@dataclass(frozen=True)
class SweepRun:
    """One cell of the grid: the game (the ``--env`` of its run), the swept values
    (``(field, value)`` in ``--set`` order), the seed, and its directory."""

    game: str
    values: tuple[tuple[str, Any], ...]
    seed: int
    path: Path

    @property
    def group(self) -> str:
        """The swept values as the set-part of the directory (``learning_rate=0.0001,
        batch_size=32``); empty without ``--set``."""
        return group_name(self.values)

    @property
    def name(self) -> str:
        """``GAME-<set-part>-seedS``: the run in messages, the table and its log's name."""
        parts = (self.game.replace("/", "_"), self.group, f"seed{self.seed}")
        return "-".join(part for part in parts if part)


def group_name(values: Sequence[tuple[str, Any]]) -> str:
    """``name=value,name=value``: a group of swept values as a directory and a label."""
    return ",".join(f"{name}={shown_value(value)}" for name, value in values)


def make_grid(
    games: Sequence[str], seeds: Sequence[int], settings: Sequence[Setting], output_dir: Path
) -> list[SweepRun]:
    """Every run of the sweep: games, then each combination of the swept values (the first
    ``--set`` varying slowest), then seeds."""
    combos = itertools.product(*[[(s.name, v) for v in s.values] for s in settings])
    groups = [tuple(combo) for combo in combos]
    runs = []
    for game in games:
        for values in groups:
            folder = output_dir / game.replace("/", "_")
            if values:
                folder = folder / group_name(values)
            runs += [SweepRun(game, values, seed, folder / f"seed{seed}") for seed in seeds]
    return runs


# -- what each run does -------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """What every run of a sweep shares: the preset, the flags after ``--``, the resources of one
    run, the retries of a failed one, and tracking (``track``: every run in the wandb group
    ``name``, the sweep's name)."""

    preset: str
    name: str
    extra: tuple[str, ...] = ()
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    retries: int = 1
    track: bool = False

    @property
    def threads(self) -> int:
        """Torch (and OpenMP) threads of one run: its whole CPUs, at least one."""
        return max(1, int(self.cpus_per_run))

    def train_args(self, run: SweepRun) -> list[str]:
        """The ``scripts.train`` flags that start ``run`` as a new run: the sweep's own (the
        run's game, seed and directory; its threads; with ``track`` the wandb group and name),
        then the swept values, then the flags after ``--``."""
        args = ["--preset", self.preset, "--env", run.game, "--seed", str(run.seed),
                "--output-dir", str(run.path), "--no-progress",
                "--torch-threads", str(self.threads)]  # fmt: skip
        if self.track:
            args += ["--track", "--wandb-group", self.name, "--exp-name", run.name]
        for name, value in run.values:
            args += value_flags(name, value)
        return args + list(self.extra)

    def command(self, run: SweepRun, state: str) -> list[str]:
        """The process that takes ``run`` on from ``state``: ``scripts.train`` for a new run,
        ``scripts.train --resume`` for an interrupted one, ``scripts.evaluate`` (as
        ``scripts.atari100k`` calls it) for a trained one without its final evaluation."""
        if state == "trained":
            return evaluate_command(run)  # type: ignore[arg-type] - it reads .path and .seed
        train = [sys.executable, "-m", "scripts.train"]
        if state == "interrupted":
            resume = ["--resume", str(run.path), "--no-progress", "--torch-threads"]
            return train + resume + [str(self.threads), *self.extra]
        return train + self.train_args(run)


def check_extra(extra: Sequence[str], settings: Sequence[Setting]) -> None:
    """Refuse flags after ``--`` that the sweep sets itself, or that would override a swept
    setting (the later flag would win over the ``--set`` value)."""
    swept = {}
    for setting in settings:
        flag = "--" + setting.name.replace("_", "-")
        swept[flag] = swept["--no-" + flag[2:]] = setting.name
    for arg in extra:
        if not arg.startswith("--"):
            continue
        flag = arg.split("=", 1)[0].replace("_", "-")
        if flag in REFUSED_EXTRA:
            raise ValueError(f"flags after --: {flag} is not accepted; {REFUSED_EXTRA[flag]}")
        if flag in swept:
            raise ValueError(
                f"flags after --: {flag} is not accepted; --set {swept[flag]} sweeps it"
            )


def check_cells(runs: Sequence[SweepRun], plan: Plan, machine: bool = True) -> None:
    """Every run's config exactly as its ``scripts.train`` call would build it (the preset,
    ``.replace`` with the run's game, seed and swept values, then the flags after ``--``),
    checked by ``agents.dqn.validation.validate``; the first bad cell stops the sweep in one
    line naming the run, before any run starts. ``machine``: also check what this machine must
    have (devices, memory); off when the runs go to a cluster, whose nodes check their own.
    A run must end with a final evaluation: the table is made of them."""
    from agents.dqn.validation import validate
    from scripts.train import parse

    for run in runs:
        try:
            config = parse(plan.train_args(run)).config
            validate(config, machine=machine)
        except ValueError as error:
            raise ValueError(f"{run.name}: {one_line(error)}") from None
        cuda = [n for n in ("device", "replay_device") if getattr(config, n).startswith("cuda")]
        if cuda and plan.gpus_per_run == 0:
            given = f"--{cuda[0].replace('_', '-')} {getattr(config, cuda[0])}"
            raise ValueError(
                f"{run.name}: {given} needs a GPU, but --gpus-per-run 0 gives the runs none; "
                "use --gpus-per-run 1 (or a fraction: 0.25 shares one GPU by four runs)"
            )
        if config.final_eval_episodes < 1:
            raise ValueError(
                f"{run.name}: --final-eval-episodes {config.final_eval_episodes} is not "
                "accepted in a sweep; its table is each run's final evaluation, so use 1 or more"
            )


def result_of(path: Path) -> dict[str, Any] | None:
    """The final evaluation of the run in ``path`` (``scripts.atari100k.final_result``), also
    for a run that ended early by reaching ``--stop-at-return`` (a summary with
    ``solved_at_step``); None before it has one."""
    result = final_result(path)
    if result is not None:
        return result
    summary = read_json(path / "summary.json")
    if (
        summary is not None
        and summary.get("solved_at_step") is not None
        and "eval_mean_return" in summary
        and "stopped_by" not in summary
    ):
        return {
            "mean_return": float(summary["eval_mean_return"]),
            "episodes": summary.get("eval_episodes"),
            "epsilon": summary.get("eval_epsilon"),
            "protocol": summary.get("protocol"),
            "preset": summary.get("preset"),
            "global_step": summary.get("global_step"),
            "sps": summary.get("sps"),
            "source": "train (stopped at --stop-at-return)",
        }
    return None


def state_of(path: Path) -> str:
    """``scripts.atari100k.run_state`` ('finished', 'trained', 'interrupted', 'new'), with a run
    solved early (``result_of``) finished too."""
    return "finished" if result_of(path) is not None else run_state(path)


def needs_set_aside(path: Path) -> bool:
    """A new run whose directory holds something (a run that left no checkpoint)."""
    return path.is_dir() and any(path.iterdir())


def move_aside(path: Path) -> Path:
    """``scripts.atari100k.set_aside``, once more a second later if a copy set aside in the same
    second already has the name (its name is the time to the second)."""
    for _ in range(3):
        try:
            return set_aside(path)
        except OSError:
            if not path.exists():
                raise
            time.sleep(1.0)
    return set_aside(path)


# -- the Ray task -------------------------------------------------------------------------------
def package_root() -> Path:
    """The folder holding the ``agents`` and ``scripts`` packages on this node."""
    return Path(__file__).resolve().parents[2]


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
    sends a second SIGTERM (``scripts.train`` then stops at once)."""
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
        self.stop_signal = signum
        self.signals += 1  # the loop cancels the tasks (no Ray call inside a signal handler)

    def run(self) -> dict[str, Outcome]:
        """Run every run that has not finished; returns each run's ``Outcome``."""
        ray = import_ray()
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
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


# -- the report ---------------------------------------------------------------------------------
def _hns(game: str, score: float) -> float | None:
    """Human-normalized score of an Atari game (``envs.scores``), None for any other env."""
    from envs.scores import has_scores, human_normalized

    return human_normalized(game, score) if has_scores(game) else None


def planned_config(run: SweepRun, plan: Plan) -> Any:
    """The ``TrainConfig`` that ``run``'s ``scripts.train`` call builds (preset, swept values,
    flags after ``--``), or None when its flags do not make one."""
    from scripts.train import parse

    try:
        return parse(plan.train_args(run)).config
    except ValueError:
        return None


def atari100k_sections(
    runs: Sequence[SweepRun], plan: Plan, reps: int = 2000, suite: str | None = None
) -> list[dict[str, Any]]:
    """The Atari 100k table of each group of swept values, as ``scripts.atari100k.build_report``
    makes it (per game the published columns beside our mean return and HNS; our mean, median
    and IQM with stratified-bootstrap intervals beside the published aggregates over the same
    games), when every game of the sweep is an Atari-100k game and the group's runs use the
    atari100k protocol, or for every group with ``suite='atari100k'``. Each section also holds
    the group, its values, and the protocol and agent steps of its runs (``ours_protocol``,
    ``ours_total_steps``; None when the flags make no config) so that the markdown says when
    they are not the benchmark's. Empty for any other sweep."""
    from envs.atari100k import game_name
    from scripts.atari100k import Run
    from scripts.atari100k import build_report as table_report

    games = list(dict.fromkeys(run.game for run in runs))
    try:
        names = {game: game_name(game) for game in games}
    except ValueError:  # a game outside the benchmark: no published column to put beside it
        return []
    sections = []
    for group in dict.fromkeys(run.group for run in runs):
        members = [run for run in runs if run.group == group]
        config = planned_config(members[0], plan)
        protocol = None if config is None else config.protocol
        if protocol != "atari100k" and suite != "atari100k":
            continue
        label = plan.preset + (f", {group}" if group else "")
        ours = [Run(names[run.game], run.seed, run.path) for run in members]
        table = table_report([names[game] for game in games], ours, label, reps)
        sections.append(
            {
                **table,
                "preset": plan.preset,
                "label": label,
                "group": group,
                "values": {name: shown_value(value) for name, value in members[0].values},
                "ours_protocol": protocol,
                "ours_total_steps": None if config is None else config.total_steps,
            }
        )
    return sections


def _protocol_note(section: dict[str, Any]) -> str | None:
    """A line saying how the group's runs differ from the benchmark's protocol, if they do."""
    protocol, steps = section["ours_protocol"], section["ours_total_steps"]
    if protocol == "atari100k" and steps == ATARI_100K_STEPS:
        return None
    ours = (
        "the flags of these runs make no config (see python -m scripts.sweep without --report)"
        if protocol is None
        else f"these runs use the {protocol} protocol and {steps:,} agent steps"
    )
    return (
        f"**Not the benchmark's protocol:** {ours}; the published columns use the atari100k "
        f"protocol and {ATARI_100K_STEPS:,} agent steps, so they are not like for like."
    )


def render_atari100k(section: dict[str, Any]) -> str:
    """One group's Atari 100k table: ``scripts.atari100k.render_markdown`` under a second-level
    heading naming the preset and the group's values, with ``_protocol_note`` below it."""
    from scripts.atari100k import render_markdown as render_table

    lines = render_table({**section, "preset": section["label"]}).splitlines()
    lines[0] = "#" + lines[0]
    note = _protocol_note(section)
    if note:
        lines[1:1] = ["", note]
    return "\n".join(lines) + "\n"


def build_report(
    runs: Sequence[SweepRun],
    plan: Plan,
    outcomes: dict[str, Outcome] | None = None,
    reps: int = 2000,
    suite: str | None = None,
    failures: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The sweep's table as plain data (``report.json``): one cell per game and group of swept
    values, with the mean final return over its finished seeds, the mean human-normalized score
    (Atari games), each run's result and state, and the failed runs: failed in this invocation
    (``outcomes``, with the attempts it made) or given up in an earlier one (``failures``, the
    entries of failures.json: a run not finished since is still failed, as after ``--report``);
    an unfinished run keeps its failed attempts (``failures``) too; per group the mean, median
    and IQM of the human-normalized scores over the games with stratified-bootstrap 95%
    intervals (``agents.evaluation.statistics``); and for an Atari 100k sweep the benchmark's
    table of each group (``atari100k_sections``; ``suite``: the ``--suite`` given, if any)."""
    from agents.evaluation.statistics import bootstrap_intervals
    from envs.scores import HUMAN_SCORE_SET

    outcomes, failures = outcomes or {}, failures or {}
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        cell = cells.setdefault(
            (run.game, run.group),
            {
                "game": run.game,
                "group": run.group,
                "values": {name: shown_value(value) for name, value in run.values},
                "runs": [],
            },
        )
        result = result_of(run.path)
        outcome = outcomes.get(run.name)
        failure = failures.get(run.name) if result is None else None
        status = "finished" if result is not None else state_of(run.path)
        if (outcome is not None and outcome.status == "failed") or (failure or {}).get("failed"):
            status = "failed"
        entry: dict[str, Any] = {
            "name": run.name,
            "seed": run.seed,
            "path": str(run.path),
            "status": status,
        }
        if outcome is not None and outcome.attempts:
            entry["attempts"] = [a.as_dict() for a in outcome.attempts]
        if failure is not None:
            entry["failures"] = failure["attempts"]
        if result is not None:
            entry.update(
                mean_return=result["mean_return"],
                episodes=result.get("episodes"),
                global_step=result.get("global_step"),
                hns=_hns(run.game, result["mean_return"]),
            )
        cell["runs"].append(entry)
    rows = []
    for cell in cells.values():
        done = [r for r in cell["runs"] if "mean_return" in r]
        cell["seeds"] = [r["seed"] for r in done]
        cell["mean_return"] = float(np.mean([r["mean_return"] for r in done])) if done else None
        hns = [r["hns"] for r in done if r["hns"] is not None]
        cell["hns"] = float(np.mean(hns)) if hns else None
        cell["failed"] = [r["name"] for r in cell["runs"] if r["status"] == "failed"]
        cell["unfinished"] = [
            r["name"] for r in cell["runs"] if r["status"] not in ("finished", "failed")
        ]
        rows.append(cell)
    groups = []
    for group in dict.fromkeys(row["group"] for row in rows):
        scores = {
            row["game"]: [r["hns"] for r in row["runs"] if r.get("hns") is not None]
            for row in rows
            if row["group"] == group
        }
        scores = {game: values for game, values in scores.items() if values}
        entry = {
            "group": group,
            "games": list(scores),
            "runs": sum(len(v) for v in scores.values()),
            "aggregates": None,
        }
        if scores:
            intervals = bootstrap_intervals(scores, AGGREGATE_NAMES, reps=reps, seed=0)
            entry["aggregates"] = {name: iv.as_dict() for name, iv in intervals.items()}
        groups.append(entry)
    failed = [r for row in rows for r in row["runs"] if r["status"] == "failed"]
    return {
        "sweep": plan.name,
        "preset": plan.preset,
        "extra": list(plan.extra),
        "human_score_set": HUMAN_SCORE_SET,
        "bootstrap_reps": reps,
        "rows": rows,
        "groups": groups,
        "failed": failed,
        "atari100k": atari100k_sections(runs, plan, reps, suite),
    }


def _num(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _exit_codes(run: dict[str, Any]) -> list[str]:
    """The exit codes of a run's failed attempts, over every invocation when failures.json has
    them ('lost': Ray lost the task)."""
    attempts = run.get("failures") or run.get("attempts") or []
    return ["lost" if a["exit_code"] is None else str(a["exit_code"]) for a in attempts]


def _runs_text(names: Sequence[str], runs: Sequence[dict[str, Any]], what: str) -> str:
    """The failed or unfinished runs of a cell: ``seed1 (exit codes 1, 1)``, ``seed2
    (interrupted)``, ``seed3 (new, 1 failed attempt)``."""
    by_name = {r["name"]: r for r in runs}
    parts = []
    for name in names:
        run = by_name[name]
        if what == "failed":
            codes = _exit_codes(run)
            detail = f"exit codes {', '.join(codes)}" if codes else "failed"
        else:
            detail = run["status"]
            if run.get("failures"):
                count = len(run["failures"])
                detail += f", {count} failed attempt{'s' if count != 1 else ''}"
        parts.append(f"seed{run['seed']} ({detail})")
    return "; ".join(parts) or "—"


def _failed_lines(failed: Sequence[dict[str, Any]]) -> list[str]:
    """One line per failed run under the table: its attempts, exit codes and the last line of
    its log."""
    lines = ["", "Failed runs (after their retries; each attempt in `logs/NAME.log`):", ""]
    for run in failed:
        codes = _exit_codes(run)
        attempts = run.get("failures") or run.get("attempts") or []
        text = f"- `{run['name']}`: {len(codes)} attempt{'s' if len(codes) != 1 else ''}"
        if codes:
            text += f", exit code{'s' if len(codes) != 1 else ''} {', '.join(codes)}"
        last = attempts[-1] if attempts else {}
        if last.get("error"):
            text += f"; Ray: {last['error']}"
        if last.get("last_line"):
            text += "; the last line of its log: `" + last["last_line"].replace("`", "'") + "`"
        lines.append(text)
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """``report.md``: for an Atari 100k sweep first the benchmark's table of each group
    (``render_atari100k``) and a heading over the rest; then the table of cells (every run's
    state: the failed and unfinished ones by seed), then the human-normalized aggregates of the
    groups without an Atari 100k table (those have theirs beside the published ones)."""
    sections = report.get("atari100k") or []
    lines = [f"# Sweep `{report['sweep']}`: preset `{report['preset']}`", ""]
    for section in sections:
        lines += [render_atari100k(section).rstrip("\n"), ""]
    if sections:
        lines += ["## Every run", ""]
    lines += [
        "Final evaluation return, mean over the finished seeds of each cell; HNS: human-normalized"
        f" score ((return - random) / (human - random), the {report['human_score_set']} random "
        "and human scores) for Atari games, mean over seeds."
        + (f" Flags of every run: `{' '.join(report['extra'])}`." if report["extra"] else ""),
        "",
        "| game | settings | seeds | mean return | HNS | failed | unfinished |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        seeds = f"{len(row['seeds'])} of {len(row['runs'])}"
        if row["seeds"]:
            seeds += f" ({', '.join(map(str, row['seeds']))})"
        cells = [
            row["game"],
            row["group"] or "—",
            seeds,
            _num(row["mean_return"]),
            _num(row["hns"], 3),
            _runs_text(row["failed"], row["runs"], "failed"),
            _runs_text(row["unfinished"], row["runs"], "unfinished"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    tabled = {section["group"] for section in sections}
    scored = [g for g in report["groups"] if g["aggregates"] and g["group"] not in tabled]
    if scored:
        lines += [
            "",
            "Human-normalized aggregates per group over its Atari games (stratified-"
            f"bootstrap 95% intervals, {report['bootstrap_reps']} resamples; a game with one "
            "seed has nothing to resample, so one seed per game gives the point):",
            "",
            "| settings | games | runs | mean | median | IQM |",
            "|---|---|---|---|---|---|",
        ]
        for group in scored:
            agg = group["aggregates"]
            cells = [
                f"{agg[n]['point']:.3f} [{agg[n]['low']:.3f}, {agg[n]['high']:.3f}]"
                for n in AGGREGATE_NAMES
            ]
            lines.append(
                f"| {group['group'] or '—'} | {len(group['games'])} | {group['runs']} | "
                + " | ".join(cells)
                + " |"
            )
    if report["failed"]:
        lines += _failed_lines(report["failed"])
    return "\n".join(lines) + "\n"


def draw_curves(runs: Sequence[SweepRun], path: Path, preset: str, window: int = 20) -> int:
    """``curves.png``: one panel per game, one colour per group of swept values: the training
    episode return (``charts/episodic_return`` of each run's ``metrics.csv``, a trailing mean of
    ``window`` episodes) averaged over the seeds where they all ran (``scripts.plot``'s
    ``learning_curve``; a lone seed drawn as it is), and the evaluations (``eval/mean_return``)
    as dots, the mean over the seeds that evaluated at that step. Returns the number of runs
    drawn; nothing is written when no run has logged a return."""
    from scripts.plot import label_colors, learning_curve, load_run, run_curve

    loaded: dict[str, dict[str, list[dict[str, Any]]]] = {}
    drawn = 0
    for run in runs:
        try:
            data = load_run(run.path)
        except ValueError:  # no metrics.csv yet, or nothing to draw in it
            continue
        loaded.setdefault(run.game, {}).setdefault(run.group or preset, []).append(data)
        drawn += 1
    if not drawn:
        return 0
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = label_colors([g for groups in loaded.values() for g in groups])
    cols = min(3, len(loaded))
    rows = -(-len(loaded) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.0 * rows), squeeze=False)
    for ax in axes.flat[len(loaded) :]:
        ax.axis("off")
    for ax, (game, groups) in zip(axes.flat, loaded.items()):
        for label, members in groups.items():
            color = colors[label]
            text = f"{label} ({len(members)} seed{'s' if len(members) != 1 else ''})"
            mean = learning_curve(members, window) if len(members) > 1 else None
            if mean is not None:
                ax.plot(mean[0], mean[1], color=color, lw=1.8, label=text)
            else:  # one seed, or seeds whose curves do not overlap: each as it is
                for k, member in enumerate(members):
                    curve = run_curve(member, window, 1)
                    ax.plot(curve.x, curve.y, color=color, lw=1.2, label=text if k == 0 else None)
            evals: dict[int, list[float]] = {}
            for member in members:
                for step, value in member["series"].get("eval/mean_return", []):
                    evals.setdefault(step, []).append(value)
            if evals:
                steps = sorted(evals)
                ax.plot(steps, [np.mean(evals[s]) for s in steps], "o", ms=4, color=color)
        ax.set_title(game)
        ax.set_xlabel("agent steps")
        ax.set_ylabel(
            f"episode return (line: training, mean of {window}; dots: evaluation)", fontsize=7
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    from agents.run.checkpoint import atomic_write

    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return drawn


def write_report(
    output_dir: Path,
    runs: Sequence[SweepRun],
    plan: Plan,
    outcomes: dict[str, Outcome] | None = None,
    reps: int = 2000,
    suite: str | None = None,
) -> tuple[str, dict[str, Any], bool]:
    """Write ``report.json``, ``report.md`` and ``curves.png`` in ``output_dir``, each
    atomically, with the failures recorded in ``output_dir``'s failures.json. Returns the
    markdown, the report and whether the figure was drawn."""
    import json

    from agents.run.checkpoint import atomic_write

    report = build_report(runs, plan, outcomes, reps, suite, read_failures(output_dir))
    text = render_markdown(report)
    data = json.dumps(report, indent=2) + "\n"
    atomic_write(output_dir / "report.json", lambda f: f.write(data.encode()))
    atomic_write(output_dir / "report.md", lambda f: f.write(text.encode()))
    drawn = draw_curves(runs, output_dir / "curves.png", plan.preset) > 0
    return text, report, drawn
