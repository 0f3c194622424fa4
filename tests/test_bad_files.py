"""Every value and file the scripts other than train take is checked before any work starts:
evaluate, export_pretrained, train_supervised, plot
and aggregate flags; evaluate's outputs probed before the first episode; checkpoints, trajectory
.npz files, summary.json, config.json and metrics.csv checked field by field. Each case: exit code
2, one stderr line naming the flag or file, the value and what is accepted, nothing left on disk,
no episode played and no figure drawn."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import struct
import typing
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.dqn.agent import build_q_network
from agents.dqn.config import TrainConfig
from agents.run import file_checks
from agents.run.checkpoint import config_to_dict, save_checkpoint
from agents.supervised.classifier import SupervisedConfig
from agents.supervised.trajectories import Trajectories, load_trajectories, trajectory_arrays
from scripts import aggregate, evaluate, plot, train_supervised


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def listing(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# --- checkpoints and evaluate -------------------------------------------------------------------

CONFIG = TrainConfig(env="fake-pixels")
NET = build_q_network((4, 84, 84), 2, CONFIG.hidden, CONFIG)


def good_state(env_id: str = "fake-pixels", num_actions: int = 2) -> dict:
    return {"config": config_to_dict(CONFIG.replace(env=env_id)), "env_id": env_id,
            "obs_shape": [4, 84, 84], "num_actions": num_actions,
            "model": {k: v.clone() for k, v in NET.state_dict().items()},
            "global_step": 0}  # fmt: skip


@pytest.fixture
def no_play(monkeypatch):
    """Fail the test if an episode is played."""

    def played(*args, **kwargs):
        raise AssertionError("an episode was played")

    monkeypatch.setattr(evaluate, "evaluate", played)
    monkeypatch.setattr(evaluate, "recorded_episodes", played)


def run_evaluate(tmp_path, capsys, state: dict, *args: str) -> tuple[int, str]:
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoints", state, 0)
    out = tmp_path / "out"
    argv = (
        [str(run), *args] if "--output-dir" in args else [str(run), *args, "--output-dir", str(out)]
    )
    before = listing(tmp_path)
    rc = evaluate.main(argv)
    err = capsys.readouterr().err.strip()
    assert listing(tmp_path) == before  # nothing written, not even an empty directory
    return rc, err


def _nan(key: str, value: float = float("nan")):
    def change(state):
        first = next(iter(state[key]))
        state[key][first] = state[key][first].clone().contiguous()
        state[key][first].view(-1)[0] = value

    return change


def _set(key, value):
    def change(state):
        state[key] = value

    return change


def _config(**fields):
    def change(state):
        state["config"] = {**state["config"], **fields}

    return change


BAD_CHECKPOINTS = [
    (lambda s: s.pop("env_id"), "lacks env_id; not a checkpoint of this package"),
    (lambda s: s.pop("model"), "lacks model"),
    (_set("env_id", 5), "field 'env_id' is 5; expected the env id as a string"),
    (_set("obs_shape", [4, 84]), "field 'obs_shape' is [4, 84]; expected an observation shape"),
    (_set("obs_shape", [0, 84, 84]), "field 'obs_shape' is [0, 84, 84]"),
    (_set("obs_shape", "4x84x84"), "field 'obs_shape' is '4x84x84'"),
    (_set("obs_shape", [100_000] * 3), "at most 10,000,000 elements"),
    (_set("num_actions", 0), "field 'num_actions' is 0; expected an integer in [1, 4096]"),
    (_set("num_actions", 10**6), "field 'num_actions' is 1000000"),
    (_set("num_actions", "2"), "field 'num_actions' is '2'"),
    (_set("config", "gamma=0.99"), "the config is a str, not an object"),
    (_config(total_steps="abc"), "config field 'total_steps' is 'abc'; expected an integer"),
    (_config(gamma=float("nan")), "config field 'gamma' is nan; expected finite numbers"),
    (_config(hidden=[64, "x"]), "config field 'hidden' is [64, 'x']; expected a list of integers"),
    (_config(protocol="deepmind"), "config field 'protocol' is 'deepmind'; expected one of nature"),
    (_set("model", {}), "field 'model' is {}; expected a state_dict: names and tensors"),
    (_set("model", {"w": [1.0, 2.0]}), "field 'model' is {'w': [1.0, 2.0]}; expected a state_dict"),
    (_nan("model"), "its model network holds 1 NaN or infinite value(s) (first in"),
    (_nan("model", float("-inf")), "its model network holds 1 NaN or infinite value(s)"),
    (_set("kind", "policy"), "field 'kind' is 'policy'; expected q-network or classifier"),
    (_set("kind", "classifier"), "a classifier checkpoint without its 'classifier' settings"),
    (_set("global_step", -5), "field 'global_step' is -5; expected an integer >= 0"),
    (_set("global_step", "5"), "field 'global_step' is '5'"),
    (lambda s: s.update(target=dict(s["model"])) or _nan("target")(s), "its target network holds"),
    (
        _set("optimizer", {"state": {0: {"exp_avg": torch.tensor([float("nan")])}}}),
        "its optimizer state holds 1 NaN or infinite value(s) (first in 'exp_avg')",
    ),
    (_set("replay", "../../etc"), "field 'replay' is '../../etc'; expected the name of a saved"),
    (_set("recent_returns", [1.0, float("nan")]), "field 'recent_returns' is [1.0, nan]"),
    (_set("torch_rng", "seed"), "field 'torch_rng' is 'seed'; expected a generator state"),
    (_set("epsilon", 2.0), "field 'epsilon': 2.0 is not accepted; use a number in [0, 1]"),
    (_set("updates_due", float("inf")), "field 'updates_due': inf is not accepted; use a finite"),
]


@pytest.mark.parametrize(("change", "words"), BAD_CHECKPOINTS, ids=[w for _, w in BAD_CHECKPOINTS])
def test_a_checkpoint_is_checked_field_by_field_before_it_is_played(
    tmp_path, capsys, no_play, change, words
):
    state = good_state()
    change(state)
    rc, err = run_evaluate(tmp_path, capsys, state)
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("evaluate: error: checkpoint ") and "step_000000000000.pt" in err
    assert words in err, err


def test_check_checkpoint_accepts_a_good_state():
    file_checks.check_checkpoint(good_state(), "x.pt")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--output-dir", "{tmp}/file/out"], "--output-dir: '{tmp}/file/out' cannot be written: "),
        (["--output-dir", "{tmp}/file"], "--output-dir: '{tmp}/file' is a file, not a directory"),
        (["--output-dir", ""], "argument --output-dir: '' is not accepted (empty); give a path"),
        (["--output-dir", "/"], "--output-dir: '/' is not accepted (a filesystem root)"),
        (["--record", "{tmp}/file/videos"], "--record: '{tmp}/file/videos' cannot be written"),
        (["--record", "{tmp}/file"], "--record: '{tmp}/file' is a file, not a directory"),
        (["--save-trajectories", "{tmp}/file/t.npz"], "--save-trajectories: '{tmp}/file/t.npz'"),
        (["--save-trajectories", "{tmp}"], "--save-trajectories: '{tmp}' is a directory"),
        (["--save-trajectories", ""], "argument --save-trajectories: '' is not accepted (empty)"),
    ],
)
def test_evaluate_probes_its_outputs_before_the_first_episode(
    tmp_path, capsys, no_play, args, words
):
    (tmp_path / "file").write_text("a file, not a directory")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    rc, err = run_evaluate(tmp_path, capsys, good_state(), *args)
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert words.replace("{tmp}", str(tmp_path)) in err, err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_evaluate_refuses_a_read_only_output_directory(tmp_path, capsys, no_play):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        rc, err = run_evaluate(tmp_path, capsys, good_state(), "--output-dir", str(locked / "o"))
    finally:
        locked.chmod(0o700)
    assert rc == 2 and "cannot be written (Permission denied)" in err


BAD_EVALUATE_FLAGS = [
    (["--episodes", "0"], "--episodes: 0 is not accepted; use an integer in [1, 1000000]"),
    (["--episodes", "10000000"], "--episodes: 10000000 is not accepted"),
    (["--episodes", "nan"], "argument --episodes: invalid int value: 'nan' (see evaluate --help)"),
    (["--epsilon", "nan"], "--epsilon: nan is not accepted; use a finite number in [0, 1]"),
    (["--epsilon", "inf"], "--epsilon: inf is not accepted; use a finite number in [0, 1]"),
    (["--epsilon=-inf"], "--epsilon: -inf is not accepted; use a finite number in [0, 1]"),
    (["--epsilon", "1.5"], "--epsilon: 1.5 is not accepted; use a number in [0, 1]"),
    (["--max-episode-frames", "0"], "--max-episode-frames: 0 is not accepted; use an integer in"),
    (["--max-episode-frames", str(2**31)], "use an integer in [1, 2147483647]"),
    (["--seed", "-1"], "--seed: -1 is not accepted; use an integer >= 0"),
    (["--seed", str(2**63)], f"--seed: {2**63} is not accepted"),
    (["--device", "mps"], "--device: 'mps' is not accepted; use auto, cpu, cuda or cuda:N"),
    (["--device", "cuda:99"], "--device: 'cuda:99' was asked for but"),
    (["--env", "Pendulum-v1"], "--env: 'Pendulum-v1' has continuous actions"),
    (["--bogus"], "unrecognized arguments: --bogus (see evaluate --help)"),
]


@pytest.mark.parametrize(
    ("args", "words"), BAD_EVALUATE_FLAGS, ids=[" ".join(a) for a, _ in BAD_EVALUATE_FLAGS]
)
def test_every_evaluate_flag_is_checked(tmp_path, capsys, no_play, args, words):
    rc, err = run_evaluate(tmp_path, capsys, good_state(), *args)
    assert rc == 2 and len(err.splitlines()) == 1 and words in err, err


def test_evaluate_refuses_an_atari_seed_beyond_32_bits(tmp_path, capsys, no_play):
    state = good_state("Pong", 6)
    state["model"] = build_q_network((4, 84, 84), 6, CONFIG.hidden, CONFIG).state_dict()
    rc, err = run_evaluate(tmp_path, capsys, state, "--seed", str(2**31 - 5), "--episodes", "3")
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert (
        "--seed: 2147483643 is not accepted for the Atari game 'Pong': ale-py takes 32-bit" in err
    )
    assert "use an integer in [0, 2,147,483,636]" in err


# --- trajectory files ---------------------------------------------------------------------------


def good_arrays(obs_shape=(4,), dtype=np.float32) -> dict[str, np.ndarray]:
    steps = 6
    t = Trajectories(
        observations=np.ones((steps, *obs_shape), dtype=dtype),
        actions=np.array([0, 1, 0, 1, 1, 0]), rewards=np.ones(steps, np.float32),
        episode=np.array([0, 0, 0, 1, 1, 1]), env_id="fake-pixels", protocol="nature",
        epsilon=0.05, action_meanings=("LEFT", "RIGHT"),
    )  # fmt: skip
    return trajectory_arrays(t)


def write_npz(path: Path, arrays: dict, raw: dict[str, bytes] | None = None) -> Path:
    """An npz written member by member (deflated), with ``raw`` members' bytes as given."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(value), allow_pickle=True)
            zf.writestr(f"{key}.npy", buffer.getvalue())
        for key, data in (raw or {}).items():
            zf.writestr(f"{key}.npy", data)
    return path


