"""Run tracking: a local metrics log that always works, optional TensorBoard event files and
optional Weights & Biases.

``metrics.csv`` is long-format (``global_step,wall_seconds,metric,value``), one row per value,
flushed at the logging cadence, so it parses after a crash and takes any new metric without a
header change. With TensorBoard on, ``DIR/tensorboard/`` holds event files of the same rows
(``TensorBoardLog``). This is the one module that imports wandb and TensorBoard, lazily; a
failure of either (no network, slow init, bad settings, a full disk) prints one warning and the
run continues with the rest.

wandb is started with W&B Weave's integration off (``WANDB_DISABLE_WEAVE``, wandb's own setting,
unless the user's environment sets it): it looks for LLM libraries by their module names, takes
this package's ``agents`` for one and would print a note about LLM tracing on every run.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

FIELDS = ("global_step", "wall_seconds", "metric", "value")
TENSORBOARD_DIR = "tensorboard"
"""The folder of a run directory that holds its TensorBoard event files."""
TENSORBOARD_INSTALL = "pip install -e .[tensorboard]"
WEAVE_SWITCH = "WANDB_DISABLE_WEAVE"
"""wandb's environment setting that turns its W&B Weave integration off."""


def warn(message: str) -> None:
    """One line on stderr: tracking trouble is reported, never raised."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _rows(path: Path):
    """The well-formed rows of a metrics.csv, in order (a torn or malformed row is skipped)."""
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                int(row["global_step"]), float(row["wall_seconds"]), float(row["value"])
            except (TypeError, ValueError, KeyError):
                continue
            yield row


class MetricsLog:
    """Append-only CSV of scalar metrics against ``global_step``. ``rows`` counts its rows (a
    checkpoint saves it, so a resumed run keeps exactly the rows written before it)."""

    def __init__(self, path: str | Path, wall_offset_seconds: float = 0.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.rows = 0 if new else sum(1 for _ in _rows(self.path))
        self._file = open(self.path, "a", newline="")  # noqa: SIM115 - closed in close()
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(FIELDS)
            self._file.flush()
        self.start_time = time.time() - wall_offset_seconds
        """When the run began on its own clock (``wall_seconds`` counts from it; a resumed run's
        clock goes on from its last row)."""

    def log(self, metrics: Mapping[str, float], step: int) -> list[tuple[str, float, float]]:
        """Append the finite values; returns the rows written as (metric, the value as written,
        wall_seconds)."""
        wall = round(time.time() - self.start_time, 3)
        written = []
        for key, value in metrics.items():
            value = float(value)
            if math.isfinite(value):
                text = f"{value:.6g}"
                self._writer.writerow((step, wall, key, text))
                self.rows += 1
                written.append((key, float(text), wall))
        self._file.flush()
        return written

    def close(self) -> None:
        """Flush, fsync and close (closed even when the flush fails, e.g. on a full disk)."""
        if not self._file.closed:
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
            finally:
                try:
                    self._file.close()
                except OSError:
                    pass  # the buffered rows could not be written: already reported


def read_metrics(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.csv -> {metric: [(global_step, value), ...]}; a torn last line is skipped."""
    series: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                point = (int(row["global_step"]), float(row["value"]))
            except (TypeError, ValueError, KeyError):
                continue
            series.setdefault(row["metric"], []).append(point)
    return series


def truncate_metrics(path: str | Path, step: int, rows: int | None = None) -> tuple[float, int]:
    """Keep the rows a resumed run does not log again, rewriting the file atomically: the first
    ``rows`` rows (the count its checkpoint saved: rows logged after the checkpoint go, even at its
    own step, such as a final evaluation cut short), or without a count the rows up to ``step``;
    a torn last line goes too. Returns (the last kept wall_seconds, the largest step of the rows
    dropped, -1 if none), so a resumed run continues the clock and does not send wandb again the
    steps it already has (rows dropped here were sent; a row never written, such as an evaluation
    cut short by a signal and made on resume, is sent)."""
    from agents.run.checkpoint import atomic_write

    path = Path(path)
    if not path.exists():
        return 0.0, -1
    kept, wall, seen = [], 0.0, -1
    for row in _rows(path):
        row_step, row_wall = int(row["global_step"]), float(row["wall_seconds"])
        if row_step <= step and (rows is None or len(kept) < rows):
            kept.append([row[k] for k in FIELDS])
            wall = max(wall, row_wall)
        else:
            seen = max(seen, row_step)

    def write(f) -> None:
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(FIELDS)
        writer.writerows(kept)
        f.write(text.getvalue().encode())

    atomic_write(path, write)
    return wall, seen


