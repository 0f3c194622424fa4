"""DrQ(epsilon) and DER for Atari 100k: random-shift augmentation, the presets value by value,
Dopamine's network and epsilon schedule, and the atari100k protocol."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from agents.dqn.actor import EpsilonSchedule
from agents.dqn.agent import DQNAgent, build_q_network
from agents.dqn.augment import augment_batch, intensity_jitter, random_shift, shift_images
from agents.dqn.build import build_trainer
from agents.dqn.config import TrainConfig, schedule_warnings
from agents.dqn.presets import preset
from agents.dqn.replay.uniform import Batch
from agents.dqn.validation import validate
from agents.evaluation.evaluate import (
    PROTOCOL_EVAL_EPISODES,
    PROTOCOL_EVAL_EPSILON,
    PROTOCOL_MAX_EPISODE_STEPS,
    evaluate,
)
from envs.atari import PROTOCOLS
from envs.vector import make_vector_env
from networks import NoisyLinear

FLAT = 64 * 7 * 7  # Nature convolutions on 84x84
CONV_PARAMS = (4 * 32 * 64 + 32) + (32 * 64 * 16 + 64) + (64 * 64 * 9 + 64)  # 77,984


def linear_params(n_in, n_out, noisy=False):
    return (2 if noisy else 1) * (n_in * n_out + n_out)


# -- random shifts ---------------------------------------------------------------------------
def test_shift_of_a_hand_made_image_repeats_the_edges():
    x = torch.arange(16, dtype=torch.uint8).reshape(1, 1, 4, 4)
    # pad 1, crop at (row 0, column 2) of the 6x6 replicate-padded image: rows i - 1, cols j + 1
    out = shift_images(x, torch.tensor([[0, 2]]), pad=1)
    expected = [[1, 2, 3, 3], [1, 2, 3, 3], [5, 6, 7, 7], [9, 10, 11, 11]]
    assert out[0, 0].tolist() == expected
    # the centre crop is the identity; the opposite corner moves the content up and left
    assert torch.equal(shift_images(x, torch.tensor([[1, 1]]), pad=1), x)
    corner = shift_images(x, torch.tensor([[2, 2]]), pad=1)[0, 0].tolist()
    assert corner == [[5, 6, 7, 7], [9, 10, 11, 11], [13, 14, 15, 15], [13, 14, 15, 15]]


def test_shift_equals_replicate_pad_then_crop_for_every_offset():
    """The gather is torch's ReplicationPad2d followed by the crop (Kostrikov et al.'s code),
    for each of the 9 x 9 offsets of pad 4, on every frame of a stack alike."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (81, 4, 12, 10), dtype=torch.uint8, generator=g)
    offsets = torch.tensor([(oy, ox) for oy in range(9) for ox in range(9)])
    out = shift_images(x, offsets, pad=4)
    padded = F.pad(x.float(), (4, 4, 4, 4), mode="replicate")
    for b, (oy, ox) in enumerate(offsets.tolist()):
        assert torch.equal(out[b].float(), padded[b, :, oy : oy + 12, ox : ox + 10])


def _recover_offsets(original: torch.Tensor, shifted: torch.Tensor, pad: int) -> list:
    """Which crop offset produced each shifted image (the candidates are distinct for a
    random image)."""
    found = []
    for b in range(shifted.shape[0]):
        hits = [
            (oy, ox)
            for oy in range(2 * pad + 1)
            for ox in range(2 * pad + 1)
            if torch.equal(
                shift_images(original[b : b + 1], torch.tensor([[oy, ox]]), pad), shifted[b : b + 1]
            )  # fmt: skip
        ]
        assert len(hits) == 1
        found.append(hits[0])
    return found


