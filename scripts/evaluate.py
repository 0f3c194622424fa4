"""Evaluate a trained agent: ``python -m scripts.evaluate runs/dqn --episodes 10 --record DIR``.

CHECKPOINT is a checkpoint file or a run directory (its newest checkpoint is used). The protocol
comes from the checkpoint's config unless ``--protocol`` overrides it. Prints and writes
per-episode raw returns (``episodes.csv``) and ``summary.json`` (mean, std, median, min, max,
human-normalized score with the score set named). ``--record DIR`` writes one mp4 per episode,
``--record-best`` keeps only the best one.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agents.checkpoint import load_checkpoint
from agents.evaluation import agent_policy, evaluate, load_policy, summarize_returns
from agents.loop import resolve_device
from envs.atari import is_atari_game, make_atari_env, print_games_if_requested
from scripts._cli import cli_main

PROG = "evaluate"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="checkpoint file, or a run directory")
    p.add_argument("--episodes", type=int, default=10, help="episodes to play (default 10)")
    p.add_argument("--epsilon", type=float, default=None, help="default: the run's eval epsilon")
    p.add_argument("--protocol", choices=("nature", "machado"), default=None)
    p.add_argument("--seed", type=int, default=0, help="evaluation seed (default 0)")
    p.add_argument("--record", type=Path, default=None, help="directory for one mp4 per episode")
    p.add_argument("--record-best", action="store_true", help="with --record: keep the best only")
    p.add_argument("--output-dir", type=Path, default=None, help="where summary.json goes")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    return p


def check_args(args: argparse.Namespace) -> None:
    if args.episodes < 1:
        raise ValueError(f"--episodes: {args.episodes} is not accepted; use an integer >= 1")
    if args.epsilon is not None and not 0.0 <= args.epsilon <= 1.0:
        raise ValueError(f"--epsilon: {args.epsilon} is not accepted; use a number in [0, 1]")


def recorded_episodes(policy, env_id, args, protocol, epsilon) -> dict:
    """Play each episode on a rendering env, writing one mp4 per episode."""
    from envs.video import record_episode

    if not is_atari_game(env_id):
        raise ValueError(f"--record: {env_id!r} cannot be recorded; recording needs an Atari game")
    args.record.mkdir(parents=True, exist_ok=True)
    returns, lengths, paths = [], [], []
    for k in range(args.episodes):
        env = make_atari_env(env_id, protocol, "eval", seed=args.seed + k, render_mode="rgb_array")
        try:
            out = record_episode(
                env, lambda obs: int(policy.act(obs[None], epsilon)[0]),
                args.record / f"episode_{k:03d}.mp4", seed=args.seed + k,
            )  # fmt: skip
        finally:
            env.close()
        returns.append(out["return"])
        lengths.append(out["length"])
        paths.append(out["path"])
    if args.record_best:
        best = int(np.argmax(returns))
        for k, path in enumerate(paths):
            if k != best:
                Path(path).unlink()
        paths = [paths[best]]
    summary = summarize_returns(returns, env_id)
    summary.update(lengths=lengths, videos=paths)
    return summary


@cli_main(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if print_games_if_requested(argv):
        return 0
    args = build_parser().parse_args(argv)
    check_args(args)
    device = resolve_device(args.device)
    state = load_checkpoint(args.checkpoint, map_location=device)
    config = state["config"]
    env_id = state["env_id"]
    protocol = args.protocol or config.get("protocol", "nature")
    epsilon = config.get("eval_epsilon", 0.05) if args.epsilon is None else args.epsilon
    policy = load_policy(state, device, seed=args.seed)
    if args.record is not None:
        summary = recorded_episodes(policy, env_id, args, protocol, epsilon)
    else:
        summary = evaluate(
            agent_policy(policy), env_id, args.episodes, epsilon, protocol, args.seed
        )
    summary.update(env=env_id, protocol=protocol, epsilon=epsilon, checkpoint=state["path"],
                   global_step=state.get("global_step"))  # fmt: skip
    out_dir = args.output_dir or Path(state["path"]).parent.parent / "evaluation"
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "episodes.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("episode", "return", "length"))
        writer.writerows(
            zip(range(len(summary["returns"])), summary["returns"], summary["lengths"])
        )
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    line = f"{env_id} ({protocol} protocol, epsilon {epsilon}): mean {summary['mean_return']:.2f}"
    line += f" +- {summary['std_return']:.2f}, median {summary['median_return']:.2f}, "
    line += f"min {summary['min_return']:.2f}, max {summary['max_return']:.2f} over "
    line += f"{summary['episodes']} episodes"
    if "human_normalized" in summary:
        line += (
            f"; human-normalized {summary['human_normalized']:.3f} ({summary['human_score_set']})"
        )
    print(line)
    print(f"summary: {out_dir / 'summary.json'}")
    for path in summary.get("videos", []):
        print(f"video: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
