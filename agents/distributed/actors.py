"""Ape-X actors (Horgan et al. 2018, "Distributed Prioritized Experience Replay"): acting and
initial priorities away from the learner.

An ``ApexActor`` is a vector env, a CPU copy of the network and its own epsilon (actor i of N acts
with ``0.4 ** (1 + 7 i / (N - 1))``, the paper's Section 4.1). ``collect`` takes
``actor_chunk_steps`` vector steps and returns one ``Chunk``:

- its steps go through a small local replay ring (``agents.dqn.replay.uniform.ReplayBuffer``, the
  learner's own class) exactly as the single-process loop stores them, one slot per frame;
- the chunk ships the ring's new slots per env stream (``SlotRecords``: the newest frame of each
  observation, never the stacked observations, so each frame travels once; the frames
  zlib-compressed), which the learner appends to its own stream (``ReplayBuffer.append_slots``);
- with them the initial priorities, |TD error| of each n-step transition that became complete
  since the last chunk, computed by the actor's own network (the paper's actors compute them with
  their local copy, so new data enters at a meaningful priority instead of the maximum), keyed by
  the transition's age from the stream's pending slot, which both rings share.

The class runs the same in-process (tests, the local reference run) and as a Ray actor
(``agents.distributed.pool``); it does not import Ray.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from agents.dqn.actor import Actor, EpsilonSchedule
from agents.dqn.agent import DQNAgent
from agents.dqn.config import TrainConfig
from agents.dqn.replay.uniform import ReplayBuffer, SlotRecords
from envs.vector import make_vector_env

SEED_STRIDE = 1_000_003
"""Seeds of actor ``i`` in its ``k``-th incarnation: ``seed + SEED_STRIDE * (1 + i + N k)``, apart
from each other and from the learner's evaluation seeds."""


def actor_epsilons(num_actors: int, epsilon: float = 0.4, alpha: float = 7.0) -> list[float]:
    """Each actor's exploration epsilon, ``epsilon ** (1 + alpha i / (N - 1))`` for i = 0..N-1
    (Horgan et al. 2018, Section 4.1: epsilon 0.4, alpha 7); one actor acts with ``epsilon``."""
    if num_actors < 1:
        raise ValueError(f"num_actors must be >= 1, got {num_actors}")
    if num_actors == 1:
        return [epsilon]
    return [epsilon ** (1 + alpha * i / (num_actors - 1)) for i in range(num_actors)]


def actor_seed(seed: int, index: int, num_actors: int, incarnation: int) -> int:
    return seed + SEED_STRIDE * (1 + index + num_actors * incarnation)


def ring_slots(config: TrainConfig, frame_stack: int) -> int:
    """Slots per stream of an actor's local ring: a chunk writes at most two slots per step (an
    episode end adds one), and the previous chunk's last n-step windows and frame stacks must
    still be there."""
    return 2 * config.actor_chunk_steps + config.n_step + frame_stack + 4


@dataclass
class Chunk:
    """One shipment of one actor: ``streams`` lists, per env stream, the slot records without
    their frames (``frames`` holds all of them, stream after stream, compressed), the ages and
    |TD errors| of the transitions completed since the last chunk, and what the learner reports."""

    actor: int
    incarnation: int
    fresh: bool  # the actor's first chunk: its first record begins an episode
    steps: int  # agent steps (vector steps x envs)
    streams: list[dict[str, np.ndarray]]
    frames: bytes
    frame_shape: tuple[int, ...]
    frame_dtype: str
    episodes: list[tuple[float, int]] = field(default_factory=list)
    weights_version: int = 0
    seconds: float = 0.0  # the actor's time for these steps
    raw_frame_bytes: int = 0

    @property
    def nbytes(self) -> int:
        """Bytes shipped: compressed frames plus the records' and priorities' arrays."""
        arrays = sum(a.nbytes for s in self.streams for a in s.values())
        return len(self.frames) + arrays

    def records(self) -> list[tuple[SlotRecords, np.ndarray, np.ndarray]]:
        """Per stream: its ``SlotRecords``, and the ages and |TD errors| of its priorities."""
        flat = np.frombuffer(zlib.decompress(self.frames), dtype=self.frame_dtype)
        frames = flat.reshape(-1, *self.frame_shape)
        out, start = [], 0
        for s in self.streams:
            k = len(s["action"])
            records = SlotRecords(frames[start : start + k], s["first"], s["action"], s["reward"],
                                  s["terminated"], s["truncated"], s["complete"])  # fmt: skip
            out.append((records, s["ages"], s["td_errors"]))
            start += k
        return out


