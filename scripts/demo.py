"""The main job (``make demo``): a guided tour that runs on a laptop CPU in minutes.

1. DQN on CartPole-v1 (``cartpole`` preset) trained until an evaluation reaches the solved
   threshold (mean return >= 475 over 10 episodes);
2. a short DQN run on a real Atari game (Breakout, ``smoke`` preset sizes);
3. evaluation of that agent under the nature protocol, recording an mp4 of its gameplay;
4. a learning-curve PNG, and offline Weights & Biases runs for both trainings;
5. every trained agent shipped in ``agents/pretrained/`` (e.g. Pong, trained on a GPU) playing one
   recorded episode, so a newcomer sees a good agent play (skipped while none is shipped);
then prints where each output is. ``--quick`` shortens everything (used by the tests).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from agents.dqn.build import train
from agents.dqn.presets import cartpole, smoke
from agents.evaluation.pretrained import list_pretrained
from scripts import evaluate as evaluate_script
from scripts._cli import ArgumentParser, cli_main
from scripts.plot import plot_learning_curves

PROG = "demo"


@cli_main(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    p = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--output-dir", type=Path, default=Path("runs/demo"),
                   help="where every output of the tour goes")  # fmt: skip
    p.add_argument("--game", default="Breakout", help="the Atari game of the short run")
    p.add_argument("--quick", action="store_true", help="a shortened tour (seconds, for tests)")
    args = p.parse_args(argv)
    out: Path = args.output_dir
    os.environ.setdefault("WANDB_SILENT", "true")
    tracking = {"track": True, "wandb_mode": "offline"}

    print("[1/5] DQN on CartPole-v1 until solved (eval mean >= 475)", flush=True)
    cp = cartpole().replace(output_dir=str(out / "cartpole"), **tracking)
    if args.quick:
        cp = cp.replace(total_steps=2_000, learning_starts=500, eval_every_steps=1_000,
                        eval_episodes=2, progress=False)  # fmt: skip
    cp_summary = train(cp, overwrite=True)  # the tour's own runs: redone each time
    solved = cp_summary.get("solved_at_step")
    status = f"solved at step {solved}" if solved else "not solved in this budget"
    print(f"      CartPole: eval mean return {cp_summary['eval_mean_return']:.1f} ({status})")

    print(
        f"[2/5] DQN on Atari {args.game} (short run; real games need millions of steps)", flush=True
    )
    steps = 1_000 if args.quick else 10_000
    atari = smoke().replace(env=args.game, total_steps=steps, buffer_size=steps,
                            learning_starts=min(1_000, steps // 2), output_dir=str(out / "atari"),
                            progress=not args.quick, **tracking)  # fmt: skip
    atari_summary = train(atari, overwrite=True)

    print("[3/5] Evaluating (nature protocol) and recording gameplay", flush=True)
    evaluate_script.main([str(out / "atari"), "--episodes", "1", "--record", str(out / "videos"),
                          "--output-dir", str(out / "atari" / "evaluation")])  # fmt: skip

    print("[4/5] Learning curves", flush=True)
    plots = plot_learning_curves([out / "cartpole", out / "atari"], out / "plots")

    shipped = list_pretrained()
    print(f"[5/5] Shipped agents playing: {', '.join(shipped) or 'none shipped yet'}", flush=True)
    for name in shipped:
        evaluate_script.main(["--pretrained", name, "--episodes", "1", "--record",
                              str(out / "pretrained" / name), "--output-dir",
                              str(out / "pretrained" / name / "evaluation")])  # fmt: skip

    final = atari_summary["eval_mean_return"]
    outputs = [
        ("CartPole run", f"{out / 'cartpole'} (summary.json, metrics.csv, checkpoints/)"),
        (f"{args.game} run", f"{out / 'atari'} (the run's own final evaluation: mean {final:.1f})"),
        ("gameplay video", f"{out / 'videos'}/episode_000.mp4"),
        ("learning curves", str(plots[0])),
        ("wandb (offline)", f"{out}/*/wandb/ (upload later with `wandb sync`)"),
        *(
            (f"{name} (shipped)", f"{out / 'pretrained' / name}/episode_000.mp4")
            for name in shipped
        ),
    ]
    width = max(len(label) for label, _ in outputs)
    print("\nOutputs:")
    for label, where in outputs:
        print(f"  {label:<{width}}  {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
