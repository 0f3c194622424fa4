"""The presets and networks that name a paper match it: optimizer, target cadence, network shape."""

import math

import pytest
import torch
from torch import nn

from agents.dqn.agent import DQNAgent, build_q_network
from agents.dqn.optimizers import CenteredRMSprop
from agents.dqn.presets import preset
from networks import NatureCNN, NoisyLinear

CONV_PARAMS = (4 * 64 * 32 + 32) + (32 * 16 * 64 + 64) + (64 * 9 * 64 + 64)  # 77,984
FLAT = 64 * 7 * 7  # 3,136 features after the convolutions at 84x84


def linear_params(n_in: int, n_out: int, noisy: bool = False) -> int:
    return (n_in * n_out + n_out) * (2 if noisy else 1)  # noisy: mu and sigma of each


def test_conv_params_constant_matches_the_torso():
    torso = NatureCNN((4, 84, 84), features=0)
    assert torso.out_features == FLAT
    assert sum(p.numel() for p in torso.parameters()) == CONV_PARAMS == 77_984


def test_centered_rmsprop_two_hand_computed_steps():
    """mu = 0.95 mu + 0.05 g, nu = 0.95 nu + 0.05 g^2, theta -= lr g / sqrt(nu - mu^2 + eps).

    Step 1, first coordinate: g = 0.5, mu = 0.025, nu = 0.0125, nu - mu^2 = 0.011875,
    + 0.01 = 0.021875, sqrt = 0.1479020, step 0.1 * 0.5 / 0.1479020 = 0.3380617 -> 0.6619383.
    Step 2: g = 0.2, mu = 0.03375, nu = 0.013875, nu - mu^2 + 0.01 = 0.0227359, sqrt = 0.1507844,
    step 0.1326397 -> 0.5292986.
    """
    theta = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = CenteredRMSprop([theta], lr=0.1, alpha=0.95, eps=0.01)
    expected = ([0.6619382981085935, -1.9022936062507936], [0.5292985885295517, -2.148311492708869])
    for grad, want in zip(([0.5, -0.1], [0.2, 0.3]), expected):
        theta.grad = torch.tensor(grad, dtype=torch.float64)
        opt.step()
        torch.testing.assert_close(theta.detach(), torch.tensor(want, dtype=torch.float64))
    state = opt.state[theta]
    torch.testing.assert_close(
        state["grad_avg"], torch.tensor([0.03375, 0.01025], dtype=torch.float64)
    )
    torch.testing.assert_close(
        state["square_avg"], torch.tensor([0.013875, 0.004975], dtype=torch.float64)
    )
    assert int(state["step"]) == 2


def test_centered_rmsprop_first_step_against_the_former_torch_form():
    """DeepMind's first step on a gradient g is lr g / sqrt(0.0475 g^2 + eps) with eps = 0.01/32^2
    for a batch-mean loss; the former preset (torch's centred RMSprop, eps 0.01 outside the
    square root) stepped lr g / (sqrt(0.0475 g^2) + 0.01): 1.4x to 3.3x smaller here."""
    g = torch.tensor([1e-3, 1e-2, 1e-1])
    steps = []
    for make in (
        lambda p: CenteredRMSprop([p], lr=2.5e-4, alpha=0.95, eps=0.01 / 32**2),
        lambda p: torch.optim.RMSprop([p], lr=2.5e-4, alpha=0.95, eps=0.01, centered=True),
    ):
        p = nn.Parameter(torch.zeros(3))
        opt = make(p)
        p.grad = g.clone()
        opt.step()
        steps.append(-p.detach())
    ours, former = steps
    torch.testing.assert_close(ours, 2.5e-4 * g / torch.sqrt(0.0475 * g**2 + 0.01 / 32**2))
    torch.testing.assert_close(former, 2.5e-4 * g / (torch.sqrt(0.0475 * g**2) + 0.01))
    ratio = ours / former
    assert (ratio > 1.4).all() and (ratio < 3.3).all()


def test_centered_rmsprop_rejects_bad_values():
    p = [nn.Parameter(torch.zeros(1))]
    for kwargs, word in (({"lr": 0.0}, "lr"), ({"lr": 1.0, "alpha": 1.0}, "alpha")):
        with pytest.raises(ValueError, match=word):
            CenteredRMSprop(p, **kwargs)
    with pytest.raises(ValueError, match="eps"):
        CenteredRMSprop(p, lr=1.0, eps=0.0)


