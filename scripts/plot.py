"""Learning curves and human-normalized score bars: ``python -m scripts.plot RUN_DIR... --output-dir
DIR [--x steps|frames]``.

Learning curves (``learning_curves.png/.svg``): one panel per game (any spelling of the env id
counts as the same game); within a panel, runs of the same preset are seeds of one curve. Each
run's ``charts/episodic_return`` (raw game score, from ``metrics.csv``) is smoothed by a trailing
moving average, interpolated onto a common grid, and the seeds are drawn as their mean with a 95%
confidence band of mean +- 1.96 standard errors across seeds (standard error = sample standard
deviation with ddof 1 over sqrt(seeds)); one seed draws no band. Evaluations
(``eval/mean_return``) are drawn as markers. The x axis is agent steps, or emulator frames with
``--x frames`` (agent steps x frame skip: 4 for Atari games, 1 for other envs such as CartPole).

Human-normalized bars (``human_normalized.png/.svg``): per game and preset, the mean over seeds of
``eval_human_normalized`` from each run's ``summary.json`` (or the score computed from its
``eval_mean_return``), with a 95% stratified-bootstrap interval over seeds as error bars; with at
least 2 games, an aggregate group (mean, median, IQM with their stratified-bootstrap intervals,
Agarwal et al. 2021, ``agents.statistics``). Skipped with a one-line note when no run has a
human-normalized score (e.g. CartPole); runs of such envs are left out of the bars.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents import checks
from agents.statistics import bootstrap_ci, bootstrap_intervals
from envs.scores import compact_game_name, normalize_game_name
from scripts._cli import cli_main
from scripts.aggregate import normalized_score, score_input

PROG = "plot"
X_UNITS = ("steps", "frames")
ATARI_FRAME_SKIP = 4
"""Emulator frames per agent step in both protocols (Mnih et al. 2015; Machado et al. 2018)."""
BAND_Z = 1.96
"""Normal quantile of a two-sided 95% interval."""
AGGREGATE_BARS = ("mean", "median", "iqm")


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (shorter window at the start)."""
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (cumsum[idx] - cumsum[lo]) / (idx - lo)


def frame_skip(env: str) -> int:
    """Emulator frames per agent step: 4 for an Atari game, 1 for any other env."""
    from envs.atari import is_atari_game

    return ATARI_FRAME_SKIP if is_atari_game(env) else 1


