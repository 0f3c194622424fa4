"""Benchmarks: `python -m scripts.benchmark SUITE [--steps N] [--json FILE]`.

A suite is a plain function in `SUITES` that takes the `--steps` budget (None: its default) and
returns {row name: {column: number}}; the table is printed and, with --json, written with the
machine it ran on. Suites:
- `envs`: agent steps per second (and emulator frames per second, 4 per step) of the single-env
  chain (`make_atari_env`) and of ale_py's vector env (`make_atari_vector_env`, N = 1, 2, 4, 8)
  on Pong and Breakout, random actions, nature protocol, train mode; `vs_single` is the vector
  env's throughput over the single env's.
- `dqn`: end-to-end DQN agent steps per second at the `cleanrl` replay ratio against a plain
  single-file style DQN run in the same process, update and replay sample costs, replay bytes per
  transition (see `scripts/bench_dqn.py`).
- `rainbow`: update cost of each Rainbow component relative to plain DQN, and prioritized
  sampling throughput at 1M transitions (see `scripts/bench_rainbow.py`).
- `all`: env-only, update-only (eager and compiled), replay sampling, end-to-end fast path for
  N = 1, 4, 8, 16 envs with the update's share of the step time, peak memory, on the training
  device (see `scripts/bench_all.py`).
- `drq`: the `drq` update (and a batch-1 forward) on Dopamine's network ('SAME' convolutions,
  7,744 features) against the paper's 'VALID' one, and its augmentation against the previous
  one (two gathers), in alternating rounds (see `scripts/bench_drq.py`).
- `distributed`: Ape-X agent steps per second with 1, 2 and 4 Ray actors on fake-pixels and
  Breakout against the single-process loop, learner updates per second, bytes shipped per
  transition (see `scripts/bench_distributed.py`; needs the distributed extra).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable
from typing import Any

from scripts._cli import cli_main

Results = dict[str, dict[str, float]]


def envs_suite(steps: int | None = None) -> Results:
    from scripts.bench_envs import envs_suite as run

    return run(steps)


def dqn_suite(steps: int | None = None) -> Results:
    from scripts.bench_dqn import dqn_suite as run

    return run(steps)


def rainbow_suite(steps: int | None = None) -> Results:
    from scripts.bench_rainbow import rainbow_suite as run

    return run(steps)


def all_suite(steps: int | None = None) -> Results:
    from scripts.bench_all import all_suite as run

    return run(steps)


def drq_suite(steps: int | None = None) -> Results:
    from scripts.bench_drq import drq_suite as run

    return run(steps)


def distributed_suite(steps: int | None = None) -> Results:
    from scripts.bench_distributed import distributed_suite as run

    return run(steps)


SUITES: dict[str, Callable[[int | None], Results]] = {
    "envs": envs_suite,
    "dqn": dqn_suite,
    "rainbow": rainbow_suite,
    "all": all_suite,
    "distributed": distributed_suite,
    "drq": drq_suite,
}


def format_table(results: Results) -> str:
    """Rows and columns of `results` as an aligned text table."""
    columns = list(dict.fromkeys(key for row in results.values() for key in row))
    header = ["name", *columns]
    lines = [[name, *(str(row.get(c, "")) for c in columns)] for name, row in results.items()]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths))
        )
        for line in [header, *lines]
    )


def machine_info() -> dict[str, Any]:
    """Where the numbers were measured."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from agents.run import checks
    from scripts._cli import ArgumentParser

    parser = ArgumentParser(prog="benchmark", description=__doc__.split("\n\n")[0],
                            epilog=__doc__.split("\n\n", 1)[1])  # fmt: skip
    parser.add_argument("suite", choices=sorted(SUITES), help="which benchmark suite to run")
    parser.add_argument(
        "--steps", type=int, default=None, help="steps per measurement (default: the suite's)"
    )
    parser.add_argument(
        "--json",
        type=checks.path_arg,
        default=None,
        metavar="FILE",
        help="also write the results here, as JSON (default: none: print the table only)",
    )
    args = parser.parse_args(argv)
    if args.steps is not None:
        checks.check_number("--steps", args.steps, checks.POSITIVE_INT)
    if args.json is not None:
        checks.check_writable_file("--json", args.json)
    return args


@cli_main("benchmark")
def main(argv: list[str] | None = None) -> int:
    """Run one suite, print its table, optionally write JSON; returns the exit code."""
    args = parse_args(argv)
    results = SUITES[args.suite](args.steps)
    print(f"suite {args.suite} (steps: {args.steps or 'default'})")
    print(format_table(results))
    if args.json is not None:
        record = {"suite": args.suite, "steps": args.steps, "machine": machine_info()}
        record["results"] = results
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(args.json)  # never leave a half-written file
    return 0


if __name__ == "__main__":
    sys.exit(main())
