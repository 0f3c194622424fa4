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
  layer and a noisy output layer of atoms (``agents.dqn.agent.build_q_network``).
- ``der``: data-efficient Rainbow, van Hasselt et al. 2019, "When to use parametric models in
  reinforcement learning?", Appendix table of Rainbow vs data-efficient Rainbow, value by value
  (DER column; corroborated by Dopamine ``labs/atari_100k/configs/DER.gin``, which marks the values
  it takes "from DER", and by Kaixhin/Rainbow's DER command line): 100k agent steps (400k frames);
  an update every agent step (Rainbow: every 4); multi-step n = 20 (Rainbow 3; Dopamine's DER.gin
  uses 10 "as done by SPR", which is Agarwal et al. 2021's re-run, not the published column);
  learning starts after 1,600 steps (Rainbow 80k frames); target network every 2,000 updates =
  2,000 agent steps here; Adam lr 1e-4 (Rainbow 6.25e-5), Adam eps 1.5e-4 (unchanged); noisy
  sigma0 0.1 (Rainbow 0.5); replay "unbounded" (every transition of the run: 100k); unchanged from
  Rainbow: batch 32, discount 0.99, 51 atoms on [-10, 10], priority exponent 0.5, importance
  sampling 0.4 -> 1 over the run, double, dueling, distributional, noisy, prioritized, rewards
  clipped to their sign in training. Evaluation: the ``atari100k`` protocol of the published
  Atari-100k tables (epsilon 0.001 = DER.gin ``epsilon_eval``, 100 episodes, 27,000-step cap),
  once after training. Network: Rainbow's (each stream its own noisy 512-unit layer, Hessel et
  al. 2018); van Hasselt et al.'s table shrinks it (Kaixhin/Rainbow runs DER with
  ``--architecture data-efficient --hidden-size 256``: two 5x5 stride-5 convolutions and 256
  hidden units), and Dopamine's DER.gin runs its FullRainbowNetwork (``shared_hidden`` with
  ``conv_padding="same"`` and ``weight_init="xavier"``).
- ``drq``: DrQ(epsilon) for Atari 100k (Kostrikov et al. 2020, "Image augmentation is all you
  need"; hyperparameters tuned by Agarwal et al. 2021, "Deep RL at the edge of the statistical
  precipice", Appendix, whose 100-run scores are the published DrQ(epsilon) column), value by
  value from the code of those runs, Dopamine ``labs/atari_100k/configs/DrQ_eps.gin`` and
  ``atari_100k_rainbow_agent.py``: discount 0.99 (``gamma``); 10-step returns
  (``update_horizon = 10``); learning starts after 1,600 agent steps (``min_replay_history``);
  one update of batch 32 per agent step (``update_period = 1``, ``num_updates_per_train_step =
  1``, ``batch_size = 32``); target network synced after every update (``target_update_period =
  1``); epsilon 1 for the 1,600 warm-up steps, then linearly to 0.01 over 5,000 steps
  (``linearly_decaying_epsilon`` with ``epsilon_train = 0.01``, ``epsilon_decay_period = 5000``:
  ``epsilon_decay_start``); evaluation epsilon 0.001 (``epsilon_eval``); Adam lr 1e-4, eps 1.5e-4
  ("from DER", ``create_optimizer``), no gradient clipping (optax.adam alone); Huber loss
  (``mse_loss=False``: ``losses.huber_loss``, delta 1); double DQN and dueling, no noisy nets, no
  distributional head, uniform replay (``replay_scheme = 'uniform'``); replay holding the whole
  run (1M "as a proxy for unbounded memory"); augmentation of observation and next observation,
  each with its own draw (``data_augmentation = True``): pad 4 with edge pixels, random 84x84 crop
  (``agents.dqn.augment``), then intensity 1 + 0.05 clip(N(0, 1), -2, 2); network: Dopamine's
  FullRainbowNetwork without noise (``dopamine/jax/networks.py``, since June 2021): the Nature
  convolutions with flax's default 'SAME' padding (``conv_padding``: 84 -> 21 -> 11 -> 11, 7,744
  features), one shared 512-unit layer, dueling value and advantage output layers
  (``shared_hidden``), Glorot-uniform weights and zero biases (``kernel_init=xavier_uniform()``,
  flax's zero bias: ``weight_init``); protocol ``atari100k`` (no sticky actions,
  life loss terminal in training, 27,000-step episodes) with 100 evaluation episodes after 100k
  agent steps (``Runner.num_iterations = 10`` x ``training_steps = 10_000``;
  ``num_eval_episodes = 100``). Not matched: the two runner details written down in
  ``envs.atari``. Until 2026-12-03 drq ran the paper's 'VALID' convolutions (3,136 features) with
  PyTorch's initial weights (``--conv-padding valid --weight-init torch`` repeat it).