def seed_mean_band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``curves[seed, point]`` -> (mean over seeds, half-width 1.96 * std(ddof=1) / sqrt(seeds));
    the half-width is None for a single seed."""
    curves = np.asarray(curves, dtype=np.float64)
    if curves.ndim != 2 or curves.shape[0] == 0:
        raise ValueError(f"curves: expected a [seed, point] array, got shape {curves.shape}")
    mean = curves.mean(axis=0)
    seeds = curves.shape[0]
    if seeds == 1:
        return mean, None
    return mean, BAND_Z * curves.std(axis=0, ddof=1) / np.sqrt(seeds)


DRAWN = ("charts/episodic_return", "eval/mean_return")


def load_run(run_dir: Path) -> dict[str, Any]:
    """A run directory's metrics series, config fields and summary (empty when absent), each
    file checked (``agents.checks``): metrics.csv row by row, config.json and summary.json field by
    field, no NaN anywhere; a run with nothing to draw (no episode ended, no evaluation) is
    refused. Every refusal is one line naming the file."""
    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.csv"
    if not metrics.is_file():
        raise ValueError(
            f"{run_dir}: no metrics.csv; give run directories written by scripts.train"
        )
    config_path = run_dir / "config.json"
    config = {}
    if config_path.exists():
        config = checks.read_json_object(config_path, "config")
        checks.check_config_dict(config, f"config {config_path}")
    summary_path = run_dir / "summary.json"
    summary = {}
    if summary_path.exists():
        summary = checks.read_json_object(summary_path, "summary")
        checks.check_summary(summary, summary_path)
    series = checks.read_metrics_checked(metrics)
    if not any(series.get(name) for name in DRAWN):
        raise ValueError(
            f"metrics {metrics} holds no {' and no '.join(DRAWN)} yet (no episode ended, no "
            "evaluation): nothing to draw for this run; give runs that have logged one"
        )
    env = str(config.get("env", summary.get("env", run_dir.name)))
    preset = str(config.get("preset", summary.get("preset", "run")))
    return {"dir": run_dir, "series": series, "env": env, "preset": preset,
            "summary": summary}  # fmt: skip


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


def group_runs(runs: Sequence[dict]) -> dict[str, dict[str, list[dict]]]:
    """{game key: {preset: [runs]}} in first-seen order; a game key joins spellings of a game."""
    groups: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        groups[compact_game_name(run["env"])][run["preset"]].append(run)
    return groups


def learning_curve(
    runs: Sequence[dict], window: int = 20, x_scale: int = 1, points: int = 200
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """Seeds of one curve -> (x grid, mean, half-width or None); None when no run has episodes.

    x is in agent steps times ``x_scale`` (the frame skip for frames)."""
    curves = [np.asarray(r["series"].get("charts/episodic_return", []), np.float64) for r in runs]
    curves = [c for c in curves if len(c) > 0]
    if not curves:
        return None
    grid = np.linspace(min(c[0, 0] for c in curves), min(c[-1, 0] for c in curves), points)
    ys = np.stack([np.interp(grid, c[:, 0], smooth(c[:, 1], window)) for c in curves])
    mean, half = seed_mean_band(ys)
    return grid * x_scale, mean, half


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, output_dir: Path, stem: str) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` (SVG text kept as text, so it stays searchable)."""
    import matplotlib

    output_dir.mkdir(parents=True, exist_ok=True)
    paths = [output_dir / f"{stem}.png", output_dir / f"{stem}.svg"]
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        for path in paths:
            fig.savefig(path, dpi=120)
    return paths


def _draw_curves(ax, groups: dict[str, list[dict]], window: int, scale: int) -> None:
    for preset, group in groups.items():
        curve = learning_curve(group, window, scale)
        color = None
        if curve is not None:
            x, mean, half = curve
            (line,) = ax.plot(x, mean, label=f"{preset} ({len(group)} seed(s))")
            color = line.get_color()
            if half is not None:
                ax.fill_between(x, mean - half, mean + half, alpha=0.2, color=color)
        for run in group:
            ev = np.asarray(run["series"].get("eval/mean_return", []), dtype=np.float64)
            if len(ev):
                ax.plot(ev[:, 0] * scale, ev[:, 1], "o", ms=4, color=color, alpha=0.8)


def plot_learning_curves(
    run_dirs: Sequence[Path], output_dir: Path, window: int = 20, x_unit: str = "steps"
) -> list[Path]:
    """Draw one panel per game and write PNG and SVG; returns the written paths."""
    return draw_learning_curves([load_run(Path(d)) for d in run_dirs], output_dir, window, x_unit)


def draw_learning_curves(
    runs: Sequence[dict], output_dir: Path, window: int = 20, x_unit: str = "steps"
) -> list[Path]:
    """``plot_learning_curves`` for runs already loaded with ``load_run``."""
    if x_unit not in X_UNITS:
        raise ValueError(f"x unit {x_unit!r} is not accepted; use one of {', '.join(X_UNITS)}")
    checks.check_number("--window", window, checks.POSITIVE_INT)
    if not runs:
        raise ValueError("no runs to draw; give run directories written by scripts.train")
    panels = group_runs(runs)
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, groups in zip(axes[0], panels.values()):
        env = next(iter(groups.values()))[0]["env"]
        scale = frame_skip(env) if x_unit == "frames" else 1
        _draw_curves(ax, groups, window, scale)
        ax.set_title(env)
        ax.set_xlabel("agent steps" if x_unit == "steps" else f"emulator frames (skip {scale})")
        ax.set_ylabel("episodic return (raw score)")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    paths = _save(fig, Path(output_dir), "learning_curves")
    plt.close(fig)
    return paths


