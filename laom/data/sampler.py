"""In-memory frames and a whole-batch sampler for training on release-format HDF5 files.

The release feeds training through a ``Dataset.__getitem__`` per transition and a
``DataLoader`` that collates them: Python work per frame and per sample. Here a file is
loaded once into one contiguous ``uint8`` array (trajectories concatenated) and a batch
is one ``np.take`` per frame stack over index arrays computed for the whole batch at
once, written into reused buffers (fresh allocations cost page faults on every step).

Frames are kept channel-first, [N, 3, H, W] (transposed once at load): a gathered
stack [B, F, 3, H, W] then *is* the model's [B, F*3, H, W] input, so conversion to float
and scaling to [-1, 1] are contiguous elementwise passes (:func:`to_model_input`) rather
than a strided transpose per step.

Frame stacks: the stack for step t holds frames t-F+1 .. t, clamped to the first frame
of t's trajectory (the release's start-of-trajectory padding). A sample is a step t
that has a successor t+1 in its trajectory; its future offset k is uniform in 1..K and
clamped so t+k stays inside the trajectory.

Randomness is a pure function of (seed, update index): the batch of update ``u`` is the
same whether a run is fresh or resumed, so no sampler state needs checkpointing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from laom.errors import LaomError

STACK_KEYS = ("obs", "next_obs", "future_obs")


@dataclass
class FrameData:
    """Every frame of a dataset file in memory, trajectories concatenated."""

    frames: np.ndarray  # uint8 [N, 3, H, W] (channel-first; the file stores [T, H, W, 3])
    actions: np.ndarray  # float32 [N, A]
    states: np.ndarray  # float32 [N, D]
    traj_offsets: np.ndarray  # int64 [num_traj + 1]; trajectory i is frames[o[i]:o[i+1]]
    attrs: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    traj_returns: np.ndarray | None = None
    # Per-frame distractor records (name -> [N, ...], rows aligned with frames) when every
    # trajectory has them (laom.data.format.read_distractors); only the probes read them.
    distractors: dict[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        lengths = np.diff(self.traj_offsets)
        self.traj_index = np.repeat(np.arange(len(lengths)), lengths)
        self.traj_start = self.traj_offsets[:-1][self.traj_index]
        self.traj_end = self.traj_offsets[1:][self.traj_index]  # exclusive
        # Steps with a successor in the same trajectory: everything but each last frame.
        self.valid_steps = np.flatnonzero(np.arange(len(self.frames)) + 1 < self.traj_end)

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def num_trajectories(self) -> int:
        return len(self.traj_offsets) - 1

    @property
    def img_hw(self) -> int:
        return int(self.frames.shape[2])

    @property
    def action_dim(self) -> int:
        return int(self.actions.shape[1])

    @property
    def state_dim(self) -> int:
        return int(self.states.shape[1])

    def task_id(self) -> tuple[str, str]:
        """(domain, task) from the file attributes, '' where missing."""
        return str(self.attrs.get("domain_name", "")), str(self.attrs.get("task_name", ""))

    # -- laom.data.access.TrainingData: everything is in memory already -----------------
    def all_actions(self) -> np.ndarray:
        """Every frame's action [N, A] (the array itself, not a copy)."""
        return self.actions

    def records_distractors(self) -> bool:
        """Whether every trajectory records its distractors."""
        return self.distractors is not None

    def take(self, trajectories: Iterable[int], max_frames: int) -> FrameData:
        """A copy of the given trajectories in file order. ``max_frames`` is not applied:
        nothing needs reading, so a probe keeps all it was given."""
        return self.subset(sorted(trajectories))

    def sample(self, rng: np.random.Generator, max_frames: int) -> FrameData:
        """All of the data, drawing nothing from ``rng``: a probe samples its own steps
        from it, and the generator's later draws stay those of an in-memory run."""
        return self

    @property
    def frames_in_memory(self) -> bool:
        """Always: every frame is loaded."""
        return True

    def blocks(self, max_mb: float = 256.0) -> Iterator[tuple[int, FrameData]]:
        """One block, the data itself: it is in memory already."""
        yield 0, self

    def sampler(
        self, batch_size: int, frame_stack: int = 3, max_offset: int = 1, seed: int = 0,
        keys: tuple[str, ...] = STACK_KEYS, pin_memory: bool = False, with_replacement: bool | None = None,
    ) -> BatchSampler:  # fmt: skip
        """Epoch-ordered batches, or (``with_replacement``; by default when the data has
        fewer transitions than a batch) draws with replacement."""
        if with_replacement is None:
            with_replacement = len(self.valid_steps) < batch_size
        return BatchSampler(
            self, batch_size, frame_stack, max_offset, seed, keys,
            with_replacement=with_replacement, pin_memory=pin_memory,
        )  # fmt: skip

    def subset(self, trajectories: Iterable[int]) -> FrameData:
        """A copy holding only the given trajectories (in that order)."""
        trajs = list(trajectories)
        pieces = [np.arange(self.traj_offsets[i], self.traj_offsets[i + 1]) for i in trajs]
        idx = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
        lengths = [self.traj_offsets[i + 1] - self.traj_offsets[i] for i in trajs]
        return FrameData(
            frames=self.frames[idx],
            actions=self.actions[idx],
            states=self.states[idx],
            traj_offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            attrs=dict(self.attrs),
            path=self.path,
            traj_returns=None if self.traj_returns is None else self.traj_returns[trajs],
            distractors=None if self.distractors is None else {k: v[idx] for k, v in self.distractors.items()},
        )


