"""The acting policies every method ends in.

A pixel policy maps frames to a vector: a latent action (latent BC) or a real action (the
BC and IDM baselines). An action decoder turns a latent action into a real one; an
acting policy chains the two. Each is rebuilt from its constructor arguments and
weights (:mod:`laom.models.saving`), so ``policy.pt`` and ``latent_policy.pt`` hold no
pickled classes.

The classes live here rather than in the training stages that fit them: evaluation,
relabelling and the Python API load policies too, and none of them should have to
import a training loop for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from laom.models.encoder import DEFAULT_CHANNELS, ResNetEncoder, orthogonal_init
from laom.models.meta import PolicyMeta

POLICY_FILE = "policy.pt"
POOLINGS = ("mean", "flatten")


class PixelPolicy(nn.Module):
    """Frame stack [B, 3F, H, W] in [-1, 1] -> vector [B, out_dim] (a latent or a real action).

    Two read-outs of the encoder's feature map:

    * ``pooling="mean"`` (the release's): average over space, then a linear head. Cheap
      at the paper's scale 32 (1024 channels), but at scale 1 it leaves 32 numbers that
      cannot say *where* a limb is, and a pose is where limbs are.
    * ``pooling="flatten"``: the whole map, as pixel RL encoders (DrQ, SAC-AE) read it;
      with ``hidden_dim`` an MLP head. This is what makes small policies recover the
      expert at CPU scale (docs/acting_policies.md).

    ``relu_before_pool`` (mean pooling only) applies ReLU6 to the map before averaging
    (ours); the release averages the raw residual-stream output. A flattened map always
    goes through ReLU6, as in the IDM heads.
    """

    kind: ClassVar[str] = "pixel-policy"  # its name in model files (laom.models.saving)

    def __init__(
        self,
        obs_shape: Sequence[int],
        out_dim: int,
        encoder_scale: int = 1,
        num_res_blocks: int = 2,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        pooling: str = "mean",
        hidden_dim: int = 0,
        relu_before_pool: bool = True,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.kwargs = dict(
            obs_shape=list(obs_shape), out_dim=out_dim, encoder_scale=encoder_scale,
            num_res_blocks=num_res_blocks, channels=list(channels), pooling=pooling,
            hidden_dim=hidden_dim, relu_before_pool=relu_before_pool,
        )  # fmt: skip
        self.pooling = pooling
        self.relu_before_pool = relu_before_pool
        self.encoder = ResNetEncoder(obs_shape, encoder_scale, num_res_blocks, channels)
        features = self.encoder.out_shape[0] if pooling == "mean" else self.encoder.out_dim
        if hidden_dim > 0:
            self.head = nn.Sequential(
                nn.Linear(features, hidden_dim), nn.ReLU6(), nn.Linear(hidden_dim, out_dim)
            )
        else:
            self.head = nn.Linear(features, out_dim)
        self.apply(orthogonal_init)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h = self.encoder(obs)
        if self.pooling == "mean":
            features = (F.relu6(h) if self.relu_before_pool else h).mean(dim=(2, 3))
        else:
            features = F.relu6(h).flatten(1)
        return self.head(features)


class ActionDecoder(nn.Module):
    """Latent action [B, D] -> action [B, A]: ``num_layers`` hidden layers with ReLU6."""

    kind: ClassVar[str] = "action-decoder"

    def __init__(
        self, latent_dim: int, action_dim: int, hidden_dim: int = 256, num_layers: int = 2
    ) -> None:
        super().__init__()
        self.kwargs = dict(
            latent_dim=latent_dim,
            action_dim=action_dim,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
        )
        layers: list[nn.Module] = []
        width = latent_dim
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden_dim), nn.ReLU6()]
            width = hidden_dim
        layers.append(nn.Linear(width, action_dim))
        self.net = nn.Sequential(*layers)
        self.apply(orthogonal_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class ActingPolicy(nn.Module):
    """o_t -> action: ``decoder(policy(o_t))``, or ``policy(o_t)`` when there is no decoder.

    ``meta`` is the run's metadata (data signature, task, method), which a model file
    keeps beside the weights rather than in them: :func:`laom.models.saving.load_policy`
    puts it back. A dict is read as a file's meta is (:meth:`PolicyMeta.from_json`), so a
    policy built from a file's raw meta, or by hand, carries the same record.
    """

    kind: ClassVar[str] = "acting-policy"

    def __init__(self, policy: nn.Module, decoder: nn.Module | None, meta: PolicyMeta | Mapping[str, Any]) -> None:
        super().__init__()
        self.policy = policy
        self.decoder = decoder
        self.meta = meta if isinstance(meta, PolicyMeta) else PolicyMeta.from_json(meta)

    @property
    def kwargs(self) -> dict[str, Any]:
        """The parts' constructor arguments, which :meth:`from_kwargs` rebuilds them from."""
        return {
            "policy": self.policy.kwargs,
            "decoder": self.decoder.kwargs if self.decoder is not None else None,
        }

    @classmethod
    def from_kwargs(cls, policy: dict[str, Any], decoder: dict[str, Any] | None) -> ActingPolicy:
        """An untrained acting policy of the shape :attr:`kwargs` describes (no meta yet)."""
        return cls(PixelPolicy(**policy), ActionDecoder(**decoder) if decoder is not None else None, {})

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``obs``: [B, 3F, H, W] scaled to [-1, 1]."""
        out = self.policy(obs)
        return self.decoder(out) if self.decoder is not None else out

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Environment observations (uint8 [B, H, W, 3F], oldest frame first) -> float32 [B, A]."""
        x = torch.from_numpy(np.ascontiguousarray(obs)).to(self.device).permute(0, 3, 1, 2)
        x = x.float().mul_(2.0 / 255.0).sub_(1.0)
        return self(x).float().cpu().numpy()
