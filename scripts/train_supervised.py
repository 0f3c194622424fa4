"""Train a supervised baseline (mlp, lenet, nature-cnn on xor, digits, mnist, atari-frames), or
clone a recorded policy (``--dataset trajectories:PATH``, behaviour cloning).

Writes ``model.pt`` (the state_dict), ``summary.json``, ``config.json`` (every setting, presets
resolved: ``--config`` of it repeats the run), ``confusion_matrix.png`` and ``metrics.csv`` into
``--output-dir``; with ``--track`` also logs to Weights & Biases through
``agents.run.tracking.Tracker`` (a wandb failure warns once and training goes on). A clone is also
saved as a checkpoint under ``--output-dir/checkpoints/`` that ``scripts.evaluate`` plays.

    python -m scripts.train_supervised --dataset digits --model lenet --output-dir runs/digits-lenet

One run per directory: the default ``--output-dir``,
``runs/supervised/{dataset}__{model}__s{seed}__{time}``, is a new directory for each run (``-2``,
``-3``... appended if two start in the same second); a directory that holds a run (its
config.json, metrics.csv, summary.json, model.pt or checkpoints/) is refused before any work
unless ``--overwrite`` (which deletes that run first, and nothing that is not a run's), and one
in use by a running run is refused whatever the flags (``agents.run.directory``).

SIGINT (Ctrl-C), SIGTERM or SIGHUP (not under ``nohup``): one line, exit code 130, 143 or 129, no
traceback. A supervised run cannot be continued, so a stopped one is not kept: what it wrote is
removed (a directory it created, too), and the directory is as it was before.

Behaviour cloning of the play saved in t.npz, then playing the clone:
``--dataset trajectories:t.npz --model nature-cnn --output-dir bc``, then
``python -m scripts.evaluate bc``.
"""

# ruff: noqa: E402 - the signal handler of the start-up comes before the slow imports
from __future__ import annotations

import sys

if __name__ == "__main__":  # a signal while the modules load: one line, no traceback
    from scripts._cli import exit_on_signals_while_loading

    exit_on_signals_while_loading()

import dataclasses
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.run.checkpoint import atomic_write, save_checkpoint
from agents.run.directory import (
    RunLock,
    claim_new_directory,
    prepare_new_run,
    remove_if_unused,
    remove_run_files,
    run_markers,
    run_stamp,
)
from agents.run.interrupts import Interrupted, SignalGuard
from agents.run.tracking import Tracker, resolve_wandb_mode
from agents.supervised.classifier import (
    MODELS,
    PRESETS,
    RENAMED_KEYS,
    SUPERVISED_FLAG_GROUPS,
    UNSET_MEANS,
    SupervisedConfig,
    TrainResult,
    check_classifier_memory,
    check_fits,
    config_dict,
    resolve_config,
    save_model,
    train_classifier,
)
from agents.supervised.cloning import policy_checkpoint_state
from agents.supervised.datasets import FILE_LOADERS, LOADERS, dataset_kind, load_dataset
from scripts._cli import (
    ArgumentParser,
    add_config_flags,
    cli_main,
    config_flag_values,
    default_texts,
    field_flags,
    normalize_flags,
    shown_default,
)
from scripts._config_file import read_config_file

PROG = "train_supervised"
DESCRIPTION = (
    "Train a supervised baseline classifier. The settings come from --config FILE, then the "
    "flags, each overriding the one before; what neither sets takes the preset for the dataset "
    "and model (classifier.PRESETS), and the defaults shown are those of the --dataset "
    "and --model given: --dataset digits --model lenet --help shows LeNet's on digits."
)


