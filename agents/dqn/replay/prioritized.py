"""Sum-tree and proportional prioritized replay sampling (Schaul et al. 2016; Hessel et al. 2018).

``SumTree`` keeps ``capacity`` non-negative leaf values and every partial sum above them in one
flat tensor on the replay's device, with 128 children per node (3 levels above the leaves up to
2M leaves). Updates and prefix-sum searches are batched torch ops, one vectorised step per tree
level; no Python loop runs over the batch. Parents are always recomputed from their children, never
incremented, so sums do not drift and duplicate indices in one update are harmless.

``PrioritizedSampler`` is the proportional variant of prioritized experience replay: transition
``i`` is drawn with probability ``P(i) = p_i^alpha / sum_k p_k^alpha`` where
``p_i = |delta_i| + eps``. The tree stores ``p_i^alpha``. New transitions enter at the largest
priority seen so far; slots that stop holding a complete transition are set to 0 and can never be
drawn. A batch of B is drawn by stratified sampling: the total is cut into B equal segments and one
uniform draw is made in each (Schaul et al. 2016, Appendix B.2.1). Importance weights follow
``w_i = (N P(i))^-beta``, normalised by the largest weight IN THE BATCH, so the weights only scale
updates down and the largest is exactly 1; N then cancels and ``w_i = (P(i) / min_batch P)^-beta``.
(The paper writes ``1 / max_i w_i``; normalising by the batch maximum is what Dopamine's Rainbow
agent does, ``loss_weights /= reduce_max(loss_weights)``.) beta rises linearly from ``beta_start``
to ``beta_end`` over ``beta_steps`` agent steps (Hessel et al. 2018 use alpha 0.5 and beta
0.4 -> 1 over training).

Indices are flat replay indices: with ``ReplayBuffer`` (agents/replay.py) transition
``(stream, slot)`` is ``stream * replay.slots + slot`` (``flat_index`` / ``split_index``), and
``sync(indices, replay.sampleable(stream, slot))`` keeps the tree in step with the ring.

Device syncs: ``sample``, ``update_priorities``, ``on_add``, ``invalidate`` and ``sync`` call no
``.item()``; the running max priority stays a device tensor. Bounds and signs of indices and
priorities are not checked in those paths, because a check would force a sync: indices must lie in
``[0, capacity)`` and priorities must be finite and >= 0.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from numbers import Integral

import numpy as np
import torch

IndexLike = torch.Tensor | Sequence[int]


BRANCHING = 128
"""Children per sum-tree node: 3 levels above the leaves up to 2M transitions (a binary tree
needs 20 at 1M), so a search or an update is a dozen batched ops per level for 3 levels instead
of a handful for 20; each op is launch-bound (microseconds on a CPU, a kernel on a GPU) while the
extra work, B x 128 values per level, is tiny."""


class SumTree:
    """Sum-tree with ``branching`` children per node over ``capacity`` leaves (float64 default).

    Levels are stored bottom-up in one flat tensor ``tree``: the leaves (``capacity`` rounded up
    to a multiple of ``branching``), then each level's sums of consecutive groups of
    ``branching`` nodes, ending in the root, the total. Padding leaves stay 0.
    """

    def __init__(
        self,
        capacity: int,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
        branching: int = BRANCHING,
    ) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, Integral) or capacity < 1:
            raise ValueError(f"SumTree capacity must be a positive integer, got {capacity!r}")
        if isinstance(branching, bool) or not isinstance(branching, Integral) or branching < 2:
            raise ValueError(f"SumTree branching must be an integer >= 2, got {branching!r}")
        capacity, branching = int(capacity), int(branching)
        if not dtype.is_floating_point:
            raise ValueError(f"SumTree dtype must be a floating point dtype, got {dtype}")
        self.capacity, self.branching = capacity, branching
        self.device = torch.device(device)
        sizes, n = [], capacity
        while True:  # every level but the root holds whole groups of `branching` nodes
            sizes.append(-(-n // branching) * branching)
            n = sizes[-1] // branching
            if n == 1:
                break
        sizes.append(1)
        self.depth = len(sizes) - 1  # levels below the root
        self.leaves = sizes[0]
        self.tree = torch.zeros(sum(sizes), dtype=dtype, device=self.device)
        starts = [sum(sizes[:level]) for level in range(len(sizes))]
        self._levels = [self.tree[a : a + size] for a, size in zip(starts, sizes)]
        # _groups[l][g] holds the `branching` children (at level l) of node g of level l + 1.
        self._groups = [level.view(-1, branching) for level in self._levels[:-1]]
        self._minus_inf = torch.tensor(-torch.inf, dtype=dtype, device=self.device)

    def _index(self, indices: IndexLike) -> torch.Tensor:
        return torch.as_tensor(indices, device=self.device).long().reshape(-1)

    def total(self) -> torch.Tensor:
        """Sum of all leaves, a 0-d tensor on the tree's device."""
        return self._levels[-1][0]

    def get(self, indices: IndexLike) -> torch.Tensor:
        """Leaf values at the given indices."""
        return self._levels[0][self._index(indices)]

    def update(self, indices: IndexLike, values: torch.Tensor | float) -> None:
        """Set leaves ``indices`` to ``values`` (broadcast); for duplicates the last write wins."""
        idx = self._index(indices)
        if idx.numel() == 0:
            return
        vals = torch.as_tensor(values, dtype=self.tree.dtype, device=self.device)
        vals = vals.expand(idx.shape) if vals.dim() == 0 else vals.reshape(-1)
        if vals.shape != idx.shape:
            raise ValueError(f"got {idx.numel()} indices but {vals.numel()} values")
        # Last write wins: a stable sort groups equal indices in order of appearance; every
        # member of a group then writes the value of the group's last member, so the order in
        # which the scatter applies duplicates no longer matters. Shapes stay static (no boolean
        # masking), so no device sync.
        node, order = torch.sort(idx, stable=True)
        group_last = torch.searchsorted(node, node, right=True) - 1
        self._levels[0][node] = vals[order[group_last]]
        for level in range(self.depth):
            node = node // self.branching
            # Parents are recomputed from their children; duplicates write the same value.
            self._levels[level + 1][node] = self._groups[level].index_select(0, node).sum(dim=1)

    def find(self, prefix_sums: torch.Tensor) -> torch.Tensor:
        """Leaf ``i`` with ``cumsum[i - 1] <= s < cumsum[i]`` for each prefix sum ``s``.

        Zero leaves are never returned while the total is positive: within a node the chosen
        child is the first whose running sum exceeds ``s``, so a zero child (whose running sum
        equals its left neighbour's) is never chosen; ``s`` at or past the node's sum
        (``s >= total``, or rounding at the far end) is first lowered to just below it, which
        takes the last positive child.
        """
        s = torch.as_tensor(prefix_sums, dtype=self.tree.dtype, device=self.device).reshape(-1)
        node = torch.zeros(s.shape, dtype=torch.long, device=self.device)
        for level in reversed(range(self.depth)):
            children = self._groups[level].index_select(0, node)  # (B, branching)
            running = children.cumsum(dim=1)
            # Below the node's sum, so that s at or past it takes the last positive child (the
            # first whose running sum reaches the node's sum).
            s = torch.minimum(s, torch.nextafter(running[:, -1], self._minus_inf))
            child = (running <= s[:, None]).sum(dim=1)
            before = (running - children).gather(1, child[:, None]).squeeze(1)
            s = (s - before).clamp(min=0.0)  # rounding never sends s below the chosen child
            node = node * self.branching + child
        return node


