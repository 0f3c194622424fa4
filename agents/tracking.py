"""Run tracking: a local metrics log that always works, and optional Weights & Biases.

``metrics.csv`` is long-format (``global_step,wall_seconds,metric,value``), one row per value,
flushed at the logging cadence, so it parses after a crash and takes any new metric without a
header change. This is the one module that imports wandb, lazily; a wandb failure (no network,
slow init, bad settings) prints one warning and the run continues with local metrics only.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

FIELDS = ("global_step", "wall_seconds", "metric", "value")


def warn(message: str) -> None:
    """One line on stderr: tracking trouble is reported, never raised."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


class MetricsLog:
    """Append-only CSV of scalar metrics against ``global_step``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._file = open(self.path, "a", newline="")  # noqa: SIM115 - closed in close()
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(FIELDS)
            self._file.flush()
        self._t0 = time.time()

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        wall = round(time.time() - self._t0, 3)
        for key, value in metrics.items():
            value = float(value)
            if math.isfinite(value):
                self._writer.writerow((step, wall, key, f"{value:.6g}"))
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


def read_metrics(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.csv -> {metric: [(global_step, value), ...]}; a torn last line is skipped."""
    series: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                point = (int(row["global_step"]), float(row["value"]))
            except (TypeError, ValueError, KeyError):
                continue
            series.setdefault(row["metric"], []).append(point)
    return series


def resolve_wandb_mode(mode: str) -> str:
    """``auto`` -> online when an API key or a stored login exists, else offline."""
    if mode != "auto":
        return mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    netrc = Path.home() / ".netrc"
    if netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore"):
        return "online"
    return "offline"


class Tracker:
    """Local metrics always; wandb when enabled and working."""

    def __init__(
        self,
        output_dir: str | Path,
        config: Mapping,
        track: bool = False,
        mode: str = "auto",
        project: str = "atari-dqn",
        entity: str | None = None,
        group: str | None = None,
        tags: tuple[str, ...] = (),
        name: str | None = None,
        run_id: str | None = None,
        init_timeout_seconds: float = 60.0,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.metrics = MetricsLog(self.output_dir / "metrics.csv")
        self.wandb_run = None
        self.wandb_mode = "disabled"
        if track:
            self._start_wandb(
                config, mode, project, entity, group, tags, name, run_id, init_timeout_seconds
            )

    def _start_wandb(self, config, mode, project, entity, group, tags, name, run_id, timeout):
        mode = resolve_wandb_mode(mode)
        if mode == "disabled":
            return
        try:
            import wandb

            self.wandb_run = wandb.init(
                project=project,
                entity=entity,
                group=group,
                tags=list(tags) or None,
                name=name,
                id=run_id,
                resume="allow" if run_id else None,
                config=dict(config),
                mode=mode,
                dir=str(self.output_dir),
                settings=wandb.Settings(init_timeout=timeout),
            )
            self.wandb_run.define_metric("global_step")
            self.wandb_run.define_metric("*", step_metric="global_step")
            self.wandb_mode = mode
        except Exception as error:  # noqa: BLE001 - tracking must never take a run down
            message = " ".join(str(error).split())[:300]
            warn(
                f"wandb could not start ({type(error).__name__}: {message}); "
                f"continuing with local metrics in {self.metrics.path}"
            )
            self.wandb_run = None

    @property
    def wandb_run_id(self) -> str | None:
        return None if self.wandb_run is None else self.wandb_run.id

    def _wandb_call(self, fn, *args, **kwargs) -> None:
        if self.wandb_run is None:
            return
        try:
            fn(*args, **kwargs)
        except Exception as error:  # noqa: BLE001
            message = " ".join(str(error).split())[:300]
            warn(f"wandb stopped working ({message}); local metrics continue")
            self.wandb_run = None

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self.metrics.log(metrics, step)
        if self.wandb_run is not None:
            self._wandb_call(
                self.wandb_run.log,
                {**{k: float(v) for k, v in metrics.items()}, "global_step": step},
            )

    def log_video(self, path: str | Path, step: int, key: str = "eval/video") -> None:
        if self.wandb_run is None:
            return
        import wandb

        self._wandb_call(
            self.wandb_run.log, {key: wandb.Video(str(path), format="mp4"), "global_step": step}
        )

    def finish(self, summary: Mapping | None = None) -> None:
        self.metrics.close()
        if self.wandb_run is not None:
            if summary:
                self._wandb_call(self.wandb_run.summary.update, dict(summary))
            self._wandb_call(self.wandb_run.finish)
            self.wandb_run = None
