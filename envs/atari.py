"""Atari environments under a named evaluation protocol: game names, the wrapper chain, vector envs.

Protocols:
- `nature` (Mnih et al. 2015, "Human-level control through deep reinforcement learning"): frame
  skip 4 with a max over the last two frames, 84x84 grayscale, stack 4, 1..30 no-op frames at the
  start, FIRE on reset where the game has it, a lost life ends the bootstrap in training, rewards
  clipped to their sign in training, no sticky actions, minimal action set, 108,000-frame cap.
- `machado` (Machado et al. 2018, "Revisiting the Arcade Learning Environment"): sticky actions
  with probability 0.25, no no-ops, no life-loss signal, no FIRE help; the rest as above.
- `atari100k` (Kaiser et al. 2019's benchmark as run by Dopamine's `labs/atari_100k`, the code
  behind the published DER re-runs, DrQ(epsilon), SPR and BBF scores): no sticky actions
  (`sticky_actions = False`), up to 30 no-op starts (`max_noops=30`), a lost life ends the
  bootstrap in training (`terminal_on_life_loss = True`) while the game goes on and the whole
  game's raw score is reported, episodes capped at 27,000 agent steps = 108,000 frames
  (`max_steps_per_episode = 27000`), no FIRE on reset (Dopamine's `AtariPreprocessing` presses
  none). Its evaluation (`agents.evaluation.evaluate`): epsilon 0.001, 100 episodes after training.
  Two differences from that code, kept so that every game of one table runs one protocol: its
  runner starts a game with 0..29 no-op *agent steps* (`randint(0, max_noops)` steps of 4 frames,
  `atari_100k_runner._initialize_episode`), here 1..30 no-op frames as under `nature`; and it
  zeroes the agent's frame stack at every lost life (`reset_one` on a life-loss terminal, in
  training and evaluation, its replay starting a new stack there), where here the stack carries
  on across a lost life, as the game does.

`mode="train"` adds the training signals (life-loss terminal under `nature`, reward sign);
`mode="eval"` reports the raw game. Episode statistics are always the raw game score and length
in agent steps, reported when the game is over or truncated, never per life.

Two implementations, kept in agreement by tests: `make_atari_env` (gymnasium's `AtariPreprocessing`
and `FrameStackObservation` around the ALE, for evaluation and video) and `make_atari_vector_env`
(ale_py's C++ `AtariVectorEnv`, for training). With no-op starts off they produce the same pixels.
Both draw the number of no-op frames of a start uniformly from 1..noop_max (0 when noop_max is 0):
gymnasium does it itself; ale_py 0.12.1 alone draws 0..noop_max-1 (0..noop_max-2, with 0 twice as
likely, in games with FIRE), so `NoopStartVectorEnv` redraws the starts outside 1..noop_max (see
its docstring); tests pin both ranges over hundreds of resets. Known, bounded differences: the
single env presses FIRE before its no-ops, the vector env after them, and the vector env counts
the frame cap over agent steps only (the single env counts the no-op and FIRE frames too), so its
episodes may run up to noop_max + 4 frames longer.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import sys
from collections.abc import Sequence
from typing import Any

import ale_py
import gymnasium as gym
import numpy as np
from ale_py import roms
from ale_py.vector_env import AtariVectorEnv
from gymnasium.wrappers import (
    AtariPreprocessing,
    FrameStackObservation,
    RecordEpisodeStatistics,
    TransformReward,
)

from envs.scores import compact_game_name
from envs.wrappers import FireOnReset, LifeLossTerminal, SameStepVectorEnv, sign_reward

gym.register_envs(ale_py)

FRAME_SKIP = 4
SCREEN_SIZE = 84
MODES = ("train", "eval")


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How the emulator is configured and which training signals are added."""

    name: str
    repeat_action_probability: float
    """Sticky actions: probability the emulator repeats the previous action on a frame."""
    noop_max: int
    """Largest number of no-op frames at an episode start (0: none)."""
    life_loss_terminal: bool
    """In training, a lost life sets terminated=True (the game goes on)."""
    fire_on_reset: bool
    """Press FIRE after each game reset in games that have the action."""


