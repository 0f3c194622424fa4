"""The loop's replay holds exactly what the env produced: real vector env (fake ALE with lives,
FIRE, game overs and same-step autoreset), N streams, life-loss terminals."""

import numpy as np
import torch

from agents.dqn.build import build_trainer
from agents.dqn.presets import smoke


def test_every_stored_transition_equals_the_envs_own(tmp_path):
    config = smoke().replace(
        env="fake", num_envs=3, total_steps=900, learning_starts=899, buffer_size=600,
        eval_every_steps=0, final_eval_episodes=0, record_video=False, progress=False,
        output_dir=str(tmp_path), gamma=0.5,
    )  # fmt: skip
    trainer = build_trainer(config)
    env_step, replay_add = trainer.envs.step, trainer.replay.add
    steps, current = [], {}

    def recording_step(actions):
        out = env_step(actions)
        obs, reward, terminated, truncated, info = out
        current.update(action=np.array(actions), reward=reward, terminated=terminated,
                       final=info["final_obs"].copy(), next=obs.copy(),
                       life_loss=info["life_loss"], reset=info["reset_mask"])  # fmt: skip
        return out

    def recording_add(*args, **kwargs):
        current["slot"] = trainer.replay.cursor.clone()
        steps.append(dict(current, obs=current.get("next_prev")))
        replay_add(*args, **kwargs)
        current["next_prev"] = current["next"]

    trainer.envs.step = recording_step
    trainer.replay.add = recording_add
    start_obs = {}
    env_reset = trainer.envs.reset

    def recording_reset(seed=None):
        obs, info = env_reset(seed=seed)
        start_obs["obs"] = obs.copy()
        current["next_prev"] = obs.copy()
        return obs, info

    trainer.envs.reset = recording_reset
    trainer.run()

    life_losses = sum(int(s["life_loss"].sum()) for s in steps)
    resets = sum(int(s["reset"].sum()) for s in steps)
    assert life_losses > 10 and resets > 3  # the run crossed many lives and game overs

    latest = {}
    for t, s in enumerate(steps):
        for i in range(3):
            latest[(i, int(s["slot"][i]))] = t
    checked = 0
    for (i, slot), t in latest.items():
        stream, slot_t = torch.tensor([i]), torch.tensor([slot])
        if not trainer.replay.sampleable(stream, slot_t).item():
            continue
        s = steps[t]
        batch = trainer.replay.gather(stream, slot_t)
        np.testing.assert_array_equal(batch.obs[0].numpy(), s["obs"][i])
        np.testing.assert_array_equal(batch.next_obs[0].numpy(), s["final"][i])
        assert batch.action.item() == s["action"][i]
        assert batch.reward.item() == s["reward"][i]
        assert batch.discount.item() == (0.0 if s["terminated"][i] else 0.5)
        checked += 1
    assert checked > 400
