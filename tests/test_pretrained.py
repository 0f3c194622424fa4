"""Shipped agents (agents/pretrained.py, scripts/export_pretrained.py, evaluate.py --pretrained):
a DQN trained for 400 steps on fake-pixels is exported, loaded and replayed; every agent shipped
in agents/pretrained/ reproduces its recorded score."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from agents.dqn.build import train
from agents.dqn.presets import preset
from agents.evaluation.evaluate import agent_policy, evaluate, load_policy
from agents.evaluation.pretrained import (
    PRETRAINED_DIR,
    half_precision_verdict,
    list_pretrained,
    load_pretrained,
    save_pretrained,
    score_tolerance,
)
from agents.run.checkpoint import load_checkpoint, save_checkpoint
from agents.supervised.classifier import build_classifier
from envs.atari import is_atari_game
from scripts import evaluate as evaluate_script
from scripts import export_pretrained

EPISODES, SEED = 16, 3


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A run directory with one checkpoint: 400 agent steps of the smoke preset on fake-pixels."""
    out = tmp_path_factory.mktemp("run")
    config = preset("smoke").replace(
        env="fake-pixels", total_steps=400, buffer_size=400, learning_starts=100,
        target_update_steps=100, epsilon_decay_steps=200, learning_rate=2.5e-4, gamma=0.0,
        final_eval_episodes=0, checkpoint_every_steps=400, record_video=False, progress=False,
        torch_threads=1, output_dir=str(out),
    )  # fmt: skip
    train(config)
    return out


def export(run: Path, out: Path, *args: str) -> tuple[int, str]:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        rc = export_pretrained.main(
            [str(run), "--output-dir", str(out), "--episodes", str(EPISODES), "--seed", str(SEED),
             "--device", "cpu", *args]
        )  # fmt: skip
    return rc, stdout.getvalue()


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("pretrained")
    rc, stdout = export(run, out, "--name", "tiny")
    assert rc == 0
    return out / "tiny.safetensors", stdout


def checkpoint_model(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run)["model"]


def replay_check(state: dict) -> dict:
    """The short re-evaluation a shipped agent must pass: its recorded protocol, epsilon and
    seed, ``check_episodes`` episodes."""
    ev = state["pretrained"]["evaluation"]
    policy = agent_policy(load_policy(state, torch.device("cpu"), seed=ev["seed"]))
    return evaluate(
        policy, state["env_id"], ev["check_episodes"], ev["epsilon"], ev["protocol"], ev["seed"],
        max_steps_per_episode=ev["max_episode_frames"] // 4 + 100,
        max_episode_frames=ev["max_episode_frames"],
    )  # fmt: skip


# --- export --------------------------------------------------------------------------------------


def test_export_writes_a_small_float16_pair_with_its_measured_score(run, exported):
    weights, stdout = exported
    model = checkpoint_model(run)
    params = sum(t.numel() for t in model.values())
    assert params == 1_685_154  # Nature CNN, 512 hidden, 2 actions
    # 2 bytes per parameter plus the JSON header (names, dtypes, shapes, offsets: < 256 B each)
    size = weights.stat().st_size
    assert 2 * params < size <= 2 * params + 8 + 256 * len(model)
    checkpoint = Path(load_checkpoint(run)["path"]).stat().st_size
    assert size < checkpoint / 7  # online + target + Adam's two moments in float32: 8x

    meta = json.loads(weights.with_suffix(".json").read_text())
    config = load_checkpoint(run)["config"]
    assert (meta["format_version"], meta["name"], meta["kind"]) == (1, "tiny", "q-network")
    assert (meta["env_id"], meta["protocol"], meta["dtype"]) == ("fake-pixels", "nature", "float16")
    assert (meta["obs_shape"], meta["num_actions"], meta["global_step"]) == ([4, 84, 84], 2, 400)
    assert meta["config"] == config and meta["parameters"] == params
    assert meta["tensors"] == {k: list(t.shape) for k, t in model.items()}
    assert meta["source_checkpoint"] == "step_000000000400.pt"
    ev = meta["evaluation"]
    returns = np.array(ev["returns"])
    assert len(returns) == ev["episodes"] == EPISODES and ev["seed"] == SEED
    assert (ev["epsilon"], ev["protocol"], ev["max_episode_frames"]) == (0.05, "nature", 108_000)
    assert np.all((returns >= 0) & (returns <= 8))  # 8 steps of reward 0 or 1
    assert ev["mean_return"] == pytest.approx(returns.mean())
    assert ev["std_return"] == pytest.approx(returns.std())
    assert (ev["median_return"], ev["min_return"], ev["max_return"]) == (
        np.median(returns), returns.min(), returns.max())  # fmt: skip
    assert ev["human_normalized"] is None and ev["human_score_set"] is None  # no human score
    assert ev["check_episodes"] == 8
    expected = max(3 * returns.std() * math.sqrt(1 / 8 + 1 / EPISODES), 1.0)
    assert (
        ev["tolerance"] == pytest.approx(expected) and "3 standard errors" in ev["tolerance_rule"]
    )
    assert "float32 weights: mean" in stdout and "float16 weights: mean" in stdout
    assert "writing float16: mean return changed by" in stdout
    assert f"tiny.safetensors: {size:,} bytes" in stdout


