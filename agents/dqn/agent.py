"""``DQNAgent``: the online and target Q-networks, the optimizer and the update rule.

Mnih et al. 2015 (target network, experience replay); its network comes from
``build_q_network`` (the Nature-DQN convolutions, the Rainbow switches' heads) and its loss from
``agents.dqn.losses``, chosen once when it is built.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from agents.dqn.augment import augment_batch
from agents.dqn.config import TrainConfig
from agents.dqn.losses import CompiledLoss, LossTerms, c51_loss, dqn_loss
from agents.dqn.optimizers import CenteredRMSprop
from agents.dqn.replay.uniform import Batch
from agents.run.checkpoint import load_network
from networks import (
    MLP,
    DistributionalHead,
    DuelingHead,
    NatureCNN,
    Network,
    QHead,
    initialize,
    reset_noise,
)


def epsilon_greedy(
    q_values: torch.Tensor, epsilon: float | torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Greedy actions, each replaced by a uniform random action with probability ``epsilon``."""
    greedy = q_values.argmax(dim=1)
    batch, num_actions = q_values.shape
    dev = q_values.device
    explore = torch.rand(batch, device=dev, generator=generator) < epsilon
    random_actions = torch.randint(num_actions, (batch,), device=dev, generator=generator)
    return torch.where(explore, random_actions, greedy)


HEAD_HIDDEN = 512  # each stream's hidden layer on a conv torso (Wang 2016, Hessel 2018)


def build_q_network(
    obs_shape: Sequence[int],
    num_actions: int,
    hidden: Sequence[int] = (120, 84),
    config: TrainConfig | None = None,
) -> Network:
    """The Q-network the config's switches ask for.

    Images: the Nature-DQN convolutions, then
    - plain DQN and C51 (Mnih et al. 2015; Bellemare et al. 2017): the shared 512-unit layer
      (``NatureCNN``) and one output layer;
    - dueling or noisy (Wang et al. 2016, section 4.2; Fortunato et al. 2018; Rainbow, Hessel et
      al. 2018): the network splits right after the convolutions; each stream (value and
      advantage when dueling, else the one Q stream) is a 512-unit hidden layer then an output
      layer (of atoms when distributional), every one of them noisy when noisy;
    - with ``shared_hidden`` (Dopamine's ``FullRainbowNetwork``, the network of the published
      Atari-100k DER and DrQ(epsilon) runs): one 512-unit layer after the convolutions, noisy when
      noisy, shared by the streams, whose output layers follow it directly.
    Flat vectors: an MLP torso of ``hidden`` widths and a head without hidden layers.
    Convolution padding: ``conv_padding``; initial weights: ``weight_init`` (``networks.init``).
    """
    c = config or TrainConfig()
    head_hidden = 0
    if len(obs_shape) == 3:
        split = (c.dueling or c.noisy) and not c.shared_hidden
        torso: nn.Module = NatureCNN(
            obs_shape,
            features=0 if split else HEAD_HIDDEN,
            noisy=c.noisy,
            sigma0=c.noisy_sigma0,
            padding=c.conv_padding,
        )
        head_hidden = HEAD_HIDDEN if split else 0
    else:
        in_features = 1
        for s in obs_shape:
            in_features *= int(s)
        torso = MLP(in_features, hidden=hidden, out_features=None)
    width = torso.out_features
    noise = {"noisy": c.noisy, "sigma0": c.noisy_sigma0, "hidden": head_hidden}
    if c.distributional:
        head: nn.Module = DistributionalHead(
            width, num_actions, c.num_atoms, c.v_min, c.v_max, dueling=c.dueling, **noise
        )
    elif c.dueling:
        head = DuelingHead(width, num_actions, **noise)
    else:
        head = QHead(width, num_actions, **noise)
    return initialize(Network(torso, head), c.weight_init)


def build_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    """Adam (torch's fused kernel: one pass over all parameters) or DeepMind's centred RMSProp
    (``agents.dqn.optimizers.CenteredRMSprop``: eps inside the square root, as in the Nature
    DQN)."""
    if config.optimizer == "adam":
        return torch.optim.Adam(
            params, lr=config.learning_rate, eps=config.optimizer_eps, fused=True
        )
    if config.optimizer == "rmsprop":
        return CenteredRMSprop(
            params, lr=config.learning_rate, alpha=config.rmsprop_alpha, eps=config.optimizer_eps
        )
    raise ValueError(f"--optimizer: unknown {config.optimizer!r}; accepted: adam, rmsprop")