- ``apex``: Ape-X DQN, Horgan et al. 2018, "Distributed Prioritized Experience Replay", Section
  4.1 and Appendix C (Atari): actor i of N explores with epsilon 0.4^(1 + 7 i / (N - 1))
  (``actor_epsilon`` 0.4, ``actor_epsilon_alpha`` 7); actors send their data in blocks of 50
  transitions (``actor_chunk_steps``, their local buffer B = 50) with initial priorities computed
  by their own network copy; 3-step returns, double Q-learning and the dueling network;
  proportional prioritized replay with priority exponent 0.6 and importance-sampling exponent 0.4,
  not annealed (``priority_beta_start`` = ``priority_beta_end`` = 0.4); replay soft-limited to 2M
  transitions; learning begins at 50,000 transitions; batch 512; centred RMSProp (epsilon inside
  the square root, TensorFlow's, as ``CenteredRMSprop``) with learning rate 0.00025 / 4, decay
  0.95, epsilon 1.5e-7 (their loss is a batch mean, as this package's), no momentum; gradient norms
  clipped to 40; target network copied every 2,500 batches. Not hyperparameters of the paper, and
  chosen here: the replay ratio, one update per 640 agent steps (0.8 samples per transition, what
  the paper's reported throughput implies: about 19 batches of 512 per second against about 50,000
  frames = 12,500 agent steps per second from 360 actors), so the target is copied every 2,500 x
  640 = 1.6M agent steps; the actors take new weights every 50 updates (the paper's actors copy
  every 400 frames, about 2.8 s, about 50 of its updates); 4 actors (the paper ran 360: give
  ``--num-actors``); 50M agent steps; Nature evaluation (epsilon 0.05).
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

from agents.dqn.config import TrainConfig


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
        protocol="atari100k",
        total_steps=100_000,
        buffer_size=100_000,
        learning_starts=1_600,
        train_frequency=1,
        learning_rate=1e-4,
        optimizer_eps=1.5e-4,
        n_step=20,
        target_update_steps=2_000,
        noisy_sigma0=0.1,
        eval_epsilon=0.001,
        eval_every_steps=0,
        final_eval_episodes=100,
        eval_max_steps=27_000,
        checkpoint_every_steps=20_000,
    )


def drq() -> TrainConfig:
    return TrainConfig(
        preset="drq",
        protocol="atari100k",
        total_steps=100_000,
        buffer_size=100_000,
        batch_size=32,
        learning_starts=1_600,
        train_frequency=1,
        gradient_steps=1,
        gamma=0.99,
        n_step=10,
        loss="huber",
        optimizer="adam",
        learning_rate=1e-4,
        optimizer_eps=1.5e-4,
        max_grad_norm=0.0,
        target_update_steps=1,
        double_dqn=True,
        dueling=True,
        shared_hidden=True,
        conv_padding="same",
        weight_init="xavier",
        augment=True,
        augment_pad=4,
        augment_intensity=0.05,
        epsilon_start=1.0,
        epsilon_end=0.01,
        epsilon_decay_steps=5_000,
        epsilon_decay_start=1_600,
        eval_epsilon=0.001,
        eval_every_steps=0,
        final_eval_episodes=100,
        eval_max_steps=27_000,
        checkpoint_every_steps=20_000,
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


def apex() -> TrainConfig:
    return nature().replace(
        preset="apex",
        num_actors=4,
        actor_chunk_steps=50,
        actor_epsilon=0.4,
        actor_epsilon_alpha=7.0,
        weights_every_updates=50,
        n_step=3,
        double_dqn=True,
        dueling=True,
        prioritized=True,
        priority_alpha=0.6,
        priority_beta_start=0.4,
        priority_beta_end=0.4,
        buffer_size=2_000_000,
        learning_starts=50_000,
        batch_size=512,
        train_frequency=640,
        optimizer="rmsprop",
        learning_rate=0.00025 / 4,
        rmsprop_alpha=0.95,
        optimizer_eps=1.5e-7,
        max_grad_norm=40.0,
        target_update_steps=2_500 * 640,
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
    "drq": drq,
    "apex": apex,
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
