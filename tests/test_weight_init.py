"""``--weight-init``: PyTorch's default initial weights, or Glorot-uniform weights with zero biases
(Dopamine's JAX networks), at the start of a run and at each reset."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from agents.dqn.agent import DQNAgent, build_q_network
from agents.dqn.presets import preset
from networks import NoisyLinear, initialize

# drq's network with 6 actions (Dopamine's): (name, fan_in, fan_out) of each layer; a
# convolution's fans count its kernel's area (flax's variance_scaling and torch's
# xavier_uniform_ agree on this).
DRQ_LAYERS = [
    ("torso.convs.0", 4 * 8 * 8, 32 * 8 * 8),
    ("torso.convs.2", 32 * 4 * 4, 64 * 4 * 4),
    ("torso.convs.4", 64 * 3 * 3, 64 * 3 * 3),
    ("torso.fc.0", 7744, 512),  # 'SAME' convolutions: 11 x 11 x 64
    ("head.value", 512, 1),
    ("head.advantage", 512, 6),
]


def drq_network(weight_init: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_q_network((4, 84, 84), 6, config=preset("drq").replace(weight_init=weight_init))


def test_xavier_draws_glorot_uniform_weights_and_zero_biases_in_every_layer():
    layers = dict(drq_network("xavier").named_modules())
    for name, fan_in, fan_out in DRQ_LAYERS:
        layer = layers[name]
        bound = math.sqrt(6.0 / (fan_in + fan_out))  # conv1: sqrt(6 / 2304) = 0.0510
        top = bound * (1 + 1e-6)  # float32 rounding
        w = layer.weight.detach()
        assert torch.count_nonzero(layer.bias) == 0, name
        assert float(w.abs().max()) <= top, name
        if w.numel() >= 8_000:  # enough draws for the moments: std of U(-b, b) is b / sqrt(3)
            assert float(w.abs().max()) > 0.99 * bound, name
            assert abs(float(w.std()) / (bound / math.sqrt(3.0)) - 1.0) < 0.03, name
            assert abs(float(w.mean())) < 0.02 * bound, name


def test_torch_keeps_pytorchs_defaults():
    """The default scheme draws nothing after the layers are built (the golden runs pin that bit
    for bit): Kaiming-uniform weights and biases, none of them zero."""
    layers = dict(drq_network("torch", seed=3).named_modules())
    for name, fan_in, _ in DRQ_LAYERS:
        # kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)), up to float32 rounding
        bound = 1.0 / math.sqrt(fan_in) * (1 + 1e-6)
        assert float(layers[name].bias.abs().max()) <= bound, name
        assert torch.count_nonzero(layers[name].bias) == layers[name].bias.numel(), name
        assert float(layers[name].weight.abs().max()) <= bound, name
        assert float(layers[name].weight.abs().max()) > 0.9 * bound, name


def test_noisy_layers_keep_their_own_initialisation():
    config = preset("der")
    torch.manual_seed(7)
    plain = build_q_network((4, 84, 84), 6, config=config)
    torch.manual_seed(7)
    xavier = build_q_network((4, 84, 84), 6, config=config.replace(weight_init="xavier"))
    noisy = [n for n, m in plain.named_modules() if isinstance(m, NoisyLinear)]
    assert len(noisy) == 4  # Rainbow's network: value and advantage, each hidden + output
    for name, p in plain.named_parameters():
        q = dict(xavier.named_parameters())[name]
        assert torch.equal(p, q) == name.startswith(tuple(noisy)), name


@pytest.mark.parametrize("layers", ["head", "dense"])
def test_a_reset_redraws_its_layers_under_the_same_scheme(layers):
    config = preset("drq").replace(
        compile="off", augment=False, weight_init="xavier", reset_layers=layers
    )
    agent = DQNAgent.build(config, (4, 84, 84), 6, torch.device("cpu"), seed=0)
    with torch.no_grad():
        for p in agent.online.parameters():
            p.add_(0.5)  # stands in for training: no bias is zero any more
    before = {k: v.clone() for k, v in agent.online.state_dict().items()}
    agent.reset_head()
    layers_by_name = dict(agent.online.named_modules())
    kept = ("torso.convs",) if layers == "dense" else ("torso.convs", "torso.fc")
    for name, fan_in, fan_out in DRQ_LAYERS:
        layer = layers_by_name[name]
        if name.startswith(kept):
            assert torch.equal(layer.weight, before[f"{name}.weight"]), name
            assert torch.equal(layer.bias, before[f"{name}.bias"]), name
            continue
        assert torch.count_nonzero(layer.bias) == 0, name
        assert float(layer.weight.abs().max()) <= math.sqrt(6.0 / (fan_in + fan_out)) * 1.000001


def test_an_unknown_scheme_is_refused_in_one_line():
    message = "weight init 'he' is not accepted; use one of torch, xavier"
    with pytest.raises(ValueError, match=message):
        initialize(nn.Linear(2, 2), "he")
