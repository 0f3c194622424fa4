"""Classifier training for the lecture's supervised baselines (MLP, LeNet-5, the Nature-DQN torso).

A classifier is one of the shared torsos with a ``ClassifierHead`` on top, trained with the
lecture's softmax loss L = (1/N) sum_i -log(exp(f_{y_i}) / sum_j exp(f_j)) (cross-entropy on the
logits), dropout (Srivastava et al. 2014), data augmentation (``augment.augment_images``),
Adam (Kingma and Ba 2015) or SGD with momentum, and a cosine learning-rate decay (Loshchilov and
Hutter 2017). Defaults are chosen per (dataset, model) from ``PRESETS`` for every setting the
user leaves as None.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from agents.run.checkpoint import atomic_torch_save
from agents.run.interrupts import pause_point
from agents.supervised.augment import augment_images
from agents.supervised.datasets import Dataset, dataset_kind
from networks import MLP, ClassifierHead, LeNet5, NatureCNN, Network, make_activation

Model = Literal["mlp", "lenet", "nature-cnn"]
Optimizer = Literal["adam", "sgd"]
WandbMode = Literal["auto", "online", "offline", "disabled"]
MODELS: tuple[str, ...] = get_args(Model)
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)
WANDB_MODES: tuple[str, ...] = get_args(WandbMode)
NATURE_CNN_MIN_SIDE = 36  # 8x8/4, 4x4/2, 3x3/1 convolutions leave one pixel at 36x36


@dataclass(frozen=True)
class SupervisedConfig:
    """Settings of one supervised run; None means "the preset for this dataset and model"."""

    dataset: str = "digits"
    """Dataset: xor, digits (scikit-learn's 8x8 digits), mnist (IDX files in --data-dir),
    atari-frames (random-policy frames of 5 Atari games, labelled by game) or trajectories:PATH
    (a teacher's play from scripts.evaluate --save-trajectories, labelled by its actions)."""
    model: Model = "mlp"
    """Model: mlp, lenet (LeNet-5) or nature-cnn (the DQN conv torso, images >= 36x36)."""
    output_dir: Path = Path("runs/supervised/{dataset}__{model}__s{seed}__{time}")
    """Where model.pt, summary.json and confusion_matrix.png are written: a directory of its
    own ({dataset}, {model}, {seed} and {time} are filled in; a run there is refused unless
    --overwrite)."""
    epochs: int | None = None
    """Passes over the training set."""
    batch_size: int | None = None
    """Examples per gradient step."""
    learning_rate: float | None = None
    """Initial learning rate (decayed to 0 along a cosine)."""
    optimizer: Optimizer = "adam"
    """Optimizer: adam or sgd (momentum 0.9)."""
    weight_decay: float | None = None
    """L2 penalty (decoupled for Adam, i.e. AdamW)."""
    dropout: float | None = None
    """Dropout probability on hidden layers (0 turns it off)."""
    augment: bool = True
    """Randomly shift images and jitter intensities while training (vector data: never)."""
    max_shift_pixels: int | None = None
    """Largest random shift, in pixels, in each direction (zero padding)."""
    intensity_jitter: float | None = None
    """Intensity scale drawn from [1 - jitter, 1 + jitter] per image and channel."""
    activation: str | None = None
    """Activation of mlp and lenet (relu, tanh, sigmoid, prelu, ...); nature-cnn uses ReLU."""
    hidden: tuple[int, ...] | None = None
    """Hidden layer widths of the mlp."""
    seed: int = 0
    """Seed of weights, batch order and augmentation (the data splits are fixed)."""
    data_dir: Path | None = None
    """Folder of file-based datasets (mnist: the four IDX files, raw or .gz; else data/mnist)."""
    torch_threads: int = 1
    """CPU threads for torch, at most the machine's (more lose to sync on these small models)."""
    track: bool = False
    """Also log to Weights & Biases (metrics.csv in --output-dir is always written)."""
    wandb_mode: WandbMode = "auto"
    """wandb mode: auto, online, offline, disabled (auto: WANDB_MODE, online with a key, else
    offline)."""
    wandb_project: str = "atari-dqn-supervised"
    """wandb project name."""
    progress: bool = True
    """Show a progress bar."""


SUPERVISED_FLAG_GROUPS: dict[str, tuple[str, ...]] = {
    "run and data": ("dataset", "model", "output_dir", "data_dir", "seed"),
    "training": ("epochs", "batch_size", "learning_rate", "optimizer", "weight_decay", "dropout",
                 "activation", "hidden"),
    "augmentation": ("augment", "max_shift_pixels", "intensity_jitter"),
    "logging": ("progress", "track", "wandb_mode", "wandb_project"),
    "speed": ("torch_threads",),
}  # fmt: skip
"""The headings of ``scripts/train_supervised.py --help``, in order, and the fields under each:
every field in exactly one."""

RENAMED_KEYS = {"lr": "learning_rate", "threads": "torch_threads"}
"""Former names of settings: a config file (``--config``) that holds them, e.g. the ``config`` of
a summary.json written before the renaming, is read with the new names."""

UNSET_MEANS = {
    "data_dir": "data/mnist",
    "hidden": "none: only the mlp has hidden widths",
}
"""What a None setting that no preset fills means, as ``--help`` shows its default."""


# Generic defaults per model, then overrides per (dataset, model). The digits entries are tuned
# so that MLP >= 97.0% and LeNet >= 98.5% test accuracy hold with margin in well under 60 s.
PRESETS: dict[str | tuple[str, str], dict[str, object]] = {
    "mlp": dict(epochs=30, batch_size=64, learning_rate=1e-3, weight_decay=0.0, dropout=0.2,
                max_shift_pixels=1, intensity_jitter=0.1, activation="relu", hidden=(256, 256)),
    "lenet": dict(epochs=15, batch_size=64, learning_rate=1e-3, weight_decay=0.0, dropout=0.0,
                  max_shift_pixels=2, intensity_jitter=0.1, activation="relu"),
    "nature-cnn": dict(epochs=10, batch_size=64, learning_rate=1e-3, weight_decay=0.0,
                       dropout=0.0, max_shift_pixels=4, intensity_jitter=0.1, activation="relu"),
    ("xor", "mlp"): dict(epochs=60, batch_size=32, learning_rate=1e-2, dropout=0.0, hidden=(8,),
                         activation="tanh"),
    ("digits", "mlp"): dict(epochs=100, batch_size=32, learning_rate=2e-3, dropout=0.3,
                            hidden=(256, 256)),
    ("digits", "lenet"): dict(epochs=120, batch_size=32, learning_rate=2e-3, dropout=0.3,
                              max_shift_pixels=1),
    # atari-frames: every model is at 100% test accuracy after one epoch (5 games, 2000 stacks);
    # fewer epochs keep a whole run near 20 s (nature-cnn) to 30 s (lenet, mlp) on one core.
    ("atari-frames", "nature-cnn"): dict(epochs=3),
    ("atari-frames", "lenet"): dict(epochs=3),
    ("atari-frames", "mlp"): dict(epochs=5),
    # Behaviour cloning: no shifts or jitter, the exact screen positions are the teacher's cues.
    ("trajectories", "nature-cnn"): dict(epochs=10, max_shift_pixels=0, intensity_jitter=0.0),
}  # fmt: skip


def resolve_config(config: SupervisedConfig) -> SupervisedConfig:
    """``config`` with every None setting taken from ``PRESETS``; raises on bad values."""
    if config.model not in MODELS:
        raise ValueError(f"unknown model {config.model!r}; accepted: {', '.join(MODELS)}")
    kind = dataset_kind(config.dataset)
    preset = {**PRESETS[config.model], **PRESETS.get((kind, config.model), {})}
    chosen = {k: v for k, v in preset.items() if getattr(config, k) is None}
    if config.hidden is not None and config.model != "mlp":
        raise ValueError(f"--hidden {config.hidden} applies to the mlp only, not {config.model!r}")
    if config.model == "nature-cnn" and config.activation not in (None, "relu"):
        raise ValueError(f"model 'nature-cnn' uses ReLU, got activation {config.activation!r}")
    cfg = replace(config, **chosen)
    from agents.run.checks import check_fields, check_output_path

    check_fields(cfg, SUPERVISED_RANGES)  # types, NaN, infinities and ranges, field by field
    for name, choices in (("optimizer", OPTIMIZERS), ("wandb_mode", WANDB_MODES)):
        if getattr(cfg, name) not in choices:
            raise ValueError(
                f"--{name.replace('_', '-')}: {getattr(cfg, name)!r} is not accepted; use one of "
                f"{', '.join(choices)}"
            )
    if cfg.hidden is not None and not cfg.hidden:
        raise ValueError("--hidden: [] is not accepted; use one or more widths >= 1")
    check_output_path("--output-dir", cfg.output_dir)
    make_activation(cfg.activation)  # raises on an unknown name, listing the accepted ones
    return cfg


def _supervised_ranges() -> dict:
    from agents.run.checks import COUNT, POSITIVE_INT, SEED, Range

    return {
        "epochs": POSITIVE_INT,
        "batch_size": POSITIVE_INT,
        "learning_rate": Range(0.0, low_open=True),
        "weight_decay": Range(0.0),
        "dropout": Range(0.0, 1.0, high_open=True),
        "max_shift_pixels": COUNT,
        "intensity_jitter": Range(0.0, 1.0, high_open=True),
        "hidden": POSITIVE_INT,
        "seed": SEED,
        "torch_threads": POSITIVE_INT,  # at most the machine's cores are used
    }


SUPERVISED_RANGES = _supervised_ranges()
"""The range of each numeric ``SupervisedConfig`` setting (``agents.run.checks.check_fields``)."""


def check_classifier_memory(config: SupervisedConfig, dataset: Dataset) -> None:
    """Refuse a classifier whose weights, gradients and two optimizer moments (float32) do not fit
    in the memory available, before it is built (counted on the meta device)."""
    from agents.run.checks import format_bytes
    from agents.run.machine import available_memory

    with torch.device("meta"):
        net = build_classifier(
            config.model, dataset.input_shape, dataset.num_classes, config.hidden or (),
            config.activation, config.dropout,
        )  # fmt: skip
    params = sum(p.numel() for p in net.parameters())
    need, free = 16 * params, available_memory("cpu")
    if need > free:
        raise ValueError(
            f"--hidden: {list(config.hidden or ())} is not accepted here: the {config.model} of "
            f"{params:,} parameters needs {format_bytes(need)} with its gradients and optimizer "
            f"state, more than the {format_bytes(free)} of memory available; use smaller widths"
        )


def _shape_problem(model: str, input_shape: Sequence[int]) -> str | None:
    """Why ``model`` cannot take inputs of ``input_shape``, or None when it can."""
    if model == "mlp":
        return None
    if len(input_shape) != 3:
        return f"it needs (channels, height, width) images, got input shape {tuple(input_shape)}"
    if model == "nature-cnn" and min(input_shape[1:]) < NATURE_CNN_MIN_SIDE:
        return (
            f"it needs images of at least {NATURE_CNN_MIN_SIDE}x{NATURE_CNN_MIN_SIDE} pixels, "
            f"got {input_shape[1]}x{input_shape[2]}"
        )
    return None


def models_for(input_shape: Sequence[int]) -> list[str]:
    """The models that can take inputs of ``input_shape``."""
    return [m for m in MODELS if _shape_problem(m, input_shape) is None]


def check_fits(model: str, dataset: Dataset) -> None:
    """Raise a ValueError naming the model and the accepted ones if it cannot take ``dataset``."""
    problem = _shape_problem(model, dataset.input_shape)
    if problem is not None:
        accepted = ", ".join(models_for(dataset.input_shape))
        raise ValueError(
            f"model {model!r} cannot take dataset {dataset.name!r}: {problem}; "
            f"accepted models for it: {accepted}"
        )


def build_classifier(
    model: str,
    input_shape: Sequence[int],
    num_classes: int,
    hidden: Sequence[int] = (256, 256),
    activation: str = "relu",
    dropout: float = 0.0,
) -> Network:
    """``Network(torso, ClassifierHead)`` for ``model`` in mlp, lenet, nature-cnn.

    Dropout: after every hidden layer of the mlp, after C5 and F6 of LeNet-5, and before the
    head of the Nature CNN (after its 512-unit layer).
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; accepted: {', '.join(MODELS)}")
    problem = _shape_problem(model, input_shape)
    if problem is not None:
        accepted = ", ".join(models_for(input_shape))
        raise ValueError(f"model {model!r} cannot take this data: {problem}; accepted: {accepted}")
    head_dropout = 0.0
    if model == "mlp":
        torso = MLP(math.prod(input_shape), hidden, None, activation, dropout)
    elif model == "lenet":
        torso = LeNet5(input_shape, activation=activation, pooling="max", dropout=dropout)
    else:
        torso, head_dropout = NatureCNN(input_shape), dropout
    return Network(torso, ClassifierHead(torso.out_features, num_classes, dropout=head_dropout))


def _as_float(x: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1]; float data unchanged (the one place data are scaled)."""
    return x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)


@torch.no_grad()
def predict(network: torch.nn.Module, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Predicted class of every row of ``x`` (eval mode: no dropout)."""
    network.eval()
    chunks = [
        network(torch.from_numpy(_as_float(x[i : i + batch_size]))).argmax(1).numpy()
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with true classes as rows and predicted classes as columns."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


@dataclass
class TrainResult:
    """What a run produced: the trained network, its accuracies and per-epoch history."""

    network: Network
    config: SupervisedConfig
    train_accuracy: float
    test_accuracy: float
    confusion: np.ndarray
    seconds: float
    parameter_count: int
    history: list[dict[str, float]] = field(default_factory=list)
    gradient_steps: int = 0


def train_classifier(
    config: SupervisedConfig,
    dataset: Dataset,
    log: Callable[[dict[str, float], int], None] | None = None,
) -> TrainResult:
    """Train the configured classifier on ``dataset``.

    ``log(metrics, global_step)`` is called once per epoch, ``global_step`` counting gradient
    steps (the tracker's x axis); the metrics include ``train/epoch``.
    """
    cfg = resolve_config(config)
    check_fits(cfg.model, dataset)
    # Process-wide. On 2 shared cores a second thread made xor 12x and LeNet up to 8x slower
    # whenever another process was busy (OpenMP threads wait on each other); 1 is the default.
    torch.set_num_threads(min(cfg.torch_threads, os.cpu_count() or 1))
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    start = time.perf_counter()
    net = build_classifier(
        cfg.model,
        dataset.input_shape,
        dataset.num_classes,
        cfg.hidden or (),
        cfg.activation,
        cfg.dropout,
    )
    if cfg.optimizer == "adam":
        opt = torch.optim.AdamW(
            net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
    else:
        opt = torch.optim.SGD(
            net.parameters(), lr=cfg.learning_rate, momentum=0.9, weight_decay=cfg.weight_decay
        )
    n = len(dataset.x_train)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps_per_epoch)
    cfg = replace(cfg, augment=cfg.augment and dataset.is_image)  # vectors are never augmented
    y_all = torch.from_numpy(dataset.y_train.astype(np.int64))
    history: list[dict[str, float]] = []
    bar = tqdm(total=cfg.epochs * steps_per_epoch, disable=not cfg.progress, unit="step")
    for epoch in range(1, cfg.epochs + 1):
        pause_point("epoch")  # a test hook (agents.run.interrupts)
        net.train()
        order = rng.permutation(n)
        loss_sum, correct = 0.0, 0
        for i in range(0, n, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            xb = _as_float(dataset.x_train[idx])
            if cfg.augment:
                xb = augment_images(
                    xb, rng, cfg.max_shift_pixels, cfg.intensity_jitter,
                    dataset.label_preserving_flips,
                )  # fmt: skip
            yb = y_all[idx]
            logits = net(torch.from_numpy(xb))
            loss = F.cross_entropy(logits, yb)  # the lecture's softmax loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            bar.update(1)
        test_accuracy = float((predict(net, dataset.x_test) == dataset.y_test).mean())
        metrics = {
            "train/epoch": float(epoch),
            "train/loss": loss_sum / n,
            "train/batch_accuracy": correct / n,
            "test/accuracy": test_accuracy,
        }
        history.append(metrics)
        bar.set_postfix(loss=f"{metrics['train/loss']:.4f}", test_acc=f"{test_accuracy:.4f}")
        if log is not None:
            log(metrics, epoch * steps_per_epoch)
    bar.close()
    test_pred = predict(net, dataset.x_test)
    return TrainResult(
        network=net,
        config=cfg,
        train_accuracy=float((predict(net, dataset.x_train) == dataset.y_train).mean()),
        test_accuracy=float((test_pred == dataset.y_test).mean()),
        confusion=confusion_matrix(dataset.y_test, test_pred, dataset.num_classes),
        seconds=time.perf_counter() - start,
        parameter_count=sum(p.numel() for p in net.parameters()),
        history=history,
        gradient_steps=cfg.epochs * steps_per_epoch,
    )


def config_dict(config: SupervisedConfig) -> dict[str, object]:
    """The config as JSON-ready values (paths as strings, tuples as lists)."""
    return {
        k: str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
        for k, v in asdict(config).items()
    }


def save_model(network: torch.nn.Module, path: Path) -> None:
    """Save ``network.state_dict()`` with ``torch.save``, atomically (temp file, fsync, rename)."""
    atomic_torch_save(network.state_dict(), path)
