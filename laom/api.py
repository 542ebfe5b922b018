"""The Python API: what ``import laom`` offers beside the command line.

Two entry points cover the common uses: :func:`run_pipeline` trains a method end to end
exactly as ``laom pipeline`` does (same stages, same cache of finished stages, same
summary), and :func:`load_lam` turns a trained latent action model into an object whose
:meth:`LatentActionModel.encode` labels raw dataset frames with latent actions. Both
are thin layers over the code the CLI runs, so the two cannot disagree.
:class:`LatentActionModel` is defined beside the labelling pass it runs
(:mod:`laom.data.labelling`), where ``laom relabel`` uses it too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from laom.data.labelling import LatentActionModel
from laom.errors import LaomError, require

__all__ = ["LatentActionModel", "load_lam", "override_args", "run_pipeline"]


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
