"""Where and how a stage computes: threads, malloc tuning, device, precision, seeds.

Randomness in the loops is derived from (seed, update index) wherever possible
(:func:`step_seed`, :func:`step_generator`), so a resumed run replays the same batches
and augmentations as an uninterrupted one and checkpoints need no RNG streams.
"""

from __future__ import annotations

import ctypes
import os
import random
import sys

import numpy as np
import torch

from laom.models.device import Runtime, autocast_dtype, resolve_device
from laom.training.config import RunConfig


def tune_malloc() -> None:
    """Keep freed memory in glibc's heap instead of returning it to the OS.

    Training allocates and frees the same large activations every step; by default
    glibc serves them with fresh mmaps, so every step pays page faults for every
    activation (a large share of step time on small-CPU VMs). This raises the mmap
    threshold to glibc's mallopt maximum (32 MiB) and stops trimming. Larger blocks can
    only be kept with the environment variables ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_`` set before Python starts (see README).
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        libc.mallopt(m_trim_threshold, 1 << 30)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds third-party code using the legacy global RNG
    torch.manual_seed(seed)


def step_seed(seed: int, update: int, stream: int = 0) -> int:
    """A well-mixed 63-bit seed for (run seed, update, stream): per-step RNGs that a
    resumed run reproduces exactly."""
    return int(
        np.random.SeedSequence([seed, update, stream]).generate_state(2, np.uint64)[0]
        >> np.uint64(1)
    )


def step_generator(
    seed: int, update: int, stream: int = 0, device: torch.device | str = "cpu"
) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(step_seed(seed, update, stream))
    return g


def setup_runtime(cfg: RunConfig) -> Runtime:
    """Threads, malloc tuning, device, precision and global seeds for a stage."""
    from laom.training import distributed

    tune_malloc()
    device = resolve_device(cfg.device)
    if distributed.world_size_from_env() > 1 and device.type == "cuda" and device.index is None:
        device = torch.device("cuda", distributed.local_rank_from_env())  # one GPU per rank
    job = distributed.init(device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    elif job.enabled and device.type == "cpu":  # ranks on one machine share its cores
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // job.local_world_size))
    seed_everything(cfg.seed)
    return Runtime(device, autocast_dtype(cfg.precision, device))


def maybe_compile(module: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    """``torch.compile(module)`` when asked (the module itself otherwise). The compiled
    wrapper shares the parameters, so optimisers and checkpoints keep using the original."""
    return torch.compile(module) if enabled else module
