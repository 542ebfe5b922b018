"""A network run over every transition of a dataset, and a trained LAM wrapped for it.

Latent BC's targets, the IDM baseline's pseudo-actions, ``laom relabel``'s stored
latents and :meth:`LatentActionModel.encode` are all one pass: frame stacks of o_t and
o_{t+1} prepared as training prepares them, a network applied batch by batch, one row
per transition. It lives in the data layer because it is a walk over a dataset's
transitions; what it runs is given to it, so relabelling a file needs no training stage.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from laom.data.sampler import BatchSampler, FrameData, model_input
from laom.errors import LaomError, require
from laom.models import load_lam
from laom.models.device import Runtime, resolve_device
from laom.models.meta import LAMMeta

if TYPE_CHECKING:
    from laom.data.access import TrainingData


@torch.no_grad()
def label_transitions(
    label: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    data: TrainingData,
    frame_stack: int,
    out: np.ndarray,
    runtime: Runtime,
    batch_size: int = 256,
    channels_last: bool = False,
    progress: bool = True,
    desc: str = "label",
) -> None:
    """``out[t] = label(o_t, o_{t+1})`` for every transition t of ``data`` (rows indexed by frame).

    Data not held in memory is labelled block by block (whole trajectories, bounded memory).
    """
    from laom.progress import progress as progress_bar

    if not data.frames_in_memory:
        bar = progress_bar(data.num_frames, desc, "frame", enabled=progress, leave=False)
        for first, block in data.blocks():
            rows = out[first : first + block.num_frames]
            label_transitions(
                label, block, frame_stack, rows, runtime, batch_size, channels_last, False
            )
            bar.update(block.num_frames)
        bar.close()
        return

    # In memory: the data is a FrameData, its own single block, and batches gather from it.
    steps = data.valid_steps
    sampler = BatchSampler(
        data, min(batch_size, len(steps)), frame_stack, 1, 0, keys=("obs", "next_obs")
    )
    bar = progress_bar(len(steps), desc, "step", enabled=progress, leave=False)
    for i in range(0, len(steps), sampler.batch_size):
        chunk = steps[i : i + sampler.batch_size]
        arrays = sampler.gather(chunk, np.ones_like(chunk))
        obs = model_input(arrays["obs"], runtime.device, channels_last)
        nxt = model_input(arrays["next_obs"], runtime.device, channels_last)
        with runtime.autocast():
            out[chunk] = label(obs, nxt).float().cpu().numpy()
        bar.update(len(chunk))
    bar.close()


class LatentActionModel:
    """A trained latent action model (LAPO, LAOM or LAOM+supervision), ready to label video.

    Frames go in as a dataset stores them (uint8, [T, H, W, 3], one trajectory), and the
    model sees them as it did in training: stacks of the last ``frame_stack`` frames
    (padded with the trajectory's first frame), channel-first, scaled to [-1, 1]. The
    preparation is the labelling pass latent BC trains on, so ``encode`` gives the very
    targets the later stages use. ``module`` is the underlying ``torch.nn.Module``.
    """

    def __init__(self, module: Any, meta: LAMMeta | Mapping[str, Any], path: str = "") -> None:
        self.module = module
        # a dict is read as lam.pt's meta is, so one built by hand carries the same record
        self.meta = meta.replaced() if isinstance(meta, LAMMeta) else LAMMeta.from_json(meta)
        self.path = path

    @classmethod
    def load(cls, run: str | Path, device: str = "cpu") -> LatentActionModel:
        """Load a LAM run folder (``laom train lam --out RUN``, or a pipeline's
        ``lam-*`` stage) or its ``lam.pt`` file onto ``device`` (cpu, cuda, cuda:N, auto)."""
        target = resolve_device(device)
        module, meta = load_lam(run, map_location=target)
        return cls(module, meta, str(run))

    @property
    def method(self) -> str:
        """The method that trained it (lapo, laom, laom-labels, lapo-labels: laom.methods)."""
        return str(self.meta.method or "")

    @property
    def latent_dim(self) -> int:
        return int(self.meta.latent_dim or self.module.latent_dim)

    @property
    def frame_stack(self) -> int:
        return int(self.meta.frame_stack)

    @property
    def img_hw(self) -> int:
        return int(self.meta.img_hw)

    @property
    def device(self) -> Any:
        return next(self.module.parameters()).device

    def encode(self, frames: np.ndarray | Sequence[np.ndarray], batch_size: int = 256) -> Any:
        """Latent actions of every transition (t, t+1) of one or more trajectories.

        ``frames``: uint8 [T, H, W, 3] (one trajectory, the HDF5 file's ``obs``), a
        batch [B, T, H, W, 3], or a list of trajectories of any lengths. Returns float32
        [T-1, latent_dim] (resp. [B, T-1, latent_dim], or a list): row t is
        z = IDM(o_t, o_{t+1}) and lines up with the dataset's ``actions[t]``, the action
        that led from o_t to o_{t+1}. Frames never mix across trajectories: each one's
        first stacks are padded with its own first frame.
        """
        require(batch_size >= 1, f"batch_size {batch_size}: expected >= 1")
        if isinstance(frames, np.ndarray) and frames.ndim == 5:
            trajectories, shape = list(frames), "batch"
        elif isinstance(frames, (list, tuple)):
            trajectories, shape = [np.asarray(f) for f in frames], "list"
        else:
            trajectories, shape = [np.asarray(frames)], "one"
        require(len(trajectories) > 0, "frames: expected at least one trajectory")
        for i, traj in enumerate(trajectories):
            what = "frames" if shape == "one" else f"frames[{i}]"
            if traj.dtype != np.uint8:
                raise LaomError(
                    f"{what}: expected uint8 frames as stored in datasets, got {traj.dtype}"
                )
            if traj.ndim != 4 or traj.shape[1:] != (self.img_hw, self.img_hw, 3):
                raise LaomError(
                    f"{what}: expected shape [T, {self.img_hw}, {self.img_hw}, 3] "
                    f"(the model's image size), got {list(traj.shape)}"
                )
            if len(traj) < 2:
                raise LaomError(f"{what}: {len(traj)} frame(s); a transition needs at least 2")
        latents = self._encode(trajectories, batch_size)
        if shape == "one":
            return latents[0]
        return np.stack(latents) if shape == "batch" else latents

    def _encode(self, trajectories: list[np.ndarray], batch_size: int) -> list[np.ndarray]:
        lengths = [len(t) for t in trajectories]
        n = sum(lengths)
        data = FrameData(
            frames=np.ascontiguousarray(np.concatenate(trajectories).transpose(0, 3, 1, 2)),
            actions=np.zeros((n, 0), np.float32),
            states=np.zeros((n, 0), np.float32),
            traj_offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            path="frames",
        )
        out = np.zeros((n, self.latent_dim), np.float32)
        was_training = self.module.training
        self.module.eval()
        try:
            label_transitions(
                self.module.latent_action, data, self.frame_stack, out, Runtime(self.device, None),
                batch_size, progress=False,
            )  # fmt: skip
        finally:
            self.module.train(was_training)
        starts = data.traj_offsets
        return [out[starts[i] : starts[i + 1] - 1] for i in range(len(lengths))]

    def __repr__(self) -> str:
        return (
            f"LatentActionModel(method={self.method!r}, latent_dim={self.latent_dim}, "
            f"frame_stack={self.frame_stack}, img_hw={self.img_hw}, path={self.path!r})"
        )