def load_frames(path: str | Path, max_trajectories: int | None = None) -> FrameData:
    """Load a release-layout HDF5 file (groups "0", "1", ... with obs/actions/states).

    Opening goes through :func:`laom.data.format.open_dataset` (one-line errors, and
    recovery of a file whose writer was killed). Frames land in their slice of one
    preallocated array, transposed to channel-first, so peak memory is the dataset plus
    one trajectory.
    """
    from laom.data.format import open_dataset, read_distractors

    path = Path(path)
    with open_dataset(path) as reader:
        f = reader.h5
        names = [str(i) for i in reader.indices]
        if max_trajectories is not None:
            names = names[:max_trajectories]
        if not names:
            raise LaomError(f"dataset {path}: no trajectories (expected groups '0', '1', ...)")
        for name in names:
            missing = [k for k in ("obs", "actions", "states") if k not in f[name]]
            if missing:
                raise LaomError(f"dataset {path}: trajectory {name} lacks {', '.join(missing)}")
        first = f[names[0]]
        obs_shape = first["obs"].shape
        if len(obs_shape) != 4 or obs_shape[-1] != 3 or first["obs"].dtype != np.uint8:
            raise LaomError(
                f"dataset {path}: obs must be uint8 [T,H,W,3], got {first['obs'].dtype} {obs_shape}"
            )
        lengths = [f[n]["obs"].shape[0] for n in names]
        n = int(sum(lengths))
        a_dim, s_dim = first["actions"].shape[1], first["states"].shape[1]
        h, w = obs_shape[1:3]
        frames = np.empty((n, 3, h, w), dtype=np.uint8)
        actions = np.empty((n, a_dim), dtype=np.float32)
        states = np.empty((n, s_dim), dtype=np.float32)
        returns = np.zeros(len(names), dtype=np.float64)
        pos = 0
        for i, (name, length) in enumerate(zip(names, lengths, strict=True)):
            g = f[name]
            if (
                g["obs"].shape[1:] != obs_shape[1:]
                or g["actions"].shape != (length, a_dim)
                or g["states"].shape != (length, s_dim)
            ):
                raise LaomError(
                    f"dataset {path}: trajectory {name} has shapes inconsistent with trajectory {names[0]}"
                )
            if length:
                frames[pos : pos + length] = g["obs"][()].transpose(0, 3, 1, 2)
                actions[pos : pos + length] = g["actions"][()]
                states[pos : pos + length] = g["states"][()]
            returns[i] = reader.traj_return(int(name))
            pos += length
        attrs = dict(reader.attrs)
        distractors = read_distractors([f[n] for n in names], path)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return FrameData(frames, actions, states, offsets, attrs, str(path), returns, distractors)


