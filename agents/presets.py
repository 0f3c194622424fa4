"""Named presets: plain functions returning a ``TrainConfig``.

Preset sources:
- ``nature``: Mnih et al. 2015, Extended Data Table 1, in the units of the implementation that
  reproduced its scores (DeepMind's released code and DQN Zoo's ``dqn/run_atari.py``, whose flags
  count emulator frames, 4 per agent step): DeepMind's centred RMSProp (``CenteredRMSprop``: lr
  2.5e-4, squared-gradient momentum 0.95, min squared gradient 0.01 inside the square root for
  summed gradients = 0.01 / 32^2 for this package's batch-mean loss, as DQN Zoo's
  ``optimizer_epsilon``), batch 32, replay 1M, learning from 50k agent steps (the table's 50,000
  replay start; DQN Zoo: 5% of 1M transitions x 4 = 200k frames), target network every 10,000
  agent steps = 2,500 updates (the table says 10,000 "parameter updates", but the released code
  and DQN Zoo, 40,000 frames, count agent steps), epsilon 1 -> 0.1 over 1M agent steps (DQN Zoo:
  2% of 200M frames), an update every 4 agent steps, Huber loss (error clipped to [-1, 1]),
  discount 0.99, evaluation epsilon 0.05, 50M agent steps (= 200M frames, DQN Zoo's 200
  iterations of 1M frames).
- ``cleanrl``: CleanRL ``dqn_atari.py`` (Huang et al. 2022): Adam 1e-4, replay 1M, learning starts
  80k, target every 1,000 steps, train every 4, epsilon 1 -> 0.01 over the first 10% of the run
  (``exploration_fraction`` 0.1 of ``total_timesteps``: 1M of the default 10M steps), MSE loss.
- ``cartpole``: a small MLP with the Double DQN target, tuned here to solve CartPole-v1 (eval mean
  >= 475 over 10 episodes) well within 100k steps: 5 of 5 seeds by 55k.
- ``rainbow``: Hessel et al. 2018, Table 1 (Adam 6.25e-5, eps 1.5e-4, n = 3, alpha 0.5, beta 0.4
  -> 1, target every 32k frames = 8k agent steps, learning starts 80k frames = 20k steps, noisy
  sigma0 0.5, 51 atoms on [-10, 10]) with all six components on, on the paper's network: the
  Nature convolutions, then a value stream and an advantage stream, each a noisy 512-unit hidden
  layer and a noisy output layer of atoms (``agents.dqn.build_q_network``).
- ``der``: data-efficient Rainbow, van Hasselt et al. 2019 (100k agent steps, an update every step,
  n = 20, target every 2,000 updates, learning starts 1,600, lr 1e-4, noisy sigma0 0.1).
- ``cartpole-rainbow``: ``cartpole`` with all six components (support [0, 200] for its returns).
- ``fast``: the fastest wall clock to a good score on one GPU: ``cleanrl``'s replay ratio (one
  update of 32 per 4 agent steps) spread over 16 envs (4 updates per vector step), every fast-path
  switch on, and the learning speed-ups that cost nothing per step: Double DQN, 3-step returns
  (Hessel et al. 2018 found multi-step the most useful single addition early in training),
  learning from 20k steps, epsilon 1 -> 0.01 over 250k steps, target every 2,000 steps, Huber
  loss, Adam 1e-4 (eps 1.5e-4), 3M steps, evaluated every 250k steps. Untested against its
  Pong goal (+19 within 9 minutes) until it runs on a GPU.
- ``smoke``: tiny sizes for tests and demos; learns nothing worth reporting.
"""

from __future__ import annotations

from collections.abc import Callable

from agents.config import TrainConfig


def cleanrl() -> TrainConfig:
    # dqn_atari.py: linear_schedule(start_e, end_e, exploration_fraction * total_timesteps, step)
    # with exploration_fraction = 0.10, so a shorter run also ends its decay at 10% of its length.
    return TrainConfig(preset="cleanrl", loss="mse", epsilon_decay_fraction=0.1)


