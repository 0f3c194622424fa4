"""The Atari 100k suite in one command, resumable: ``python -m scripts.atari100k --seeds 1``.

Trains ``--preset`` (default ``drq``) on each game and seed, each run its own process
(``python -m scripts.train``) in ``OUTPUT_DIR/GAME/seedS``, at most ``--jobs`` at a time with
``--torch-threads`` each, then writes ``OUTPUT_DIR/report.md`` and ``report.json``: per game the
published columns (random, human, DER, DrQ(eps), SPR, BBF; ``envs.atari100k``) beside ours, and
the mean, median and interquartile mean of the human-normalized scores (Atari-100k random/human
scores) with stratified-bootstrap 95% confidence intervals (``evaluation.statistics``), and the same
aggregates of the published per-game means over the same games.

- Games: ``--games Boxing,Breakout,...`` (any spelling of the 26 Atari-100k games), or
  ``--suite atari100k`` for all 26; default the 8 games of the README's CPU reproduction.
- Seeds: ``--seeds 1`` or ``--seeds 1,2`` (or ``--seeds 1 2``).
- Resumable: a finished run (``summary.json`` with its final evaluation) is skipped; an
  interrupted one (a checkpoint) continues with ``scripts.train --resume``; one stopped during
  its final evaluation (a checkpoint at its last step, no summary) gets that evaluation from
  ``scripts.evaluate`` (``GAME/seedS/evaluation/summary.json``); a directory left without a
  checkpoint is renamed ``seedS.abandoned-TIME`` and the run starts again. Runs save
  their replay with each checkpoint (``--save-replay``, about 0.7 GB for 100k Atari transitions,
  newest checkpoint only) so a resumed run continues with all its data; ``--no-save-replay``
  trades that for disk.
- Flags after ``--`` go to every ``scripts.train`` call, e.g. ``-- --total-steps 2000``.
- ``--report``: write the table from the runs there are, train nothing.
- Logs: ``OUTPUT_DIR/logs/GAME-seedS.log`` (stdout and stderr of each training process).
- Ctrl-C or SIGTERM: each running training gets SIGTERM (it checkpoints and exits), the report is
  written for the runs that finished, and the suite exits 130/143; run it again to continue.

This loop runs on one machine without Ray. With Ray (``pip install -e .[distributed]``), and on a
cluster, ``python -m scripts.sweep --suite atari100k --preset drq --seeds 1,2,3 --address auto``
runs the same benchmark as Ray tasks and writes the same table (``scripts/sweep.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluation.statistics import aggregate, bootstrap_intervals
from envs.atari100k import EIGHT_GAMES, GAMES, PUBLISHED, SCORE_SET, game_name, normalized, table
from scripts._cli import ArgumentParser, cli_main, split_passthrough

PROG = "atari100k"
SUITES = {"atari100k": GAMES, "eight": EIGHT_GAMES}
AGGREGATE_NAMES = ("mean", "median", "iqm")
PROTOCOL_LINE = (
    "atari100k protocol (Dopamine labs/atari_100k): 100k agent steps, no sticky actions, up to 30 "
    "no-op starts, life loss terminal in training only, whole-game raw score, episodes capped at "
    "27,000 agent steps, evaluation epsilon 0.001 after training"
)


@dataclass(frozen=True)
class Run:
    game: str
    seed: int
    path: Path

    @property
    def name(self) -> str:
        return f"{self.game}-seed{self.seed}"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                       epilog="Flags after -- go to every scripts.train call, e.g. -- "
                       "--total-steps 2000.")  # fmt: skip
    p.add_argument("--games", default=None,
                   help="comma-separated games (default: Boxing,Breakout,Freeway,Kangaroo,"
                   "MsPacman,Pong,RoadRunner,Seaquest)")  # fmt: skip
    p.add_argument(
        "--suite",
        choices=tuple(SUITES),
        default=None,
        help="a named set of games: atari100k (all 26) or eight (the README's 8) (default: "
        "none: --games decides)",
    )
    p.add_argument("--seeds", nargs="+", default=["1"], help="seeds: 1, or 1,2, or 1 2")
    p.add_argument("--preset", default="drq", help="training preset")
    p.add_argument("--output-dir", type=Path, default=Path("runs/atari100k"),
                   help="one directory per game and seed, the report and the logs")  # fmt: skip
    p.add_argument("--jobs", type=int, default=1, help="training processes at a time")
    p.add_argument("--torch-threads", type=int, default=0,
                   help="CPU threads of each training (0: torch's default)")  # fmt: skip
    p.add_argument(
        "--no-save-replay",
        action="store_true",
        help="do not save the replay with checkpoints (a resumed run refills it)",
    )
    p.add_argument("--report", action="store_true", help="only write the report; train nothing")
    p.add_argument(
        "--bootstrap-reps",
        type=int,
        default=2000,
        metavar="N",
        help="stratified-bootstrap resamples for the intervals",
    )
    return p


def parse_seeds(values: Sequence[str]) -> list[int]:
    seeds = []
    for value in values:
        for part in str(value).split(","):
            if part.strip():
                try:
                    seed = int(part)
                except ValueError:
                    seed = -1
                if seed < 0:
                    raise ValueError(f"--seeds: {part!r} is not accepted; use integers >= 0")
                seeds.append(seed)
    if not seeds:
        raise ValueError("--seeds: give at least one seed, e.g. --seeds 1")
    return list(dict.fromkeys(seeds))


def select_games(games: str | None, suite: str | None) -> list[str]:
    if games is not None and suite is not None:
        raise ValueError("--games and --suite both choose the games; give one of them")
    if suite is not None:
        return list(SUITES[suite])
    if games is None:
        return list(EIGHT_GAMES)
    names = [game_name(part.strip()) for part in games.split(",") if part.strip()]
    if not names:
        raise ValueError("--games: no game given; e.g. --games Boxing,Breakout")
    return list(dict.fromkeys(names))


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
    evaluation); None before."""
    total = (read_json(path / "config.json") or {}).get("total_steps", math.inf)
    summary = read_json(path / "summary.json")
    if summary is not None and "eval_mean_return" in summary and "stopped_by" not in summary:
        if summary.get("global_step", 0) >= total:
            return {"mean_return": float(summary["eval_mean_return"]),
                    "episodes": summary.get("eval_episodes"),
                    "epsilon": summary.get("eval_epsilon"), "protocol": summary.get("protocol"),
                    "preset": summary.get("preset"), "global_step": summary["global_step"],
                    "sps": summary.get("sps"), "source": "train"}  # fmt: skip
    evaluation = read_json(path / "evaluation" / "summary.json")
    if evaluation is not None and (evaluation.get("global_step") or 0) >= total:
        return {"mean_return": float(evaluation["mean_return"]),
                "episodes": evaluation.get("episodes"), "epsilon": evaluation.get("epsilon"),
                "protocol": evaluation.get("protocol"), "preset": None,
                "global_step": evaluation["global_step"], "sps": None,
                "source": "evaluate"}  # fmt: skip
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