def declare_size(path: Path, member: str, size: int) -> None:
    """Patch the central directory so ``member`` declares ``size`` uncompressed bytes."""
    data = bytearray(path.read_bytes())
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        name_length = struct.unpack_from("<H", data, pos + 28)[0]
        if data[pos + 46 : pos + 46 + name_length].decode() == member:
            struct.pack_into("<I", data, pos + 24, size)
        pos = data.find(b"PK\x01\x02", pos + 46)
    path.write_bytes(bytes(data))


def _header_only(shape) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "|u1", "fortran_order": False, "shape": shape}
    )
    return buffer.getvalue() + b"\0" * 10


def _with(**changes):
    return lambda arrays: {**arrays, **changes}


def _without(key):
    return lambda arrays: {k: v for k, v in arrays.items() if k != key}


BAD_NPZ = [
    (
        _with(observations=np.array(3.0)),
        "its array observations is 0-d float64; expected 2- to 4-d",
    ),
    (_with(actions=np.array(1)), "its array actions is 0-d int64; expected 1-d integer"),
    (_with(actions=np.zeros(6)), "its array actions is 1-d float64; expected 1-d integer"),
    (_with(rewards=np.array(["a"] * 6)), "its array rewards is 1-d <U1; expected 1-d float"),
    (_with(env_id=np.array(5)), "its array env_id is 0-d int64; expected 0-d string"),
    (_with(num_actions=np.array([2])), "its array num_actions is 1-d int64; expected 0-d"),
    (_with(action_meanings=np.array("LEFT")), "its array action_meanings is 0-d"),
    (_with(episode_start=np.ones(6)), "its array episode_start is 1-d float64; expected 1-d bool"),
    (_with(format_version=np.array(2)), "format 2 is newer than 1"),
    (_with(observations=np.ones((6, 84, 84), np.uint8)), "its observations are (84, 84); expected"),
    (_with(observations=np.ones((6, 0), np.float32)), "its observations are (0,)"),
    (_with(actions=np.array([0, 1, 0, 1, 1])), "its per-step arrays differ in length"),
    (
        _with(rewards=np.array([1, np.nan, 1, 1, 1, 1], np.float32)),
        "1 NaN or infinite value(s) in its rewards",
    ),
    (
        _with(episode_returns=np.array([3.0, np.inf])),
        "1 NaN or infinite value(s) in its episode_returns",
    ),
    (_with(epsilon=np.array(np.nan)), "1 NaN or infinite value(s) in its epsilon"),
    (_with(epsilon=np.array(1.5)), "its epsilon 1.5 is not in [0, 1]"),
    (
        _with(observations=np.full((6, 4), np.inf, np.float32)),
        "24 NaN or infinite value(s) in its observations",
    ),
    (_with(observations=np.array([None] * 6, dtype=object)), "its array observations holds Python"),
    (_with(action_meanings=np.array(["x"] * 5000)), "it names 5000 actions; expected 1 to 4096"),
    (_without("episode"), "it lacks the arrays episode (expected observations"),
]


