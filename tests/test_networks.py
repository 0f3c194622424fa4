"""Shared networks: parameter counts, shapes, scaling, activations and the lecture's convolution."""

import math

import numpy as np
import pytest
import torch

from networks import MLP, ClassifierHead, LeNet5, NatureCNN, Network, QHead, make_activation
from networks.filters import BLUR, EDGE, SHARPEN, apply_kernel, convolve2d


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_nature_q_network_has_the_papers_parameter_count():
    net = Network(NatureCNN((4, 84, 84)), QHead(512, 6))
    assert n_params(net) == 1_687_206
    assert net.torso.flatten_size == 3136
    assert net(torch.zeros(3, 4, 84, 84, dtype=torch.uint8)).shape == (3, 6)


def test_classic_lenet5_parameter_count():
    net = Network(LeNet5((1, 32, 32)), ClassifierHead(84, 10))
    assert n_params(net) == 61_706


def test_lenet_resizes_small_digits_and_keeps_the_count():
    net = Network(LeNet5((1, 8, 8)), ClassifierHead(84, 10))
    assert n_params(net) == 61_706
    assert net(torch.rand(5, 1, 8, 8)).shape == (5, 10)


def test_nature_cnn_infers_flatten_size_from_the_input_shape():
    torso = NatureCNN((1, 100, 60))
    # sides: 100 -> 24 -> 11 -> 9 ; 60 -> 14 -> 6 -> 4
    assert torso.flatten_size == 64 * 9 * 4
    assert torso(torch.zeros(2, 1, 100, 60)).shape == (2, 512)


def test_nature_cnn_rejects_images_smaller_than_its_minimum():
    NatureCNN((4, 36, 36))
    with pytest.raises(ValueError, match="at least 36x36.*8x8"):
        NatureCNN((1, 8, 8))


def test_uint8_input_is_divided_by_255_exactly_once():
    torso = NatureCNN((1, 36, 36))
    x = torch.randint(0, 256, (2, 1, 36, 36), dtype=torch.uint8)
    torch.testing.assert_close(torso(x), torso(x.float() / 255.0))
    assert not torch.allclose(torso(x), torso(x.float()))


@pytest.mark.parametrize(
    ("name", "z", "expected"),
    [
        ("threshold", [-1.0, 0.0, 2.0], [0.0, 0.0, 1.0]),
        ("S", [0.0, math.log(3.0)], [0.5, 0.75]),
        ("T", [0.0, math.atanh(0.5)], [0.0, 0.5]),
        ("L", [0.0, 0.75], [0.0, math.log(0.75 + 1.25)]),
        ("G", [0.0, 2.0], [1.0, math.exp(-2.0)]),
        ("Z", [-3.0, 4.0], [-3.0, 4.0]),
        ("relu", [-3.0, 4.0], [0.0, 4.0]),
        ("prelu", [-4.0, 4.0], [-1.0, 4.0]),  # PReLU's initial slope is 0.25
    ],
)
def test_activations_by_name(name, z, expected):
    out = make_activation(name).double()(torch.tensor(z, dtype=torch.float64))
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float64))


def test_tanh_is_the_lectures_rescaled_sigmoid():
    z = torch.linspace(-3, 3, 13, dtype=torch.float64)
    torch.testing.assert_close(make_activation("T")(z), 2 * torch.sigmoid(2 * z) - 1)


def test_unknown_activation_names_the_value_and_the_choices():
    with pytest.raises(ValueError, match="'swish'.*relu"):
        make_activation("swish")


def test_mlp_depth_width_and_dropout():
    net = MLP(10, hidden=(7, 5, 3), out_features=2, activation="tanh", dropout=0.5)
    assert n_params(net) == (10 * 7 + 7) + (7 * 5 + 5) + (5 * 3 + 3) + (3 * 2 + 2)
    x = torch.randn(64, 10)
    net.eval()
    torch.testing.assert_close(net(x), net(x))
    net.train()
    torch.manual_seed(0)
    assert not torch.allclose(net(x), net(x))
    torso = MLP(4, hidden=(16,))
    assert torso.out_features == 16 and torso(torch.randn(2, 4)).shape == (2, 16)


def test_mlp_rejects_bad_sizes():
    with pytest.raises(ValueError, match="hidden=\\[8, 0\\]"):
        MLP(4, hidden=(8, 0), out_features=2)
    with pytest.raises(ValueError, match="dropout"):
        MLP(4, hidden=(8,), dropout=1.0)


def test_lecture_convolution_worked_example():
    x = [[0, 80, 40], [20, 40, 0], [0, 0, 40]]
    k = [[0, 0.25], [0.5, 1]]
    np.testing.assert_array_equal(convolve2d(x, k), [[45, 110], [40, 40]])
    # torch's conv2d is cross-correlation: without the flip the answer differs.
    cross = torch.nn.functional.conv2d(
        torch.tensor(x, dtype=torch.float64)[None, None],
        torch.tensor(k, dtype=torch.float64)[None, None],
    )[0, 0]
    assert cross.tolist() != [[45, 110], [40, 40]]


def test_lecture_kernels_on_an_image():
    img = np.zeros((7, 7), dtype=np.uint8)
    img[3, 3] = 90
    blurred = apply_kernel(img, "blur")
    assert blurred[2:5, 2:5].tolist() == [[10] * 3] * 3 and blurred.sum() == 90
    edges = convolve2d(img, EDGE, padding="same")
    assert edges[3, 3] == -360 and edges[2, 3] == edges[3, 4] == 90 and edges[2, 2] == 0
    flat = np.full((5, 5), 100, dtype=np.uint8)
    # Sharpen and blur keep a flat region's value away from the border; edge gives zero there.
    assert apply_kernel(flat, "sharpen")[2, 2] == 100 and apply_kernel(flat, "blur")[2, 2] == 100
    assert convolve2d(flat, EDGE, padding="same")[2, 2] == 0
    assert BLUR.shape == SHARPEN.shape == (5, 5) and BLUR.sum() == pytest.approx(1.0)
    rgb = np.stack([img, img // 3, img * 0], axis=-1)
    assert apply_kernel(rgb, "blur").shape == (7, 7, 3)
    with pytest.raises(ValueError, match="'emboss'.*blur"):
        apply_kernel(img, "emboss")