def test_nature_preset_values_in_agent_steps():
    n = preset("nature")
    assert n.target_update_steps == 10_000  # 40,000 frames in DQN Zoo = 2,500 updates
    assert n.target_update_steps // n.train_frequency == 2_500
    assert (n.optimizer, n.learning_rate, n.rmsprop_alpha) == ("rmsprop", 2.5e-4, 0.95)
    assert n.optimizer_eps == 0.01 / 32**2
    assert (n.learning_starts, n.epsilon_decay_steps, n.epsilon_end) == (50_000, 1_000_000, 0.1)
    assert (n.buffer_size, n.batch_size, n.train_frequency, n.loss) == (1_000_000, 32, 4, "huber")
    assert (n.total_steps, n.eval_epsilon, n.gamma) == (50_000_000, 0.05, 0.99)


def test_nature_agent_uses_deepmind_rmsprop():
    config = preset("nature")
    agent = DQNAgent.build(config, (4, 84, 84), 6, torch.device("cpu"), seed=0)
    assert isinstance(agent.optimizer, CenteredRMSprop)
    group = agent.optimizer.param_groups[0]
    assert (group["lr"], group["alpha"], group["eps"]) == (2.5e-4, 0.95, 0.01 / 1024)


@pytest.mark.parametrize("name", ["rainbow", "der"])
def test_rainbow_network_splits_after_the_convolutions(name):
    """Hessel et al. 2018: conv torso, then a value stream and an advantage stream, each a noisy
    512-unit hidden layer and a noisy output layer of 51 atoms (per action for the advantage)."""
    config = preset(name)
    actions, atoms = 6, config.num_atoms
    net = build_q_network((4, 84, 84), actions, config=config)
    noisy = [m for m in net.modules() if isinstance(m, NoisyLinear)]
    plain = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert plain == []  # every fully connected layer is noisy
    shapes = sorted((m.in_features, m.out_features) for m in noisy)
    assert shapes == sorted([(FLAT, 512), (512, atoms), (FLAT, 512), (512, actions * atoms)])
    assert sum(p.numel() for p in net.torso.parameters()) == CONV_PARAMS
    expected = CONV_PARAMS + 2 * linear_params(FLAT, 512, noisy=True)
    expected += linear_params(512, atoms, noisy=True) + linear_params(512, actions * atoms, True)
    assert expected == 6_868_842
    assert sum(p.numel() for p in net.parameters()) == expected
    assert all(m.sigma0 == config.noisy_sigma0 for m in noisy)
    q = net(torch.zeros(2, 4, 84, 84, dtype=torch.uint8))
    assert q.shape == (2, actions)


@pytest.mark.parametrize(
    ("switches", "expected"),
    [
        # Nature DQN: conv, shared 512-unit layer, one output per action.
        ({}, CONV_PARAMS + linear_params(FLAT, 512) + linear_params(512, 6)),
        # C51 (Bellemare et al. 2017): the same shape with 51 atoms per action.
        (
            {"distributional": True},
            CONV_PARAMS + linear_params(FLAT, 512) + linear_params(512, 306),
        ),
        # Dueling (Wang et al. 2016, 4.2): two streams, each a 512-unit layer then V or A.
        (
            {"dueling": True},
            CONV_PARAMS
            + 2 * linear_params(FLAT, 512)
            + linear_params(512, 1)
            + linear_params(512, 6),
        ),
        # NoisyNet-DQN (Fortunato et al. 2018): the 512-unit and output layers both noisy.
        (
            {"noisy": True},
            CONV_PARAMS + linear_params(FLAT, 512, True) + linear_params(512, 6, True),
        ),
    ],
)
def test_each_variant_has_its_papers_shape(switches, expected):
    config = preset("cleanrl").replace(**switches)
    net = build_q_network((4, 84, 84), 6, config=config)
    assert sum(p.numel() for p in net.parameters()) == expected
    shared = isinstance(net.torso.fc, nn.Sequential)
    assert shared == (not switches or "distributional" in switches)


def test_vector_networks_keep_the_mlp_torso():
    config = preset("cartpole-rainbow")
    net = build_q_network((4,), 2, config.hidden, config)
    noisy = [m for m in net.modules() if isinstance(m, NoisyLinear)]
    assert sorted((m.in_features, m.out_features) for m in noisy) == [(128, 51), (128, 102)]
    assert not any(isinstance(m, NoisyLinear) for m in net.torso.modules())
    assert math.isclose(
        sum(p.numel() for p in net.torso.parameters()), 4 * 128 + 128 + 128 * 128 + 128
    )
