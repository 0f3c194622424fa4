"""Beyond one process, on Ray Core (the optional extra ``pip install -e .[distributed]``).

- ``actors``: Ape-X actors (Horgan et al. 2018): vector env, CPU network copy, own epsilon; they
  ship frame-deduplicated, compressed chunks of replay slots with their initial priorities.
- ``pool``: the actors as Ray actors, seen by the training loop as one actor: start, wait for the
  next chunk, restart an actor that died, publish the learner's weights.
- ``apex``: the learner side: chunks into the prioritized replay, updates at the config's replay
  ratio, the ``ApexTrainer`` (the single-process ``Trainer`` with the pool as its actor).

Sweeps of many runs, which drive ``scripts.train`` processes, are a command line:
``scripts/sweep.py``. Nothing here imports Ray at module level: the package works without the
extra.
"""
