"""Evaluate a trained agent: ``python -m scripts.evaluate runs/dqn --episodes 10 --record DIR``.

CHECKPOINT is a checkpoint file or a run directory (its newest checkpoint is used): a DQN run, or
a behaviour-cloning classifier from ``scripts.train_supervised --dataset trajectories:PATH``.
``--pretrained NAME`` plays a shipped agent instead (``agents/pretrained/``, or the path of a
``.safetensors``/``.json`` pair written by ``scripts.export_pretrained``); every other flag works
the same, and the summary goes to ``runs/pretrained/NAME/evaluation`` unless ``--output-dir``.

- ``--protocol nature`` (Mnih et al. 2015: up to 30 no-op starts, epsilon 0.05), ``machado``
  (Machado et al. 2018: sticky actions 0.25, no no-ops, epsilon 0.001) or ``atari100k``
  (Dopamine's labs/atari_100k: no sticky actions, up to 30 no-ops, epsilon 0.001, 100 episodes
  unless ``--episodes``); all cap an episode at ``--max-episode-frames`` (108,000). Without it the
  run's protocol and eval epsilon are used; ``--epsilon`` overrides either.
- ``--env GAME`` plays another game than the checkpoint's; refused when the observation shape or
  the action set differs, unless ``--force`` (actions are then mapped by name, with a warning).
- Writes per-episode raw returns (``episodes.csv``) and ``summary.json`` (mean, std, median, min,
  max, human-normalized score, the score set and the protocol), both atomically.
- ``--record DIR`` writes one mp4 per episode, ``--record-best`` keeps only the best one: of any
  env that renders rgb frames (Atari games, fake, CartPole-v1, Acrobot-v1, MountainCar-v0...), at
  the game's real speed (Atari 15 fps: one frame per agent step of 4 emulator frames at 60 Hz;
  gymnasium envs their ``render_fps``); any other env is refused in one line.
- ``--save-trajectories PATH`` writes what the agent saw and did to a compressed npz
  (``agents.supervised.trajectories``): the data of behaviour cloning.
- SIGINT, SIGTERM or SIGHUP (the terminal closed; not under ``nohup``), in any phase: one line
  (none after SIGHUP), exit code 130, 143 or 129, no traceback, no half-written file (videos,
  trajectories and outputs are written atomically). Loading and playing stop at once;
  ``episodes.csv`` and ``summary.json`` are finished first once their writing began.
"""

# ruff: noqa: E402 - the signal handler of the start-up comes before the slow imports
from __future__ import annotations

import sys

if __name__ == "__main__":  # a signal while the modules load: one line, no traceback
    from scripts._cli import exit_on_signals_while_loading

    exit_on_signals_while_loading()

import argparse
import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agents.evaluation.env_switch import (
    check_env_switch,
    checkpoint_interface,
    env_interface,
    mapped_policy,
)
from agents.evaluation.evaluate import (
    PROTOCOL_EVAL_EPISODES,
    PROTOCOL_EVAL_EPSILON,
    Policy,
    action_shares,
    agent_policy,
    evaluate,
    load_policy,
    save_trajectories,
    summarize_returns,
)
from agents.evaluation.pretrained import load_pretrained
from agents.evaluation.recording import check_recordable, make_recording_env
from agents.run import checks, file_checks, machine
from agents.run.checkpoint import atomic_write, load_checkpoint
from agents.run.files import resolve_device
from agents.run.interrupts import Interrupted, SignalGuard, pause_point
from agents.supervised.trajectories import TrajectoryRecorder
from envs.atari import FRAME_SKIP, get_protocol, print_games_if_requested
from envs.scores import HUMAN_SCORE_SET
from envs.vector import check_env_id
from scripts._cli import ArgumentParser, cli_main

