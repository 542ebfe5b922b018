"""A tiny video task with known ground truth, written in the release's HDF5 layout.

A square moves by ``speed * a_t`` pixels per step (the action *is* its displacement,
reflected at the walls so the stored action is always the one applied), over a
textured background that drifts with its own random velocity, and optionally a second,
uncontrolled square: distractors whose motion explains much of the pixel change but
none of the action. Used by the tests (probe MSE must fall well below the action
variance) and the benchmarks.

With ``distractor_records=True`` each trajectory also stores what ``laom collect`` stores
for the Distracting Control Suite (docs/distractors.md), as far as this task has one: the
background's pan as ``camera`` (vertical and horizontal offset in image heights, zoom 1,
roll 0: what a moving camera does to a far background), so the distractor probes have a
known answer on a file that takes seconds to train on.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth, tileable colour texture [size, size, 3] in 0..255 (low-frequency noise)."""
    freq = np.zeros((size, size, 3), dtype=np.complex128)
    k = 4
    freq[:k, :k] = rng.normal(size=(k, k, 3)) + 1j * rng.normal(size=(k, k, 3))
    img = np.fft.ifft2(freq, axes=(0, 1)).real
    img = (img - img.min()) / (np.ptp(img) + 1e-9)
    return (40 + 150 * img).astype(np.uint8)


def render_trajectory(
    rng: np.random.Generator, length: int, img_hw: int = 64, square: int = 8, speed: float = 3.0,
    distractors: bool = True, records: dict[str, list[np.ndarray]] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(obs uint8 [T,H,W,3], states float32 [T,4], actions float32 [T,2]); with ``records``
    given, the distractors' state behind each frame is appended to its lists."""
    lo, hi = 0.0, float(img_hw - square)
    pos = rng.uniform(lo, hi, 2)
    other = rng.uniform(lo, hi, 2)
    texture = _texture(rng, img_hw)
    bg_offset = rng.uniform(0, img_hw, 2)
    bg_vel = rng.uniform(-4, 4, 2)
    obs = np.empty((length, img_hw, img_hw, 3), dtype=np.uint8)
    states = np.empty((length, 4), dtype=np.float32)
    actions = np.empty((length, 2), dtype=np.float32)
    pan = bg_offset.copy()  # the background's offset without the wrap-around
    color = np.array([250, 40, 40], dtype=np.uint8)
    other_color = np.array([40, 40, 250], dtype=np.uint8)
    for t in range(length):
        if distractors:
            ys = (np.arange(img_hw) + int(bg_offset[0])) % img_hw
            xs = (np.arange(img_hw) + int(bg_offset[1])) % img_hw
            frame = texture[ys][:, xs].copy()
            oy, ox = other.astype(int)
            frame[oy : oy + square, ox : ox + square] = other_color
        else:
            frame = np.full((img_hw, img_hw, 3), 90, dtype=np.uint8)
        y, x = np.round(pos).astype(int)
        frame[y : y + square, x : x + square] = color
        obs[t] = frame
        if records is not None:
            records.setdefault("camera", []).append(np.array([*(np.floor(pan) / img_hw), 1.0, 0.0], np.float32))
        a = rng.uniform(-1, 1, 2)
        nxt = pos + speed * a
        bounce = (nxt < lo) | (nxt > hi)
        a[bounce] = -a[bounce]  # reflect at the walls: the stored action is the applied one
        states[t] = [*(pos / hi * 2 - 1), *a]
        actions[t] = a
        pos = np.clip(pos + speed * a, lo, hi)
        other = np.clip(other + rng.uniform(-3, 3, 2), lo, hi)
        bg_vel = np.clip(bg_vel + rng.normal(0, 0.5, 2), -4, 4)
        bg_offset = (bg_offset + bg_vel) % img_hw
        pan += bg_vel
    return obs, states, actions


def write_moving_square(
    path: str | Path, trajectories: int = 8, length: int = 100, img_hw: int = 32, seed: int = 0,
    distractors: bool = True, task: tuple[str, str] = ("square", "move"), split: str = "train",
    distractor_records: bool = False,
) -> Path:  # fmt: skip
    """Write the task as a release-layout HDF5 file and return its path."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    returns = []
    with h5py.File(path, "w") as f:
        for i in range(trajectories):
            records: dict[str, list[np.ndarray]] | None = {} if distractor_records else None
            obs, states, actions = render_trajectory(
                rng, length, img_hw, max(3, img_hw // 8), distractors=distractors, records=records
            )
            g = f.create_group(str(i))
            g.create_dataset("obs", data=obs)
            g.create_dataset("states", data=states)
            g.create_dataset("actions", data=actions)
            for name, values in (records or {}).items():
                g.create_dataset(f"distractors/{name}", data=np.stack(values))
            ret = float(-np.abs(states[:, :2]).sum())
            g.attrs["traj_return"] = ret
            returns.append(ret)
        f.attrs["domain_name"] = task[0]
        f.attrs["task_name"] = task[1]
        f.attrs["difficulty"] = "synthetic" if distractors else "vanilla"
        f.attrs["dynamic"] = bool(distractors)
        f.attrs["img_hw"] = img_hw
        f.attrs["split"] = split
        f.attrs["dataset_return"] = float(np.mean(returns))
    return path
