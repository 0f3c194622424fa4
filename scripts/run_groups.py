"""The runs a figure or table compares: each run directory loaded and checked (``load_run``), and
the runs grouped into experiments (``group_labels``).

Groups: runs are grouped by what differs between their configs (each run's ``config.json``),
so runs that differ only in their seed are seeds of one group. A group's label names the
differing settings and their values (``preset=drq``; ``n_step=3, double_dqn=True``): the preset
when two runs differ in it, and any other setting that differs between two runs of the same game
and preset (a setting every run of a preset has from that preset goes without saying). Settings
that do not change what a run learns or how it is evaluated (``NOT_COMPARED``: the seed, the game,
where the run is written, how it is tracked, how fast and how long it runs, when it evaluates)
are not compared; a setting a run's ``config.json`` lacks (an older run) counts as
``TrainConfig``'s default. With nothing differing, the label is the preset. ``--label
RUN_DIR=NAME`` names a run's group by hand (repeatable; RUN_DIR may be a glob, ``'*'`` for every
run; a later ``--label`` wins; NAME may contain ``=``, the first ``=`` splits): runs given the same
NAME are seeds of one group.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agents.run import file_checks
from envs.scores import compact_game_name

DRAWN = ("charts/episodic_return", "eval/mean_return")
NOT_COMPARED = frozenset(
    {
        "env", "seed", "output_dir", "exp_name", "overwrite",  # which run, where it is written
        "total_steps", "stop_at_return",  # how long it runs: each curve shows it
        "device", "replay_device", "torch_threads", "compile", "cuda_graphs", "tf32",
        "async_envs",  # how fast it runs
        "progress", "track", "tensorboard", "wandb_mode", "wandb_project", "wandb_entity",
        "wandb_group", "wandb_tags", "wandb_init_timeout", "log_every_steps",  # how it is tracked
        "save_replay", "checkpoint_every_steps", "keep_checkpoints", "record_video",
        "eval_every_steps", "final_eval_episodes",  # what it writes and when it evaluates
    }
)  # fmt: skip
"""Config settings that do not make runs different experiments: never part of a group label."""


def load_run(run_dir: Path) -> dict[str, Any]:
    """A run directory's metrics series, config fields and summary (empty when absent), each
    file checked (``run.checks``): metrics.csv row by row, config.json and summary.json field by
    field, no NaN anywhere; a run with nothing to draw (no episode ended, no evaluation) is
    refused. Every refusal is one line naming the file. ``last_step``: the last step the run
    logged, any metric."""
    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.csv"
    if not metrics.is_file():
        raise ValueError(
            f"{run_dir}: no metrics.csv; give run directories written by scripts.train"
        )
    config_path = run_dir / "config.json"
    config = {}
    if config_path.exists():
        config = file_checks.read_json_object(config_path, "config")
        file_checks.check_config_dict(config, f"config {config_path}")
    summary_path = run_dir / "summary.json"
    summary = {}
    if summary_path.exists():
        summary = file_checks.read_json_object(summary_path, "summary")
        file_checks.check_summary(summary, summary_path)
    series = file_checks.read_metrics_checked(metrics)
    if not any(series.get(name) for name in DRAWN):
        raise ValueError(
            f"metrics {metrics} holds no {' and no '.join(DRAWN)} yet (no episode ended, no "
            "evaluation): nothing to draw for this run; give runs that have logged one"
        )
    env = str(config.get("env", summary.get("env", run_dir.name)))
    preset = str(config.get("preset", summary.get("preset", "run")))
    last_step = max(points[-1][0] for points in series.values() if points)
    return {"dir": run_dir, "series": series, "env": env, "preset": preset,
            "config": config, "summary": summary, "last_step": last_step}  # fmt: skip


def check_distinct(dirs: Sequence[Path], identity=lambda d: Path(d).resolve()) -> None:
    """Refuse the same run given twice (another spelling, a symlink): it would count as two
    seeds."""
    seen: dict[Path, Path] = {}
    for d in dirs:
        key = identity(d)
        if key in seen:
            raise ValueError(
                f"{d}: the same run as {seen[key]} ({key}), given twice; give each run once"
            )
        seen[key] = Path(d)


# --- groups ------------------------------------------------------------------------------------


def _config_defaults() -> dict[str, Any]:
    from agents.dqn.config import TrainConfig

    defaults = {}
    for field in dataclasses.fields(TrainConfig):
        if field.default is not dataclasses.MISSING:
            defaults[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            defaults[field.name] = field.default_factory()
    return defaults


def compared_settings(run: Mapping[str, Any]) -> dict[str, Any]:
    """The run's settings that make it a different experiment: its config.json's TrainConfig
    fields, a missing one at TrainConfig's default, less ``NOT_COMPARED``; the preset from the
    summary for a run without a config.json."""
    defaults = _config_defaults()
    config = {**defaults, **{k: v for k, v in run["config"].items() if k in defaults}}
    config["preset"] = run["preset"]
    return {k: v for k, v in config.items() if k not in NOT_COMPARED}


def same_value(value: Any) -> str:
    """A setting's value in a form equal for equal values (a tuple and its JSON list alike)."""
    return json.dumps(value, sort_keys=True)


