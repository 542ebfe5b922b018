"""The Python API: what ``import laom`` offers beside the command line.

Two entry points cover the common uses: :func:`run_pipeline` trains a method end to end
exactly as ``laom pipeline`` does (same stages, same cache of finished stages, same
summary), and :func:`load_lam` turns a trained latent action model into an object whose
:meth:`LatentActionModel.encode` labels raw dataset frames with latent actions. Both
are thin layers over the code the CLI runs, so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from laom.errors import LaomError, require


class LatentActionModel:
    """A trained latent action model (LAPO, LAOM or LAOM+supervision), ready to label video.

    Frames go in as a dataset stores them (uint8, [T, H, W, 3], one trajectory), and the
    model sees them as it did in training: stacks of the last ``frame_stack`` frames
    (padded with the trajectory's first frame), channel-first, scaled to [-1, 1]. The
    preparation is the labelling pass latent BC trains on, so ``encode`` gives the very
    targets the later stages use. ``module`` is the underlying ``torch.nn.Module``.
    """

    def __init__(self, module: Any, meta: dict[str, Any], path: str = "") -> None:
        self.module = module
        self.meta = dict(meta)
        self.path = path

    @classmethod
    def load(cls, run: str | Path, device: str = "cpu") -> LatentActionModel:
        """Load a LAM run folder (``laom train lam --out RUN``, or a pipeline's
        ``lam-*`` stage) or its ``lam.pt`` file onto ``device`` (cpu, cuda, cuda:N, auto)."""
        from laom.models import load_lam as load_module
        from laom.training.common import resolve_device

        target = resolve_device(device)
        module, meta = load_module(run, map_location=target)
        return cls(module, meta, str(run))

    @property
    def method(self) -> str:
        """lapo, laom or laom-labels."""
        return str(self.meta.get("method", ""))

    @property
    def latent_dim(self) -> int:
        return int(self.meta.get("latent_dim") or self.module.latent_dim)

    @property
    def frame_stack(self) -> int:
        return int(self.meta["frame_stack"])

    @property
    def img_hw(self) -> int:
        return int(self.meta["img_hw"])

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
        from laom.data.sampler import FrameData
        from laom.training.bc import label_transitions
        from laom.training.common import Runtime

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


def load_lam(run: str | Path, device: str = "cpu") -> LatentActionModel:
    """Load a trained latent action model (a LAM run folder or its ``lam.pt``) for
    :meth:`LatentActionModel.encode`; the same as :meth:`LatentActionModel.load`."""
    return LatentActionModel.load(run, device)


def _override_value(value: Any) -> str:
    """A Python value as the command line writes it (draccus syntax)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    return str(value)


def override_args(overrides: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    """``{"lam.latent_dim": 16, "threads": 1}`` -> ``["--lam.latent_dim", "16", "--threads", "1"]``
    (a list of command-line tokens passes through unchanged)."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        args: list[str] = []
        for key, value in overrides.items():
            if not isinstance(key, str) or not key or key.startswith("-"):
                raise LaomError(
                    f"overrides: {key!r} is not a field name (write 'lam.latent_dim', not '--lam.latent_dim')"
                )
            args += [f"--{key}", _override_value(value)]
        return args
    if isinstance(overrides, str):
        raise LaomError(
            "overrides: expected a mapping {'stage.field': value} or a list of tokens, got a string"
        )
    return [str(t) for t in overrides]


def run_pipeline(
    method: str,
    data: str | Path = "",
    labeled: str | Path = "",
    out: str | Path = "",
    *,
    eval_data: str | Path = "",
    preset: str = "cpu",
    episodes: int = 25,
    eval_seed: int = 0,
    workers: int = 0,
    num_envs: int = 4,
    max_steps: int | None = None,
    split: str | None = None,
    normalizer: str | float | None = None,
    progress: bool = True,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Run one method end to end, as ``laom pipeline`` does, and return its summary.

    Every argument is the command's flag of the same name (``eval_data`` is
    ``--eval-data``). Stage settings go in ``overrides``: ``{"lam.latent_dim": 512,
    "threads": 2}`` is ``--lam.latent_dim 512 --threads 2`` (a dotted key sets one
    stage, a plain one every stage that has the field; lists and booleans are written
    as the command line wants them). Stages land in ``out/<stage>-<key>/`` and are
    reused or resumed exactly as on the command line, so a script and the CLI share one
    cache. The summary maps ``stages`` to their folders (``summary["stages"]["lam"]["dir"]``
    for :func:`load_lam`), holds the probe MSE, offline action MSE and, with
    ``episodes > 0``, the online return; it is also written to ``summary["summary_file"]``.
    ``log`` receives the progress lines (``None``: silent).
    """
    from laom.training.pipeline import PipelineOptions
    from laom.training.pipeline import run_pipeline as run

    require(bool(str(out)), "out: the folder for the stage directories is required")
    opts = PipelineOptions(
        method=method, data=str(data or ""), labeled=str(labeled or ""), out=str(out),
        eval_data=str(eval_data or ""), preset=preset, episodes=episodes, eval_seed=eval_seed,
        workers=workers, num_envs=num_envs, max_steps=max_steps, split=split,
        normalizer=None if normalizer is None else str(normalizer), progress=progress,
        overrides=override_args(overrides),
    )  # fmt: skip
    return run(opts, log=log if log is not None else (lambda _message: None))
