"""Learning curves and human-normalized score bars: ``python -m scripts.plot RUN_DIR... --output-dir
DIR [--x steps|frames] [--label RUN_DIR=NAME ...]``.

Groups: runs are grouped by what differs between their configs (``scripts.run_groups``), or
by ``--label RUN_DIR=NAME``; runs of one group are its seeds.

Learning curves (``learning_curves.png/.svg``): one panel per game (any spelling of the env id
counts as the same game), one colour per group. Each run's ``charts/episodic_return`` (the raw
score of each training episode, from ``metrics.csv``) is smoothed by a trailing moving average
and drawn to the run's own end: the whole line for a group of one run, a thin line per seed
otherwise. A group of several seeds also gets their mean, with a 95% confidence band of mean +-
1.96 standard errors across seeds (standard error = sample standard deviation with ddof 1 over
sqrt(seeds)), drawn only over the steps every seed covers (from the latest first episode to the
earliest last one, interpolated onto a common grid). The legend says how far the seeds ran
(``3 seeds to 100k, 2 to 150k``: the last step each run logged), so seeds that stop early show.
Evaluations (``eval/mean_return``) are drawn as dots. The y axis names what was measured (the
training episode return, the evaluation's epsilon, raw score, the protocol when the runs share
one); the x axis is agent steps, or emulator frames with ``--x frames`` (agent steps x frame skip:
4 for Atari games, 1 for other envs such as CartPole).

Human-normalized bars (``human_normalized.png/.svg``): per game and group, the mean over seeds of
``eval_human_normalized`` from each run's ``summary.json`` (or the score computed from its
``eval_mean_return``), with a 95% stratified-bootstrap interval over seeds as error bars; with at
least 2 games, an aggregate group (mean, median, IQM with their stratified-bootstrap intervals,
Agarwal et al. 2021, ``evaluation.statistics``). Skipped with a one-line note when no run has a
human-normalized score (e.g. CartPole); runs of such envs are left out of the bars.

Every title, label and legend stays inside the written figure (a tight layout, and the saved
area fitted to what is drawn).
"""

from __future__ import annotations

import dataclasses
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluation.statistics import bootstrap_ci, bootstrap_intervals
from agents.run import checks
from envs.scores import compact_game_name, normalize_game_name
from scripts._cli import ArgumentParser, cli_main
from scripts.aggregate import normalized_score, score_input
from scripts.run_groups import (
    check_distinct,
    group_labels,
    load_run,
    parse_label,
    same_value,
    shown_value,
)

PROG = "plot"
X_UNITS = ("steps", "frames")
ATARI_FRAME_SKIP = 4
"""Emulator frames per agent step in both protocols (Mnih et al. 2015; Machado et al. 2018)."""
BAND_Z = 1.96
"""Normal quantile of a two-sided 95% interval."""
AGGREGATE_BARS = ("mean", "median", "iqm")
SEEDS_NOTE = "thick: mean of the seeds with 95% CI, while all run; thin: each seed"


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


# --- learning curves ---------------------------------------------------------------------------


@dataclasses.dataclass
class RunCurve:
    """One run as drawn: its smoothed training returns at the steps its episodes ended (``x``,
    ``y``; empty without an ended episode), its evaluations (``eval_x``, ``eval_y``) and the last
    step it logged (``end``), all x in the panel's unit."""

    dir: Path
    x: np.ndarray
    y: np.ndarray
    eval_x: np.ndarray
    eval_y: np.ndarray
    end: float


@dataclasses.dataclass
class GroupCurves:
    """One group in one panel: its runs (seeds), the mean and 95% half-width over the steps all
    seeds' curves cover (None for one run, or when their curves do not overlap) and its
    colour."""

    label: str
    color: str
    runs: list[RunCurve]
    mean: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None

    def coverage(self) -> list[tuple[float, int]]:
        """[(end, seeds that ran at least that far)], ends ascending."""
        ends = sorted({run.end for run in self.runs})
        return [(end, sum(run.end >= end for run in self.runs)) for end in ends]

    def legend(self) -> str:
        """``label (3 seeds to 100k, 2 to 150k)``: how far its seeds ran (ends equal to 3
        significant digits are one)."""
        parts, shown = [], set()
        for end, count in self.coverage():
            text = format_step(end)
            if text in shown:
                continue
            shown.add(text)
            seeds = f" seed{'s' if count != 1 else ''}" if not parts else ""
            parts.append(f"{count}{seeds} to {text}")
        return f"{self.label} ({', '.join(parts)})"


@dataclasses.dataclass
class Panel:
    """One game: its title, axis labels and groups."""

    title: str
    xlabel: str
    ylabel: str
    groups: list[GroupCurves]


