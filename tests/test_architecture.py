"""The shape of the package: no import cycles, no global side effects outside the entry points,
and a training loop made of parts that can be built and run without the factory."""

from __future__ import annotations

import ast
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from agents.dqn.actor import Actor, EpsilonSchedule
from agents.dqn.agent import DQNAgent
from agents.dqn.learner import Learner
from agents.dqn.loop import RunFiles, Trainer
from agents.dqn.presets import preset
from agents.dqn.replay.sizing import make_replay
from agents.run.tracking import Tracker
from envs.vector import make_vector_env

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agents", "envs", "networks", "scripts")


def module_files() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports anywhere (module level, inside functions and
    classes; ``from X import Y`` counts X and, when it is a module, X.Y), except under
    ``if TYPE_CHECKING:``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {module for module in found if module in known and module != name}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return cycles


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from c import g\n")
    (tmp_path / "c.py").write_text("from typing import TYPE_CHECKING\nimport a\n")
    (tmp_path / "d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\n"
    )
    known = {"a", "b", "c", "d"}
    graph = {m: imported_modules(m, tmp_path / f"{m}.py", known) for m in known}
    assert graph == {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert import_cycles(graph) == [["a", "b", "c"]]


def test_no_module_of_the_package_imports_in_a_circle():
    modules = module_files()
    graph = {name: imported_modules(name, path, set(modules)) for name, path in modules.items()}
    assert len(graph) > 60 and graph["agents.dqn.build"] >= {"agents.dqn.loop"}
    assert import_cycles(graph) == []


LAYERS = {"networks": ("envs", "agents", "scripts"), "envs": ("agents", "scripts"),
          "agents": ("scripts",)}  # fmt: skip
"""What each library package must not import: the layers only import downwards."""


def test_the_layers_only_import_downwards():
    modules = module_files()
    upward = []
    for name, path in modules.items():
        forbidden = LAYERS.get(name.split(".")[0], ())
        for target in sorted(imported_modules(name, path, set(modules))):
            if target.split(".")[0] in forbidden:
                upward.append(f"{name} -> {target}")
    assert upward == []


def global_state() -> tuple:
    return (
        torch.get_rng_state().clone(), random.getstate(),
        np.random.get_state()[1].copy(),  # noqa: NPY002 - the legacy global generator itself
        torch.get_num_threads(), torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
    )  # fmt: skip


def same_state(a: tuple, b: tuple) -> bool:
    return (torch.equal(a[0], b[0]) and a[1] == b[1] and np.array_equal(a[2], b[2])
            and a[3:] == b[3:])  # fmt: skip


IMPORT_ALL = """
import hashlib, importlib, random, sys
import numpy as np
import torch
def state():
    seen = (torch.get_rng_state().tolist(), random.getstate(), np.random.get_state()[1].tolist(),
            torch.get_num_threads(), torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32)
    return hashlib.sha256(repr(seen).encode()).hexdigest()
before = state()
for name in sys.argv[1:]:
    importlib.import_module(name)
print(before == state(), len(sys.argv) - 1)
"""


def test_importing_every_library_module_leaves_global_state_alone():
    """In a fresh interpreter: generators, thread count and TF32 flags unchanged by importing
    every module of agents, envs and networks (scripts are entry points and may set up their
    process)."""
    names = [name for name in module_files() if not name.startswith("scripts")]
    done = subprocess.run([sys.executable, "-c", IMPORT_ALL, *names], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", str(len(names))]


def test_building_an_agent_leaves_global_state_alone():
    before = global_state()
    config = preset("drq").replace(compile="off")
    first = DQNAgent.build(config, (4, 84, 84), 6, torch.device("cpu"), seed=3)
    assert same_state(before, global_state())  # no global seed, thread count or TF32 flag
    second = DQNAgent.build(config, (4, 84, 84), 6, torch.device("cpu"), seed=3)
    for a, b in zip(first.online.parameters(), second.online.parameters()):
        assert torch.equal(a, b)  # the initial weights depend on the seed alone


def test_a_trainer_runs_parts_built_by_hand(tmp_path):
    """The loop receives its parts: an actor on a fake env with a scripted policy, a learner on
    a real agent and replay, a tracker; 120 steps of 2 envs with updates every 2 steps after
    40 steps: (120 - 40) / 2 updates, the target synced every 20 steps."""
    config = preset("smoke").replace(
        env="fake", num_envs=2, total_steps=120, learning_starts=40, train_frequency=2,
        target_update_steps=20, eval_every_steps=0, final_eval_episodes=0, record_video=False,
        progress=False, checkpoint_every_steps=60, output_dir=str(tmp_path), compile="off",
    )  # fmt: skip
    envs = make_vector_env("fake", 2, seed=1)
    shape, actions = envs.single_observation_space.shape, int(envs.single_action_space.n)
    agent = DQNAgent.build(config, shape, actions, torch.device("cpu"), seed=1)
    replay = make_replay(config, envs, torch.device("cpu"))
    chosen: list[float] = []

    def policy(obs: np.ndarray, epsilon: float) -> torch.Tensor:
        chosen.append(epsilon)
        return torch.zeros(len(obs), dtype=torch.long)  # always action 0

    actor = Actor(envs, policy, EpsilonSchedule(1.0, 0.0, 100, 0), seed=1)
    learner = Learner(agent, replay, config, envs.num_envs)
    syncs = []
    agent.sync_target = lambda: syncs.append(1)
    tracker = Tracker(tmp_path, {}, track=False)
    trainer = Trainer(config, actor, learner, tracker, RunFiles(tmp_path, run_id="r1"))
    summary = trainer.run()
    assert summary["global_step"] == 120 and agent.updates == 40
    assert len(syncs) == 6  # at 20, 40, ..., 120
    assert chosen[:3] == [1.0, 0.98, 0.96] and len(chosen) == 60  # epsilon at steps 0, 2, 4
    assert len(replay) == 120 and set(replay.action[:, :60].flatten().tolist()) == {0}
    state = torch.load(tmp_path / "checkpoints" / "step_000000000120.pt", weights_only=False)
    assert state["updates"] == 40 and state["next_target_sync"] == 140
    assert state["run_id"] == "r1" and state["global_step"] == 120