@pytest.mark.parametrize(("change", "words"), BAD_NPZ, ids=[w[:50] for _, w in BAD_NPZ])
def test_a_trajectory_file_is_checked_array_by_array(tmp_path, change, words):
    path = write_npz(tmp_path / "t.npz", change(good_arrays()))
    with pytest.raises(ValueError) as error:
        load_trajectories(path)
    message = str(error.value)
    assert message.startswith(f"trajectory file {path} is not usable: ") and "\n" not in message
    assert words in message, message


@pytest.mark.parametrize(("shape", "dtype"), [((4,), np.float32), ((4, 84, 84), np.uint8)])
def test_a_good_trajectory_file_loads(tmp_path, shape, dtype):
    t = load_trajectories(write_npz(tmp_path / "t.npz", good_arrays(shape, dtype)))
    assert (t.num_steps, t.num_episodes, t.observations.shape[1:]) == (6, 2, shape)


def test_a_member_that_declares_more_than_deflate_can_hold_is_refused_unopened(tmp_path):
    path = write_npz(tmp_path / "bomb.npz", good_arrays((4, 84, 84), np.uint8))
    assert load_trajectories(path).num_steps == 6
    declare_size(path, "observations.npy", 0xFFFFFFF0)  # 4.29 GB from a few hundred bytes
    bomb = r"observations declares 4.29 GB from .* more than deflate data can hold \(a zip bomb"
    with pytest.raises(ValueError, match=bomb):
        load_trajectories(path)


