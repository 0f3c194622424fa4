"""Checks of a DQN run's settings before anything is built: ``validate`` raises one clear
``ValueError`` naming the first setting the run cannot use (the field tables are
in ``agents.run.checks``, what the machine must have in ``agents.run.machine``)."""

from __future__ import annotations

from agents.dqn.config import TrainConfig
from agents.dqn.presets import PRESETS
from agents.run import checks
from agents.run.machine import check_device, check_device_name, check_memory, env_spec
from agents.run.tracking import require_tensorboard
from envs.vector import check_env_id


def validate(config: TrainConfig, machine: bool = True) -> None:
    """Raise one clear ValueError for the first setting a run cannot use: every field's type, its
    finiteness and range (``checks.TRAIN_RANGES``; a field without an entry is still checked
    for its type, NaN, infinity and int64), then the settings against one another, the names
    (preset, env, devices) and the output path. With ``machine`` (the default), also what this
    machine must have, before anything is built: the devices, an env the package can train
    (discrete actions, vector or 84x84-stack observations) and the memory of the replay and the
    networks."""
    checks.check_fields(config, checks.TRAIN_RANGES)
    if config.batch_size > config.buffer_size:
        raise ValueError(
            f"--batch-size: {config.batch_size} is larger than --buffer-size {config.buffer_size}; "
            "use a batch no larger than the replay"
        )
    slots_needed = 4 + config.n_step + 2  # a frame stack, the n-step window, two reset slots
    if -(-config.buffer_size // config.num_envs) < slots_needed:
        raise ValueError(
            f"--buffer-size: {config.buffer_size} is too small for --num-envs {config.num_envs}; "
            f"use at least {slots_needed * config.num_envs} ({slots_needed} per env)"
        )
    if config.num_actors > 0:
        streams = config.num_actors * config.num_envs
        least = 2 * config.actor_chunk_steps + config.n_step + 4 + 5  # above an actor's ring
        if -(-config.buffer_size // streams) < least:
            raise ValueError(
                f"--buffer-size: {config.buffer_size} is too small for {config.num_actors} actors "
                f"x {config.num_envs} envs with --actor-chunk-steps {config.actor_chunk_steps}; "
                f"use at least {least * streams} ({least} slots per stream)"
            )
        from agents.distributed.pool import require_ray

        require_ray()  # one line saying how to install it
    elif config.address is not None:
        raise ValueError(
            f"--address: {config.address!r} names a Ray cluster for Ape-X actors, but "
            "--num-actors is 0; give --num-actors N or drop --address"
        )
    if config.learning_starts >= config.total_steps:
        raise ValueError(
            f"--learning-starts: {config.learning_starts} is not below --total-steps "
            f"{config.total_steps}; training would never update"
        )
    if not config.v_min < config.v_max:
        raise ValueError(
            f"--v-min/--v-max: [{config.v_min}, {config.v_max}] is not accepted; use v-min < v-max"
        )
    if config.augment_pad < 0 or config.augment_intensity < 0:
        name = "pad" if config.augment_pad < 0 else "intensity"
        value = getattr(config, f"augment_{name}")
        raise ValueError(f"--augment-{name}: {value} is not accepted; use a number >= 0")
    if not config.hidden or min(config.hidden) < 1:
        raise ValueError(
            f"--hidden: {list(config.hidden)} is not accepted; use one or more widths >= 1"
        )
    top = max(config.total_steps, checks.EVAL_SEED_OFFSET) + config.num_envs
    checks.check_atari_seed(config.env, config.seed, top + checks.MAX_EVAL_ENVS, "a run")
    checks.check_output_path("--output-dir", config.output_dir)
    if config.preset not in PRESETS:
        raise ValueError(
            f"--preset: unknown preset {config.preset!r}; accepted: {', '.join(PRESETS)}"
        )
    check_env_id(config.env)
    for name in ("device", "replay_device"):
        check_device_name(checks.flag_name(name), getattr(config, name))
    if machine:
        for name in ("device", "replay_device"):
            check_device(checks.flag_name(name), getattr(config, name))
        check_memory(config, env_spec(config.env))
        if config.tensorboard:
            require_tensorboard()