def nature() -> TrainConfig:
    return TrainConfig(
        preset="nature",
        total_steps=50_000_000,
        learning_starts=50_000,
        loss="huber",
        optimizer="rmsprop",
        learning_rate=2.5e-4,
        optimizer_eps=0.01 / 32**2,
        rmsprop_alpha=0.95,
        target_update_steps=10_000,
        epsilon_end=0.1,
        epsilon_decay_steps=1_000_000,
    )


def cartpole() -> TrainConfig:
    return TrainConfig(
        preset="cartpole",
        env="CartPole-v1",
        total_steps=100_000,
        buffer_size=50_000,
        batch_size=128,
        learning_starts=1_000,
        train_frequency=1,
        gamma=0.99,
        loss="huber",
        double_dqn=True,
        learning_rate=5e-4,
        max_grad_norm=10.0,
        target_update_steps=500,
        hidden=(128, 128),
        epsilon_end=0.02,
        epsilon_decay_steps=10_000,
        eval_epsilon=0.0,
        eval_every_steps=5_000,
        eval_episodes=10,
        stop_at_return=475.0,
        eval_max_steps=500,
        checkpoint_every_steps=25_000,
        log_every_steps=500,
        record_video=False,
    )


def smoke() -> TrainConfig:
    return TrainConfig(
        preset="smoke",
        total_steps=2_000,
        buffer_size=2_000,
        batch_size=8,
        learning_starts=200,
        target_update_steps=200,
        epsilon_decay_steps=1_000,
        eval_every_steps=0,
        eval_episodes=1,
        final_eval_episodes=1,
        eval_max_steps=2_000,
        checkpoint_every_steps=1_000,
        log_every_steps=200,
    )


def rainbow() -> TrainConfig:
    return TrainConfig(
        preset="rainbow",
        total_steps=50_000_000,
        learning_starts=20_000,
        optimizer="adam",
        learning_rate=6.25e-5,
        optimizer_eps=1.5e-4,
        target_update_steps=8_000,
        n_step=3,
        double_dqn=True,
        dueling=True,
        distributional=True,
        noisy=True,
        prioritized=True,
        priority_alpha=0.5,
        priority_beta_start=0.4,
    )


def der() -> TrainConfig:
    return rainbow().replace(
        preset="der",
        total_steps=100_000,
        buffer_size=100_000,
        learning_starts=1_600,
        train_frequency=1,
        learning_rate=1e-4,
        n_step=20,
        target_update_steps=2_000,
        noisy_sigma0=0.1,
        eval_every_steps=25_000,
        checkpoint_every_steps=50_000,
    )


def fast() -> TrainConfig:
    return TrainConfig(
        preset="fast",
        total_steps=3_000_000,
        num_envs=16,
        learning_starts=20_000,
        epsilon_end=0.01,
        epsilon_decay_steps=250_000,
        target_update_steps=2_000,
        n_step=3,
        double_dqn=True,
        loss="huber",
        learning_rate=1e-4,
        optimizer_eps=1.5e-4,
        eval_every_steps=250_000,
        eval_episodes=8,
        final_eval_episodes=8,
        checkpoint_every_steps=1_000_000,
        compile="on",
        async_envs="on",
    )


def cartpole_rainbow() -> TrainConfig:
    return cartpole().replace(
        preset="cartpole-rainbow",
        n_step=3,
        dueling=True,
        distributional=True,
        v_min=0.0,
        v_max=200.0,
        noisy=True,
        prioritized=True,
    )


PRESETS: dict[str, Callable[[], TrainConfig]] = {
    "nature": nature,
    "cleanrl": cleanrl,
    "rainbow": rainbow,
    "der": der,
    "cartpole": cartpole,
    "cartpole-rainbow": cartpole_rainbow,
    "fast": fast,
    "smoke": smoke,
}


def preset(name: str) -> TrainConfig:
    """The named preset's config."""
    if name not in PRESETS:
        raise ValueError(f"--preset: unknown preset {name!r}; accepted: {', '.join(PRESETS)}")
    return PRESETS[name]()
