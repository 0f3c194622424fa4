"""Replay: every sampled stack equals the stack the env produced, across episode ends,
truncations, life losses, wrap-around of the circular buffer, N streams and n-step returns."""

from collections import deque

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agents.dqn.replay.uniform import ReplayBuffer

K = 4  # frame stack


class StackingStreams:
    """N toy envs whose frames carry unique ids; stacks padded as a real env pads them."""

    def __init__(self, num_envs: int, padding: str, rng: np.random.Generator):
        self.n, self.padding, self.rng, self.counter = num_envs, padding, rng, 0
        self.stacks = [deque(maxlen=K) for _ in range(num_envs)]

    def _frame(self) -> np.ndarray:
        self.counter += 1
        return np.full((2, 3), self.counter, dtype=np.int32)

    def _reset_one(self, i: int) -> None:
        f = self._frame()
        pad = f if self.padding == "repeat" else np.zeros_like(f)
        self.stacks[i].extend([pad] * (K - 1) + [f])

    def obs(self) -> np.ndarray:
        return np.stack([np.stack(list(s)) for s in self.stacks])

    def reset(self) -> np.ndarray:
        for i in range(self.n):
            self._reset_one(i)
        return self.obs()

    def step(self, p_end: float):
        u = self.rng.random((self.n, 3))
        terminated = u[:, 0] < p_end  # game over or (without reset) a life loss
        truncated = ~terminated & (u[:, 1] < p_end / 2)
        life_loss = terminated & (u[:, 2] < 0.3)
        reset = (terminated & ~life_loss) | truncated
        reward = self.rng.integers(-1, 2, self.n).astype(np.float32)
        for s in self.stacks:
            s.append(self._frame())
        final = self.obs()
        for i in np.flatnonzero(reset):
            self._reset_one(i)
        return self.obs(), reward, terminated, truncated, reset, final


def run(num_envs, slots, steps, padding, p_end, n_step, seed):
    rng = np.random.default_rng(seed)
    env = StackingStreams(num_envs, padding, rng)
    replay = ReplayBuffer(
        capacity=num_envs * slots,
        num_streams=num_envs,
        frame_shape=(2, 3),
        frame_dtype=torch.int32,
        frame_stack=K,
        stack_padding=padding,
        n_step=n_step,
        gamma=0.5,
        seed=seed,
    )
    obs = env.reset()
    replay.start(obs)
    history = []  # per step: where each stream's transition went, and what it was
    for _ in range(steps):
        action = rng.integers(0, 6, num_envs)
        slot = replay.cursor.clone()
        next_obs, reward, term, trunc, reset, final = env.step(p_end)
        replay.add(action, reward, term, trunc, next_obs, reset, final)
        true_next = np.where(reset[:, None, None, None], final, next_obs)
        history.append((slot, obs, action, reward, term, trunc, true_next))
        obs = next_obs
    return replay, history


def expected_nstep(history, t, i, n, gamma):
    """Plain loop: n-step return from step t of stream i, cut at termination or truncation."""
    ret, disc = 0.0, 1.0
    for j in range(n):
        _, _, _, reward, term, trunc, nxt = history[t + j]
        ret += disc * reward[i]
        disc *= gamma
        if term[i]:
            return ret, 0.0, nxt[i]
        if trunc[i] or j == n - 1:
            return ret, disc, nxt[i]