PROTOCOLS = {
    "nature": Protocol("nature", 0.0, 30, life_loss_terminal=True, fire_on_reset=True),
    "machado": Protocol("machado", 0.25, 0, life_loss_terminal=False, fire_on_reset=False),
    "atari100k": Protocol("atari100k", 0.0, 30, life_loss_terminal=True, fire_on_reset=False),
}


def get_protocol(name: str) -> Protocol:
    """The protocol called `name`; ValueError naming the accepted ones otherwise."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; accepted: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def check_mode(mode: str) -> str:
    """`mode` if it is 'train' or 'eval'; ValueError otherwise."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; accepted: {', '.join(MODES)}")
    return mode


class UnknownGameError(ValueError):
    """An Atari game name that matches none of the ROMs shipped with ale-py."""


@functools.cache
def _rom_by_key() -> dict[str, str]:
    """Normalised name -> ROM id, for the ROMs registered as single-player `ALE/<Name>-v5`."""
    table = {}
    for rom in roms.get_all_rom_ids():
        if f"ALE/{_pascal(rom)}-v5" in gym.registry:
            table[compact_game_name(rom)] = rom
    return table


def _pascal(rom: str) -> str:
    """'space_invaders' -> 'SpaceInvaders', as ale_py names its gymnasium ids."""
    return rom.title().replace("_", "")


def list_games() -> list[str]:
    """The canonical ids of every installed game, sorted: ['ALE/Adventure-v5', ...]."""
    return sorted(f"ALE/{_pascal(rom)}-v5" for rom in _rom_by_key().values())


LIST_GAMES_FLAG = "--list-games"


def print_games_if_requested(argv: Sequence[str] | None = None) -> bool:
    """For CLIs, before parsing: with `--list-games` in `argv` (default sys.argv[1:]), print
    `list_games()` one per line and return True (the script then exits 0); else return False."""
    argv = sys.argv[1:] if argv is None else argv
    if LIST_GAMES_FLAG not in argv:
        return False
    print("\n".join(list_games()))
    return True


def rom_name(name: str) -> str:
    """The ROM id ('pong', 'space_invaders') for any common spelling of a game.

    Accepts 'Pong', 'pong', 'ALE/Pong-v5', 'PongNoFrameskip-v4', 'space_invaders',
    'SpaceInvaders'; raises UnknownGameError naming the closest installed games otherwise.
    """
    table = _rom_by_key()
    key = compact_game_name(name)
    if key in table:
        return table[key]
    close = difflib.get_close_matches(key, table, n=3, cutoff=0.6)
    hint = ", ".join(f"ALE/{_pascal(table[k])}-v5" for k in close) or "none"
    raise UnknownGameError(
        f"unknown Atari game {name!r}; closest installed games: {hint} "
        f"(list_games() lists all {len(table)})"
    )


def canonical_game_id(name: str) -> str:
    """The gymnasium id for any common spelling of a game: 'pong' -> 'ALE/Pong-v5'."""
    return f"ALE/{_pascal(rom_name(name))}-v5"


def is_atari_game(name: str) -> bool:
    """Whether `name` is a spelling of an installed Atari game."""
    try:
        rom_name(name)
    except UnknownGameError:
        return False
    return True


