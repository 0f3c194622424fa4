"""``--conv-padding same``: TensorFlow's and flax's 'SAME' padding of the Nature convolutions
(Dopamine's JAX networks), checked pixel by pixel, and the network it gives drq."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from agents.dqn.agent import build_q_network
from agents.dqn.presets import preset
from networks import NatureCNN
from networks.cnn import SamePaddedConv2d, same_padding


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pads"),
    [
        (84, 8, 4, (2, 2)),  # ceil(84 / 4) = 21: (20 * 4 + 8 - 84) = 4
        (21, 4, 2, (1, 2)),  # ceil(21 / 2) = 11: (10 * 2 + 4 - 21) = 3, the odd one after
        (11, 3, 1, (1, 1)),
        (10, 4, 2, (1, 1)),  # 5 positions: 4 * 2 + 4 - 10 = 2
        (3, 8, 4, (2, 3)),  # one position: 8 - 3 = 5
        (12, 2, 4, (0, 0)),  # 3 positions: 2 * 4 + 2 - 12 < 0
    ],
)
def test_same_padding_is_tensorflows(size, kernel, stride, pads):
    assert same_padding(size, kernel, stride) == pads


def test_a_same_padded_convolution_counts_the_pixels_tensorflow_would():
    """Kernel of ones, input of ones: each output counts the input pixels under its window. 'SAME'
    on 21 pixels with kernel 4, stride 2 pads 1 before and 2 after, so the first window covers
    rows -1..2 (3 real rows), the last rows 19..22 (2 real rows)."""
    conv = SamePaddedConv2d(1, 1, 4, 2, (21, 21))
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    out = conv(torch.ones(1, 1, 21, 21))[0, 0]
    assert out.shape == (11, 11)
    assert out[0, 0] == 9 and out[10, 10] == 4 and out[0, 10] == 6 and out[5, 5] == 16
    assert out[0, 5] == 12 and out[10, 5] == 8


def test_it_equals_an_explicitly_padded_valid_convolution():
    g = torch.Generator().manual_seed(0)
    conv = SamePaddedConv2d(3, 5, 4, 2, (21, 19))
    x = torch.randn(2, 3, 21, 19, generator=g)
    # rows: (1, 2) as above; columns: ceil(19 / 2) = 10, 9 * 2 + 4 - 19 = 3: (1, 2)
    reference = F.conv2d(F.pad(x, (1, 2, 1, 2)), conv.weight, conv.bias, stride=2)
    assert torch.allclose(conv(x), reference, atol=1e-6)
    channels_last = x.contiguous(memory_format=torch.channels_last)
    assert torch.allclose(conv(channels_last), reference, atol=1e-6)


def test_the_nature_torso_sizes_under_both_paddings():
    same = NatureCNN((4, 84, 84), features=0, padding="same")
    valid = NatureCNN((4, 84, 84), features=0)
    assert same.flatten_size == 11 * 11 * 64 == 7744 and valid.flatten_size == 7 * 7 * 64
    x = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    assert same(x).shape == (2, 7744) and valid(x).shape == (2, 3136)
    assert NatureCNN((4, 30, 30), padding="same").flatten_size == 64 * 4 * 4  # 30 -> 8 -> 4 -> 4
    with pytest.raises(ValueError, match="padding 'full' is not accepted; use valid or same"):
        NatureCNN((4, 84, 84), padding="full")


def test_drq_with_same_padding_has_dopamines_full_rainbow_network_parameter_count():
    """Dopamine's FullRainbowNetwork, not noisy, dueling, one atom, 6 actions: convolutions
    8,224 + 32,832 + 36,928, the shared layer 7,744 x 512 + 512, advantage 512 x 6 + 6 and value
    513 parameters."""
    config = preset("drq").replace(conv_padding="same")
    network = build_q_network((4, 84, 84), 6, config=config)
    count = sum(p.numel() for p in network.parameters())
    assert count == 8_224 + 32_832 + 36_928 + 3_965_440 + 3_078 + 513 == 4_047_015
    valid = build_q_network((4, 84, 84), 6, config=config.replace(conv_padding="valid"))
    assert sum(p.numel() for p in valid.parameters()) == count - (7744 - 3136) * 512