class ApexActor:
    """Actor ``index`` of ``num_actors``, in its ``incarnation``-th life (a restarted actor starts
    new episodes with new seeds)."""

    def __init__(
        self, config: TrainConfig, index: int, num_actors: int, incarnation: int = 0
    ) -> None:
        torch.set_num_threads(1)  # one core per actor; the learner has its own
        self.config, self.index, self.incarnation = config, index, incarnation
        self.epsilon = actor_epsilons(num_actors, config.actor_epsilon, config.actor_epsilon_alpha)[
            index
        ]
        seed = actor_seed(config.seed, index, num_actors, incarnation)
        self.envs = make_vector_env(config.env, config.num_envs, config.protocol, "train", seed)
        space = self.envs.single_observation_space
        obs_shape = tuple(space.shape)
        cpu = torch.device("cpu")
        self.agent = DQNAgent.build(config.replace(compile="off"), obs_shape,
                                    int(self.envs.single_action_space.n), cpu, seed)  # fmt: skip
        schedule = EpsilonSchedule(self.epsilon, self.epsilon, 0, noisy=config.noisy)
        self.actor = Actor(self.envs, self.agent.act, schedule, seed)
        stack = self.envs.frame_stack
        self.frame_shape = tuple(obs_shape[1:] if stack > 1 else obs_shape)
        slots = ring_slots(config, stack)
        self.ring = ReplayBuffer(
            capacity=self.envs.num_envs * slots, num_streams=self.envs.num_envs,
            frame_shape=self.frame_shape,
            frame_dtype=torch.uint8 if space.dtype == np.uint8 else torch.float32,
            frame_stack=stack, stack_padding=self.envs.stack_padding or "zero",
            n_step=config.n_step, gamma=config.gamma, seed=seed,
        )  # fmt: skip
        self.sent = torch.zeros((self.ring.num_streams, self.ring.slots), dtype=torch.bool)
        self.weights_version = 0
        self.steps = 0

    def set_weights(self, weights: dict[str, torch.Tensor], version: int) -> None:
        self.agent.online.load_state_dict(weights)
        self.weights_version = version

    def collect(self, weights: dict[str, torch.Tensor] | None = None, version: int = 0) -> Chunk:
        """``actor_chunk_steps`` vector steps with the newest ``weights`` (when given) and the
        chunk they make."""
        t0 = time.perf_counter()
        if weights is not None:
            self.set_weights(weights, version)
        ring, fresh = self.ring, not self.ring.started
        if fresh:
            obs, _ = self.actor.reset(0)
            ring.start(obs)
        mark = ring.cursor.clone()  # each stream's pending slot: the chunk's first record
        episodes: list[tuple[float, int]] = []
        for _ in range(self.config.actor_chunk_steps):
            step = self.actor.step_now(self.actor.act(self.steps))
            ring.add(*step.replay_fields())
            episodes += [(float(r), int(n)) for r, n in self.actor.observe(step)]
            self.steps += self.actor.num_envs
        streams, frames = [], []
        for s in range(ring.num_streams):
            k = int((ring.cursor[s] - mark[s]) % ring.slots) + 1
            idx = (mark[s] + torch.arange(k)) % ring.slots
            self.sent[s, idx] = False  # new contents
            frames.append(ring.frames[s, idx].numpy())
            streams.append({name: getattr(ring, name)[s, idx].numpy()
                            for name in ("first", "action", "reward", "terminated", "truncated",
                                         "complete")})  # fmt: skip
        for s, (ages, errors) in enumerate(self.initial_priorities()):
            streams[s].update(ages=ages, td_errors=errors)
        raw = np.concatenate(frames)
        return Chunk(
            actor=self.index, incarnation=self.incarnation, fresh=fresh,
            steps=self.config.actor_chunk_steps * self.actor.num_envs, streams=streams,
            frames=zlib.compress(raw.tobytes(), 1), frame_shape=self.frame_shape,
            frame_dtype=str(raw.dtype), episodes=episodes, weights_version=self.weights_version,
            seconds=time.perf_counter() - t0, raw_frame_bytes=raw.nbytes,
        )  # fmt: skip

    @torch.no_grad()
    def initial_priorities(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per stream, the (ages, |TD errors|) of the n-step transitions that became complete
        since the last chunk, under the actor's network (online weights for both the chosen
        and the evaluated next action, as the actors hold one network)."""
        ring = self.ring
        streams = torch.arange(ring.num_streams).repeat_interleave(ring.slots)
        slots = torch.arange(ring.slots).repeat(ring.num_streams)
        new = ring.sampleable(streams, slots) & ~self.sent.view(-1)
        stream, slot = streams[new], slots[new]
        errors = torch.zeros(0)
        if len(stream) > 0:
            batch = ring.gather(stream, slot)
            online = self.agent.online
            _, _, errors = self.agent.loss_fn(online, online, batch, target_is_online=True)
            self.sent[stream, slot] = True
        ages = (ring.cursor[stream] - slot) % ring.slots
        out = []
        for s in range(ring.num_streams):
            mine = stream == s
            out.append((ages[mine].numpy().astype(np.int32),
                        errors[mine].float().numpy()))  # fmt: skip
        return out

    def info(self) -> dict[str, Any]:
        return {"index": self.index, "incarnation": self.incarnation, "epsilon": self.epsilon,
                "steps": self.steps}  # fmt: skip

    def close(self) -> None:
        self.envs.close()
