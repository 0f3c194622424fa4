"""The DQN family: one agent with the Rainbow extensions as switches.

- ``config``, ``presets``: the run's settings (``TrainConfig``) and the named presets.
- ``agent``: the networks, the optimizer and the update (``DQNAgent``); ``losses``: the pure
  loss functions (``dqn_loss``, ``c51_loss``); ``optimizers``, ``augment``: DeepMind's RMSProp and
  DrQ's random shifts.
- ``actor``: vector env + policy + exploration schedule -> transitions.
- ``replay``: where the transitions wait (uniform and prioritized, saved and loaded, sized).
- ``learner``: replay -> update -> target sync at the config's replay ratio.
- ``loop``: ``Trainer``, one actor and one learner composed in one process; ``build``:
  ``build_trainer(config, resume=...)``, which makes the parts and hands them to the Trainer.
"""
