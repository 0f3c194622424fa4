"""SIGINT, SIGTERM and SIGHUP in every phase of a script: one line, exit code 130, 143 or 129,
nothing torn.

A ``SignalGuard`` holds the handlers while a script (or a training run) works. Each phase says
how a signal is taken:

- interruptible (start-up, evaluation, video, loading a checkpoint or a replay): the signal
  raises ``Interrupted`` at once wherever the main thread is; ``finally`` blocks and the atomic
  writers (``agents.run.checkpoint.atomic_write``, ``save_replay``, ``envs.video.Mp4Writer``) remove
  their temporary files on the way out.
- deferred (a training step, a checkpoint and its replay being written, an evaluation's output
  files): the signal is recorded and acted on when the phase ends, so what is being written is
  finished. A second signal raises ``Interrupted`` at once, whatever the phase (atomic writers
  still leave no half-written file).

A signal that comes again within ``REPEAT_WINDOW_S`` of the first is the same stop delivered
twice, not a second one: GNU ``timeout`` sends its signal to the command and then to the
command's process group (the command gets it twice, microseconds apart), and Ctrl-C in a terminal
reaches every process of its group while ``scripts.atari100k`` and the sweeps also send SIGTERM
to each of their runs. Taken as a second signal, such a repeat would cut the stop's own
checkpoint short. A second stop is a signal sent at least ``REPEAT_WINDOW_S`` after the first.

SIGHUP is what a process gets when its terminal goes away (an ssh connection drops, a terminal
window is closed): the run stops as on SIGTERM, with its checkpoint, and exits 129. The terminal
cannot be written to any more (a write fails with EIO), so the handler first points the standard
output and error that were a terminal, and no longer answer as one, at ``os.devnull``
(``detach_from_terminal``); what the run keeps on disk (summary.json's ``stopped_by``,
metrics.csv, the checkpoint) says how it ended. A SIGHUP sent with ``kill`` to a run whose
terminal is still there prints the stop line as usual. A process started with SIGHUP ignored
(``nohup``) keeps it ignored and goes on (``stop_signals``).

``pause_point(name)`` is a test hook: with ``DQN_TEST_PAUSE=name`` (or ``name:N``, the N-th time
the phase is reached) the process writes the file ``DQN_TEST_PAUSE_MARKER`` when it reaches the
phase and waits there for a signal (``DQN_TEST_PAUSE_SIGNALS`` of them, default 1; 60 s at most),
appending ``signal K`` to the file as each arrives in a deferred phase, so a test can send its
signals in exactly that phase.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SIGNAL_EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
"""The signals that stop a script, and its exit code for each (128 + the signal's number)."""
REPEAT_WINDOW_S = 1.0
"""Seconds after the first signal in which another one (SIGINT, SIGTERM or SIGHUP) is the same
stop delivered again (see the module docstring)."""
_TERMINALS = {fd for fd in (1, 2) if os.isatty(fd)}
"""Standard output and error as they were when this module was imported: whether each was a
terminal (once the terminal has hung up, ``isatty`` says no)."""


def stop_signals() -> tuple[int, ...]:
    """The signals to take as a stop: SIGINT, SIGTERM and SIGHUP, less SIGHUP when the process
    ignores it (started under ``nohup``: it is to outlive its terminal)."""
    ignored = signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    return tuple(sig for sig in SIGNAL_EXIT_CODES if not (sig == signal.SIGHUP and ignored))


def detach_from_terminal() -> None:
    """Point the standard output and error that were a terminal and no longer answer as one (it
    hung up: a write would fail with EIO, and a print must not end a run that is checkpointing)
    at ``os.devnull``. A terminal that is still there (SIGHUP sent with ``kill``) is kept, and so
    are files and pipes."""
    gone = []
    for fd in sorted(_TERMINALS):
        try:
            if not os.isatty(fd):
                gone.append(fd)
        except OSError:
            gone.append(fd)
    if not gone:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in gone:
            with contextlib.suppress(OSError):
                os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class Interrupted(BaseException):  # noqa: N818 - a stop, like KeyboardInterrupt
    """A SIGINT, SIGTERM or SIGHUP that ends the current phase at once; ``second``: a second signal,
    which may have cut a deferred phase (a training step, a write) short."""

    def __init__(self, signum: int, second: bool = False) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum, self.second = signum, second

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return SIGNAL_EXIT_CODES[self.signum]


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


_ACTIVE: list[SignalGuard] = []  # the installed guard (the pause hook waits on it)


class SignalGuard:
    """SIGINT/SIGTERM/SIGHUP handlers (``stop_signals``), installed by ``with guard:``
    (re-entrant: an inner ``with`` of the same guard keeps them); interruptible unless inside
    ``deferred()``. ``received``: the first signal received, or None; ``count``: the stops
    received (a repeat within ``REPEAT_WINDOW_S`` of the first is not one); ``repeats``: the
    repeats ignored."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.received_at = 0.0  # time.monotonic() when the first signal was handled
        self.count = 0
        self.repeats = 0
        self.interruptible = True
        self._depth = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SignalGuard:
        if self._depth == 0 and threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.getsignal(sig) for sig in stop_signals()}
            for sig in self._previous:
                signal.signal(sig, self._handle)
            _ACTIVE.append(self)
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._previous:
            for sig, handler in self._previous.items():
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)
            self._previous = {}
            _ACTIVE.remove(self)

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:
            detach_from_terminal()
        now = time.monotonic()
        if self.received is not None and now - self.received_at < REPEAT_WINDOW_S:
            self.repeats += 1  # the first signal delivered again: the stop already under way
            return
        self.count += 1
        if self.received is None:
            self.received, self.received_at = signum, now
            if not self.interruptible:
                return  # acted on when the deferred phase ends
            raise Interrupted(signum)
        raise Interrupted(self.received, second=True)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A phase that a first signal does not cut: it is recorded for the caller to act on."""
        before, self.interruptible = self.interruptible, False
        try:
            yield
        finally:
            self.interruptible = before

    @contextlib.contextmanager
    def interruptible_phase(self) -> Iterator[None]:
        """A phase that a signal ends at once (one already received ends it before it starts)."""
        before, self.interruptible = self.interruptible, True
        try:
            if self.received is not None:
                raise Interrupted(self.received)
            yield
        finally:
            self.interruptible = before


_PAUSES: dict[str, int] = {}


def pause_point(phase: str) -> None:
    """Test hook (see the module docstring); does nothing unless ``DQN_TEST_PAUSE`` names
    ``phase``."""
    wanted = os.environ.get("DQN_TEST_PAUSE")
    if not wanted or wanted.split(":")[0] != phase:
        return
    _PAUSES[phase] = _PAUSES.get(phase, 0) + 1
    nth = int(wanted.split(":")[1]) if ":" in wanted else 1
    if _PAUSES[phase] != nth:
        return
    marker = os.environ.get("DQN_TEST_PAUSE_MARKER")
    if marker:
        Path(marker).write_text(f"{phase} {os.getpid()}\n")
    wanted_signals = int(os.environ.get("DQN_TEST_PAUSE_SIGNALS", "1"))
    seen = 0
    deadline = time.monotonic() + 60.0  # a hang guard: the test sends a signal long before
    while time.monotonic() < deadline:
        guard = _ACTIVE[-1] if _ACTIVE else None
        count = guard.count if guard is not None else 0
        if count != seen and marker:  # a deferred phase: tell the test the signal came
            with open(marker, "a") as f:
                f.write(f"signal {count}\n")
            seen = count
        if guard is not None and guard.received is not None and count >= wanted_signals:
            return  # a deferred phase goes on: the signal waits for its work to finish
        time.sleep(0.01)  # an interruptible phase: the handler raises here
