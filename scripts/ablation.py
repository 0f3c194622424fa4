"""Rainbow ablation on CartPole-v1: ``python -m scripts.ablation --seeds 1 2 3 4 5 --jobs 2``.

Variants: plain DQN (the ``cartpole`` preset without the Double DQN target), each Rainbow component
alone on top of it, and all six together (``cartpole-rainbow``). Each run trains until a periodic
10-episode evaluation (every 5,000 agent steps) reaches a mean return of 475, or 100k steps.
Reported per variant over seeds: steps to solve (mean; unsolved runs count as 100k) and the area
under the evaluation curve, the mean evaluation return over the grid 5k, 10k, ..., 100k, where a
run that stopped once solved keeps its last evaluation (the agent is frozen from then on).
Writes ``ablation.json`` and ``ablation.md`` under ``--output-dir``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from agents.run import checks
from scripts._cli import ArgumentParser, cli_main

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
GRID = np.arange(5_000, 100_001, 5_000)


def run_one(job: tuple[str, int, str]) -> dict:
    from agents.dqn.build import train
    from agents.dqn.presets import cartpole, cartpole_rainbow
    from agents.run.tracking import read_metrics

    name, seed, out = job
    base = cartpole_rainbow() if name.startswith("all") else cartpole().replace(**VARIANTS[name])
    run_dir = Path(out) / f"{name.strip('+ ').split()[0]}-seed{seed}"
    summary = train(base.replace(seed=seed, output_dir=str(run_dir), progress=False))
    evals = read_metrics(run_dir / "metrics.csv").get("eval/mean_return", [])
    steps = np.array([s for s, _ in evals])
    values = np.array([v for _, v in evals])
    curve = [float(values[steps <= g][-1]) if (steps <= g).any() else 0.0 for g in GRID]
    return {"variant": name, "seed": seed, "solved_at": summary["solved_at_step"],
            "auc": float(np.mean(curve)), "sps": summary["sps"]}  # fmt: skip


def report(results: list[dict]) -> str:
    lines = ["| variant | solved (seeds) | steps to solve (mean) | AUC (mean eval return) |",
             "|---|---|---|---|"]  # fmt: skip
    for name in VARIANTS:
        rows = [r for r in results if r["variant"] == name]
        if not rows:
            continue
        solved = [r["solved_at"] for r in rows if r["solved_at"] is not None]
        steps = [r["solved_at"] if r["solved_at"] is not None else 100_000 for r in rows]
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
    p.add_argument("--output-dir", type=checks.path_arg, default=Path("runs/ablation"),
                   help="where the runs, ablation.json and ablation.md go")  # fmt: skip
    args = p.parse_args(argv)
    checks.check_number("--jobs", args.jobs, checks.Range(1, 1024, integer=True))
    for seed in args.seeds:
        checks.check_number("--seeds", seed, checks.SEED)
    checks.check_writable_dir("--output-dir", args.output_dir)
    jobs = [(v, s, str(args.output_dir)) for v in args.variants for s in args.seeds]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = []
        for r in pool.map(run_one, jobs):
            results.append(r)
            print(json.dumps(r), flush=True)
    from agents.run.checkpoint import atomic_write

    args.output_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2) + "\n"  # each file whole or not at all
    atomic_write(args.output_dir / "ablation.json", lambda f: f.write(text.encode()))
    table = report(results)
    atomic_write(args.output_dir / "ablation.md", lambda f: f.write((table + "\n").encode()))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
