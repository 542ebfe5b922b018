"""Environment throughput and preview grids, shared by the CLI and benchmarks/."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import numpy as np

from laom.errors import LaomError


def _steps_per_second(make_kwargs: dict[str, Any], steps: int, seed: int) -> float:
    """Random-action steps/s of one environment, episode resets included."""
    from laom.envs import make

    env = make(seed=seed, **make_kwargs)
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    env.reset(seed=seed)
    env.step(rng.uniform(low, high))  # warm up the GL context and caches
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(rng.uniform(low, high))
        if terminated or truncated:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def _worker(args: tuple[dict[str, Any], int, int]) -> float:
    make_kwargs, steps, seed = args
    return _steps_per_second(make_kwargs, steps, seed)


def measure(make_kwargs: dict[str, Any], steps: int = 2000, workers: int = 1, seed: int = 0) -> float:
    """Summed steps/s over ``workers`` processes (spawned: EGL contexts do not survive fork)."""
    if steps < 1 or workers < 1:
        raise LaomError(f"steps={steps}, workers={workers}: both must be >= 1")
    if workers == 1:
        return _steps_per_second(make_kwargs, steps, seed)
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers) as pool:
        rates = pool.map(_worker, [(make_kwargs, steps, seed + i) for i in range(workers)])
    return float(sum(rates))


def preview_grid(
    make_kwargs: dict[str, Any], steps: int = 200, frames: int = 16, seed: int = 0, scale: int = 2
) -> np.ndarray:
    """A grid of frames from a random-action rollout, evenly spaced over ``steps``."""
    from laom.envs import make

    if steps < 1 or frames < 1:
        raise LaomError(f"--steps {steps} --frames {frames}: both must be >= 1")
    env = make(seed=seed, frame_stack=1, **make_kwargs)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    keep = set(np.linspace(0, steps, frames).astype(int).tolist())
    shots = [obs] if 0 in keep else []
    for t in range(1, steps + 1):
        obs, _, terminated, truncated, _ = env.step(
            rng.uniform(env.action_space.low, env.action_space.high)
        )
        if t in keep:
            shots.append(obs)
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    cols = int(np.ceil(np.sqrt(len(shots))))
    rows = int(np.ceil(len(shots) / cols))
    h, w, _ = shots[0].shape
    pad = 2
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, shot in enumerate(shots):
        r, c = divmod(i, cols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = shot
    if scale > 1:
        grid = np.repeat(np.repeat(grid, scale, 0), scale, 1)
    return grid


def write_png(image: np.ndarray, out: str | Path) -> Path:
    """Write atomically, so an interrupted run never leaves half an image."""
    import imageio.v3 as iio

    from laom.outputs import atomic_path, check_output

    out = check_output(out, "--out")
    with atomic_path(out) as tmp:
        iio.imwrite(tmp, image)
    return out
