"""The ``distributed`` benchmark suite: Ape-X actors on Ray against the single-process loop.

For fake-pixels and Breakout, the ``apex`` preset's learner (prioritized replay, batch 512, one
update per 640 agent steps, 3-step double dueling DQN) with 1, 2 and 4 actors, and the same
config in the single-process loop (``num_actors`` 0) as the baseline, run in this process one
after the other on one private Ray instance. Per row:

- ``steps_per_s``: agent steps per second in steady state, from ``metrics.csv`` (its wall clock
  between the first logged step past 20% of the run and the last), so the actors' start-up is
  left out; ``vs_single`` is that over the baseline's;
- ``updates_per_s``: learner updates per second of wall clock after ``learning_starts`` (at the
  preset's ratio, one per 640 agent steps); ``learner_max_updates_per_s``: the learner alone,
  updates of 512 back to back on the single-process run's replay (the ceiling of the ratio);
- ``actor_steps_per_s``: each actor's own stepping rate (mean over the actors);
- ``bytes_per_transition``: bytes shipped from the actors per transition (compressed frames
  with their slots' fields and priorities), against 4 x 84 x 84 = 28,224 for a stacked
  observation.
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path
from typing import Any

ACTOR_COUNTS = (1, 2, 4)
GAMES = ("fake-pixels", "Breakout")


def steady_rate(metrics: Path, total: int, start_fraction: float = 0.2) -> float:
    """Agent steps per second between the first logged step past ``start_fraction`` of the run
    and the last logged step (``metrics.csv`` rows: global_step, wall_seconds, ...)."""
    rows = []
    with open(metrics) as f:
        for row in csv.DictReader(f):
            rows.append((int(row["global_step"]), float(row["wall_seconds"])))
    after = [r for r in rows if r[0] >= start_fraction * total]
    (s0, t0), (s1, t1) = after[0], max(after)
    return (s1 - s0) / max(t1 - t0, 1e-9)


def wall_at(metrics: Path, step: int) -> float:
    with open(metrics) as f:
        walls = [float(r["wall_seconds"]) for r in csv.DictReader(f)
                 if int(r["global_step"]) >= step]  # fmt: skip
    return walls[0] if walls else float("nan")


def one_run(env: str, actors: int, steps: int, directory: Path) -> dict[str, Any]:
    from agents.dqn.build import build_trainer
    from agents.dqn.presets import preset

    config = preset("apex").replace(
        env=env, num_actors=actors, total_steps=steps, learning_starts=steps // 4,
        buffer_size=max(4 * steps, 20_000), eval_every_steps=0, final_eval_episodes=0,
        record_video=False, progress=False, log_every_steps=100, compile="off",
        checkpoint_every_steps=10 * steps, output_dir=str(directory / f"{env}-{actors}"),
        torch_threads=1,
    )  # fmt: skip
    trainer = build_trainer(config)
    summary = trainer.run()
    metrics = Path(config.output_dir) / "metrics.csv"
    learning = max(wall_at(metrics, steps) - wall_at(metrics, config.learning_starts), 1e-9)
    row = {
        "steps_per_s": round(steady_rate(metrics, steps), 1),
        "updates_per_s": round(summary["updates"] / learning, 2),
    }
    if not actors:  # the learner alone: batches of 512 from the run's replay, back to back
        import time

        agent, replay = trainer.agent, trainer.replay
        agent.update(replay.sample(config.batch_size, steps))
        t0, n = time.perf_counter(), 5
        for _ in range(n):
            agent.update(replay.sample(config.batch_size, steps))
        row["learner_max_updates_per_s"] = round(n / (time.perf_counter() - t0), 2)
    if actors:
        rates = summary["actor_steps_per_second"]
        row["actor_steps_per_s"] = round(sum(rates) / len(rates), 1)
        row["bytes_per_transition"] = round(summary["bytes_per_transition"], 1)
    return row


def distributed_suite(steps: int | None = None) -> dict[str, dict[str, float]]:
    import ray

    steps = steps or 3_000
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=max(ACTOR_COUNTS), include_dashboard=False, log_to_driver=False,
                 configure_logging=False)  # fmt: skip
    results: dict[str, dict[str, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for env in GAMES:
                base = one_run(env, 0, steps, Path(tmp))
                results[f"{env} single process"] = {**base, "vs_single": 1.0}
                for n in ACTOR_COUNTS:
                    row = one_run(env, n, steps, Path(tmp))
                    row["vs_single"] = round(row["steps_per_s"] / base["steps_per_s"], 2)
                    results[f"{env} {n} actor{'s' if n > 1 else ''}"] = row
    finally:
        if started:
            ray.shutdown()
    return results