def test_a_header_that_lies_about_its_size_is_refused_before_allocation(tmp_path):
    arrays = _without("observations")(good_arrays())
    raw = {"observations": _header_only((10**6, 4, 84, 84))}
    path = write_npz(tmp_path / "lie.npz", arrays, raw)
    with pytest.raises(ValueError, match=r"its array observations declares shape \(1000000, 4, "
                       r"84, 84\) of uint8 \(28.22 GB\) but holds 10 bytes"):  # fmt: skip
        load_trajectories(path)


def test_arrays_that_need_more_memory_than_available_are_refused(tmp_path, monkeypatch):
    path = write_npz(tmp_path / "big.npz", good_arrays((4, 84, 84), np.uint8))
    monkeypatch.setattr(file_checks, "available_memory", lambda device: 10_000)
    with pytest.raises(ValueError, match=r"its arrays need 169.6 kB of memory, more than the "
                       r"10.0 kB available"):  # fmt: skip
        load_trajectories(path)


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"not a zip", "it is not a readable npz file (BadZipFile)"), (b"", "not a readable npz")],
)
def test_a_file_that_is_not_an_npz_is_refused(tmp_path, content, words):
    (tmp_path / "t.npz").write_bytes(content)
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_trajectories(tmp_path / "t.npz")


