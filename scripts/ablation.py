"""Rainbow ablation on CartPole-v1: ``python -m scripts.ablation --seeds 1 2 3 4 5 --jobs 2``.

Variants: plain DQN (the ``cartpole`` preset without the Double DQN target), each Rainbow component
alone on top of it, and all six together (``cartpole-rainbow``). Each run trains until a periodic
10-episode evaluation (every 5,000 agent steps) reaches a mean return of 475, or 100k steps
(``--max-steps``).
Reported per variant over seeds: steps to solve (mean; unsolved runs count as 100k) and the area
under the evaluation curve, the mean evaluation return over the grid 5k, 10k, ..., 100k, where a
run that stopped once solved keeps its last evaluation (the agent is frozen from then on).
Writes ``ablation.json`` and ``ablation.md`` under ``--output-dir``.

Each run is ``OUTPUT_DIR/VARIANT-seedS`` (``DQN-seed1``, ``3-step-seed2``, ``all-seed5``...); the
same command again skips the runs that ended (solved, or at ``--max-steps``), continues those
that were stopped from their newest checkpoint (``--resume``), and starts the rest. Ctrl-C,
SIGTERM or SIGHUP: each running training stops with its checkpoint, no run is started after it,
no table is written (it would lack runs), and the ablation exits 130/143/129.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from agents.run import checks
from agents.run.interrupts import detach_from_terminal, stop_signals
from scripts._cli import ArgumentParser, cli_main
from scripts.atari100k_report import read_json

PROG = "ablation"
PLAIN = {"double_dqn": False}
VARIANTS: dict[str, dict] = {
    "DQN": PLAIN,
    "+ double": {"double_dqn": True},
    "+ dueling": {**PLAIN, "dueling": True},
    "+ 3-step": {**PLAIN, "n_step": 3},
    "+ prioritized": {**PLAIN, "prioritized": True},
    "+ distributional": {**PLAIN, "distributional": True, "v_min": 0.0, "v_max": 200.0},
    "+ noisy": {**PLAIN, "noisy": True},
    "all six (cartpole-rainbow)": {},
}
EVAL_EVERY = 5_000
"""Agent steps between the periodic evaluations (the cartpole presets'): the AUC's grid step."""
MAX_STEPS = 100_000
_STOP: Any = None  # in a worker: the ablation's stop event (multiprocessing.Event)


def run_dir_of(name: str, seed: int, out: str | Path) -> Path:
    return Path(out) / f"{name.strip('+ ').split()[0]}-seed{seed}"


def start_worker(stop: Any) -> None:
    """A worker process: between runs it ignores the stop signals (the ablation passes SIGTERM
    on to it; each run takes them while it trains) and starts no run once ``stop`` is set."""
    global _STOP
    _STOP = stop
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


def run_one(job: tuple[str, int, str, int]) -> dict | None:
    """Train (or continue) one variant and seed; its result, ``{"stopped": True, ...}`` when a
    signal stopped it, or None when the ablation was stopped before it started."""
    from agents.dqn.build import train
    from agents.dqn.presets import cartpole, cartpole_rainbow
    from agents.run.checkpoint import list_checkpoints
    from agents.run.directory import RunFinished, run_markers
    from agents.run.tracking import read_metrics

    name, seed, out, max_steps = job
    if _STOP is not None and _STOP.is_set():
        return None
    base = cartpole_rainbow() if name.startswith("all") else cartpole().replace(**VARIANTS[name])
    run_dir = run_dir_of(name, seed, out)
    config = base.replace(seed=seed, output_dir=str(run_dir), progress=False,
                          total_steps=max_steps)  # fmt: skip
    summary = read_json(run_dir / "summary.json")
    if summary is None or "stopped_by" in summary:  # not ended: continue it, or start it
        resume = run_dir.is_dir() and bool(list_checkpoints(run_dir / "checkpoints"))
        stale = not resume and run_dir.is_dir() and bool(run_markers(run_dir))
        try:  # stale: a run stopped (or killed) before its first checkpoint, started over
            summary = train(config, resume=resume, overwrite=stale)
        except RunFinished:  # trained to the end, summary lost (killed while writing it)
            summary = {"solved_at_step": None, "sps": None}
    if "stopped_by" in summary:
        return {"variant": name, "seed": seed, "stopped": True}
    evals = read_metrics(run_dir / "metrics.csv").get("eval/mean_return", [])
    steps = np.array([s for s, _ in evals])
    values = np.array([v for _, v in evals])
    grid = np.arange(EVAL_EVERY, max_steps + 1, EVAL_EVERY)
    curve = [float(values[steps <= g][-1]) if (steps <= g).any() else 0.0 for g in grid]
    return {"variant": name, "seed": seed, "solved_at": summary["solved_at_step"],
            "auc": float(np.mean(curve)), "sps": summary["sps"]}  # fmt: skip


def report(results: list[dict], max_steps: int = MAX_STEPS) -> str:
    lines = ["| variant | solved (seeds) | steps to solve (mean) | AUC (mean eval return) |",
             "|---|---|---|---|"]  # fmt: skip
    for name in VARIANTS:
        rows = [r for r in results if r["variant"] == name]
        if not rows:
            continue
        solved = [r["solved_at"] for r in rows if r["solved_at"] is not None]
        steps = [r["solved_at"] if r["solved_at"] is not None else max_steps for r in rows]
        auc = [r["auc"] for r in rows]
        lines.append(f"| {name} | {len(solved)}/{len(rows)} | {np.mean(steps):,.0f} | "
                     f"{np.mean(auc):.1f} +- {np.std(auc):.1f} |")  # fmt: skip
    return "\n".join(lines)


@cli_main(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5],
                   help="seeds of each variant")  # fmt: skip
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                   metavar="VARIANT", help=f"variants to run, of: {', '.join(VARIANTS)} "
                   "(default: all of them)")  # fmt: skip
    p.add_argument("--jobs", type=int, default=2, help="parallel runs (one CPU thread each)")
    p.add_argument("--max-steps", type=int, default=MAX_STEPS,
                   help="agent steps at most per run (it stops sooner once solved)")  # fmt: skip
    p.add_argument("--output-dir", type=checks.path_arg, default=Path("runs/ablation"),
                   help="where the runs, ablation.json and ablation.md go")  # fmt: skip
    args = p.parse_args(argv)
    checks.check_number("--jobs", args.jobs, checks.Range(1, 1024, integer=True))
    for seed in args.seeds:
        checks.check_number("--seeds", seed, checks.SEED)
    checks.check_number("--max-steps", args.max_steps, checks.Range(EVAL_EVERY, integer=True))
    checks.check_writable_dir("--output-dir", args.output_dir)
    jobs = [(v, s, str(args.output_dir), args.max_steps) for v in args.variants
            for s in args.seeds]  # fmt: skip
    results, stopped = run_all(jobs, args.jobs)
    if stopped is not None:
        left = len(jobs) - len(results)
        print(f"stopped by {signal.Signals(stopped).name}: {len(results)} of {len(jobs)} runs "
              f"ended, {left} stopped with their checkpoint or not started; the same command "
              "continues them", flush=True)  # fmt: skip
        return 128 + stopped
    from agents.run.checkpoint import atomic_write

    args.output_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2) + "\n"  # each file whole or not at all
    atomic_write(args.output_dir / "ablation.json", lambda f: f.write(text.encode()))
    table = report(results, args.max_steps)
    atomic_write(args.output_dir / "ablation.md", lambda f: f.write((table + "\n").encode()))
    print(table)
    return 0


def run_all(jobs: list[tuple[str, int, str, int]], workers: int) -> tuple[list[dict], int | None]:
    """Every job on ``workers`` processes; returns the results of the runs that ended, in the
    order of ``jobs``, and the signal that stopped the ablation (None: none did). A signal stops
    the runs under way (each gets SIGTERM, checkpoints and exits) and starts no other."""
    stop = multiprocessing.Event()
    received: list[int] = []

    def stop_all() -> None:  # no run starts from now on; those under way checkpoint and exit
        stop.set()
        for child in multiprocessing.active_children():  # the workers
            with contextlib.suppress(OSError):
                os.kill(child.pid, signal.SIGTERM)

    def on_signal(signum: int, frame: object) -> None:
        if signum == signal.SIGHUP:
            detach_from_terminal()
        if not received:
            received.append(signum)
        stop_all()

    previous = {sig: signal.getsignal(sig) for sig in stop_signals()}
    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        with ProcessPoolExecutor(max_workers=workers, initializer=start_worker,
                                 initargs=(stop,)) as pool:  # fmt: skip
            futures = {pool.submit(run_one, job): k for k, job in enumerate(jobs)}
            done: dict[int, dict] = {}
            try:
                for future in as_completed(futures):
                    result = future.result()  # a run's error (a refused directory) is raised here
                    if result is not None and not result.get("stopped"):
                        done[futures[future]] = result
                        print(json.dumps(result), flush=True)
            except BaseException:  # the error ends the ablation: not the other runs' training
                for future in futures:
                    future.cancel()
                stop_all()
                raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return [done[k] for k in sorted(done)], (received[0] if received else None)


if __name__ == "__main__":
    sys.exit(main())
