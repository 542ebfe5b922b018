"""Throughput of the LAM data path: (o_t, o_{t+1}, o_{t+k}) frame stacks per second.

    nice .venv/bin/python benchmarks/data_path_speed.py [--batch 512] [--trajectories 20]

Writes a release-layout HDF5 file of random 64 px frames, loads it with
``laom.data.sampler.load_frames`` and times:

* gather: ``BatchSampler.batch`` (indices + three uint8 stack gathers + actions/states);
* gather+normalise: plus conversion of the three stacks to float32 in [-1, 1];
* per-item reference: the release's design re-implemented here for comparison
  (``Dataset.__getitem__`` building padded stacks per sample, ``DataLoader`` collating,
  HWC -> CHW permute per batch), "before normalisation" like the brief's 5,200/s figure.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from laom.data.sampler import BatchSampler, load_frames, to_model_input


def write_file(path: Path, trajectories: int, length: int, hw: int) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for i in range(trajectories):
            g = f.create_group(str(i))
            g.create_dataset("obs", data=rng.integers(0, 256, (length, hw, hw, 3), dtype=np.uint8))
            g.create_dataset("states", data=rng.normal(size=(length, 17)).astype(np.float32))
            g.create_dataset("actions", data=rng.uniform(-1, 1, (length, 6)).astype(np.float32))
            g.attrs["traj_return"] = 0.0
        for k, v in dict(domain_name="cheetah", task_name="run", difficulty="scale_easy_video_hard", dynamic=True,
                         img_hw=hw, split="train", dataset_return=0.0).items():  # fmt: skip
            f.attrs[k] = v


class PerItemDataset(torch.utils.data.Dataset):
    """The release's approach: one Python call per sample, stacks built by torch ops."""

    def __init__(self, path: Path, frame_stack: int, max_offset: int) -> None:
        with h5py.File(path, "r") as f:
            keys = sorted(f.keys(), key=int)
            self.obs = [torch.from_numpy(f[k]["obs"][()]) for k in keys]
            self.actions = [torch.from_numpy(f[k]["actions"][()]) for k in keys]
            self.states = [torch.from_numpy(f[k]["states"][()]) for k in keys]
        self.frame_stack, self.max_offset = frame_stack, max_offset
        self.traj_len = self.obs[0].shape[0]

    def __len__(self) -> int:
        return len(self.obs) * (self.traj_len - 1)

    def _stack(self, traj: int, t: int) -> torch.Tensor:
        frames = self.obs[traj][max(0, t - self.frame_stack + 1) : t + 1]
        if frames.shape[0] < self.frame_stack:
            pad = frames[:1].repeat(self.frame_stack - frames.shape[0], 1, 1, 1)
            frames = torch.cat([pad, frames])
        return torch.cat(list(frames), dim=-1)  # [H, W, 3F]

    def __getitem__(self, idx: int):
        traj, t = divmod(idx, self.traj_len - 1)
        k = random.randint(1, min(self.max_offset, self.traj_len - t - 1))
        return (self._stack(traj, t), self._stack(traj, t + 1), self._stack(traj, t + k),
                self.actions[traj][t], self.states[traj][t])  # fmt: skip


def rate(fn, batches: int, batch: int, repeats: int = 3) -> float:
    fn(0)
    best = float("inf")
    for r in range(repeats):
        t = time.perf_counter()
        for i in range(batches):
            fn(1 + r * batches + i)
        best = min(best, time.perf_counter() - t)
    return batches * batch / best


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--trajectories", type=int, default=20)
    p.add_argument("--length", type=int, default=1000)
    p.add_argument("--hw", type=int, default=64)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--skip-reference", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "data.hdf5"
        write_file(path, args.trajectories, args.length, args.hw)
        t = time.perf_counter()
        data = load_frames(path)
        print(f"load_frames: {data.num_frames} frames in {time.perf_counter() - t:.2f} s")
        sampler = BatchSampler(data, args.batch, frame_stack=3, max_offset=10, seed=0)
        gather = rate(lambda u: sampler.batch(u), args.batches, args.batch)
        print(
            f"gather            : {gather:9.0f} samples/s  (batch {args.batch}, 3 stacks of 3 frames)"
        )
        bufs = {
            k: torch.empty(args.batch, 9, args.hw, args.hw)
            for k in ("obs", "next_obs", "future_obs")
        }

        def gather_norm(u: int) -> None:
            arrays = sampler.batch(u).arrays
            for k, buf in bufs.items():
                to_model_input(arrays[k], out=buf)

        both = rate(gather_norm, args.batches, args.batch)
        print(f"gather+normalise  : {both:9.0f} samples/s  (float32 in [-1, 1], [B, 9, H, W])")
        if not args.skip_reference:
            ds = PerItemDataset(path, 3, 10)
            loader = torch.utils.data.DataLoader(
                ds, batch_size=args.batch, shuffle=True, drop_last=True
            )
            it = iter(loader)

            def per_item(_: int) -> None:
                batch = next(it)
                [b.permute(0, 3, 1, 2) for b in batch[:3]]

            ref = rate(per_item, min(args.batches, 5), args.batch, repeats=2)
            print(
                f"per-item reference: {ref:9.0f} samples/s  (Dataset + DataLoader, release design)"
            )
            print(f"speed-up of gather over per-item reference: {gather / ref:.1f}x")


if __name__ == "__main__":
    main()
