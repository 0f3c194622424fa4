"""Frame-deduplicated circular replay memory shared by N parallel environment streams.

Each stream owns a ring of ``slots_per_stream`` slots. A slot holds ONE frame (the newest frame of
an observation), the action taken from it, the reward, and whether the step terminated or was
truncated. Observation stacks are rebuilt at sampling time by index arithmetic over the ring,
vectorised over the batch: a stack never reaches across an episode start, and positions before the
start are padded exactly as the environment pads the stack the agent acted on (``"zero"`` frames or
a ``"repeat"`` of the first frame).

Slot protocol for one stream (the loop calls ``start`` once, then ``add`` every vector step):

* ``start(obs)`` writes each stream's first frame (flagged ``first``; pending, i.e. no action yet);
* ``add(action, reward, terminated, truncated, next_obs, reset_mask, final_obs)`` completes the
  pending slot with the action and outcome, then writes the next frame into the following slot. When
  the episode really ended (``reset_mask``), the next frame comes from ``final_obs`` (the true last
  observation, needed to bootstrap a truncation), and the new episode's first frame goes into one
  more slot. So no stored transition ever crosses a reset, and a stream's slots stay in time order.

A life loss in training is ``terminated`` without a reset: the stack continues, the bootstrap stops.

Sampling is uniform over complete transitions (rejection of the few slots that are not: pending
slots, the final-observation slot of an episode, the oldest ``frame_stack - 1`` slots whose history
has been overwritten); a sampled slot is always ``sampleable`` (see ``_draw``). n-step returns
(Sutton & Barto; Hessel et al. 2018) are computed at sampling time, cut at the first termination
or truncation, never across episodes or streams; the batch carries ``discount = gamma^m`` (0 after
a termination) so the agent needs no separate flag.

Memory per transition: one frame (7,056 bytes for 84x84) + action (4) + reward (4) + 3 flag bytes.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    """A sampled batch on the replay's device. ``discount`` is gamma^m, or 0 after a termination;
    ``weights`` are importance-sampling weights (prioritized replay only)."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    discount: torch.Tensor
    stream: torch.Tensor
    slot: torch.Tensor
    weights: torch.Tensor | None = None


PADDINGS = ("zero", "repeat")


class SlotRecords(NamedTuple):
    """Consecutive slots of one stream, as numpy arrays of one row per slot: what one ring ships
    to another (``ReplayBuffer.append_slots``)."""

    frames: np.ndarray
    first: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    complete: np.ndarray


def _as_words(table: torch.Tensor) -> torch.Tensor:
    """``table`` (rows, ...) viewed as (rows, words) of the widest integer type that divides a
    row's bytes, sharing its memory (a row of 84 x 84 uint8 frames is 882 int64 words)."""
    rows = table.view(table.shape[0], -1)
    row_bytes = rows.shape[1] * table.element_size()
    for word in (torch.int64, torch.int32, torch.int16):
        if table.element_size() < word.itemsize and row_bytes % word.itemsize == 0:
            return rows.view(word)
    return rows


