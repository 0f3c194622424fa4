"""``build_trainer``: the one place a training run's parts are made and put together.

From a config (and, to continue a run, its newest checkpoint) it claims the run directory, builds
the vector env, the agent and its learner, the replay, the actor and the tracker, restores their
state when resuming, and hands them to ``agents.dqn.loop.Trainer``, which only runs them. Tests and
benchmarks that need other parts build a ``Trainer`` from them directly.

The process-wide settings of a run (global seeds, torch threads, denormals flushed to zero, TF32)
are made here, in ``configure_torch``, and nowhere else in the package's library code.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from agents.dqn.actor import Actor, EpsilonSchedule
from agents.dqn.agent import DQNAgent
from agents.dqn.config import TrainConfig, epsilon_decay_length, schedule_warnings
from agents.dqn.learner import Learner
from agents.dqn.loop import RunFiles, Trainer, discard_new_run
from agents.dqn.replay.sizing import (
    make_replay,
    replay_device,
    saved_replay_dir,
    saved_replay_slots,
)
from agents.dqn.validation import validate
from agents.evaluation.recording import recording_problem
from agents.run.checkpoint import (
    CheckpointError,
    check_compatible,
    config_to_dict,
    latest_checkpoint,
    load_checkpoint,
)
from agents.run.directory import (
    RunLock,
    check_resume,
    claim_output_dir,
    prepare_new_run,
    remove_if_unused,
)
from agents.run.file_checks import check_checkpoint
from agents.run.files import check_output_dir, new_run_id, resolve_device, write_json
from agents.run.interrupts import SignalGuard, pause_point
from agents.run.tracking import Tracker, truncate_metrics, warn
from envs.atari import is_atari_game
from envs.vector import make_vector_env

__all__ = ["build_trainer", "configure_torch", "train"]


def configure_torch(config: TrainConfig, device: torch.device, image_obs: bool) -> None:
    """The process-wide settings of a run: Python's and torch's global generators seeded,
    torch's CPU threads (``torch_threads``; small MLPs run on one), denormal floats flushed to zero
    on the CPU, and TF32 on CUDA.

    Denormals: Adam's first moment of a weight whose gradient stays 0 (a unit whose ReLU never
    fires on the batches) shrinks by beta1 at each update into floats below 1.2e-38, which x86
    CPUs handle in microcode, each operation about a hundred times slower; after 40k updates of
    ``drq`` on Boxing 16% of the moments were such floats and Adam took 37% of the process's time
    (13% on Breakout, 3% of them denormal). Flushed, they are 0: all such moments together move a
    weight by less than 1e-37 (``tests/test_denormals.py``), nothing a weight of any other size
    can hold. Set before any worker thread starts; threads inherit it."""
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_flush_denormal(True)
    if config.torch_threads > 0 or not image_obs:
        torch.set_num_threads(config.torch_threads or 1)
    if device.type == "cuda" and config.tf32 != "off":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def build_trainer(
    config: TrainConfig,
    tracker: Tracker | None = None,
    resume: bool = False,
    overwrite: bool = False,
    signals: SignalGuard | None = None,
) -> Trainer:
    """The run ``config`` describes, ready to ``run()``.

    ``resume``: continue the run in ``config.output_dir`` from its newest checkpoint;
    ``overwrite``: delete the run that directory holds first (refused without it); ``tracker``:
    a tracker to log to instead of the one the config asks for; ``signals``: the script's guard,
    already installed during the start-up (``run()`` installs it if not). A start-up that fails
    or is stopped leaves a new run's directory as it found it and releases its lock."""
    signals = signals or SignalGuard()
    validate(config)
    if resume and overwrite:
        raise ValueError(
            "--overwrite: cannot be combined with --resume (one continues the run in the "
            "directory, the other deletes it); give one of them"
        )
    device = resolve_device(config.device)
    config, created = (config, False) if resume else claim_output_dir(config)
    output_dir = Path(config.output_dir)
    made_here = created or not output_dir.exists()
    check_output_dir(output_dir)
    files = RunFiles(output_dir, resumed=resume, made_here=made_here)
    files.lock = RunLock.acquire(output_dir)  # until the run ends
    if created:  # a name the user did not give: say it before anything else
        print(f"run directory: {output_dir}", flush=True)
    begun: dict[str, Any] = {}
    try:
        return _build(config, device, files, tracker, overwrite, signals, begun)
    except BaseException:
        if begun.get("new_run"):  # a new run that never started
            discard_new_run(output_dir, begun.get("tracker"))
        if begun.get("owns_ray"):  # the private Ray instance of Ape-X actors never used
            import ray

            ray.shutdown()
        files.release()
        if made_here:
            remove_if_unused(output_dir)
        raise