def test_the_safetensors_file_holds_raw_float16_tensors_and_no_pickle(run, exported):
    weights, _ = exported
    data = weights.read_bytes()
    header_bytes = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_bytes])  # the whole header is JSON
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    assert {v["dtype"] for v in tensors.values()} == {"F16"}
    payload = sum(math.prod(v["shape"]) * 2 for v in tensors.values())
    assert 8 + header_bytes + payload == len(data)  # nothing else in the file
    loaded = load_file(weights)  # safetensors' own reader: tensors only
    assert set(loaded) == set(tensors) == set(checkpoint_model(run))
    assert all(t.dtype == torch.float16 for t in loaded.values())


def test_load_pretrained_gives_the_float16_rounded_weights_as_float32(run, exported):
    weights, _ = exported
    original = checkpoint_model(run)
    state = load_pretrained(weights)
    assert set(state["model"]) == set(original)
    for key, tensor in state["model"].items():
        assert tensor.dtype == torch.float32
        assert torch.equal(tensor, original[key].half().float()), key
    # rounding to float16 changed the weights, each by at most half a unit in the last place
    # (11 significant bits: relative error <= 2**-11 for normal numbers)
    error = torch.cat([(state["model"][k] - t).abs().flatten() for k, t in original.items()])
    scale = torch.cat([t.abs().flatten() for t in original.values()])
    assert error.max() > 0 and bool((error <= scale * 2**-11 + 2**-25).all())
    assert state["env_id"] == "fake-pixels" and state["num_actions"] == 2
    assert state["obs_shape"] == [4, 84, 84]
    assert state["kind"] == "q-network" and state["global_step"] == 400
    assert load_pretrained(weights.with_suffix(".json"))["path"] == str(weights)


def test_evaluate_pretrained_reproduces_the_recorded_score(exported, tmp_path, capsys, monkeypatch):
    weights, _ = exported
    ev = json.loads(weights.with_suffix(".json").read_text())["evaluation"]
    rc = evaluate_script.main(
        ["--pretrained", str(weights), "--episodes", str(EPISODES), "--seed", str(SEED),
         "--output-dir", str(tmp_path)]
    )  # fmt: skip
    assert rc == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert abs(summary["mean_return"] - ev["mean_return"]) <= ev["tolerance"]
    assert summary["returns"] == ev["returns"]  # same seeds, same device: the same episodes
    assert summary["pretrained"] == "tiny" and summary["checkpoint"] == str(weights)
    assert (summary["protocol"], summary["epsilon"]) == ("nature", 0.05)
    assert "fake-pixels (nature protocol, epsilon 0.05)" in capsys.readouterr().out
    check = replay_check(load_pretrained(weights))  # the short check of shipped agents
    assert check["episodes"] == 8
    assert abs(check["mean_return"] - ev["mean_return"]) <= ev["tolerance"]
    monkeypatch.chdir(tmp_path)  # without --output-dir: under runs/, never inside the package
    assert evaluate_script.main(["--pretrained", str(weights), "--episodes", "2"]) == 0
    assert (
        json.loads(Path("runs/pretrained/tiny/evaluation/summary.json").read_text())["episodes"]
        == 2
    )


