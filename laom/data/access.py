"""What a training stage reads from a dataset, whether its frames are in memory or streamed.

:func:`laom.data.streaming.open_training_data` returns a :class:`~laom.data.sampler.FrameData`
(every frame loaded) or a :class:`~laom.data.streaming.StreamingData` (metadata only, frames
read in bounded memory). Both implement :class:`TrainingData`, so the trainers ask the data
for a sampler, a probe's sample or its actions and never test which kind they hold: how to
read a file is decided here, in laom/data, once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from laom.data.sampler import BatchSampler, FrameData
    from laom.data.streaming import StreamingSampler


class TrainingData(Protocol):
    """A dataset as the training stages see it. Frame indices are global: trajectory ``i``
    owns frames ``traj_offsets[i] .. traj_offsets[i+1]``, as in ``load_frames(path)``."""

    path: str
    attrs: dict[str, Any]
    traj_offsets: np.ndarray

    @property
    def num_frames(self) -> int: ...

    @property
    def num_trajectories(self) -> int: ...

    @property
    def img_hw(self) -> int: ...

    @property
    def action_dim(self) -> int: ...

    @property
    def state_dim(self) -> int: ...

    @property
    def valid_steps(self) -> np.ndarray: ...

    @property
    def frames_in_memory(self) -> bool:
        """Whether every frame is loaded (the data is a :class:`~laom.data.sampler.FrameData`
        and :meth:`blocks` yields it whole) rather than read from disk a block at a time, so
        a whole-dataset pass can gather its batches from the data itself."""
        ...

    def task_id(self) -> tuple[str, str]: ...

    def all_actions(self) -> np.ndarray:
        """Every frame's action [N, A]."""
        ...

    def records_distractors(self) -> bool:
        """Whether every trajectory records its distractors (the probes need them)."""
        ...

    def take(self, trajectories: Sequence[int] | np.ndarray, max_frames: int) -> FrameData:
        """The given trajectories in memory, in file order; ``max_frames`` bounds what a
        streamed file reads (the first of them that together hold that many frames)."""
        ...

    def sample(self, rng: np.random.Generator, max_frames: int) -> FrameData:
        """About ``max_frames`` frames of whole trajectories, in memory, for a probe."""
        ...

    def blocks(self, max_mb: float = 256.0) -> Iterator[tuple[int, FrameData]]:
        """``(first_frame, block)`` for whole-dataset passes, one block held at a time."""
        ...

    def sampler(
        self, batch_size: int, frame_stack: int = 3, max_offset: int = 1, seed: int = 0,
        keys: tuple[str, ...] = ..., pin_memory: bool = False, with_replacement: bool | None = None,
    ) -> BatchSampler | StreamingSampler:  # fmt: skip
        """The sampler that draws this data's training batches (``batch(update)``)."""
        ...
