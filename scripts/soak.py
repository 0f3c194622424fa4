"""Soak test: a long training run with its resident memory sampled every minute.

``python -m scripts.soak --minutes 30 --output-dir runs/soak -- --env Breakout --buffer-size 50000``
starts ``scripts.train`` with the flags after ``--`` (its ``--output-dir`` is DIR/run), reads the
resident set size (VmRSS of the process and its children, from /proc) every ``--every-seconds``,
together with the newest global step in metrics.csv, and after ``--minutes`` stops the run with
SIGINT (it checkpoints and exits 130). Writes DIR/soak.csv (seconds, global_step, rss_mb,
replay_full) and prints the curve. Once the replay is full the curve must be flat: the growth from
the first full sample to the last is reported as ``growth_after_full_mb``. Linux only.
"""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from agents.run import checks
from agents.run.checkpoint import atomic_write
from agents.run.tracking import read_metrics
from scripts._cli import ArgumentParser, cli_main

PROG = "soak"


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants in MiB (0 once it is gone)."""
    total_kb, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total_kb += next(
                int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
            )
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (OSError, StopIteration):
            continue
        todo.extend(int(c) for c in children)
    return total_kb / 1024


def newest_step(run_dir: Path) -> int:
    path = run_dir / "metrics.csv"
    if not path.exists():
        return 0
    return max((s for points in read_metrics(path).values() for s, _ in points), default=0)


@cli_main(PROG)
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    p = ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                       epilog="Flags after -- go to scripts.train; --buffer-size is required "
                       "there.")  # fmt: skip
    p.add_argument("--minutes", type=float, default=30.0,
                   help="how long the run goes before it is stopped with SIGINT")  # fmt: skip
    p.add_argument("--every-seconds", type=float, default=60.0,
                   help="seconds between memory samples")  # fmt: skip
    p.add_argument("--output-dir", type=checks.path_arg, required=True,
                   help="soak.csv, soak.json and the run (DIR/run)")  # fmt: skip
    args = p.parse_args(argv[:split])
    train_args = argv[split + 1 :]
    checks.check_number("--minutes", args.minutes, checks.Range(0.0, low_open=True))
    checks.check_number("--every-seconds", args.every_seconds, checks.Range(0.0, low_open=True))
    checks.check_writable_dir("--output-dir", args.output_dir)
    if "--buffer-size" not in train_args:
        raise ValueError("give the run's --buffer-size after --, so the soak knows when it is full")
    buffer_size = int(train_args[train_args.index("--buffer-size") + 1])
    run_dir = args.output_dir / "run"
    command = [sys.executable, "-m", "scripts.train", *train_args, "--output-dir", str(run_dir),
               "--no-progress"]  # fmt: skip
    process = subprocess.Popen(command)
    start, rows = time.monotonic(), []
    try:
        while process.poll() is None:
            elapsed = time.monotonic() - start
            step = newest_step(run_dir)
            rows.append((round(elapsed), step, round(rss_mb(process.pid), 1), step >= buffer_size))
            print(f"{rows[-1][0]:6d} s  step {step:9d}  rss {rows[-1][2]:8.1f} MiB", flush=True)
            if elapsed >= args.minutes * 60:
                process.send_signal(signal.SIGINT)
                break
            time.sleep(args.every_seconds)
        code = process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(("seconds", "global_step", "rss_mb", "replay_full"))
    writer.writerows(rows)
    atomic_write(args.output_dir / "soak.csv", lambda f: f.write(table.getvalue().encode()))
    full = [r for r in rows if r[3]]
    summary = {
        "minutes": args.minutes, "samples": len(rows), "exit_code": code,
        "peak_rss_mb": max((r[2] for r in rows), default=0.0),
        "growth_after_full_mb": round(full[-1][2] - full[0][2], 1) if len(full) > 1 else None,
        "samples_after_full": len(full),
    }  # fmt: skip
    text = json.dumps(summary, indent=2) + "\n"  # whole or not at all
    atomic_write(args.output_dir / "soak.json", lambda f: f.write(text.encode()))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
