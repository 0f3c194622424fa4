"""The Ape-X actors as Ray actors, seen by the training loop as one actor.

``connect(config)`` joins the Ray cluster the config names (``--address auto`` or
``ray://HOST:10001``) or starts a private instance on this machine. ``ActorPool`` starts
``num_actors`` ``ApexActor``s (``agents.distributed.actors``), each with one ``collect`` call in
flight at a time: ``next_chunk`` waits for whichever chunk comes first, and the loop asks that
actor for its next one (``request``) before it trains on the data, so acting and learning overlap
while an actor that the learner has not served yet waits: data is never dropped to keep up, and
the replay ratio is the config's.

Weights go through Ray's object store: ``publish`` puts the learner's weights once per
``weights_every_updates`` updates, and each actor takes the newest version with its next request.

An actor that dies (its process killed, its node lost) is replaced by a new incarnation with new
seeds, which starts new episodes; the chunk it was collecting is lost and counted
(``lost_chunks``), and the run goes on. An error raised inside an actor's own code is not a death:
it ends the run with that error.
"""

from __future__ import annotations

import os
import signal
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from agents.distributed.actors import ApexActor, Chunk, actor_epsilons
from agents.dqn.config import TrainConfig
from agents.run.tracking import warn

INSTALL_HINT = "pip install -e .[distributed]"
MAX_INCARNATIONS = 20
"""An actor that dies this many times is not a lost node but a fault: the run stops (with its
emergency checkpoint) instead of restarting it forever."""


def require_ray():
    try:
        import ray
    except ImportError:
        raise ValueError(
            f"--num-actors: Ape-X actors run on Ray, which is not installed; install the "
            f"distributed extra ({INSTALL_HINT}) or use --num-actors 0"
        ) from None
    return ray


