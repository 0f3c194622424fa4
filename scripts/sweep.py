"""Many training runs at once on Ray: games x seeds x settings, resumable, with one report.

``python -m scripts.sweep --games Pong,Breakout --seeds 1,2,3 --preset cleanrl --set
learning_rate=1e-4,3e-4 --output-dir runs/sweep1`` trains every game with every seed and every
combination of the ``--set`` values, each run a ``python -m scripts.train`` process in
``OUTPUT_DIR/GAME/<set-part>/seedS`` (``runs/sweep1/Pong/learning_rate=0.0001/seed1``; no
set-part level without ``--set``), run by one Ray task (``scripts.sweep_tasks``; the grid,
commands and run states in ``sweep_plan``, the report in ``sweep_report``).

- ``--set KEY=V1,V2`` (repeatable): a training setting (``TrainConfig`` field, ``learning_rate``
  or ``learning-rate``) and its values; the runs take every combination. Every run's config is
  checked (``agents.dqn.validation``) before any starts: one bad cell stops the sweep in one line.
- Games: ``--games`` (Atari games in any spelling, or any env id ``scripts.train`` takes), or
  ``--suite atari100k`` for the 26 games of the Atari 100k benchmark (use ``--preset drq``, the
  preset of that benchmark: the suite does not change the preset).
- Ray: ``--address auto`` (or ``ray://HOST:10001``) joins a cluster; without it a private Ray
  instance uses this machine's CPUs. Each run asks Ray for ``--cpus-per-run`` CPUs (its torch and
  OpenMP threads) and ``--gpus-per-run`` GPUs (a fraction shares one); Ray starts the runs as the
  resources free up. On a cluster, OUTPUT_DIR must be on a file system every node sees at the
  same path, with this package installed on every node.
- Resumable: a finished run is skipped, an interrupted one resumed (``scripts.train
  --resume``), one stopped during its final evaluation gets it from ``scripts.evaluate``, a
  directory without a checkpoint is moved aside (``seedS.abandoned-TIME``) and the run starts
  again. A failed run is tried again ``--retries`` times (from the state it left), then reported
  as failed; the sweep then exits 1.
- Logs: ``OUTPUT_DIR/logs/NAME.log`` (each attempt's command, output and exit code).
- Failures: ``OUTPUT_DIR/failures.json`` keeps each run's failed attempts (exit code, the last
  line of its log) over every invocation, until the run finishes: ``--report`` shows a run that
  failed in an earlier invocation as failed, and a later invocation numbers its attempts on
  (attempt 3 of 4 after two earlier ones).
- Ctrl-C, SIGTERM or SIGHUP (the terminal closed; ignored under ``nohup``): every running
  training gets SIGTERM (it checkpoints and exits), the report is written for what finished, and
  the sweep exits 130/143/129; the same command continues it.
- ``--dry-run``: print each run's name, state (new, interrupted, trained, finished), directory
  and command; ``--report``: write the report from the runs there are; neither needs Ray.
- Report: ``OUTPUT_DIR/report.md`` and ``report.json``: per game and settings the mean final
  evaluation return over seeds, the human-normalized score of Atari games, the failed and
  unfinished runs; per settings the mean, median and IQM of the human-normalized scores over the
  games with stratified-bootstrap 95% intervals; ``OUTPUT_DIR/curves.png``: the learning curves,
  one panel per game, one line per settings.
- Atari 100k: when every game is an Atari-100k game and the runs use the atari100k protocol
  (``--preset drq``), or with ``--suite atari100k``, the report opens with the benchmark's table
  per settings (``scripts.atari100k``'s): per game the published columns (random, human, DER,
  DrQ(eps), SPR, BBF) beside ours and our HNS beside DrQ(eps)'s, and our mean, median and IQM
  (with intervals) beside the published aggregates over the same games; a line says so when the
  runs do not use the benchmark's protocol or 100k steps.
- ``--track``: every run tracked in Weights & Biases, in one group named after OUTPUT_DIR.
- Flags after ``--`` go to every ``scripts.train`` call, e.g. ``-- --total-steps 50000``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from envs.atari100k import GAMES as ATARI_100K_GAMES
from scripts import sweep_plan, sweep_report
from scripts import sweep_tasks as tasks
from scripts._cli import ArgumentParser, cli_main, split_passthrough

PROG = "sweep"
SUITES = {"atari100k": ATARI_100K_GAMES}


def build_parser() -> argparse.ArgumentParser:
    from agents.dqn.presets import PRESETS
    from agents.run.checks import path_arg

    p = ArgumentParser(
        prog=PROG,
        description=__doc__.splitlines()[0],
        epilog="Flags after -- go to every scripts.train call, e.g. -- --total-steps 50000.",
    )
    p.add_argument(
        "--games",
        default=None,
        help="comma-separated games or env ids, e.g. Pong,Breakout (default: none: "
        "--suite decides)",
    )
    p.add_argument(
        "--suite",
        choices=tuple(SUITES),
        default=None,
        help="a named set of games: atari100k (its 26 games; use --preset drq) "
        "(default: none: --games decides)",
    )
    p.add_argument("--seeds", nargs="+", default=["1"], help="seeds: 1, or 1,2,3, or 1 2 3")
    p.add_argument(
        "--preset",
        default="cleanrl",
        help=f"training preset of every run: one of {', '.join(PRESETS)}",
    )
    p.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="sweep a training setting over these values (repeatable: every "
        "combination runs), e.g. learning_rate=1e-4,3e-4 (default: none)",
    )
    p.add_argument(
        "--output-dir",
        type=path_arg,
        default=Path("runs/sweep"),
        help="the runs (OUTPUT_DIR/GAME/<set-part>/seedS), logs and report",
    )
    p.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join: auto, or ray://HOST:10001 (default: none: a "
        "private Ray instance on this machine)",
    )
    p.add_argument(
        "--cpus-per-run",
        type=float,
        default=1.0,
        metavar="N",
        help="CPUs Ray reserves for each run, also its torch and OpenMP threads",
    )
    p.add_argument(
        "--gpus-per-run",
        type=float,
        default=0.0,
        metavar="N",
        help="GPUs Ray reserves for each run (0.25: four runs share one; 0: the runs see no GPU)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=1,
        metavar="N",
        help="further attempts of a failed run before it is reported failed",
    )
    p.add_argument(
        "--track",
        action="store_true",
        help="track every run in Weights & Biases, in one group named after OUTPUT_DIR",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the runs, their states and commands; run nothing",
    )
    p.add_argument(
        "--report",
        action="store_true",
        help="only write the report from the runs there are; train nothing",
    )
    p.add_argument(
        "--bootstrap-reps",
        type=int,
        default=2000,
        metavar="N",
        help="stratified-bootstrap resamples for the aggregates' intervals",
    )
    return p


def select_games(games: str | None, suite: str | None) -> list[str]:
    """The games of ``--games`` (each in its sweep spelling, ``sweep_plan.game_label``) or of
    ``--suite``, in order, each once."""
    if games is not None and suite is not None:
        raise ValueError("--games and --suite both choose the games; give one of them")
    if suite is not None:
        return list(SUITES[suite])
    if games is None:
        raise ValueError("no games: give --games (e.g. --games Pong,Breakout) or --suite atari100k")
    names = [sweep_plan.game_label(part) for part in games.split(",") if part.strip()]
    if not names:
        raise ValueError(f"--games: {games!r} names no game; e.g. --games Pong,Breakout")
    return list(dict.fromkeys(names))


def check_numbers(args: argparse.Namespace) -> None:
    from agents.run import checks

    checks.check_number("--cpus-per-run", args.cpus_per_run, checks.Range(0.0, low_open=True))
    checks.check_number("--gpus-per-run", args.gpus_per_run, checks.Range(0.0))
    checks.check_number("--retries", args.retries, checks.COUNT)
    checks.check_number("--bootstrap-reps", args.bootstrap_reps, checks.BOOTSTRAP_REPS)
    if args.dry_run and args.report:
        raise ValueError("--dry-run and --report: give one of them")


def print_plan(
    runs: Sequence[sweep_plan.SweepRun], plan: sweep_plan.Plan, failures: dict[str, dict]
) -> None:
    """``--dry-run``: one line per run: name, state, directory, and the command that takes it
    on (a directory without a checkpoint would first be set aside; the failed attempts of
    earlier sweeps, from failures.json)."""
    for run in runs:
        state = sweep_plan.state_of(run.path)
        if state == "finished":
            print(f"{run.name}  finished  {run.path}  (nothing to run)")
            continue
        aside = "  (its directory has no checkpoint: set aside first)"
        aside = aside if state == "new" and sweep_plan.needs_set_aside(run.path) else ""
        if run.name in failures:
            codes = [
                "lost" if a.get("exit_code") is None else str(a["exit_code"])
                for a in failures[run.name]["attempts"]
            ]
            aside += f"  (failed before: {_count(len(codes), 'attempt')}, exit code"
            aside += f"{'s' if len(codes) != 1 else ''} {', '.join(codes)})"
        print(f"{run.name}  {state}  {run.path}  {shlex.join(plan.command(run, state))}{aside}")


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def count_states(runs: Sequence[sweep_plan.SweepRun], failures: dict[str, dict]) -> str:
    """How many runs are in each state, and how many of the unfinished failed in an earlier
    sweep (failures.json)."""
    states = {run.name: sweep_plan.state_of(run.path) for run in runs}
    text = ", ".join(f"{list(states.values()).count(s)} {s}" for s in sweep_plan.STATES)
    failed = [
        name
        for name, state in states.items()
        if state != "finished" and failures.get(name, {}).get("failed")
    ]
    if failed:
        text += f"; {len(failed)} of them failed in an earlier sweep ({tasks.FAILURES_FILE})"
    return text


@cli_main(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    argv, extra = split_passthrough(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from agents.dqn.presets import PRESETS
    from scripts.atari100k import parse_seeds

    if args.preset not in PRESETS:
        raise ValueError(
            f"--preset: unknown preset {args.preset!r}; accepted: {', '.join(PRESETS)}"
        )
    games = select_games(args.games, args.suite)
    seeds = parse_seeds(args.seeds)
    settings = sweep_plan.parse_settings(args.settings)
    check_numbers(args)
    sweep_plan.check_extra(extra, settings)
    output_dir: Path = args.output_dir
    plan = sweep_plan.Plan(
        preset=args.preset,
        name=output_dir.resolve().name,
        extra=tuple(extra),
        cpus_per_run=args.cpus_per_run,
        gpus_per_run=args.gpus_per_run,
        retries=args.retries,
        track=args.track,
    )
    runs = sweep_plan.make_grid(games, seeds, settings, output_dir)
    combos = len(runs) // (len(games) * len(seeds))
    shape = " x ".join(
        [_count(len(games), "game"), _count(len(seeds), "seed")]
        + ([_count(combos, "combination")] if settings else [])
    )
    if args.report:
        return write(output_dir, runs, plan, None, args, 0)
    sweep_plan.check_cells(runs, plan, machine=args.address is None)
    failures = tasks.read_failures(output_dir)
    print(
        f"{len(runs)} runs ({shape}), preset {args.preset}, in {output_dir}: "
        f"{count_states(runs, failures)}",
        flush=True,
    )
    if args.dry_run:
        print_plan(runs, plan, failures)
        return 0
    ray = tasks.import_ray()
    started = tasks.connect(args.address)
    try:
        print(tasks.check_resources(plan, local=args.address is None), flush=True)
        scheduler = tasks.Scheduler(runs, plan, output_dir)
        outcomes = scheduler.run()
    finally:
        if started:
            ray.shutdown()
    code = 0
    if scheduler.stop_signal is not None:
        code = 128 + scheduler.stop_signal
    elif any(o.status == "failed" for o in outcomes.values()):
        code = 1
    return write(output_dir, runs, plan, outcomes, args, code)


def write(
    output_dir: Path,
    runs: Sequence[sweep_plan.SweepRun],
    plan: sweep_plan.Plan,
    outcomes: dict[str, tasks.Outcome] | None,
    args: argparse.Namespace,
    code: int,
) -> int:
    """Write and print the report (``--bootstrap-reps`` resamples; with ``--suite atari100k``
    the Atari 100k table whatever the runs' protocol); returns ``code``."""
    text, _, drawn = sweep_report.write_report(
        output_dir, runs, plan, outcomes, args.bootstrap_reps, args.suite
    )
    print(text, end="")
    curves = f", {output_dir / 'curves.png'}" if drawn else " (no curves: no run has logged one)"
    print(f"report: {output_dir / 'report.md'}, {output_dir / 'report.json'}{curves}")
    return code


if __name__ == "__main__":
    sys.exit(main())