@settings(max_examples=40, deadline=None)
@given(
    num_envs=st.integers(1, 4),
    slots=st.integers(12, 40),
    steps=st.integers(1, 120),
    padding=st.sampled_from(["zero", "repeat"]),
    p_end=st.sampled_from([0.0, 0.1, 0.4]),
    n_step=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_every_sampleable_transition_matches_what_the_env_produced(
    num_envs, slots, steps, padding, p_end, n_step, seed
):
    replay, history = run(num_envs, slots, steps, padding, p_end, n_step, seed)
    latest = {}  # (stream, slot) -> the last step whose transition was written there
    for t, (slot, *_) in enumerate(history):
        for i in range(num_envs):
            latest[(i, int(slot[i]))] = t
    checked = 0
    for (i, slot), t in latest.items():
        if not replay.sampleable(torch.tensor([i]), torch.tensor([slot])).item():
            continue
        _, obs, action, *_ = history[t]
        b = replay.gather(torch.tensor([i]), torch.tensor([slot]))
        np.testing.assert_array_equal(b.obs[0].numpy(), obs[i])
        assert b.action.item() == action[i]
        ret, disc, nxt = expected_nstep(history, t, i, n_step, 0.5)
        np.testing.assert_array_equal(b.next_obs[0].numpy(), nxt)
        assert b.reward.item() == pytest.approx(ret)
        assert b.discount.item() == pytest.approx(disc)
        checked += 1
    # Without resets, a transition is sampleable exactly when its n-step window is complete and
    # its history is not yet overwritten: n_step <= age <= slots - K, age = steps - t.
    if p_end == 0.0:
        for t, (slot, *_) in list(enumerate(history))[-replay.slots :]:
            expected = n_step <= steps - t <= replay.slots - K
            assert replay.sampleable(torch.arange(num_envs), slot).tolist() == [expected] * num_envs
    assert checked == int(
        sum(
            replay.sampleable(torch.full((replay.slots,), i), torch.arange(replay.slots)).sum()
            for i in range(num_envs)
        )
    )


def test_samples_come_only_from_sampleable_slots_and_cover_all_streams():
    replay, _ = run(num_envs=3, slots=50, steps=200, padding="zero", p_end=0.1, n_step=1, seed=1)
    b = replay.sample(512)
    assert replay.sampleable(b.stream, b.slot).all()
    assert set(b.stream.tolist()) == {0, 1, 2}
    assert b.obs.shape == (512, K, 2, 3) and b.obs.dtype == torch.int32


def test_truncation_bootstraps_and_termination_does_not():
    replay = ReplayBuffer(40, 1, (1,), torch.float32, frame_stack=1, gamma=0.9)
    replay.start(np.array([[0.0]]))
    replay.add([1], [1.0], [False], [True], np.array([[5.0]]), [True], np.array([[9.0]]))
    replay.add([0], [2.0], [True], [False], np.array([[6.0]]), [True], np.array([[7.0]]))
    replay.add([0], [0.0], [False], [False], np.array([[8.0]]))
    b = replay.gather(torch.tensor([0, 0]), torch.tensor([0, 2]))
    assert b.next_obs[:, 0].tolist() == [9.0, 7.0]  # the true final observations, not the resets
    assert b.discount.tolist() == pytest.approx([0.9, 0.0])
    assert replay.sampleable(torch.tensor([0, 0, 0]), torch.tensor([0, 1, 2])).tolist() == [
        True,
        False,
        True,  # slot 1 holds the truncated episode's last frame: no transition
    ]


def test_memory_per_transition_for_atari_frames():
    replay = ReplayBuffer(100_000, 4, (84, 84))
    assert replay.nbytes / 100_000 <= 7_200
    assert replay.frames.numel() == 100_000 * 84 * 84


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="stack_padding.*'mirror'"):
        ReplayBuffer(100, 1, (2,), stack_padding="mirror")
    with pytest.raises(ValueError, match="capacity 10 is too small"):
        ReplayBuffer(10, 2, (2,))


def tiny_replay(num_streams, extra_slots, frame_stack, n_step, steps, p_end, seed):
    """A ring of the smallest legal size (+ extra_slots) per stream; with p_end = 1 every episode
    lasts one step, so about half the slots hold a final observation and cannot be sampled."""
    slots = frame_stack + n_step + 2 + extra_slots
    replay = ReplayBuffer(num_streams * slots, num_streams, (1,), torch.float32,
                          frame_stack=frame_stack, n_step=n_step, seed=seed)  # fmt: skip
    rng = np.random.default_rng(seed)
    shape = (num_streams, frame_stack, 1) if frame_stack > 1 else (num_streams, 1)
    replay.start(np.zeros(shape, np.float32))
    for _ in range(steps):
        obs = rng.random(shape).astype(np.float32)
        end = rng.random(num_streams) < p_end
        replay.add(rng.integers(0, 4, num_streams), np.zeros(num_streams), end,
                   np.zeros(num_streams, bool), obs, end, obs)  # fmt: skip
    return replay


def sampleable_count(replay) -> int:
    streams = torch.arange(replay.num_streams).repeat_interleave(replay.slots)
    slots = torch.arange(replay.slots).repeat(replay.num_streams)
    return int(replay.sampleable(streams, slots).sum())