def connect(config: TrainConfig) -> bool:
    """Ray for the run's actors: the cluster at ``config.address``, or a private instance on this
    machine with room for every actor; True when this call started it (and ``close`` stops it).
    Ray's driver takes over SIGTERM; the handler before it is put back, so a run stops on SIGTERM
    as it does without Ray (checkpoint, then exit)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    before = signal.getsignal(signal.SIGTERM)
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "configure_logging": False}  # fmt: skip
    if config.address:
        ray.init(address=config.address, **kwargs)
    else:
        need = int(np.ceil(config.num_actors * config.actor_cpus))
        ray.init(num_cpus=max(os.cpu_count() or 1, need), **kwargs)
    if before is not None:
        signal.signal(signal.SIGTERM, before)
    return True


@dataclass
class EnvSpec:
    """What the learner needs to know of the actors' envs (spaces, streams, stacking) without
    stepping any: read from one probe env, closed at once."""

    single_observation_space: Any
    single_action_space: Any
    num_envs: int  # the learner's replay streams: actors x envs per actor
    frame_stack: int
    stack_padding: str | None
    closer: Any = None  # closing the "envs" stops the actors that step them

    @classmethod
    def probe(cls, config: TrainConfig) -> EnvSpec:
        from envs.vector import make_vector_env

        envs = make_vector_env(config.env, 1, config.protocol, "train", config.seed)
        try:
            return cls(envs.single_observation_space, envs.single_action_space,
                       config.num_actors * config.num_envs, envs.frame_stack,
                       envs.stack_padding)  # fmt: skip
        finally:
            envs.close()

    def close(self) -> None:
        if self.closer is not None:
            self.closer()


class ActorPool:
    """``config.num_actors`` Ray actors feeding one learner. Stream ``i * num_envs + j`` of the
    learner's replay is env ``j`` of actor ``i``."""

    def __init__(self, config: TrainConfig, spec: EnvSpec, owns_ray: bool = False) -> None:
        self.config, self.spec, self.owns_ray = config, spec, owns_ray
        self.envs = spec  # the name the training loop reads the spaces by and closes
        spec.closer = self.close
        n = config.num_actors
        self.epsilons = actor_epsilons(n, config.actor_epsilon, config.actor_epsilon_alpha)
        self.handles: list[Any] = [None] * n
        self.incarnations = [0] * n
        self.pending: dict[Any, int] = {}  # collect call in flight -> actor index
        self.weights_ref: Any = None
        self.version = 0
        self.actor_version = [-1] * n
        self.lost_chunks = 0
        self.restarts = 0
        self.chunks = 0
        self.shipped_bytes = 0
        self.raw_frame_bytes = 0
        self.actor_steps = [0] * n
        self.actor_seconds = [0.0] * n
        self.recent_returns: deque[float] = deque(maxlen=20)
        self.whole = True  # the learner holds no env state of its own
        self.obs = None
        self._remote = None

    def describe(self) -> str:
        """``actors: 4 x 1 env on Ray (a private instance on this machine), epsilon 0.4 to
        0.000655``: said once when the run starts."""
        c, eps = self.config, self.epsilons
        where = c.address or "a private instance on this machine"
        envs = f"{c.num_envs} env{'s' if c.num_envs > 1 else ''}"
        spread = f"epsilon {eps[0]:.3g}" + (f" to {eps[-1]:.3g}" if len(eps) > 1 else "")
        return f"actors: {c.num_actors} x {envs} on Ray ({where}), {spread}"

    # -- what the training loop reads of an actor -------------------------------------------------
    @property
    def num_envs(self) -> int:
        return self.spec.num_envs

    def epsilon(self, global_step: int) -> float:
        """The actors' mean epsilon (each acts with its own, fixed)."""
        return float(np.mean(self.epsilons))

    def mean_recent_return(self) -> float:
        return float(np.mean(self.recent_returns)) if self.recent_returns else float("nan")

    def reset(self, global_step: int) -> tuple[None, bool]:
        """Start the actors (their first chunks begin new episodes in their streams)."""
        if self._remote is None:
            self.start()
        return None, False

    def state_dict(self, keep_envs: bool = True) -> dict[str, Any]:
        """The actors' envs are not saved: a resumed run's actors start new episodes (and new
        incarnations, so new seeds)."""
        return {
            "obs": None, "env_state": None, "recent_returns": list(self.recent_returns),
            "epsilon_decay_steps": 0,
            "apex": {"incarnations": list(self.incarnations), "restarts": self.restarts,
                     "lost_chunks": self.lost_chunks},
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any], restore_envs: bool = True) -> None:
        self.recent_returns.extend(state["recent_returns"])
        saved = state.get("apex") or {}
        if len(saved.get("incarnations", [])) == len(self.incarnations):
            self.incarnations = [k + 1 for k in saved["incarnations"]]
        self.restarts = saved.get("restarts", 0)
        self.lost_chunks = saved.get("lost_chunks", 0)

    # -- the actors ------------------------------------------------------------------------------
    def start(self) -> None:
        ray = require_ray()
        self._remote = ray.remote(num_cpus=self.config.actor_cpus, max_restarts=0)(ApexActor)
        for i in range(self.config.num_actors):
            self._spawn(i)

    def _spawn(self, index: int) -> None:
        self.handles[index] = self._remote.remote(
            self.config, index, self.config.num_actors, self.incarnations[index]
        )
        self.actor_version[index] = -1
        self.request(index)

    def publish(self, weights: dict[str, torch.Tensor]) -> None:
        """Put the learner's weights in the object store as the newest version."""
        ray = require_ray()
        cpu = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in weights.items()}
        self.weights_ref = ray.put(cpu)
        self.version += 1

    def request(self, index: int) -> None:
        """Ask actor ``index`` for its next chunk, with the newest weights when it lacks them."""
        fresh = self.weights_ref is not None and self.actor_version[index] < self.version
        weights = self.weights_ref if fresh else None
        ref = self.handles[index].collect.remote(weights, self.version)
        if fresh:
            self.actor_version[index] = self.version
        self.pending[ref] = index

    def next_chunk(self) -> Chunk:
        """The first chunk any actor finishes; an actor found dead is replaced on the way."""
        ray = require_ray()
        from ray.exceptions import RayActorError

        while True:
            ready, _ = ray.wait(list(self.pending), num_returns=1)
            index = self.pending.pop(ready[0])
            try:
                chunk = ray.get(ready[0])
            except RayActorError as error:
                self.replace(index, error)
                continue
            self.chunks += 1
            self.shipped_bytes += chunk.nbytes
            self.raw_frame_bytes += chunk.raw_frame_bytes
            self.actor_steps[index] += chunk.steps
            self.actor_seconds[index] += chunk.seconds
            return chunk

    def replace(self, index: int, error: BaseException) -> None:
        """A new incarnation of actor ``index`` (new seeds and episodes); lost chunk counted."""
        self.lost_chunks += 1
        self.restarts += 1
        self.incarnations[index] += 1
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if self.incarnations[index] > MAX_INCARNATIONS:
            raise RuntimeError(
                f"actor {index} died {self.incarnations[index]} times (last: {reason[:160]}); "
                "stopping instead of restarting it again"
            )
        warn(f"actor {index} died ({reason[:160]}); restarted as incarnation "
             f"{self.incarnations[index]}, its chunk in flight "
             f"({self.config.actor_chunk_steps * self.config.num_envs} steps) is lost")  # fmt: skip
        self._spawn(index)

    def kill(self, index: int) -> None:
        """Kill actor ``index``'s process (what a lost node does; tests and drills)."""
        require_ray().kill(self.handles[index], no_restart=True)

    def throughput(self) -> list[float]:
        """Each actor's agent steps per second of its own collecting time."""
        return [s / t if t > 0 else 0.0 for s, t in zip(self.actor_steps, self.actor_seconds)]

    def close(self) -> None:
        """Stop the actors (and the private Ray instance this run started)."""
        if self._remote is None:
            return
        ray = require_ray()
        for handle in self.handles:
            if handle is not None:
                try:
                    ray.kill(handle, no_restart=True)
                except Exception:  # noqa: BLE001 - already gone
                    pass
        self.handles = [None] * len(self.handles)
        self.pending.clear()
        self._remote = None
        if self.owns_ray and ray.is_initialized():
            ray.shutdown()