def evaluate_command(run: Run) -> list[str]:
    """The ``scripts.evaluate`` call that plays a trained run's final evaluation as its config
    says (protocol, evaluation epsilon, episodes and cap of the run)."""
    config = read_json(run.path / "config.json") or {}
    episodes = config.get("final_eval_episodes") or 100
    frames = 4 * (config.get("eval_max_steps") or 27_000)
    return [sys.executable, "-m", "scripts.evaluate", str(run.path), "--episodes", str(episodes),
            "--max-episode-frames", str(frames), "--seed", str(run.seed + 10_000),
            "--output-dir", str(run.path / "evaluation")]  # fmt: skip


def train_command(
    run: Run, state: str, args: argparse.Namespace, extra: Sequence[str]
) -> list[str]:
    """The ``scripts.train`` call that starts or continues ``run``."""
    cmd = [sys.executable, "-m", "scripts.train"]
    if state == "interrupted":
        cmd += ["--resume", str(run.path)]
    else:
        cmd += ["--preset", args.preset, "--env", run.game, "--seed", str(run.seed),
                "--output-dir", str(run.path)]  # fmt: skip
    cmd += ["--no-progress", "--torch-threads", str(args.torch_threads)]
    if not args.no_save_replay:
        cmd.append("--save-replay")
    return cmd + list(extra)


