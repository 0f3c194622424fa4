"""The Atari 100k table from run directories: which runs have finished, their final evaluations,
and the per-game table with its aggregates (``report.md``, ``report.json``).

A run lives in ``OUTPUT_DIR/GAME/seedS`` (``Run``); ``run_state`` says whether it is new,
interrupted, trained (stopped during its final evaluation) or finished, from its files alone.
``build_report`` puts each game's published columns (random, human, DER, DrQ(eps), SPR, BBF;
``envs.atari100k``) beside the mean of its finished runs, and the mean, median and interquartile
mean of the human-normalized scores with stratified-bootstrap 95% intervals
(``agents.evaluation.statistics``) beside the same aggregates of the published per-game means.
The suite (``scripts.atari100k``) and the sweep (``scripts.sweep``) write their tables with it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluation.statistics import aggregate, bootstrap_intervals
from envs.atari100k import PUBLISHED, SCORE_SET, normalized, table

AGGREGATE_NAMES = ("mean", "median", "iqm")
PROTOCOL_LINE = (
    "atari100k protocol (Dopamine labs/atari_100k): 100k agent steps, no sticky actions, up to 30 "
    "no-op starts, life loss terminal in training only, whole-game raw score, episodes capped at "
    "27,000 agent steps, evaluation epsilon 0.001 after training"
)


COST_KEYS = ("wall_seconds", "updates", "peak_rss_gb")


@dataclass(frozen=True)
class Run:
    """One game and seed of a suite, trained in ``path`` (``OUTPUT_DIR/GAME/seedS``)."""

    game: str
    seed: int
    path: Path

    @property
    def name(self) -> str:
        return f"{self.game}-seed{self.seed}"


# -- the state of one run ---------------------------------------------------------------------
def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def final_result(path: Path) -> dict[str, Any] | None:
    """The final evaluation of the run in ``path`` once it has trained all its steps: from the
    run's ``summary.json`` (``scripts.train``), else from ``evaluation/summary.json``
    (``scripts.evaluate`` of its last checkpoint, for a run stopped during its final
    evaluation); None before. What the training cost comes from the run's summary.json where
    it has it (a run stopped during its final evaluation wrote one too): ``wall_seconds`` on the
    run's own clock over all its segments (None in summaries written before it was), the
    ``updates`` made and ``peak_rss_gb`` of the training process."""
    total = (read_json(path / "config.json") or {}).get("total_steps", math.inf)
    summary = read_json(path / "summary.json")
    costs = {key: (summary or {}).get(key) for key in COST_KEYS}
    if summary is not None and "eval_mean_return" in summary and "stopped_by" not in summary:
        if summary.get("global_step", 0) >= total:
            return {"mean_return": float(summary["eval_mean_return"]),
                    "episodes": summary.get("eval_episodes"),
                    "epsilon": summary.get("eval_epsilon"), "protocol": summary.get("protocol"),
                    "preset": summary.get("preset"), "global_step": summary["global_step"],
                    "sps": summary.get("sps"), "source": "train", **costs}  # fmt: skip
    evaluation = read_json(path / "evaluation" / "summary.json")
    if evaluation is not None and (evaluation.get("global_step") or 0) >= total:
        return {"mean_return": float(evaluation["mean_return"]),
                "episodes": evaluation.get("episodes"), "epsilon": evaluation.get("epsilon"),
                "protocol": evaluation.get("protocol"), "preset": None,
                "global_step": evaluation["global_step"], "sps": None,
                "source": "evaluate", **costs}  # fmt: skip
    return None


def newest_checkpoint_step(path: Path) -> int | None:
    steps = [int(p.stem.split("_")[1]) for p in (path / "checkpoints").glob("step_*.pt")
             if p.stem.split("_")[1].isdigit()]  # fmt: skip
    return max(steps) if steps else None


def run_state(path: Path) -> str:
    """'finished' (its final evaluation is there), 'trained' (a checkpoint at the last step but
    no final evaluation: the run was stopped while evaluating), 'interrupted' (a checkpoint to
    resume) or 'new' (nothing to continue)."""
    if final_result(path) is not None:
        return "finished"
    step = newest_checkpoint_step(path)
    if step is None:
        return "new"
    total = (read_json(path / "config.json") or {}).get("total_steps", math.inf)
    return "trained" if step >= total else "interrupted"


# -- the report -------------------------------------------------------------------------------
def collect(runs: list[Run]) -> dict[str, list[dict[str, Any]]]:
    """Finished runs' results per game: [{seed, mean_return, episodes, hns, ...}]."""
    results: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if run_state(run.path) != "finished":
            continue
        result = final_result(run.path) or {}
        result.pop("sps")  # of the last segment alone when the run was resumed
        seconds = result["wall_seconds"]
        result.update(seed=run.seed, hns=normalized(run.game, result["mean_return"]),
                      train_minutes=seconds / 60 if seconds else None,
                      updates_per_second=result["updates"] / seconds
                      if seconds and result["updates"] else None,
                      path=str(run.path))  # fmt: skip
        results.setdefault(run.game, []).append(result)
    return results