def test_random_shift_is_per_sample_uniform_and_keeps_shape_dtype_device():
    g = torch.Generator().manual_seed(1)
    base = torch.randint(0, 256, (1, 4, 84, 84), dtype=torch.uint8, generator=g)
    x = base.expand(400, -1, -1, -1).contiguous()  # the same image 400 times
    out = random_shift(x, pad=4, generator=torch.Generator().manual_seed(2))
    assert out.shape == x.shape and out.dtype == torch.uint8 and out.device == x.device
    offsets = _recover_offsets(x, out, 4)
    rows = {oy for oy, _ in offsets}
    cols = {ox for _, ox in offsets}
    assert rows == cols == set(range(9))  # -4..+4 pixels, both ends included
    assert len(set(offsets)) > 60  # independent per sample: most of the 81 crops occur
    floats = random_shift(x.float() / 255, pad=4, generator=torch.Generator().manual_seed(2))
    assert floats.dtype == torch.float32
    assert torch.equal(floats, out.float() / 255)  # same draw, same crops, any dtype


def test_random_shift_has_no_python_loop_over_the_batch():
    """One traced graph for any batch: torch.compile(fullgraph=True) accepts it."""
    compiled = torch.compile(shift_images, fullgraph=True, dynamic=False)
    x = torch.randint(0, 256, (5, 2, 9, 9), dtype=torch.uint8)
    offsets = torch.tensor([[0, 0], [8, 8], [4, 4], [0, 8], [3, 5]])
    assert torch.equal(compiled(x, offsets, 4), shift_images(x, offsets, 4))


def test_intensity_jitter_matches_dopamine_formula():
    x = torch.full((3, 1, 2, 2), 200, dtype=torch.uint8)
    g = torch.Generator().manual_seed(5)
    n = torch.randn(3, 1, 1, 1, generator=torch.Generator().manual_seed(5))
    out = intensity_jitter(x, 0.05, g)
    expected = (200 / 255) * (1 + 0.05 * n.clamp(-2, 2))
    assert out.dtype == torch.float32
    assert torch.allclose(out, expected.expand(3, 1, 2, 2))


def test_intensity_jitter_of_a_float_batch_leaves_the_batch_alone():
    x = torch.full((2, 1, 2, 2), 0.5)
    out = intensity_jitter(x, 0.05, torch.Generator().manual_seed(1))
    assert torch.equal(x, torch.full((2, 1, 2, 2), 0.5)) and not torch.equal(out, x)


def test_augmentation_gives_the_numbers_of_the_benchmarks_previous_one_bit_for_bit():
    from agents.dqn.augment import augment_batch
    from scripts.bench_drq import previous_augment

    x = torch.randint(0, 256, (16, 4, 84, 84), dtype=torch.uint8,
                      generator=torch.Generator().manual_seed(3))  # fmt: skip
    now = augment_batch(x, 4, 0.05, torch.Generator().manual_seed(9))
    before = previous_augment(x, 4, 0.05, torch.Generator().manual_seed(9))
    assert torch.equal(now, before)


def _batch(obs: torch.Tensor) -> Batch:
    b, kw = obs.shape[0], {"device": obs.device}
    return Batch(obs, torch.zeros(b, dtype=torch.long, **kw), torch.zeros(b, **kw), obs.clone(),
                 torch.full((b,), 0.9, **kw), torch.zeros(b, dtype=torch.long, **kw),
                 torch.zeros(b, dtype=torch.long, **kw))  # fmt: skip


def test_agent_augments_obs_and_next_obs_independently_before_the_loss():
    config = preset("drq").replace(augment_intensity=0.0, compile="off")
    agent = DQNAgent.build(config, (4, 84, 84), 4, torch.device("cpu"), seed=0)
    g = torch.Generator().manual_seed(3)
    obs = torch.randint(0, 256, (32, 4, 84, 84), dtype=torch.uint8, generator=g)
    batch = _batch(obs)
    seen = []
    eager = agent.loss_terms
    agent.loss_terms = lambda b: seen.append(b) or eager(b)
    state = agent.generator.get_state()
    agent.update(batch)
    twin = torch.Generator().set_state(state)
    expected_obs = augment_batch(obs, 4, 0.0, twin)
    expected_next = augment_batch(obs, 4, 0.0, twin)
    (used,) = seen
    assert torch.equal(used.obs, expected_obs) and torch.equal(used.next_obs, expected_next)
    assert used.obs.dtype == torch.uint8 and used.obs.shape == obs.shape
    same = [torch.equal(a, b) for a, b in zip(used.obs, used.next_obs)]
    assert sum(same) < 8  # equal inputs, independent shifts: mostly different crops
    assert torch.equal(batch.obs, obs)  # the replay's batch is not modified in place