def test_train_supervised_refuses_a_bad_trajectory_file_in_one_line(tmp_path, capsys):
    path = write_npz(
        tmp_path / "t.npz", _with(rewards=np.full(6, np.nan, np.float32))(good_arrays())
    )
    out = tmp_path / "clone"
    rc = train_supervised.main(
        ["--dataset", f"trajectories:{path}", "--output-dir", str(out), "--no-progress"]
    )
    err = one_line(capsys)
    assert rc == 2 and "6 NaN or infinite value(s) in its rewards" in err and not out.exists()


# --- train_supervised flags ---------------------------------------------------------------------


def _supervised_fields(kind) -> list[str]:
    hints = typing.get_type_hints(SupervisedConfig)
    return sorted(
        f.name
        for f in dataclasses.fields(SupervisedConfig)
        if kind in (typing.get_args(hints[f.name]) or (hints[f.name],))
    )


@pytest.mark.parametrize("name", _supervised_fields(float))
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_every_float_flag_of_train_supervised_refuses_nan_and_infinities(
    tmp_path, capsys, name, value
):
    flag = f"--{name.replace('_', '-')}"
    out = tmp_path / "run"
    rc = train_supervised.main(["--dataset", "xor", f"{flag}={value}", "--output-dir", str(out)])
    err = one_line(capsys)
    assert rc == 2 and f"{flag}: {value} is not accepted; use a finite number" in err, err
    assert not out.exists()


@pytest.mark.parametrize("name", _supervised_fields(int) + ["hidden"])
def test_every_integer_flag_of_train_supervised_refuses_values_beyond_int64(tmp_path, capsys, name):
    flag = f"--{name.replace('_', '-')}"
    out = tmp_path / "run"
    rc = train_supervised.main(["--dataset", "xor", flag, str(2**63), "--output-dir", str(out)])
    err = one_line(capsys)
    assert rc == 2 and f"{flag}: {2**63} is not accepted; use an integer" in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--seed", "-1"], "--seed: -1 is not accepted; use an integer >= 0"),
        (["--hidden", "8", "0"], "--hidden: 0 is not accepted; use an integer >= 1"),
        (["--max-shift-pixels", "-1"], "--max-shift-pixels: -1 is not accepted"),
        (["--weight-decay", "-0.1"], "--weight-decay: -0.1 is not accepted; use a number >= 0"),
        (["--epochs", "abc"], "--epochs: 'abc' is not accepted; use an integer or none"),
        (["--output-dir", "/"], "--output-dir: '/' is not accepted (a filesystem root)"),
        (["--hidden", "100000000", "100000"], "--hidden: [100000000, 100000] is not accepted here"),
    ],
)
def test_train_supervised_values_are_checked_before_any_work(tmp_path, capsys, args, words):
    out = tmp_path / "run"
    argv = ["--dataset", "xor", "--no-progress", "--output-dir", str(out), *args]
    rc = train_supervised.main(argv)
    err = one_line(capsys)
    assert rc == 2 and words in err and not out.exists(), err
    assert "Traceback" not in err


