"""What do a trained LAM's latent actions encode: the agent's actions or the distractors?

The files the CPU-preset LAMs were trained on carry no distractor records, so their
summaries have no distractor probe. This script re-probes finished LAM runs on two
files that do (collected with today's ``laom collect``, which records the camera,
colour and background state behind every frame): the closed-form probes of a LAM run's
end (``laom.training.lam.run_probes``) fitted on ``--fit`` and scored on ``--test``,
one JSON line per model: the action probe's MSE / chance, the state probe's R² and,
per distractor factor, the R² of a linear probe from z to that factor's change over
the transition.

Usage: python scripts/probe_distractors.py RUN [RUN ...] --fit A.hdf5 --test B.hdf5
[--random laom] [--samples 20000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
import yaml

from laom.data.sampler import load_frames
from laom.models.device import Runtime
from laom.models.saving import load_lam
from laom.training.lam import build_model, lam_config, run_probes


def config_of(run: str):
    saved = yaml.safe_load((Path(run) / "config.yaml").read_text())
    fields = {f.name for f in dataclasses.fields(lam_config(saved["method"]))}
    return lam_config(saved["method"], **{k: v for k, v in saved.items() if k in fields and k != "method"})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--fit", required=True, help="file with distractor records the probes are fitted on")
    p.add_argument("--test", required=True, help="file with distractor records the probes are scored on")
    p.add_argument("--samples", type=int, default=20000, help="transitions per side (at most)")
    p.add_argument("--random", default="", help="also the first run's model at its initialisation (seed 0)")
    args = p.parse_args()
    runtime = Runtime(torch.device("cpu"), None)
    fit, test = load_frames(args.fit), load_frames(args.test)
    if fit.distractors is None or test.distractors is None:
        raise SystemExit(f"{args.fit if fit.distractors is None else args.test}: no distractor records")
    models = []
    for run in args.runs:
        models.append((Path(run).name, load_lam(run)[0].float(), config_of(run)))
    if args.random:
        cfg = dataclasses.replace(config_of(args.runs[0]), seed=0)
        torch.manual_seed(0)
        models.append((f"random-{args.random}", build_model(cfg, fit).float(), cfg))
    for name, model, cfg in models:
        cfg = dataclasses.replace(cfg, probe_samples=args.samples, probe_eval_samples=args.samples)
        out = run_probes(model, cfg, fit, test, runtime)
        row = {
            "model": name,
            "action_rel": out["action_probe_mse"] / out["action_probe_baseline_mse"],
            "state_r2": out["state_probe_r2"],
            "distractor_r2": out["distractor_probe_r2"],
            "fit": out["probe_train_samples"],
            "test": out["probe_test_samples"],
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
