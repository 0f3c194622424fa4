"""Recorded play: what an agent saw and did, step by step, in one compressed ``.npz`` file.

The data of behaviour cloning (Pomerleau 1991, ALVINN; Bain and Sammut 1995): a teacher plays,
every observation is stored with the action it chose, and a classifier later learns to map one
to the other. ``TrajectoryRecorder`` collects the steps of a vector env stream by stream and
keeps whole episodes only; ``Trajectories`` holds them; ``trajectory_arrays`` and
``load_trajectories`` convert to and from the file; ``load_trajectories_dataset`` makes a file a
supervised ``Dataset`` (observations labelled by action, split by episode), registered as
``trajectories:PATH`` in ``agents.supervised.datasets``.

File layout (``np.savez_compressed``; read with ``allow_pickle=False``, so no object arrays).
T is the number of steps, E the number of episodes, episodes lie one after another:

- ``observations`` (T, *obs_shape): what the agent was shown before acting, as the env gave it
  (uint8 (T, 4, 84, 84) stacks for Atari);
- ``actions`` (T,) int64: the action sent to the env (after any epsilon-random choice);
- ``rewards`` (T,) float32: the raw reward of that step (evaluation mode: never clipped);
- ``episode`` (T,) int64: episode index 0..E-1 of each step; ``episode_start`` and ``done``
  (T,) bool: first and last step of an episode;
- ``episode_returns`` (E,) float64 (= the sum of the episode's rewards), ``episode_lengths``
  (E,) int64 (sum = T);
- 0-d ``env_id``, ``protocol`` (strings), ``epsilon`` (float64), ``num_actions`` (int64),
  ``format_version`` (int64) and ``action_meanings`` (num_actions,) strings ("0", "1", ... where
  the env names none).

numpy only: writing the file atomically is the caller's job (``agents.evaluation.evaluate``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from agents.supervised.data import Dataset

FORMAT_VERSION = 1
ARRAY_KEYS = ("observations", "actions", "rewards", "episode", "episode_start", "done",
              "episode_returns", "episode_lengths")  # fmt: skip
META_KEYS = ("env_id", "protocol", "epsilon", "num_actions", "action_meanings", "format_version")


@dataclass(frozen=True)
class Trajectories:
    """Whole episodes of play, concatenated (see the module docstring for the arrays)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    episode: np.ndarray
    env_id: str
    protocol: str
    epsilon: float
    action_meanings: tuple[str, ...]

    @property
    def num_steps(self) -> int:
        return len(self.actions)

    @property
    def num_episodes(self) -> int:
        return int(self.episode[-1]) + 1 if len(self.episode) else 0

    @property
    def num_actions(self) -> int:
        return len(self.action_meanings)

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.bincount(self.episode, minlength=self.num_episodes).astype(np.int64)

    @property
    def episode_returns(self) -> np.ndarray:
        sums = np.bincount(self.episode, weights=self.rewards.astype(np.float64))
        return np.pad(sums, (0, self.num_episodes - len(sums)))


class TrajectoryRecorder:
    """Collects the steps of a vector env's parallel streams and keeps the episodes it is told to.

    Per vector step call ``add(obs, actions, rewards)`` with the observations the actions were
    chosen from; when env i's episode ends call ``end_episode(i, keep)``. Kept episodes are
    stored in the order they end; steps of an unfinished or dropped episode are discarded.
    """

    def __init__(self) -> None:
        self._open: list[list[tuple[np.ndarray, int, float]]] = []  # one per stream, on first add
        self._episodes: list[list[tuple[np.ndarray, int, float]]] = []

    @property
    def num_episodes(self) -> int:
        return len(self._episodes)

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """One vector step; observations are copied (vector envs may reuse their buffers)."""
        if not self._open:
            self._open = [[] for _ in range(len(obs))]
        for i, stream in enumerate(self._open):
            stream.append((np.array(obs[i], copy=True), int(actions[i]), float(rewards[i])))

    def end_episode(self, env_index: int, keep: bool = True) -> None:
        """Close env ``env_index``'s episode: store it when ``keep``, else drop it."""
        steps, self._open[env_index] = self._open[env_index], []
        if keep and steps:
            self._episodes.append(steps)

    def finish(
        self, env_id: str, protocol: str, epsilon: float, action_meanings: tuple[str, ...]
    ) -> Trajectories:
        """The kept episodes as ``Trajectories`` labelled with how they were played."""
        if not self._episodes:
            raise ValueError("no episode was recorded; a trajectory file needs at least one")
        steps = [step for episode in self._episodes for step in episode]
        lengths = [len(episode) for episode in self._episodes]
        return Trajectories(
            observations=np.stack([s[0] for s in steps]),
            actions=np.array([s[1] for s in steps], dtype=np.int64),
            rewards=np.array([s[2] for s in steps], dtype=np.float32),
            episode=np.repeat(np.arange(len(lengths), dtype=np.int64), lengths),
            env_id=env_id,
            protocol=protocol,
            epsilon=float(epsilon),
            action_meanings=tuple(action_meanings),
        )


