"""A training run's directory: its config (checked on resume), checkpoints, summary.

Re-running a stage's command with the same ``--out`` resumes it from its checkpoint; a
finished run (one with ``summary.json``) returns its summary without training.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, TypeVar

import yaml

from laom.errors import LaomError
from laom.models.saving import load_torch, save_torch
from laom.outputs import atomic_write_text
from laom.training.config import config_to_dict, config_to_yaml
from laom.training.options import ADDED_FIELDS, NON_RESULT_FIELDS
from laom.training.summaries import StageSummary

S = TypeVar("S", bound=StageSummary)

# Config fields naming a file or run directory: the same place written relative or
# absolute (``laom pipeline`` resolves paths, a hand-run stage may not) is the same run.
PATH_FIELDS = {"out", "data", "labeled", "eval_data", "lam", "policy", "idm"}
# Summary fields naming the run's own artifact (laom.training.summaries).
ARTIFACT_FIELDS = ("lam", "latent_policy", "policy", "idm")


def same_setting(name: str, old: Any, new: Any) -> bool:
    """Whether config field ``name`` is set alike in an existing run (``old``) and now."""
    if old == new:
        return True
    if name in ADDED_FIELDS and old in (None, ADDED_FIELDS[name]) and new in (None, ADDED_FIELDS[name]):  # a run made before the field
        return True
    if name in PATH_FIELDS and isinstance(old, str) and isinstance(new, str) and old and new:
        return Path(old).resolve() == Path(new).resolve()
    return False


class RunDir:
    """One training run's directory::

    RUN/config.yaml          resolved config (every field)
    RUN/checkpoints/last.pt  latest checkpoint (atomic), resumed from automatically
    RUN/metrics.jsonl        one JSON object per logged update
    RUN/summary.json         written last: its presence means the run finished
    RUN/<artifacts>          stage outputs (e.g. lam.pt)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_path = self.path / "config.yaml"
        self.checkpoint_dir = self.path / "checkpoints"
        self.checkpoint_path = self.checkpoint_dir / "last.pt"
        self.metrics_path = self.path / "metrics.jsonl"
        self.summary_path = self.path / "summary.json"

    @property
    def finished(self) -> bool:
        """summary.json is there and so is every artifact it names: a run whose weights
        were deleted (pruned to save disk, or restored from a study's records on a new
        machine) is trained again when something needs it, instead of failing downstream."""
        return self.summary_path.is_file() and not self.missing_artifacts()

    def missing_artifacts(self) -> list[str]:
        """The files of this folder that summary.json names and that are gone."""
        try:
            data = json.loads(self.summary_path.read_text())
        except (OSError, ValueError):
            return []
        if not isinstance(data, dict):
            return []
        names = [Path(v).name for k in ARTIFACT_FIELDS if isinstance(v := data.get(k), str) and v]
        return [n for n in names if not (self.path / n).is_file()]

    def prepare(self, cfg: Any) -> None:
        """Create the directory and write the config, or check it matches on resume.

        Re-running the same command resumes; a different config in an existing run
        directory is an error (it would silently mix two runs).
        """
        from laom.outputs import reset_peak_memory
        from laom.training import distributed

        reset_peak_memory()  # the summary's peak_memory_gb is this run's, not the process's
        if not distributed.is_main():  # rank 0 checks and writes; the others wait for it
            distributed.barrier()
            return
        try:
            self._prepare(cfg)
        finally:
            distributed.barrier()

    def _prepare(self, cfg: Any) -> None:
        from laom.outputs import check_output

        check_output(self.path, "--out", kind="dir", create_parents=True)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        new = config_to_dict(cfg)
        # A folder with neither checkpoint nor summary holds nothing to lose (a run that
        # stopped before its first checkpoint): its config is replaced, not a reason to refuse.
        if self.config_path.is_file() and (self.checkpoint_path.is_file() or self.summary_path.is_file()):
            # (a summary whose artifacts are gone still pins the config: its records stay)
            old = yaml.safe_load(self.config_path.read_text()) or {}
            # ``out`` is where the folder is, not what it holds: a run folder moved or
            # copied (``cp -al`` of a probe-only sweep's LAMs into the whole sweep's cache,
            # whose keys are the same) is the same run, as the stage keys already say.
            diff = sorted(
                k
                for k in set(old) | set(new)
                if k not in NON_RESULT_FIELDS and k != "out" and not same_setting(k, old.get(k), new.get(k))
            )
            if diff:
                shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:3])
                raise LaomError(
                    f"--out {self.path} holds a run with a different config ({shown}); use a new --out"
                )
        atomic_write_text(self.config_path, config_to_yaml(cfg))
        self.prune_checkpoints()  # a run finished by an older laom kept them

    # What a training writes as its results, besides metrics.jsonl: a run trained again
    # from the start in this folder puts the earlier ones aside (set_aside_results).
    RESULT_FILES = ("summary.json", "metrics.jsonl", "curve.jsonl", "probe_curve.jsonl", "eval.json")
    # Weights a training keeps at points along the way (latent BC's --snapshot_every):
    # an earlier training's are deleted with it, not mixed into the new one's.
    SNAPSHOT_DIR = "snapshots"

    def set_aside_results(self) -> list[str]:
        """Move the results of an earlier training of this folder into ``superseded/``
        (replacing what an even earlier one left there); returns the names moved."""
        files = [self.path / n for n in self.RESULT_FILES] + sorted(self.path.glob("eval-*.json"))
        files = [f for f in files if f.is_file()]
        shutil.rmtree(self.path / self.SNAPSHOT_DIR, ignore_errors=True)
        if files:
            aside = self.path / "superseded"
            aside.mkdir(exist_ok=True)
            for f in files:
                f.replace(aside / f.name)
        return [f.name for f in files]

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The state :meth:`save_checkpoint` saved (on the CPU), or None before the first."""
        if not self.checkpoint_path.is_file():
            return None
        return load_torch(self.checkpoint_path, "checkpoint", "delete it to restart")

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Replace the checkpoint whole and flushed to disk (laom.models.saving.save_torch)."""
        save_torch(state, self.checkpoint_path)

    def write_summary(self, summary: StageSummary) -> None:
        """Finish the run: ``summary`` (stamped with the code version, in place) becomes
        summary.json, and the checkpoints, which only a resume needed, are deleted.

        Written by rank 0 (the only writer under torchrun); every rank returns once it exists.
        """
        from laom.outputs import code_version, machine, peak_memory_gb
        from laom.training import distributed

        peak = peak_memory_gb()
        summary.stamp({**code_version(), "machine": machine(), "peak_memory_gb": None if peak is None else round(peak, 3)})
        if distributed.is_main():
            atomic_write_text(
                self.summary_path, json.dumps(summary.to_json(), indent=2, sort_keys=False) + "\n"
            )
            self.prune_checkpoints()
        distributed.barrier()

    def prune_checkpoints(self) -> None:
        """Delete ``checkpoints/`` of a finished run (it is 2-3x the final model: weights,
        optimizer moments). Everything downstream reads the stage's artifacts and summary,
        never a checkpoint; a run is finished once summary.json exists, so a kill halfway
        through leaves nothing that a re-run would read."""
        if self.finished and self.checkpoint_dir.is_dir():
            shutil.rmtree(self.checkpoint_dir, ignore_errors=True)

    def read_summary(self, kind: type[S]) -> S:
        """The finished run's summary as the record ``kind`` of its stage."""
        data = json.loads(self.summary_path.read_text())
        try:
            return kind.from_json(data)
        except LaomError as exc:
            raise LaomError(f"{self.summary_path}: {exc}") from None