def test_full_precision_writes_the_exact_float32_weights(run, tmp_path):
    rc, stdout = export(run, tmp_path, "--name", "tiny32", "--full-precision")
    assert rc == 0 and "writing float32: --full-precision" in stdout
    assert "float16 weights" not in stdout  # no half-precision trial
    model = checkpoint_model(run)
    params = sum(t.numel() for t in model.values())
    size = (tmp_path / "tiny32.safetensors").stat().st_size
    assert 4 * params < size <= 4 * params + 8 + 256 * len(model)
    state = load_pretrained(tmp_path / "tiny32.safetensors")
    assert state["pretrained"]["dtype"] == "float32"
    assert all(torch.equal(state["model"][k], t) for k, t in model.items())


def test_a_score_changed_by_half_precision_keeps_float32(run, tmp_path, monkeypatch):
    # stand-in for weights float16 cannot hold: all zeros make every Q-value 0, so action 0 always
    zeros = lambda model: {k: torch.zeros_like(t) for k, t in model.items()}  # noqa: E731
    monkeypatch.setattr(export_pretrained, "half_rounded", zeros)
    rc, stdout = export(run, tmp_path, "--name", "kept32")
    assert rc == 0
    meta = json.loads((tmp_path / "kept32.json").read_text())
    assert meta["dtype"] == "float32"
    line = next(x for x in stdout.splitlines() if x.startswith("writing float32"))
    assert "mean return changed by" in line and "> tolerance" in line, line


@pytest.mark.parametrize(
    ("half_mean", "std", "keep"),
    [
        (6.0, 2.0, True),  # tolerance 3 * 2 * sqrt(2/16) = 2.121
        (7.0, 2.0, True),  # change 2.0
        (7.5, 2.0, False),  # change 2.5
        (6.0, 0.0, True),  # no spread: the 1-point floor
        (6.5, 0.0, False),
    ],
)
def test_half_precision_verdict_against_three_standard_errors(half_mean, std, keep):
    full = {"mean_return": 5.0, "std_return": std, "episodes": 16}
    ok, reason = half_precision_verdict(full, {**full, "mean_return": half_mean})
    assert ok is keep
    assert reason.startswith(f"mean return changed by {half_mean - 5.0:.3f}")
    assert score_tolerance(2.0, 16, 16) == pytest.approx(3 * 2.0 * math.sqrt(2 / 16))
    assert score_tolerance(2.0, 30, 8) == pytest.approx(3 * 2.0 * math.sqrt(1 / 8 + 1 / 30))


def test_a_classifier_checkpoint_keeps_what_load_policy_needs(tmp_path):
    net = build_classifier("mlp", (4, 84, 84), 2, hidden=(8,), activation="tanh")
    config = {"protocol": "machado", "eval_epsilon": 0.001, "env": "fake-pixels"}
    classifier = {"model": "mlp", "hidden": [8], "activation": "tanh", "dropout": 0.0}
    state = {"kind": "classifier", "config": config, "env_id": "fake-pixels",
             "obs_shape": [4, 84, 84], "num_actions": 2, "model": net.state_dict(),
             "global_step": 30, "classifier": classifier}  # fmt: skip
    save_pretrained(state, tmp_path, "clone")
    loaded = load_pretrained(tmp_path / "clone.json")
    assert loaded["kind"] == "classifier" and loaded["classifier"] == classifier
    assert loaded["config"] == config and loaded["pretrained"]["evaluation"] is None
    obs = np.random.default_rng(0).integers(0, 256, size=(5, 4, 84, 84), dtype=np.uint8)
    rounded = build_classifier("mlp", (4, 84, 84), 2, hidden=(8,), activation="tanh")
    rounded.load_state_dict({k: t.half().float() for k, t in net.state_dict().items()})
    policy = load_policy(loaded, torch.device("cpu"))
    with torch.no_grad():
        expected = rounded.eval()(torch.as_tensor(obs))
        assert torch.equal(policy.network(torch.as_tensor(obs)), expected)