@settings(max_examples=100, deadline=None)
@given(
    num_streams=st.sampled_from([1, 3, 16, 64]),
    extra_slots=st.integers(0, 6),
    frame_stack=st.sampled_from([1, 4]),
    n_step=st.integers(1, 3),
    steps=st.integers(0, 40),
    p_end=st.sampled_from([0.0, 0.5, 1.0]),
    sync_free=st.booleans(),
    seed=st.integers(0, 2**16),
)
# one-step episodes in 64 rings of 9 slots: the candidates often hold no sampleable slot
@example(64, 0, 4, 3, 30, 1.0, False, 0).via("audit")
@example(64, 0, 4, 3, 30, 1.0, True, 0).via("audit")
# 64 streams after 2 adds: 128 stored transitions (the candidate path) but none sampleable yet
@example(64, 0, 4, 3, 2, 0.0, False, 0).via("audit")
@example(64, 0, 4, 3, 2, 0.0, True, 0).via("audit")
def test_every_sampled_slot_is_sampleable_in_tiny_replays(
    num_streams, extra_slots, frame_stack, n_step, steps, p_end, sync_free, seed
):
    replay = tiny_replay(num_streams, extra_slots, frame_stack, n_step, steps, p_end, seed)
    replay.sync_free = sync_free  # the CUDA draw, run here on the CPU
    if sampleable_count(replay) == 0:
        with pytest.raises(RuntimeError, match="too few complete transitions"):
            replay.sample(1)  # after 1,000 candidate sets (slow: once)
        return
    for batch_size in (1, 4, 32):  # B = 1 and 4 take the candidate path from 72 and 96 stored
        for _ in range(20 if batch_size == 1 else 5):
            b = replay.sample(batch_size)
            assert b.stream.shape == b.slot.shape == (batch_size,)
            assert bool(replay.sampleable(b.stream, b.slot).all())


@pytest.mark.parametrize("sync_free", [False, True])
def test_candidate_shortfall_falls_back_to_an_exact_draw(sync_free, monkeypatch):
    # 64 one-step-episode streams of 9 slots, n_step 3: 1 slot in 9 is sampleable, so 18
    # candidates (B = 1) often hold none, and 80 (B = 32) fewer than 32.
    replay = tiny_replay(64, 0, 4, 3, 30, 1.0, seed=0)
    replay.sync_free = sync_free
    assert len(replay) >= 8 * 32 + 64 and replay.surely_sampleable()
    valid = sampleable_count(replay)
    assert valid == 64  # one per stream
    fallbacks = []
    for name in ("_draw_exactly", "_draw_from_ring"):
        method = getattr(replay, name)
        monkeypatch.setattr(replay, name, lambda b, m=method, n=name: fallbacks.append(n) or m(b))
    stream, slot = [], []
    for batch_size in [1] * 300 + [32] * 10:
        b = replay.sample(batch_size)
        stream.append(b.stream)
        slot.append(b.slot)
    stream, slot = torch.cat(stream), torch.cat(slot)
    assert bool(replay.sampleable(stream, slot).all())  # the old draw: 39 invalid of 620
    assert len(fallbacks) >= 30  # about 12% of the B = 1 draws and every B = 32 draw
    assert len(set(zip(stream.tolist(), slot.tolist()))) == valid  # every one gets drawn


def test_ring_draw_is_uniform_over_the_sampleable_slots():
    replay = tiny_replay(8, 4, 4, 2, 40, 0.5, seed=6)
    streams = torch.arange(8).repeat_interleave(replay.slots)
    slots = torch.arange(replay.slots).repeat(8)
    valid = replay.sampleable(streams, slots)
    assert int(valid.sum()) == 40  # of 8 x 12 slots, with this seed
    stream, slot = replay._draw_from_ring(200 * 40)
    assert bool(replay.sampleable(stream, slot).all())
    counts = torch.bincount(stream * replay.slots + slot, minlength=valid.numel())[valid]
    chi2 = float(((counts - 200.0) ** 2 / 200.0).sum())
    # chi-square, 39 degrees of freedom, significance 0.001: 72.055 (NIST/SEMATECH e-Handbook of
    # Statistical Methods, table 1.3.6.7.4)
    assert chi2 < 72.055


def test_the_benchmarks_full_replay_is_sampled_as_a_training_replay_is(monkeypatch):
    """scripts.bench_all times the sampling of a long run's replay, not the start-up path, whose
    host checks (one device synchronisation per batch on CUDA) a training run leaves after a few
    steps."""
    from scripts.bench_all import full_replay

    replay = full_replay(2_000, torch.device("cpu"))
    assert replay.surely_sampleable() and len(replay) == 2_000

    def start_up_path(batch_size):
        raise AssertionError("the benchmark's replay took the start-up path")

    monkeypatch.setattr(replay, "_draw_exactly", start_up_path)
    batch = replay.sample(32)
    assert batch.obs.shape == (32, 4, 84, 84)
    assert bool(replay.sampleable(batch.stream, batch.slot).all())