def unfinished(runs: list[Run]) -> list[dict[str, Any]]:
    """The runs without a final result, each with its state (``run_state``), the agent step of
    its newest checkpoint and its total (None where unknown)."""
    out = []
    for run in runs:
        state = run_state(run.path)
        if state != "finished":
            total = (read_json(run.path / "config.json") or {}).get("total_steps")
            out.append({"game": run.game, "seed": run.seed, "state": state,
                        "checkpoint_step": newest_checkpoint_step(run.path),
                        "total_steps": total})  # fmt: skip
    return out


def published_aggregates(games: Sequence[str]) -> dict[str, dict[str, float]]:
    """Mean, median and IQM of each published column's per-game human-normalized means over
    ``games`` (the IQM of per-game means, not the papers' IQM over runs)."""
    out = {}
    for column in PUBLISHED:
        scores = np.array([[normalized(g, table()[g][column]) for g in games]])
        out[column] = {name: aggregate(scores, name) for name in AGGREGATE_NAMES}
    return out


def build_report(
    games: Sequence[str],
    runs: list[Run],
    preset: str,
    reps: int = 2000,
    baseline: Path | None = None,
) -> dict[str, Any]:
    """The per-game table and the aggregates, as plain data (``report.json``); with
    ``baseline``, the runs beside those of another suite (``compare_with``)."""
    results = collect(runs)
    rows = []
    for game in games:
        ref = table()[game]
        ours = results.get(game, [])
        row: dict[str, Any] = {"game": game, **ref}
        row.update({f"{c}_hns": normalized(game, ref[c]) for c in PUBLISHED})
        row["runs"] = sorted(ours, key=lambda r: r["seed"])
        if ours:
            row["ours"] = float(np.mean([r["mean_return"] for r in ours]))
            row["ours_hns"] = float(np.mean([r["hns"] for r in ours]))
            row["ours_episodes"] = [r["episodes"] for r in row["runs"]]
        rows.append(row)
    done = [g for g in games if g in results]
    aggregates: dict[str, Any] = {
        "games_with_results": done,
        "runs": sum(len(v) for v in results.values()),
        "published_same_games": published_aggregates(done) if done else None,
        "published_all_games": published_aggregates(games),
    }
    if done:
        aggregates["ours"] = hns_intervals({g: [r["hns"] for r in results[g]] for g in done}, reps)
    report = {
        "preset": preset, "protocol": PROTOCOL_LINE, "score_set": SCORE_SET,
        "published_sources": PUBLISHED, "games": list(games), "rows": rows,
        "aggregates": aggregates, "unfinished": unfinished(runs),
    }  # fmt: skip
    if baseline is not None:
        report["comparison"] = compare_with(runs, baseline, reps)
    return report


def hns_intervals(scores: dict[str, list[float]], reps: int) -> dict[str, dict[str, float]]:
    """Mean, median and IQM of per-run human-normalized ``scores`` ({game: [score per run]})
    with stratified-bootstrap 95% intervals, as plain data."""
    intervals = bootstrap_intervals(scores, AGGREGATE_NAMES, reps=reps, seed=0)
    return {name: iv.as_dict() for name, iv in intervals.items()}


def interval_cells(values: dict[str, dict[str, float]]) -> list[str]:
    """``0.619 [0.600, 0.640]`` for each aggregate of ``hns_intervals``."""
    return [f"{values[n]['point']:.3f} [{values[n]['low']:.3f}, {values[n]['high']:.3f}]"
            for n in AGGREGATE_NAMES]  # fmt: skip


def setting_differences(pairs: Sequence[tuple[Path, Path]]) -> dict[str, list[Any]]:
    """The settings (``scripts.run_groups.compared_settings``: what makes a different experiment)
    in which a run and its baseline differ: {setting: [value here, value in the baseline]}, the
    values of the first pair that differs in it."""
    from scripts.run_groups import compared_settings, same_value

    out: dict[str, list[Any]] = {}
    for ours, theirs in pairs:
        sides = []
        for path in (ours, theirs):
            config = read_json(path / "config.json") or {}
            sides.append(compared_settings({"config": config, "preset": config.get("preset")}))
        for key, value in sides[0].items():
            if key not in out and same_value(value) != same_value(sides[1].get(key)):
                out[key] = [value, sides[1].get(key)]
    return out