class ReplayBuffer:
    """Uniform replay of ``capacity`` transitions split evenly across ``num_streams`` streams."""

    def __init__(
        self,
        capacity: int,
        num_streams: int,
        frame_shape: tuple[int, ...],
        frame_dtype: torch.dtype = torch.uint8,
        frame_stack: int = 4,
        stack_padding: str = "zero",
        n_step: int = 1,
        gamma: float = 0.99,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        if num_streams < 1:
            raise ValueError(f"num_streams must be >= 1, got {num_streams}")
        if frame_stack < 1 or n_step < 1:
            raise ValueError(f"frame_stack and n_step must be >= 1, got {frame_stack}, {n_step}")
        if stack_padding not in PADDINGS:
            raise ValueError(f"stack_padding must be one of {PADDINGS}, got {stack_padding!r}")
        slots = -(-capacity // num_streams)
        if slots < frame_stack + n_step + 2:
            raise ValueError(
                f"replay capacity {capacity} is too small for {num_streams} streams: each stream "
                f"needs at least {frame_stack + n_step + 2} slots"
            )
        self.device = torch.device(device)
        self.num_streams, self.slots = num_streams, slots
        self.frame_stack, self.stack_padding = frame_stack, stack_padding
        self.n_step, self.gamma = n_step, gamma
        shape = (num_streams, slots)
        kw = {"device": self.device}
        # One extra all-zero frame at the end serves as the "zero" padding of stacks.
        self._flat_frames = torch.zeros(
            (num_streams * slots + 1, *frame_shape), dtype=frame_dtype, **kw
        )
        self._zero_frame = num_streams * slots
        self._frame_words = _as_words(self._flat_frames)  # the same memory, for fast gathers
        self.frames = self._flat_frames[:-1].view(shape + tuple(frame_shape))
        self.action = torch.zeros(shape, dtype=torch.int32, **kw)
        self.reward = torch.zeros(shape, dtype=torch.float32, **kw)
        self.terminated = torch.zeros(shape, dtype=torch.bool, **kw)
        self.truncated = torch.zeros(shape, dtype=torch.bool, **kw)
        self.first = torch.zeros(shape, dtype=torch.bool, **kw)
        self.complete = torch.zeros(shape, dtype=torch.bool, **kw)  # action and next frame stored
        self.cursor = torch.zeros(num_streams, dtype=torch.long, **kw)  # each stream's pending slot
        self.written = 0  # slots written per stream, at most (max over streams)
        self.transitions_added = 0
        self.adds_since_start = 0  # `add` calls since the last `start` or `restart` (host count)
        self.started = False
        # Streams fed one at a time (append_slots): slots written and slots since each one's start
        self.stream_slots = [0] * num_streams
        self.stream_adds = [0] * num_streams
        # CUDA: the batch is drawn without a host synchronisation (see `_draw`)
        self.sync_free = self.device.type == "cuda"
        self._streams = torch.arange(num_streams, device=self.device)
        self._offsets = torch.arange(-frame_stack + 1, 1, device=self.device)
        self._steps = torch.arange(n_step, device=self.device)
        self._powers = gamma ** self._steps.to(torch.float64)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)

    # -- writing -------------------------------------------------------------------------------
    def _newest(self, obs: np.ndarray | torch.Tensor) -> torch.Tensor:
        obs = torch.as_tensor(obs).to(self.device, non_blocking=True)
        return obs[:, -1] if self.frame_stack > 1 else obs

    def _write(self, streams: torch.Tensor, frames: torch.Tensor, first: bool) -> None:
        slot = self.cursor[streams]
        self.frames[streams, slot] = frames.to(self.frames.dtype)
        self.first[streams, slot] = first
        self.complete[streams, slot] = False

    def start(self, obs: np.ndarray | torch.Tensor) -> None:
        """Store each stream's first observation (after ``env.reset``)."""
        self._write(self._streams, self._newest(obs), first=True)
        self.written = max(self.written, 1)
        self.adds_since_start = 0
        self.started = True

    def add(
        self,
        action: np.ndarray | torch.Tensor,
        reward: np.ndarray | torch.Tensor,
        terminated: np.ndarray | torch.Tensor,
        truncated: np.ndarray | torch.Tensor,
        next_obs: np.ndarray | torch.Tensor,
        reset_mask: np.ndarray | None = None,
        final_obs: np.ndarray | torch.Tensor | None = None,
    ) -> None:
        """Record one vector step for every stream (same-step autoreset semantics)."""
        if not self.started:
            raise RuntimeError("call start(obs) with the reset observations before add()")
        s, slot, dev = self._streams, self.cursor, self.device
        self.action[s, slot] = torch.as_tensor(action, device=dev).to(torch.int32)
        self.reward[s, slot] = torch.as_tensor(reward, device=dev).to(torch.float32)
        self.terminated[s, slot] = torch.as_tensor(terminated, device=dev).to(torch.bool)
        self.truncated[s, slot] = torch.as_tensor(truncated, device=dev).to(torch.bool)
        self.complete[s, slot] = True
        self.cursor = (self.cursor + 1) % self.slots
        newest = self._newest(next_obs)
        reset = None if reset_mask is None else np.flatnonzero(np.asarray(reset_mask))
        if reset is None or reset.size == 0:
            self._write(s, newest, first=False)
            self.written = min(self.slots, self.written + 1)
        else:
            if final_obs is None:
                raise ValueError("reset_mask marks ended episodes but final_obs was not given")
            idx = torch.as_tensor(reset, device=dev)
            ended = newest.clone()
            ended[idx] = self._newest(np.asarray(final_obs)[reset]).to(ended.dtype)
            self._write(s, ended, first=False)
            self.cursor[idx] = (self.cursor[idx] + 1) % self.slots
            self._write(idx, newest[idx], first=True)
            self.written = min(self.slots, self.written + 2)
        self.transitions_added += self.num_streams
        self.adds_since_start += 1

    def restart(self, obs: np.ndarray | torch.Tensor) -> None:
        """Begin new episodes in every stream mid-run (a resumed run whose envs were reset): the
        last stored transitions become truncations, bootstrapping from the frame already stored,
        and each new first frame goes into the following slot."""
        s, last = self._streams, (self.cursor - 1) % self.slots
        self.truncated[s, last] |= self.complete[s, last]
        self.cursor = (self.cursor + 1) % self.slots
        self._write(s, self._newest(obs), first=True)
        self.written = min(self.slots, self.written + 1)
        self.adds_since_start = 0

    def append_slots(self, stream: int, records: SlotRecords, fresh: bool) -> torch.Tensor:
        """Write the slots another ring of the same settings recorded for one of its streams
        (an Ape-X actor's: ``agents.distributed``) into ``stream``, so that the stream's newest
        slots hold what that ring's newest slots hold; returns the slots written.

        ``records`` starts with the other ring's pending slot of its previous shipment, now
        completed (its frame already here: it overwrites this stream's pending slot), and ends
        with its new pending slot. ``fresh``: the records come from a ring that started anew (a new
        or restarted actor: its first record begins an episode); a stream that held data then
        ends its last episode as ``restart`` does (the last stored transition becomes a
        truncation) and the records follow its pending slot, which stays incomplete."""
        k, dev = records.frames.shape[0], self.device
        cursor = int(self.cursor[stream])
        has_data = bool(self.first[stream].any())  # also in a replay loaded from files
        if fresh and has_data:
            last = (cursor - 1) % self.slots
            self.truncated[stream, last] |= self.complete[stream, last]
            cursor = (cursor + 1) % self.slots
        slots = (cursor + torch.arange(k, device=dev)) % self.slots
        frames = torch.from_numpy(np.array(records.frames, copy=True))
        self.frames[stream, slots] = frames.to(dev).to(self.frames.dtype)
        for name in ("first", "action", "reward", "terminated", "truncated", "complete"):
            table = getattr(self, name)
            values = torch.from_numpy(np.array(getattr(records, name), copy=True))
            table[stream, slots] = values.to(dev).to(table.dtype)
        self.cursor[stream] = int(slots[-1])
        added = k - (0 if fresh else 1)  # a continuation rewrites the pending slot it ends on
        self.stream_slots[stream] += added + (1 if fresh and has_data else 0)
        self.written = min(self.slots, max(self.written, self.stream_slots[stream]))
        self.transitions_added += int(np.asarray(records.complete).sum())
        self.stream_adds[stream] = (0 if fresh else self.stream_adds[stream]) + k - 1
        self.adds_since_start = min(self.stream_adds)
        self.started = True
        return slots

    # -- reading -------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Transitions stored (complete slots), at most the capacity."""
        return min(self.transitions_added, self.num_streams * self.slots)

    @property
    def nbytes(self) -> int:
        tensors = (self._flat_frames, self.action, self.reward, self.terminated, self.truncated)
        tensors += (self.first, self.complete)
        return sum(t.numel() * t.element_size() for t in tensors)

    def sampleable(self, stream: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        """Whether (stream, slot) starts a transition whose whole n-step window is intact."""
        age = (self.cursor[stream] - slot) % self.slots
        ok = self.complete[stream, slot] & (age >= self.n_step)
        return ok & (age <= self.slots - self.frame_stack)

    def surely_sampleable(self) -> bool:
        """A host-side sufficient condition for every stream to hold a sampleable slot: at least
        n_step + 2 ``add`` calls since the last ``start``/``restart``. Then the slots aged n_step
        and n_step + 1 were written by those adds, so each is complete unless it holds an
        episode's final observation, and a final-observation slot is never next to another one
        (the slot after it starts the next episode, completed by the following add); both ages
        lie in [n_step, slots - frame_stack] because slots >= frame_stack + n_step + 2."""
        return self.adds_since_start >= self.n_step + 2

    def stacks(self, stream: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        """Observation stacks (B, frame_stack, *frame) ending at the given slots."""
        if self.frame_stack == 1:
            return self.frames[stream, slot]
        window = (slot[:, None] + self._offsets) % self.slots  # (B, K) oldest..newest
        rows = stream[:, None]
        first = self.first[rows, window]
        positions = torch.arange(self.frame_stack, device=self.device)
        start = torch.where(first, positions, -1).amax(dim=1, keepdim=True)  # latest episode start
        pad = positions < start
        flat = rows * self.slots + window
        if self.stack_padding == "repeat":
            flat = torch.where(pad, torch.gather(flat, 1, start.clamp(min=0)), flat)
        else:
            flat = torch.where(pad, self._zero_frame, flat)
        # index_select of whole frames as wide words: about 3x faster than gathering the same
        # uint8 frames (which torch copies byte by byte), and 10x faster than advanced indexing.
        frames = self._frame_words.index_select(0, flat.view(-1)).view(self._flat_frames.dtype)
        return frames.view(*flat.shape, *self._flat_frames.shape[1:])

    def _candidates(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """2B + 16 uniform (stream, slot) draws and whether each is sampleable."""
        n, dev, gen = 2 * batch_size + 16, self.device, self.generator
        stream = torch.randint(self.num_streams, (n,), device=dev, generator=gen)
        slot = torch.randint(self.written, (n,), device=dev, generator=gen)
        return stream, slot, self.sampleable(stream, slot)

    def _draw(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """B independent uniform draws over the sampleable slots; every returned slot is one.

        A small or just (re)started replay draws candidates until B sampleable ones are found
        (``_draw_exactly``, host checks). Otherwise one set of 2B + 16 uniform candidates is drawn
        and its first B sampleable ones are kept: unsampleable slots are few (around each cursor
        and at episode ends), so B are almost always among them. When fewer are (tiny rings, many
        one-step episodes), the shortfall is handled exactly, never by returning or repeating a
        candidate:
        - off CUDA, reading the count costs nothing: the batch is drawn by ``_draw_exactly``;
        - on CUDA (``sync_free``), where reading it would stall the host on the device, picks
          past the candidates' sampleable count come from ``_draw_from_ring`` through a
          ``torch.where``: no synchronisation, at the cost of one O(capacity) pass per call.
        Either way the batch is B independent uniform draws over the sampleable slots (keeping
        or discarding a candidate set depends only on which candidates are sampleable, not on
        which sampleable slots they are)."""
        if len(self) < 8 * batch_size + 64 or not self.surely_sampleable():
            return self._draw_exactly(batch_size)
        stream, slot, keep = self._candidates(batch_size)
        if not self.sync_free:
            if int(keep.sum()) < batch_size:
                return self._draw_exactly(batch_size)
            return stream[keep][:batch_size], slot[keep][:batch_size]
        first = torch.argsort((~keep).to(torch.uint8), stable=True)[:batch_size]
        found = torch.arange(batch_size, device=self.device) < keep.sum()
        ring_stream, ring_slot = self._draw_from_ring(batch_size)
        return (
            torch.where(found, stream[first], ring_stream),
            torch.where(found, slot[first], ring_slot),
        )

    def _draw_from_ring(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """B independent uniform draws over the sampleable slots of the whole ring, without a host
        synchronisation: the k-th sampleable slot (k uniform) by a search in the running count.
        Needs a sampleable slot (``surely_sampleable``)."""
        slots = torch.arange(self.slots, device=self.device)
        age = (self.cursor[:, None] - slots) % self.slots
        ok = self.complete & (age >= self.n_step) & (age <= self.slots - self.frame_stack)
        counts = ok.view(-1).cumsum(0)
        total = counts[-1]
        u = torch.rand(
            batch_size, device=self.device, dtype=torch.float64, generator=self.generator
        )
        k = torch.minimum((u * total).long(), total - 1)
        flat = torch.searchsorted(counts, k, right=True)
        return flat // self.slots, flat % self.slots

    def _draw_exactly(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        stream_out, slot_out, have = [], [], 0
        for _ in range(1000):
            stream, slot, keep = self._candidates(batch_size)
            stream_out.append(stream[keep])
            slot_out.append(slot[keep])
            have += int(keep.sum())
            if have >= batch_size:
                return torch.cat(stream_out)[:batch_size], torch.cat(slot_out)[:batch_size]
        raise RuntimeError(f"replay holds too few complete transitions ({len(self)}) to sample")

    def sample(self, batch_size: int, step: int = 0) -> Batch:
        """A uniform batch of n-step transitions (``step``: unused, prioritized replay needs it)."""
        stream, slot = self._draw(batch_size)
        return self.gather(stream, slot)

    def gather(self, stream: torch.Tensor, slot: torch.Tensor) -> Batch:
        """The n-step transitions starting at the given (stream, slot) pairs."""
        ahead = (slot[:, None] + self._steps) % self.slots  # (B, n)
        rows = stream[:, None]
        terminated = self.terminated[rows, ahead]
        done = terminated | self.truncated[rows, ahead]
        before = torch.cumsum(done.int(), dim=1) - done.int()
        used = before == 0  # steps up to and including the first done
        m = used.sum(dim=1)
        powers = self._powers.to(self.reward.dtype)
        reward = (self.reward[rows, ahead] * powers * used).sum(dim=1)
        ended = (terminated & used).any(dim=1)
        discount = (self.gamma**m).to(torch.float32) * (~ended).to(torch.float32)
        next_slot = (slot + m) % self.slots
        return Batch(
            obs=self.stacks(stream, slot),
            action=self.action[stream, slot].long(),
            reward=reward,
            next_obs=self.stacks(stream, next_slot),
            discount=discount,
            stream=stream,
            slot=slot,
        )
