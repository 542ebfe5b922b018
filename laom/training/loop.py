"""The one resumable update loop every stage runs (LAM, latent BC, BC, BC-full, the IDM
baseline's IDM and policy, the action decoder).

A stage builds its model, optimiser and schedule, then hands the loop two things:

* its **state** (:class:`Resumable`: ``state_dict`` / ``load_state_dict`` and the
  ``scheduler`` whose LR is logged), plus named **extras** checkpointed beside it (the
  policy's weight EMA under "ema") and data **kept** verbatim in every checkpoint (the
  data signature under "signature", the LAM's config under "config");
* its **step**: ``step(update, want_norm) -> (loss terms, grad norm or None)``, one
  optimisation step whose batch and randomness are functions of (seed, update).

:class:`Loop` owns everything around them, once: loading ``RUN/checkpoints/last.pt``,
the data-signature check on resume, restoring every piece of state, the
:class:`~laom.training.trainlog.TrainLog` (metrics rows, progress bar, checkpoints when
due) and its closing, the per-update hook (learning-curve and probe points, left out of
samples/s), and the result (:class:`LoopResult`). Construction resumes (a stage may
still wrap its model for DDP or compile it before the first update); :meth:`Loop.run`
trains from the resumed update to the end.

A checkpoint is ``{"update", **state.state_dict(), **keep, **extras}`` in that order:
"update", "model", "optimizer", "scheduler" (and the LAM's "probe", "probe_optimizer"),
then "signature" (and "config"), then "ema", the layout every earlier laom wrote.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from laom.errors import LaomError
from laom.training.config import RunConfig
from laom.training.rundir import RunDir
from laom.training.summaries import FitSummary
from laom.training.trainlog import TrainLog

# The fields of a data signature a resumed run must match: (key, what the message calls it).
SIGNATURE_CHECKS = (("img_hw", "image size"), ("frame_stack", "frame stack"), ("action_dim", "action size"))

Step = Callable[[int, bool], tuple[dict[str, torch.Tensor], torch.Tensor | None]]


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Resumable(Stateful, Protocol):
    """A stage's checkpointed state; ``scheduler`` gives the LR its metrics rows log."""

    scheduler: torch.optim.lr_scheduler.LRScheduler


def model_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler
) -> dict[str, Any]:
    """The part of a checkpoint every stage has: "model", "optimizer", "scheduler"."""
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}


def load_model_state(
    state: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> None:  # fmt: skip
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])


@dataclass
class TrainState:
    """A model with its optimiser and schedule: the state of a stage that has no more."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler

    def state_dict(self) -> dict[str, Any]:
        return model_state(self.model, self.optimizer, self.scheduler)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_model_state(state, self.model, self.optimizer, self.scheduler)


def check_signature(saved: dict[str, Any], now: dict[str, Any], subject: str) -> None:
    """LaomError when the data now (``now``, a data signature) differs in image size, frame
    stack or action size from what a checkpoint (``saved``) was trained on. Fields either
    side lacks are not compared. ``subject`` starts the message, e.g. "--data PATH:"."""
    for key, label in SIGNATURE_CHECKS:
        if saved.get(key) is not None and now.get(key) is not None and saved[key] != now[key]:
            raise LaomError(f"{subject} {label} {now[key]} does not match the checkpoint's {saved[key]}")


@dataclass
class LoopResult:
    updates: int
    samples_per_s: float | None  # this process's rate; None when nothing was left to train
    last: dict[str, float]  # the latest logged window means (empty when resumed at the end)
    metrics_path: Path = field(repr=False)

    @property
    def final_loss(self) -> float:
        """The last logged loss, read back from metrics.jsonl when the run was resumed at
        its very end (no row was logged by this process)."""
        loss = self.last.get("loss", float("nan"))
        if math.isnan(loss):
            rows = [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]
            loss = float(rows[-1]["loss"]) if rows else float("nan")
        return loss

    def summary(self) -> FitSummary:
        """The figures a pixel regressor's summary opens with."""
        return FitSummary(final_loss=self.final_loss, updates=self.updates, samples_per_s=self.samples_per_s)


class Loop:
    """Resume ``state`` (and ``extras``) from ``run``'s checkpoint, then :meth:`run` the
    updates left of ``total``.

    On resume the checkpoint's "signature" is checked against ``keep["signature"]``
    (image size, frame stack, action size; the message starts with ``mismatch``, by
    default "RUN: the data's"), then ``state`` and each extra load their part of it.
    ``start`` is the update training continues from.
    """

    def __init__(
        self, run: RunDir, cfg: RunConfig, total: int, state: Resumable, *, keep: dict[str, Any] | None = None,
        extras: dict[str, Stateful] | None = None, mismatch: str | None = None,
    ) -> None:  # fmt: skip
        self.run_dir, self.cfg, self.total, self.state = run, cfg, total, state
        self.keep = keep or {}
        self.extras = extras or {}
        self.start = 0
        checkpoint = run.load_checkpoint()
        if checkpoint is not None:
            subject = mismatch if mismatch is not None else f"{run.path}: the data's"
            check_signature(checkpoint.get("signature") or {}, self.keep.get("signature") or {}, subject)
            state.load_state_dict(checkpoint)
            for name, part in self.extras.items():
                part.load_state_dict(checkpoint[name])
            self.start = int(checkpoint["update"])

    def checkpoint(self, done: int) -> dict[str, Any]:
        """The checkpoint after update ``done``."""
        return {
            "update": done, **self.state.state_dict(), **self.keep,
            **{name: part.state_dict() for name, part in self.extras.items()},
        }  # fmt: skip

    def run(
        self, step: Step, *, batch_size: int, desc: str,
        on_update: Callable[[int, TrainLog], None] | None = None,
        row: Callable[[int], dict[str, Any]] | None = None,
    ) -> LoopResult:  # fmt: skip
        """Train updates ``start`` .. ``total`` - 1 with ``step``.

        ``batch_size`` is this process's share of a batch (samples/s counts all ranks).
        ``on_update(done, log)`` runs at the resumed update (a curve point cut short by a
        kill is made up) and after every update; its time is left out of samples/s.
        ``row(done)`` adds fields to the metrics rows after "grad_norm" and "lr".
        """
        log = TrainLog(self.run_dir, self.cfg, self.total, self.start, batch_size, desc)

        def hook(done: int) -> None:
            if on_update is not None:
                paused = time.perf_counter()
                on_update(done, log)
                log.progress.exclude(time.perf_counter() - paused)

        try:
            hook(self.start)
            for update in range(self.start, self.total):
                done = update + 1
                values, grad_norm = step(update, log.log_due(done))
                extra = {"grad_norm": grad_norm, "lr": self.state.scheduler.get_last_lr()[0], **(row(done) if row else {})}
                log.record(done, values, extra=extra, state=self.checkpoint)
                hook(done)
            samples_per_s = log.samples_per_s(self.total) if self.total > self.start else None
        finally:
            log.close()
        return LoopResult(self.total, samples_per_s, log.last, self.run_dir.metrics_path)