# --- plot and aggregate: files, duplicates, flags ---------------------------------------------

METRICS = "global_step,wall_seconds,metric,value\n" + "".join(
    f"{100 * k},{k}.0,charts/episodic_return,{k}\n" for k in range(1, 6)
) + "500,5.0,eval/mean_return,4\n"  # fmt: skip


def make_run(root: Path, name: str = "pong", seed: int = 0, **files: str) -> Path:
    run = root / name
    run.mkdir(parents=True)
    contents = {
        "config.json": json.dumps({"env": "Pong", "preset": "smoke", "seed": seed}),
        "metrics.csv": METRICS,
        "summary.json": json.dumps({"env": "Pong", "seed": seed, "eval_mean_return": -3.05}),
    }
    contents.update({k.replace("_", "."): v for k, v in files.items()})
    for file, text in contents.items():
        if text is not None:
            (run / file).write_text(text)
    return run


BAD_RUN_FILES = [
    ("metrics_csv", "", "metrics {run}/metrics.csv is empty"),
    ("metrics_csv", "step,value\n1,2\n", "metrics {run}/metrics.csv: its header is 'step,value'"),
    ("metrics_csv", METRICS.replace("200,2.0", "x,2.0"), "line 3 'x,2.0,charts/episodic_return"),
    ("metrics_csv", METRICS.replace(",3\n", ",nan\n"), "line 4 '300,3.0,charts/episodic_return,"),
    ("metrics_csv", METRICS.replace(",3\n", ",inf\n"), "is not a row of an integer global_step"),
    ("metrics_csv", METRICS.replace("300,3.0", "300,3.0,extra"), "line 4 "),
    ("metrics_csv", METRICS.replace("400,", "50,"), "logs charts/episodic_return at global step"),
    ("metrics_csv", "global_step,wall_seconds,metric,value\n", "holds no charts/episodic_return"),
    ("metrics_csv", METRICS.split("\n")[0] + "\n1,1,losses/td_loss,0.5\n", "nothing to draw"),
    ("config_json", "[1]", "config {run}/config.json holds a JSON list; a JSON object is expected"),
    ("config_json", '{"env": 3}', "config {run}/config.json: config field 'env' is 3; expected a"),
    ("config_json", '{"gamma": NaN}', "config {run}/config.json holds NaN where only finite"),
    ("config_json", "{", "config {run}/config.json is not valid JSON"),
    ("summary_json", '{"env": "Pong", "eval_human_normalized": "high"}',
     "summary {run}/summary.json: field 'eval_human_normalized' is 'high'; expected a number"),
    ("summary_json", '{"env": "Pong", "eval_mean_return": Infinity}', "holds Infinity where"),
    ("summary_json", '{"env": ""}', "summary {run}/summary.json: field 'env' is ''"),
    ("summary_json", '{"env": "Pong", "eval_returns": [1, "a"]}', "field 'eval_returns'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("file", "text", "words"), BAD_RUN_FILES, ids=[f"{f}:{t[:30]}" for f, t, _ in BAD_RUN_FILES]
)
def test_plot_refuses_a_malformed_or_empty_file_in_one_line_naming_it(
    tmp_path, capsys, file, text, words
):
    good = make_run(tmp_path, "good", seed=1)
    run = make_run(tmp_path, **{file: text})
    out = tmp_path / "plots"
    rc = plot.main([str(good), str(run), "--output-dir", str(out)])
    err = one_line(capsys)
    assert rc == 2 and words.replace("{run}", str(run)) in err, err
    assert not out.exists()  # no figure drawn


def test_a_torn_last_metrics_line_is_skipped(tmp_path, capsys):
    run = make_run(tmp_path, metrics_csv=METRICS + "600,6.0,charts/episodic_ret")
    assert plot.main([str(run), "--output-dir", str(tmp_path / "plots")]) == 0
    assert file_checks.read_metrics_checked(run / "metrics.csv")["charts/episodic_return"][-1] == (
        500,
        5.0,
    )


@pytest.mark.parametrize("how", ["same path", "other spelling", "symlink"])
def test_plot_refuses_the_same_run_given_twice(tmp_path, capsys, how):
    run = make_run(tmp_path)
    (tmp_path / "x").mkdir()
    other = {"same path": run, "other spelling": tmp_path / "x" / ".." / "pong",
             "symlink": tmp_path / "link"}[how]  # fmt: skip
    if how == "symlink":
        other.symlink_to(run)
    out = tmp_path / "plots"
    rc = plot.main([str(run), str(other), "--output-dir", str(out)])
    err = one_line(capsys)
    assert rc == 2 and f"{other}: the same run as {run}" in err and "given twice" in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--window", "0"], "--window: 0 is not accepted; use an integer >= 1"),
        (["--window", "nan"], "argument --window: invalid int value: 'nan' (see plot --help)"),
        (
            ["--bootstrap-reps", "0"],
            "--bootstrap-reps: 0 is not accepted; use an integer in [1, 1000000]",
        ),
        (["--bootstrap-reps", str(10**9)], "--bootstrap-reps: 1000000000 is not accepted"),
        (["--seed", "-1"], "--seed: -1 is not accepted; use an integer >= 0"),
        (["--x", "seconds"], "argument --x: invalid choice: 'seconds'"),
        (["--output-dir", ""], "argument --output-dir: '' is not accepted (empty)"),
        (["--output-dir", "/"], "--output-dir: '/' is not accepted (a filesystem root)"),
        (["--output-dir", "{tmp}/pong/metrics.csv"], "is a file, not a directory"),
    ],
)
def test_plot_flags_are_checked_before_drawing(tmp_path, capsys, args, words):
    run = make_run(tmp_path)
    before = listing(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    argv = [str(run), *args] if "--output-dir" in args else [str(run), *args, "--output-dir",
                                                             str(tmp_path / "plots")]  # fmt: skip
    rc = plot.main(argv)
    err = one_line(capsys)
    assert rc == 2 and words in err, err
    assert listing(tmp_path) == before


BAD_SUMMARIES = [
    ('{"env": "Pong", "eval_mean_return": NaN}', "summary {run}/summary.json holds NaN where only"),
    ('{"env": "Pong", "eval_mean_return": 1e999}', "holds 1e999 where only finite numbers"),
    ('["Pong"]', "summary {run}/summary.json holds a JSON list; a JSON object is expected"),
    ('{"env": ["Pong"]}', "summary {run}/summary.json: field 'env' is ['Pong']; expected the env"),
    ('{"env": "Pong", "eval_mean_return": "-3"}', "field 'eval_mean_return' is '-3'; expected a"),
    ('{"env": "Pong", "seed": -1, "eval_mean_return": 1}', "field 'seed' is -1; expected an int"),
    ('{"env": "Pong", "mean_return": 1, "returns": [1, null]}', "field 'returns' is [1, None]"),
    ("{not json", "summary {run}/summary.json is not valid JSON"),
    ("\udcff", "summary {run}/summary.json cannot be read"),
]


@pytest.mark.parametrize(("text", "words"), BAD_SUMMARIES, ids=[t[:40] for t, _ in BAD_SUMMARIES])
def test_aggregate_refuses_a_malformed_summary_in_one_line_naming_it(tmp_path, capsys, text, words):
    run = tmp_path / "run"
    run.mkdir()
    if text == "\udcff":
        (run / "summary.json").write_bytes(b"\xff\xfe{")
    else:
        (run / "summary.json").write_text(text)
    out = tmp_path / "agg.json"
    rc = aggregate.main([str(run), "--json", str(out)])
    err = one_line(capsys)
    assert rc == 2 and words.replace("{run}", str(run)) in err, err
    assert not out.exists()


def test_aggregate_counts_a_run_once(tmp_path, capsys):
    run = make_run(tmp_path)
    (tmp_path / "x").mkdir()
    evaluation = run / "evaluation"
    evaluation.mkdir()
    checkpoint = run / "checkpoints" / "step_000000001000.pt"
    (evaluation / "summary.json").write_text(
        json.dumps({"env": "Pong", "mean_return": -1.0, "checkpoint": str(checkpoint)})
    )
    for second in (run, tmp_path / "x" / ".." / "pong", evaluation):
        rc = aggregate.main([str(run), str(second)])
        err = one_line(capsys)
        assert rc == 2 and f"{second}: the same run as {run}" in err, err
        assert "given twice; each run counts once" in err
    other = make_run(tmp_path, "pong-seed2", seed=2)
    assert aggregate.main([str(run), str(other)]) == 0


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["--bootstrap-reps", "0"],
            "--bootstrap-reps: 0 is not accepted; use an integer in [1, 1000000]",
        ),
        (
            ["--bootstrap-reps", "nan"],
            "argument --bootstrap-reps: invalid int value: 'nan' (see aggregate --help)",
        ),
        (["--seed", "-3"], "--seed: -3 is not accepted; use an integer >= 0"),
        (["--json", ""], "argument --json: '' is not accepted (empty); give a path"),
        (["--json", "{tmp}"], "--json: '{tmp}' is a directory; give a file path"),
        (["--json", "{tmp}/pong/summary.json/x"], "cannot be written: {tmp}/pong/summary.json"),
    ],
)
def test_aggregate_flags_are_checked_before_any_work(tmp_path, capsys, args, words):
    run = make_run(tmp_path)
    before = listing(tmp_path)
    rc = aggregate.main([str(run), *[a.replace("{tmp}", str(tmp_path)) for a in args]])
    err = one_line(capsys)
    assert rc == 2 and words.replace("{tmp}", str(tmp_path)) in err, err
    assert listing(tmp_path) == before


