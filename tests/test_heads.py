"""Rainbow heads: dueling aggregation, C51 head and projection, factorised noisy layers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from networks.cnn import NatureCNN
from networks.distributional import categorical_projection
from networks.heads import DistributionalHead, DuelingHead, Network, QHead
from networks.noisy import NoisyLinear, reset_noise


def num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- parameter counts


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (QHead(512, 6), 3_078),  # 512*6 + 6
        (QHead(512, 6, noisy=True), 6_156),  # mu and sigma for weight and bias
        (DuelingHead(512, 6), 3_591),  # V: 512 + 1, A: 512*6 + 6
        (DuelingHead(512, 6, noisy=True), 7_182),
        # V: 512*512+512 + 512+1 = 263,169; A: 262,656 + 512*6+6 = 265,734
        (DuelingHead(512, 6, hidden=512), 528_903),
        (DistributionalHead(512, 6), 156_978),  # 513 * 6*51
        (DistributionalHead(512, 6, dueling=True), 183_141),  # + 513 * 51
        (DistributionalHead(512, 6, dueling=True, noisy=True), 366_282),
        (DistributionalHead(512, 4, num_atoms=11, noisy=True), 45_144),  # 2 * 513 * 44
    ],
)
def test_head_parameter_counts(head: torch.nn.Module, expected: int) -> None:
    assert num_params(head) == expected


def test_plain_q_network_is_unchanged_and_rainbow_network_count() -> None:
    nature = Network(NatureCNN((4, 84, 84)), QHead(512, 6))
    assert num_params(nature) == 1_687_206
    assert list(QHead(512, 6).state_dict()) == ["linear.weight", "linear.bias"]
    # Rainbow: conv only (77,984), then two noisy streams with their own 512-unit layers.
    rainbow = Network(
        NatureCNN((4, 84, 84), features=0),
        DistributionalHead(3136, 6, dueling=True, noisy=True, hidden=512),
    )
    assert num_params(rainbow) == 77_984 + 2 * 3_212_288 + 52_326 + 313_956  # 6,868,842


# ---------------------------------------------------------------- dueling


def test_dueling_aggregation_by_hand() -> None:
    head = DuelingHead(3, 4)
    with torch.no_grad():
        head.value.weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
        head.value.bias.fill_(0.5)
        head.advantage.weight.zero_()
        head.advantage.weight[:, 1] = torch.tensor([0.5, 1.0, 1.5, 3.0])
        head.advantage.bias.zero_()
    x = torch.tensor([[1.0, 2.0, 3.0]])
    # V = 1.5; A = [1, 2, 3, 6], mean 3 -> Q = 1.5 + [-2, -1, 0, 3]
    q = head(x)
    torch.testing.assert_close(q, torch.tensor([[-0.5, 0.5, 1.5, 4.5]]))
    assert q.mean().item() == pytest.approx(1.5)


@pytest.mark.parametrize("hidden", [0, 16])
def test_dueling_mean_over_actions_is_value(hidden: int) -> None:
    torch.manual_seed(0)
    head = DuelingHead(8, 5, hidden=hidden)
    x = torch.randn(32, 8)
    q = head(x)
    assert q.shape == (32, 5)
    torch.testing.assert_close(q.mean(dim=1, keepdim=True), head.value(x), atol=1e-6, rtol=0)


# ---------------------------------------------------------------- distributional head


@pytest.mark.parametrize("dueling", [False, True])
def test_distributional_head_q_is_expected_return(dueling: bool) -> None:
    torch.manual_seed(1)
    head = DistributionalHead(16, 3, dueling=dueling)
    torch.testing.assert_close(head.support, torch.linspace(-10.0, 10.0, 51))
    assert head.support[1] - head.support[0] == pytest.approx(0.4)
    assert "support" in head.state_dict()
    x = torch.randn(7, 16) * 3
    log_probs = head.log_probs(x)
    assert log_probs.shape == (7, 3, 51)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(7, 3))
    expected = (log_probs.exp() * torch.linspace(-10.0, 10.0, 51)).sum(-1)
    torch.testing.assert_close(head(x), expected)
    assert head(x).shape == (7, 3)


def test_dueling_distributional_by_hand() -> None:
    # support [-1, 0, 1]; V logits [0, 0, ln 3]; A logits action 0 [0, 0, ln 4], action 1 zero:
    # mean_a A = [0, 0, ln 2] -> action 0 logits [0, 0, ln 6] -> p = [1/8, 1/8, 6/8], Q = 5/8;
    # action 1 logits [0, 0, ln 1.5] -> p = [1, 1, 1.5] / 3.5, Q = 0.5 / 3.5 = 1/7.
    head = DistributionalHead(2, 2, num_atoms=3, v_min=-1.0, v_max=1.0, dueling=True)
    with torch.no_grad():
        for layer in (head.value, head.actions):
            layer.weight.zero_()
            layer.bias.zero_()
        head.value.bias[2] = math.log(3.0)
        head.actions.bias[2] = math.log(4.0)  # action 0, atom 2
    x = torch.randn(1, 2)
    probs = head.log_probs(x).exp()[0]
    torch.testing.assert_close(probs[0], torch.tensor([1 / 8, 1 / 8, 6 / 8]))
    torch.testing.assert_close(probs[1], torch.tensor([1, 1, 1.5]) / 3.5)
    torch.testing.assert_close(head(x)[0], torch.tensor([5 / 8, 1 / 7]))
    # Adding the same advantage to every action changes nothing (mean-subtracted).
    with torch.no_grad():
        head.actions.bias += 7.0
    torch.testing.assert_close(head(x)[0], torch.tensor([5 / 8, 1 / 7]))


# ---------------------------------------------------------------- C51 projection


def reference_projection(next_probs, rewards, discounts, v_min, v_max, num_atoms):
    """Bellemare et al. 2017, Algorithm 1, one atom at a time in float64."""
    delta_z = (v_max - v_min) / (num_atoms - 1)
    out = [[0.0] * num_atoms for _ in range(len(rewards))]
    for i in range(len(rewards)):
        for j in range(num_atoms):
            z_j = v_min + j * delta_z
            tz = min(max(rewards[i] + discounts[i] * z_j, v_min), v_max)
            b = (tz - v_min) / delta_z
            lo, up = math.floor(b), math.ceil(b)
            if lo == up:
                out[i][lo] += next_probs[i][j]
            else:
                out[i][lo] += next_probs[i][j] * (up - b)
                out[i][up] += next_probs[i][j] * (b - lo)
    return torch.tensor(out, dtype=torch.float64)


def test_projection_by_hand_with_atoms_on_support_points() -> None:
    # support [-2, -1, 0, 1, 2]; r = 1, discount 0.5:
    # Tz = [0, .5, 1, 1.5, 2], b = [2, 2.5, 3, 3.5, 4]
    support = torch.linspace(-2.0, 2.0, 5)
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.0]])
    out = categorical_projection(probs, torch.tensor([1.0]), torch.tensor([0.5]), support)
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.0, 0.2, 0.6, 0.2]]))


def test_projection_terminal_puts_all_mass_at_clipped_reward() -> None:
    support = torch.linspace(-2.0, 2.0, 5)
    probs = torch.full((4, 5), 0.2)
    rewards = torch.tensor([1.0, 7.0, -3.0, 0.25])
    out = categorical_projection(probs, rewards, torch.zeros(4), support)
    expected = torch.tensor(
        [
            [0.0, 0.0, 0.0, 1.0, 0.0],  # on the atom 1
            [0.0, 0.0, 0.0, 0.0, 1.0],  # clipped to v_max
            [1.0, 0.0, 0.0, 0.0, 0.0],  # clipped to v_min
            [0.0, 0.0, 0.75, 0.25, 0.0],  # 0.25 between 0 and 1
        ]
    )
    torch.testing.assert_close(out, expected)


def test_projection_matches_reference_loop() -> None:
    gen = torch.Generator().manual_seed(3)
    batch, num_atoms, v_min, v_max = 96, 51, -10.0, 10.0
    support = torch.linspace(v_min, v_max, num_atoms)
    next_probs = torch.softmax(torch.randn(batch, num_atoms, generator=gen) * 2, dim=1)
    rewards = torch.empty(batch).uniform_(-25.0, 25.0, generator=gen)  # many outside [-10, 10]
    discounts = torch.empty(batch).uniform_(0.0, 1.0, generator=gen)
    discounts[:16] = 0.0  # terminal
    discounts[16:48] = 0.99**3
    rewards[48:64] = torch.arange(-8, 8) * 0.5  # multiples of 0.5 with discount 1 ...
    discounts[48:64] = 1.0  # ... every other one lands on support points
    rewards[64:72] = torch.tensor([0.0, 1.0, -1.0, 2.0, 0.4, -0.4, 0.8, 10.0])
    discounts[64:72] = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.5, 1.0])
    out = categorical_projection(next_probs, rewards, discounts, support)
    ref = reference_projection(
        next_probs.double().tolist(),
        rewards.double().tolist(),
        discounts.double().tolist(),
        v_min,
        v_max,
        num_atoms,
    )
    assert out.shape == (batch, num_atoms)
    torch.testing.assert_close(out.double(), ref, atol=2e-6, rtol=0)
    torch.testing.assert_close(out.sum(1), torch.ones(batch), atol=1e-6, rtol=0)
    assert out.min().item() >= 0.0
    # Terminal rows: the projected mean is the clipped reward.
    mean = (out * support).sum(1)
    torch.testing.assert_close(mean[:16], rewards[:16].clamp(v_min, v_max), atol=1e-5, rtol=0)


def test_projection_keeps_the_mean_when_nothing_is_clipped() -> None:
    gen = torch.Generator().manual_seed(4)
    support = torch.linspace(-10.0, 10.0, 51)
    next_probs = torch.softmax(torch.randn(32, 51, generator=gen), dim=1)
    next_probs[:, :5] = 0.0  # no mass near the ends, so r + 0.9 z stays inside
    next_probs[:, -5:] = 0.0
    next_probs /= next_probs.sum(1, keepdim=True)
    rewards = torch.empty(32).uniform_(-1.0, 1.0, generator=gen)
    discounts = torch.full((32,), 0.9)
    out = categorical_projection(next_probs, rewards, discounts, support)
    expected = rewards + 0.9 * (next_probs * support).sum(1)
    torch.testing.assert_close((out * support).sum(1), expected, atol=1e-5, rtol=0)


def test_projection_rejects_mismatched_shapes() -> None:
    support = torch.linspace(-1.0, 1.0, 5)
    with pytest.raises(ValueError, match="next_probs must be"):
        categorical_projection(torch.ones(2, 4) / 4, torch.zeros(2), torch.ones(2), support)
    with pytest.raises(ValueError, match="rewards and discounts"):
        categorical_projection(torch.ones(2, 5) / 5, torch.zeros(3), torch.ones(2), support)


# ---------------------------------------------------------------- noisy layers


def test_noisy_init() -> None:
    torch.manual_seed(5)
    layer = NoisyLinear(256, 64)
    bound = 1 / 16
    assert torch.all(layer.weight_sigma == 0.5 / 16)
    assert torch.all(layer.bias_sigma == 0.5 / 16)
    assert layer.weight_mu.abs().max().item() <= bound
    assert layer.weight_mu.abs().max().item() > 0.99 * bound
    # U(-b, b) has std b / sqrt(3) = 0.0361
    assert layer.weight_mu.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert layer.bias_mu.abs().max().item() <= bound
    assert {n for n, _ in layer.named_buffers()} == {"eps_in", "eps_out"}
    assert layer.eps_in.shape == (256,) and layer.eps_out.shape == (64,)
    assert set(layer.state_dict()) == {
        "weight_mu",
        "weight_sigma",
        "bias_mu",
        "bias_sigma",
        "eps_in",
        "eps_out",
    }
    assert NoisyLinear(4, 3, sigma0=0.1).weight_sigma[0, 0].item() == pytest.approx(0.05)


def test_noisy_eval_is_the_mean_layer() -> None:
    torch.manual_seed(6)
    layer = NoisyLinear(10, 4).eval()
    x = torch.randn(8, 10)
    first = layer(x)
    layer.reset_noise()
    torch.testing.assert_close(layer(x), first, atol=0, rtol=0)
    torch.testing.assert_close(first, F.linear(x, layer.weight_mu, layer.bias_mu))


def test_noisy_train_noise_fixed_between_resets() -> None:
    torch.manual_seed(7)
    layer = NoisyLinear(10, 4).train()
    x = torch.randn(8, 10)
    a, b = layer(x), layer(x)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    mean_only = F.linear(x, layer.weight_mu, layer.bias_mu)
    assert (a - mean_only).abs().max().item() > 1e-3
    # The factorised forward equals the explicit noisy weight.
    f_out, f_in = layer.eps_out, layer.eps_in
    weight = layer.weight_mu + layer.weight_sigma * torch.outer(f_out, f_in)
    bias = layer.bias_mu + layer.bias_sigma * f_out
    torch.testing.assert_close(a, F.linear(x, weight, bias))
    layer.reset_noise()
    c = layer(x)
    assert (c - a).abs().max().item() > 1e-3
    torch.testing.assert_close(layer(x), c, atol=0, rtol=0)


def test_noisy_gradients_reach_sigma_in_train_mode_only() -> None:
    layer = NoisyLinear(5, 3)
    layer(torch.randn(4, 5)).sum().backward()
    assert layer.weight_sigma.grad.abs().sum().item() > 0
    assert layer.bias_sigma.grad.abs().sum().item() > 0
    layer.zero_grad(set_to_none=True)
    layer.eval()(torch.randn(4, 5)).sum().backward()
    assert layer.weight_sigma.grad is None
    assert layer.weight_mu.grad.abs().sum().item() > 0


def test_noise_is_reproducible() -> None:
    torch.manual_seed(8)
    a = NoisyLinear(6, 3)
    torch.manual_seed(8)
    b = NoisyLinear(6, 3)
    torch.testing.assert_close(a.state_dict(), b.state_dict(), atol=0, rtol=0)
    a.reset_noise(torch.Generator().manual_seed(9))
    b.reset_noise(torch.Generator().manual_seed(9))
    torch.testing.assert_close(a.eps_in, b.eps_in, atol=0, rtol=0)
    torch.testing.assert_close(a.eps_out, b.eps_out, atol=0, rtol=0)
    assert a.double().eps_in.dtype == torch.float64  # buffers follow .to()


def test_noise_statistics_over_resets() -> None:
    # eps_w = f(a) f(b) with a, b ~ N(0, 1), f(x) = sign(x) sqrt|x|: E = 0,
    # Var = E[f(a)^2] E[f(b)^2] = E|a| E|b| = 2/pi = 0.637 (independent N(0,1) noise would give 1);
    # E|eps_w| = (E|a|^0.5)^2 = (2^0.25 Gamma(0.75) / sqrt(pi))^2 = 0.676.
    # Bias noise eps_b = f(b): Var = E|b| = sqrt(2/pi) = 0.798.
    # The noise is read off the layer's outputs: x = 0 gives the bias, x = e_i the weight column i.
    torch.manual_seed(10)
    layer = NoisyLinear(4, 3)  # sigma = 0.5 / sqrt(4) = 0.25
    eye, zero = torch.eye(4), torch.zeros(1, 4)
    mean_w, mean_b = layer.eval()(eye) - layer(zero), layer(zero)
    layer.train()
    w_noise, b_noise = [], []
    with torch.no_grad():
        for _ in range(2000):
            layer.reset_noise()
            b = layer(zero) - mean_b
            b_noise.append(b[0] / 0.25)
            w_noise.append((layer(eye) - b - mean_w - mean_b) / 0.25)
    eps_w = torch.stack(w_noise)  # (2000, 4 inputs, 3 outputs)
    eps_b = torch.stack(b_noise)  # (2000, 3)
    assert eps_w.mean(0).abs().max().item() < 0.08  # standard error sqrt(0.637 / 2000) = 0.018
    assert eps_w.var(0).mean().item() == pytest.approx(2 / math.pi, abs=0.04)
    assert eps_w.abs().mean().item() == pytest.approx(0.676, abs=0.03)
    assert eps_b.mean(0).abs().max().item() < 0.09
    assert eps_b.var(0).mean().item() == pytest.approx(math.sqrt(2 / math.pi), abs=0.05)
    # Factorised: each draw is rank one, eps_00 eps_11 == eps_01 eps_10.
    torch.testing.assert_close(
        eps_w[:, 0, 0] * eps_w[:, 1, 1], eps_w[:, 0, 1] * eps_w[:, 1, 0], atol=1e-4, rtol=0
    )


def test_reset_noise_reaches_every_noisy_layer() -> None:
    torch.manual_seed(11)
    net = Network(torch.nn.Identity(), DistributionalHead(8, 3, dueling=True, noisy=True, hidden=4))
    layers = [m for m in net.modules() if isinstance(m, NoisyLinear)]
    assert len(layers) == 4
    before = [m.eps_out.clone() for m in layers]
    reset_noise(net)
    assert all(not torch.equal(b, m.eps_out) for b, m in zip(before, layers))
    plain = Network(torch.nn.Identity(), DuelingHead(8, 3))
    reset_noise(plain)  # no noisy layers: nothing to do, no error


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: NoisyLinear(0, 3), "in_features=0"),
        (lambda: NoisyLinear(3, 2, sigma0=-0.1), "sigma0"),
        (lambda: DuelingHead(8, 0), "num_actions"),
        (lambda: DuelingHead(8, 2, hidden=-1), "hidden"),
        (lambda: DistributionalHead(8, 2, num_atoms=1), "num_atoms"),
        (lambda: DistributionalHead(8, 2, v_min=1.0, v_max=-1.0), "v_min"),
    ],
)
def test_bad_sizes_raise(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()
