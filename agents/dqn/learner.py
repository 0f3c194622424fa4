"""The learner: replay -> update -> target sync, at the replay ratio the config names.

Each agent step earns ``gradient_steps / train_frequency`` updates (a vector step of N envs earns
N times that), paid out as whole updates once ``learning_starts`` has passed; the target network
is synced every ``target_update_steps`` agent steps. The update's metrics stay on the device,
summed, until ``take_metrics`` reads them once per log interval.

Its state (``state_dict``): the agent's (networks, optimizer, update count, generators), the
updates earned but not yet made, the next target sync and reset, the refill position of a run
resumed without its replay, and prioritized replay's importance-sampling schedule.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import torch

from agents.dqn.agent import DQNAgent
from agents.dqn.config import TrainConfig
from agents.dqn.replay.uniform import Batch

UPDATE_METRICS = ("losses/td_loss", "losses/q_values")


class Learner:
    """Trains ``agent`` on batches of ``replay`` for the steps of ``num_envs`` env streams."""

    def __init__(self, agent: DQNAgent, replay, config: TrainConfig, num_envs: int) -> None:
        self.agent = agent
        self.replay = replay
        self.config = config
        self.num_envs = num_envs
        self.updates_due = 0.0
        self.next_target_sync = config.target_update_steps
        self.next_reset = config.reset_every_steps or math.inf  # reset_every_steps 0: never
        self.resets = 0
        self.refill_until = -1  # a run resumed without its replay refills it before updating
        self.writing_priorities = False  # True while prioritized replay's priorities are written
        self.metric_sums: torch.Tensor | None = None  # update metrics summed on the device
        self.metric_count = 0
        self.learning_clock: tuple[int, float] | None = None  # (step, time) of the first update

    def train_due(self, global_step: int, steps: int | None = None) -> None:
        """The gradient updates earned by one vector step ending at ``global_step`` (or by
        ``steps`` agent steps: an Ape-X chunk)."""
        c = self.config
        if global_step <= max(c.learning_starts, self.refill_until):
            return
        if self.learning_clock is None:
            self.learning_clock = (global_step, time.perf_counter())
        start = max(c.learning_starts, self.refill_until)
        earned = self.num_envs if steps is None else min(steps, global_step - start)
        self.updates_due += earned * c.gradient_steps / c.train_frequency
        due = int(self.updates_due)
        self.updates_due -= due
        for batch in self.batches(due, global_step):
            metrics = self.agent.update(batch)
            if c.prioritized:
                self.writing_priorities = True
                self.replay.update_priorities(batch, metrics["td_error"])
                self.writing_priorities = False
            values = torch.stack([metrics[key] for key in UPDATE_METRICS])
            self.metric_sums = values if self.metric_sums is None else self.metric_sums + values
            self.metric_count += 1

    def batches(self, count: int, global_step: int) -> Iterator[Batch]:
        """``count`` batches for the updates of one vector step. Uniform replay draws them in one
        call (nothing is added between these updates, so one draw of ``count`` x batch is the same
        distribution as ``count`` draws, at a fraction of the per-call cost); prioritized replay
        draws each after the previous update has written its priorities."""
        size = self.config.batch_size
        if self.config.prioritized or count <= 1:
            for _ in range(count):
                yield self.replay.sample(size, global_step)
            return
        whole = self.replay.sample(count * size, global_step)
        columns = [[None] * count if t is None else t.split(size) for t in whole]
        yield from (Batch(*fields) for fields in zip(*columns))

    def sync_due(self, global_step: int) -> None:
        """Sync the target network for each sync point reached by ``global_step``."""
        while global_step >= self.next_target_sync:
            self.agent.sync_target()
            self.next_target_sync += self.config.target_update_steps

    def reset_due(self, global_step: int) -> bool:
        """Reset the agent's last layers (``DQNAgent.reset_head``, ``reset_layers``) at each
        multiple of ``reset_every_steps`` reached by ``global_step`` below the run's total;
        True when one was made."""
        made = False
        while global_step >= self.next_reset and self.next_reset < self.config.total_steps:
            self.agent.reset_head()
            self.resets += 1
            self.next_reset += self.config.reset_every_steps
            made = True
        return made

    def take_metrics(self) -> dict[str, float]:
        """The means of the update metrics since the last call (empty when no update was made);
        the one host synchronisation of a log interval."""
        if self.metric_sums is None:
            return {}
        means = (self.metric_sums / self.metric_count).tolist()
        self.metric_sums, self.metric_count = None, 0
        return dict(zip(UPDATE_METRICS, means))

    def steps_per_second_learning(self, global_step: int) -> float | None:
        """Agent steps per second since the first update (None before it)."""
        if self.learning_clock is None:
            return None
        step0, time0 = self.learning_clock
        return (global_step - step0) / max(time.perf_counter() - time0, 1e-9)

    def state_dict(self) -> dict[str, Any]:
        prioritized = self.config.prioritized
        return {
            **self.agent.state_dict(),
            "updates_due": self.updates_due,
            "next_target_sync": self.next_target_sync,
            "refill_until": self.refill_until,
            "next_reset": None if math.isinf(self.next_reset) else self.next_reset,
            "priority_beta_steps": self.replay.sampler.beta_steps if prioritized else None,
        }

    def load_state_dict(self, state: dict[str, Any], source: object = "the checkpoint") -> None:
        self.agent.load_state_dict(state, source)
        self.updates_due = state["updates_due"]
        self.next_target_sync = state["next_target_sync"]
        self.refill_until = state["refill_until"]
        if state.get("next_reset") is not None:  # absent from checkpoints of runs without resets
            self.next_reset = state["next_reset"]
        if self.config.prioritized and state.get("priority_beta_steps") is not None:
            self.replay.sampler.beta_steps = state["priority_beta_steps"]