PROG = "evaluate"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="checkpoint file, or a run directory (or give --pretrained)")  # fmt: skip
    p.add_argument("--pretrained", default=None, metavar="NAME",
                   help="play a shipped agent (agents/pretrained/), or a .safetensors/.json pair "
                   "at this path (default: none: play CHECKPOINT)")  # fmt: skip
    p.add_argument("--episodes", type=int, default=None, metavar="N",
                   help="episodes to play (default: the protocol's, 100 for atari100k, else 10)"
                   )  # fmt: skip
    p.add_argument("--epsilon", type=float, default=None,
                   help="probability of a random action (default: the protocol's with "
                   "--protocol: nature 0.05, machado and atari100k 0.001; else the run's eval "
                   "epsilon)")  # fmt: skip
    p.add_argument("--protocol", choices=tuple(PROTOCOL_EVAL_EPSILON), default=None,
                   help="evaluation protocol: no-op starts, sticky actions and epsilon "
                   "(default: the run's protocol)")  # fmt: skip
    p.add_argument("--max-episode-frames", type=int, default=108_000, metavar="N",
                   help="episode cap in emulator frames (default: 108000)")  # fmt: skip
    p.add_argument("--env", default=None, metavar="GAME",
                   help="play this game instead of the checkpoint's (default: the checkpoint's "
                   "game)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="with --env: play a different action set")
    p.add_argument(
        "--seed", type=int, default=0, metavar="INT", help="evaluation seed (default: 0)"
    )
    p.add_argument("--record", type=checks.path_arg, default=None, metavar="DIR",
                   help="write one mp4 per episode to this directory (default: none: no "
                   "videos)")  # fmt: skip
    p.add_argument("--record-best", action="store_true", help="with --record: keep the best only")
    p.add_argument("--save-trajectories", type=checks.path_arg, default=None, metavar="PATH",
                   help="write observations, actions, rewards, episodes to this .npz "
                   "(default: none: no trajectories are saved)")  # fmt: skip
    p.add_argument("--output-dir", type=checks.path_arg, default=None, metavar="DIR",
                   help="where episodes.csv and summary.json go (default: RUN/evaluation beside "
                   "the checkpoints folder; runs/pretrained/NAME/evaluation with --pretrained)"
                   )  # fmt: skip
    p.add_argument("--device", default="auto",
                   help="auto (cuda when available, else cpu), cpu or cuda")  # fmt: skip
    return p


def check_args(args: argparse.Namespace) -> None:
    if (args.checkpoint is None) == (args.pretrained is None):
        given = "both" if args.pretrained is not None else "neither"
        raise ValueError(
            f"give either CHECKPOINT (a checkpoint file or run directory) or --pretrained NAME; "
            f"got {given}"
        )
    if args.episodes is not None:
        checks.check_number("--episodes", args.episodes, checks.EPISODES)
    if args.epsilon is not None:
        checks.check_number("--epsilon", args.epsilon, checks.PROBABILITY)
    checks.check_number("--max-episode-frames", args.max_episode_frames, checks.EPISODE_FRAMES)
    checks.check_number("--seed", args.seed, checks.SEED)
    machine.check_device("--device", args.device)
    if args.force and args.env is None:
        raise ValueError("--force: only means something with --env GAME; add --env or drop it")
    if args.save_trajectories is not None and args.record is not None:
        raise ValueError(
            "--save-trajectories cannot be combined with --record (videos are played on a "
            "separate env); run the evaluation twice"
        )
    if args.env is not None:
        check_env_id(args.env)
        machine.env_spec(args.env)


def check_outputs(args: argparse.Namespace, out_dir: Path) -> None:
    """Every file the evaluation will write can be written (probed, nothing left behind), before
    the first episode is played."""
    checks.check_writable_dir("--output-dir", out_dir)
    if args.record is not None:
        checks.check_writable_dir("--record", args.record)
    if args.save_trajectories is not None:
        checks.check_writable_file("--save-trajectories", args.save_trajectories)


def default_epsilon(protocol_flag: str | None, config: dict) -> float:
    """The protocol's epsilon when ``--protocol`` is given, else the run's eval epsilon."""
    if protocol_flag is not None:
        return PROTOCOL_EVAL_EPSILON[protocol_flag]
    fallback = PROTOCOL_EVAL_EPSILON.get(config.get("protocol", "nature"), 0.05)
    return float(config.get("eval_epsilon", fallback))


def recorded_episodes(act: Policy, env_id, args, protocol, epsilon) -> dict:
    """Play each episode on a rendering env, writing one mp4 per episode at the game's speed."""
    from envs.video import record_episode

    args.record.mkdir(parents=True, exist_ok=True)
    cap_steps = max(1, args.max_episode_frames // FRAME_SKIP)  # a gymnasium env's cap, as evaluate
    loop_steps = -(-args.max_episode_frames // FRAME_SKIP)  # >= cap_steps: the env's cap ends it
    returns, lengths, paths, records = [], [], [], []
    for k in range(args.episodes):
        env = make_recording_env(env_id, protocol, seed=args.seed + k,
                                 max_episode_frames=args.max_episode_frames,
                                 max_episode_steps=cap_steps)  # fmt: skip

        def policy(obs) -> int:
            pause_point("record")  # a test hook: waits for a signal when a test asks
            return int(act(np.asarray(obs)[None], epsilon)[0])

        try:
            out = record_episode(env, policy, args.record / f"episode_{k:03d}.mp4",
                                 max_steps=loop_steps, seed=args.seed + k)  # fmt: skip
        finally:
            env.close()
        returns.append(out["return"])
        lengths.append(out["length"])
        paths.append(out["path"])
        records.append(out)
    if args.record_best:
        best = int(np.argmax(returns))
        for k, path in enumerate(paths):
            if k != best:
                Path(path).unlink()
        paths, records = [paths[best]], [records[best]]
    summary = summarize_returns(returns, env_id)
    summary.update(lengths=lengths, videos=paths)
    summary["video_frames"] = [r["frames"] for r in records]
    summary["video_fps"] = records[0]["fps"]
    return summary


def video_line(path: str, frames: int, fps: float) -> str:
    """``video: PATH (52 frames at 50 fps, 1.04 s)``."""
    return f"video: {path} ({frames:,} frames at {fps:g} fps, {frames / fps:.2f} s)"


def write_outputs(out_dir: Path, summary: dict) -> None:
    """``episodes.csv`` and ``summary.json``, each written atomically."""
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(("episode", "return", "length"))
    writer.writerows(zip(range(len(summary["returns"])), summary["returns"], summary["lengths"]))
    atomic_write(out_dir / "episodes.csv", lambda f: f.write(rows.getvalue().encode()))
    pause_point("outputs")  # a test hook: waits for a signal when a test asks
    text = json.dumps(summary, indent=2) + "\n"
    atomic_write(out_dir / "summary.json", lambda f: f.write(text.encode()))


def default_output_dir(state: dict) -> Path:
    """``evaluation`` beside a run's checkpoints folder; ``runs/pretrained/NAME/evaluation`` for a
    shipped agent (never inside the package)."""
    if "pretrained" in state:
        return Path("runs") / "pretrained" / Path(state["path"]).stem / "evaluation"
    return Path(state["path"]).parent.parent / "evaluation"


def summary_line(summary: dict) -> str:
    line = f"{summary['env']} ({summary['protocol']} protocol, epsilon {summary['epsilon']}): "
    line += f"mean {summary['mean_return']:.2f} +- {summary['std_return']:.2f}, "
    line += f"median {summary['median_return']:.2f}, min {summary['min_return']:.2f}, "
    line += f"max {summary['max_return']:.2f} over {summary['episodes']} episodes"
    if summary["human_normalized"] is not None:
        line += f"; human-normalized {summary['human_normalized']:.3f} "
        line += f"({summary['human_score_set']})"
    return line


@cli_main(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    signals = SignalGuard()
    phase = ["start-up"]  # where a signal stopped it
    with signals:  # SIGINT/SIGTERM/SIGHUP from here on: one line, exit code 130/143/129
        try:
            code = run(argv, signals, phase)
        except Interrupted as stop:
            print(f"stopped by {stop.name} during {phase[0]}; no summary was written", flush=True)
            return stop.exit_code
        if signals.received is not None:  # it came while the outputs were written
            stop = Interrupted(signals.received)
            print(f"stopped by {stop.name} after the outputs were written", flush=True)
            return stop.exit_code
        return code


def run(argv: list[str], signals: SignalGuard, phase: list[str]) -> int:
    if print_games_if_requested(argv):
        return 0
    args = build_parser().parse_args(argv)
    check_args(args)
    device = resolve_device(args.device)
    if args.pretrained is not None:
        state = load_pretrained(args.pretrained, device)
    else:
        state = load_checkpoint(args.checkpoint, map_location=device)
        file_checks.check_checkpoint(state)
    config = state["config"]
    out_dir = args.output_dir or default_output_dir(state)
    check_outputs(args, out_dir)
    trained = checkpoint_interface(state)
    played, table, warning = trained, None, None
    if args.env is not None:
        played = env_interface(args.env)
        table, warning = check_env_switch(trained, played, args.force)
        if warning is not None:
            print(f"{PROG}: warning: {warning}", file=sys.stderr)
    env_id = state["env_id"] if args.env is None else args.env
    if args.record is not None:
        check_recordable("--record", env_id)
    protocol = args.protocol or config.get("protocol", "nature")
    epsilon = default_epsilon(args.protocol, config) if args.epsilon is None else args.epsilon
    if args.episodes is None:
        args.episodes = PROTOCOL_EVAL_EPISODES.get(protocol, 10)
    top = args.episodes + checks.MAX_EVAL_ENVS
    checks.check_atari_seed(env_id, args.seed, top, "an evaluation of --episodes episodes")
    act = mapped_policy(agent_policy(load_policy(state, device, seed=args.seed)), table)
    recorder = None if args.save_trajectories is None else TrajectoryRecorder()
    pause_point("startup")  # a test hook: waits for a signal when a test asks
    if args.record is not None:
        phase[0] = "recording"
        summary = recorded_episodes(act, env_id, args, protocol, epsilon)
    else:
        phase[0] = "the evaluation"
        summary = evaluate(
            act, env_id, args.episodes, epsilon, protocol, args.seed,
            max_steps_per_episode=args.max_episode_frames // FRAME_SKIP + 100,
            max_episode_frames=args.max_episode_frames, recorder=recorder,
            max_episode_steps=max(1, args.max_episode_frames // FRAME_SKIP),  # gymnasium envs
        )  # fmt: skip
    spec = get_protocol(protocol)
    summary.setdefault("human_normalized", None)  # no human score for this env
    summary.update(
        env=played.env_id, trained_env=trained.env_id, forced=warning is not None,
        protocol=protocol, epsilon=epsilon, human_score_set=HUMAN_SCORE_SET,
        noop_max=spec.noop_max, repeat_action_probability=spec.repeat_action_probability,
        max_episode_frames=args.max_episode_frames, checkpoint=state["path"],
        checkpoint_kind=state.get("kind", "q-network"), global_step=state.get("global_step"),
        pretrained=state["pretrained"]["name"] if "pretrained" in state else None,
    )  # fmt: skip
    if recorder is not None:
        phase[0] = "writing the trajectories"
        names = played.action_meanings or tuple(str(k) for k in range(played.num_actions))
        trajectories = recorder.finish(played.env_id, protocol, epsilon, names)
        summary["trajectories"] = str(save_trajectories(args.save_trajectories, trajectories))
    with signals.deferred():  # episodes.csv and summary.json: both or neither
        write_outputs(out_dir, summary)
    print(summary_line(summary))
    shares = action_shares(summary.get("action_counts") or [], summary.get("action_names"))
    if shares:
        print(f"most played: {shares}")
    print(f"summary: {out_dir / 'summary.json'}")
    for path, frames in zip(summary.get("videos", []), summary.get("video_frames", [])):
        print(video_line(path, frames, summary["video_fps"]))
    if recorder is not None:
        print(f"trajectories: {summary['trajectories']} ({trajectories.num_steps} steps, "
              f"{trajectories.num_episodes} episodes)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
