"""The Ape-X learner (Horgan et al. 2018): one process owns the (prioritized) replay and the
update; actors elsewhere (``agents.distributed.pool``) feed it.

``ApexTrainer`` is the single-process ``Trainer`` (``agents.dqn.loop``) with an ``ActorPool`` as
its actor. Everything but the step is the same code: evaluation, logging to the tracker and
``metrics.csv``, checkpoints (with ``--save-replay`` the replay too), resume, signals and faults.
One step here is one chunk:

1. wait for the next chunk of any actor (``ActorPool.next_chunk``);
2. append its slots to that actor's streams of the replay, with their initial priorities
   (``ingest``): every transition an actor makes arrives once, in its own stream;
3. ask that actor for its next chunk, so it acts while the learner learns;
4. make the updates the chunk's agent steps earned (``Learner.train_due``: the config's replay
   ratio, ``gradient_steps / train_frequency`` updates per agent step, after
   ``learning_starts``), sync the target, and publish the weights every
   ``weights_every_updates`` updates.

A learner slower than its actors makes them wait (each has one chunk in flight); a faster one
waits for data. Either way the ratio of updates to agent steps is the config's, and no data is
dropped.
"""

from __future__ import annotations

from typing import Any

from agents.distributed.actors import Chunk
from agents.distributed.pool import ActorPool
from agents.dqn.loop import Trainer
from agents.dqn.replay.prioritized import PrioritizedReplay


def ingest(replay, chunk: Chunk, num_envs: int) -> int:
    """Append ``chunk``'s slots to its actor's streams of ``replay`` (``num_envs`` streams per
    actor), with its initial priorities when the replay is prioritized; returns the transitions
    the chunk completed."""
    completed = 0
    for j, (records, ages, errors) in enumerate(chunk.records()):
        stream = chunk.actor * num_envs + j
        if isinstance(replay, PrioritizedReplay):
            replay.append_slots(stream, records, chunk.fresh, ages, errors)
        else:
            replay.append_slots(stream, records, chunk.fresh)
        completed += int(records.complete.sum())
    return completed


class ApexTrainer(Trainer):
    """The training loop with Ape-X actors: ``Trainer`` with one chunk per step."""

    pool: ActorPool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool = self.actor
        self.updates_published = -1
        self.transitions_received = 0

    def _first_obs(self) -> None:
        self.publish()  # the actors start from the learner's network
        self.pool.reset(self.global_step)

    def publish(self) -> None:
        self.pool.publish(self.agent.online.state_dict())
        self.updates_published = self.agent.updates

    def _step(self) -> None:
        c = self.config
        self.phase = "acting"
        chunk = self.pool.next_chunk()
        self.phase, self.replay_written = "replay", False
        self.transitions_received += ingest(self.replay, chunk, c.num_envs)
        self.replay_written = True
        self.global_step += chunk.steps
        self.phase = "logging"
        for episode_return, length in chunk.episodes:
            self.pool.recent_returns.append(episode_return)
            self.tracker.log({"charts/episodic_return": episode_return,
                              "charts/episodic_length": length,
                              "charts/actor": chunk.actor}, self.global_step)  # fmt: skip
        self.pool.request(chunk.actor)  # it acts while the learner learns
        self.phase = "update"
        self.learner.train_due(self.global_step, steps=chunk.steps)
        self.phase = "target sync"
        self.learner.sync_due(self.global_step)
        if self.learner.reset_due(self.global_step):
            self.tracker.log({"charts/resets": self.learner.resets}, self.global_step)
        if self.agent.updates - self.updates_published >= c.weights_every_updates:
            self.phase = "publishing weights"
            self.publish()

    def _log(self, t0: float, start_step: int) -> float:
        sps = super()._log(t0, start_step)
        pool = self.pool
        rates = pool.throughput()
        metrics = {
            "actors/steps_per_second": sum(rates),
            "actors/lost_chunks": pool.lost_chunks,
            "actors/restarts": pool.restarts,
            "actors/bytes_per_transition": pool.shipped_bytes / max(self.transitions_received, 1),
            "actors/weights_version": pool.version,
        }
        metrics.update({f"actors/sps_{i}": rate for i, rate in enumerate(rates)})
        self.tracker.log(metrics, self.global_step)
        return sps

    def summary_extra(self) -> dict[str, Any]:
        pool = self.pool
        return {
            **super().summary_extra(),
            "num_actors": len(pool.handles), "actor_epsilons": pool.epsilons,
            "actor_steps_per_second": pool.throughput(), "actor_restarts": pool.restarts,
            "lost_chunks": pool.lost_chunks, "chunks": pool.chunks,
            "bytes_per_transition": pool.shipped_bytes / max(self.transitions_received, 1),
            "transitions_received": self.transitions_received,
        }  # fmt: skip