def test_weights_beyond_float16_range_are_refused_in_half_precision(tmp_path):
    state = {"config": {}, "env_id": "fake-pixels", "obs_shape": [4], "num_actions": 2,
             "model": {"w": torch.tensor([1.0, 65504.0]), "steps": torch.tensor([7])}}  # fmt: skip
    save_pretrained(state, tmp_path, "edge")  # 65504 is float16's largest finite number
    assert load_pretrained(tmp_path / "edge.json")["model"]["w"].tolist() == [1.0, 65504.0]
    assert load_pretrained(tmp_path / "edge.json")["model"]["steps"].dtype == torch.int64
    state["model"]["w"][1] = 70_000.0
    with pytest.raises(ValueError, match=r"'big': weights exceed float16's range \(65504\)"):
        save_pretrained(state, tmp_path, "big")
    assert not (tmp_path / "big.safetensors").exists()
    save_pretrained(state, tmp_path, "big", half=False)
    assert load_pretrained(tmp_path / "big.json")["model"]["w"].tolist() == [1.0, 70_000.0]


# --- bad input -----------------------------------------------------------------------------------


def tampered_pair(source: Path, directory: Path, change) -> Path:
    for suffix in (".safetensors", ".json"):
        shutil.copy(source.with_suffix(suffix), directory / f"bad{suffix}")
    meta = json.loads((directory / "bad.json").read_text())
    change(meta, directory / "bad.safetensors")
    (directory / "bad.json").write_text(json.dumps(meta))
    return directory / "bad.safetensors"


def test_a_pair_that_does_not_match_is_refused_in_one_message(exported, tmp_path):
    weights, _ = exported

    def reshape(meta, _):
        meta["tensors"]["head.linear.weight"] = [6, 512]

    def drop(meta, _):
        del meta["tensors"]["head.linear.bias"]

    def corrupt(meta, path):
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF  # one weight's byte
        path.write_bytes(bytes(data))

    def truncate(meta, path):
        path.write_bytes(path.read_bytes()[:1000])

    def truncate_and_rehash(meta, path):
        truncate(meta, path)
        meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()

    for change, words in [
        (reshape, "other shapes ['head.linear.weight']"),
        (drop, "tensors not in the json ['head.linear.bias']"),
        (corrupt, "SHA-256 differs"),
        (truncate, "SHA-256 differs"),  # checked before the bytes are parsed
        (truncate_and_rehash, "cannot be read"),
    ]:
        bad = tampered_pair(weights, tmp_path, change)
        with pytest.raises(ValueError, match="bad.safetensors") as error:
            load_pretrained(bad)
        assert words in str(error.value) and "\n" not in str(error.value)


def _set(key, value):
    def change(meta, _):
        meta[key] = value

    return change