def wrap_atari(
    raw_env: gym.Env,
    protocol: str = "nature",
    mode: str = "train",
    noop_max: int | None = None,
    frame_stack: int = 4,
) -> gym.Env:
    """The wrapper chain, innermost first, around a frameskip-1 emulator env (ALE or fake).

    Observations are (frame_stack, 84, 84) uint8 stacks, zero-padded at an episode start.
    """
    spec = get_protocol(protocol)
    check_mode(mode)
    noops = spec.noop_max if noop_max is None else noop_max
    if noops < 0:
        raise ValueError(f"noop_max must be >= 0, got {noops}")
    if frame_stack < 1:
        raise ValueError(f"frame_stack must be >= 1, got {frame_stack}")
    env = raw_env
    if spec.fire_on_reset and "FIRE" in raw_env.unwrapped.get_action_meanings():
        env = FireOnReset(env)
    env = AtariPreprocessing(
        env, noop_max=noops, frame_skip=FRAME_SKIP, screen_size=SCREEN_SIZE,
        terminal_on_life_loss=False, grayscale_obs=True,
    )  # fmt: skip
    env = RecordEpisodeStatistics(env)  # raw score, agent steps, at game over or truncation
    env = FrameStackObservation(env, frame_stack, padding_type="zero")
    if mode == "train" and spec.life_loss_terminal:
        env = LifeLossTerminal(env)
    if mode == "train":
        env = TransformReward(env, sign_reward)
    return env


def _check_cap(max_episode_frames: int) -> int:
    if max_episode_frames < 1:
        raise ValueError(f"max_episode_frames must be >= 1, got {max_episode_frames}")
    return max_episode_frames


def make_atari_env(
    game: str,
    protocol: str = "nature",
    mode: str = "train",
    seed: int | None = None,
    render_mode: str | None = None,
    noop_max: int | None = None,
    max_episode_frames: int = 108_000,
    frame_stack: int = 4,
) -> gym.Env:
    """One Atari game under `protocol` in `mode`, as a gymnasium env (see the module docstring).

    With a seed, the env is reset once with it here, so later `reset()` calls are reproducible.
    `info["episode"] = {"r": raw score, "l": agent steps, "t": seconds}` on the final step.
    """
    spec = get_protocol(protocol)
    raw = gym.make(
        canonical_game_id(game),
        frameskip=1,
        repeat_action_probability=spec.repeat_action_probability,
        full_action_space=False,
        max_num_frames_per_episode=_check_cap(max_episode_frames),
        render_mode=render_mode,
    )
    env = wrap_atari(raw, protocol, mode, noop_max=noop_max, frame_stack=frame_stack)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


class NoopStartVectorEnv:
    """ale_py's `AtariVectorEnv` with the no-op frames of every start uniform in 1..noop_max.

    Measured on ale_py 0.12.1 (episode_frame_number after 400 resets per setting): built with
    `noop_max=M` it draws D uniformly from 0..M-1 and plays D no-op frames, or max(D - 1, 0)
    before its FIRE frame in games with FIRE: 0..29 (or 0..28) for M = 30, where gymnasium's
    `AtariPreprocessing` plays 1..30. No value of M gives 1..30, so `env` is built with
    M = noop_max + 2, whose draw covers 1..noop_max with equal probabilities (under this draw and
    under the "D + 1 - FIRE" one of other ale_py sources alike), and every env whose start
    played a number outside 1..noop_max (episode_frame_number minus the FIRE frame) is reset
    again right away, from its own RNG, until one falls inside: rejection sampling, so the starts
    are exactly uniform in 1..noop_max. About 1 start in 16 is redrawn (2 in 32 values), each at
    the cost of one extra ALE reset; reproducible from the seeds as before. With noop_max = 0, `env`
    is built with 0 and plays none (checked the same way).
    """

    _MAX_REDRAWS = 100  # a draw that keeps missing (1 - 30/32)^100 ~ 1e-120: ale_py changed

    def __init__(self, env: AtariVectorEnv, *, noop_max: int, fire_frame: bool):
        self.env = env
        self.noop_max = noop_max
        self.fire_frame = int(fire_frame)
        self.num_envs = env.num_envs
        self.metadata = env.metadata
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space

    def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None):
        """`AtariVectorEnv.reset`, with the starts outside 1..noop_max drawn again."""
        obs, info = self.env.reset(seed=seed, options=options)
        mask = (options or {}).get("reset_mask")
        started = np.ones(self.num_envs, dtype=bool) if mask is None else np.asarray(mask)
        return self._redraw(obs, info, started)

    def send(self, actions: np.ndarray) -> None:
        self.env.send(actions)

    def recv(self):
        """`AtariVectorEnv.recv`; envs that autoreset on this step get the start redrawn."""
        obs, reward, terminated, truncated, info = self.env.recv()
        obs, info = self._redraw(obs, info, np.asarray(terminated) | np.asarray(truncated))
        return obs, reward, terminated, truncated, info

    def step(self, actions: np.ndarray):
        self.send(actions)
        return self.recv()

    def close(self) -> None:
        self.env.close()

    def noops_played(self, info: dict[str, Any]) -> np.ndarray:
        """No-op frames of the starts reported in `info` (right after a reset only)."""
        return np.asarray(info["episode_frame_number"]) - self.fire_frame

    def _redraw(self, obs: np.ndarray, info: dict[str, Any], started: np.ndarray):
        low = min(1, self.noop_max)  # 1..noop_max, or 0..0
        for _ in range(self._MAX_REDRAWS):
            noops = self.noops_played(info)
            redo = started & ((noops < low) | (noops > self.noop_max))
            if not redo.any():
                return obs, info
            new_obs, new_info = self.env.reset(options={"reset_mask": redo})
            obs = np.where(redo.reshape(-1, *[1] * (obs.ndim - 1)), new_obs, obs)
            info = dict(info)
            for key in ("lives", "frame_number", "episode_frame_number"):
                if key in new_info:
                    info[key] = np.where(redo, new_info[key], info[key])
            started = redo
        raise RuntimeError(
            f"ale_py {ale_py.__version__}: no-op starts keep falling outside "
            f"{low}..{self.noop_max} after {self._MAX_REDRAWS} resets; its no-op draw changed, "
            "see NoopStartVectorEnv"
        )