def check_settings(runs: Sequence[Run], args: argparse.Namespace, extra: Sequence[str]) -> None:
    """Refuse, before any work, runs already in the output directory that were started with
    other settings than this command gives (``--preset`` and the flags after ``--``): they would
    be skipped or resumed, and their results reported, as this preset's."""
    from agents.run.directory import started_otherwise
    from scripts.train import parse_config

    for run in runs:
        if not (run.path / "config.json").is_file():
            continue
        wanted, _ = parse_config(train_command(run, "new", args, extra)[3:])
        difference = started_otherwise(run.path, wanted)
        if difference is not None:
            raise ValueError(
                f"{run.path} holds a run started with other settings than --preset "
                f"{args.preset}{' and the flags after --' if extra else ''}: {difference}; give "
                "the settings it was started with (after --) to continue or report it, or "
                "another --output-dir"
            )


def set_aside(path: Path) -> Path:
    """Rename a run directory that holds no checkpoint (nothing to resume) out of the way."""
    target = path.with_name(f"{path.name}.abandoned-{time.strftime('%Y%m%d-%H%M%S')}")
    path.rename(target)
    return target


# -- running ----------------------------------------------------------------------------------
class Suite:
    """Runs the pending trainings, ``jobs`` at a time, each its own process."""

    def __init__(self, runs: list[Run], args: argparse.Namespace, extra: Sequence[str]) -> None:
        self.pending = list(runs)
        self.args, self.extra = args, list(extra)
        self.running: dict[Run, tuple[subprocess.Popen, Any, float]] = {}
        self.failed: list[tuple[Run, int]] = []
        self.stop_signal: int | None = None
        self.logs = args.output_dir / "logs"

    def start(self, run: Run) -> None:
        state = run_state(run.path)
        if state == "new" and run.path.exists() and any(run.path.iterdir()):
            print(f"{run.name}: no checkpoint in {run.path}; moved to {set_aside(run.path)}")
        if state == "trained":
            cmd = evaluate_command(run)
        else:
            cmd = train_command(run, state, self.args, self.extra)
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{run.name}.log", "a")  # noqa: SIM115 - closed when it ends
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        env = dict(os.environ)
        if self.args.torch_threads > 0:
            env.update(OMP_NUM_THREADS=str(self.args.torch_threads),
                       MKL_NUM_THREADS=str(self.args.torch_threads))  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.running[run] = (proc, log, time.monotonic())
        verb = {"interrupted": "resumed", "trained": "final evaluation started"}.get(
            state, "started"
        )
        print(f"{run.name}: {verb} (pid {proc.pid}, log {self.logs / f'{run.name}.log'})",
              flush=True)  # fmt: skip

    def reap(self) -> None:
        for run, (proc, log, t0) in list(self.running.items()):
            rc = proc.poll()
            if rc is None:
                continue
            log.close()
            del self.running[run]
            minutes = (time.monotonic() - t0) / 60
            if rc == 0 and run_state(run.path) == "finished":
                result = final_result(run.path) or {}
                print(f"{run.name}: finished in {minutes:.1f} min, mean return "
                      f"{result.get('mean_return', float('nan')):.2f} over "
                      f"{result.get('episodes')} episodes", flush=True)  # fmt: skip
            elif self.stop_signal is not None and rc in (130, 143):
                print(f"{run.name}: stopped after {minutes:.1f} min with its checkpoint; the same "
                      "command continues it", flush=True)  # fmt: skip
            else:
                self.failed.append((run, rc))
                print(f"{run.name}: exited with code {rc} after {minutes:.1f} min (see its log)",
                      flush=True)  # fmt: skip

    def on_signal(self, signum: int, frame: Any) -> None:
        self.stop_signal = signum
        for proc, _, _ in self.running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # each run checkpoints and exits

    def run(self, poll_seconds: float = 1.0) -> None:
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, self.on_signal)
        try:
            while self.pending or self.running:
                while (self.pending and len(self.running) < self.args.jobs
                       and self.stop_signal is None):  # fmt: skip
                    self.start(self.pending.pop(0))
                if not self.running:
                    break
                time.sleep(poll_seconds)
                self.reap()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for proc, _, _ in self.running.values():  # only on an error of the suite itself
                proc.send_signal(signal.SIGTERM)
                proc.wait()


