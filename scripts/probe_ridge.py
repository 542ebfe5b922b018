"""Is a flat probe curve the latents or the probe? Re-probe trained LAMs with more data
and a stronger ridge.

The held-out probe fits 8192-d latents on 10,000-20,000 transitions with a ridge of 1e-4
(relative): close to interpolation, so its test error can be mostly variance. This script
encodes up to ``--fit`` training transitions and ``--test`` held-out ones once per model
(cached under ``--cache``), then fits the probe for every ridge and fit size from one
Gram matrix per size, and prints MSE / chance for each as a JSON line.

Usage: python scripts/probe_ridge.py RUN [RUN ...] [--random laom] --data TRAIN.hdf5
--eval-data EVAL.hdf5 [--fit 30000] [--test 10000]
``--random METHOD`` adds the randomly initialised model of the first RUN's config (seed 0),
the floor every curve starts from.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
import yaml

from laom.data.sampler import load_frames
from laom.models.device import Runtime
from laom.training.lam import build_model, encode_transitions, lam_config

RIDGES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def encoded(name: str, model: torch.nn.Module, frame_stack: int, args: argparse.Namespace) -> dict:
    path = Path(args.cache) / f"{name}.npz"
    if path.exists():
        return dict(np.load(path))
    runtime = Runtime(torch.device("cpu"), None)
    train, test = load_frames(args.data), load_frames(args.eval_data)
    a = encode_transitions(model, train, frame_stack, args.fit, runtime, 0)
    b = encode_transitions(model, test, frame_stack, args.test, runtime, 1)
    out = {"za": a["latent"].numpy(), "ya": a["actions"].numpy(), "zb": b["latent"].numpy(),
           "yb": b["actions"].numpy()}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def probe_table(name: str, d: dict, sizes: list[int]) -> list[dict]:
    """MSE / chance for each fit size and relative ridge (penalty ridge * n * ||W||^2 on
    standardised features, as laom.models.probe.fit_linear_probe)."""
    rows = []
    zb, yb = torch.from_numpy(d["zb"]).double(), torch.from_numpy(d["yb"]).double()
    for n in sizes:
        x, y = torch.from_numpy(d["za"][:n]).float(), torch.from_numpy(d["ya"][:n]).double()
        mean, std = x.mean(0), x.std(0).clamp_min(1e-8)
        xs, ym = (x - mean) / std, y.mean(0)
        xt = (zb - mean.double()) / std.double()
        chance = float(((yb - ym) ** 2).mean())
        gram = (xs.T @ xs).double()  # float32 product (the costly part), float64 solve
        rhs = xs.double().T @ (y - ym)
        eye = torch.eye(gram.shape[0], dtype=torch.float64)
        for r in RIDGES:
            w = torch.cholesky_solve(rhs, torch.linalg.cholesky(gram + r * n * eye))
            pred = xt @ w + ym
            rows.append(
                {
                    "model": name,
                    "fit": n,
                    "ridge": r,
                    "rel": float(((pred - yb) ** 2).mean()) / chance,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--random", default="")
    p.add_argument("--data", required=True)
    p.add_argument("--eval-data", required=True)
    p.add_argument("--fit", type=int, default=30000)
    p.add_argument("--test", type=int, default=10000)
    p.add_argument("--cache", default="runs/probe_diag")
    args = p.parse_args()
    torch.set_grad_enabled(False)
    models = []
    for run in args.runs:
        from laom.api import load_lam

        lam = load_lam(run)
        models.append((Path(run).name, lam.module, lam.frame_stack))
    if args.random:
        cfg_dict = yaml.safe_load((Path(args.runs[0]) / "config.yaml").read_text())
        names = {f.name for f in dataclasses.fields(type(lam_config(args.random)))}
        cfg = lam_config(
            args.random, **{k: v for k, v in cfg_dict.items() if k in names and k != "method"}
        )
        torch.manual_seed(0)
        model = build_model(cfg, load_frames(args.eval_data))
        models.append((f"random-{args.random}", model, cfg.frame_stack))
    sizes = sorted({min(args.fit, s) for s in (10000, args.fit)})
    for name, model, fs in models:
        d = encoded(name, model, fs, args)
        probe_table(name, d, sizes)


if __name__ == "__main__":
    main()
