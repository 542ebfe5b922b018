"""Does a trained LAOM's forward model use its latent action at all?

LAOM's only training signal for the encoder is the FDM's error: predict the target
encoder's embedding of o_{t+1} from (stop-grad emb(o_t), z). If the FDM predicts as well
with another transition's z as with its own, the objective's optimum ignores z, and
nothing pushes the latents towards the actions, whatever the probe. This script measures
that on training transitions, per model, as one JSON line:

- ``fdm_rel``: the FDM's MSE / the target embedding's variance (1 = predicting the mean);
- ``shuffled_rel``: the same with z permuted across the batch;
- ``z_gain``: 1 - fdm / shuffled, the share of the FDM's error that the model's own z
  removes (0: z is ignored);
- ``copy_rel``: predicting emb(o_{t+1}) as the target's emb(o_t) (how much the embedding
  moves in one step at all).

Usage: python scripts/fdm_uses_z.py RUN [RUN ...] --data TRAIN.hdf5 [--samples 2048]
[--random laom] (``--random`` adds the first RUN's model at its initialisation).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
import yaml

from laom.data.sampler import BatchSampler, load_frames, to_model_input
from laom.models.saving import load_lam
from laom.training.lam import build_model, lam_config


@torch.no_grad()
def measure(name: str, model: torch.nn.Module, data, frame_stack: int, offset: int, samples: int) -> dict:
    if not hasattr(model, "fdm"):
        raise SystemExit(f"{name}: not a LAOM model (no latent forward model)")
    model.eval()
    sampler = BatchSampler(data, 256, frame_stack, offset, seed=7)  # k ~ U{1..offset}, as in training
    gen = torch.Generator().manual_seed(0)
    sums = {"fdm": 0.0, "shuffled": 0.0, "copy": 0.0, "var": 0.0}
    seen = 0
    for update in range(max(1, samples // 256)):
        arrays = sampler.batch(update).arrays
        obs, nxt, fut = (to_model_input(arrays[k]) for k in ("obs", "next_obs", "future_obs"))
        z, e_t = model.latent_action_and_embedding(obs, fut)
        target = model.target_embed(nxt)
        perm = torch.randperm(len(z), generator=gen)
        sums["fdm"] += float(((model.fdm(e_t, z) - target) ** 2).mean()) * len(z)
        sums["shuffled"] += float(((model.fdm(e_t, z[perm]) - target) ** 2).mean()) * len(z)
        sums["copy"] += float(((model.target_embed(obs) - target) ** 2).mean()) * len(z)
        sums["var"] += float(target.var(0).mean()) * len(z)
        seen += len(z)
    var = sums["var"] / seen
    fdm, shuffled = sums["fdm"] / seen, sums["shuffled"] / seen
    row = {"model": name, "transitions": seen, "target_variance": var, "fdm_rel": fdm / var,
           "shuffled_rel": shuffled / var, "z_gain": 1.0 - fdm / shuffled, "copy_rel": sums["copy"] / seen / var}  # fmt: skip
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--data", required=True)
    p.add_argument("--samples", type=int, default=2048)
    p.add_argument("--random", default="", help="also the first run's model at its initialisation (seed 0)")
    args = p.parse_args()
    torch.set_num_threads(2)
    data = load_frames(args.data)
    first_cfg = None
    for run in args.runs:
        model, meta = load_lam(run)
        cfg = yaml.safe_load((Path(run) / "config.yaml").read_text())
        first_cfg = first_cfg or cfg
        measure(Path(run).name, model.float(), data, int(meta["frame_stack"]), int(cfg["future_offset"]), args.samples)
    if args.random:
        fields = {f.name for f in dataclasses.fields(lam_config(args.random))}
        cfg = lam_config(args.random, **{k: v for k, v in first_cfg.items() if k in fields and k != "method"})
        torch.manual_seed(0)
        measure(f"random-{args.random}", build_model(cfg, data).float(), data, cfg.frame_stack, cfg.future_offset,
                args.samples)  # fmt: skip


if __name__ == "__main__":
    main()
