"""Measuring agents: ``evaluate`` (episodes under a named protocol, videos), ``statistics``
(human-normalized aggregates with bootstrap intervals, Agarwal et al. 2021), ``pretrained`` (the
shipped agents) and ``env_switch`` (playing a checkpoint on another game)."""
