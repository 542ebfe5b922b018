"""Can LAOM+supervision's labelled head learn the actions from its latents in a run's
length? Train the head alone, on frozen latents, at several learning rates.

The head's own loss stays at chance through the CPU preset's 1,560 updates (docs/lam_probes.md).
Either its latents carry no linear action information, or 1,560 Adam steps on 16
labelled samples are too few for an 8192-input linear layer. This script separates the
two: it reads the latents ``scripts/probe_ridge.py`` cached (``--cache``, one model's
npz), trains ``Linear(latent_dim, action_dim)`` with Adam and the run's schedule (30%
linear warmup, linear decay) on standardised actions, and prints the train and held-out
MSE (1 = predicting the mean) per learning rate, one JSON line each.

Usage: python scripts/head_lr.py runs/probe_diag/laom-labels-32-s0.npz [--updates 1560]
[--batch 16] [--lrs 1e-3,3e-4,1e-4]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("npz")
    p.add_argument("--updates", type=int, default=1560)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--warmup", type=float, default=0.3)
    p.add_argument("--lrs", default="1e-3,3e-4,1e-4,3e-5,1e-5")
    args = p.parse_args()
    d = np.load(args.npz)
    za, zb = torch.from_numpy(d["za"]).float(), torch.from_numpy(d["zb"]).float()
    ya, yb = torch.from_numpy(d["ya"]).float(), torch.from_numpy(d["yb"]).float()
    mean, std = ya.mean(0), ya.std(0)
    ya, yb = (ya - mean) / std, (yb - mean) / std
    warm = max(1, int(args.warmup * args.updates))
    for lr in (float(x) for x in args.lrs.split(",")):
        torch.manual_seed(0)
        head = torch.nn.Linear(za.shape[1], ya.shape[1])
        opt = torch.optim.Adam(head.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(0)
        for u in range(args.updates):
            scale = (u + 1) / warm if u < warm else (args.updates - u) / (args.updates - warm)
            for group in opt.param_groups:
                group["lr"] = lr * scale
            idx = torch.randint(0, len(za), (args.batch,), generator=gen)
            loss = F.mse_loss(head(za[idx]), ya[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            train = F.mse_loss(head(za), ya).item() / ya.var(0).mean().item()
            test = F.mse_loss(head(zb), yb).item() / ((yb - yb.mean(0)) ** 2).mean().item()
        print(
            json.dumps({"lr": lr, "train_rel": round(train, 3), "test_rel": round(test, 3)}),
            flush=True,
        )


if __name__ == "__main__":
    main()
