"""The Atari 100k suite in one command, resumable: ``python -m scripts.atari100k --seeds 1``.

Trains ``--preset`` (default ``drq``) on each game and seed, each run its own process
(``python -m scripts.train``) in ``OUTPUT_DIR/GAME/seedS``, at most ``--jobs`` at a time with
``--torch-threads`` each, then writes ``OUTPUT_DIR/report.md`` and ``report.json``: per game the
published columns (random, human, DER, DrQ(eps), SPR, BBF; ``envs.atari100k``) beside ours, and
the mean, median and interquartile mean of the human-normalized scores (Atari-100k random/human
scores) with stratified-bootstrap 95% confidence intervals, and the same aggregates of the
published per-game means over the same games (``scripts.atari100k_report``, which also reads each
run's state from its directory).

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
- ``--baseline DIR``: another suite's output directory (e.g. the same preset without a switch);
  the report adds, per game, the runs here beside the same game and seed there, the aggregates of
  both over the games with a pair, and the settings in which they differ.
- Logs: ``OUTPUT_DIR/logs/GAME-seedS.log`` (stdout and stderr of each training process).
- Ctrl-C, SIGTERM or SIGHUP (the terminal closed): each running training gets SIGTERM (it
  checkpoints and exits), the report is written for the runs that finished, and the suite exits
  130/143/129; run it again to continue. Under ``nohup`` SIGHUP is ignored and the suite goes on.

This loop runs on one machine without Ray. With Ray (``pip install -e .[distributed]``), and on a
cluster, ``python -m scripts.sweep --suite atari100k --preset drq --seeds 1,2,3 --address auto``
runs the same benchmark as Ray tasks and writes the same table (``scripts/sweep.py``).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.run.interrupts import SIGNAL_EXIT_CODES, detach_from_terminal, stop_signals
from envs.atari100k import EIGHT_GAMES, GAMES, game_name
from scripts._cli import ArgumentParser, cli_main, split_passthrough
from scripts.atari100k_report import (
    Run,
    build_report,
    final_result,
    read_json,
    run_state,
    write_report,
)

PROG = "atari100k"
SUITES = {"atari100k": GAMES, "eight": EIGHT_GAMES}


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
        "--baseline",
        type=Path,
        default=None,
        metavar="DIR",
        help="another suite's --output-dir: the report adds each game beside the same game and "
        "seed there, with both aggregates and the settings that differ (default: none)",
    )
    p.add_argument(
        "--bootstrap-reps",
        type=int,
        default=2000,
        metavar="N",
        help="stratified-bootstrap resamples for the intervals",
    )
    return p


def check_baseline(baseline: Path, output_dir: Path) -> None:
    """``--baseline`` names an existing directory other than ``--output-dir``."""
    if not baseline.is_dir():
        raise ValueError(
            f"--baseline: {str(baseline)!r} is not a directory; give the --output-dir of another "
            "suite (GAME/seedS run directories)"
        )
    if baseline.resolve() == output_dir.resolve():
        raise ValueError(
            f"--baseline: {str(baseline)!r} is this suite's --output-dir; give another suite's"
        )


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
            elif self.stop_signal is not None and rc in SIGNAL_EXIT_CODES.values():
                print(f"{run.name}: stopped after {minutes:.1f} min with its checkpoint; the same "
                      "command continues it", flush=True)  # fmt: skip
            else:
                self.failed.append((run, rc))
                print(f"{run.name}: exited with code {rc} after {minutes:.1f} min (see its log)",
                      flush=True)  # fmt: skip

    def on_signal(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:  # the terminal is gone: print nowhere, not to it (EIO)
            detach_from_terminal()
        if self.stop_signal is None:
            self.stop_signal = signum
        for proc, _, _ in self.running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # each run checkpoints and exits

    def run(self, poll_seconds: float = 1.0) -> None:
        previous = {sig: signal.getsignal(sig) for sig in stop_signals()}
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
    if args.baseline is not None:
        check_baseline(args.baseline, args.output_dir)
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
        args.output_dir,
        build_report(games, runs, args.preset, args.bootstrap_reps, baseline=args.baseline),
    )
    print(text, end="")
    print(f"report: {args.output_dir / 'report.md'}, {args.output_dir / 'report.json'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