def require_tensorboard() -> None:
    """Raise one ValueError line when TensorBoard event files cannot be written here (the
    ``tensorboard`` package missing or broken): checked before a run starts."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except Exception as error:  # noqa: BLE001 - ImportError, or a broken install's own error
        reason = " ".join(str(error).split())[:200]
        raise ValueError(
            f"--tensorboard: the tensorboard package cannot be imported ({reason}); install it "
            f"with `{TENSORBOARD_INSTALL}` (or `pip install tensorboard`), or leave out "
            "--tensorboard"
        ) from None


class TensorBoardLog:
    """metrics.csv's rows as TensorBoard scalars in ``directory`` (``DIR/tensorboard``): the same
    tags, steps and values (each value as metrics.csv holds it, 6 significant digits, stored as
    float32 by the event format), wall times on the run's clock (``start_time`` plus the row's
    ``wall_seconds``), flushed with every ``log`` as metrics.csv is.

    metrics.csv is the record: at start every row it already holds is written into a new event
    file, then the older event files are deleted. A resumed run (whose metrics.csv was cut back to
    its checkpoint) so holds no step twice, nor the steps its checkpoint did not keep; a run
    resumed with TensorBoard for the first time gets its whole history."""

    def __init__(self, directory: str | Path, metrics: MetricsLog) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        older = set(self._event_files())
        self.start_time = metrics.start_time
        self.writer = SummaryWriter(log_dir=str(self.directory), max_queue=1000)
        try:
            for row in _rows(metrics.path):
                self.writer.add_scalar(
                    row["metric"], float(row["value"]), int(row["global_step"]),
                    walltime=self.start_time + float(row["wall_seconds"]),
                )  # fmt: skip
            self.writer.flush()
        except BaseException:
            try:
                self.close()
            except Exception:  # noqa: BLE001, S110 - the first error is the one raised
                pass
            for path in set(self._event_files()) - older:  # no half-written history left
                path.unlink(missing_ok=True)
            raise
        for path in older:
            path.unlink()

    def _event_files(self) -> list[Path]:
        return [p for p in self.directory.glob("events.out.tfevents.*") if p.is_file()]

    def log(self, rows: list[tuple[str, float, float]], step: int) -> None:
        """Write ``MetricsLog.log``'s rows (metric, value, wall_seconds) at ``step``."""
        for key, value, wall in rows:
            self.writer.add_scalar(key, value, step, walltime=self.start_time + wall)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def resolve_wandb_mode(mode: str) -> str:
    """``auto`` -> online when an API key or a stored login exists, else offline."""
    if mode != "auto":
        return mode
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    netrc = Path.home() / ".netrc"
    if netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="ignore"):
        return "online"
    return "offline"


def _wandb_teardown() -> None:
    """Release what a failed ``wandb.init`` left (its service still holds the run id)."""
    try:
        import wandb

        wandb.teardown()
    except Exception:  # noqa: BLE001, S110 - best effort
        pass


