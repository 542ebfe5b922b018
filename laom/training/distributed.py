"""Data-parallel training under ``torchrun`` (DDP; NCCL on GPUs, gloo on CPUs).

Every stage runs unchanged as one process; launched by ``torchrun --nproc-per-node N``
(which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) the same command becomes N
cooperating processes:

* the global batch (``--batch_size``) is drawn exactly as a single process would draw
  it, from (seed, update), and each rank trains on its own contiguous slice of it
  (:class:`ShardedSampler`), so the ranks' shares are disjoint and together are the
  single-process batch;
* DDP averages the gradients, which for per-sample mean losses equals the gradient of
  the whole global batch: N processes take the same optimisation path as one process
  with the same global batch (``tests/test_distributed.py`` checks this);
* logged metrics are averaged over ranks; checkpoints, metrics, summaries and cached
  labels are written by rank 0 only, the other ranks wait at a barrier where they need
  its files.

Outside torchrun every helper here is a no-op, so single-process code pays nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from laom.errors import LaomError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_INFO = DistInfo()


def info() -> DistInfo:
    """This process's place in the job (rank 0 of 1 outside torchrun)."""
    return _INFO


def is_main() -> bool:
    """Rank 0, or a single process. Before :func:`init` (a stage prepares its run directory
    first) torchrun's RANK variable answers, so only rank 0 ever writes."""
    if _INFO.enabled:
        return _INFO.is_main
    return int(os.environ.get("RANK", "0")) == 0


def init(device: torch.device) -> DistInfo:
    """Join the torchrun job described by the environment, once per process.

    Returns the job description; a process not started by torchrun gets rank 0 of 1.
    """
    global _INFO
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _INFO
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if backend == "nccl" and device.index is not None:
            torch.cuda.set_device(device)
        try:
            dist.init_process_group(backend=backend)
        except (RuntimeError, ValueError) as exc:
            raise LaomError(f"torchrun: cannot join the process group ({exc})") from None
    _INFO = DistInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", "1")),
    )
    return _INFO


def local_rank_from_env() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size_from_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def shutdown() -> None:
    """Leave the process group (end of a command)."""
    global _INFO
    if dist.is_initialized():
        dist.destroy_process_group()
    _INFO = DistInfo()


def barrier() -> None:
    if _INFO.enabled:
        dist.barrier()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DDP around ``model`` in a job, the model itself otherwise.

    DDP broadcasts rank 0's parameters at construction, so every rank starts equal.
    """
    if not _INFO.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Average a dict of scalars over the ranks (every rank gets the result)."""
    if not _INFO.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    t = (t / _INFO.world_size).cpu()
    return {k: float(v) for k, v in zip(keys, t.tolist(), strict=True)}


def shard_size(global_batch: int, what: str = "--batch_size") -> int:
    """Per-rank batch: the global batch split evenly (an error if it does not divide)."""
    w = _INFO.world_size
    if global_batch % w:
        raise LaomError(f"{what} {global_batch} must be divisible by the number of processes ({w})")
    return global_batch // w


class ShardedSampler:
    """This rank's contiguous slice of each global batch of a BatchSampler.

    The wrapped sampler draws the global batch (steps and future offsets) exactly as in
    a single process; only the slice is gathered, so ranks never read each other's
    frames (a streaming sampler, which reads whole windows, is sliced after gathering:
    there every rank streams the whole file). Attributes not defined here (``updates_per_epoch``, ``data``, ...) are the
    wrapped sampler's.
    """

    def __init__(self, sampler: Any, rank: int, world_size: int) -> None:
        self.inner = sampler
        self.global_batch_size = sampler.batch_size
        self.batch_size = self.global_batch_size // world_size
        self._slice = slice(rank * self.batch_size, (rank + 1) * self.batch_size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def batch(self, update: int) -> Any:
        from laom.data.sampler import Batch

        if not hasattr(self.inner, "gather"):  # a streaming sampler: slice its whole batch
            whole = self.inner.batch(update)
            arrays = {k: v[self._slice] for k, v in whole.arrays.items()}
            return Batch(whole.steps[self._slice], whole.offsets[self._slice], arrays)
        steps = self.inner.sample_steps(update)
        offsets = self.inner.future_offsets(steps, update)
        steps, offsets = steps[self._slice], offsets[self._slice]
        return Batch(steps, offsets, self.inner.gather(steps, offsets))


def shard(sampler: Any, what: str = "--batch_size") -> Any:
    """The sampler itself outside a job, this rank's :class:`ShardedSampler` inside one."""
    if not _INFO.enabled:
        return sampler
    shard_size(sampler.batch_size, what)
    return ShardedSampler(sampler, _INFO.rank, _INFO.world_size)


def rank_slice(n: int) -> slice:
    """This rank's slice of ``n`` items drawn for the global batch (e.g. random draws)."""
    if not _INFO.enabled:
        return slice(0, n)
    per = n // _INFO.world_size
    return slice(_INFO.rank * per, (_INFO.rank + 1) * per)


def rng_stream(stream: int) -> int:
    """A per-rank RNG stream id: rank 0 keeps ``stream`` (a single process is unchanged),
    other ranks get their own, so their augmentations are independent draws."""
    return stream + 1000 * _INFO.rank