def test_augment_refuses_vector_observations():
    config = preset("cartpole").replace(augment=True)
    with pytest.raises(ValueError, match="--augment"):
        DQNAgent.build(config, (4,), 2, torch.device("cpu"), seed=0)


# -- presets -----------------------------------------------------------------------------------
def test_drq_preset_value_by_value():
    """Dopamine labs/atari_100k/configs/DrQ_eps.gin and atari_100k_rainbow_agent.py."""
    c = preset("drq")
    validate(c)
    assert c.protocol == "atari100k" and c.total_steps == 100_000
    assert (c.gamma, c.n_step, c.learning_starts) == (0.99, 10, 1_600)
    assert (c.train_frequency, c.gradient_steps, c.batch_size) == (1, 1, 32)
    assert (c.target_update_steps, c.tau) == (1, 1.0)
    assert (c.epsilon_start, c.epsilon_end, c.epsilon_decay_steps) == (1.0, 0.01, 5_000)
    assert (c.epsilon_decay_start, c.epsilon_decay_fraction) == (1_600, None)
    assert (c.eval_epsilon, c.final_eval_episodes, c.eval_max_steps) == (0.001, 100, 27_000)
    assert c.eval_every_steps == 0  # evaluated once, after training
    assert (c.optimizer, c.learning_rate, c.optimizer_eps) == ("adam", 1e-4, 1.5e-4)
    assert (c.loss, c.max_grad_norm) == ("huber", 0.0)
    assert c.double_dqn and c.dueling and c.shared_hidden
    assert not (c.noisy or c.distributional or c.prioritized)
    assert (c.augment, c.augment_pad, c.augment_intensity) == (True, 4, 0.05)
    assert c.buffer_size >= c.total_steps  # the whole run is replayed
    assert schedule_warnings(c) == []


def test_der_preset_value_by_value():
    """van Hasselt et al. 2019, data-efficient Rainbow column; the rest Rainbow's."""
    c = preset("der")
    validate(c)
    assert c.protocol == "atari100k" and c.total_steps == 100_000
    assert (c.n_step, c.learning_starts, c.train_frequency) == (20, 1_600, 1)
    assert (c.target_update_steps, c.learning_rate, c.optimizer_eps) == (2_000, 1e-4, 1.5e-4)
    assert (c.noisy_sigma0, c.batch_size, c.gamma) == (0.1, 32, 0.99)
    assert (c.num_atoms, c.v_min, c.v_max) == (51, -10.0, 10.0)
    assert (c.priority_alpha, c.priority_beta_start) == (0.5, 0.4)
    assert c.double_dqn and c.dueling and c.distributional and c.noisy and c.prioritized
    assert not c.shared_hidden and not c.augment  # the Rainbow paper's network, no augmentation
    assert c.buffer_size >= c.total_steps
    assert (c.eval_epsilon, c.final_eval_episodes, c.eval_every_steps) == (0.001, 100, 0)


def test_drq_network_is_dopamines_full_rainbow_network_without_noise():
    """Nature convolutions with 'SAME' padding (11 x 11 x 64 = 7,744 features), one shared
    512-unit layer, then V (1) and A (6) output layers."""
    net = build_q_network((4, 84, 84), 6, config=preset("drq"))
    same = 11 * 11 * 64
    expected = CONV_PARAMS + linear_params(same, 512) + linear_params(512, 1)
    expected += linear_params(512, 6)
    assert expected == 77_984 + 3_965_440 + 513 + 3_078 == 4_047_015
    assert sum(p.numel() for p in net.parameters()) == expected
    shapes = sorted((m.in_features, m.out_features) for m in net.modules()
                    if isinstance(m, nn.Linear))  # fmt: skip
    assert shapes == [(512, 1), (512, 6), (same, 512)]
    assert not any(isinstance(m, NoisyLinear) for m in net.modules())


