"""Regenerate docs/render_modes.png: fast vs quality rendering, with and without distractors.

    MUJOCO_GL=egl .venv/bin/python docs/render_modes.py
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

from laom.envs import make
from laom.envs.bench import write_png

TASKS = ["cheetah-run", "walker-run", "hopper-hop", "humanoid-walk"]
COLUMNS = [("vanilla", "fast"), ("vanilla", "quality"), ("scale_easy_video_hard", "fast"),
           ("scale_easy_video_hard", "quality")]


def frame(task: str, difficulty: str, render: str, hw: int = 128, steps: int = 30) -> np.ndarray:
    # Each render mode gets its own process-independent env with the same seed, so the
    # four columns show the same state, camera offsets and video frame.
    env = make(task, difficulty=difficulty, render=render, img_hw=hw, frame_stack=1, seed=3)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        obs, *_ = env.step(rng.uniform(env.action_space.low, env.action_space.high))
    env.close()
    return obs


def main() -> None:
    rows = []
    for task in TASKS:
        shots = [frame(task, d, r) for d, r in COLUMNS]
        gap = np.full((shots[0].shape[0], 4, 3), 255, np.uint8)
        rows.append(np.concatenate(sum(([s, gap] for s in shots), [])[:-1], axis=1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    grid = np.concatenate(rows[:-1], axis=0)
    out = write_png(grid, Path(__file__).with_name("render_modes.png"))
    print(f"wrote {out}: columns = " + ", ".join(f"{d}/{r}" for d, r in COLUMNS))


if __name__ == "__main__":
    main()