def format_step(value: float) -> str:
    """950 -> '950', 100000 -> '100k', 1500000 -> '1.5M' (3 significant digits)."""
    value = float(value)
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def label_colors(labels: Sequence[str]) -> dict[str, str]:
    """A colour per group label, in first-seen order (the same in both figures)."""
    return {label: f"C{i % 10}" for i, label in enumerate(dict.fromkeys(labels))}


def learning_curve(
    runs: Sequence[dict], window: int = 20, x_scale: int = 1, points: int = 200
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """Seeds of one group -> (x grid, mean, half-width or None) over the steps every seed's curve
    covers (the latest first episode to the earliest last one); None when a run has no ended
    episode or the curves do not overlap. x is in agent steps times ``x_scale`` (the frame skip
    for frames)."""
    curves = [np.asarray(r["series"].get("charts/episodic_return", []), np.float64) for r in runs]
    if not curves or any(len(c) == 0 for c in curves):
        return None
    start, stop = max(c[0, 0] for c in curves), min(c[-1, 0] for c in curves)
    if stop < start or (len(curves) > 1 and stop == start):
        return None
    grid = np.linspace(start, stop, points)
    ys = np.stack([np.interp(grid, c[:, 0], smooth(c[:, 1], window)) for c in curves])
    mean, half = seed_mean_band(ys)
    return grid * x_scale, mean, half


def run_curve(run: Mapping[str, Any], window: int, x_scale: int) -> RunCurve:
    """``run`` as drawn: every episode to its last, smoothed; x in agent steps x ``x_scale``."""
    episodes = np.asarray(run["series"].get("charts/episodic_return", []), np.float64)
    evals = np.asarray(run["series"].get("eval/mean_return", []), np.float64)
    episodes, evals = episodes.reshape(-1, 2), evals.reshape(-1, 2)
    y = smooth(episodes[:, 1], window) if len(episodes) else episodes[:, 1]
    return RunCurve(Path(run["dir"]), episodes[:, 0] * x_scale, y, evals[:, 0] * x_scale,
                    evals[:, 1], float(run["last_step"]) * x_scale)  # fmt: skip


def _common(runs: Sequence[Mapping[str, Any]], key: str) -> Any:
    """The setting all runs share (from their config.json), None when they differ or lack it."""
    values = {same_value(run["config"].get(key)) for run in runs}
    return runs[0]["config"].get(key) if len(values) == 1 else None


def y_label(runs: Sequence[Mapping[str, Any]], window: int) -> str:
    """What a panel's y axis measures: the training episode return (raw score for an Atari game,
    with the protocol when the runs share one) and, when they evaluated, the evaluations."""
    atari = all(frame_skip(run["env"]) == ATARI_FRAME_SKIP for run in runs)
    protocol = _common(runs, "protocol") if atari else None
    first = "episode return" + (", raw game score" if atari else "")
    if protocol:
        first += f" ({protocol} protocol)"
    second = f"line: training, mean of the last {window} episodes"
    if any(run["series"].get("eval/mean_return") for run in runs):
        epsilon = _common(runs, "eval_epsilon")
        shown = f" (ε {shown_value(epsilon)})" if epsilon is not None else ""
        second += "; dots: evaluation" + shown
    return f"{first}\n{second}"


def curve_panels(
    runs: Sequence[dict],
    window: int = 20,
    x_unit: str = "steps",
    labels: Sequence[str] | None = None,
    points: int = 200,
) -> list[Panel]:
    """The learning-curve figure as numbers: one ``Panel`` per game (first-seen order), each
    with its groups (runs of one label; first-seen order, a label's colour the same in every
    panel). ``labels``: each run's group label (default ``group_labels(runs)``)."""
    if x_unit not in X_UNITS:
        raise ValueError(f"x unit {x_unit!r} is not accepted; use one of {', '.join(X_UNITS)}")
    checks.check_number("--window", window, checks.POSITIVE_INT)
    if not runs:
        raise ValueError("no runs to draw; give run directories written by scripts.train")
    labels = list(group_labels(runs) if labels is None else labels)
    colors = label_colors(labels)
    games: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for run, label in zip(runs, labels):
        games[compact_game_name(run["env"])][label].append(run)
    panels = []
    for groups in games.values():
        members = [run for group in groups.values() for run in group]
        env = members[0]["env"]
        scale = frame_skip(env) if x_unit == "frames" else 1
        drawn = [
            GroupCurves(label, colors[label], [run_curve(r, window, scale) for r in group],
                        learning_curve(group, window, scale, points) if len(group) > 1 else None)
            for label, group in groups.items()
        ]  # fmt: skip
        xlabel = "agent steps" if x_unit == "steps" else f"emulator frames (skip {scale})"
        panels.append(Panel(env, xlabel, y_label(members, window), drawn))
    return panels


def _draw_panel(ax, panel: Panel) -> None:
    for group in panel.groups:
        one = len(group.runs) == 1
        for k, run in enumerate(group.runs):
            label = group.legend() if one or (group.mean is None and k == 0) else None
            if len(run.x):
                ax.plot(run.x, run.y, color=group.color, lw=1.6 if one else 0.8,
                        alpha=1.0 if one else 0.45, label=label)  # fmt: skip
            elif label is not None:
                ax.plot([], [], color=group.color, label=label)
            if len(run.eval_x):
                ax.plot(run.eval_x, run.eval_y, "o", ms=4, color=group.color, alpha=0.8)
        if group.mean is not None:
            x, mean, half = group.mean
            ax.plot(x, mean, color=group.color, lw=2.0, label=group.legend())
            if half is not None:
                ax.fill_between(x, mean - half, mean + half, alpha=0.2, color=group.color)
    ax.set_title(panel.title)
    ax.set_xlabel(panel.xlabel)
    ax.set_ylabel(panel.ylabel, fontsize=8)
    ax.grid(alpha=0.3)
    seeds = any(len(group.runs) > 1 for group in panel.groups)
    ax.legend(fontsize=7, title=SEEDS_NOTE if seeds else None, title_fontsize=7,
              loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)  # fmt: skip


def learning_curves_figure(panels: Sequence[Panel]):
    """The matplotlib figure of ``panels`` (laid out so every title and legend is inside it)."""
    plt = _pyplot()
    rows = max(len(panel.groups) for panel in panels)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(6.0 * len(panels), 4.6 + 0.18 * rows), squeeze=False
    )
    for ax, panel in zip(axes[0], panels):
        _draw_panel(ax, panel)
    fig.tight_layout()
    return fig


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, output_dir: Path, stem: str) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` (SVG text kept as text, so it stays searchable), the
    saved area fitted to everything drawn."""
    import matplotlib

    output_dir.mkdir(parents=True, exist_ok=True)
    paths = [output_dir / f"{stem}.png", output_dir / f"{stem}.svg"]
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        for path in paths:
            fig.savefig(path, dpi=120, bbox_inches="tight", pad_inches=0.1)
    return paths


def plot_learning_curves(
    run_dirs: Sequence[Path],
    output_dir: Path,
    window: int = 20,
    x_unit: str = "steps",
    label_args: Sequence[str] = (),
) -> list[Path]:
    """Draw one panel per game and write PNG and SVG; returns the written paths."""
    runs = [load_run(Path(d)) for d in run_dirs]
    labels = group_labels(runs, label_args)
    return draw_learning_curves(runs, output_dir, window, x_unit, labels)


def draw_learning_curves(
    runs: Sequence[dict],
    output_dir: Path,
    window: int = 20,
    x_unit: str = "steps",
    labels: Sequence[str] | None = None,
) -> list[Path]:
    """``plot_learning_curves`` for runs already loaded with ``load_run``."""
    panels = curve_panels(runs, window, x_unit, labels)
    fig = learning_curves_figure(panels)
    paths = _save(fig, Path(output_dir), "learning_curves")
    _pyplot().close(fig)
    return paths


# --- human-normalized bars ---------------------------------------------------------------------


def human_normalized_table(
    runs: Sequence[dict], reps: int = 2000, seed: int = 0, labels: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """{group label: {"games": {game: Interval over seeds}, "aggregates": {name: Interval}}} from
    the runs' summaries; aggregates only for groups with >= 2 games; runs without a score
    skipped. ``labels``: each run's group label (default ``group_labels(runs)``)."""
    labels = list(group_labels(runs) if labels is None else labels)
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run, label in zip(runs, labels):
        score = normalized_score(run["summary"]) if "env" in run["summary"] else None
        if score is not None:
            scores[label][normalize_game_name(run["env"])].append(score)
    table: dict[str, dict[str, Any]] = {}
    for label, by_game in scores.items():
        games = {
            g: bootstrap_ci(np.asarray(v)[:, None], "mean", reps, seed) for g, v in by_game.items()
        }
        aggregates = {}
        if len(by_game) >= 2:
            aggregates = bootstrap_intervals(score_input(by_game), AGGREGATE_BARS, reps, seed)
        table[label] = {"games": games, "aggregates": aggregates}
    return table


def bars_y_label(runs: Sequence[Mapping[str, Any]]) -> str:
    """What the bars measure: the final evaluation's human-normalized score, with the protocol
    when the scored runs share one."""
    protocol = _common(runs, "protocol")
    return "human-normalized evaluation score" + (f"\n({protocol} protocol)" if protocol else "")


def _bars(
    ax, labels: list[str], table: dict[str, dict], key: str, ylabel: str, colors: dict[str, str]
) -> None:
    width = 0.8 / len(table)
    for k, (group, entry) in enumerate(table.items()):
        xs, points, errors = [], [], [[], []]
        for i, label in enumerate(labels):
            if label in entry[key]:
                iv = entry[key][label]
                xs.append(i + (k - (len(table) - 1) / 2) * width)
                points.append(iv.point)
                errors[0].append(iv.point - iv.low)
                errors[1].append(iv.high - iv.point)
        ax.bar(xs, points, width, yerr=errors, capsize=3, label=group, color=colors[group])
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.axhline(1.0, color="gray", lw=0.8, ls="--")
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")


def plot_human_normalized(
    run_dirs: Sequence[Path], output_dir: Path, reps: int = 2000, seed: int = 0
) -> list[Path]:
    """Bars per game (and aggregates with >= 2 games) with 95% bootstrap intervals; returns the
    written paths, or [] after a one-line note when no run has a human-normalized score."""
    return draw_human_normalized([load_run(Path(d)) for d in run_dirs], output_dir, reps, seed)


def draw_human_normalized(
    runs: Sequence[dict],
    output_dir: Path,
    reps: int = 2000,
    seed: int = 0,
    labels: Sequence[str] | None = None,
) -> list[Path]:
    """``plot_human_normalized`` for runs already loaded with ``load_run``."""
    labels = list(group_labels(runs) if labels is None else labels)
    table = human_normalized_table(runs, reps, seed, labels)
    if not table:
        print("note: no run has a human-normalized score (e.g. CartPole); no bar chart written")
        return []
    scored = [
        r for r in runs if "env" in r["summary"] and normalized_score(r["summary"]) is not None
    ]
    ylabel = bars_y_label(scored)
    games = sorted({g for entry in table.values() for g in entry["games"]})
    with_aggregates = len(games) >= 2
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, 2 if with_aggregates else 1, squeeze=False,
        figsize=(2.0 + 1.2 * len(games) + (4.0 if with_aggregates else 0.0), 4.5),
        gridspec_kw={"width_ratios": [max(len(games), 1), 3] if with_aggregates else [1]},
    )  # fmt: skip
    colors = label_colors(labels)
    _bars(axes[0][0], games, table, "games", ylabel, colors)
    axes[0][0].set_title("per game: mean over seeds, 95% CI")
    if with_aggregates:
        _bars(axes[0][1], list(AGGREGATE_BARS), table, "aggregates", ylabel, colors)
        axes[0][1].set_title("aggregate over games, 95% CI")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    paths = _save(fig, Path(output_dir), "human_normalized")
    plt.close(fig)
    return paths


@cli_main(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run directories (with metrics.csv)")
    p.add_argument("--output-dir", type=checks.path_arg, default=Path("runs/plots"), metavar="DIR",
                   help="where the figures are written (.png and .svg)")  # fmt: skip
    p.add_argument("--x", choices=X_UNITS, default="steps", help="x axis: agent steps or frames")
    p.add_argument("--window", type=int, default=20, metavar="N",
                   help="episodes in the moving average")  # fmt: skip
    p.add_argument("--bootstrap-reps", type=int, default=2000, metavar="N",
                   help="stratified-bootstrap resamples for the bars' intervals")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, metavar="INT", help="bootstrap seed")
    p.add_argument(
        "--label", action="append", default=[], metavar="RUN_DIR=NAME",
        help="name the group of RUN_DIR (a glob such as 'runs/pong-*' or '*' for every run); "
        "runs given one NAME are seeds of one group; repeatable, a later one wins "
        "(default: the settings that differ between the runs' configs)",
    )  # fmt: skip
    args = p.parse_args(argv)
    checks.check_number("--window", args.window, checks.POSITIVE_INT)
    checks.check_number("--bootstrap-reps", args.bootstrap_reps, checks.BOOTSTRAP_REPS)
    checks.check_number("--seed", args.seed, checks.SEED)
    for text in args.label:
        parse_label(text)
    checks.check_writable_dir("--output-dir", args.output_dir)
    check_distinct(args.runs)
    runs = [load_run(run_dir) for run_dir in args.runs]  # bad input refused before drawing
    labels = group_labels(runs, args.label)
    paths = draw_learning_curves(runs, args.output_dir, args.window, args.x, labels)
    paths += draw_human_normalized(runs, args.output_dir, args.bootstrap_reps, args.seed, labels)
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