def _nan_weight(meta, path):
    tensors = load_file(path)
    first = sorted(tensors)[0]
    tensors[first].view(-1)[0] = float("nan")
    save_file(tensors, path)
    meta["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()


BAD_META = [
    (lambda meta, _: meta.pop("sha256"), "lacks sha256; a shipped agent records its weights' SHA"),
    (_set("sha256", None), "field 'sha256' is None; expected the weights file's SHA-256"),
    (_set("sha256", "abc"), "field 'sha256' is 'abc'; expected the weights file's SHA-256 as 64"),
    (_set("format_version", "1"), "field 'format_version' is '1'; expected an integer >= 1"),
    (_set("format_version", 99), "has format 99; this version reads up to 1"),
    (_set("env_id", 7), "field 'env_id' is 7; expected the env id as a string"),
    (_set("obs_shape", [4, 84]), "field 'obs_shape' is [4, 84]; expected an observation shape"),
    (_set("obs_shape", [4, 84, 0]), "field 'obs_shape' is [4, 84, 0]"),
    (_set("obs_shape", [10**6, 10**6, 10**6]), "at most 10,000,000 elements"),
    (_set("num_actions", 0), "field 'num_actions' is 0; expected an integer in [1, 4096]"),
    (_set("num_actions", 2.0), "field 'num_actions' is 2.0"),
    (_set("config", []), "the config is a list, not an object"),
    (_set("config", {"gamma": "high"}), "config field 'gamma' is 'high'; expected a number"),
    (_set("config", {"hidden": [8, "x"]}), "config field 'hidden' is [8, 'x']"),
    (_set("tensors", {}), "field 'tensors' is {}; expected {name: shape}"),
    (_set("tensors", {"w": "big"}), "field 'tensors'"),
    (_set("kind", "policy"), "field 'kind' is 'policy'; expected q-network or classifier"),
    (_set("kind", "classifier"), "a classifier without its 'classifier' settings"),
    (_set("dtype", "int8"), "field 'dtype' is 'int8'; expected float16 or float32"),
    (_set("global_step", -1), "field 'global_step' is -1; expected an integer >= 0"),
    (_set("evaluation", [1]), "field 'evaluation' is [1]; expected an object"),
    (_set("evaluation", {"mean_return": "12"}), "expected a number as its 'mean_return'"),
    (_set("evaluation", {"episodes": 0}), "expected a positive integer as its 'episodes'"),
    (_set("evaluation", {"returns": [1, None]}), "expected a list of numbers as its 'returns'"),
    (_nan_weight, "holds 1 NaN or infinite value(s)"),
]


@pytest.mark.parametrize(("change", "words"), BAD_META, ids=[w[:40] for _, w in BAD_META])
def test_a_shipped_agent_json_is_checked_field_by_field(exported, tmp_path, capsys, change, words):
    bad = tampered_pair(exported[0], tmp_path, change)
    with pytest.raises(ValueError) as error:
        load_pretrained(bad)
    assert words in str(error.value) and "\n" not in str(error.value), str(error.value)
    assert "bad.json" in str(error.value) or "bad.safetensors" in str(error.value)
    out = tmp_path / "out"
    rc = evaluate_script.main(["--pretrained", str(bad), "--output-dir", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and words in err and not out.exists(), err


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"format_version": NaN}', "holds NaN where only finite numbers are accepted"),
        ('{"format_version": 1e999}', "holds 1e999 where only finite numbers are accepted"),
        ("[1, 2]", "holds a JSON list; a JSON object is expected"),
        ("{", "is not valid JSON"),
        ("[" * 100_000, "is not valid JSON"),
    ],
)
def test_a_shipped_agent_json_that_is_not_a_finite_object_is_refused(
    exported, tmp_path, text, words
):
    bad = tampered_pair(exported[0], tmp_path, lambda meta, _: None)
    (tmp_path / "bad.json").write_text(text)
    with pytest.raises(ValueError) as error:
        load_pretrained(bad)
    assert words in str(error.value) and "bad.json" in str(error.value), str(error.value)


def test_a_nan_network_is_never_exported_or_evaluated(run, tmp_path, capsys):
    state = load_checkpoint(run)
    model = {k: v.clone().contiguous() for k, v in state["model"].items()}
    next(iter(model.values())).view(-1)[3] = float("inf")
    with pytest.raises(ValueError, match=r"its model network holds 1 NaN or infinite value"):
        save_pretrained({**state, "model": model}, tmp_path, "nan")
    assert list(tmp_path.iterdir()) == []
    nan_run = tmp_path / "nan-run" / "checkpoints"
    save_checkpoint(nan_run, {k: v for k, v in {**state, "model": model}.items() if k != "path"}, 5)
    for main, args in ((export_pretrained.main, ["--name", "nan"]), (evaluate_script.main, [])):
        out = tmp_path / "out"
        rc = main([str(nan_run.parent), *args, "--output-dir", str(out)])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and not out.exists(), err
        assert "holds 1 NaN or infinite value(s) (first in" in err
        assert "a non-finite network is never evaluated, exported or resumed" in err


