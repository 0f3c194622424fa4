"""Convolutional torsos: the Nature-DQN feature extractor and LeNet-5.

- ``NatureCNN``: Mnih et al. 2015, "Human-level control through deep reinforcement learning":
  conv 8x8 stride 4 (32), conv 4x4 stride 2 (64), conv 3x3 stride 1 (64), each ReLU, then a fully
  connected layer of 512 units with ReLU. The flatten size is inferred from the input shape.
  ``padding``: valid, the paper's (84 -> 20 -> 9 -> 7), or same, TensorFlow's and flax's 'SAME'
  (84 -> 21 -> 11 -> 11: 7,744 features), the default of flax's ``nn.Conv`` and so of
  Dopamine's JAX networks, the FullRainbowNetwork of the published Atari-100k runs among them.
  ``features=0`` stops after the convolutions (3136 features at 84x84), for heads whose streams
  each have their own hidden layer (the dueling and Rainbow networks). ``noisy=True`` makes the
  512-unit layer a ``NoisyLinear`` (Dopamine's FullRainbowNetwork shares one noisy hidden layer
  between its value and advantage outputs).
  uint8 input is scaled by 1/255 here, exactly once; float input is taken as already scaled.
- ``LeNet5``: LeCun et al. 1998, "Gradient-based learning applied to document recognition", in
  its common modern form: C1 6@5x5, S2 2x2 pooling, C3 16@5x5, S4 2x2 pooling, C5 120, F6 84,
  with the chosen activation (tanh in the paper). Inputs smaller than 32x32 are resized to 32x32
  (the paper pads 28x28 MNIST digits to 32x32), so the classic parameter count holds.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from networks.activations import make_activation
from networks.noisy import NoisyLinear


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> [0, 1] floats (the one place images are divided by 255)."""
    if x.dtype == torch.uint8:
        return x.float() * (1.0 / 255.0)
    return x.float()


NATURE_CONVS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))
"""The Nature-DQN convolutions as (output channels, kernel, stride), each followed by a ReLU."""


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) zero padding of TensorFlow's and flax's 'SAME' along one axis of ``size``
    pixels: the output has ceil(size / stride) positions, and an odd total puts the extra pixel
    after (84 -> 21 with kernel 8, stride 4: (2, 2); 21 -> 11 with kernel 4, stride 2: (1, 2))."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SamePaddedConv2d(nn.Conv2d):
    """``nn.Conv2d`` with 'SAME' zero padding for a known input size, asymmetric where 'SAME' is
    (torch's own padding is symmetric): the symmetric part is the convolution's padding, the one
    extra row or column after it is padded first."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int, size: tuple[int, int]
    ) -> None:
        (top, bottom), (left, right) = (same_padding(n, kernel, stride) for n in size)
        super().__init__(in_channels, out_channels, kernel, stride, padding=(top, left))
        self.extra = (0, right - left, 0, bottom - top)  # F.pad order: left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.extra):
            x = F.pad(x, self.extra)
        return super().forward(x)


def _check_image_shape(input_shape: Sequence[int], name: str) -> tuple[int, int, int]:
    if len(input_shape) != 3 or any(int(s) < 1 for s in input_shape):
        raise ValueError(
            f"{name} takes a (channels, height, width) shape, got {tuple(input_shape)}"
        )
    c, h, w = (int(s) for s in input_shape)
    return c, h, w


class NatureCNN(nn.Module):
    """The DQN conv torso; ``out_features`` (512, or the flatten size with ``features=0``) feeds a
    head."""

    def __init__(
        self,
        input_shape: Sequence[int] = (4, 84, 84),
        features: int = 512,
        noisy: bool = False,
        sigma0: float = 0.5,
        padding: str = "valid",
    ) -> None:
        super().__init__()
        c, h, w = _check_image_shape(input_shape, "NatureCNN")
        if padding not in ("valid", "same"):
            raise ValueError(f"NatureCNN padding {padding!r} is not accepted; use valid or same")
        layers: list[nn.Module] = []
        side_h, side_w, channels = h, w, c
        for out, k, s in NATURE_CONVS:
            if padding == "same":  # ceil(n / s) positions
                layers.append(SamePaddedConv2d(channels, out, k, s, (side_h, side_w)))
                side_h, side_w = -(-side_h // s), -(-side_w // s)
            else:  # floor((n - k) / s) + 1 positions; the smallest input is 36x36
                layers.append(nn.Conv2d(channels, out, kernel_size=k, stride=s))
                side_h, side_w = (side_h - k) // s + 1, (side_w - k) // s + 1
            layers.append(nn.ReLU())
            channels = out
        self.convs = nn.Sequential(*layers, nn.Flatten())
        if side_h < 1 or side_w < 1:
            raise ValueError(
                f"NatureCNN needs images of at least 36x36 pixels, got {h}x{w} "
                f"(input shape {tuple(input_shape)})"
            )
        if features < 0:
            raise ValueError(
                f"NatureCNN features must be >= 0 (0: no hidden layer), got {features}"
            )
        self.flatten_size = 64 * side_h * side_w
        linear = NoisyLinear(self.flatten_size, features, sigma0) if noisy and features else None
        self.fc: nn.Module = (
            nn.Sequential(linear or nn.Linear(self.flatten_size, features), nn.ReLU())
            if features
            else nn.Identity()
        )
        self.input_shape = (c, h, w)
        self.out_features = features or self.flatten_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_float(x)
        if self.convs[0].weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)  # match the weights' layout
        return self.fc(self.convs(x))


class LeNet5(nn.Module):
    """LeNet-5 torso up to F6 (84 features); a ``ClassifierHead`` supplies the output layer."""

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 32, 32),
        activation: str = "tanh",
        pooling: str = "avg",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        c, h, w = _check_image_shape(input_shape, "LeNet5")
        if pooling not in ("avg", "max"):
            raise ValueError(f"pooling must be 'avg' or 'max', got {pooling!r}")
        pool = nn.AvgPool2d if pooling == "avg" else nn.MaxPool2d
        self.resize_to = (max(h, 32), max(w, 32))
        self.features = nn.Sequential(
            nn.Conv2d(c, 6, kernel_size=5),
            make_activation(activation),
            pool(2),
            nn.Conv2d(6, 16, kernel_size=5),
            make_activation(activation),
            pool(2),
            nn.Flatten(),
        )
        side_h = ((self.resize_to[0] - 4) // 2 - 4) // 2
        side_w = ((self.resize_to[1] - 4) // 2 - 4) // 2
        fc: list[nn.Module] = [nn.Linear(16 * side_h * side_w, 120), make_activation(activation)]
        if dropout > 0:
            fc.append(nn.Dropout(dropout))
        fc += [nn.Linear(120, 84), make_activation(activation)]
        if dropout > 0:
            fc.append(nn.Dropout(dropout))
        self.fc = nn.Sequential(*fc)
        self.input_shape = (c, h, w)
        self.out_features = 84

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_float(x)
        if tuple(x.shape[-2:]) != self.resize_to:
            x = F.interpolate(x, size=self.resize_to, mode="bilinear", align_corners=False)
        return self.fc(self.features(x))