class Tracker:
    """Local metrics always; TensorBoard event files and wandb when enabled and working.

    ``tensorboard``: write ``DIR/tensorboard`` event files (``TensorBoardLog``); None (the
    default) takes ``config["tensorboard"]`` (False when the config has no such key)."""

    def __init__(
        self,
        output_dir: str | Path,
        config: Mapping,
        track: bool = False,
        mode: str = "auto",
        project: str = "atari-dqn",
        entity: str | None = None,
        group: str | None = None,
        tags: tuple[str, ...] = (),
        name: str | None = None,
        run_id: str | None = None,
        init_timeout_seconds: float = 30.0,
        wall_offset_seconds: float = 0.0,
        wandb_has_steps_until: int = -1,
        tensorboard: bool | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.metrics = MetricsLog(self.output_dir / "metrics.csv", wall_offset_seconds)
        # A resumed run does not send wandb the steps its history already holds.
        self.wandb_has_steps_until = wandb_has_steps_until
        self.wandb_run = None
        self.wandb_mode = "disabled"
        self.tensorboard: TensorBoardLog | None = None
        if tensorboard is None:
            tensorboard = bool(config.get("tensorboard", False))
        if tensorboard:
            self._start_tensorboard()
        if track:
            self._start_wandb(
                config, mode, project, entity, group, tags, name, run_id, init_timeout_seconds
            )

    def _start_tensorboard(self) -> None:
        try:
            self.tensorboard = TensorBoardLog(self.output_dir / TENSORBOARD_DIR, self.metrics)
        except Exception as error:  # noqa: BLE001 - tracking must never take a run down
            self.tensorboard = None
            message = " ".join(str(error).split())[:300]
            warn(
                f"tensorboard could not start ({type(error).__name__}: {message}); continuing "
                f"with local metrics in {self.metrics.path}"
            )

    def _tensorboard_call(self, fn, *args) -> None:
        if self.tensorboard is None:
            return
        try:
            fn(*args)
        except Exception as error:  # noqa: BLE001
            message = " ".join(str(error).split())[:300]
            warn(
                f"tensorboard stopped working ({type(error).__name__}: {message}); local metrics "
                "continue"
            )
            board, self.tensorboard = self.tensorboard, None
            try:
                board.close()
            except Exception:  # noqa: BLE001, S110 - already reported
                pass

    def _start_wandb(self, config, mode, project, entity, group, tags, name, run_id, timeout):
        """Start wandb; an online start that fails (no network, bad key, slow server) falls back
        to offline mode under the same run id (``wandb sync`` uploads it later), then to local
        metrics only. Each attempt is bounded by ``timeout`` seconds of wandb's own wait."""
        mode = resolve_wandb_mode(mode)
        if mode == "disabled":
            return
        os.environ.setdefault(WEAVE_SWITCH, "true")  # read by wandb.init; a user's value stays
        attempts = [mode, "offline"] if mode == "online" else [mode]
        for attempt in attempts:
            started = time.monotonic()
            try:
                import wandb

                self.wandb_run = wandb.init(
                    project=project, entity=entity, group=group, tags=list(tags) or None,
                    name=name, id=run_id, resume="allow" if run_id else None,
                    config=dict(config), mode=attempt, dir=str(self.output_dir),
                    settings=wandb.Settings(init_timeout=timeout),
                )  # fmt: skip
                self.wandb_run.define_metric("global_step")
                self.wandb_run.define_metric("*", step_metric="global_step")
                self.wandb_mode = attempt
                return
            except Exception as error:  # noqa: BLE001 - tracking must never take a run down
                self.wandb_run = None
                _wandb_teardown()
                message = " ".join(str(error).split())[:300]
                seconds = time.monotonic() - started
                then = (
                    "trying offline mode (upload later with `wandb sync`)"
                    if attempt != attempts[-1]
                    else f"continuing with local metrics in {self.metrics.path}"
                )
                warn(
                    f"wandb {attempt} mode could not start after {seconds:.0f} s "
                    f"({type(error).__name__}: {message}); {then}"
                )

    @property
    def wandb_run_id(self) -> str | None:
        return None if self.wandb_run is None else self.wandb_run.id

    def _wandb_call(self, fn, *args, **kwargs) -> None:
        if self.wandb_run is None:
            return
        try:
            fn(*args, **kwargs)
        except Exception as error:  # noqa: BLE001
            message = " ".join(str(error).split())[:300]
            warn(f"wandb stopped working ({message}); local metrics continue")
            self.wandb_run = None

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        rows = self.metrics.log(metrics, step)
        if self.tensorboard is not None:
            self._tensorboard_call(self.tensorboard.log, rows, step)
        if self.wandb_run is not None and step > self.wandb_has_steps_until:
            self._wandb_call(
                self.wandb_run.log,
                {**{k: float(v) for k, v in metrics.items()}, "global_step": step},
            )

    def log_video(self, path: str | Path, step: int, key: str = "eval/video") -> None:
        if self.wandb_run is None:
            return
        import wandb

        self._wandb_call(
            self.wandb_run.log, {key: wandb.Video(str(path), format="mp4"), "global_step": step}
        )

    def finish(self, summary: Mapping | None = None, exit_code: int = 0) -> None:
        """Flush and close metrics.csv and the TensorBoard events, then finish the wandb run
        (``exit_code`` != 0 marks it failed). Safe to call again."""
        try:
            self.metrics.close()
        finally:
            if self.tensorboard is not None:
                self._tensorboard_call(self.tensorboard.close)
                self.tensorboard = None
            if self.wandb_run is not None:
                if summary:
                    self._wandb_call(self.wandb_run.summary.update, dict(summary))
                if exit_code:
                    self._wandb_call(self.wandb_run.finish, exit_code=exit_code)
                else:
                    self._wandb_call(self.wandb_run.finish)
                self.wandb_run = None
