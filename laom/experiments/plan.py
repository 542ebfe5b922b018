"""The runs of a sweep's grid, their order, their dependencies and their keys.

Dependencies let runs share stages safely: every lapo/laom run waits for the first run
of its (task, method, seed), which trains the LAM and latent BC all its budgets reuse,
so two processes never train the same stage directory at once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from laom import methods as registry
from laom.experiments.overrides import overrides_for
from laom.experiments.sweep_config import SweepConfig, split_first
from laom.experiments.sweep_dir import file_identity
from laom.training.options import CURVE_ONLY_FIELDS, without_fields

SHARED_STAGE_METHODS = tuple(m.name for m in registry.METHODS.values() if m.shares_stages)


@dataclass
class Job:
    """One pipeline run of the grid. ``labeled`` is None for bc-full (all the data)."""

    task: str
    method: str
    labeled: int | None
    seed: int
    after: list[str] = field(default_factory=list)  # ids of jobs that must finish first
    key: str = ""  # run key: what the run's result depends on

    @property
    def id(self) -> str:
        return run_id(self.task, self.method, self.labeled, self.seed)


def run_id(task: str, method: str, labeled: int | None, seed: int) -> str:
    return f"{task}/{method}/{'full' if labeled is None else labeled}/s{seed}"


def needs_bc_full(cfg: SweepConfig) -> bool:
    return "bc-full" in cfg.methods or (cfg.normalizer == "auto" and cfg.episodes > 0)


def plan_jobs(cfg: SweepConfig) -> list[Job]:
    """Every run of the grid, in the order to start them (dependencies first).

    bc-full runs come first (they give the normaliser); then budgets in increasing
    order, so partial results cover small budgets for all methods early. A lapo or laom
    run waits for the smallest budget of its (task, method, seed), which trains the
    LAM and latent BC that all its budgets share.
    """
    jobs: list[Job] = []
    if needs_bc_full(cfg):
        jobs += [Job(t, "bc-full", None, s) for t in cfg.tasks for s in cfg.seeds]
    methods = [m for m in cfg.methods if registry.get(m).reads("labeled")]
    for n in cfg.labeled:
        for task in cfg.tasks:
            for method in methods:
                jobs += [Job(task, method, n, seed) for seed in cfg.seeds]
    return link_shared(jobs)


def bf16_stages(method: str, overrides: Sequence[str]) -> list[str]:
    """The stages of ``method`` that train in bf16 on this machine with these settings
    (``--precision``, ``--STAGE.precision``, ``--device`` alike; default "auto").

    Why a run key holds it: "auto" is bf16 on a CPU with AMX and fp32 on one without, so
    a run recorded on one machine must not count as done on the other when they differ.
    The built-in presets set no precision; a preset folder that does is named in the key
    by its path, as the rest of its content is.
    """
    from laom.models.device import keyed_precision
    from laom.training.options import override_items
    from laom.training.pipeline import chain

    stages = chain(method, "data", "labeled", "eval")
    setting = {s.name: {"precision": "auto", "device": "auto"} for s in stages}
    for name, values in override_items(overrides_for(method, overrides), "a setting"):
        prefix, _, field_name = name.rpartition(".")
        field_name = field_name.replace("-", "_")
        if field_name not in ("precision", "device") or not values:
            continue
        for s in stages:  # --idm.precision reaches idm-bc as its other settings do
            if not prefix or prefix.replace("_", "-") in (s.name, s.former):
                setting[s.name][field_name] = values[-1]
    return [n for n, v in setting.items() if keyed_precision(v["precision"], v["device"]) == "bf16"]


def put_first(jobs: list[Job], entries: Sequence[str]) -> list[Job]:
    """``jobs`` with those named by ``entries`` (``[TASK:]METHOD[/BUDGET][@SEED]``,
    :func:`laom.experiments.sweep_config.parse_first`) moved to the front in the order
    given, each entry's runs and the rest in their order.

    Why: a sweep's default order (by budget) interleaves methods, so a LAM method's last
    budget starts hours after its LAM trained. Weights that do not outlive the machine
    (a new machine keeps only the records) make that costly: an unfinished chain trains
    its LAM and latent BC again. Putting one method first finishes its chain in one go.
    A budget entry puts single runs first, e.g. the budgets a finding turns on.
    """
    front: dict[str, Job] = {}
    for entry in entries:
        task, method, budget, seed = split_first(entry)
        for job in jobs:
            if (job.method == method and (budget is None or job.labeled == budget)
                    and (task is None or job.task == task) and (seed is None or job.seed == seed)):  # fmt: skip
                front.setdefault(job.id, job)
    return [*front.values(), *(j for j in jobs if j.id not in front)]


def link_shared(jobs: list[Job]) -> list[Job]:
    """Make every lapo/laom job wait for the first job of its (task, method, seed) in
    ``jobs``. Applied again to the unfinished jobs of a resumed sweep, so the group's
    first *pending* job is the one that (re)trains the shared stages."""
    leaders: dict[tuple[str, str, int], str] = {}
    for job in jobs:
        job.after = []
        if job.method in SHARED_STAGE_METHODS:
            leader = leaders.setdefault((job.task, job.method, job.seed), job.id)
            if leader != job.id:
                job.after = [leader]
    return jobs


def job_key(cfg: SweepConfig, job: Job, labeled_file: str) -> str:
    """Hash of everything a run's own result depends on; runs.jsonl lines with another
    key are stale. The normaliser is left out: it depends on other runs (with ``auto``,
    bc-full over every seed), so it is re-applied to recorded lines instead
    (:func:`renormalize`) and adding seeds does not re-run finished work."""
    parts: dict[str, Any] = {
        "task": job.task, "method": job.method, "labeled": job.labeled, "seed": job.seed,
        "data": file_identity(cfg.data[job.task]),
        "eval_data": file_identity(cfg.eval_data[job.task]) if cfg.eval_data[job.task] else "",
        "labeled_file": file_identity(labeled_file) if labeled_file else "",
        "preset": cfg.preset, "episodes": cfg.episodes, "eval_seed": cfg.eval_seed, "max_steps": cfg.max_steps,
        "chunk": cfg.chunk, "overrides": overrides_for(job.method, without_fields(cfg.overrides, CURVE_ONLY_FIELDS | {"precision"})),
    }  # fmt: skip
    if cfg.until:  # a run cut short is another result than the whole run (sweeps before the field keep their keys)
        parts["until"] = cfg.until
    bf16 = bf16_stages(job.method, cfg.overrides)
    if bf16:  # fp32 (typed, or what "auto" means here) keeps the keys recorded before this rule
        parts["precision"] = {stage: "bf16" for stage in bf16}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
