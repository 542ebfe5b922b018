"""A run's metrics: ``metrics.jsonl`` rows (cut back to the checkpoint on resume),
mirrored to TensorBoard or Weights & Biases when asked, and read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from laom.errors import LaomError
from laom.outputs import atomic_write_text
from laom.training.config import RunConfig, config_to_dict
from laom.training.rundir import RunDir


def scalar(value: Any) -> Any:
    """A logged value as a plain Python number (tensors and numpy scalars unwrapped)."""
    if isinstance(value, torch.Tensor):
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


class MetricsWriter:
    """metrics.jsonl rows ``{"update": u, ...}``; optional TensorBoard and wandb mirrors.

    ``resume_from`` drops rows past the checkpoint a resumed run restarts from, so the
    file reads as if the run had never been interrupted.
    """

    def __init__(
        self, run: RunDir, cfg: RunConfig, resume_from: int = 0, prefix: str = ""
    ) -> None:
        self.path = run.metrics_path
        self.prefix = prefix
        self.kept_last: dict[str, Any] = {}  # the last row kept from an earlier process
        if self.path.is_file():
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip()
                and _row_update(line) is not None
                and _row_update(line) <= resume_from
            ]
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
            if kept:
                self.kept_last = json.loads(kept[-1])
        self._file = open(self.path, "a")
        self._tb = None
        self._wandb = None
        if cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise LaomError(
                    "--tensorboard true needs the tensorboard package (pip install laom[tensorboard])"
                ) from None
            self._tb = SummaryWriter(str(run.path / "tensorboard"))
        if cfg.wandb:
            try:
                import wandb
            except ImportError:
                raise LaomError(
                    "--wandb true needs the wandb package (pip install laom[wandb])"
                ) from None
            from laom.training.tracking import wandb_init_kwargs

            # name method/stage/folder; id from the folder, so a resumed run continues it
            identity = wandb_init_kwargs(run.path, cfg)
            self._wandb = wandb.init(**identity, config=config_to_dict(cfg))

    def write(self, update: int, values: dict[str, Any]) -> None:
        row = {"update": update, **{k: scalar(v) for k, v in values.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        for key, value in row.items():
            if key != "update" and isinstance(value, (int, float)):
                if self._tb is not None:
                    self._tb.add_scalar(self.prefix + key, value, update)
        if self._wandb is not None:
            self._wandb.log(
                {self.prefix + k: v for k, v in row.items() if k != "update"}, step=update
            )

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def _row_update(line: str) -> int | None:
    try:
        return int(json.loads(line)["update"])
    except (ValueError, KeyError, TypeError):
        return None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file (metrics, learning curves), or [] when there is none yet.

    A torn last line (a process killed mid-write) is left out, as every appender here
    writes whole lines; a bad line elsewhere is a damaged file and raises ValueError."""
    p = Path(path)
    if not p.is_file():
        return []
    lines = [line for line in p.read_text().splitlines() if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:
                break
            raise
    return rows


def read_jsonl_lenient(path: str | Path) -> list[dict[str, Any]]:
    """:func:`read_jsonl`'s rows that are objects, or [] for a damaged or unreadable file:
    for reports, where a curve is extra and never a reason to fail."""
    try:
        return [row for row in read_jsonl(path) if isinstance(row, dict)]
    except (OSError, ValueError):
        return []


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
