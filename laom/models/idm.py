"""The IDM baseline's inverse dynamics model: a supervised IDM(o_t, o_{t+1}) -> a_t.

Its training stage is :mod:`laom.training.baselines` (``laom train idm``); the class is
here, with the other models, so that its saved file (``RUN/idm/idm.pt``) rebuilds
through :func:`laom.models.saving.load_model` like every model laom trains.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from laom.models.encoder import DEFAULT_CHANNELS, ResNetEncoder, orthogonal_init
from laom.models.mlp import ConditionedMLP

IDM_ARCHS = ("stacked", "shared")


class ActionIDM(nn.Module):
    """(o_t, o_{t+1}) stacks [B, 3F, H, W] each -> a_t [B, A].

    ``arch="stacked"`` (ours): one ResNet over both stacks concatenated along channels,
    flattened, an MLP head. ``arch="shared"`` (the release's): one ResNet embeds each
    stack, and a LAOM-style conditioned MLP (``head_blocks`` blocks of width
    ``head_dim``) maps the pair of embeddings to the action, like LAOM's latent IDM.
    """

    kind: ClassVar[str] = "action-idm"  # its name in model files (laom.models.saving)

    def __init__(
        self,
        obs_shape: tuple[int, int, int] | list[int],
        action_dim: int,
        encoder_scale: int = 1,
        num_res_blocks: int = 2,
        channels: tuple[int, ...] | list[int] = DEFAULT_CHANNELS,
        head_dim: int = 1024,
        arch: str = "stacked",
        head_blocks: int = 3,
    ) -> None:
        super().__init__()
        if arch not in IDM_ARCHS:
            raise ValueError(f"arch must be one of {IDM_ARCHS}, got {arch!r}")
        self.kwargs = dict(
            obs_shape=list(obs_shape), action_dim=action_dim, encoder_scale=encoder_scale,
            num_res_blocks=num_res_blocks, channels=list(channels), head_dim=head_dim, arch=arch,
            head_blocks=head_blocks,
        )  # fmt: skip
        self.arch = arch
        c, h, w = obs_shape
        if arch == "stacked":
            self.encoder = ResNetEncoder((2 * c, h, w), encoder_scale, num_res_blocks, channels)
            self.head = nn.Sequential(
                nn.Flatten(), nn.ReLU6(), nn.Linear(self.encoder.out_dim, head_dim), nn.ReLU6(), nn.Linear(head_dim, action_dim)
            )
        else:
            self.encoder = ResNetEncoder((c, h, w), encoder_scale, num_res_blocks, channels)
            self.head = ConditionedMLP(0, 2 * self.encoder.out_dim, action_dim, head_dim, head_blocks)
        self.apply(orthogonal_init)

    def forward(self, obs: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        if self.arch == "stacked":
            return self.head(self.encoder(torch.cat([obs, next_obs], dim=1)))
        e_t, e_next = self.encoder(torch.cat([obs, next_obs])).flatten(1).chunk(2)
        return self.head(None, torch.cat([e_t, e_next], dim=-1))
