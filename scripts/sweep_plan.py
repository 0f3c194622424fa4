"""What a sweep runs: the grid of runs, each run's command, and the state of its directory
(``scripts.sweep_tasks`` runs them on Ray, ``scripts.sweep_report`` reports them,
``scripts/sweep.py`` is the command line).

- The grid (``Setting``, ``parse_settings``, ``make_grid``): each ``--set KEY=V1,V2`` sweeps one
  ``TrainConfig`` field; a cell is a game, one value of every swept field and a seed. A run's
  directory names its cell, ``OUTPUT_DIR/GAME/<set-part>/seedS``
  (``Pong/learning_rate=0.0001/seed1``; no set-part level without ``--set``), and holds a normal
  ``scripts.train`` run.
- Each run's command (``Plan``): ``scripts.train`` with the run's game, seed, directory, swept
  values and the flags after ``--`` for a new run, ``--resume`` for an interrupted one,
  ``scripts.evaluate`` for a trained one; ``check_extra`` and ``check_cells`` refuse a bad sweep
  in one line before any run starts.
- Run states (``state_of``, ``result_of``): those of the Atari 100k suite (``scripts.atari100k``:
  finished, trained, interrupted, new), so a sweep is resumable the same way: a finished run is
  skipped, an interrupted one resumed (``--resume``), a trained one gets its final evaluation from
  ``scripts.evaluate``, a directory without a checkpoint is set aside (``move_aside``) and the
  run starts again.

Nothing here imports Ray.
"""

from __future__ import annotations

import argparse
import difflib
import itertools
import sys
import time
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts._cli import one_line
from scripts.atari100k import evaluate_command, set_aside
from scripts.atari100k_report import final_result, read_json, run_state

STATES = ("new", "interrupted", "trained", "finished")
"""The states of a run's directory, in the order the counts show them."""

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
    A run must end with a final evaluation: the table is made of them. A cell whose directory
    holds a run started with other settings is refused (``started_otherwise``)."""
    from agents.dqn.validation import validate
    from agents.run.directory import started_otherwise
    from scripts.train import parse

    for run in runs:
        try:
            config = parse(plan.train_args(run)).config
        except ValueError as error:
            raise ValueError(f"{run.name}: {one_line(error)}") from None
        if config.num_actors > 0:
            raise ValueError(
                f"{run.name}: --num-actors {config.num_actors} is not accepted in a sweep: each "
                "run is one Ray task, and Ape-X actors are Ray actors of their own; train an "
                "Ape-X run with scripts.train --num-actors N (give the preset's --num-actors 0 "
                "for apex settings in a sweep)"
            )
        try:
            validate(config, machine=machine)
        except ValueError as error:
            raise ValueError(f"{run.name}: {one_line(error)}") from None
        difference = started_otherwise(run.path, config)
        if difference is not None:  # it would be skipped or resumed as this sweep's cell
            raise ValueError(
                f"{run.name}: {run.path} holds a run started with other settings than this "
                f"sweep gives it: {difference}; give the settings it was started with "
                "(--preset, --set, the flags after --) to continue or report it, or another "
                "--output-dir"
            )
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


# -- the state of a run's directory ------------------------------------------------------------
def result_of(path: Path) -> dict[str, Any] | None:
    """The final evaluation of the run in ``path`` (``scripts.atari100k_report.final_result``), also
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
    """``scripts.atari100k_report.run_state`` ('finished', 'trained', 'interrupted', 'new'), with
    a run solved early (``result_of``) finished too."""
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