def test_shared_hidden_noisy_network_is_dopamines_der_network():
    """FullRainbowNetwork with noise and 51 atoms: the shared 512-unit layer is noisy too."""
    config = preset("der").replace(shared_hidden=True)
    net = build_q_network((4, 84, 84), 6, config=config)
    noisy = [m for m in net.modules() if isinstance(m, NoisyLinear)]
    assert sorted((m.in_features, m.out_features) for m in noisy) == [
        (512, 51), (512, 306), (FLAT, 512)
    ]  # fmt: skip
    expected = CONV_PARAMS + linear_params(FLAT, 512, True) + linear_params(512, 51, True)
    expected += linear_params(512, 306, True)
    assert expected == 77_984 + 3_212_288 + 52_326 + 313_956 == 3_656_554
    assert sum(p.numel() for p in net.parameters()) == expected
    assert all(m.sigma0 == 0.1 for m in noisy)
    net.eval()  # noise off: deterministic outputs
    x = torch.zeros(2, 4, 84, 84, dtype=torch.uint8)
    assert torch.equal(net(x), net(x))


def test_shared_hidden_leaves_the_default_split_network_alone():
    base = preset("cleanrl").replace(dueling=True)
    split = build_q_network((4, 84, 84), 6, config=base)
    assert sum(p.numel() for p in split.parameters()) == (
        CONV_PARAMS + 2 * linear_params(FLAT, 512) + linear_params(512, 1) + linear_params(512, 6)
    )


# -- Dopamine's epsilon schedule ---------------------------------------------------------------
def dopamine_linearly_decaying_epsilon(decay_period, step, warmup_steps, epsilon):
    """dopamine/jax/agents/dqn/dqn_agent.py, in numpy."""
    steps_left = decay_period + warmup_steps - step
    bonus = (1.0 - epsilon) * steps_left / decay_period
    return epsilon + float(np.clip(bonus, 0.0, 1.0 - epsilon))


def test_drq_epsilon_waits_for_the_warm_up_then_decays_as_dopamine():
    c = preset("drq")
    schedule = EpsilonSchedule.from_config(c, c.epsilon_decay_steps)
    for step in (0, 800, 1_600, 1_601, 2_850, 4_100, 6_599, 6_600, 50_000, 100_000):
        ours = schedule(step)
        assert math.isclose(ours, dopamine_linearly_decaying_epsilon(5_000, step, 1_600, 0.01))
    assert math.isclose(schedule(4_100), 0.505)  # half way down from 1 to 0.01


def test_epsilon_decay_start_enters_the_short_run_warning():
    c = TrainConfig(total_steps=5_000, learning_starts=100, epsilon_decay_steps=4_000,
                    epsilon_decay_start=2_000, target_update_steps=100)  # fmt: skip
    (line,) = schedule_warnings(c)
    assert "after --epsilon-decay-start 2000" in line
    assert "0.258" in line  # 1 + (3000 / 4000) * (0.01 - 1)
    with pytest.raises(ValueError, match="--epsilon-decay-start"):
        validate(c.replace(epsilon_decay_start=-1))


# -- the atari100k protocol --------------------------------------------------------------------
def test_atari100k_protocol_settings():
    p = PROTOCOLS["atari100k"]
    assert (p.repeat_action_probability, p.noop_max) == (0.0, 30)
    assert p.life_loss_terminal and not p.fire_on_reset  # Dopamine presses no FIRE
    assert PROTOCOL_EVAL_EPSILON["atari100k"] == 0.001
    assert PROTOCOL_EVAL_EPISODES["atari100k"] == 100
    assert PROTOCOL_MAX_EPISODE_STEPS["atari100k"] == 27_000


def test_atari100k_life_loss_ends_the_bootstrap_only_in_training():
    """FakeALE: 3 lives of 40 play frames after FIRE (action 1); a life lasts 10 agent steps."""
    for mode, expect_terminal in (("train", True), ("eval", False)):
        env = make_vector_env("fake", 1, protocol="atari100k", mode=mode, seed=0, noop_max=0)
        env.reset(seed=0)
        terminated_at, done_at = [], None
        for t in range(1, 40):
            _, _, terminated, _, info = env.step(np.array([1]))
            if terminated[0] and not info["episode_done"][0]:
                terminated_at.append(t)
            if info["episode_done"][0]:
                done_at = t
                break
        env.close()
        assert bool(terminated_at) == expect_terminal, mode
        assert done_at is not None  # the whole game ends once, after all 3 lives


