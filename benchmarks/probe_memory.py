"""Peak memory and time of one closed-form linear probe at the LAM's final-probe shape.

    .venv/bin/python benchmarks/probe_memory.py [--samples 20000] [--dim 8192] [--threads 1]

A LAOM LAM's final probe fits three probes (action, state, distractors) on 20,000
training and 20,000 test latents of 8,192 dimensions. The probe's float64 work is what
decides whether two LAM stages can probe at once on a 24 GB machine (docs/study_plan.md,
Progress), so this prints the peak resident memory one fit adds beside its inputs (the
process's ru_maxrss before and after), its time, and its test MSE on random features with
a planted linear signal (the same for any block size: tests/test_models.py).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from laom.models.probe import PROBE_ROWS, fit_linear_probe


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20000, help="transitions per side (fit, test)")
    parser.add_argument("--dim", type=int, default=8192, help="latent dimensions")
    parser.add_argument("--outputs", type=int, default=6, help="action dimensions (cheetah-run: 6)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.samples, args.dim, generator=gen)
    test_x = torch.randn(args.samples, args.dim, generator=gen)
    k = min(args.outputs, args.dim)
    y = 0.5 * x[:, :k] + torch.randn(args.samples, k, generator=gen)
    test_y = 0.5 * test_x[:, :k] + torch.randn(args.samples, k, generator=gen)
    before = peak_gb()
    start = time.perf_counter()
    result = fit_linear_probe(x, y, test_x, test_y)
    seconds = time.perf_counter() - start
    after = peak_gb()
    print(f"probe {args.samples:,} x {args.dim:,} (float32 inputs, blocks of {PROBE_ROWS} rows, "
          f"{args.threads} thread(s)): inputs {before:.2f} GB peak RSS, the fit adds {after - before:.2f} GB, "
          f"{seconds:.0f} s, test MSE {result.mse:.6f}")  # fmt: skip


if __name__ == "__main__":
    main()
