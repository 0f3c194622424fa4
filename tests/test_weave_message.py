"""wandb's W&B Weave note stays away: wandb 0.31 looks for LLM libraries among the imported
module names, takes this package's ``agents`` for one and prints "Detected [agents] in use" and an
advert for LLM tracing; the Tracker turns that integration off (``WANDB_DISABLE_WEAVE``) unless
the user's environment sets it. Checked on the whole output of a process running an offline
wandb run, wandb's service included."""

import os
import subprocess
import sys
from pathlib import Path

from agents.run.tracking import WEAVE_SWITCH

ROOT = Path(__file__).resolve().parents[1]
RUN = """
import sys
from agents.run.tracking import Tracker

tracker = Tracker(sys.argv[1], {"lr": 1e-4}, track=True, mode="offline", project="tests")
assert tracker.wandb_mode == "offline", tracker.wandb_mode
tracker.log({"charts/episodic_return": 1.0}, step=10)
tracker.finish()
"""


def offline_run_output(tmp_path, user_setting):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WANDB_") or k == "WANDB_CONFIG_DIR"}  # fmt: skip
    env.update(WANDB_MODE="offline", HOME=str(tmp_path))
    if user_setting is not None:
        env[WEAVE_SWITCH] = user_setting
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(tmp_path / "run")], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    return done.stdout + done.stderr


def test_an_offline_wandb_run_prints_no_weave_note(tmp_path):
    output = offline_run_output(tmp_path, None)
    assert "wandb" in output  # wandb's own lines are there: it did speak
    assert "Weave" not in output and "Detected [" not in output, output


def test_a_users_own_weave_setting_is_kept(tmp_path):
    # WANDB_DISABLE_WEAVE=false asks for wandb's default: its note comes back
    output = offline_run_output(tmp_path, "false")
    assert "Detected [agents] in use." in output and "W&B Weave" in output, output
