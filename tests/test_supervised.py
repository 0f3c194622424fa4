"""Supervised baselines: classifier builder, presets, learning floors, the CLI and its outputs."""

from __future__ import annotations

import json
import os
import sys
import types
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from agents.run.checkpoint import atomic_write
from agents.supervised.classifier import (
    PRESETS,
    SupervisedConfig,
    build_classifier,
    confusion_matrix,
    predict,
    resolve_config,
    save_model,
    train_classifier,
)
from agents.supervised.datasets import Dataset, load_digits, load_xor
from networks import ClassifierHead, Network
from scripts import train_supervised
from scripts._cli import cli_main, one_line

FAST = SupervisedConfig(progress=False)

# --- building blocks ---------------------------------------------------------------------------


def test_build_classifier_composes_torso_and_classifier_head() -> None:
    net = build_classifier("mlp", (2,), 2, hidden=(8,), activation="tanh")
    assert isinstance(net, Network) and isinstance(net.head, ClassifierHead)
    assert net(torch.zeros(5, 2)).shape == (5, 2)
    assert sum(p.numel() for p in net.parameters()) == (2 * 8 + 8) + (8 * 2 + 2)


def test_lenet_has_the_classic_parameter_count() -> None:
    net = build_classifier("lenet", (1, 8, 8), 10)
    # C1 6*25+6, C3 16*6*25+16, C5 400*120+120, F6 120*84+84, output 84*10+10 (LeCun et al. 1998)
    expected = 156 + 2416 + 48120 + 10164 + 850
    assert sum(p.numel() for p in net.parameters()) == expected == 61706
    assert net(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_nature_cnn_takes_images_from_36_pixels() -> None:
    net = build_classifier("nature-cnn", (1, 36, 36), 4, dropout=0.5)
    assert net(torch.zeros(2, 1, 36, 36)).shape == (2, 4)
    assert net.torso.flatten_size == 64  # 36 -> 8 -> 3 -> 1 pixels, 64 channels


@pytest.mark.parametrize(
    ("model", "shape", "words"),
    [
        ("lenet", (2,), ["'lenet'", "(2,)", "accepted: mlp"]),
        ("nature-cnn", (2,), ["'nature-cnn'", "accepted: mlp"]),
        ("nature-cnn", (1, 8, 8), ["'nature-cnn'", "36x36", "8x8", "accepted: mlp, lenet"]),
        ("resnet", (1, 8, 8), ["'resnet'", "mlp, lenet, nature-cnn"]),
    ],
)
def test_build_classifier_rejects_what_a_model_cannot_take(
    model: str, shape: tuple[int, ...], words: list[str]
) -> None:
    with pytest.raises(ValueError) as info:
        build_classifier(model, shape, 10)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_presets_fill_only_what_the_user_left_open() -> None:
    cfg = resolve_config(SupervisedConfig(dataset="digits", model="lenet", learning_rate=0.01))
    assert cfg.learning_rate == 0.01  # the user's value wins
    assert cfg.epochs == PRESETS[("digits", "lenet")]["epochs"]
    assert cfg.batch_size == PRESETS[("digits", "lenet")]["batch_size"]
    assert cfg.intensity_jitter == PRESETS["lenet"]["intensity_jitter"]
    assert cfg.hidden is None
    mnist = resolve_config(SupervisedConfig(dataset="mnist", model="mlp"))
    assert mnist.epochs == PRESETS["mlp"]["epochs"]
    assert resolve_config(cfg) == cfg  # resolving twice changes nothing


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"epochs": 0}, ["epochs", "0", ">= 1"]),
        ({"dropout": 1.0}, ["dropout", "1.0", "[0, 1)"]),
        ({"optimizer": "rmsprop"}, ["'rmsprop'", "adam, sgd"]),
        ({"learning_rate": -1.0}, ["--learning-rate", "-1.0", "> 0"]),
        ({"torch_threads": 0}, ["--torch-threads", "0", ">= 1"]),
        ({"model": "lenet", "hidden": (8,)}, ["(8,)", "mlp only"]),
        ({"model": "nature-cnn", "activation": "tanh"}, ["'tanh'", "ReLU"]),
        ({"wandb_mode": "loud"}, ["'loud'", "auto, online, offline, disabled"]),
    ],
)
def test_resolve_config_rejects_bad_values(change: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        resolve_config(SupervisedConfig(**change))
    assert all(w in str(info.value) for w in words), str(info.value)


def test_confusion_matrix_counts_true_rows_predicted_columns() -> None:
    counts = confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 0]), 3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_predict_scales_uint8_once_and_batches() -> None:
    net = build_classifier("mlp", (2,), 2, hidden=(4,))
    x = np.array([[0, 255], [255, 0], [128, 64]], np.uint8)
    expected = net(torch.from_numpy(x.astype(np.float32) / 255.0)).argmax(1).numpy()
    assert predict(net, x, batch_size=2).tolist() == expected.tolist()


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    atomic_write(path, lambda f: f.write(b"old"))

    def broken(f: Any) -> None:
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temp file left behind


