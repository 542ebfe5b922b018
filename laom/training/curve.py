"""Learning curves of acting policies: return and offline action MSE against updates.

A single final return cannot say whether a policy that misses the expert needs more
updates or a different recipe; the curve can. Every ``every`` updates (and at the end)
the policy being trained is evaluated as it is: its action MSE on the held-out file and
its mean return over a few online episodes (the same episode seeds at every point, so
points differ by the policy alone). Rows go to ``RUN/curve.jsonl``; a resumed run keeps
the rows it has and adds the missing ones.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from laom.models.meta import PolicyMeta

CURVE_FILE = "curve.jsonl"


def read_curve(run: str | Path) -> list[dict[str, Any]]:
    """The rows of ``RUN/curve.jsonl`` (empty when the run kept no curve)."""
    from laom.training.metrics import read_jsonl

    return read_jsonl(Path(run) / CURVE_FILE)


class LearningCurve:
    """Called by the training loop after every update; evaluates when a point is due."""

    def __init__(
        self,
        run_path: Path,
        every: int,
        total: int,
        meta: PolicyMeta,
        *,
        eval_data: Any = None,
        episodes: int = 5,
        workers: int = 2,
        seed: int = 0,
        offline_samples: int = 5000,
        reference_mean: np.ndarray | None = None,
    ) -> None:
        from laom.training import distributed

        self.path = Path(run_path) / CURVE_FILE
        self.every, self.total, self.meta = every, total, meta
        self.eval_data, self.episodes, self.workers, self.seed = eval_data, episodes, workers, seed
        self.offline_samples = offline_samples
        self.reference_mean = reference_mean
        self.enabled = every > 0 and distributed.is_main()
        self.done = {int(row["update"]) for row in read_curve(run_path)}

    def due(self, update: int) -> bool:
        return (
            self.enabled
            and update > 0
            and update not in self.done
            and (update % self.every == 0 or update == self.total)
        )

    def __call__(self, update: int, model: nn.Module) -> None:
        if not self.due(update):
            return
        from laom.models.policy import ActingPolicy

        was_training = model.training
        model.eval()
        try:
            row = curve_point(
                ActingPolicy(model, None, self.meta), update, eval_data=self.eval_data, episodes=self.episodes,
                workers=self.workers, seed=self.seed, offline_samples=self.offline_samples,
                reference_mean=self.reference_mean,
            )  # fmt: skip
        finally:
            model.train(was_training)
        append_curve_row(self.path, row)
        self.done.add(update)


@torch.no_grad()
def curve_point(
    acting: Any, update: int, *, eval_data: Any = None, episodes: int = 5, workers: int = 2, seed: int = 0,
    offline_samples: int = 5000, reference_mean: np.ndarray | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One point of an acting policy's curve: its offline action MSE on ``eval_data`` and
    its mean return over ``episodes`` online episodes of seed ``seed`` (the same episodes
    at every point, so points differ by the policy alone)."""
    from laom.evaluation.online import evaluate
    from laom.evaluation.policy import env_kwargs, offline_action_mse

    row: dict[str, Any] = {"update": int(update)}
    start = time.perf_counter()
    if eval_data is not None:
        off = offline_action_mse(acting, eval_data, offline_samples, reference_mean=reference_mean)
        row["offline_action_mse"] = off["action_mse"]
        row["constant_action_mse"] = off["constant_action_mse"]
    if episodes > 0:
        result = evaluate(acting.act, env_kwargs(acting.meta), episodes, seed=seed, workers=workers, progress=False)
        row.update(return_mean=result.mean, return_std=result.std, episodes=episodes)
    row["eval_seconds"] = round(time.perf_counter() - start, 2)
    return row


def append_curve_row(path: Path, row: dict[str, Any]) -> None:
    """One line per point, appended whole (a torn last line is skipped when read)."""
    with Path(path).open("a") as f:
        f.write(json.dumps(row) + "\n")