def save_confusion_png(
    counts: np.ndarray, class_names: Sequence[str], path: Path, title: str
) -> None:
    """The confusion matrix as a PNG heat map with counts in the cells (Agg, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(class_names)
    longest = max(len(name) for name in class_names)
    side = max(3.0, 1.0 + 0.45 * k + 0.06 * longest)
    fig = Figure(figsize=(side, side), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(counts, cmap="Blues")
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true", title=title)
    ax.set_xticklabels(
        class_names, rotation=45 if longest > 3 else 0, ha="right" if longest > 3 else "center"
    )
    ax.set_yticklabels(class_names)
    if k <= 30:
        for (row, col), value in np.ndenumerate(counts):
            dark = value > counts.max() / 2
            ax.text(col, row, str(value), ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")  # fmt: skip
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))


def summary_of(result: TrainResult) -> dict[str, Any]:
    cfg = result.config
    return {
        "dataset": cfg.dataset,
        "model": cfg.model,
        "epochs": cfg.epochs,
        "seconds": round(result.seconds, 3),
        "test_accuracy": result.test_accuracy,
        "train_accuracy": result.train_accuracy,
        "parameter_count": result.parameter_count,
        "seed": cfg.seed,
        "config": config_dict(cfg),
        "confusion_matrix": result.confusion.tolist(),
        "history": result.history,
    }


def run_label(dataset: str) -> str:
    """A dataset name fit for a run name: 'trajectories:runs/pong.npz' -> 'trajectories-pong'."""
    kind, sep, path = dataset.partition(":")
    return f"{kind}-{Path(path).stem}" if sep else dataset


def help_defaults(config: SupervisedConfig) -> dict[str, str]:
    """``{field: its default as --help shows it}``: the value ``config`` sets, else the preset's
    for its dataset and model ("100, the digits/mlp preset"), else what leaving it unset means."""
    texts = default_texts(config, UNSET_MEANS)
    kind = dataset_kind(config.dataset)
    known = (kind in LOADERS or kind in FILE_LOADERS) and config.model in MODELS
    for name in texts:
        if getattr(config, name) is not None:
            continue
        if known:  # else refused when the run starts; --help shows each model's preset
            preset = {**PRESETS[config.model], **PRESETS.get((kind, config.model), {})}
            if name in preset:
                texts[name] = f"{shown_default(preset[name])}, the {kind}/{config.model} preset"
        else:
            per_model = [f"{shown_default(PRESETS[m][name])} for {m}" for m in MODELS
                         if name in PRESETS[m]]  # fmt: skip
            if per_model:
                texts[name] = ", ".join(per_model) + ", adjusted per dataset"
    return texts


PLACEHOLDERS = ("{dataset}", "{model}", "{seed}", "{time}")
"""What the default ``--output-dir`` (a template) is filled in with."""


def fill_output_dir(cfg: SupervisedConfig, now: float | None = None) -> Path | None:
    """``cfg.output_dir`` with its placeholders filled in (local time for ``{time}``), or None
    when it has none (a plain directory)."""
    text = str(cfg.output_dir)
    if not any(key in text for key in PLACEHOLDERS):
        return None
    stamp = run_stamp(time.time() if now is None else now)
    values = {"{dataset}": run_label(cfg.dataset), "{model}": cfg.model,
              "{seed}": str(cfg.seed), "{time}": stamp}  # fmt: skip
    for key, value in values.items():
        text = text.replace(key, value)
    return Path(text)


def refuse_a_run_there(cfg: SupervisedConfig, overwrite: bool) -> None:
    """Before any work: a plain ``--output-dir`` that holds a run is refused without
    ``--overwrite`` (``prepare_new_run`` checks again, under the run's lock)."""
    out = cfg.output_dir
    if fill_output_dir(cfg) is None and not overwrite and out.is_dir() and run_markers(out):
        prepare_new_run(out, overwrite=False, resumable=False)


def claim_run_dir(cfg: SupervisedConfig, overwrite: bool) -> tuple[Path, bool, RunLock]:
    """The run's directory, created where it is new, locked for the run's lifetime and empty of
    any earlier run (``--overwrite`` deletes it; else refused); returns it, whether it was
    created, and the lock."""
    filled = fill_output_dir(cfg)
    if filled is not None:
        out, created = claim_new_directory(filled), True
    else:
        out, created = cfg.output_dir, not cfg.output_dir.exists()
        out.mkdir(parents=True, exist_ok=True)
    lock = RunLock.acquire(out)
    try:
        prepare_new_run(out, overwrite, resumable=False)
    except BaseException:  # the run there is refused: it stays, and so do other files
        lock.release()
        if created:
            remove_if_unused(out)
        raise
    return out, created, lock


def build_parser(defaults: SupervisedConfig) -> ArgumentParser:
    """The parser of ``train_supervised``: ``--config`` and one flag per ``SupervisedConfig``
    field under the headings of ``SUPERVISED_FLAG_GROUPS``, with the defaults of ``defaults``."""
    parser = ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument(
        "--config", metavar="FILE",
        help="settings from a YAML (.yaml, .yml) or JSON (.json) file: all or some of the "
        "settings below by field name (epochs: 20, learning-rate: 1e-3); a run's config.json "
        "repeats that run (default: none: the flags and presets alone)",
    )  # fmt: skip
    add_config_flags(parser, SupervisedConfig, SUPERVISED_FLAG_GROUPS, help_defaults(defaults))
    parser.add_argument(
        "--overwrite", action="store_true",
        help="start over in an --output-dir that holds a run, deleting that run first (only the "
        "files a run writes; a directory holding anything else is refused, nothing deleted)",
    )  # fmt: skip
    return parser


def parse_config(argv: Sequence[str]) -> SupervisedConfig:
    """The settings of a ``--config`` file (if any) with the flags on top, as a
    ``SupervisedConfig``; a parse error (a malformed number, an unknown flag) is one
    ``ValueError`` line. Settings neither sets stay None (the preset's: ``resolve_config``)."""
    return parse_command(argv)[0]


def parse_command(argv: Sequence[str]) -> tuple[SupervisedConfig, bool]:
    """``parse_config``'s config and whether ``--overwrite`` was given."""
    argv = normalize_flags(argv, [*field_flags(SupervisedConfig), "--config", "--overwrite"])
    early = ArgumentParser(prog=PROG, add_help=False)
    for flag in ("--config", "--dataset", "--model"):
        early.add_argument(flag)
    known = early.parse_known_args(argv)[0]
    config = SupervisedConfig()
    if known.config is not None:
        values = read_config_file(known.config, SupervisedConfig, renamed=RENAMED_KEYS)
        config = dataclasses.replace(config, **values)
    shown = dataclasses.replace(
        config,
        dataset=config.dataset if known.dataset is None else known.dataset,
        model=config.model if known.model is None else known.model,
    )
    args = build_parser(shown).parse_args(argv)
    return dataclasses.replace(config, **config_flag_values(args, SupervisedConfig)), args.overwrite


@cli_main(PROG)
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    run: dict[str, Any] = {}  # the run's directory once claimed, whether it was created, the lock
    with SignalGuard():  # SIGINT/SIGTERM/SIGHUP from here on: one line, exit code 130/143/129
        try:
            return train(argv, run)
        except Interrupted as stop:
            if "dir" not in run:
                print(f"stopped by {stop.name} during start-up; nothing was written", flush=True)
            else:
                remove_run_files(run["dir"], run["created"])
                print(
                    f"stopped by {stop.name} before the run finished; what it wrote in "
                    f"{run['dir']} was removed (a supervised run cannot be continued: run it "
                    "again)",
                    flush=True,
                )
            return stop.exit_code
        finally:
            if "lock" in run:
                run["lock"].release()


def train(argv: list[str], run: dict[str, Any]) -> int:
    config, overwrite = parse_command(argv)
    cfg = resolve_config(config)
    refuse_a_run_there(cfg, overwrite)
    options = {} if cfg.data_dir is None else {"data_dir": cfg.data_dir}
    dataset = load_dataset(cfg.dataset, **options)
    check_fits(cfg.model, dataset)
    check_classifier_memory(cfg, dataset)
    if cfg.track and resolve_wandb_mode(cfg.wandb_mode) == "offline":
        os.environ["WANDB_MODE"] = "offline"  # no key and no mode chosen: stay off the network
    out, created, lock = claim_run_dir(cfg, overwrite)
    run.update(dir=out, created=created, lock=lock)
    cfg = dataclasses.replace(cfg, output_dir=out)  # a template filled in
    tracker = Tracker(
        out, config_dict(cfg), track=cfg.track, mode=cfg.wandb_mode,
        project=cfg.wandb_project, name=f"{run_label(cfg.dataset)}-{cfg.model}-seed{cfg.seed}",
    )  # fmt: skip
    try:
        result = train_classifier(cfg, dataset, log=tracker.log)
    except BaseException as error:
        tracker.finish(exit_code=error.exit_code if isinstance(error, Interrupted) else 1)
        raise
    save_model(result.network, out / "model.pt")
    title = f"{cfg.dataset} / {cfg.model}: test accuracy {result.test_accuracy:.2%}"
    save_confusion_png(result.confusion, dataset.class_names, out / "confusion_matrix.png", title)
    summary = summary_of(result)
    if dataset.recording is not None:
        state = policy_checkpoint_state(result, dataset)
        path = save_checkpoint(out / "checkpoints", state, result.gradient_steps)
        summary.update(checkpoint=str(path), recording=dataset.recording)
    settings = json.dumps(config_dict(cfg), indent=2) + "\n"  # --config of it repeats the run
    atomic_write(out / "config.json", lambda f: f.write(settings.encode()))
    text = json.dumps(summary, indent=2) + "\n"
    atomic_write(out / "summary.json", lambda f: f.write(text.encode()))
    tracker.finish({k: summary[k] for k in ("test_accuracy", "train_accuracy", "seconds")})
    print(
        f"{cfg.dataset} {cfg.model}: test accuracy {result.test_accuracy:.2%}, "
        f"train accuracy {result.train_accuracy:.2%}, {result.seconds:.1f} s, "
        f"{result.parameter_count} parameters -> {out}"
    )
    if "checkpoint" in summary:
        print(f"policy checkpoint: {summary['checkpoint']} (python -m scripts.evaluate {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
