"""LAOM and LAOM+supervision: latent action learning with the FDM in latent space.

One ResNet encoder embeds o_t and o_{t+k} (one batched pass). The latent IDM maps the
pair of embeddings to z (8192-d in the paper, no quantization); the latent FDM maps
(stop-grad emb(o_t), z) to the *target* encoder's embedding of o_{t+1}. The target is
an EMA copy of the encoder (tau = 0.001) or, with supervision, the online encoder under
stop-grad. Loss: MSE, no projection heads.

With ``action_dim`` set (LAOM+supervision), a linear head z -> true action is trained
on a small labelled batch every step, added with weight ``label_coef`` (0.001): the
few real labels steer z towards the agent's actions and away from distractors.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from laom.models.encoder import DEFAULT_CHANNELS, ResNetEncoder, orthogonal_init
from laom.models.mlp import ConditionedMLP


class LAOM(nn.Module):
    kind: ClassVar[str] = "laom"  # its name in model files (laom and laom-labels alike)

    def __init__(
        self,
        obs_shape: Sequence[int],
        latent_dim: int = 8192,
        encoder_scale: int = 1,
        num_res_blocks: int = 2,
        channels: Sequence[int] = DEFAULT_CHANNELS,
        head_dim: int = 1024,
        head_blocks: int = 3,
        target: str = "ema",
        target_tau: float = 0.001,
        action_dim: int | None = None,
        label_coef: float = 0.001,
    ) -> None:
        super().__init__()
        if target not in ("ema", "stopgrad"):
            raise ValueError(f"target must be 'ema' or 'stopgrad', got {target!r}")
        self.kwargs = dict(
            obs_shape=list(obs_shape), latent_dim=latent_dim, encoder_scale=encoder_scale,
            num_res_blocks=num_res_blocks, channels=list(channels), head_dim=head_dim,
            head_blocks=head_blocks, target=target, target_tau=target_tau,
            action_dim=action_dim, label_coef=label_coef,
        )  # fmt: skip
        self.latent_dim = latent_dim
        self.target_tau = target_tau
        self.label_coef = label_coef
        self.encoder = ResNetEncoder(obs_shape, encoder_scale, num_res_blocks, channels)
        emb = self.encoder.out_dim
        self.idm = ConditionedMLP(0, 2 * emb, latent_dim, head_dim, head_blocks)
        self.fdm = ConditionedMLP(emb, latent_dim, emb, head_dim, head_blocks)
        self.action_head = nn.Linear(latent_dim, action_dim) if action_dim else None
        self.apply(orthogonal_init)
        self.target_encoder = None
        if target == "ema":
            self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)

    @classmethod
    def from_config(cls, cfg: Any, obs_shape: Sequence[int], action_dim: int | None) -> LAOM:
        """The model a LAM config (laom.training.lam.LAMConfig) describes; ``action_dim``
        adds the labelled action head (None: LAOM without supervision)."""
        return cls(
            obs_shape, cfg.latent_dim, encoder_scale=cfg.encoder_scale, num_res_blocks=cfg.num_res_blocks,
            channels=cfg.encoder_channels, head_dim=cfg.head_dim, head_blocks=cfg.head_blocks, target=cfg.target,
            target_tau=cfg.target_tau, action_dim=action_dim, label_coef=cfg.label_coef,
        )  # fmt: skip

    def embed(self, obs: torch.Tensor) -> torch.Tensor:
        return self.encoder(obs).flatten(1)

    def latent_action(self, obs: torch.Tensor, future_obs: torch.Tensor) -> torch.Tensor:
        return self.latent_action_and_embedding(obs, future_obs)[0]

    def latent_action_and_embedding(
        self, obs: torch.Tensor, future_obs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, emb(o_t)) from one encoder pass (probes need both)."""
        e_t, e_k = self.embed(torch.cat([obs, future_obs])).chunk(2)
        return self.idm(None, torch.cat([e_t, e_k], dim=-1)), e_t

    @torch.no_grad()
    def target_embed(self, obs: torch.Tensor) -> torch.Tensor:
        encoder = self.target_encoder if self.target_encoder is not None else self.encoder
        return encoder(obs).flatten(1)

    def loss(
        self,
        obs: torch.Tensor,
        next_obs: torch.Tensor,
        future_obs: torch.Tensor,
        labeled: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Inputs are [B, 3F, H, W] in [-1, 1]; ``labeled`` = (o_t, o_{t+k}, a_t)."""
        n = obs.shape[0]
        # [o_t; labelled o_t; o_{t+k}; labelled o_{t+k}]: one augment call, one encoder pass.
        lab = [labeled[0]] if labeled is not None else []
        lab_future = [labeled[1]] if labeled is not None else []
        pair = torch.cat([obs, *lab, future_obs, *lab_future])
        if augment is not None:  # every image independently, the target o_{t+1} too
            pair, next_obs = augment(pair), augment(next_obs)
        e_t, e_k = self.embed(pair).chunk(2)
        z = self.idm(None, torch.cat([e_t, e_k], dim=-1))  # IDM: (o_t, o_{t+k}) -> z
        self.last_latent = z[:n].detach()  # for the trainer's online probe
        pred_next = self.fdm(e_t[:n].detach(), z[:n])  # FDM: (sg emb(o_t), z) -> emb(o_{t+1})
        target = self.target_embed(next_obs)  # EMA or stop-grad encoder
        fdm_loss = F.mse_loss(pred_next.float(), target.float())
        metrics = {"fdm_loss": fdm_loss.detach()}
        loss = fdm_loss
        if labeled is not None:
            assert self.action_head is not None, (
                "labelled batch given but the model has no action head"
            )
            action_loss = F.mse_loss(self.action_head(z[n:]).float(), labeled[2].float())
            loss = loss + self.label_coef * action_loss
            metrics["action_loss"] = action_loss.detach()
        metrics["loss"] = loss.detach()
        return loss, metrics

    @torch.no_grad()
    def update_target(self) -> None:
        """EMA: target <- (1 - tau) target + tau online (no-op with a stop-grad target)."""
        if self.target_encoder is None:
            return
        online = list(self.encoder.parameters())
        target = list(self.target_encoder.parameters())
        torch._foreach_lerp_(target, online, self.target_tau)
