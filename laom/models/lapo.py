"""LAPO (Schmidt & Jiang, 2023) as the paper's baseline: a pixel-space latent action model.

IDM: one ResNet over the channel-stacked pair (o_t, o_{t+k}) -> latent action z, with
optional FSQ quantization. FDM: a second ResNet encodes o_t, z is projected to a feature
map of the same shape, and a mirrored transposed-conv decoder reconstructs the whole
frame stack o_{t+1} in pixels (tanh, targets in [-1, 1]). Loss: pixel MSE. With
``k = 1`` and FSQ this is the original LAPO; the paper's ablation removes FSQ, then
samples k in 1..10 for the IDM while the FDM keeps predicting t+1.

With ``action_dim`` set (LAPO+supervision, ``lapo-labels``), LAOM+supervision's labelled
head is added: a linear map z -> true action, trained on a small labelled batch every
step with weight ``label_coef``, so the same few labels that steer LAOM's latents
towards the agent's actions steer LAPO's. The labelled pairs go through the IDM alone:
the pixel FDM reconstructs only the unlabelled batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from laom.models.encoder import DEFAULT_CHANNELS, ResNetDecoder, ResNetEncoder, orthogonal_init
from laom.models.fsq import FSQ


class LAPO(nn.Module):
    kind: ClassVar[str] = "lapo"  # its name in model files (lapo and lapo-labels alike)

    def __init__(
        self,
        obs_shape: Sequence[int],
        latent_dim: int = 128,
        fsq_levels: Sequence[int] = (),
        encoder_scale: int = 1,
        num_res_blocks: int = 2,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        action_dim: int | None = None,
        label_coef: float = 0.001,
    ) -> None:
        super().__init__()
        self.kwargs = dict(
            obs_shape=list(obs_shape), latent_dim=latent_dim, fsq_levels=list(fsq_levels),
            encoder_scale=encoder_scale, num_res_blocks=num_res_blocks, channels=list(channels),
            action_dim=action_dim, label_coef=label_coef,
        )  # fmt: skip
        c, h, w = obs_shape
        self.latent_dim = latent_dim
        self.label_coef = label_coef
        self.idm_encoder = ResNetEncoder((2 * c, h, w), encoder_scale, num_res_blocks, channels)
        self.idm_head = nn.Sequential(
            nn.Flatten(), nn.ReLU6(), nn.Linear(self.idm_encoder.out_dim, latent_dim)
        )
        self.fsq = FSQ(fsq_levels, latent_dim) if fsq_levels else None
        self.fdm_encoder = ResNetEncoder((c, h, w), encoder_scale, num_res_blocks, channels)
        self.action_to_map = nn.Linear(latent_dim, self.fdm_encoder.out_dim)
        self.decoder = ResNetDecoder(
            2 * self.fdm_encoder.out_shape[0], c, encoder_scale, num_res_blocks, channels
        )
        # None without labels: LAPO as published, module for module and draw for draw.
        self.action_head = nn.Linear(latent_dim, action_dim) if action_dim else None
        self.apply(orthogonal_init)

    @classmethod
    def from_config(cls, cfg: Any, obs_shape: Sequence[int], action_dim: int | None) -> LAPO:
        """The model a LAM config (laom.training.lam.LAMConfig) describes; ``action_dim``
        adds the labelled action head (None: LAPO as published)."""
        return cls(
            obs_shape, cfg.latent_dim, cfg.fsq_levels, encoder_scale=cfg.encoder_scale,
            num_res_blocks=cfg.num_res_blocks, channels=cfg.encoder_channels,
            action_dim=action_dim, label_coef=cfg.label_coef,
        )  # fmt: skip

    def latent_action(self, obs: torch.Tensor, future_obs: torch.Tensor) -> torch.Tensor:
        z = self.idm_head(self.idm_encoder(torch.cat([obs, future_obs], dim=1)))
        return self.fsq(z) if self.fsq is not None else z

    def latent_action_and_embedding(
        self, obs: torch.Tensor, future_obs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.latent_action(obs, future_obs), self.embed(obs)

    def embed(self, obs: torch.Tensor) -> torch.Tensor:
        """Observation embedding (the FDM's encoder), used for the state probe."""
        return self.fdm_encoder(obs).flatten(1)

    def predict_next(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = self.fdm_encoder(obs)
        a = self.action_to_map(z).view(h.shape)
        return self.decoder(torch.cat([h, a], dim=1))

    def loss(
        self,
        obs: torch.Tensor,
        next_obs: torch.Tensor,
        future_obs: torch.Tensor,
        labeled: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Inputs are [B, 3F, H, W] in [-1, 1]; ``labeled`` = (o_t, o_{t+k}, a_t), given
        only to a model with an action head (LAPO itself learns from video only).
        Augmentation (off in the presets) only touches the IDM's inputs; the pixel FDM
        must see and predict the real frames."""
        n = obs.shape[0]
        idm_obs, idm_future = obs, future_obs
        if labeled is not None:  # [o_t; labelled o_t] and [o_{t+k}; labelled o_{t+k}]: one IDM pass
            idm_obs, idm_future = torch.cat([obs, labeled[0]]), torch.cat([future_obs, labeled[1]])
        if augment is not None:
            idm_obs, idm_future = augment(idm_obs), augment(idm_future)
        z = self.latent_action(idm_obs, idm_future)  # IDM sees (o_t, o_{t+k})
        self.last_latent = z[:n].detach()  # for the trainer's online probe
        pred = self.predict_next(obs, z[:n])  # FDM always predicts o_{t+1}
        fdm_loss = F.mse_loss(pred.float(), next_obs.float())
        loss = fdm_loss
        metrics = {"fdm_loss": fdm_loss.detach()}
        if labeled is not None:
            assert self.action_head is not None, "labelled batch given but the model has no action head"
            action_loss = F.mse_loss(self.action_head(z[n:]).float(), labeled[2].float())
            loss = loss + self.label_coef * action_loss
            metrics["action_loss"] = action_loss.detach()
        return loss, {"loss": loss.detach(), **metrics}

    def update_target(self) -> None:
        """LAPO has no target network (uniform interface with LAOM)."""
