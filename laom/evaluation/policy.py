"""Acting policies: saving, loading and running what the last stage of every method produces.

Every method ends in a pixel policy that outputs real actions: decoder(pi(o)) for the
latent action methods, a BC policy for the IDM and BC baselines. All are written as
``RUN/policy.pt``, self-contained (the latent policy's weights are copied into the
decoder run), with the data signature and the environment settings of the dataset they
were trained on, so ``laom evaluate --policy RUN`` needs nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from laom.errors import LaomError

POLICY_FORMAT = "laom-policy/1"
POLICY_FILE = "policy.pt"


def _module_payload(module: nn.Module | None) -> dict[str, Any] | None:
    if module is None:
        return None
    return {"kwargs": module.kwargs, "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()}}


def save_policy(path: str | Path, policy: nn.Module, decoder: nn.Module | None, meta: dict[str, Any]) -> None:
    """Write a (latent or acting) policy atomically: a kill leaves the old file or the new.
    Under torchrun only rank 0 writes."""
    from laom.training import distributed

    if not distributed.is_main():
        return
    path = Path(path)
    payload = {"format": POLICY_FORMAT, "policy": _module_payload(policy), "decoder": _module_payload(decoder), "meta": meta}
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
    from laom.training.bc import PixelPolicy
    from laom.training.decoder import ActionDecoder

    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise LaomError(f"--policy {path}: unreadable ({type(exc).__name__}); expected a run folder or its policy.pt") from None
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
        raise LaomError(f"--policy {run} is a latent action model run; train latent BC and a decoder on it first")
    if not (run / "summary.json").is_file():
        raise LaomError(f"--policy {run}: no {POLICY_FILE}; the run is unfinished (re-run its command to resume)")
    raise LaomError(f"--policy {run}: no {POLICY_FILE}")


def env_kwargs(meta: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """``laom.envs.make`` arguments of the dataset a policy was trained on (overrides win
    where not None)."""
    backgrounds = meta.get("backgrounds")
    kwargs: dict[str, Any] = {
        "task": f"{meta['domain_name']}-{meta['task_name']}",
        "difficulty": meta.get("difficulty", "scale_easy_video_hard"),
        "backgrounds": None if backgrounds in (None, "", "procedural", "None") else backgrounds,
        "split": meta.get("split", "train"),
        "img_hw": int(meta["img_hw"]),
        "frame_stack": int(meta["frame_stack"]),
        "dynamic": bool(meta.get("dynamic", True)),
    }
    for key, value in overrides.items():
        if value is not None:
            kwargs[key] = value
    return kwargs


@torch.no_grad()
def offline_action_mse(
    policy: ActingPolicy, data: Any, max_samples: int = 20000, batch_size: int = 256,
    reference_mean: np.ndarray | None = None, seed: int = 0,
) -> dict[str, float]:  # fmt: skip
    """MSE of the policy's actions to the dataset's actions on (a fixed sample of) its
    transitions, next to the MSE of always predicting ``reference_mean`` (the training
    actions' mean: what a policy that ignores the image would score)."""
    from laom.data.sampler import BatchSampler, to_model_input

    frame_stack = int(policy.meta["frame_stack"])
    steps = data.valid_steps
    if len(steps) > max_samples:
        steps = np.sort(np.random.default_rng([seed, 13]).choice(steps, max_samples, replace=False))
    sampler = BatchSampler(data, min(batch_size, len(steps)), frame_stack, 1, 0, keys=("obs",))
    preds = []
    for i in range(0, len(steps), sampler.batch_size):
        chunk = steps[i : i + sampler.batch_size]
        obs = to_model_input(sampler.gather(chunk, np.ones_like(chunk))["obs"], policy.device)
        preds.append(policy(obs).float().cpu().numpy())
    pred = np.concatenate(preds).astype(np.float64)
    true = data.actions[steps].astype(np.float64)
    mean = true.mean(0) if reference_mean is None else np.asarray(reference_mean, np.float64)
    return {
        "action_mse": float(((pred - true) ** 2).mean()),
        "constant_action_mse": float(((mean - true) ** 2).mean()),
        "samples": len(steps),
    }
