"""Experience replay: ``uniform`` (frames stored once, n-step returns, per-env streams),
``prioritized`` (Schaul et al. 2016's proportional variant over the same storage), ``io``
(saved next to a checkpoint, loaded on resume), ``sizing`` (the replay a run needs)."""