def flat_index(stream: torch.Tensor, slot: torch.Tensor, slots: int) -> torch.Tensor:
    """Flat replay index of transition ``(stream, slot)`` in a replay of ``slots`` per stream."""
    return stream.long() * slots + slot.long()


def split_index(indices: torch.Tensor, slots: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(stream, slot)`` of flat replay indices, the inverse of ``flat_index``."""
    return torch.div(indices, slots, rounding_mode="floor"), indices % slots


class PrioritizedSampler:
    """Proportional prioritized sampling over ``capacity`` flat replay indices."""

    def __init__(
        self,
        capacity: int,
        alpha: float = 0.5,
        beta_start: float = 0.4,
        beta_end: float = 1.0,
        beta_steps: int = 50_000_000,
        eps: float = 1e-6,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
    ) -> None:
        # Defaults: alpha 0.5 and beta 0.4 -> 1 from Hessel et al. (2018); 50M agent steps is
        # their 200M-frame training length. Set beta_steps to the length of the run.
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        for name, beta in (("beta_start", beta_start), ("beta_end", beta_end)):
            if not 0 <= beta <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {beta}")
        if beta_steps < 0:
            raise ValueError(f"beta_steps must be >= 0 agent steps, got {beta_steps}")
        if eps <= 0:
            raise ValueError(f"eps must be > 0 so every stored transition can be drawn, got {eps}")
        self.tree = SumTree(capacity, device=device, dtype=dtype)
        self.capacity, self.device = capacity, self.tree.device
        self.alpha, self.eps = alpha, eps
        self.beta_start, self.beta_end, self.beta_steps = beta_start, beta_end, beta_steps
        # Largest p^alpha seen so far (never decreases); new transitions enter with it.
        self.max_priority = torch.ones((), dtype=dtype, device=self.device)
        self.indices_added = 0  # host-side count, lets sample() refuse an empty tree without a sync

    def beta(self, step: int) -> float:
        """Importance-sampling exponent at agent step ``step``, linear then constant."""
        if self.beta_steps == 0:
            return self.beta_end
        fraction = min(max(step, 0) / self.beta_steps, 1.0)
        return self.beta_start + fraction * (self.beta_end - self.beta_start)

    def on_add(self, indices: IndexLike) -> None:
        """New transitions at ``indices`` enter at the current max priority."""
        idx = self.tree._index(indices)
        self.tree.update(idx, self.max_priority)
        self.indices_added += idx.numel()

    def invalidate(self, indices: IndexLike) -> None:
        """Slots that no longer hold a complete transition get priority 0 (never drawn)."""
        self.tree.update(indices, 0.0)

    def sync(self, indices: IndexLike, valid: torch.Tensor) -> None:
        """Match ``valid`` (e.g. ``replay.sampleable``): zero the invalid, give new valid ones max.

        A valid index that already has a priority keeps it; one at 0 enters at the max priority.
        """
        idx = self.tree._index(indices)
        valid = torch.as_tensor(valid, device=self.device).bool().reshape(-1)
        current = self.tree.get(idx)
        fresh = torch.where(current > 0, current, self.max_priority)
        self.tree.update(idx, torch.where(valid, fresh, torch.zeros_like(current)))
        self.indices_added += idx.numel()

    def update_priorities(
        self, indices: IndexLike, td_errors: torch.Tensor, valid: torch.Tensor | None = None
    ) -> None:
        """Set ``p_i = (|delta_i| + eps)^alpha`` for the sampled indices and track the max;
        indices where ``valid`` (if given) is False get 0 instead, so they stay undrawable."""
        delta = torch.as_tensor(td_errors, device=self.device).detach().to(self.tree.tree.dtype)
        priorities = (delta.abs().reshape(-1) + self.eps) ** self.alpha
        if valid is not None:
            valid = torch.as_tensor(valid, device=self.device).bool().reshape(-1)
            priorities = torch.where(valid, priorities, torch.zeros_like(priorities))
        self.tree.update(indices, priorities)
        if priorities.numel() > 0:
            self.max_priority = torch.maximum(self.max_priority, priorities.max())

    def sample(
        self, batch_size: int, step: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stratified draw of ``batch_size`` flat indices and their float32 importance weights.

        ``step`` (agent steps) sets beta. ``generator`` must live on the sampler's device.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self.indices_added == 0:
            raise RuntimeError("no transitions were added to the prioritized sampler")
        total = self.tree.total()
        dtype = self.tree.tree.dtype
        u = torch.rand(batch_size, generator=generator, device=self.device, dtype=dtype)
        strata = torch.arange(batch_size, device=self.device, dtype=dtype)
        indices = self.tree.find((strata + u) * (total / batch_size))
        priorities = self.tree.get(indices)
        # (N P_i)^-beta / max_j (N P_j)^-beta = (p_i / min_j p_j)^-beta: N and the total cancel.
        weights = (priorities / priorities.min()) ** -self.beta(step)
        return indices, weights.to(torch.float32)


def benchmark_sampling(
    capacity: int = 1_000_000,
    batch_size: int = 32,
    repeats: int = 200,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> dict[str, float]:
    """Time one ``sample`` and one ``update_priorities`` on a full sampler (microseconds each)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    sampler = PrioritizedSampler(capacity, device=device)
    generator = torch.Generator(device=sampler.device)
    generator.manual_seed(seed)
    all_indices = torch.arange(capacity, device=sampler.device)
    td = torch.rand(capacity, generator=generator, device=sampler.device) * 2
    sampler.on_add(all_indices)
    sampler.update_priorities(all_indices, td)

    def synchronize() -> None:
        if sampler.device.type == "cuda":
            torch.cuda.synchronize(sampler.device)

    def timed(fn) -> float:
        fn()  # warm-up
        synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        synchronize()
        return (time.perf_counter() - start) / repeats * 1e6

    indices, _ = sampler.sample(batch_size, 0, generator)
    errors = torch.rand(batch_size, generator=generator, device=sampler.device)
    sample_us = timed(lambda: sampler.sample(batch_size, 0, generator))
    update_us = timed(lambda: sampler.update_priorities(indices, errors))
    return {
        "capacity": float(capacity),
        "batch_size": float(batch_size),
        "sample_us": sample_us,
        "update_us": update_us,
        "sample_and_update_us": sample_us + update_us,
    }


class PrioritizedReplay:
    """A ``ReplayBuffer`` sampled by priority: the sampler's leaves are the replay's flat slots.

    After every ``add`` the slots whose sampleability can have changed (each stream's cursor
    neighbourhood: newly completed transitions, the pending and overwritten slots, and the oldest
    slots losing their stack history) are synchronised: unsampleable slots get priority 0, newly
    sampleable ones the current maximum.
    """

    def __init__(self, replay, sampler: PrioritizedSampler) -> None:
        self.replay, self.sampler = replay, sampler
        behind = replay.n_step + 3  # completed, final-observation and reset slots
        ahead = replay.frame_stack + 1  # the oldest slots, whose history the next writes remove
        self._offsets = torch.arange(-behind, ahead, device=replay.device)

    def __len__(self) -> int:
        return len(self.replay)

    @property
    def started(self) -> bool:
        return self.replay.started

    def start(self, obs) -> None:
        self.replay.start(obs)

    def add(self, *args, **kwargs) -> None:
        self.replay.add(*args, **kwargs)
        self._sync_window()

    def restart(self, obs) -> None:
        self.replay.restart(obs)
        self._sync_window()

    def append_slots(
        self,
        stream: int,
        records,
        fresh: bool,
        ages: np.ndarray | None = None,
        td_errors: np.ndarray | None = None,
    ) -> torch.Tensor:
        """``ReplayBuffer.append_slots``, then the stream's priorities kept in step: the written
        slots and their neighbourhood synchronised (as after ``add``), and the transitions whose
        initial |TD errors| the sender computed (``ages``: their age from the stream's pending
        slot, ``td_errors``: the errors) entering at those priorities instead of the maximum
        (Ape-X, Horgan et al. 2018)."""
        r = self.replay
        slots = r.append_slots(stream, records, fresh)
        dev = r.device
        window = torch.cat([(slots[0] + self._offsets[self._offsets < 0]) % r.slots, slots,
                            (slots[-1] + self._offsets[self._offsets > 0]) % r.slots])  # fmt: skip
        streams = torch.full_like(window, stream)
        self.sampler.sync(flat_index(streams, window, r.slots), r.sampleable(streams, window))
        if ages is not None and len(ages) > 0:
            at = (r.cursor[stream] - torch.tensor(ages, device=dev).long()) % r.slots
            rows = torch.full_like(at, stream)
            errors = torch.tensor(td_errors, device=dev)
            self.sampler.update_priorities(
                flat_index(rows, at, r.slots), errors, r.sampleable(rows, at)
            )
        return slots

    def _sync_window(self) -> None:
        r = self.replay
        slots = (r.cursor[:, None] + self._offsets) % r.slots  # (N, window)
        streams = r._streams[:, None].expand_as(slots)
        valid = r.sampleable(streams.reshape(-1), slots.reshape(-1))
        self.sampler.sync(flat_index(streams.reshape(-1), slots.reshape(-1), r.slots), valid)

    def sample(self, batch_size: int, step: int = 0):
        """A batch drawn by priority; every returned slot is ``replay.sampleable``: the tree gives
        exactly the sampleable slots a positive priority, and a tree whose total is 0 (no
        sampleable slot yet) raises RuntimeError as the uniform replay does. That check reads the
        total (a host synchronisation) only while ``replay.surely_sampleable()`` is False: the
        first n_step + 2 adds after a start or restart."""
        if not self.replay.surely_sampleable() and not bool(self.sampler.tree.total() > 0):
            raise RuntimeError(
                f"replay holds too few complete transitions ({len(self.replay)}) to sample"
            )
        indices, weights = self.sampler.sample(batch_size, step, self.replay.generator)
        stream, slot = split_index(indices, self.replay.slots)
        return self.replay.gather(stream, slot)._replace(weights=weights)

    def update_priorities(self, batch, td_errors: torch.Tensor) -> None:
        """New priorities for a sampled batch. A slot the replay no longer holds as a sampleable
        transition (an ``add`` came between the draw and this update) stays at 0; without that,
        the update would give it back a positive priority and it could be drawn until the next
        ``add`` synchronised its neighbourhood again."""
        self.sampler.update_priorities(
            flat_index(batch.stream, batch.slot, self.replay.slots),
            td_errors,
            self.replay.sampleable(batch.stream, batch.slot),
        )
