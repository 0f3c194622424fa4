"""Learning curves from runs' metrics.csv: ``python -m scripts.plot RUN_DIR... --output-dir DIR``.

Runs are grouped by env (one panel each). Within a panel, runs of the same preset are seeds of
one curve: their episodic returns are smoothed, interpolated onto a common grid of agent steps and
drawn as the mean with a min-max band; periodic evaluations are drawn as markers. Written as
``learning_curves.png`` and ``learning_curves.svg``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agents.tracking import read_metrics
from scripts._cli import cli_main

PROG = "plot"


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average (shorter window at the start)."""
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    lo = np.maximum(idx - window, 0)
    return (cumsum[idx] - cumsum[lo]) / (idx - lo)


def load_run(run_dir: Path) -> dict:
    metrics = run_dir / "metrics.csv"
    if not metrics.exists():
        raise ValueError(
            f"{run_dir}: no metrics.csv; give run directories written by scripts.train"
        )
    config_path = run_dir / "config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    return {"dir": run_dir, "series": read_metrics(metrics), "env": config.get("env", run_dir.name),
            "preset": config.get("preset", "run")}  # fmt: skip


def plot_learning_curves(
    run_dirs: Sequence[Path], output_dir: Path, window: int = 20
) -> list[Path]:
    """Draw the panels and write PNG and SVG; returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [load_run(Path(d)) for d in run_dirs]
    panels: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        panels[run["env"]][run["preset"]].append(run)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (env, groups) in zip(axes[0], panels.items()):
        for label, group in groups.items():
            curves = [r["series"].get("charts/episodic_return", []) for r in group]
            curves = [np.asarray(c, dtype=np.float64) for c in curves if len(c) > 0]
            if curves:
                end = min(c[-1, 0] for c in curves)
                grid = np.linspace(min(c[0, 0] for c in curves), end, 200)
                ys = np.stack([np.interp(grid, c[:, 0], smooth(c[:, 1], window)) for c in curves])
                (line,) = ax.plot(grid, ys.mean(0), label=f"{label} ({len(curves)} seed(s))")
                if len(curves) > 1:
                    ax.fill_between(grid, ys.min(0), ys.max(0), alpha=0.2, color=line.get_color())
            for r in group:
                ev = np.asarray(r["series"].get("eval/mean_return", []), dtype=np.float64)
                if len(ev):
                    ax.plot(ev[:, 0], ev[:, 1], "o", ms=4, color=ax.lines[-1].get_color()
                            if ax.lines else None, alpha=0.8)  # fmt: skip
        ax.set_title(env)
        ax.set_xlabel("agent steps")
        ax.set_ylabel("episodic return (raw score)")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = [output_dir / "learning_curves.png", output_dir / "learning_curves.svg"]
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths


@cli_main(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run directories (with metrics.csv)")
    p.add_argument("--output-dir", type=Path, default=Path("runs/plots"))
    p.add_argument("--window", type=int, default=20, help="episodes in the moving average")
    args = p.parse_args(argv)
    for path in plot_learning_curves(args.runs, args.output_dir, args.window):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