def shown_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shown_value(v) for v in value) + "]"
    return str(value)


def _varies(settings: list[dict[str, Any]], key: str, within: list[Any]) -> bool:
    """Whether two runs of the same ``within`` value differ in ``key``."""
    values: dict[Any, set[str]] = defaultdict(set)
    for run_settings, where in zip(settings, within):
        values[where].add(same_value(run_settings[key]))
    return any(len(v) > 1 for v in values.values())


def config_labels(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each run's group label: the settings that differ between the runs, with this run's values
    (the preset if any two runs differ in it, then, in config order, each other setting that
    differs between two runs of one game and preset); the preset when none differs."""
    settings = [compared_settings(run) for run in runs]
    if not settings:
        return []
    games = [compact_game_name(run["env"]) for run in runs]
    shown = ["preset"] if _varies(settings, "preset", [0] * len(runs)) else []
    by_preset = [(g, s["preset"]) for g, s in zip(games, settings)]
    shown += [k for k in settings[0] if k != "preset" and _varies(settings, k, by_preset)]
    shown = shown or ["preset"]
    return [", ".join(f"{k}={shown_value(s[k])}" for k in shown) for s in settings]


def parse_label(text: str) -> tuple[str, str]:
    """``RUN_DIR=NAME`` -> (RUN_DIR pattern, NAME); the first ``=`` splits."""
    pattern, sep, name = text.partition("=")
    if not sep or not pattern.strip() or not name.strip():
        raise ValueError(
            f"--label: {text!r} is not accepted; use --label RUN_DIR=NAME (RUN_DIR as given, or "
            "a glob such as 'runs/pong-*', or '*' for every run; NAME not empty)"
        )
    return pattern.strip(), name.strip()


def _matches(pattern: str, run_dir: Path) -> bool:
    given = str(Path(run_dir))
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(given, str(Path(pattern)))
    return given == str(Path(pattern)) or Path(pattern).resolve() == Path(run_dir).resolve()


def group_labels(runs: Sequence[Mapping[str, Any]], label_args: Sequence[str] = ()) -> list[str]:
    """Each run's group label: ``config_labels``, then each ``--label RUN_DIR=NAME`` in order
    (a later one wins); a RUN_DIR that matches no run given is refused."""
    labels = config_labels(runs)
    for text in label_args:
        pattern, name = parse_label(text)
        hits = [i for i, run in enumerate(runs) if _matches(pattern, run["dir"])]
        if not hits:
            given = ", ".join(str(run["dir"]) for run in runs[:5])
            more = f" and {len(runs) - 5} more" if len(runs) > 5 else ""
            raise ValueError(
                f"--label: {pattern!r} matches none of the run directories given ({given}{more});"
                " use one of them or a glob matching some"
            )
        for i in hits:
            labels[i] = name
    return labels