def human_normalized_table(
    runs: Sequence[dict], reps: int = 2000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """{preset: {"games": {game: Interval over seeds}, "aggregates": {name: Interval}}} from the
    runs' summaries; aggregates only for presets with >= 2 games; runs without a score skipped."""
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        score = normalized_score(run["summary"]) if "env" in run["summary"] else None
        if score is not None:
            scores[run["preset"]][normalize_game_name(run["env"])].append(score)
    table: dict[str, dict[str, Any]] = {}
    for preset, by_game in scores.items():
        games = {
            g: bootstrap_ci(np.asarray(v)[:, None], "mean", reps, seed) for g, v in by_game.items()
        }
        aggregates = {}
        if len(by_game) >= 2:
            aggregates = bootstrap_intervals(score_input(by_game), AGGREGATE_BARS, reps, seed)
        table[preset] = {"games": games, "aggregates": aggregates}
    return table


def _bars(ax, labels: list[str], table: dict[str, dict], key: str) -> None:
    width = 0.8 / len(table)
    for k, (preset, entry) in enumerate(table.items()):
        xs, points, errors = [], [], [[], []]
        for i, label in enumerate(labels):
            if label in entry[key]:
                iv = entry[key][label]
                xs.append(i + (k - (len(table) - 1) / 2) * width)
                points.append(iv.point)
                errors[0].append(iv.point - iv.low)
                errors[1].append(iv.high - iv.point)
        ax.bar(xs, points, width, yerr=errors, capsize=3, label=preset, color=f"C{k}")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.axhline(1.0, color="gray", lw=0.8, ls="--")
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_ylabel("human-normalized score")
    ax.grid(alpha=0.3, axis="y")


def plot_human_normalized(
    run_dirs: Sequence[Path], output_dir: Path, reps: int = 2000, seed: int = 0
) -> list[Path]:
    """Bars per game (and aggregates with >= 2 games) with 95% bootstrap intervals; returns the
    written paths, or [] after a one-line note when no run has a human-normalized score."""
    return draw_human_normalized([load_run(Path(d)) for d in run_dirs], output_dir, reps, seed)


def draw_human_normalized(
    runs: Sequence[dict], output_dir: Path, reps: int = 2000, seed: int = 0
) -> list[Path]:
    """``plot_human_normalized`` for runs already loaded with ``load_run``."""
    table = human_normalized_table(runs, reps, seed)
    if not table:
        print("note: no run has a human-normalized score (e.g. CartPole); no bar chart written")
        return []
    games = sorted({g for entry in table.values() for g in entry["games"]})
    with_aggregates = len(games) >= 2
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, 2 if with_aggregates else 1, squeeze=False,
        figsize=(2.0 + 1.2 * len(games) + (4.0 if with_aggregates else 0.0), 4.5),
        gridspec_kw={"width_ratios": [max(len(games), 1), 3] if with_aggregates else [1]},
    )  # fmt: skip
    _bars(axes[0][0], games, table, "games")
    axes[0][0].set_title("per game: mean over seeds, 95% CI")
    if with_aggregates:
        _bars(axes[0][1], list(AGGREGATE_BARS), table, "aggregates")
        axes[0][1].set_title("aggregate over games, 95% CI")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    paths = _save(fig, Path(output_dir), "human_normalized")
    plt.close(fig)
    return paths


@cli_main(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    p = checks.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run directories (with metrics.csv)")
    p.add_argument("--output-dir", type=checks.path_arg, default=Path("runs/plots"))
    p.add_argument("--x", choices=X_UNITS, default="steps", help="x axis: agent steps or frames")
    p.add_argument("--window", type=int, default=20, help="episodes in the moving average")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples for the bars")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = p.parse_args(argv)
    checks.check_number("--window", args.window, checks.POSITIVE_INT)
    checks.check_number("--reps", args.reps, checks.BOOTSTRAP_REPS)
    checks.check_number("--seed", args.seed, checks.SEED)
    checks.check_writable_dir("--output-dir", args.output_dir)
    check_distinct(args.runs)
    runs = [load_run(run_dir) for run_dir in args.runs]  # bad input refused before drawing
    paths = draw_learning_curves(runs, args.output_dir, args.window, args.x)
    paths += draw_human_normalized(runs, args.output_dir, args.reps, args.seed)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
