"""Sum-tree and proportional prioritized sampling checked against brute-force numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agents.dqn.replay.prioritized import (
    BRANCHING,
    PrioritizedReplay,
    PrioritizedSampler,
    SumTree,
    benchmark_sampling,
    flat_index,
    split_index,
)
from agents.dqn.replay.uniform import ReplayBuffer

# Upper-tail critical value of the chi-square distribution, 39 degrees of freedom, significance
# 0.001: 72.055 (NIST/SEMATECH e-Handbook of Statistical Methods, table 1.3.6.7.4).
CHI2_CRIT_DF39_P001 = 72.055


def chi_square(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = probs * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def test_critical_value_agrees_with_scipy_when_installed() -> None:
    stats = pytest.importorskip("scipy.stats")
    assert stats.chi2.ppf(0.999, 39) == pytest.approx(CHI2_CRIT_DF39_P001, abs=1e-3)


def tree_with(values: np.ndarray, branching: int = BRANCHING) -> SumTree:
    tree = SumTree(len(values), branching=branching)
    tree.update(torch.arange(len(values)), torch.as_tensor(values))
    return tree


def check_parents(tree: SumTree) -> None:
    """Every node above the leaves holds exactly the sum of its children."""
    for level in range(tree.depth):
        children = tree._groups[level].sum(dim=1)
        parents = tree._levels[level + 1]
        torch.testing.assert_close(parents[: children.numel()], children, rtol=0, atol=0)


def test_tree_shape_pads_leaves_to_whole_groups() -> None:
    assert (SumTree(37, branching=2).leaves, SumTree(37, branching=2).depth) == (38, 6)
    assert SumTree(37, branching=2).tree.numel() == 38 + 20 + 10 + 6 + 4 + 2 + 1
    assert (SumTree(37).leaves, SumTree(37).depth) == (128, 1)
    assert (SumTree(128).leaves, SumTree(128).depth) == (128, 1)
    assert (SumTree(129).leaves, SumTree(129).depth) == (256, 2)
    assert (SumTree(1).leaves, SumTree(1).depth) == (128, 1)
    # 1M transitions: 3 levels above the leaves (a binary tree has 20), 0.8% more memory.
    big = SumTree(1_000_000, device="meta")
    assert (big.leaves, big.depth) == (1_000_064, 3)
    assert big.tree.numel() == 1_000_064 + 7_936 + 128 + 1
    assert SumTree(37).tree.dtype == torch.float64


BRANCHINGS = pytest.mark.parametrize("branching", [2, 3, 16, BRANCHING])


@BRANCHINGS
def test_find_matches_cumsum_exactly_at_boundaries(branching: int) -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 6, size=37).astype(np.float64)  # integers: every sum is exact
    values[[0, 5, 6, 7, 36]] = 0.0  # zero leaves at both ends and in a run
    tree = tree_with(values, branching)
    cumsum = np.cumsum(values)
    total = cumsum[-1]
    assert float(tree.total()) == total
    boundaries = np.concatenate([[0.0], cumsum[:-1]])
    queries = np.concatenate([boundaries, boundaries + 0.5, rng.uniform(0, total, 500)])
    queries = queries[queries < total]
    found = tree.find(torch.as_tensor(queries)).numpy()
    np.testing.assert_array_equal(found, np.searchsorted(cumsum, queries, side="right"))
    assert (values[found] > 0).all()
    # At or past the total, rounding at the far end: the last positive leaf, never padding.
    last_positive = np.flatnonzero(values)[-1]
    assert tree.find(torch.tensor([total, total + 3.0])).tolist() == [last_positive] * 2


@BRANCHINGS
def test_find_matches_cumsum_for_random_priorities(branching: int) -> None:
    rng = np.random.default_rng(1)
    values = rng.uniform(0, 2, size=1000)
    values[rng.random(1000) < 0.3] = 0.0
    tree = tree_with(values, branching)
    cumsum = np.cumsum(values)
    assert float(tree.total()) == pytest.approx(cumsum[-1], rel=1e-12)
    queries = rng.uniform(0, cumsum[-1], 20_000)
    queries = np.concatenate([queries, cumsum[:-1]])  # boundaries too, for the zero-leaf check
    found = tree.find(torch.as_tensor(queries)).numpy()
    assert (values[found] > 0).all()
    # Away from boundaries the answer is unambiguous despite different rounding orders.
    gap = np.abs(queries[:, None] - cumsum[None, :]).min(axis=1)
    clear = gap > 1e-9
    assert clear.sum() > 19_000
    expected = np.searchsorted(cumsum, queries[clear], side="right")
    np.testing.assert_array_equal(found[clear], expected)


@BRANCHINGS
def test_batched_updates_match_numpy_mirror(branching: int) -> None:
    rng = np.random.default_rng(2)
    tree, mirror = SumTree(100, branching=branching), np.zeros(100)
    for _ in range(20):
        idx = rng.integers(0, 100, size=rng.integers(1, 60))  # duplicates likely
        vals = rng.integers(0, 9, size=idx.size).astype(np.float64)
        tree.update(torch.as_tensor(idx), torch.as_tensor(vals))
        for i, v in zip(idx, vals):  # sequential writes: the last one wins
            mirror[i] = v
        np.testing.assert_array_equal(tree.get(torch.arange(100)).numpy(), mirror)
        assert float(tree.total()) == mirror.sum()
        check_parents(tree)


@BRANCHINGS
def test_duplicate_indices_last_write_wins_and_parents_recomputed(branching: int) -> None:
    tree = SumTree(8, branching=branching)
    tree.update(torch.tensor([2, 5, 7]), torch.tensor([4.0, 1.0, 0.25]))
    tree.update(torch.tensor([2, 5, 2]), torch.tensor([1.0, 3.0, 7.0]))
    assert tree.get([2, 5, 7]).tolist() == [7.0, 3.0, 0.25]
    assert float(tree.total()) == 10.25  # not 4 + 1 + 7 + 3 + ... as increments would give
    tree.update([2, 2], [9.0, 0.5])  # last, not largest
    assert tree.get([2]).tolist() == [0.5]
    assert float(tree.total()) == 3.75
    tree.update([3] * 1000, torch.arange(1000.0))
    assert tree.get([3]).tolist() == [999.0]
    assert float(tree.total()) == 1002.75
    tree.update([4, 6], 2.0)  # a scalar broadcasts
    assert float(tree.total()) == 1006.75


def test_many_duplicates_last_write_wins() -> None:
    # Large enough that torch's own scatter runs on several threads in no fixed order.
    rng = np.random.default_rng(9)
    idx = rng.integers(0, 10, size=200_000)
    vals = rng.random(200_000)
    tree = SumTree(10)
    tree.update(torch.as_tensor(idx), torch.as_tensor(vals))
    leaf, last_from_end = np.unique(idx[::-1], return_index=True)
    expected = vals[idx.size - 1 - last_from_end]
    np.testing.assert_array_equal(tree.get(torch.as_tensor(leaf)).numpy(), expected)
    assert float(tree.total()) == pytest.approx(expected.sum(), rel=1e-15)


@BRANCHINGS
def test_capacity_one_tree(branching: int) -> None:
    tree = SumTree(1, branching=branching)
    tree.update([0], [3.0])
    assert float(tree.total()) == 3.0
    assert tree.find(torch.tensor([0.0, 2.9, 3.0])).tolist() == [0, 0, 0]


def chi_square_priorities() -> np.ndarray:
    """50 slots, 40 with distinct positive priorities (39 degrees of freedom), 10 at 0."""
    rng = np.random.default_rng(3)
    values = np.zeros(50)
    values[rng.permutation(50)[:40]] = rng.uniform(0.2, 3.0, 40)
    return values


def test_tree_draws_follow_leaf_values_chi_square() -> None:
    values = chi_square_priorities()
    tree = tree_with(values)
    gen = torch.Generator().manual_seed(0)
    draws = tree.find(torch.rand(100_000, generator=gen, dtype=torch.float64) * tree.total())
    counts = np.bincount(draws.numpy(), minlength=50)
    assert counts[values == 0].sum() == 0
    positive = values > 0
    probs = values[positive] / values.sum()
    assert chi_square(counts[positive], probs) < CHI2_CRIT_DF39_P001
    # The test has power: the same draws are far from uniform.
    assert chi_square(counts[positive], np.full(40, 1 / 40)) > 10 * CHI2_CRIT_DF39_P001


def sampler_with_td(td: np.ndarray, alpha: float, **kw) -> PrioritizedSampler:
    sampler = PrioritizedSampler(len(td), alpha=alpha, **kw)
    idx = torch.arange(len(td))
    sampler.on_add(idx)
    sampler.update_priorities(idx, torch.as_tensor(td))
    return sampler


def test_stratified_sampling_follows_priorities_chi_square() -> None:
    values = chi_square_priorities()
    sampler = sampler_with_td(values, alpha=0.6)
    sampler.invalidate(np.flatnonzero(values == 0).tolist())
    gen = torch.Generator().manual_seed(1)
    counts = np.zeros(50, dtype=np.int64)
    for _ in range(100):  # 100 batches of 1,000: 100k draws
        indices, _ = sampler.sample(1000, step=0, generator=gen)
        counts += np.bincount(indices.numpy(), minlength=50)
    assert counts.sum() == 100_000
    assert counts[values == 0].sum() == 0
    positive = values > 0
    p = (values[positive] + 1e-6) ** 0.6
    # Stratification only lowers the variance of the counts, so the i.i.d. bound still holds.
    statistic = chi_square(counts[positive], p / p.sum())
    assert statistic < CHI2_CRIT_DF39_P001
    # One draw per segment: far below the i.i.d. mean of 39 (independent draws fail this).
    assert statistic < 5.0
    assert chi_square(counts[positive], np.full(40, 1 / 40)) > 10 * CHI2_CRIT_DF39_P001


def test_importance_weights_match_numpy() -> None:
    rng = np.random.default_rng(4)
    td = rng.normal(0, 2, size=300)
    alpha, eps, step = 0.5, 1e-6, 300
    sampler = sampler_with_td(td, alpha, eps=eps, beta_start=0.4, beta_end=1.0, beta_steps=1000)
    invalid = np.arange(250, 300)
    sampler.invalidate(torch.as_tensor(invalid))
    indices, weights = sampler.sample(64, step=step, generator=torch.Generator().manual_seed(5))
    assert weights.dtype == torch.float32 and weights.shape == (64,)
    priority = (np.abs(td) + eps) ** alpha
    priority[invalid] = 0
    n = 250
    probs = priority / priority.sum()
    beta = 0.4 + 0.6 * step / 1000
    w = (n * probs[indices.numpy()]) ** -beta
    w = w / w.max()  # normalised by the batch max
    np.testing.assert_allclose(weights.numpy(), w, rtol=1e-6)
    assert float(weights.max()) == 1.0
    assert float(weights.min()) < 0.5  # the priorities spread enough for the check to bite


def test_stratified_draw_one_per_segment() -> None:
    # Equal priorities over 8 slots and a batch of 8: each segment holds exactly one slot.
    sampler = sampler_with_td(np.ones(8), alpha=1.0)
    for seed in range(5):
        gen = torch.Generator().manual_seed(seed)
        indices, weights = sampler.sample(8, step=0, generator=gen)
        assert indices.tolist() == list(range(8))
        assert weights.tolist() == [1.0] * 8


def test_beta_schedule() -> None:
    sampler = PrioritizedSampler(10, beta_start=0.4, beta_end=1.0, beta_steps=1000)
    betas = [sampler.beta(s) for s in (0, 250, 500, 1000, 5000)]
    assert betas == pytest.approx([0.4, 0.55, 0.7, 1.0, 1.0], abs=1e-12)
    assert PrioritizedSampler(10, beta_start=0.4, beta_end=0.8, beta_steps=0).beta(0) == 0.8


def test_new_transitions_enter_at_max_priority() -> None:
    eps = 1e-6
    sampler = PrioritizedSampler(10, alpha=0.5, eps=eps)
    sampler.on_add([0, 1])
    assert sampler.tree.get([0, 1]).tolist() == [1.0, 1.0]  # before any TD error: 1
    sampler.update_priorities(torch.tensor([0, 1]), torch.tensor([3.0, -8.0]))
    expected = [(3.0 + eps) ** 0.5, (8.0 + eps) ** 0.5]
    assert sampler.tree.get([0, 1]).tolist() == pytest.approx(expected, rel=1e-7)
    sampler.on_add([5])
    assert sampler.tree.get([5]).tolist() == pytest.approx([(8.0 + eps) ** 0.5], rel=1e-7)
    sampler.update_priorities([1], torch.tensor([0.0]))  # lowering one keeps the running max
    sampler.on_add([6])
    assert sampler.tree.get([1, 6]).tolist() == pytest.approx([eps**0.5, (8 + eps) ** 0.5])
    assert float(sampler.tree.total()) == pytest.approx(
        (3 + eps) ** 0.5 + eps**0.5 + 2 * (8 + eps) ** 0.5, rel=1e-12
    )


def test_alpha_zero_samples_uniformly_with_unit_weights() -> None:
    rng = np.random.default_rng(6)
    td = rng.exponential(5.0, size=40) * rng.choice([-1, 1], size=40)
    sampler = sampler_with_td(td, alpha=0.0)
    assert sampler.tree.get(torch.arange(40)).tolist() == [1.0] * 40
    gen = torch.Generator().manual_seed(7)
    counts = np.zeros(40, dtype=np.int64)
    for _ in range(100):
        indices, weights = sampler.sample(1000, step=0, generator=gen)
        assert weights.tolist() == [1.0] * 1000
        counts += np.bincount(indices.numpy(), minlength=40)
    assert chi_square(counts, np.full(40, 1 / 40)) < CHI2_CRIT_DF39_P001
    assert counts.min() >= 2450 and counts.max() <= 2550


def test_flat_index_round_trip() -> None:
    stream, slot = torch.tensor([0, 1, 3, 3]), torch.tensor([0, 7, 2, 9])
    flat = flat_index(stream, slot, slots=10)
    assert flat.tolist() == [0, 17, 32, 39]
    back = split_index(flat, slots=10)
    assert back[0].tolist() == stream.tolist() and back[1].tolist() == slot.tolist()


def test_sync_with_replay_draws_only_sampleable_transitions() -> None:
    replay = ReplayBuffer(40, num_streams=2, frame_shape=(2, 2), frame_stack=2, n_step=2)
    rng = np.random.default_rng(8)

    def obs() -> np.ndarray:
        return rng.integers(0, 255, size=(2, 2, 2, 2), dtype=np.uint8)

    replay.start(obs())
    for t in range(33):
        reset = np.array([t % 11 == 10, t % 7 == 6])
        zeros = np.zeros(2)
        replay.add(rng.integers(0, 4, 2), zeros, reset, zeros.astype(bool), obs(), reset, obs())
    sampler = PrioritizedSampler(replay.num_streams * replay.slots, alpha=0.5)
    flat = torch.arange(replay.num_streams * replay.slots)
    valid = replay.sampleable(*split_index(flat, replay.slots))
    assert 0 < int(valid.sum()) < flat.numel()
    sampler.sync(flat, valid)
    assert torch.equal(sampler.tree.get(flat) > 0, valid)
    # A valid slot keeps the priority it has; only slots at 0 enter at the max.
    chosen = flat[valid][:3]
    sampler.update_priorities(chosen, torch.tensor([4.0, 0.0, 1.0]))
    before = sampler.tree.get(chosen).clone()
    sampler.sync(flat, valid)
    assert torch.equal(sampler.tree.get(chosen), before)
    indices, _ = sampler.sample(500, step=0, generator=torch.Generator().manual_seed(9))
    stream, slot = split_index(indices, replay.slots)
    assert bool(replay.sampleable(stream, slot).all())
    assert replay.gather(stream, slot).obs.shape == (500, 2, 2, 2)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"capacity": 0},
        {"capacity": 10, "alpha": -0.1},
        {"capacity": 10, "beta_start": 1.5},
        {"capacity": 10, "beta_end": -0.1},
        {"capacity": 10, "beta_steps": -1},
        {"capacity": 10, "eps": 0.0},
    ],
)
def test_bad_settings_raise_value_error(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        PrioritizedSampler(**kwargs)


def test_bad_calls_raise() -> None:
    sampler = PrioritizedSampler(10)
    with pytest.raises(RuntimeError, match="no transitions"):
        sampler.sample(4, step=0)
    sampler.on_add([0, 1])
    with pytest.raises(ValueError, match="batch_size"):
        sampler.sample(0, step=0)
    with pytest.raises(ValueError, match="3 indices but 2 values"):
        sampler.tree.update([0, 1, 2], [1.0, 2.0])
    with pytest.raises(ValueError, match="positive integer"):
        SumTree(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="branching must be an integer >= 2, got 1"):
        SumTree(10, branching=1)


def test_benchmark_sampling_smoke() -> None:
    result = benchmark_sampling(capacity=1000, batch_size=8, repeats=3)
    assert result["capacity"] == 1000 and result["batch_size"] == 8
    assert result["sample_us"] > 0 and result["update_us"] > 0
    assert result["sample_and_update_us"] == result["sample_us"] + result["update_us"]


@settings(max_examples=60, deadline=None)
@given(
    num_streams=st.sampled_from([1, 3, 16, 64]),
    extra_slots=st.integers(0, 6),
    frame_stack=st.sampled_from([1, 4]),
    n_step=st.integers(1, 3),
    steps=st.integers(0, 30),
    p_end=st.sampled_from([0.0, 0.5, 1.0]),  # 1.0: every episode lasts one step
    seed=st.integers(0, 2**16),
)
@example(64, 0, 4, 3, 2, 0.0, 0).via("audit")  # 2 adds: nothing sampleable yet
@example(2, 0, 4, 1, 30, 0.3, 0).via("audit")  # priorities of a batch come back after an add
def test_prioritized_draws_only_sampleable_slots_of_tiny_replays(
    num_streams, extra_slots, frame_stack, n_step, steps, p_end, seed
) -> None:
    slots = frame_stack + n_step + 2 + extra_slots
    replay = ReplayBuffer(num_streams * slots, num_streams, (1,), torch.float32,
                          frame_stack=frame_stack, n_step=n_step, seed=seed)  # fmt: skip
    prioritized = PrioritizedReplay(replay, PrioritizedSampler(num_streams * slots, alpha=0.6))
    rng = np.random.default_rng(seed)
    shape = (num_streams, frame_stack, 1) if frame_stack > 1 else (num_streams, 1)

    def add() -> None:
        obs = rng.random(shape).astype(np.float32)
        end = rng.random(num_streams) < p_end
        prioritized.add(rng.integers(0, 4, num_streams), np.zeros(num_streams), end,
                        np.zeros(num_streams, bool), obs, end, obs)  # fmt: skip

    def sampleable_count() -> int:
        streams = torch.arange(num_streams).repeat_interleave(slots)
        return int(replay.sampleable(streams, torch.arange(slots).repeat(num_streams)).sum())

    prioritized.start(np.zeros(shape, np.float32))
    for _ in range(steps):
        add()
        if sampleable_count() == 0:
            with pytest.raises(RuntimeError, match="too few complete transitions"):
                prioritized.sample(4)
            continue
        batch = prioritized.sample(8)
        assert bool(replay.sampleable(batch.stream, batch.slot).all())
        assert bool(torch.isfinite(batch.weights).all())
        add()  # a learner that writes the batch's priorities back one add later
        prioritized.update_priorities(batch, torch.rand(8) * 5)
        if sampleable_count() > 0:
            again = prioritized.sample(32)
            assert bool(replay.sampleable(again.stream, again.slot).all())
