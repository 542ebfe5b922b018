"""What evaluating an acting policy needs beyond the policy itself.

A saved policy (:mod:`laom.models.policy`) carries the environment settings and data
signature of the dataset it was trained on; here they become the arguments of
``laom.envs.make`` (:func:`env_kwargs`), and the policy is scored offline on a held-out
file's transitions (:func:`offline_action_mse`), which the training stages report
and the learning curves plot.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from laom.models.meta import PolicyMeta
from laom.models.policy import ActingPolicy


def env_kwargs(meta: PolicyMeta, **overrides: Any) -> dict[str, Any]:
    """``laom.envs.make`` arguments of the dataset a policy was trained on (overrides win
    where not None). A policy saved before its meta kept the environment settings is
    evaluated in the defaults its dataset was then collected with."""
    backgrounds = meta.backgrounds
    kwargs: dict[str, Any] = {
        "task": f"{meta.domain_name}-{meta.task_name}",
        "difficulty": "scale_easy_video_hard" if meta.difficulty is None else meta.difficulty,
        "backgrounds": None if backgrounds in (None, "", "procedural", "None") else backgrounds,
        "split": "train" if meta.split is None else meta.split,
        "img_hw": int(meta.img_hw),
        "frame_stack": int(meta.frame_stack),
        "dynamic": True if meta.dynamic is None else bool(meta.dynamic),
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

    frame_stack = int(policy.meta.frame_stack)
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
