"""Aggregate human-normalized scores over games: ``python -m scripts.aggregate DIR... --json F``.

Each DIR is a training run (``summary.json`` from ``scripts.train``: ``env``, ``seed``,
``eval_human_normalized`` or ``eval_mean_return``) or an evaluation (``summary.json`` from
``scripts.evaluate``: ``env``, ``human_normalized``, ``mean_return``). Runs are grouped by game
(any spelling of the env id); runs of one game are its seeds. Mean, median, interquartile mean
and optimality gap come with stratified-bootstrap 95% confidence intervals (Agarwal et al. 2021,
see ``agents.evaluation.statistics``). Prints a table; ``--json FILE`` also writes it as JSON.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluation.statistics import AGGREGATES, ScoreInput, bootstrap_intervals
from agents.run import checks, file_checks
from envs.scores import HUMAN_SCORE_SET, has_scores, human_normalized, normalize_game_name
from scripts._cli import ArgumentParser, cli_main

PROG = "aggregate"


def read_summary(run_dir: Path) -> dict[str, Any]:
    """The ``summary.json`` of a run or evaluation directory (ValueError when absent/unreadable)."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise ValueError(
            f"{run_dir}: no summary.json; give run directories of scripts.train or output "
            "directories of scripts.evaluate"
        )
    summary = file_checks.read_json_object(path, "summary")  # no NaN, an object, a sane size
    file_checks.check_summary(summary, path)  # field by field
    return summary


def run_identity(run_dir: Path, summary: Mapping[str, Any]) -> Path:
    """The run a summary scores: a training run's directory, or for an evaluation the run whose
    checkpoint it played (``<run>/checkpoints/step_*.pt``; a shipped agent's file), so a run and
    an evaluation of it are one run."""
    checkpoint = summary.get("checkpoint")
    if summary.get("mean_return") is not None and isinstance(checkpoint, str):
        path = Path(checkpoint)
        if not path.is_absolute():
            path = Path.cwd() / path
        run = path.parent.parent if path.parent.name == "checkpoints" else path
        return run.resolve()
    return Path(run_dir).resolve()


def normalized_score(summary: Mapping[str, Any]) -> float | None:
    """The human-normalized score in a train or evaluate summary, computed from the raw mean
    return when only that is present; None when the env has no human reference score or the
    summary holds no evaluation."""
    env = str(summary["env"])
    if not has_scores(env):
        return None
    for key in ("eval_human_normalized", "human_normalized"):
        if summary.get(key) is not None:
            return float(summary[key])
    for key in ("eval_mean_return", "mean_return"):
        if summary.get(key) is not None:
            return human_normalized(env, float(summary[key]))
    return None


def collect_scores(run_dirs: Sequence[Path]) -> dict[str, list[float]]:
    """{game table key: [human-normalized score per run]} from the runs' summaries."""
    if not run_dirs:
        raise ValueError("no directories given; pass run or evaluation directories")
    by_game: dict[str, list[float]] = {}
    seen: dict[Path, Path] = {}
    for run_dir in run_dirs:
        summary = read_summary(Path(run_dir))
        identity = run_identity(Path(run_dir), summary)
        if identity in seen:
            raise ValueError(
                f"{run_dir}: the same run as {seen[identity]} ({identity}), given twice; each "
                "run counts once: give one of them"
            )
        seen[identity] = Path(run_dir)
        env = str(summary["env"])
        if not has_scores(env):
            raise ValueError(
                f"{run_dir}: env {env!r} has no human reference score; aggregates need "
                f"human-normalized scores of the 57 Atari games ({HUMAN_SCORE_SET} table)"
            )
        score = normalized_score(summary)
        if score is None:
            raise ValueError(
                f"{run_dir}: summary.json has no evaluation score (eval_human_normalized, "
                "eval_mean_return, human_normalized or mean_return)"
            )
        by_game.setdefault(normalize_game_name(env), []).append(score)
    return dict(sorted(by_game.items()))


def score_input(by_game: Mapping[str, Sequence[float]]) -> ScoreInput:
    """A ``[run, game]`` matrix when every game has the same run count, else the mapping."""
    counts = {len(v) for v in by_game.values()}
    if len(counts) == 1:
        return np.array(list(by_game.values()), dtype=np.float64).T
    return {game: np.asarray(v, dtype=np.float64) for game, v in by_game.items()}


def aggregate_runs(
    run_dirs: Sequence[Path], reps: int = 2000, seed: int = 0, confidence: float = 0.95
) -> dict[str, Any]:
    """Scores per game and the aggregates with their intervals, as a JSON-ready dict."""
    by_game = collect_scores(run_dirs)
    intervals = bootstrap_intervals(score_input(by_game), tuple(AGGREGATES), reps, seed, confidence)
    return {
        "aggregates": {name: iv.as_dict() for name, iv in intervals.items()},
        "games": {
            g: {"runs": len(v), "mean": float(np.mean(v)), "scores": v} for g, v in by_game.items()
        },
        "score": "human_normalized",
        "human_score_set": HUMAN_SCORE_SET,
        "confidence": confidence,
        "bootstrap": "stratified over runs within each game, percentile interval",
        "reps": reps,
        "seed": seed,
        "run_dirs": [str(d) for d in run_dirs],
    }


def format_table(result: Mapping[str, Any]) -> str:
    games = result["games"]
    runs = sorted({g["runs"] for g in games.values()})
    run_text = str(runs[0]) if len(runs) == 1 else f"{runs[0]}-{runs[-1]}"
    percent = round(100 * result["confidence"])
    lines = [
        f"{len(games)} game(s), {run_text} run(s) each; human-normalized "
        f"({result['human_score_set']}); {percent}% CI from {result['reps']} stratified "
        "bootstrap resamples",
        f"{'aggregate':<16}{'point':>10}{'CI low':>10}{'CI high':>10}",
    ]
    for name, iv in result["aggregates"].items():
        lines.append(f"{name:<16}{iv['point']:>10.3f}{iv['low']:>10.3f}{iv['high']:>10.3f}")
    return "\n".join(lines)


@cli_main(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("dirs", nargs="+", type=Path, help="run or evaluation directories")
    p.add_argument("--json", type=checks.path_arg, default=None, metavar="FILE",
                   help="also write the result here, as JSON (default: none: print the table "
                   "only)")  # fmt: skip
    p.add_argument("--bootstrap-reps", type=int, default=2000, metavar="N",
                   help="stratified-bootstrap resamples for the intervals")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, metavar="INT", help="bootstrap seed")
    args = p.parse_args(argv)
    checks.check_number("--bootstrap-reps", args.bootstrap_reps, checks.BOOTSTRAP_REPS)
    checks.check_number("--seed", args.seed, checks.SEED)
    if args.json is not None:
        checks.check_writable_file("--json", args.json)
    result = aggregate_runs(args.dirs, args.bootstrap_reps, args.seed)
    print(format_table(result))
    if args.json is not None:
        from agents.run.checkpoint import atomic_write

        text = json.dumps(result, indent=2) + "\n"
        atomic_write(args.json, lambda f: f.write(text.encode()))
        print(f"written: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