def compare_with(runs: list[Run], baseline: Path, reps: int = 2000) -> dict[str, Any]:
    """Each finished run beside the run of the same game and seed finished in ``baseline`` (the
    output directory of another suite): per game, the mean return and human-normalized score of
    both over their paired seeds; the mean, median and IQM of both over the games with a pair,
    with stratified-bootstrap 95% intervals; and the settings that differ."""
    pairs: dict[str, list[tuple[Run, Path, dict[str, Any], dict[str, Any]]]] = {}
    for run in runs:
        theirs = baseline / run.game / f"seed{run.seed}"
        ours_result, their_result = final_result(run.path), final_result(theirs)
        if ours_result is not None and their_result is not None:  # both finished
            pairs.setdefault(run.game, []).append((run, theirs, ours_result, their_result))
    rows = []
    for game, paired in pairs.items():
        ours = [normalized(game, o["mean_return"]) for _, _, o, _ in paired]
        theirs = [normalized(game, t["mean_return"]) for _, _, _, t in paired]
        rows.append({
            "game": game, "seeds": [run.seed for run, _, _, _ in paired],
            "ours": float(np.mean([o["mean_return"] for _, _, o, _ in paired])),
            "baseline": float(np.mean([t["mean_return"] for _, _, _, t in paired])),
            "ours_hns": float(np.mean(ours)), "baseline_hns": float(np.mean(theirs)),
            "ours_run_hns": ours, "baseline_run_hns": theirs,
        })  # fmt: skip
    out: dict[str, Any] = {
        "baseline_dir": str(baseline), "rows": rows, "pairs": sum(map(len, pairs.values())),
        "settings": setting_differences(
            [(run.path, theirs) for v in pairs.values() for run, theirs, _, _ in v]
        ),
    }  # fmt: skip
    if rows:
        for side in ("ours", "baseline"):
            out[side] = hns_intervals({row["game"]: row[f"{side}_run_hns"] for row in rows}, reps)
        out["higher"] = sum(row["ours_hns"] > row["baseline_hns"] for row in rows)
        out["lower"] = sum(row["ours_hns"] < row["baseline_hns"] for row in rows)
    return out


