"""A policy's offline action MSE binned by the step's index in its trajectory.

Why: a BC policy that fails early in an episode may be imitating the start of a
trajectory worse than the steady gait; this says whether it does.

    python scripts/offline_by_step.py RUN EVAL.hdf5
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from laom.data.sampler import BatchSampler, load_frames, to_model_input
from laom.models.saving import load_policy

BINS = ((0, 50), (50, 100), (100, 150), (150, 200), (200, 300), (300, 500), (500, 1000))


def main(run: str, data_path: str) -> None:
    policy = load_policy(run)
    data = load_frames(data_path)
    steps = data.valid_steps
    sampler = BatchSampler(data, 256, int(policy.meta["frame_stack"]), 1, 0, keys=("obs",))
    preds = []
    with torch.no_grad():
        for i in range(0, len(steps), 256):
            chunk = steps[i : i + 256]
            obs = sampler.gather(chunk, np.ones_like(chunk))["obs"]
            preds.append(policy(to_model_input(obs, policy.device)).numpy())
    true = data.actions[steps]
    err = ((np.concatenate(preds) - true) ** 2).mean(1)
    t = steps - data.traj_start[steps]
    for lo, hi in BINS:
        m = (t >= lo) & (t < hi)
        if m.any():
            print(f"steps {lo:4d}-{hi:4d}: MSE {err[m].mean():.3f} (action variance {true[m].var(0).mean():.3f})")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
