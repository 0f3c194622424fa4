"""Run settings: one frozen dataclass (each field documented) and named presets.

The command line of ``scripts/train.py`` is generated from ``TrainConfig`` (``scripts._cli``): a
flag per field, its help the docstring under the field, its heading in ``--help`` from
``FLAG_GROUPS``, so a flag, its help and its default live here only. Presets are plain functions
returning a config; the CLI starts from the chosen preset, applies a ``--config`` file on top and
the user's flags on top of both.

Units: ``*_steps`` count agent steps summed over all parallel envs (one agent step = one action in
one env = 4 emulator frames under frame skip 4); ``global_step`` is that sum.

Named presets live in ``agents.dqn.presets``; ``agents.dqn.validation.validate`` checks a config
before a run starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one DQN training run."""

    env: str = "Breakout"
    """Game (any spelling: Pong, ALE/Pong-v5, PongNoFrameskip-v4), a gymnasium id such as
    CartPole-v1, or a fake env (fake, fake-pixels)."""
    preset: str = "cleanrl"
    """Named preset the other defaults come from (nature, cleanrl, fast, rainbow, der, drq,
    cartpole, cartpole-rainbow, smoke)."""
    seed: int = 1
    """Seed for envs, network initialisation, exploration and replay sampling."""
    total_steps: int = 10_000_000
    """Agent steps to train for, summed over the parallel envs."""
    num_envs: int = 1
    """Parallel environments; the replay ratio (updates x batch per agent step) is preserved."""
    protocol: Literal["nature", "machado", "atari100k"] = "nature"
    """Atari protocol: nature (Mnih 2015), machado (sticky actions 0.25, Machado 2018) or
    atari100k (Dopamine's labs/atari_100k: as nature without FIRE on reset)."""
    output_dir: str = "runs/{game}__{preset}__s{seed}__{time}"
    """Directory of the run: config.json, metrics.csv, checkpoints/, videos/ and summary.json.
    {game}, {preset}, {seed} and {time} (YYYYmmdd-HHMMSS) are filled in, and -2, -3... appended
    when that directory exists, so each run gets its own. A directory that already holds a run is
    refused: continue it with --resume DIR, or replace it with --overwrite."""
    exp_name: str | None = None
    """Name of the run in Weights & Biases."""
    device: str = "auto"
    """Torch device for the networks: auto (cuda when available), cpu or cuda."""
    replay_device: str = "auto"
    """Device holding the replay storage: auto (same as device), cpu or cuda."""
    torch_threads: int = 0
    """CPU threads for torch: 0 picks 1 for small MLPs (more only adds overhead) and torch's
    default for conv nets."""
    compile: Literal["auto", "on", "off"] = "auto"
    """torch.compile the update (loss and backward as one graph): auto = on for conv nets in runs
    of at least 50,000 updates (enough to repay the compile time), off for MLPs."""
    cuda_graphs: Literal["auto", "on", "off"] = "auto"
    """Replay the compiled update as a CUDA graph (torch.compile mode reduce-overhead): auto = on
    with CUDA and compile."""
    tf32: Literal["auto", "on", "off"] = "auto"
    """TensorFloat-32 matmuls and convolutions on CUDA: auto = on (Ampere and newer)."""
    async_envs: Literal["auto", "on", "off"] = "auto"
    """Run the gradient updates while the emulators step (ale_py's threaded vector env): auto =
    on for Atari, off for Python envs, which cannot step in the background. Updates then sample
    the replay before the step in flight is added to it."""

    buffer_size: int = 1_000_000
    """Replay capacity in transitions; a run shorter than it allocates only what its
    --total-steps can fill (a few slots more per env), and grows it if extended with --resume."""
    batch_size: int = 32
    """Transitions per gradient step."""
    learning_starts: int = 80_000
    """Agent steps of pure exploration before the first update."""
    train_frequency: int = 4
    """Agent steps between updates (per env stream on average)."""
    gradient_steps: int = 1
    """Gradient steps per update."""
    gamma: float = 0.99
    """Discount factor."""
    n_step: int = 1
    """Steps of reward summed before bootstrapping."""
    loss: Literal["huber", "mse"] = "huber"
    """TD loss: huber (the Nature paper's error clipping) or mse."""
    optimizer: Literal["adam", "rmsprop"] = "adam"
    """Optimizer: adam, or rmsprop (DeepMind's centred RMSProp of the Nature DQN: eps inside the
    square root, no momentum)."""
    learning_rate: float = 1e-4
    """Optimizer step size."""
    optimizer_eps: float = 1e-8
    """Optimizer epsilon: Adam's eps, or RMSProp's constant under the square root (the losses are
    batch means, so the Nature DQN's 0.01 for summed gradients is 0.01 / 32^2 here)."""
    rmsprop_alpha: float = 0.95
    """RMSProp smoothing constant for squared gradients."""
    max_grad_norm: float = 0.0
    """Clip the global gradient norm to this value (0 disables)."""
    target_update_steps: int = 1_000
    """Agent steps between target network updates."""
    tau: float = 1.0
    """Target update: 1.0 is a hard copy, smaller values Polyak-average."""
    reset_every_steps: int = 0
    """Agent steps between resets of the last layers (--reset-layers says which): re-initialised
    in the online network, the optimizer state of every layer dropped, the replay kept, the
    target given the new layers at its next sync (Nikishin et al. 2022, "The Primacy Bias in
    Deep Reinforcement Learning"; their Atari-100k runs, on SPR, reset every 20,000 agent steps,
    4 times, none at the run's end: reset_every = 20000, total_resets = 4 in the authors'
    configs/SPR_with_resets.gin; their reset_weights renews the optimizer state for all
    parameters). Resets fall at every multiple below --total-steps; 0 disables."""
    reset_layers: Literal["head", "dense"] = "head"
    """Which layers a reset renews: head (the output layer of each stream: the Q-value layer, the
    dueling value and advantage layers, C51's; the authors' Atari setting: reset_head = True,
    reset_projection left False in configs/SPR_with_resets.gin, where the head is the LinearHead
    of discrete_control/networks.py and the projection the 512-unit layer before it) or dense
    (every layer after the convolutions: also the 512-unit layer, shared or per stream)."""
    double_dqn: bool = False
    """Double DQN target: online argmax, target evaluation (van Hasselt 2016)."""
    dueling: bool = False
    """Dueling head: value and mean-subtracted advantage streams (Wang 2016)."""
    distributional: bool = False
    """C51 distributional head and cross-entropy loss (Bellemare 2017)."""
    num_atoms: int = 51
    """Atoms of the C51 support."""
    v_min: float = -10.0
    """Lowest atom of the C51 support."""
    v_max: float = 10.0
    """Highest atom of the C51 support."""
    noisy: bool = False
    """Factorised Gaussian noisy head layers (Fortunato 2018); turns epsilon off."""
    noisy_sigma0: float = 0.5
    """Initial noise scale sigma0 of the noisy layers."""
    shared_hidden: bool = False
    """Images with --dueling or --noisy: one 512-unit hidden layer after the convolutions shared
    by the value and advantage streams (noisy under --noisy), then the output layers, as
    Dopamine's FullRainbowNetwork (the network of the published Atari-100k DER and DrQ(epsilon)
    runs; with --conv-padding same and --weight-init xavier, exactly it); off: each stream has
    its own 512-unit layer (Wang 2016, Hessel 2018)."""
    conv_padding: Literal["valid", "same"] = "valid"
    """Padding of the Nature convolutions: valid (Mnih 2015: 84x84 -> 7x7x64 = 3,136 features) or
    same (TensorFlow's 'SAME', the default of flax's nn.Conv and so of Dopamine's JAX networks,
    behind the published Atari-100k DER and DrQ(epsilon) runs: 84x84 -> 11x11x64 = 7,744)."""
    weight_init: Literal["torch", "xavier"] = "torch"
    """Initial weights of the convolutional and linear layers (noisy layers keep their own), at
    the start and at each reset: torch (PyTorch's defaults, uniform biases) or xavier
    (Glorot-uniform weights, zero biases: Dopamine's JAX networks, behind the published
    Atari-100k DER and DrQ(epsilon) runs)."""
    prioritized: bool = False
    """Proportional prioritized replay (Schaul 2016)."""
    priority_alpha: float = 0.5
    """Priority exponent alpha."""
    priority_beta_start: float = 0.4
    """Importance-sampling exponent at step 0, annealed linearly to --priority-beta-end over the
    run."""
    priority_beta_end: float = 1.0
    """Importance-sampling exponent at the run's end (Ape-X keeps it at 0.4: set both to 0.4)."""
    hidden: tuple[int, ...] = (120, 84)
    """MLP torso widths for vector observations."""
    augment: bool = False
    """Random-shift augmentation in each update (image observations only): observation and next
    observation each padded by --augment-pad pixels (edge pixels repeated) and cropped back at an
    independent random offset per sample (Kostrikov et al. 2020, DrQ)."""
    augment_pad: int = 4
    """Pixels of padding of the random shift: shifts of -pad..pad in each direction."""
    augment_intensity: float = 0.0
    """With --augment, scale each augmented observation by 1 + s * clip(N(0, 1), -2, 2), s this
    value (Dopamine's DrQ augmentation uses 0.05); 0 turns it off."""

    epsilon_start: float = 1.0
    """Exploration epsilon at step 0."""
    epsilon_end: float = 0.01
    """Exploration epsilon after the decay."""
    epsilon_decay_steps: int = 1_000_000
    """Agent steps of the linear epsilon decay."""
    epsilon_decay_fraction: float | None = None
    """Length of the epsilon decay as a fraction of --total-steps, in (0, 1] (CleanRL's
    exploration_fraction); when set it overrides --epsilon-decay-steps. It is resolved against
    the run's total when the run starts: --resume --total-steps keeps that decay length."""
    epsilon_decay_start: int = 0
    """Agent steps at epsilon_start before the linear decay begins (Dopamine's
    linearly_decaying_epsilon waits for its min_replay_history)."""
    eval_epsilon: float = 0.05
    """Epsilon used when evaluating."""

    eval_every_steps: int = 250_000
    """Agent steps between periodic evaluations (0 disables)."""
    eval_episodes: int = 10
    """Episodes per periodic evaluation."""
    final_eval_episodes: int = 10
    """Episodes of the final evaluation (0 skips it)."""
    stop_at_return: float | None = None
    """Stop training once a periodic evaluation's mean return reaches this value."""
    eval_max_steps: int = 27_000
    """Agent-step cap of one evaluation episode (27,000 = 108,000 frames)."""
    checkpoint_every_steps: int = 500_000
    """Agent steps between checkpoints (a final one is always written)."""
    keep_checkpoints: int = 3
    """How many of the newest checkpoints to keep."""
    save_replay: bool = False
    """Save the replay memory with each checkpoint (chunked .npy files, about 7 KB per Atari
    transition), so --resume continues with it; without it a resumed run refills the replay."""
    log_every_steps: int = 1_000
    """Agent steps between metric logs."""
    record_video: bool = True
    """Record an mp4 of one evaluation episode at the end (Atari and rgb-renderable envs)."""
    progress: bool = True
    """Show a progress bar."""

    tensorboard: bool = False
    """Also write the metrics as TensorBoard event files in OUTPUT_DIR/tensorboard (the same
    scalars as metrics.csv; needs the tensorboard package: pip install -e .[tensorboard])."""
    track: bool = False
    """Track the run in Weights & Biases."""
    wandb_mode: Literal["auto", "online", "offline", "disabled"] = "auto"
    """auto: online when an API key or login is present, offline otherwise."""
    wandb_project: str = "atari-dqn"
    """Weights & Biases project."""
    wandb_entity: str | None = None
    """Weights & Biases entity (user or team)."""
    wandb_group: str | None = None
    """Weights & Biases group."""
    wandb_tags: tuple[str, ...] = ()
    """Weights & Biases tags."""
    wandb_init_timeout: float = 30.0
    """Seconds to wait for wandb to start; past it the run goes on with local metrics only."""

    num_actors: int = 0
    """Ape-X actors (Horgan et al. 2018): Ray actors that each step --num-envs envs with a CPU
    copy of the network and ship their transitions, with initial priorities, to this process's
    learner; 0: the single-process loop. Needs the distributed extra (pip install -e
    .[distributed])."""
    address: str | None = None
    """Ray cluster the actors run on: auto (the cluster of `ray start` on this machine) or
    ray://HOST:10001; none: a private Ray instance on this machine."""
    actor_cpus: float = 1.0
    """CPUs Ray reserves for each actor (fractions share a core)."""
    actor_chunk_steps: int = 50
    """Vector steps an actor takes between two shipments (Ape-X's local buffer of 50)."""
    actor_epsilon: float = 0.4
    """Ape-X exploration: actor i of N acts with epsilon^(1 + alpha i / (N - 1)), epsilon this
    value, alpha --actor-epsilon-alpha (one actor: epsilon)."""
    actor_epsilon_alpha: float = 7.0
    """The exponent's spread alpha of the actors' epsilons."""
    weights_every_updates: int = 50
    """Learner updates between two publications of the network's weights to the actors (each
    actor takes the newest with its next shipment)."""

    def replace(self, **changes) -> TrainConfig:
        """A copy with ``changes``; an ``epsilon_decay_steps`` given without an
        ``epsilon_decay_fraction`` also drops the fraction (of a preset such as cleanrl), so the
        decay length asked for is the one used."""
        if "epsilon_decay_steps" in changes and "epsilon_decay_fraction" not in changes:
            changes["epsilon_decay_fraction"] = None
        return dataclasses.replace(self, **changes)


