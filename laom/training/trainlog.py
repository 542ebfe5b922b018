"""The bookkeeping around every stage's update loop: windowed metric means, metrics rows,
the progress bar with samples/s, and checkpoints when due (:class:`TrainLog`)."""

from __future__ import annotations

import time
from typing import Any

import torch

from laom.training.config import RunConfig
from laom.training.metrics import MetricsWriter, scalar
from laom.training.rundir import RunDir


class Progress:
    """A tqdm bar over updates showing samples/s (measured since this process started
    training, so a resume does not report the checkpoint's updates as instant)."""

    def __init__(
        self, total: int, initial: int, batch_size: int, enabled: bool = True, desc: str = "train"
    ) -> None:
        from laom.progress import progress

        self.batch_size = batch_size
        self.start_update = initial
        self.start_time = time.perf_counter()
        # A bar on a terminal; plain lines in a log (laom.progress).
        self.bar = progress(total, desc, "upd", initial=initial, enabled=enabled)

    def exclude(self, seconds: float) -> None:
        """Leave ``seconds`` of non-training work (learning-curve evaluation) out of the rate."""
        self.start_time += seconds

    def seconds(self) -> float:
        """Seconds this process has spent training (excluded work left out)."""
        return time.perf_counter() - self.start_time

    def samples_per_s(self, update: int) -> float:
        return (update - self.start_update) * self.batch_size / max(self.seconds(), 1e-9)

    def update(self, update: int, **postfix: Any) -> None:
        shown = {
            k: (f"{scalar(v):.4g}" if isinstance(scalar(v), float) else v) for k, v in postfix.items()
        }
        shown["samples/s"] = f"{self.samples_per_s(update):.0f}"
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


class TrainLog:
    """The bookkeeping around an update loop: windowed metric means, metrics.jsonl rows,
    the progress bar and checkpoints, the same for every stage.

    Per update, ``record(done, values, ...)`` adds the loss terms to a running window
    (tensors, so nothing synchronises with a GPU between log rows). Every ``log_every``
    updates the window means, averaged over torchrun ranks, become a metrics row; every
    ``checkpoint_every`` updates ``state(done)`` is saved. Only rank 0 writes files and
    shows the bar. ``batch_size`` is this process's share; samples/s counts all ranks.
    """

    def __init__(
        self, run: RunDir, cfg: RunConfig, total: int, start: int, batch_size: int, desc: str
    ) -> None:
        from laom.training import distributed

        self.run = run
        self.cfg = cfg
        self.total = total
        self.start = start
        self.main = distributed.is_main()
        world = distributed.info().world_size
        self.metrics = MetricsWriter(run, cfg, resume_from=start) if self.main else None
        # Training seconds of the processes before this one, so each row's ``train_s`` is
        # the stage's whole training clock however often it was resumed (the report's
        # compute table reads it). Work past the last kept row was redone, so not counted.
        before = self.metrics.kept_last.get("train_s") if self.metrics is not None else None
        self._train_s_before = float(before) if isinstance(before, (int, float)) else 0.0
        self.progress = Progress(
            total, start, batch_size * world, enabled=cfg.progress and self.main, desc=desc
        )
        self._window: dict[str, torch.Tensor | float] = {}
        self._n = 0
        self.last: dict[str, float] = {}  # the latest logged window means
        self._shown = float("nan")

    def log_due(self, done: int) -> bool:
        return done % self.cfg.log_every == 0 or done == self.total

    def samples_per_s(self, done: int) -> float:
        return self.progress.samples_per_s(done)

    def record(
        self,
        done: int,
        values: dict[str, torch.Tensor | float],
        extra: dict[str, Any] | None = None,
        state: Any = None,
    ) -> None:
        """Account for update ``done`` (1-based). ``extra`` (logged as is) is only read
        on log rows; ``state(done)`` (a checkpoint dict) only when a checkpoint is due."""
        from laom.training import distributed

        for k, v in values.items():
            v = v.detach() if isinstance(v, torch.Tensor) else v
            self._window[k] = self._window[k] + v if k in self._window else v
        self._n += 1
        if self.log_due(done):
            means = {k: float(v) / self._n for k, v in self._window.items()}
            self.last = distributed.mean_over_ranks(means)
            self._window, self._n = {}, 0
            if self.metrics is not None:
                row = {
                    **self.last,
                    **(extra or {}),
                    "samples_per_s": self.samples_per_s(done),
                    "train_s": round(self._train_s_before + self.progress.seconds(), 3),
                    "start_update": self.start,  # where this process began: resumes are visible
                }
                self.metrics.write(done, row)
            self._shown = self.last.get("loss", float("nan"))
        elif (done % 10 == 0 or done == self.start + 1) and "loss" in self._window:
            self._shown = float(self._window["loss"]) / self._n  # running mean for the bar
        self.progress.update(done, loss=self._shown)
        if state is not None and (done % self.cfg.checkpoint_every == 0 or done == self.total):
            if self.main:
                self.run.save_checkpoint(state(done))

    def close(self) -> None:
        self.progress.close()
        if self.metrics is not None:
            self.metrics.close()