def test_save_model_round_trips_the_state_dict(tmp_path: Path) -> None:
    net = build_classifier("lenet", (1, 8, 8), 10)
    save_model(net, tmp_path / "m.pt")
    again = build_classifier("lenet", (1, 8, 8), 10)
    again.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(net.eval()(x), again.eval()(x))


# --- learning floors ---------------------------------------------------------------------------


def test_dropout_is_active_in_training_and_off_in_evaluation() -> None:
    torch.manual_seed(0)
    net = build_classifier("mlp", (16,), 3, hidden=(64,), dropout=0.5)
    x = torch.rand(4, 16)
    assert not torch.equal(net.train()(x), net(x))
    assert torch.equal(net.eval()(x), net(x))


def test_the_seed_fixes_the_run() -> None:
    xor = load_xor()
    runs = [train_classifier(replace_cfg(dataset="xor", epochs=3, seed=s), xor) for s in (5, 5, 6)]
    assert runs[0].history == runs[1].history
    assert runs[0].history != runs[2].history


@pytest.mark.parametrize(("optimizer", "lr"), [("adam", None), ("sgd", 0.3)])
def test_mlp_solves_xor(optimizer: str, lr: float | None) -> None:
    cfg = replace_cfg(dataset="xor", optimizer=optimizer, learning_rate=lr)
    result = train_classifier(cfg, load_xor())
    assert result.test_accuracy == 1.0 and result.train_accuracy == 1.0
    assert not result.config.augment  # vectors are never augmented
    assert result.confusion.tolist() == [[50, 0], [0, 50]]


def test_mlp_on_digits_meets_the_floor_and_matches_sklearn() -> None:
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    digits = load_digits()
    result = train_classifier(replace_cfg(dataset="digits", model="mlp"), digits)
    assert result.test_accuracy >= 0.970
    with threadpool_limits(1):  # BLAS threads fighting over 2 cores make sklearn 20x slower
        sk = MLPClassifier(max_iter=500, random_state=0)
        sk.fit(digits.x_train.reshape(len(digits.x_train), -1), digits.y_train)
        sk_accuracy = sk.score(digits.x_test.reshape(len(digits.x_test), -1), digits.y_test)
    assert result.test_accuracy >= sk_accuracy - 0.01, (result.test_accuracy, sk_accuracy)


@pytest.mark.slow  # the default run: about 25 s alone on one core, minutes on a busy machine
def test_lenet_on_digits_meets_the_floor() -> None:
    result = train_classifier(replace_cfg(dataset="digits", model="lenet"), load_digits())
    assert result.test_accuracy >= 0.985


def test_lenet_learns_digits_quickly() -> None:
    result = train_classifier(
        replace_cfg(dataset="digits", model="lenet", epochs=25), load_digits()
    )
    assert result.test_accuracy >= 0.97  # 98.3% measured
    assert result.parameter_count == 61706


def test_nature_cnn_learns_upscaled_digits() -> None:
    d = load_digits()
    up = np.ones((1, 1, 5, 5), np.float32)  # 8x8 -> 40x40, above the 36x36 minimum
    big = Dataset("digits40", np.kron(d.x_train, up), d.y_train, np.kron(d.x_test, up), d.y_test,
                  d.class_names)  # fmt: skip
    result = train_classifier(replace_cfg(model="nature-cnn", epochs=10, learning_rate=1e-3), big)
    assert result.test_accuracy >= 0.90


def replace_cfg(**changes: Any) -> SupervisedConfig:
    return replace(FAST, **changes)