FLAG_GROUPS: dict[str, tuple[str, ...]] = {
    "run and env": ("env", "preset", "seed", "total_steps", "num_envs", "protocol", "output_dir"),
    "algorithm": (
        "buffer_size", "batch_size", "learning_starts", "train_frequency", "gradient_steps",
        "gamma", "loss", "optimizer", "learning_rate", "optimizer_eps", "rmsprop_alpha",
        "max_grad_norm", "target_update_steps", "tau", "reset_every_steps", "reset_layers",
        "hidden",
        "conv_padding", "weight_init", "epsilon_start", "epsilon_end",
        "epsilon_decay_steps", "epsilon_decay_fraction", "epsilon_decay_start", "augment",
        "augment_pad", "augment_intensity",
    ),
    "Rainbow switches": (
        "double_dqn", "dueling", "n_step", "prioritized", "priority_alpha", "priority_beta_start",
        "distributional", "num_atoms", "v_min", "v_max", "noisy", "noisy_sigma0", "shared_hidden",
        "priority_beta_end",
    ),
    "evaluation and logging": (
        "eval_epsilon", "eval_every_steps", "eval_episodes", "final_eval_episodes",
        "stop_at_return", "eval_max_steps", "record_video", "checkpoint_every_steps",
        "keep_checkpoints", "save_replay", "log_every_steps", "progress", "tensorboard", "track",
        "wandb_mode",
        "wandb_project", "wandb_entity", "wandb_group", "wandb_tags", "exp_name",
        "wandb_init_timeout",
    ),
    "distributed (Ape-X)": (
        "num_actors", "address", "actor_cpus", "actor_chunk_steps", "actor_epsilon",
        "actor_epsilon_alpha", "weights_every_updates",
    ),
    "speed": (
        "device", "replay_device", "torch_threads", "compile", "cuda_graphs", "tf32",
        "async_envs",
    ),
}  # fmt: skip
"""The headings of ``scripts/train.py --help``, in order, and the fields under each: every field
in exactly one; the fast-path switches last."""