def render_comparison(comparison: dict[str, Any], preset: str) -> list[str]:
    """The markdown section of ``compare_with``'s result."""
    lines = ["", f"## Against the baseline `{comparison['baseline_dir']}`", ""]
    rows = comparison["rows"]
    if not rows:
        return lines + ["No game and seed has finished in both suites yet."]
    settings = comparison["settings"]
    if settings:
        said = "; ".join(f"`{key}` {_shown(here)} here, {_shown(there)} there"
                         for key, (here, there) in settings.items())  # fmt: skip
        lines.append(f"Settings that differ: {said}.")
    else:
        lines.append("No setting differs between the paired runs but the seed and the output.")
    lines += ["", "| game | seeds | ours | baseline | ours HNS | baseline HNS | difference |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        diff = row["ours_hns"] - row["baseline_hns"]
        cells = [row["game"], ",".join(map(str, row["seeds"])), _num(row["ours"], 2),
                 _num(row["baseline"], 2), _num(row["ours_hns"], 3),
                 _num(row["baseline_hns"], 3), f"{diff:+.3f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Over the {len(rows)} games with a pair ({comparison['pairs']} pairs of runs; "
              f"higher on {comparison['higher']}, lower on {comparison['lower']}), "
              "human-normalized, stratified-bootstrap 95% intervals:", "",
              "| agent | mean | median | IQM |", "|---|---|---|---|"]  # fmt: skip
    for side, label in (("ours", f"ours ({preset})"), ("baseline", "baseline")):
        lines.append(f"| {label} | " + " | ".join(interval_cells(comparison[side])) + " |")
    return lines


def _shown(value: Any) -> str:
    from scripts.run_groups import shown_value

    return f"`{shown_value(value)}`"


def _num(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def unfinished_text(run: dict[str, Any]) -> str:
    """``Pong seed 1 (checkpoint at 20,000 of 100,000 agent steps)``, ``... (not started)`` or
    ``... (trained; its final evaluation is still to be played)``."""
    where = f"{run['game']} seed {run['seed']}"
    if run["state"] == "trained":
        return f"{where} (trained; its final evaluation is still to be played)"
    if run["checkpoint_step"] is None:
        return f"{where} (not started)"
    of = f" of {run['total_steps']:,}" if isinstance(run["total_steps"], int) else ""
    return f"{where} (checkpoint at {run['checkpoint_step']:,}{of} agent steps)"


def render_markdown(report: dict[str, Any]) -> str:
    agg = report["aggregates"]
    lines = [
        f"# Atari 100k: `{report['preset']}` against the published per-game means",
        "",
        f"Protocol: {report['protocol']}. Human-normalized with the Atari-100k random and human "
        "scores. Published columns: " + "; ".join(report["published_sources"].values()) + ".",
        "",
        "| game | random | human | DER | DrQ(eps) | SPR | BBF | ours | seeds | episodes "
        "| ours HNS | DrQ(eps) HNS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        seeds = ",".join(str(r["seed"]) for r in row["runs"]) or "—"
        episodes = ",".join(str(e) for e in row.get("ours_episodes", [])) or "—"
        cells = [row["game"], _num(row["random"]), _num(row["human"])]
        cells += [_num(row[c]) for c in PUBLISHED]
        cells += [_num(row.get("ours")), seeds, episodes, _num(row.get("ours_hns"), 3),
                  _num(row["drq_eps_hns"], 3)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    done = agg["games_with_results"]
    single = any(len(row["runs"]) == 1 for row in report["rows"])
    if not done:
        lines += ["", "No run has finished yet."]
    else:
        lines += _same_games_table(report, agg, single)
    if len(done) != len(report["games"]):
        lines += ["", f"Published aggregates over all {len(report['games'])} selected games:", "",
                  "| agent | mean | median | IQM |", "|---|---|---|---|"]  # fmt: skip
        for column, values in agg["published_all_games"].items():
            cells = [f"{values[n]:.3f}" for n in AGGREGATE_NAMES]
            lines.append(f"| {report['published_sources'][column]} | " + " | ".join(cells) + " |")
    lines += _runs_table(report)
    waiting = report.get("unfinished") or []  # absent from reports written before it was added
    if waiting:
        lines += ["", f"Not finished ({len(waiting)} of {len(waiting) + agg['runs']} runs): "
                  + "; ".join(unfinished_text(run) for run in waiting) + "."]  # fmt: skip
    if report.get("comparison"):
        lines += render_comparison(report["comparison"], report["preset"])
    return "\n".join(lines) + "\n"


def _same_games_table(report: dict[str, Any], agg: dict[str, Any], single: bool) -> list[str]:
    done = agg["games_with_results"]
    lines = []
    lines += ["", f"Human-normalized aggregates over the {len(done)} of {len(report['games'])} "
              f"games with results ({agg['runs']} runs; ours with stratified-bootstrap 95% "
              "intervals; published: per-game means, IQM of those means)"
              + (". A game with one run has nothing to resample within it, so with one seed "
                 "per game the intervals collapse to the point:" if single else ":"), "",
              "| agent | mean | median | IQM |", "|---|---|---|---|"]  # fmt: skip
    if "ours" in agg:
        cells = interval_cells(agg["ours"])
        lines.append(f"| ours ({report['preset']}) | " + " | ".join(cells) + " |")
    if agg["published_same_games"]:
        for column, values in agg["published_same_games"].items():
            cells = [f"{values[n]:.3f}" for n in AGGREGATE_NAMES]
            lines.append(f"| {report['published_sources'][column]} | " + " | ".join(cells) + " |")
    return lines


def _runs_table(report: dict[str, Any]) -> list[str]:
    """One row per finished run: its score and what its training cost on this machine."""
    runs = [(row["game"], run) for row in report["rows"] for run in row["runs"]]
    if not runs:
        return []
    lines = ["", "Each run: its final evaluation, and its training on the run's own clock (all its "
             "segments, warm-up and evaluation included), its gradient updates per second of that "
             "clock, and the peak resident memory of its process (— where its summary predates "
             "these figures):", "",
             "| game | seed | mean return | episodes | hours | updates/s | peak RSS (GB) |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for game, run in runs:
        minutes = run.get("train_minutes")
        cells = [game, str(run["seed"]), _num(run["mean_return"], 2), str(run["episodes"]),
                 _num(minutes / 60 if minutes else None, 2),
                 _num(run.get("updates_per_second"), 1),
                 _num(run.get("peak_rss_gb"), 2)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_report(output_dir: Path, report: dict[str, Any]) -> str:
    from agents.run.checkpoint import atomic_write

    output_dir.mkdir(parents=True, exist_ok=True)
    text = render_markdown(report)
    data = json.dumps(report, indent=2) + "\n"
    atomic_write(output_dir / "report.json", lambda f: f.write(data.encode()))
    atomic_write(output_dir / "report.md", lambda f: f.write(text.encode()))
    return text
