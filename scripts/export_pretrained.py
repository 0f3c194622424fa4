"""Export a trained agent to ship: ``python -m scripts.export_pretrained runs/pong --name pong``.

CHECKPOINT is a checkpoint file or a run directory (its newest checkpoint is used). The acting
network is evaluated twice under the run's protocol and eval epsilon with the same seeds: as
float32 and rounded to float16. The float16 weights are kept unless the mean return moves by more
than the tolerance (``pretrained.score_tolerance``); then float32 is written and the reason
printed. ``--full-precision`` skips the float16 trial. Writes ``NAME.safetensors`` and
``NAME.json`` (``evaluation.pretrained``) into ``--output-dir`` (by default ``agents/pretrained``).
An agent already there under NAME is refused before any work (exit 2, naming it and its recorded
score) unless ``--overwrite``: a shipped agent is never replaced by accident.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.evaluation.evaluate import agent_policy, evaluate, load_policy
from agents.evaluation.pretrained import (
    PRETRAINED_DIR,
    check_name,
    fits_float16,
    half_precision_verdict,
    half_rounded,
    recorded_evaluation,
    save_pretrained,
)
from agents.run import checks, file_checks, machine
from agents.run.checkpoint import load_checkpoint
from agents.run.files import resolve_device
from envs.atari import FRAME_SKIP
from scripts._cli import ArgumentParser, cli_main
from scripts.evaluate import default_epsilon

PROG = "export_pretrained"
MAX_EPISODE_FRAMES = 108_000  # the protocols' 30-minute cap, as scripts/evaluate.py plays


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="checkpoint file, or a run directory")
    p.add_argument("--name", required=True, help="agent name: the files' stem (e.g. pong)")
    p.add_argument("--output-dir", type=checks.path_arg, default=PRETRAINED_DIR,
                   help="where the pair goes (default: agents/pretrained)")  # fmt: skip
    p.add_argument("--episodes", type=int, default=30, help="evaluation episodes")
    p.add_argument("--seed", type=int, default=0, help="evaluation seed")
    p.add_argument("--full-precision", action="store_true", help="write float32, no fp16 trial")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an agent of the same --name in --output-dir")  # fmt: skip
    return p


def refuse_an_agent_there(directory: Path, name: str) -> None:
    """An agent (either file of the pair) already under ``name`` in ``directory``: one error
    naming it and the score it records."""
    there = [directory / f"{name}{suffix}" for suffix in (".safetensors", ".json")]
    found = [path for path in there if path.exists()]
    if not found:
        return
    recorded = ""
    try:
        evaluation = json.loads(there[1].read_text()).get("evaluation") or {}
        recorded = (f" (mean return {float(evaluation['mean_return']):.2f} over "
                    f"{int(evaluation['episodes'])} episodes)")  # fmt: skip
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        pass
    raise ValueError(
        f"--name: {found[0]} exists{recorded}; give another --name or --output-dir, or "
        "--overwrite to replace it"
    )


def score(state: dict[str, Any], model: dict, args: argparse.Namespace, device) -> dict[str, Any]:
    """Evaluate ``model`` in place of the checkpoint's weights, as ``scripts/evaluate.py`` would
    with the same seed and episodes (so ``evaluate.py --pretrained`` repeats it exactly)."""
    config = state["config"]
    policy = load_policy({**state, "model": model}, device, seed=args.seed)
    return evaluate(
        agent_policy(policy), state["env_id"], args.episodes, default_epsilon(None, config),
        config.get("protocol", "nature"), args.seed,
        max_steps_per_episode=MAX_EPISODE_FRAMES // FRAME_SKIP + 100,
        max_episode_frames=MAX_EPISODE_FRAMES,
    )  # fmt: skip


def score_line(label: str, summary: dict[str, Any]) -> str:
    line = f"{label}: mean {summary['mean_return']:.2f} +- {summary['std_return']:.2f} over "
    line += f"{summary['episodes']} episodes ({summary['protocol']} protocol, epsilon "
    line += f"{summary['epsilon']})"
    if summary.get("human_normalized") is not None:
        line += f"; human-normalized {summary['human_normalized']:.3f}"
    return line


@cli_main(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    checks.check_number("--episodes", args.episodes, checks.EPISODES)
    checks.check_number("--seed", args.seed, checks.SEED)
    machine.check_device("--device", args.device)
    check_name(args.name)
    device = resolve_device(args.device)
    state = load_checkpoint(args.checkpoint, map_location=device)
    file_checks.check_checkpoint(state)  # a non-finite network is never exported
    checks.check_writable_dir("--output-dir", args.output_dir)
    if not args.overwrite:
        refuse_an_agent_there(args.output_dir, args.name)
    top = args.episodes + checks.MAX_EVAL_ENVS
    checks.check_atari_seed(state["env_id"], args.seed, top, "an evaluation of --episodes episodes")
    full = score(state, state["model"], args, device)
    print(score_line("float32 weights", full))
    if args.full_precision:
        half, chosen, reason = False, full, "--full-precision"
    elif not fits_float16(state["model"]):
        half, chosen, reason = False, full, "weights exceed float16's range (65504)"
    else:
        rounded = score(state, half_rounded(state["model"]), args, device)
        print(score_line("float16 weights", rounded))
        half, reason = half_precision_verdict(full, rounded)
        chosen = rounded if half else full
    print(f"writing {'float16' if half else 'float32'}: {reason}")
    weights = save_pretrained(
        state, args.output_dir, args.name, half, recorded_evaluation(chosen, args.seed)
    )
    meta = weights.with_suffix(".json")
    print(f"{weights}: {weights.stat().st_size:,} bytes")
    print(f"{meta}: {meta.stat().st_size:,} bytes")
    print(f"source {state['path']}: {Path(state['path']).stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
