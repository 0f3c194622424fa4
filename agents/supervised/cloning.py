"""Behaviour cloning of a DQN teacher: the classifier checkpoint evaluate.py plays.

A classifier trained by ``classifier`` on a teacher's recorded play (a ``trajectories:PATH``
dataset, ``trajectories``) maps what the teacher saw to the action it took (Pomerleau 1991;
Bain and Sammut 1995). ``policy_checkpoint_state`` packs it with the recording's env, protocol and
epsilon into a checkpoint that ``scripts.evaluate`` plays like a DQN's
(``agents.evaluation.evaluate.load_policy``).
"""

from __future__ import annotations

from agents.supervised.classifier import TrainResult, config_dict
from agents.supervised.datasets import Dataset


def policy_checkpoint_state(result: TrainResult, dataset: Dataset) -> dict[str, object]:
    """A classifier of a recorded policy's actions as a checkpoint ``scripts.evaluate`` can play.

    Same keys as a DQN training checkpoint (config with protocol and eval_epsilon, env_id,
    obs_shape, num_actions, model, global_step) plus ``"kind": "classifier"`` and the settings
    that rebuild the network (``agents.evaluation.evaluate.load_policy``). Acting greedily means the
    argmax of the logits. The eval epsilon is the teacher's, so clone and teacher compare alike.
    """
    if dataset.recording is None:
        raise ValueError(
            f"dataset {dataset.name!r} holds no recorded play (env, protocol); only "
            "trajectories:PATH datasets make a policy checkpoint"
        )
    cfg, rec = result.config, dataset.recording
    config = config_dict(cfg)
    config.update(protocol=rec["protocol"], eval_epsilon=float(rec["epsilon"]), env=rec["env_id"])
    return {
        "kind": "classifier",
        "config": config,
        "env_id": rec["env_id"],
        "obs_shape": list(dataset.input_shape),
        "num_actions": dataset.num_classes,
        "model": result.network.state_dict(),
        "global_step": result.gradient_steps,
        "classifier": {
            "model": cfg.model,
            "hidden": list(cfg.hidden or ()),
            "activation": cfg.activation,
            "dropout": cfg.dropout,
        },
        "recording": dict(rec),
        "test_accuracy": result.test_accuracy,
    }
