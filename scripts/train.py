"""Train a DQN agent: ``python -m scripts.train --env Breakout --preset cleanrl --seed 1``.

Flags come from ``agents.config.TrainConfig`` (``--help`` lists them with their docstrings); the
defaults are those of ``--preset``. Writes DIR/config.json, DIR/metrics.csv, DIR/checkpoints/,
DIR/videos/ and DIR/summary.json under ``--output-dir``. ``--list-games`` prints the Atari games.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import tyro

from agents.config import TrainConfig
from agents.loop import train
from agents.presets import preset
from envs.atari import print_games_if_requested
from scripts._cli import cli_main

PROG = "train"


def parse_config(argv: Sequence[str]) -> TrainConfig:
    """The preset named by ``--preset`` (default cleanrl), overridden by the other flags."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default="cleanrl")
    known, _ = pre.parse_known_args(argv)
    base = preset(known.preset)
    return tyro.cli(TrainConfig, default=base, args=list(argv), prog=PROG)


@cli_main(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if print_games_if_requested(argv):
        return 0
    config = parse_config(argv)
    summary = train(config)
    out = config.output_dir
    print(f"trained {config.env} for {summary['global_step']} agent steps ({summary['sps']:.0f}/s)")
    if "eval_mean_return" in summary:
        line = f"evaluation: mean return {summary['eval_mean_return']:.2f} over "
        line += f"{summary['eval_episodes']} episodes (epsilon {config.eval_epsilon})"
        if "eval_human_normalized" in summary:
            line += f", human-normalized {summary['eval_human_normalized']:.3f}"
        print(line)
    print(f"outputs: {out}/summary.json, {out}/metrics.csv, {out}/checkpoints/")
    if "video" in summary:
        print(f"video: {summary['video']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
