"""runs.jsonl, a sweep's record of finished runs: what a report reads.

One whole line per run (:class:`RunRecord`), appended and synced before the run counts
as done, so a crash loses at most the line being written (a torn last line is ignored
when read).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from laom.errors import LaomError
from laom.records import Record, dict_of, json_field
from laom.training.summaries import OfflineScores, StageRef


@dataclass(kw_only=True)
class RunRecord(Record):
    """One runs.jsonl line: a finished (task, method, budget, seed) run, the figures of
    its pipeline summary a report needs, where its stages are, and (once the task's
    normaliser is known) its normalised return.

    Lines of every earlier laom load: only task, method and seed are required, a figure
    a line lacks reads as None, and keys this laom does not name stay in ``extra`` (the
    file is rewritten in place when the normaliser changes, and must keep them).
    """

    task: str
    method: str
    labeled: int | None = None  # labelled trajectories; None for bc-full (all the data)
    seed: int
    run_key: str | None = None  # what the result depends on (laom.experiments.plan.job_key)
    return_mean: float | None = None
    return_std: float | None = None
    episodes: int | None = None
    action_probe_mse: float | None = None
    action_probe_baseline_mse: float | None = None
    state_probe_mse: float | None = None
    offline: OfflineScores | None = json_field(parse=OfflineScores.from_json)
    stages: dict[str, StageRef] = json_field(factory=dict, parse=dict_of(StageRef.from_json))
    stage_seconds: dict[str, float] = json_field(factory=dict)
    labeled_file: str | None = None
    summary_file: str | None = None
    wall_s: float | None = None
    finished: str | None = None  # UTC, ISO 8601
    laom_version: str | None = None
    git_commit: str | None = None
    normalizer: float | None = None
    normalized_return: float | None = None
    normalized_std: float | None = None

    def stage_dir(self, stage: str) -> str | None:
        """The folder of the run's ``stage`` (None when it has none or it was not kept)."""
        ref = self.stages.get(stage)
        return ref.dir if ref is not None and ref.dir else None

    def lam_id(self) -> str:
        """What tells its LAM from another: the LAM stage's folder, or (task, budget, seed)
        where it kept none. Runs that share a LAM (every budget of a seed, for a LAM that
        reads no labels) share it, so a probe counts once per LAM, not once per run."""
        return self.stage_dir("lam") or f"{self.task}/{self.labeled}/{self.seed}"

    def policy_curve_files(self) -> list[Path]:
        """The learning-curve files its acting policy kept (return against updates), by
        the stage that trains it: BC's, the IDM baseline's policy, a latent method's decoder."""
        return [Path(folder) / name for stage, name in POLICY_CURVES.items() if (folder := self.stage_dir(stage))]


# Where each acting-policy stage keeps its learning curve, relative to its folder
# (``--curve_every``; "idm": the one-stage IDM baseline of an earlier laom, its policy in
# RUN/bc/; "decoder": a latent method's, against latent BC's updates, a decoder per snapshot).
POLICY_CURVES = {"bc-baseline": "curve.jsonl", "idm-bc": "curve.jsonl", "idm": "bc/curve.jsonl",
                 "decoder": "curve.jsonl"}  # fmt: skip


def read_runs(path: Path) -> list[RunRecord]:
    """The finished runs of a sweep. A torn last line (a crash mid-append) is ignored;
    a bad line elsewhere means the file was edited, which is an error."""
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    runs = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            run = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines):
                continue
            raise LaomError(f"{path}:{i}: not a JSON line") from None
        if not isinstance(run, dict) or not {"task", "method", "seed"} <= set(run):
            raise LaomError(f"{path}:{i}: not a run record (needs task, method, labeled, seed)")
        try:
            runs.append(_rebase(RunRecord.from_json(run), path.parent))
        except LaomError as exc:
            raise LaomError(f"{path}:{i}: {exc}") from None
    return runs


def _rebase(run: RunRecord, root: Path) -> RunRecord:
    """Point a line's stage folders and summary file into ``root`` where the recorded
    path is gone but ``root`` has it: a sweep moved or copied elsewhere, or its records
    read from a repository (laom.experiments.sweep_records). Lines store absolute paths."""
    cache = root / "cache"

    def moved(recorded: str | None) -> str | None:
        if not recorded or Path(recorded).exists():
            return recorded
        here = cache / Path(recorded).name
        return str(here) if here.exists() else recorded

    for ref in run.stages.values():
        ref.dir = moved(ref.dir) or ref.dir
    run.summary_file = moved(run.summary_file)
    return run


def append_run(path: Path, run: RunRecord) -> None:
    """One whole line per run, flushed to disk before the run counts as done."""
    with open(path, "a") as f:
        f.write(json.dumps(run.to_json(), sort_keys=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def drop_stale(path: Path, keys: set[str]) -> int:
    """Move lines whose run key is not in ``keys`` to runs.stale.jsonl (after --force)."""
    from laom.outputs import atomic_write_text

    if not path.is_file():
        return 0
    keep, stale = [], []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            key = json.loads(line).get("run_key")
        except (json.JSONDecodeError, AttributeError):
            key = None
        (keep if key in keys else stale).append(line)
    if stale:
        with open(path.with_name("runs.stale.jsonl"), "a") as f:
            f.write("\n".join(stale) + "\n")
        atomic_write_text(path, "".join(line + "\n" for line in keep))
    return len(stale)
