"""Streaming vs in-memory training batches: samples/s and peak RSS, file in the page cache.

    nice .venv/bin/python benchmarks/stream_speed.py [--cache_mb 256] [--batch 64 256]

Writes (or reuses, under /tmp/laom_stream_bench) an uncompressed release-layout file of
random 64 px frames about twice the cache size, reads it once so it sits in the OS page
cache, then times, each in its own subprocess so one mode's memory cannot inflate the
other's peak RSS:

* memory: ``load_frames`` + ``BatchSampler.batch`` (the in-memory path);
* stream: ``StreamingSampler.batch`` with ``--cache_mb`` (two windows of half the cache;
  the next window read in the background while the current one is trained on).

Batches are frame stack 3, future offset up to 10, keys obs/next_obs/future_obs. A timed
pass is one full epoch, so the streaming figure includes every window change and the
reads behind them; the best of ``--passes`` consecutive epochs is a run's figure, and the
median of ``--repeats`` alternating runs is reported (with the range of stream/memory
ratios). Peak RSS is ``ru_maxrss`` of the worker; "base" is its RSS after imports, before
any data. "CPU us/sample" counts every thread of the worker, the background reader's too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MB = 1 << 20
ATTRS = dict(domain_name="cheetah", task_name="run", difficulty="scale_easy_video_hard",
             dynamic=True, split="train")  # fmt: skip


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def cpu_seconds() -> float:
    """User + system CPU time of this process, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write_file(path: Path, trajectories: int, length: int, hw: int) -> None:
    """Random frames in the release layout, written with laom's writer, renamed when whole."""
    from laom.data.format import Writer, atomic_output, create

    with atomic_output(path, force=True) as tmp:
        create(tmp, {**ATTRS, "img_hw": hw}, force=True)
        rng = np.random.default_rng(0)
        with Writer(tmp, journal=False) as w:
            for i in range(trajectories):
                obs = rng.integers(0, 256, (length, hw, hw, 3), dtype=np.uint8)
                states = rng.standard_normal((length, 17), dtype=np.float32)
                actions = rng.uniform(-1, 1, (length, 6)).astype(np.float32)
                w.append(i, obs, states, actions, 0.0)


def read_through(path: Path) -> float:
    """Read the whole file once (into the page cache); returns GB/s."""
    t = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(16 * MB)
        while f.readinto(buf):
            pass
    return path.stat().st_size / (time.perf_counter() - t) / 1e9