def batch_buffers(
    batch_size: int, frame_stack: int, frame_shape: tuple[int, ...], action_dim: int, state_dim: int,
    keys: tuple[str, ...], pin_memory: bool = False,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """The reused arrays a sampler gathers each batch into: uint8 stacks [B, F*3, H, W] per
    key, float32 actions and states (allocated once: fresh ones page-fault every step)."""
    c, h, w = frame_shape
    buffers = {
        k: torch.empty((batch_size, frame_stack * c, h, w), dtype=torch.uint8, pin_memory=pin_memory)
        for k in keys
    }
    buffers["actions"] = torch.empty((batch_size, action_dim), pin_memory=pin_memory)
    buffers["states"] = torch.empty((batch_size, state_dim), pin_memory=pin_memory)
    return buffers


@dataclass
class Batch:
    """Index arrays of one batch and the gathered arrays (numpy views of reused buffers)."""

    steps: np.ndarray  # int64 [B] frame index of step t
    offsets: np.ndarray  # int64 [B] future offset k actually used (after clamping)
    arrays: dict[str, torch.Tensor]  # uint8 stacks [B, F*3, H, W]; actions/states float32


class BatchSampler:
    """Whole-batch gathers of frame stacks (t, t+1, t+k) plus actions and states.

    ``batch(update)`` is deterministic in (seed, update): epoch e's order is a
    permutation drawn from ``(seed, e)`` (without replacement, last partial batch
    dropped, as the release's shuffling DataLoader with drop_last), the future offsets
    from ``(seed, update)``. Buffers are reused between calls, so a batch's arrays are
    valid until the next call; ``pin_memory`` makes them page-locked for async copies
    to a GPU.
    """

    def __init__(
        self,
        data: FrameData,
        batch_size: int,
        frame_stack: int = 3,
        max_offset: int = 1,
        seed: int = 0,
        keys: tuple[str, ...] = STACK_KEYS,
        with_replacement: bool = False,
        pin_memory: bool = False,
    ) -> None:
        if batch_size < 1 or frame_stack < 1 or max_offset < 1:
            raise LaomError("batch_size, frame_stack and max_offset must be >= 1")
        if len(data.valid_steps) == 0:
            raise LaomError(f"dataset {data.path}: no transitions (trajectories need 2+ frames)")
        if not with_replacement and len(data.valid_steps) < batch_size:
            raise LaomError(
                f"dataset {data.path}: {len(data.valid_steps)} transitions, fewer than batch size {batch_size}"
            )
        self.data = data
        self.batch_size = batch_size
        self.frame_stack = frame_stack
        self.max_offset = max_offset
        self.seed = seed
        self.keys = keys
        self.with_replacement = with_replacement
        self._perm_epoch = -1
        self._perm = np.zeros(0, dtype=np.int64)
        self._buffers = batch_buffers(
            batch_size, frame_stack, data.frames.shape[1:], data.action_dim, data.state_dim, keys,
            pin_memory,
        )  # fmt: skip

    @property
    def updates_per_epoch(self) -> int:
        return max(1, len(self.data.valid_steps) // self.batch_size)

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *key])

    def sample_steps(self, update: int) -> np.ndarray:
        """Frame indices t of update ``update``'s batch."""
        if self.with_replacement:
            pick = self._rng(update, 1).integers(0, len(self.data.valid_steps), self.batch_size)
            return self.data.valid_steps[pick]
        epoch, i = divmod(update, self.updates_per_epoch)
        if epoch != self._perm_epoch:
            self._perm = self._rng(epoch, 0).permutation(len(self.data.valid_steps))
            self._perm_epoch = epoch
        return self.data.valid_steps[self._perm[i * self.batch_size : (i + 1) * self.batch_size]]

    def stack_indices(self, steps: np.ndarray) -> np.ndarray:
        """[B, F] frame indices of the stacks ending at ``steps``, padded at trajectory starts."""
        back = np.arange(-self.frame_stack + 1, 1)
        return np.maximum(steps[:, None] + back, self.data.traj_start[steps][:, None])

    def future_offsets(self, steps: np.ndarray, update: int) -> np.ndarray:
        """k ~ U{1..K} per sample, clamped so t+k is still in t's trajectory."""
        k = self._rng(update, 2).integers(1, self.max_offset + 1, len(steps))
        return np.minimum(k, self.data.traj_end[steps] - 1 - steps)

    def gather(self, steps: np.ndarray, offsets: np.ndarray) -> dict[str, torch.Tensor]:
        frames = self.data.frames
        b = len(steps)
        out: dict[str, torch.Tensor] = {}
        targets = {"obs": steps, "next_obs": steps + 1, "future_obs": steps + offsets}
        # mode="clip" (indices are always in range) lets np.take write into ``out``
        # directly; the default mode buffers the whole result and copies it again.
        for key in self.keys:
            buf = self._buffers[key][:b]
            idx = self.stack_indices(targets[key])
            np.take(
                frames, idx, axis=0, out=buf.numpy().reshape(b, -1, *frames.shape[1:]), mode="clip"
            )
            out[key] = buf
        for key, source in (("actions", self.data.actions), ("states", self.data.states)):
            out[key] = self._buffers[key][:b]
            np.take(source, steps, axis=0, out=out[key].numpy(), mode="clip")
        return out

    def batch(self, update: int) -> Batch:
        steps = self.sample_steps(update)
        offsets = self.future_offsets(steps, update)
        return Batch(steps, offsets, self.gather(steps, offsets))


def to_model_input(
    stacks: torch.Tensor,
    device: torch.device | str = "cpu",
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """uint8 stacks [B, F*3, H, W] -> float32 on ``device``, scaled to [-1, 1].

    Pass ``out`` (same shape, float32) to reuse memory between steps.
    """
    x = stacks.to(device, non_blocking=True)
    if out is None:
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    return out.copy_(x).mul_(2.0 / 255.0).sub_(1.0)


def model_input(stacks: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """:func:`to_model_input`, in channels-last memory when asked: convolutions on CPUs
    and tensor cores run faster in it, and every pass over a batch must agree on it."""
    x = to_model_input(stacks, device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
