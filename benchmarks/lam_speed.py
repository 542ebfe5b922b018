"""LAM training throughput (samples/s of the full update step) for LAPO, LAOM, LAOM+labels.

    nice .venv/bin/python benchmarks/lam_speed.py                 # reference shape + cpu preset
    nice .venv/bin/python benchmarks/lam_speed.py --shape paper --updates 3 --warmup 1
    nice .venv/bin/python benchmarks/lam_speed.py --compare       # fp32/bf16 x channels_last

Shapes:

* ``ref``: the brief's comparison point with the release (batch 64, 3 stacked 64 px frames,
  encoder scale 1 with 2 res blocks, latent dim 256, heads 256, future offset 10,
  augmentations on; LAPO with FSQ (2, 2, 4); labelled batch ``--labeled-batch``);
* ``cpu``: the presets in laom/configs/cpu (LAPO there has augmentations off);
* ``paper``: the presets in laom/configs/paper (batch 512, scale 6, latent 8192).

Each figure times ``LAMTrainer.step`` (gather, normalise, augment, forward, backward,
AdamW, EMA) after warm-up steps, best of ``--repeats``, on random 64 px frames.
"per CPU-second" divides by this process's CPU time instead of wall time: with
``--threads 1`` it estimates the idle-machine rate of one core when other jobs compete
for the CPU (with 2+ threads it also counts OpenMP spin-waiting, so use wall time).
Set MALLOC_MMAP_THRESHOLD_=MALLOC_TRIM_THRESHOLD_=8000000000 in the environment to see
the effect of glibc keeping freed memory (the ``laom`` CLI sets them itself).

``--bound`` profiles the timed updates and prints the share of CPU time spent inside
convolutions (forward and backward) and the "conv-only bound": the rate the step would
reach if everything else took no time. Since the release runs the same convolutions
through the same oneDNN kernels, bound / release rate is the most any implementation of
the same model shapes can gain over it on this CPU.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from typing import NamedTuple

import numpy as np
import torch

from laom.data.sampler import FrameData
from laom.methods import lam_reads_labels
from laom.training.config import parse_config
from laom.training.lam import CONFIGS, LAMTrainer
from laom.training.presets import preset_file
from laom.training.runtime import setup_runtime

REF = ["--batch_size", "64", "--frame_stack", "3", "--encoder_scale", "1", "--num_res_blocks", "2",
       "--latent_dim", "256", "--head_dim", "256", "--future_offset", "10", "--use_aug", "true"]  # fmt: skip


def frames(trajectories: int, length: int, hw: int = 64) -> FrameData:
    rng = np.random.default_rng(0)
    n = trajectories * length
    return FrameData(
        frames=rng.integers(0, 256, (n, 3, hw, hw), dtype=np.uint8),
        actions=rng.uniform(-1, 1, (n, 6)).astype(np.float32),
        states=rng.normal(size=(n, 17)).astype(np.float32),
        traj_offsets=np.arange(0, n + 1, length, dtype=np.int64),
        attrs={"domain_name": "cheetah", "task_name": "run"},
    )


def conv_share(prof) -> float:
    """Fraction of the profiled self CPU time spent in convolution kernels."""
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if "convolution" in e.key)
    return conv / total if total else float("nan")


class Speed(NamedTuple):
    """One measurement; the page faults and system time show whether the allocator hands
    each step fresh pages (the paper preset's activations are hundreds of MB)."""

    samples_per_s: float  # wall clock, best of repeats
    per_cpu_second: float  # samples per CPU-second of this process, best of repeats
    conv_share: float | None  # with --bound
    faults_per_step: float  # minor page faults, mean over the timed updates
    sys_s_per_step: float  # system CPU seconds, mean over the timed updates


def measure(
    method: str, shape: str, extra: list[str], data: FrameData, labeled: FrameData, args
) -> Speed:
    """The full update step of ``method`` at ``shape`` timed after warm-up."""
    preset = None if shape == "ref" else preset_file(shape, f"lam-{method}")
    overrides = (REF if shape == "ref" else []) + extra
    if shape == "ref" and lam_reads_labels(method):
        overrides += ["--labeled_batch_size", str(args.labeled_batch)]
    cfg = parse_config(CONFIGS[method], preset, overrides)
    cfg.total_updates = 10**6
    if args.threads:
        cfg.threads = args.threads
    runtime = setup_runtime(cfg)
    trainer = LAMTrainer(cfg, data, labeled if lam_reads_labels(method) else None, runtime)
    for u in range(args.warmup):
        trainer.step(u)
    best, best_cpu = float("inf"), float("inf")
    u = args.warmup
    usage = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(args.repeats):
        t, c = time.perf_counter(), time.process_time()
        for _ in range(args.updates):
            trainer.step(u)
            u += 1
        best, best_cpu = min(best, time.perf_counter() - t), min(best_cpu, time.process_time() - c)
    after = resource.getrusage(resource.RUSAGE_SELF)
    steps = args.repeats * args.updates
    faults = (after.ru_minflt - usage.ru_minflt) / steps
    sys_s = (after.ru_stime - usage.ru_stime) / steps
    share = None
    if args.bound:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.updates):
                trainer.step(u)
                u += 1
        share = conv_share(prof)
    samples = cfg.batch_size * args.updates
    return Speed(samples / best, samples / best_cpu, share, faults, sys_s)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--shape",
        choices=("ref", "cpu", "paper", "both"),
        default="both",
        help="both = ref and cpu",
    )
    p.add_argument("--methods", default="laom,laom-labels,lapo")
    p.add_argument("--updates", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument(
        "--labeled-batch",
        type=int,
        default=64,
        help="labelled batch of LAOM+labels at the ref shape",
    )
    p.add_argument(
        "--compare", action="store_true", help="also fp32 vs bf16 and channels_last on/off"
    )
    p.add_argument("--extra", default="", help="more config overrides, e.g. '--use_aug false'")
    p.add_argument(
        "--bound", action="store_true", help="also profile: convolution share and conv-only bound"
    )
    args = p.parse_args()

    print(f"torch {torch.__version__}, threads {args.threads or torch.get_num_threads()}, "
          f"MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', 'unset')}, "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    data = frames(8, 500)
    labeled = frames(2, 500)
    shapes = ("ref", "cpu") if args.shape == "both" else (args.shape,)
    variants = [("default", [])]
    if args.compare:
        variants = [
            ("fp32", ["--precision", "fp32", "--channels_last", "false"]),
            ("fp32+cl", ["--precision", "fp32", "--channels_last", "true"]),
            ("bf16", ["--precision", "bf16", "--channels_last", "false"]),
            ("bf16+cl", ["--precision", "bf16", "--channels_last", "true"]),
        ]
    for shape in shapes:
        for method in args.methods.split(","):
            for name, extra in variants:
                sp = measure(method, shape, extra + args.extra.split(), data, labeled, args)
                sps, share = sp.samples_per_s, sp.conv_share
                bound = "" if share is None else f"  conv {100 * share:4.1f}% -> bound {sps / share:7.1f}"
                print(f"{shape:5s} {method:11s} {name:8s} {sps:8.1f} samples/s  ({sp.per_cpu_second:7.1f} per CPU-second)"
                      f"  {sp.faults_per_step:9.0f} page faults and {sp.sys_s_per_step:5.2f} s system time per step{bound}",
                      flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