def worker(args: argparse.Namespace) -> dict:
    """One timed run of one mode at one batch size, in this (fresh) process."""
    batch = args.batch[0]
    import torch

    from laom.data.sampler import BatchSampler, load_frames
    from laom.data.streaming import StreamingSampler

    torch.set_num_threads(1)
    base = rss_mb()
    t = time.perf_counter()
    if args.worker == "memory":
        sampler = BatchSampler(load_frames(args.path), batch, 3, 10, seed=0)
    else:
        sampler = StreamingSampler(args.path, batch, 3, 10, seed=0, cache_mb=args.cache_mb)
    sampler.batch(0)  # in-memory: after the load; streaming: the first window, read in place
    startup = time.perf_counter() - t
    per_epoch = sampler.updates_per_epoch
    best = float("inf")
    cpu0 = cpu_seconds()
    for p in range(args.passes):
        t = time.perf_counter()
        for u in range(1 + p * per_epoch, 1 + (p + 1) * per_epoch):
            sampler.batch(u)
        best = min(best, time.perf_counter() - t)
    cpu = cpu_seconds() - cpu0
    out = {
        "mode": args.worker,
        "batch": batch,
        "samples_per_s": per_epoch * batch / best,
        "cpu_us_per_sample": cpu / (args.passes * per_epoch * batch) * 1e6,  # all threads
        "startup_s": startup,
        "base_rss_mb": base,
        "peak_rss_mb": peak_rss_mb(),
    }
    if args.worker == "stream":
        out.update(
            windows_read=sampler.windows_read,
            windows_per_epoch=len(sampler._epoch(0).windows),
            wait_s=sampler.wait_seconds,
            read_s=sampler.read_seconds,
            peak_cache_mb=sampler.peak_resident_frames * sampler.data.bytes_per_frame / MB,
        )
        sampler.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cache_mb", type=float, default=256.0)
    p.add_argument("--dataset_mb", type=float, default=0.0, help="default: twice --cache_mb")
    p.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    p.add_argument("--hw", type=int, default=64)
    p.add_argument("--length", type=int, default=1000, help="frames per trajectory")
    p.add_argument("--passes", type=int, default=3, help="timed epochs per run (best reported)")
    p.add_argument("--repeats", type=int, default=3, help="runs per mode and batch (median)")
    p.add_argument("--dir", default="/tmp/laom_stream_bench")
    p.add_argument("--worker", choices=["memory", "stream"], help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    dataset_mb = args.dataset_mb or 2 * args.cache_mb
    frame = args.hw * args.hw * 3
    trajectories = max(2, round(dataset_mb * MB / (args.length * frame)))
    path = Path(args.dir) / f"stream_{trajectories}x{args.length}_{args.hw}px.hdf5"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        t = time.perf_counter()
        write_file(path, trajectories, args.length, args.hw)
        print(f"wrote {path} in {time.perf_counter() - t:.1f} s")
    size = path.stat().st_size / MB
    print(
        f"file {path}: {trajectories} trajectories x {args.length} frames of {args.hw} px, "
        f"{size:.0f} MB ({size / args.cache_mb:.2f}x the {args.cache_mb:g} MB cache)"
    )
    print(f"page-cache warm-up read: {read_through(path):.2f} GB/s")
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} "
        "(other work on the machine slows the background reads most)"
    )

    # Memory and stream runs alternate, ``--repeats`` times: load from other work on the
    # machine drifts, and pairing each stream run with the memory run just before it keeps
    # the comparison fair. Medians are reported.
    runs: dict[tuple[int, str], list[dict]] = {}
    for _ in range(args.repeats):
        for batch in args.batch:
            for mode in ("memory", "stream"):
                cmd = [sys.executable, __file__, "--worker", mode, "--path", str(path),
                       "--batch", str(batch), "--cache_mb", str(args.cache_mb),
                       "--passes", str(args.passes)]  # fmt: skip
                done = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if done.returncode:
                    sys.exit(f"{mode} worker failed:\n{done.stderr.strip()}")
                row = json.loads(done.stdout.strip().splitlines()[-1])
                runs.setdefault((batch, mode), []).append(row)
                print(f"  {mode:6s} batch {batch:4d}: {row['samples_per_s']:8.0f} samples/s")
    print(f"load average now {os.getloadavg()[0]:.2f}")

    def median(batch: int, mode: str, key: str) -> float:
        return float(np.median([r[key] for r in runs[batch, mode]]))

    print()
    print(f"{'batch':>5} {'mode':>6} {'samples/s':>10} {'vs memory':>15} {'CPU us/sample':>13} "
          f"{'peak RSS MB':>11} {'base RSS MB':>11} {'startup s':>9}")  # fmt: skip
    for batch in args.batch:
        for mode in ("memory", "stream"):
            ratios = [
                s["samples_per_s"] / m["samples_per_s"]
                for s, m in zip(runs[batch, mode], runs[batch, "memory"], strict=True)
            ]
            spread = f"{np.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
            print(
                f"{batch:>5} {mode:>6} {median(batch, mode, 'samples_per_s'):>10.0f} "
                f"{spread if mode == 'stream' else '1':>15} "
                f"{median(batch, mode, 'cpu_us_per_sample'):>13.1f} "
                f"{max(r['peak_rss_mb'] for r in runs[batch, mode]):>11.0f} "
                f"{median(batch, mode, 'base_rss_mb'):>11.0f} "
                f"{median(batch, mode, 'startup_s'):>9.2f}"
            )
    for batch in args.batch:
        row = runs[batch, "stream"][-1]
        print(
            f"stream batch {batch} (last run): {row['windows_per_epoch']} windows/epoch, "
            f"{row['windows_read']} windows read, background reading {row['read_s']:.2f} s, "
            f"batch() blocked on reads {row['wait_s']:.2f} s, "
            f"cache peak {row['peak_cache_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