# -- the report -------------------------------------------------------------------------------
def collect(runs: list[Run]) -> dict[str, list[dict[str, Any]]]:
    """Finished runs' results per game: [{seed, mean_return, episodes, hns, ...}]."""
    results: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if run_state(run.path) != "finished":
            continue
        result = final_result(run.path) or {}
        sps = result.pop("sps") or 0.0
        result.update(seed=run.seed, hns=normalized(run.game, result["mean_return"]),
                      train_minutes=result["global_step"] / sps / 60 if sps else None,
                      path=str(run.path))  # fmt: skip
        results.setdefault(run.game, []).append(result)
    return results


def published_aggregates(games: Sequence[str]) -> dict[str, dict[str, float]]:
    """Mean, median and IQM of each published column's per-game human-normalized means over
    ``games`` (the IQM of per-game means, not the papers' IQM over runs)."""
    out = {}
    for column in PUBLISHED:
        scores = np.array([[normalized(g, table()[g][column]) for g in games]])
        out[column] = {name: aggregate(scores, name) for name in AGGREGATE_NAMES}
    return out


def build_report(
    games: Sequence[str], runs: list[Run], preset: str, reps: int = 2000
) -> dict[str, Any]:
    """The per-game table and the aggregates, as plain data (``report.json``)."""
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
        scores = {g: [r["hns"] for r in results[g]] for g in done}
        intervals = bootstrap_intervals(scores, AGGREGATE_NAMES, reps=reps, seed=0)
        aggregates["ours"] = {name: iv.as_dict() for name, iv in intervals.items()}
    return {
        "preset": preset, "protocol": PROTOCOL_LINE, "score_set": SCORE_SET,
        "published_sources": PUBLISHED, "games": list(games), "rows": rows,
        "aggregates": aggregates,
    }  # fmt: skip


def _num(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


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
        cells = [f"{agg['ours'][n]['point']:.3f} [{agg['ours'][n]['low']:.3f}, "
                 f"{agg['ours'][n]['high']:.3f}]" for n in AGGREGATE_NAMES]  # fmt: skip
        lines.append(f"| ours ({report['preset']}) | " + " | ".join(cells) + " |")
    if agg["published_same_games"]:
        for column, values in agg["published_same_games"].items():
            cells = [f"{values[n]:.3f}" for n in AGGREGATE_NAMES]
            lines.append(f"| {report['published_sources'][column]} | " + " | ".join(cells) + " |")
    return lines


def write_report(output_dir: Path, report: dict[str, Any]) -> str:
    from agents.run.checkpoint import atomic_write

    output_dir.mkdir(parents=True, exist_ok=True)
    text = render_markdown(report)
    data = json.dumps(report, indent=2) + "\n"
    atomic_write(output_dir / "report.json", lambda f: f.write(data.encode()))
    atomic_write(output_dir / "report.md", lambda f: f.write(text.encode()))
    return text


@cli_main(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    argv, extra = split_passthrough(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.jobs < 1:
        raise ValueError(f"--jobs: {args.jobs} is not accepted; use an integer >= 1")
    if args.torch_threads < 0:
        raise ValueError(f"--torch-threads: {args.torch_threads} is not accepted; use >= 0")
    from agents.run import checks

    checks.check_number("--bootstrap-reps", args.bootstrap_reps, checks.BOOTSTRAP_REPS)
    from agents.dqn.presets import PRESETS

    if args.preset not in PRESETS:
        raise ValueError(
            f"--preset: unknown preset {args.preset!r}; accepted: {', '.join(PRESETS)}"
        )
    games = select_games(args.games, args.suite)
    seeds = parse_seeds(args.seeds)
    runs = [Run(g, s, args.output_dir / g / f"seed{s}") for g in games for s in seeds]
    check_settings(runs, args, extra)
    code = 0
    if not args.report:
        todo = [r for r in runs if run_state(r.path) != "finished"]
        skipped = len(runs) - len(todo)
        print(f"{len(runs)} runs ({len(games)} games x {len(seeds)} seeds): {skipped} finished, "
              f"{len(todo)} to run, {args.jobs} at a time", flush=True)  # fmt: skip
        suite = Suite(todo, args, extra)
        suite.run()
        if suite.stop_signal is not None:
            code = 128 + suite.stop_signal
        elif suite.failed:
            code = 1
    text = write_report(
        args.output_dir, build_report(games, runs, args.preset, args.bootstrap_reps)
    )
    print(text, end="")
    print(f"report: {args.output_dir / 'report.md'}, {args.output_dir / 'report.json'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