COMPILE_MIN_UPDATES = 50_000


def should_compile(config: TrainConfig, obs_shape: Sequence[int]) -> bool:
    """``compile=auto``: compile conv-net updates when the run makes enough of them to repay the
    compile time (about 30 s cold on a 2-core CPU, where it saves about 1 ms of a 19 ms update;
    on a GPU it saves more, mostly kernel launches)."""
    if config.compile != "auto":
        return config.compile == "on"
    updates = (config.total_steps - config.learning_starts) * config.gradient_steps
    return len(obs_shape) == 3 and updates / config.train_frequency >= COMPILE_MIN_UPDATES


def reset_layer_names(network: nn.Module, layers: str) -> list[str]:
    """Names (as ``get_submodule`` takes them) of the layers a reset renews: for ``head``, the
    output layer of each of the head's streams (the Q-value layer; the dueling value and advantage
    layers; C51's per-action and value layers), not the hidden layers a stream may have before
    it; for ``dense``, the whole head and the torso's fully connected layer when it has
    parameters (the 512-unit layer after the Nature convolutions)."""
    if layers not in ("head", "dense"):
        raise ValueError(f"reset layers {layers!r} is not accepted; use one of head, dense")

    def learns(module: nn.Module | None) -> bool:
        return isinstance(module, nn.Module) and next(module.parameters(), None) is not None

    if layers == "dense":
        has_fc = learns(getattr(network.get_submodule("torso"), "fc", None))
        return ["head", *(["torso.fc"] if has_fc else [])]
    names = []
    for name, stream in network.get_submodule("head").named_children():
        if not learns(stream):
            continue
        if isinstance(stream, nn.Sequential):
            last = max(i for i, layer in enumerate(stream) if learns(layer))
            names.append(f"head.{name}.{last}")
        else:
            names.append(f"head.{name}")
    return names