def test_atari100k_evaluation_reports_its_settings_and_fewer_episodes():
    def fire(obs, epsilon):
        return np.ones(len(obs), dtype=np.int64)

    result = evaluate(fire, "fake", 3, 0.001, protocol="atari100k", seed=0,
                      max_steps_per_episode=27_001, max_episode_frames=27_000 * 4)  # fmt: skip
    assert (result["episodes"], result["protocol"], result["epsilon"]) == (3, "atari100k", 0.001)
    assert result["max_episode_frames"] == 108_000
    assert len(result["returns"]) == 3


def test_evaluate_cli_offers_the_atari100k_protocol():
    from scripts.evaluate import build_parser

    args = build_parser().parse_args(["run", "--protocol", "atari100k"])
    assert args.protocol == "atari100k" and args.episodes is None  # 100 by the protocol


def test_drq_trains_on_the_fake_env(tmp_path):
    """The whole loop with augmentation, 10-step returns, target every update, Dopamine's
    epsilon and the atari100k protocol: finite losses, the final evaluation at epsilon 0.001."""
    config = preset("drq").replace(
        env="fake", total_steps=300, learning_starts=100, epsilon_decay_start=100,
        epsilon_decay_steps=100, final_eval_episodes=2, eval_max_steps=200, compile="off",
        output_dir=str(tmp_path), progress=False, record_video=False, torch_threads=1,
        checkpoint_every_steps=300, log_every_steps=100,
    )  # fmt: skip
    trainer = build_trainer(config)
    summary = trainer.run()
    assert summary["global_step"] == 300 and summary["updates"] == 200
    assert summary["eval_episodes"] == 2 and summary["eval_epsilon"] == 0.001
    assert summary["protocol"] == "atari100k"
    assert math.isclose(trainer.epsilon(), 0.01)


def test_a_just_synced_target_serves_as_the_double_dqn_chooser():
    """With the target synced after every update (drq), online and target are the same weights
    at the next update: one forward pass on the next observations gives the same loss."""
    config = preset("drq").replace(augment=False, compile="off")
    agent = DQNAgent.build(config, (4, 84, 84), 6, torch.device("cpu"), seed=0)
    g = torch.Generator().manual_seed(4)
    obs = torch.randint(0, 256, (8, 4, 84, 84), dtype=torch.uint8, generator=g)
    batch = _batch(obs)._replace(next_obs=obs.flip(0), action=torch.arange(8) % 6)
    assert not agent.target_is_online  # never assumed before a sync
    agent.update(batch)  # online and target now differ
    assert not agent.target_is_online
    calls = []
    handle = agent.online.register_forward_hook(lambda *a: calls.append(1))
    long_way = agent.loss_terms(batch)
    assert len(calls) == 2  # obs, then next_obs for the chooser
    agent.sync_target()
    assert agent.target_is_online
    calls.clear()
    short = agent.loss_terms(batch)
    assert len(calls) == 1  # obs only: the target's forward chose the action
    agent.target_is_online = False
    calls.clear()
    assert torch.equal(agent.loss_terms(batch)[0], short[0])  # the same loss either way
    assert len(calls) == 2 and not torch.equal(long_way[0], short[0])
    handle.remove()
    agent.target_is_online = True
    agent.update(batch)
    assert not agent.target_is_online  # an optimizer step makes them differ again


@pytest.mark.gpu
def test_drq_update_on_cuda_augments_on_the_device_and_compiles_with_cuda_graphs():
    device = torch.device("cuda")
    config = preset("drq").replace(compile="on", device="cuda")
    agent = DQNAgent.build(config, (4, 84, 84), 6, device, seed=0)
    g = torch.Generator(device=device).manual_seed(0)
    obs = torch.randint(0, 256, (32, 4, 84, 84), dtype=torch.uint8, device=device, generator=g)
    batch = _batch(obs)
    shifted = agent.augment(batch)
    assert shifted.obs.device.type == "cuda" and shifted.obs.shape == obs.shape
    for _ in range(3):
        metrics = agent.update(batch)
        agent.sync_target()
    assert agent.compiled and torch.isfinite(metrics["losses/td_loss"]).item()
