"""The report of a sweep (``scripts.sweep_tasks`` runs it, ``scripts/sweep.py --report``
writes it alone): ``OUTPUT_DIR/report.json``, ``report.md`` and ``curves.png``.

- The table (``build_report``, ``render_markdown``): per cell (a game and a group of swept
  values) the mean final evaluation over its finished seeds, the human-normalized score of
  Atari games, the failed runs (this invocation's, and those given up in earlier ones, from
  ``failures.json``: with their exit codes and the last line of their logs) and the unfinished
  ones by state.
- The aggregates: per group of swept values the mean, median and IQM of the human-normalized
  scores over the games with stratified-bootstrap 95% intervals
  (``agents.evaluation.statistics``).
- Atari 100k (``atari100k_sections``): when every game is an Atari-100k game and a group's runs
  use the atari100k protocol (or with ``--suite atari100k``), the report opens with that group's
  table as ``scripts.atari100k`` makes it: per game the published columns (random, human, DER,
  DrQ(eps), SPR, BBF) beside ours, our HNS beside DrQ(eps)'s, and our aggregates beside the
  published ones over the same games; a line says when the runs' protocol or steps are not the
  benchmark's.
- The figure (``draw_curves``): the learning curves, one panel per game, one colour per group.

``write_report`` writes the three files, each atomically.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scripts.sweep_plan import Plan, SweepRun, result_of, shown_value, state_of
from scripts.sweep_tasks import Outcome, read_failures

AGGREGATE_NAMES = ("mean", "median", "iqm")
ATARI_100K_STEPS = 100_000
"""Agent steps of an Atari 100k run, those of the published columns."""


# -- Atari 100k: the published table beside ours --------------------------------------------------
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
    """The Atari 100k table of each group of swept values, as
    ``scripts.atari100k_report.build_report`` makes it (per game the published columns beside
    our mean return and HNS; our mean, median and IQM with stratified-bootstrap intervals beside
    the published aggregates over the same games), when every game of the sweep is an Atari-100k
    game and the group's runs use the atari100k protocol, or for every group with
    ``suite='atari100k'``. Each section also holds the group, its values, and the protocol and
    agent steps of its runs (``ours_protocol``, ``ours_total_steps``; None when the flags make no
    config) so that the markdown says when they are not the benchmark's. Empty for any other
    sweep."""
    from envs.atari100k import game_name
    from scripts.atari100k_report import Run
    from scripts.atari100k_report import build_report as table_report

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
    """One group's Atari 100k table: ``scripts.atari100k_report.render_markdown`` under a
    second-level heading naming the preset and the group's values, with ``_protocol_note`` below
    it."""
    from scripts.atari100k_report import render_markdown as render_table

    lines = render_table({**section, "preset": section["label"]}).splitlines()
    lines[0] = "#" + lines[0]
    note = _protocol_note(section)
    if note:
        lines[1:1] = ["", note]
    return "\n".join(lines) + "\n"


# -- the report as data ---------------------------------------------------------------------------
def _hns(game: str, score: float) -> float | None:
    """Human-normalized score of an Atari game (``envs.scores``), None for any other env."""
    from envs.scores import has_scores, human_normalized

    return human_normalized(game, score) if has_scores(game) else None


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


# -- report.md ------------------------------------------------------------------------------------
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


# -- curves.png -----------------------------------------------------------------------------------
def draw_curves(runs: Sequence[SweepRun], path: Path, preset: str, window: int = 20) -> int:
    """``curves.png``: one panel per game, one colour per group of swept values: the training
    episode return (``charts/episodic_return`` of each run's ``metrics.csv``, a trailing mean of
    ``window`` episodes) averaged over the seeds where they all ran (``scripts.plot``'s
    ``learning_curve``; a lone seed drawn as it is), and the evaluations (``eval/mean_return``)
    as dots, the mean over the seeds that evaluated at that step. Returns the number of runs
    drawn; nothing is written when no run has logged a return."""
    from scripts.plot import label_colors, learning_curve, run_curve
    from scripts.run_groups import load_run

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


# -- the files ------------------------------------------------------------------------------------
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
    from agents.run.checkpoint import atomic_write

    report = build_report(runs, plan, outcomes, reps, suite, read_failures(output_dir))
    text = render_markdown(report)
    data = json.dumps(report, indent=2) + "\n"
    atomic_write(output_dir / "report.json", lambda f: f.write(data.encode()))
    atomic_write(output_dir / "report.md", lambda f: f.write(text.encode()))
    drawn = draw_curves(runs, output_dir / "curves.png", plan.preset) > 0
    return text, report, drawn