class DQNAgent:
    """Online and target Q-networks, the optimizer and the update rule. Receives its parts."""

    def __init__(
        self,
        online: nn.Module,
        optimizer: torch.optim.Optimizer,
        config: TrainConfig,
        device: torch.device,
        generator: torch.Generator | None = None,
        compile_update: bool = False,
    ) -> None:
        self.online = online
        self.target = copy.deepcopy(online).requires_grad_(False)
        self.optimizer = optimizer
        self.config = config
        self.device = device
        self.generator = generator
        self.noise_generator = None
        if config.noisy:
            self.noise_generator = torch.Generator(device=device)
            self.noise_generator.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
        self.updates = 0
        # True from a hard target sync until the next optimizer step: the target then holds the
        # online weights, so the Double DQN chooser needs no second forward pass (drq syncs
        # after every update, as Dopamine's target_update_period = 1).
        self.target_is_online = False
        kind = c51_loss if config.distributional else dqn_loss
        self.loss_fn = functools.partial(kind, double=config.double_dqn, kind=config.loss)
        self.loss = self.loss_fn
        if compile_update:
            graphs = device.type == "cuda" and config.cuda_graphs != "off"
            # CUDA graphs replay the whole compiled forward and backward in one launch.
            self.loss = CompiledLoss(self.loss_fn, mode="reduce-overhead" if graphs else None)

    @property
    def compiled(self) -> bool:
        """Whether the update runs compiled (False again after a compiler failed)."""
        return isinstance(self.loss, CompiledLoss) and self.loss.compiled

    @classmethod
    def build(
        cls, config: TrainConfig, obs_shape, num_actions: int, device: torch.device, seed: int
    ):
        if config.augment and len(obs_shape) != 3:
            raise ValueError(
                f"--augment: random shifts need image observations; {config.env!r} gives shape "
                f"{tuple(obs_shape)}; drop --augment"
            )
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)  # the initial weights depend on the seed alone
            online = build_q_network(obs_shape, num_actions, config.hidden, config).to(device)
        if len(obs_shape) == 3:
            # NHWC convolutions are about 20% faster on CPU (oneDNN) and use tensor cores on GPU.
            online = online.to(memory_format=torch.channels_last)
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
        optimizer = build_optimizer(config, online.parameters())
        compile_update = should_compile(config, obs_shape)
        return cls(online, optimizer, config, device, generator, compile_update)

    @torch.no_grad()
    def act(self, obs, epsilon: float) -> torch.Tensor:
        """Epsilon-greedy actions for a batch of observations, in one forward pass."""
        obs = torch.as_tensor(obs, device=self.device)
        if self.config.noisy:
            reset_noise(self.online, self.noise_generator)  # fresh noise per acting step
        return epsilon_greedy(self.online(obs), epsilon, self.generator)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One gradient step on a batch; returns device tensors (read them at logging time).

        ``metrics["td_error"]`` holds per-sample priorities for prioritized replay: |TD error|,
        or the cross-entropy of the distributional loss (as in Rainbow). With ``augment`` the
        observations and next observations are randomly shifted first (``augment``)."""
        c = self.config
        if c.noisy:
            reset_noise(self.online, self.noise_generator)
            reset_noise(self.target, self.noise_generator)
        if c.augment:
            batch = self.augment(batch)
        loss, q_mean, priority = self.loss_terms(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if c.max_grad_norm > 0:
            nn.utils.clip_grad_norm_(self.online.parameters(), c.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        self.target_is_online = False
        return {"losses/td_loss": loss.detach(), "losses/q_values": q_mean, "td_error": priority}

    def loss_terms(self, batch: Batch) -> LossTerms:
        """(loss, mean Q taken, per-sample priority) of ``batch`` under the current networks: the
        loss chosen when the agent was built (``dqn_loss`` or ``c51_loss``), compiled or not."""
        same = self.target_is_online and not self.config.noisy
        return self.loss(self.online, self.target, batch, target_is_online=same)

    def augment(self, batch: Batch) -> Batch:
        """``batch`` with its observations and next observations augmented (``agents.dqn.augment``:
        DrQ's random shift, then Dopamine's intensity jitter when ``augment_intensity`` > 0),
        each drawn independently per sample from the agent's generator, on the batch's device,
        outside the compiled graph (the loss that follows is compiled as before)."""
        c = self.config

        def aug(x: torch.Tensor) -> torch.Tensor:
            return augment_batch(x, c.augment_pad, c.augment_intensity, self.generator)

        obs = aug(batch.obs)  # drawn before next_obs: two independent draws, as Dopamine's rng1/2
        return batch._replace(obs=obs, next_obs=aug(batch.next_obs))

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimizer, update count and the agent's random generators."""
        noise = self.noise_generator
        return {
            "model": self.online.state_dict(), "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(), "updates": self.updates,
            "agent_rng": self.generator.get_state(),
            "noise_rng": None if noise is None else noise.get_state(),
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any], source: object = "the checkpoint") -> None:
        """Restore ``state_dict``'s output; a checkpoint of another network is refused in one
        line naming ``source`` and both sides."""
        load_network(self.online, state["model"], source)
        load_network(self.target, state["target"], source)
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = state["updates"]
        self.generator.set_state(state["agent_rng"])
        if state["noise_rng"] is not None and self.noise_generator is not None:
            self.noise_generator.set_state(state["noise_rng"])

    @torch.no_grad()
    def reset_head(self) -> int:
        """Re-initialise the last layers of the online network (the config's ``reset_layers``:
        the output layers, or also the torso's fully connected layer when it has one) and start
        the optimizer afresh, as Nikishin et al. 2022 in the authors' code (``reset_weights`` in
        ``discrete_control/agents/rainbow_agent.py``: new weights for the reset layers, a new
        optimizer state for every layer). The target network is left alone: it takes the new
        weights at its next sync. The initialisation (the config's ``weight_init``) is drawn from
        a seed of the agent's generator. Returns the number of parameters reset."""
        parts = [
            self.online.get_submodule(name)
            for name in reset_layer_names(self.online, self.config.reset_layers)
        ]
        seed = int(torch.randint(2**31, (1,), generator=self.generator, device=self.device))
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            for part in parts:
                for layer in part.modules():
                    if hasattr(layer, "reset_parameters"):
                        layer.reset_parameters()
                initialize(part, self.config.weight_init)
        self.optimizer.state.clear()
        self.target_is_online = False
        return sum(p.numel() for part in parts for p in part.parameters())

    @torch.no_grad()
    def sync_target(self) -> None:
        """Hard copy (tau = 1) or Polyak averaging of the online weights into the target."""
        tau = self.config.tau
        for t, o in zip(self.target.parameters(), self.online.parameters()):
            if tau >= 1.0:
                t.copy_(o)
            else:
                t.lerp_(o, tau)
        self.target_is_online = tau >= 1.0