UNSET_MEANS: dict[str, str] = {
    "exp_name": "the name of the output directory",
    "epsilon_decay_fraction": "none: --epsilon-decay-steps is the decay length",
    "stop_at_return": "none: train for all of --total-steps",
    "wandb_entity": "wandb's default entity for the login",
    "wandb_group": "none: no group",
    "wandb_tags": "none: no tags",
    "address": "none: a private Ray instance on this machine",
}
"""What a setting that is None or empty means, as ``--help`` shows its default."""


def epsilon_decay_length(config: TrainConfig) -> int:
    """Agent steps of the epsilon decay: ``epsilon_decay_fraction`` of ``total_steps`` when set
    (CleanRL's ``exploration_fraction * total_timesteps``), else ``epsilon_decay_steps``. A run
    resolves it once, when it starts, and keeps it when resumed (``Trainer``)."""
    if config.epsilon_decay_fraction is None:
        return config.epsilon_decay_steps
    return round(config.epsilon_decay_fraction * config.total_steps)


def schedule_warnings(config: TrainConfig, epsilon_decay_steps: int | None = None) -> list[str]:
    """One line for each schedule the run is too short to complete (a valid config, but probably
    not what was meant): an epsilon decay longer than the run, and a target network never updated
    once learning has started. ``epsilon_decay_steps``: the run's resolved decay length (a
    resumed run keeps the one it started with); by default the config's. Schedules that may
    outlast the run harmlessly are not reported: evaluations, checkpoints and logs (a final
    checkpoint and evaluation are always made), and the prioritized-replay beta anneal (it spans
    total_steps). Ape-X actors act at fixed epsilons of their own: no decay to warn about."""
    c, lines = config, []
    decay = epsilon_decay_length(c) if epsilon_decay_steps is None else epsilon_decay_steps
    end = c.epsilon_decay_start + decay
    decays = not c.noisy and c.num_actors == 0  # Ape-X actors each keep their own epsilon
    if decays and c.epsilon_start != c.epsilon_end and end > c.total_steps:
        done = max(c.total_steps - c.epsilon_decay_start, 0) / decay
        last = c.epsilon_start + done * (c.epsilon_end - c.epsilon_start)
        what = (
            f"--epsilon-decay-steps {decay}"
            if decay == c.epsilon_decay_steps and c.epsilon_decay_fraction is None
            else f"the epsilon decay ({decay} steps, resolved when the run started)"
        )
        if c.epsilon_decay_start:
            what += f" after --epsilon-decay-start {c.epsilon_decay_start}"
        lines.append(
            f"{what} is longer than --total-steps {c.total_steps}: epsilon ends the run at "
            f"{last:.3g} instead of {c.epsilon_end:g}"
        )
    target = c.target_update_steps
    if c.total_steps // target == c.learning_starts // target:  # no sync in (starts, total]
        lines.append(
            f"--target-update-steps {target} leaves no target update between --learning-starts "
            f"{c.learning_starts} and --total-steps {c.total_steps}: the target network stays "
            "the initial network"
        )
    return lines


def config_from_dict(data: dict) -> TrainConfig:
    """A config saved as plain types (config.json, checkpoints); unknown keys are ignored."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in fields}
    return TrainConfig(**values)