def make_atari_vector_env(
    game: str,
    num_envs: int,
    protocol: str = "nature",
    mode: str = "train",
    seed: int | None = 0,
    noop_max: int | None = None,
    max_episode_frames: int = 108_000,
    frame_stack: int = 4,
    num_threads: int = 0,
) -> SameStepVectorEnv:
    """`num_envs` copies of a game on ale_py's threaded C++ vector env, same protocol as above.

    Every default of `AtariVectorEnv` that differs from the protocol is set here explicitly.
    Returns the batch interface documented in envs/vector.py; env i is seeded with `seed + i`.
    """
    spec = get_protocol(protocol)
    check_mode(mode)
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    noops = spec.noop_max if noop_max is None else noop_max
    if noops < 0:
        raise ValueError(f"noop_max must be >= 0, got {noops}")
    if frame_stack < 1:
        raise ValueError(f"frame_stack must be >= 1, got {frame_stack}")
    env = AtariVectorEnv(
        rom_name(game),
        num_envs,
        num_threads=num_threads,
        max_num_frames_per_episode=_check_cap(max_episode_frames),
        repeat_action_probability=spec.repeat_action_probability,
        full_action_space=False,
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        img_height=SCREEN_SIZE,
        img_width=SCREEN_SIZE,
        grayscale=True,
        stack_num=frame_stack,
        frameskip=FRAME_SKIP,
        maxpool=True,
        noop_max=noops + 2 if noops else 0,  # a superset of 1..noops, see NoopStartVectorEnv
        episodic_life=False,  # it would reset the game on a life loss
        life_loss_info=False,  # life loss is derived from `lives` by SameStepVectorEnv
        reward_clipping=False,  # clipped in SameStepVectorEnv, which also needs the raw score
        use_fire_reset=spec.fire_on_reset,  # only acts in games that have FIRE
    )
    fire = spec.fire_on_reset and ale_py.Action.FIRE in env.ale.get_action_set()
    return SameStepVectorEnv(
        NoopStartVectorEnv(env, noop_max=noops, fire_frame=fire),
        seed=seed,
        clip_rewards=mode == "train",
        life_loss_terminal=mode == "train" and spec.life_loss_terminal,
        stack_padding="zero",  # ale_py zero-fills the stack at an episode start
        frame_stack=frame_stack,
    )
