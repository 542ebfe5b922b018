"""The acting policies every method ends in, and the one file format they are kept in.

A pixel policy maps frames to a vector: a latent action (latent BC) or a real action (the
BC and IDM baselines). An action decoder turns a latent action into a real one. Both are
rebuilt from their constructor arguments and weights, so ``policy.pt`` and
``latent_policy.pt`` hold no pickled classes and load whichever module defines them.

The classes live here, beside their save and load, rather than in the training stages
that fit them: evaluation, relabelling and the Python API load policies too, and none of
them should have to import a training loop for it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from laom.errors import LaomError
from laom.models.encoder import DEFAULT_CHANNELS, ResNetEncoder, orthogonal_init

POLICY_FORMAT = "laom-policy/1"
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


def _module_payload(module: nn.Module | None) -> dict[str, Any] | None:
    if module is None:
        return None
    return {
        "kwargs": module.kwargs,
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
    }


def save_policy(
    path: str | Path, policy: nn.Module, decoder: nn.Module | None, meta: dict[str, Any]
) -> None:
    """Write a (latent or acting) policy atomically: a kill leaves the old file or the new.

    Every process that calls this writes, as with :func:`laom.models.save_lam`: under
    torchrun the training stage lets rank 0 alone call it."""
    path = Path(path)
    payload = {
        "format": POLICY_FORMAT,
        "policy": _module_payload(policy),
        "decoder": _module_payload(decoder),
        "meta": meta,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


class ActingPolicy(nn.Module):
    """o_t -> action: ``decoder(policy(o_t))``, or ``policy(o_t)`` when there is no decoder."""

    def __init__(self, policy: nn.Module, decoder: nn.Module | None, meta: dict[str, Any]) -> None:
        super().__init__()
        self.policy = policy
        self.decoder = decoder
        self.meta = meta

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


def load_policy_file(path: str | Path, map_location: str | torch.device = "cpu") -> ActingPolicy:
    """Rebuild a policy saved by :func:`save_policy` (in eval mode)."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise LaomError(
            f"--policy {path}: unreadable ({type(exc).__name__}); expected a run folder or its policy.pt"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != POLICY_FORMAT:
        raise LaomError(f"--policy {path}: not a policy file (expected format {POLICY_FORMAT})")
    policy = PixelPolicy(**payload["policy"]["kwargs"])
    policy.load_state_dict(payload["policy"]["state_dict"])
    decoder = None
    if payload["decoder"] is not None:
        decoder = ActionDecoder(**payload["decoder"]["kwargs"])
        decoder.load_state_dict(payload["decoder"]["state_dict"])
    return ActingPolicy(policy, decoder, payload["meta"]).to(map_location).eval()


def load_policy(run: str | Path, map_location: str | torch.device = "cpu") -> ActingPolicy:
    """The acting policy of a run directory (decoder, IDM or BC-baseline run), or a
    one-line error that says which command would make one."""
    run = Path(run)
    if run.is_file():
        return load_policy_file(run, map_location)
    if not run.is_dir():
        raise LaomError(f"--policy {run}: no such run directory")
    if (run / POLICY_FILE).is_file():
        return load_policy_file(run / POLICY_FILE, map_location)
    if (run / "latent_policy.pt").is_file():
        raise LaomError(
            f"--policy {run} is a latent BC run (it outputs latent actions); "
            f"train an action decoder on it: laom train decoder --policy {run} --labeled FILE --out RUN"
        )
    if (run / "lam.pt").is_file():
        raise LaomError(
            f"--policy {run} is a latent action model run; train latent BC and a decoder on it first"
        )
    if not (run / "summary.json").is_file():
        raise LaomError(
            f"--policy {run}: no {POLICY_FILE}; the run is unfinished (re-run its command to resume)"
        )
    raise LaomError(f"--policy {run}: no {POLICY_FILE}")