def trajectory_arrays(t: Trajectories) -> dict[str, np.ndarray]:
    """The arrays of the file format (module docstring), ready for ``np.savez_compressed``."""
    first = np.r_[True, t.episode[1:] != t.episode[:-1]]
    return {
        "observations": t.observations,
        "actions": t.actions.astype(np.int64),
        "rewards": t.rewards.astype(np.float32),
        "episode": t.episode.astype(np.int64),
        "episode_start": first,
        "done": np.r_[first[1:], True],
        "episode_returns": t.episode_returns,
        "episode_lengths": t.episode_lengths,
        "env_id": np.array(t.env_id),
        "protocol": np.array(t.protocol),
        "epsilon": np.array(t.epsilon, dtype=np.float64),
        "num_actions": np.array(t.num_actions, dtype=np.int64),
        "action_meanings": np.array(t.action_meanings, dtype=str),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
    }


def write_trajectories(f: IO[bytes], t: Trajectories) -> None:
    """Write ``t`` as a compressed npz into the open binary file ``f``."""
    np.savez_compressed(f, **trajectory_arrays(t))


def _invalid(path: Path, why: str) -> ValueError:
    return ValueError(f"trajectory file {path} is not usable: {why}")


def _check_boundaries(path: Path, data: dict[str, np.ndarray]) -> None:
    """Episode indices, flags, lengths and returns must agree with one another."""
    episode = data["episode"].astype(np.int64)
    if len(episode) == 0:
        raise _invalid(path, "it holds no steps")
    steps_ok = episode[0] == 0 and np.isin(np.diff(episode), (0, 1)).all()
    if not steps_ok or not np.array_equal(np.bincount(episode), data["episode_lengths"]):
        raise _invalid(path, "its episode indices do not run 0, 1, ... in whole episodes")
    first = np.r_[True, episode[1:] != episode[:-1]]
    last = np.r_[first[1:], True]
    if not np.array_equal(data["episode_start"], first) or not np.array_equal(data["done"], last):
        raise _invalid(path, "its episode_start/done flags disagree with its episode indices")
    sums = np.bincount(episode, weights=data["rewards"].astype(np.float64))
    returns = data["episode_returns"]
    if returns.shape != sums.shape or not np.allclose(sums, returns, rtol=0, atol=1e-6):
        raise _invalid(path, "its episode_returns are not the sums of its rewards")


# Each array's dimensions and dtype kinds (numpy's ``dtype.kind``: b bool, i/u integers, f floats,
# U strings); observations are (T, *obs_shape) with a 1-D or (C, H, W) observation.
SCHEMA = {
    "observations": ((2, 4), "uf"), "actions": ((1, 1), "iu"), "rewards": ((1, 1), "f"),
    "episode": ((1, 1), "iu"), "episode_start": ((1, 1), "b"), "done": ((1, 1), "b"),
    "episode_returns": ((1, 1), "f"), "episode_lengths": ((1, 1), "iu"),
    "env_id": ((0, 0), "U"), "protocol": ((0, 0), "U"), "epsilon": ((0, 0), "f"),
    "num_actions": ((0, 0), "iu"), "action_meanings": ((1, 1), "U"),
    "format_version": ((0, 0), "iu"),
}  # fmt: skip
MAX_ACTIONS = 4096
MAX_OBS_ELEMENTS = 10_000_000


def _check_headers(path: Path, found: dict[str, tuple]) -> None:
    """Shapes and dtypes from the npy headers, before any array is decompressed."""
    missing = [key for key in (*ARRAY_KEYS, *META_KEYS) if key not in found]
    if missing:
        raise _invalid(
            path, f"it lacks the arrays {', '.join(missing)} (expected {', '.join(ARRAY_KEYS)} "
            f"and {', '.join(META_KEYS)}, as scripts.evaluate --save-trajectories writes them)"
        )  # fmt: skip
    for key, ((low, high), kinds) in SCHEMA.items():
        shape, dtype = found[key]
        if not low <= len(shape) <= high or dtype.kind not in kinds:
            dims = f"{low}-d" if low == high else f"{low}- to {high}-d"
            names = {"b": "bool", "i": "integer", "u": "unsigned", "f": "float", "U": "string"}
            raise _invalid(
                path, f"its array {key} is {len(shape)}-d {dtype}; expected {dims} "
                f"{' or '.join(names[k] for k in kinds)}"
            )  # fmt: skip
    steps = found["actions"][0][0]
    if steps < 1:
        raise _invalid(path, "it holds no steps")
    if any(found[key][0][0] != steps for key in ARRAY_KEYS[:6]):
        raise _invalid(path, "its per-step arrays differ in length")
    obs = found["observations"][0][1:]
    if len(obs) not in (1, 3) or math.prod(obs) > MAX_OBS_ELEMENTS or min(obs) < 1:
        raise _invalid(
            path, f"its observations are {obs}; expected a vector (n,) or an image (C, H, W) of "
            f"at most {MAX_OBS_ELEMENTS:,} elements"
        )  # fmt: skip
    meanings = found["action_meanings"][0][0]
    if not 1 <= meanings <= MAX_ACTIONS:
        raise _invalid(path, f"it names {meanings} actions; expected 1 to {MAX_ACTIONS}")