# --- the other scripts --------------------------------------------------------------------------

OTHER_SCRIPTS = [
    ("soak", ["--minutes", "nan", "--output-dir", "{tmp}/s"], "--minutes: nan is not accepted"),
    ("soak", ["--every-seconds", "inf", "--output-dir", "{tmp}/s"], "--every-seconds: inf is not"),
    ("soak", ["--output-dir", "/"], "--output-dir: '/' is not accepted (a filesystem root)"),
    ("ablation", ["--jobs", "0"], "--jobs: 0 is not accepted; use an integer in [1, 1024]"),
    ("ablation", ["--seeds", "1", "-2"], "--seeds: -2 is not accepted; use an integer >= 0"),
    ("ablation", ["--output-dir", ""], "argument --output-dir: '' is not accepted (empty)"),
    ("benchmark", ["envs", "--steps", "0"], "--steps: 0 is not accepted; use an integer >= 1"),
    ("benchmark", ["envs", "--steps", "nan"], "argument --steps: invalid int value: 'nan'"),
    ("benchmark", ["envs", "--json", "{tmp}"], "--json: '{tmp}' is a directory; give a file path"),
]


@pytest.mark.parametrize(
    ("script", "args", "words"),
    OTHER_SCRIPTS,
    ids=[f"{s} {' '.join(a)}" for s, a, _ in OTHER_SCRIPTS],
)
def test_the_other_scripts_check_their_numbers_and_paths(tmp_path, capsys, script, args, words):
    import importlib

    main = importlib.import_module(f"scripts.{script}").main
    rc = main([a.replace("{tmp}", str(tmp_path)) for a in args])
    err = one_line(capsys)
    assert rc == 2 and words.replace("{tmp}", str(tmp_path)) in err, err
    assert listing(tmp_path) == []
