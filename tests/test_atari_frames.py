"""The atari-frames dataset: random-policy Atari observations labelled by game; its classifiers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.supervised import atari_frames, datasets
from agents.supervised import classifier as supervised
from agents.supervised.atari_frames import atari_frame_seed, collect_atari_frames, load_atari_frames
from agents.supervised.classifier import SupervisedConfig, resolve_config, train_classifier
from agents.supervised.datasets import load_dataset
from envs.atari import make_atari_env
from scripts import train_supervised

pytestmark = pytest.mark.atari

SMALL = dict(games=("Pong", "Breakout"), frames_per_game=20, test_frames_per_game=10)


@pytest.fixture(scope="module")
def small() -> datasets.Dataset:
    return load_atari_frames(**SMALL, keep_every_steps=2)


def _rows(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in x}


def test_shapes_dtypes_labels_and_balance(small: datasets.Dataset) -> None:
    assert small.name == "atari-frames"
    assert small.x_train.shape == (40, 4, 84, 84) and small.x_test.shape == (20, 4, 84, 84)
    assert small.x_train.dtype == np.uint8 and small.y_train.dtype == np.int64  # scaled per batch
    assert small.class_names == ("Pong", "Breakout") and small.num_classes == 2
    assert small.is_image and small.input_shape == (4, 84, 84)
    assert np.bincount(small.y_train).tolist() == [20, 20]
    assert np.bincount(small.y_test).tolist() == [10, 10]
    assert small.label_preserving_flips == ()
    assert 100 < small.x_train.max() <= 255  # real screens, not blank or already scaled
    assert sorted(set(small.y_train[:8].tolist())) == [0, 1]  # shuffled, not 20 Pongs first


def test_frames_are_the_eval_envs_observations_every_kth_step() -> None:
    seed = atari_frame_seed(0, "Breakout", "train")
    every = collect_atari_frames("Breakout", 24, seed, keep_every_steps=1)
    third = collect_atari_frames("Breakout", 8, seed, keep_every_steps=3)
    np.testing.assert_array_equal(third, every[2::3])  # steps 3, 6, ..., 24
    env = make_atari_env("Breakout", protocol="nature", mode="eval", seed=seed)
    rng = np.random.default_rng(seed)  # the same uniform policy, replayed by hand
    env.reset()
    first, *_ = env.step(int(rng.integers(env.action_space.n)))
    env.close()
    np.testing.assert_array_equal(every[0], first)
    # Reset frame + first step's frame behind two zero frames: the stack the DQN sees at the start.
    assert first.shape == (4, 84, 84) and first[:2].max() == 0 < first[2].max()


def test_deterministic_per_seed_and_independent_of_game_order(small: datasets.Dataset) -> None:
    again = load_atari_frames(**SMALL, keep_every_steps=2)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(small, name), getattr(again, name))
    swapped = load_atari_frames(
        **{**SMALL, "games": ("breakout", "ALE/Pong-v5")}, keep_every_steps=2
    )
    assert swapped.class_names == ("Breakout", "Pong")
    assert _rows(swapped.x_train[swapped.y_train == 1]) == _rows(small.x_train[small.y_train == 0])
    other = load_atari_frames(**SMALL, keep_every_steps=2, seed=1)
    assert not _rows(other.x_test) & _rows(small.x_test)


def test_train_and_test_come_from_differently_seeded_episodes(small: datasets.Dataset) -> None:
    for game in ("Pong", "Breakout", "SpaceInvaders", "Seaquest", "MsPacman"):
        assert atari_frame_seed(0, game, "train") != atari_frame_seed(0, game, "test")
    pong_test = small.x_test[small.y_test == 0]
    direct = collect_atari_frames("Pong", 10, atari_frame_seed(0, "Pong", "test"), 2)
    assert _rows(pong_test) == _rows(direct)  # the test split is exactly the test-seeded env's
    assert not _rows(small.x_test) & _rows(small.x_train)  # no stack in both splits


def test_loader_asks_for_one_train_and_one_test_env_per_game(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, int, int, int]] = []

    def fake_collect(game: str, count: int, seed: int, keep_every_steps: int = 4) -> np.ndarray:
        calls.append((game, count, seed, keep_every_steps))
        return np.zeros((count, 4, 84, 84), np.uint8)

    monkeypatch.setattr(atari_frames, "collect_atari_frames", fake_collect)
    d = load_dataset("atari-frames", games=("Pong", "Seaquest", "MsPacman"), frames_per_game=5)
    assert len(d.x_train) == 15 and len(d.x_test) == 3 * 200
    expected = [
        (g, n, atari_frame_seed(0, g, split), 4)
        for split, n in (("train", 5), ("test", 200))
        for g in ("Pong", "Seaquest", "MsPacman")
    ]
    assert calls == expected
    assert len({seed for _, _, seed, _ in calls}) == 6  # six different episodes streams


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"games": ("Pong", "Pongg")}, ["'Pongg'", "ALE/Pong-v5"]),
        ({"games": ("Pong",)}, ["two or more", "('Pong',)"]),
        ({"games": ("Pong", "pong")}, ["different games"]),
        ({"games": "Pong"}, ["sequence", "'Pong'"]),
        ({"frames_per_game": 0}, ["frames_per_game", "0", ">= 1"]),
        ({"test_frames_per_game": -3}, ["test_frames_per_game", "-3"]),
        ({"keep_every_steps": 0}, ["keep_every_steps", ">= 1"]),
        ({"seed": -1}, ["seed", "-1", ">= 0"]),
        ({"data_dir": "x"}, ["'atari-frames' takes no option 'data_dir'", "frames_per_game"]),
    ],
)
def test_bad_options_raise_one_clear_value_error(options: dict, words: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        load_dataset("atari-frames", **options)
    message = str(info.value)
    assert all(w in message for w in words), message


def test_cli_rejects_data_dir_for_atari_frames(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--dataset", "atari-frames", "--data-dir", str(tmp_path), "--output-dir", str(tmp_path)]
    assert train_supervised.main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'data_dir'" in err and "games" in err


def test_presets_keep_every_model_short() -> None:
    for model, epochs in (("nature-cnn", 3), ("lenet", 3), ("mlp", 5)):
        cfg = resolve_config(SupervisedConfig(dataset="atari-frames", model=model))
        assert cfg.epochs == epochs and cfg.batch_size == 64


def test_nature_cnn_learns_the_games_with_pixels_scaled_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = load_atari_frames(("Pong", "Breakout", "SpaceInvaders"), 64, 32)
    seen: list[torch.Tensor] = []
    build = supervised.build_classifier

    def recording_build(*args: object, **kwargs: object) -> torch.nn.Module:
        net = build(*args, **kwargs)
        net.register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0].detach()))
        return net

    monkeypatch.setattr(supervised, "build_classifier", recording_build)
    cfg = SupervisedConfig(
        dataset="atari-frames", model="nature-cnn", epochs=3, batch_size=16, progress=False
    )
    result = train_classifier(cfg, data)
    assert result.test_accuracy >= 0.95, result.history
    first = seen[0]
    assert first.dtype == torch.float32 and first.min() >= 0.0 and first.max() <= 1.0
    assert first.max() > 100 / 255  # divided by 255 once, not twice (that would leave < 0.004)


@pytest.mark.slow
def test_cli_default_run_reaches_99_percent(tmp_path: Path) -> None:
    data = load_atari_frames()
    duplicated = len(_rows(data.x_test) & _rows(data.x_train))
    assert duplicated <= 10  # 9 of 1000 measured: MsPacman's static start screen, one Breakout
    argv = ["--dataset", "atari-frames", "--model", "nature-cnn", "--output-dir", str(tmp_path)]
    assert train_supervised.main([*argv, "--no-progress"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["test_accuracy"] >= 0.99, summary["history"]
    assert np.asarray(summary["confusion_matrix"]).sum() == 5 * 200