def _build(
    config: TrainConfig,
    device: torch.device,
    files: RunFiles,
    tracker: Tracker | None,
    overwrite: bool,
    signals: SignalGuard,
    begun: dict[str, Any],
) -> Trainer:
    output_dir = files.output_dir
    if files.resumed:
        resumed = load_resume_state(config, output_dir, device)
    else:
        resumed = None
        prepare_new_run(output_dir, overwrite)
        begun["new_run"] = True  # what is written from here on is this run's
    apex = config.num_actors > 0
    if apex:  # Ape-X: the envs step in the actors; the learner reads their spaces from a probe
        from agents.distributed.pool import EnvSpec, connect

        begun["owns_ray"] = connect(config)
        envs = EnvSpec.probe(config)
    else:
        envs = make_vector_env(config.env, config.num_envs, config.protocol, "train", config.seed)
    obs_shape = tuple(envs.single_observation_space.shape)
    num_actions = int(envs.single_action_space.n)
    configure_torch(config, device, image_obs=len(obs_shape) == 3)
    agent = DQNAgent.build(config, obs_shape, num_actions, device, config.seed)
    pause_point("startup")  # a test hook: waits for a signal when a test asks
    print(f"device: {device} (networks), {replay_device(config, device)} (replay)", flush=True)
    saved = saved_replay_dir(resumed) if resumed is not None else None
    keep = saved_replay_slots(saved) if saved is not None else None
    replay = make_replay(config, envs, device, keep_slots=keep, fill_cap=not apex)
    if resumed is not None:
        check_compatible(resumed, config.env, obs_shape, num_actions)
    (output_dir / "checkpoints").mkdir(exist_ok=True)
    write_json(output_dir / "config.json", config_to_dict(config))
    wall, logged_until = 0.0, -1
    if resumed is not None:
        wall, logged_until = truncate_metrics(
            output_dir / "metrics.csv", resumed["global_step"], resumed.get("metrics_rows")
        )
    files.run_id = resumed.get("run_id") if resumed is not None else new_run_id()
    tracker = tracker or Tracker(
        output_dir, config_to_dict(config), track=config.track, mode=config.wandb_mode,
        project=config.wandb_project, entity=config.wandb_entity, group=config.wandb_group,
        tags=config.wandb_tags, name=config.exp_name or output_dir.name, run_id=files.run_id,
        init_timeout_seconds=config.wandb_init_timeout, wall_offset_seconds=wall,
        wandb_has_steps_until=logged_until,
    )  # fmt: skip
    begun["tracker"] = tracker
    # Resolved against total_steps now; a resumed run keeps the length it started with.
    schedule = EpsilonSchedule.from_config(config, epsilon_decay_length(config))
    learner = Learner(agent, replay, config, envs.num_envs)
    if apex:
        from agents.distributed.apex import ApexTrainer
        from agents.distributed.pool import ActorPool

        pool = ActorPool(config, envs, owns_ray=begun.get("owns_ray", False))
        print(pool.describe(), flush=True)
        trainer: Trainer = ApexTrainer(config, pool, learner, tracker, files, signals=signals,
                                       device=device)  # fmt: skip
    else:
        actor = Actor(envs, agent.act, schedule, config.seed)
        overlap = config.async_envs == "on" or (
            config.async_envs == "auto" and is_atari_game(config.env)
        )
        trainer = Trainer(config, actor, learner, tracker, files, signals=signals, device=device,
                          overlap=overlap)  # fmt: skip
    if resumed is not None:
        trainer.load_state_dict(resumed)
    for line in schedule_warnings(config, schedule.decay_steps):
        warn(line)
    # Said now, not after the run: a video that cannot be made is skipped at the end.
    trainer.video_problem = recording_problem(config.env) if config.record_video else None
    if trainer.video_problem is not None:
        warn(f"--record-video: {config.env!r} cannot be recorded: {trainer.video_problem}; the "
             "run goes on without a video")  # fmt: skip
    return trainer


def load_resume_state(config: TrainConfig, output_dir: Path, device: torch.device) -> dict:
    """The newest checkpoint of the run in ``output_dir``, checked field by field and against
    ``config`` (the same run, with steps left)."""
    if latest_checkpoint(output_dir / "checkpoints") is None:
        raise CheckpointError(
            f"--resume: no checkpoint (step_*.pt) in {output_dir / 'checkpoints'}; "
            "nothing to continue: start the run again with --overwrite"
        )
    state = load_checkpoint(output_dir / "checkpoints", map_location=device)
    try:
        check_checkpoint(state, state["path"])  # field by field: types, sizes, finite weights
    except ValueError as error:
        raise CheckpointError(str(error)) from None
    check_resume(config, state, output_dir)  # the same run, with steps left
    return state


def train(
    config: TrainConfig,
    tracker: Tracker | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train a DQN agent as ``config`` says (continuing the run in ``config.output_dir`` when
    ``resume``, replacing the run it holds when ``overwrite``); returns the summary also written
    to summary.json."""
    signals = SignalGuard()
    with signals:
        return build_trainer(config, tracker, resume, overwrite, signals).run()