def _check_values(path: Path, data: dict[str, np.ndarray]) -> None:
    """Finite rewards, returns, epsilon and float observations; a known format version."""
    if int(data["format_version"]) > FORMAT_VERSION:
        raise _invalid(path, f"format {int(data['format_version'])} is newer than {FORMAT_VERSION}")
    for key in ("rewards", "episode_returns", "epsilon", "observations"):
        if data[key].dtype.kind == "f" and not np.isfinite(data[key]).all():
            bad = int((~np.isfinite(data[key])).sum())
            raise _invalid(path, f"it has {bad} NaN or infinite value(s) in its {key}")
    epsilon = float(data["epsilon"])
    if not 0.0 <= epsilon <= 1.0:
        raise _invalid(path, f"its epsilon {epsilon} is not in [0, 1]")
    if (data["episode_lengths"] < 1).any():
        raise _invalid(path, "its episode_lengths are not all >= 1")


def load_trajectories(path: str | Path) -> Trajectories:
    """Read and check a trajectory file; ValueError naming the file and the problem otherwise.

    The zip directory and each array's npy header are checked first (``file_checks.inspect_npz``:
    declared sizes against the compressed bytes, a zip bomb refused unopened, the memory the
    arrays need against what is available), then the shapes and dtypes of ``SCHEMA``; only then
    are the arrays read (only the known ones), and their values checked."""
    from agents.run.file_checks import inspect_npz

    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"trajectory file {path} does not exist; write one with "
            f"python -m scripts.evaluate CHECKPOINT --save-trajectories {path}"
        )
    found = inspect_npz(path, "trajectory file", tuple(SCHEMA))
    _check_headers(path, found)
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {key: npz[key] for key in SCHEMA}
    except Exception as error:  # noqa: BLE001 - turned into one clear message
        raise _invalid(path, f"it is not a readable npz file ({type(error).__name__})") from None
    _check_values(path, data)
    _check_boundaries(path, data)
    meanings = tuple(str(m) for m in data["action_meanings"])
    actions = data["actions"].astype(np.int64)
    in_range = ((actions >= 0) & (actions < len(meanings))).all()
    if len(meanings) != int(data["num_actions"]) or not in_range:
        raise _invalid(path, f"its actions are not all in 0..{int(data['num_actions']) - 1}")
    return Trajectories(
        observations=data["observations"],
        actions=actions,
        rewards=data["rewards"].astype(np.float32),
        episode=data["episode"].astype(np.int64),
        env_id=str(data["env_id"]),
        protocol=str(data["protocol"]),
        epsilon=float(data["epsilon"]),
        action_meanings=meanings,
    )


def split_episodes(
    num_episodes: int, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Episode indices (train, test), each sorted: a seeded permutation, ``round(test_fraction *
    num_episodes)`` episodes (at least 1, at most all but 1) for testing. Steps of one episode are
    near-copies of one another, so a split by step would test on what was trained on."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction {test_fraction!r} is not accepted; use a number in (0, 1)")
    if num_episodes < 2:
        raise ValueError(
            f"splitting by episode needs at least 2 episodes (one to train on, one to test on), "
            f"got {num_episodes}; record more with scripts.evaluate --episodes"
        )
    order = np.random.default_rng(seed).permutation(num_episodes)
    n_test = min(num_episodes - 1, max(1, round(test_fraction * num_episodes)))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def load_trajectories_dataset(
    path: Path | str, test_fraction: float = 0.2, seed: int = 0
) -> Dataset:
    """A teacher's recorded play: inputs are its observations as it saw them (uint8 (C, H, W)
    stacks for Atari), labels the actions it took, classes the env's action names.

    Split by whole episodes (``split_episodes``, seeded): consecutive steps are
    near-copies, so test steps come from episodes never trained on. Needs at least 2 episodes.
    """
    t = load_trajectories(path)
    if t.num_episodes < 2:
        raise ValueError(
            f"trajectory file {path} holds {t.num_episodes} episode; behaviour cloning splits by "
            "episode and needs at least 2 (one to train on, one to test on); record more with "
            "scripts.evaluate --episodes 2 or more"
        )
    train_ids, test_ids = split_episodes(t.num_episodes, test_fraction, seed)
    train, test = np.isin(t.episode, train_ids), np.isin(t.episode, test_ids)
    recording = {
        "path": str(path), "env_id": t.env_id, "protocol": t.protocol, "epsilon": t.epsilon,
        "episodes": t.num_episodes, "steps": t.num_steps,
        "train_episodes": train_ids.tolist(), "test_episodes": test_ids.tolist(),
        "mean_return": float(t.episode_returns.mean()),
    }  # fmt: skip
    return Dataset(
        "trajectories", t.observations[train], t.actions[train], t.observations[test],
        t.actions[test], class_names=t.action_meanings, recording=recording,
    )  # fmt: skip