def test_list_pretrained_names_complete_pairs_only(exported, tmp_path):
    weights, _ = exported
    for name in ("b", "a"):
        shutil.copy(weights, tmp_path / f"{name}.safetensors")
        shutil.copy(weights.with_suffix(".json"), tmp_path / f"{name}.json")
    (tmp_path / "lonely.json").write_text("{}")
    assert list_pretrained(tmp_path) == ["a", "b"]
    assert list_pretrained(tmp_path / "missing") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pretrained", "no-such-agent"], "pretrained agent 'no-such-agent' is unknown"),
        (["{run}", "--pretrained", "tiny"], "got both"),
        ([], "got neither"),
        (["--pretrained", "{tmp}/missing.safetensors"], "missing.safetensors does not exist"),
        (["--pretrained", "{tmp}/missing.json"], "missing.safetensors does not exist"),
    ],
)
def test_evaluate_bad_pretrained_input_exits_2_with_one_line(run, tmp_path, capsys, args, message):
    argv = [a.replace("{run}", str(run)).replace("{tmp}", str(tmp_path)) for a in args]
    rc = evaluate_script.main([*argv, "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and not (tmp_path / "out").exists()
    assert len(err.splitlines()) == 1 and message in err, err


def test_an_unknown_name_lists_the_shipped_agents():
    shipped = list_pretrained()
    with pytest.raises(ValueError) as error:
        load_pretrained("no-such-agent")
    listed = f"shipped: {', '.join(shipped)}" if shipped else "no agent is shipped yet"
    assert listed in str(error.value)


def test_an_agent_of_the_same_name_is_replaced_only_with_overwrite(run, tmp_path, capsys):
    out = tmp_path / "out"
    assert export(run, out, "--name", "tiny")[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    recorded = json.loads((out / "tiny.json").read_text())["evaluation"]
    capsys.readouterr()
    rc, printed = export(run, out, "--name", "tiny", "--full-precision")
    assert rc == 2 and printed == ""  # refused before the evaluation
    assert capsys.readouterr().err.splitlines() == [
        f"export_pretrained: error: --name: {out / 'tiny.safetensors'} exists (mean return "
        f"{recorded['mean_return']:.2f} over {recorded['episodes']} episodes); give another "
        "--name or --output-dir, or --overwrite to replace it"
    ]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    rc, _ = export(run, out, "--name", "tiny", "--full-precision", "--overwrite")
    assert rc == 0 and json.loads((out / "tiny.json").read_text())["dtype"] == "float32"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}", "--name", "x"], "no checkpoint (step_*.pt) found"),
        (["{run}", "--name", "../x"], "pretrained name '../x' is not accepted"),
        (["{run}", "--name", "x", "--episodes", "0"], "--episodes: 0"),
        (["{tmp}/missing", "--name", "x"], "missing does not exist"),
        (["{run}", "--name", "x", "--episodes", "nan"], "argument --episodes: invalid int value"),
        (["{run}", "--name", "x", "--episodes", "10000000"], "use an integer in [1, 1000000]"),
        (["{run}", "--name", "x", "--seed", "-3"], "--seed: -3 is not accepted"),
        (["{run}", "--name", "x", "--device", "mps"], "--device: 'mps' is not accepted"),
        (["{run}", "--name", "x", "--device", "cuda:99"], "--device: 'cuda:99' was asked for"),
        (["{run}", "--name", "x", "--bogus"], "unrecognized arguments: --bogus"),
        (["{run}", "--name", "x", "--output-dir", "{tmp}/file/sub"], "--output-dir: '{tmp}/file"),
        (["{run}", "--name", "x", "--output-dir", "/"], "--output-dir: '/' is not accepted"),
    ],
)
def test_export_bad_input_exits_2_with_one_line(run, tmp_path, capsys, args, message):
    (tmp_path / "file").write_text("a file")
    argv = [a.replace("{run}", str(run)).replace("{tmp}", str(tmp_path)) for a in args]
    if "--output-dir" not in args:
        argv += ["--output-dir", str(tmp_path / "out")]
    rc = export_pretrained.main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert message.replace("{tmp}", str(tmp_path)) in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing left behind


# --- shipped agents ------------------------------------------------------------------------------


def shipped() -> list:
    """Each agent in agents/pretrained/ (an empty parametrization when none ships); real games
    are marked atari."""
    params = []
    for name in list_pretrained():
        env_id = json.loads((PRETRAINED_DIR / f"{name}.json").read_text())["env_id"]
        marks = [pytest.mark.atari] if is_atari_game(env_id) else []
        params.append(pytest.param(name, marks=marks))
    return params


@pytest.mark.parametrize("name", shipped())
def test_a_shipped_agent_reproduces_its_recorded_score(name):
    state = load_pretrained(name, "cpu")
    ev = state["pretrained"]["evaluation"]
    assert ev is not None, f"{name} was shipped without a measured score"
    check = replay_check(state)
    assert abs(check["mean_return"] - ev["mean_return"]) <= ev["tolerance"], (check, ev)
