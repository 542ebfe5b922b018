"""Collection throughput, and what obs compression costs and saves.

    MUJOCO_GL=egl .venv/bin/python benchmarks/collect_speed.py [--workers 1 2] [--episodes 4]
    .venv/bin/python benchmarks/collect_speed.py --compression-report FILE.hdf5

The first form collects cheetah-run (scale_easy_video_hard, 64 px, full 1000-step
episodes) into a temporary file once per worker count and prints frames/s two ways:
end to end (including spawning workers and building environments, what a short run
sees) and steady state (workers x frames/s of one worker while rolling out, what a long
run converges to). ``--expert`` defaults to the release's PPO expert next to the
repository, else the built-in one.

The second form rewrites an (uncompressed) collected file with lzf and gzip and reports
file size, random whole-trajectory reads (1000-frame slices), random 32-frame windows
(a training-like access) and a sequential whole-file read, in frames/s. Reads come from
the page cache when the file fits in memory, so the figures measure HDF5 and the
decompressor, not the disk.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference-experts"


def collect_speed(args: argparse.Namespace) -> None:
    from laom.data.collect import CollectConfig, collect

    expert = args.expert
    if expert is None and (REFERENCE / args.task).exists():
        expert = str(REFERENCE / args.task)
    print(
        f"{args.task}, {args.difficulty}, {args.img_hw} px, {args.episodes} episodes of "
        f"{args.max_steps or 1000} steps, expert {expert or 'builtin'}, {os.cpu_count()} cpu cores"
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for workers in args.workers:
            out = Path(tmp) / f"w{workers}.hdf5"
            cfg = CollectConfig(
                task=args.task,
                episodes=args.episodes,
                out=out,
                difficulty=args.difficulty,
                img_hw=args.img_hw,
                workers=workers,
                seed=args.seed,
                expert=expert,
                max_steps=args.max_steps,
                compression=args.compression,
                progress=False,
            )
            res = collect(cfg, log=lambda _msg: None)
            steady = max(workers, 1) * res.worker_fps()
            print(
                f"workers {workers}: {res.frames} frames in {res.seconds:.1f} s -> "
                f"{res.fps:.0f} frames/s end to end, {steady:.0f} frames/s steady state "
                f"({res.worker_fps():.0f} per worker); mean return {np.mean(res.returns):.1f}"
            )


def _rewrite(src: Path, out: Path, compression: str) -> float:
    from laom.data.format import DatasetReader, Writer, create

    start = time.perf_counter()
    with DatasetReader(src) as reader:
        attrs = {k: v for k, v in reader.h5.attrs.items()}
        attrs["obs_compression"] = compression
        create(out, attrs, force=True)
        with Writer(out, compression, journal=False, durable=False) as w:
            for i in reader.indices:
                t = reader[i]
                w.append(i, t.obs, t.states, t.actions, t.traj_return)
    return time.perf_counter() - start


def _best(fn, repeats: int) -> float:
    """Fastest of ``repeats`` timings: on a shared machine the minimum is the least noisy."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _read_speeds(path: Path, seed: int = 0, repeats: int = 3) -> tuple[float, float, float]:
    from laom.data.format import DatasetReader

    rng = np.random.default_rng(seed)
    with DatasetReader(path) as r:
        lengths = {i: r.length(i) for i in r.indices}
        total = sum(lengths.values())
        # random whole 1000-frame slices, each trajectory once, in random order
        order = [int(i) for i in rng.permutation(r.indices)]
        frames = sum(min(1000, lengths[i]) for i in order)
        slices = frames / _best(lambda: [r.obs(i, 0, 1000) for i in order], repeats)
        # random 32-frame windows (frame stacks, (o_t, o_t+k) pairs read in batches)
        picks = [int(i) for i in rng.choice(r.indices, 1000)]
        starts = [int(rng.integers(0, max(1, lengths[i] - 32))) for i in picks]
        windows = (
            32
            * len(picks)
            / _best(
                lambda: [r.obs(i, s, s + 32) for i, s in zip(picks, starts, strict=True)], repeats
            )
        )
        # the whole file, in order
        whole = total / _best(lambda: [r.obs(i) for i in r.indices], repeats)
    return slices, windows, whole


def compression_report(path: Path, tmpdir: str | None) -> None:
    from laom.data.format import info

    facts = info(path)
    print(
        f"{path}: {facts['trajectories']} trajectories, {facts['transitions']} frames, {facts['compression']}"
    )
    rows = []
    with tempfile.TemporaryDirectory(dir=tmpdir or path.parent) as tmp:
        for spec in ("none", "lzf", "gzip:1", "gzip:4", "gzip:9"):
            out = Path(tmp) / f"{spec.replace(':', '')}.hdf5"
            write_s = _rewrite(path, out, spec)
            slices, windows, whole = _read_speeds(out)  # best of 3: the page cache is warm
            size = out.stat().st_size
            rows.append((spec, size, facts["transitions"] / write_s, slices, windows, whole))
            out.unlink()
    base = rows[0][1]
    print(
        "| obs compression | file size | ratio | write frames/s | random 1000-frame slices | random 32-frame windows | whole file |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for spec, size, write, slices, windows, whole in rows:
        print(
            f"| {spec} | {size / 2**20:.0f} MiB | {base / size:.2f}x | {write:,.0f} | "
            f"{slices:,.0f} | {windows:,.0f} | {whole:,.0f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", default="cheetah-run")
    parser.add_argument("--difficulty", default="scale_easy_video_hard")
    parser.add_argument("--img-hw", type=int, default=64)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--expert", default=None)
    parser.add_argument("--compression", default="none")
    parser.add_argument("--dir", default=None, help="where temporary files go")
    parser.add_argument(
        "--compression-report", type=Path, metavar="FILE", help="compare obs compressions on FILE"
    )
    args = parser.parse_args()
    if args.compression_report:
        compression_report(args.compression_report, args.dir)
    else:
        collect_speed(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
