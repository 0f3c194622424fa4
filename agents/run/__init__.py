"""What every run stands on, whatever it trains: its ``directory`` (one run per directory, the
lock, resume checks), ``checkpoint`` files written atomically, ``checks`` of every value, path,
device, env and memory before work starts, ``file_checks`` of every file the package reads,
``interrupts`` (signals in every phase), ``faults`` (how a run that cannot go on ends),
``tracking`` (metrics.csv, wandb, TensorBoard) and ``files`` (devices, run ids, JSON)."""