# --- command line ------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_cli_writes_summary_model_and_confusion_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["--dataset", "digits", "--model", "mlp", "--output-dir", str(out), "--epochs", "3",
            "--hidden", "32", "--no-progress", "--seed", "1"]  # fmt: skip
    assert train_supervised.main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("test_accuracy", "train_accuracy", "dataset", "model", "epochs", "seconds",
                "parameter_count", "seed", "config"):  # fmt: skip
        assert key in summary
    assert (summary["dataset"], summary["model"], summary["epochs"]) == ("digits", "mlp", 3)
    assert summary["seed"] == 1 and summary["config"]["hidden"] == [32]
    assert summary["parameter_count"] == 64 * 32 + 32 + 32 * 10 + 10
    assert 0.5 < summary["test_accuracy"] <= 1.0 and summary["seconds"] > 0
    assert np.asarray(summary["confusion_matrix"]).sum() == 360
    assert len(summary["history"]) == 3
    net = build_classifier("mlp", (1, 8, 8), 10, hidden=(32,))
    net.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    png = (out / "confusion_matrix.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 1000
    assert (out / "metrics.csv").read_text().count("test/accuracy") == 3  # one row per epoch
    assert "test accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--dataset", "cifar"], ["'cifar'", "digits, mnist, xor"]),
        (["--model", "resnet"], ["'resnet'", "mlp, lenet, nature-cnn"]),
        (["--dataset", "xor", "--model", "lenet"], ["'lenet'", "'xor'", "accepted models", "mlp"]),
        (["--dataset", "xor", "--model", "nature-cnn"], ["'nature-cnn'", "'xor'", "mlp"]),
        (["--model", "nature-cnn"], ["'nature-cnn'", "'digits'", "36x36", "mlp, lenet"]),
        (["--optimizer", "rmsprop"], ["'rmsprop'", "adam, sgd"]),
        (["--epochs", "0"], ["epochs", ">= 1"]),
        (["--dropout", "1.5"], ["dropout", "1.5", "[0, 1)"]),
        (["--activation", "swish"], ["'swish'", "relu", "tanh"]),
        (["--dataset", "mnist", "--data-dir", "{tmp}"], ["train-images-idx3-ubyte", "mirror"]),
        (["--data-dir", "{tmp}"], ["'digits'", "'data_dir'"]),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], words: list[str]
) -> None:
    out = tmp_path / "run"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code = train_supervised.main([*argv, "--output-dir", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(w in lines[0] for w in words), lines[0]
    assert not out.exists()


# --- tracking (a fake wandb module; nothing leaves the machine) --------------------------------


def _fake_wandb(calls: list[tuple[str, Any]], fail_on: str = "") -> types.SimpleNamespace:
    def fail_if(what: str) -> None:
        if what == fail_on:
            raise RuntimeError(f"{what} broke")

    class Run:
        id = "fake"
        summary: dict[str, Any] = {}

        def define_metric(self, *args: Any, **kwargs: Any) -> None:
            pass

        def log(self, metrics: dict[str, float]) -> None:
            fail_if("log")
            calls.append(("log", metrics))

        def finish(self) -> None:
            calls.append(("finish", None))

    def init(**kwargs: Any) -> Run:
        fail_if("init")
        calls.append(("init", kwargs))
        return Run()

    return types.SimpleNamespace(init=init, Settings=dict)


@pytest.fixture
def clean_wandb_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.setenv(name, "placeholder")  # so teardown restores the original state
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login either


XOR_ARGS = ["--dataset", "xor", "--epochs", "4", "--no-progress", "--track"]


@pytest.mark.usefixtures("clean_wandb_env")
def test_track_goes_offline_without_a_key_and_logs_each_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, Any]] = []
    monkeypatch.setitem(sys.modules, "wandb", _fake_wandb(calls))
    out = tmp_path / "r"
    assert train_supervised.main([*XOR_ARGS, "--output-dir", str(out)]) == 0
    assert os.environ["WANDB_MODE"] == "offline"
    assert [kind for kind, _ in calls] == ["init", "log", "log", "log", "log", "finish"]
    init = calls[0][1]
    assert init["mode"] == "offline" and init["config"]["dataset"] == "xor"
    steps_per_epoch = 400 // 32 + 1  # 400 xor points, batches of 32
    assert [c[1]["global_step"] for c in calls[1:5]] == [steps_per_epoch * e for e in (1, 2, 3, 4)]
    assert [c[1]["train/epoch"] for c in calls[1:5]] == [1, 2, 3, 4]
    assert {"train/loss", "test/accuracy"} <= set(calls[1][1])
    assert (out / "metrics.csv").read_text().startswith("global_step,wall_seconds,metric,value")


@pytest.mark.usefixtures("clean_wandb_env")
def test_an_explicit_wandb_mode_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []
    monkeypatch.setitem(sys.modules, "wandb", _fake_wandb(calls))
    argv = [*XOR_ARGS, "--wandb-mode", "online", "--output-dir", str(tmp_path / "r")]
    assert train_supervised.main(argv) == 0
    assert calls[0][1]["mode"] == "online" and "WANDB_MODE" not in os.environ


@pytest.mark.usefixtures("clean_wandb_env")
@pytest.mark.parametrize("fail_on", ["init", "log"])
def test_a_wandb_failure_warns_once_and_training_continues(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fail_on: str,
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", _fake_wandb([], fail_on=fail_on))
    out = tmp_path / "r"
    assert train_supervised.main([*XOR_ARGS, "--output-dir", str(out)]) == 0
    messages = [line for line in capsys.readouterr().err.splitlines() if "wandb" in line]
    assert len(messages) == 1 and f"{fail_on} broke" in messages[0]
    assert json.loads((out / "summary.json").read_text())["epochs"] == 4
    assert (out / "model.pt").stat().st_size > 0


# --- shared CLI helper -------------------------------------------------------------------------


def test_cli_main_turns_value_errors_and_parser_exits_into_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @cli_main("tool")
    def main(argv: list[str] | None = None) -> int:
        if argv == ["bad"]:
            raise ValueError("bad value 'x'\naccepted: y")
        if argv == ["help"]:
            raise SystemExit(0)
        return 0

    assert main(["bad"]) == 2
    assert capsys.readouterr().err == "tool: error: bad value 'x' accepted: y\n"
    assert main(["help"]) == 0 and main([]) == 0
    assert one_line("  a\n\n b ") == "a b"
