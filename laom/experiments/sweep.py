"""``laom sweep``: the paper's grid of (task, method, labelled budget, seed) pipelines.

Layout of a sweep directory::

    SWEEP/sweep.yaml      the config that made it (a resume must match it or only add tasks,
                          methods, budgets or seeds; anything else needs --force)
    SWEEP/runs.jsonl      one line per finished run: the record a report reads
    SWEEP/labeled/        {task}-{n}-s{seed}.hdf5 labelled subsets (nested per seed)
    SWEEP/cache/          the pipeline's content-hashed stage directories, shared by all runs
    SWEEP/logs/           one log per run

Every run goes through :func:`laom.training.pipeline.run_pipeline` into the one cache
root, so a LAM and its latent BC policy are trained once per (task, method, seed) and
reused by every budget of lapo and laom (only the decoder reads the labelled file);
laom-labels, lapo-labels, idm and bc read the labelled file in their first stage and so
train per budget (:attr:`laom.methods.Method.shares_stages` says which). The sweep seed
goes to every stage's ``seed`` field and picks the labelled subset, so seeds differ in
both.

Runs are independent processes when ``--jobs`` > 1; the planner makes every lapo/laom
run wait for the smallest budget of its (task, method, seed) group, which trains the
shared stages, so two processes never train the same stage directory at once.

``--normalizer auto`` is the paper's: the return of BC trained on the full dataset
(``bc-full``), here averaged over the sweep's seeds to one number per task. A run's line
is written to runs.jsonl only once its task's normaliser is known, so every line is
final; a run finished but not yet written is redone from the cache (seconds) on resume.
``--normalizer SWEEP_DIR`` takes another sweep's per-task normaliser, so a variant swept
in its own directory (other stage settings) is normalised exactly like the main sweep.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from laom import methods as registry
from laom.errors import LaomError, require
from laom.outputs import check_output
from laom.progress import format_interval

METHODS = registry.names()
# Methods whose first stages do not read the labelled file: their runs share them.
SHARED_STAGE_METHODS = tuple(m.name for m in registry.METHODS.values() if m.shares_stages)
SWEEP_VERSION = 1


# --------------------------------------------------------------------------- config


@dataclass
class SweepConfig:
    """What determines a sweep's results (sweep.yaml). Speed-only settings (jobs,
    evaluation workers, progress) are left out, so a resume may change them."""

    tasks: list[str]
    methods: list[str]
    labeled: list[int]
    seeds: list[int]
    data: dict[str, str]  # task -> absolute path
    eval_data: dict[str, str] = field(default_factory=dict)  # task -> absolute path ("" = none)
    preset: str = "cpu"
    episodes: int = 25
    eval_seed: int = 0
    max_steps: int | None = None
    normalizer: str = "auto"  # auto | paper | none | a number | sweep:DIR
    chunk: int = 1000
    overrides: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class SweepOptions:
    """A sweep command: its config plus how to run it."""

    config: SweepConfig
    out: str
    jobs: int = 1
    workers: int = 0
    num_envs: int = 4
    force: bool = False
    progress: bool = True
    rates: str = ""  # the rates file the end-of-sweep prediction reads ("" = laom.experiments.cost's default)


def parse_list(text: str, flag: str) -> list[str]:
    """``a,b,c`` (spaces around items are fine); an empty item (``2,,4``) may be a lost
    value, so it is refused rather than dropped."""
    items = [t.strip() for t in str(text).split(",")]
    require(any(items), f"{flag}: expected a comma-separated list")
    require(all(items), f"{flag} {text}: empty entry (expected a comma-separated list such as a,b)")
    require(len(set(items)) == len(items), f"{flag} {text}: duplicate entries")
    return items


def parse_ints(text: str, flag: str, minimum: int) -> list[int]:
    out = []
    for item in parse_list(text, flag):
        try:
            value = int(item)
        except ValueError:
            raise LaomError(f"{flag} {text}: {item!r} is not an integer") from None
        require(value >= minimum, f"{flag} {text}: {value} is below {minimum}")
        out.append(value)
    return sorted(out)


def parse_methods(text: str) -> list[str]:
    methods = parse_list(text, "--methods")
    unknown = [m for m in methods if m not in METHODS]
    require(not unknown, f"--methods: unknown method {', '.join(unknown)} (expected {', '.join(METHODS)})")
    return [m for m in METHODS if m in methods]


SWEEP_NORMALIZER = "sweep:"


def check_normalizer(text: str) -> str:
    """``auto``, ``paper``, ``none``, a non-zero number or another sweep's directory
    (``sweep:/abs/path``); returned in canonical form. Keywords and numbers win over a
    folder of the same name, so the default never depends on the working directory."""
    raw = str(text).strip()
    if raw.lower() in ("auto", "paper", "none"):
        return raw.lower()
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is not None:
        require(value != 0 and math.isfinite(value), f"--normalizer {raw}: expected a non-zero number")
        return repr(value)
    path = raw.removeprefix(SWEEP_NORMALIZER)
    require(Path(path).is_dir(), f"--normalizer {raw}: expected auto, paper, none, a number or a sweep directory")
    require((Path(path) / "runs.jsonl").is_file(), f"--normalizer {path}: not a sweep directory (no runs.jsonl)")
    return SWEEP_NORMALIZER + str(Path(path).resolve())


def sweep_normalizers(spec: str) -> dict[str, float]:
    """Per task, the normaliser another sweep applied to its runs (its latest line wins)."""
    path = Path(spec.removeprefix(SWEEP_NORMALIZER)) / "runs.jsonl"
    require(path.is_file(), f"--normalizer {path.parent}: no runs.jsonl (not a sweep directory)")
    out: dict[str, float] = {}
    for run in read_runs(path):
        if run.get("normalizer") is not None:
            out[run["task"]] = float(run["normalizer"])
    return out


def expand(template: str, task: str, flag: str, tasks: Sequence[str]) -> str:
    """One file per task: ``{task}`` in the template is replaced by the task name."""
    if "{task}" not in template:
        require(len(tasks) == 1, f"{flag} {template}: with several tasks, use a template with {{task}} (e.g. data/{{task}}-train.hdf5)")
        return str(Path(template).resolve())
    return str(Path(template.replace("{task}", task)).resolve())


def override_pairs(extra: Sequence[str]) -> list[tuple[str, str]]:
    """``--name value`` / ``--name=value`` tokens as (name, value) pairs."""
    pairs, i = [], 0
    while i < len(extra):
        token = extra[i]
        if not token.startswith("--"):
            raise LaomError(f"unexpected argument {token!r} (stage overrides are --field value or --stage.field value)")
        name, eq, value = token[2:].partition("=")
        if eq:
            i += 1
        else:
            require(i + 1 < len(extra), f"--{name} needs a value")
            value, i = extra[i + 1], i + 2
        pairs.append((name, value))
    return pairs


def overrides_for(method: str, extra: Sequence[str]) -> list[str]:
    """The overrides that concern ``method``: ``--field`` if one of its stages has the
    field, ``--stage.field`` if it has the stage. One sweep command line serves methods
    with different stages, and a run's key must not change with settings it never reads."""
    from laom.training.pipeline import chain

    stages = chain(method, "data", "labeled", "eval")
    fields = {f.name for s in stages for f in dataclasses.fields(s.config_cls)}
    names = {s.name for s in stages}
    out: list[str] = []
    for name, value in override_pairs(extra):
        stage, dot, fname = name.partition(".")
        if (stage.replace("_", "-") in names) if dot else (name.replace("-", "_") in fields):
            out += [f"--{name}", value]
    return out


def check_overrides(methods: Sequence[str], extra: Sequence[str]) -> list[str]:
    """Fail before any training on an override no method has (a typo) or on ``--seed``;
    returns the ones only methods outside this sweep have (ignored, so one command line
    can serve sweeps over different methods)."""
    from laom.training.pipeline import STAGE_NAMES, chain

    fields: set[str] = set()
    for method in METHODS:
        fields |= {f.name for s in chain(method, "d", "l", "e") for f in dataclasses.fields(s.config_cls)}
    used: set[str] = set()
    stages: set[str] = set()
    for method in methods:
        used |= {f.name for s in chain(method, "d", "l", "e") for f in dataclasses.fields(s.config_cls)}
        stages |= {s.name for s in chain(method, "d", "l", "e")}
    ignored: list[str] = []
    for name, _ in override_pairs(extra):
        stage, dot, fname = name.rpartition(".")
        fname = fname.replace("-", "_")
        require(fname != "seed", f"--{name}: the sweep sets every stage's seed from --seeds")
        if dot:
            stage = stage.replace("_", "-")
            require(stage in STAGE_NAMES, f"--{name}: no stage {stage!r} (stages: {', '.join(STAGE_NAMES)})")
            if stage not in stages:
                ignored.append(f"--{name}")
        elif fname not in fields:
            raise LaomError(f"unknown option --{name}: no stage of any method has it")
        elif fname not in used:
            ignored.append(f"--{name}")
    return ignored


def count_chunks(path: str, chunk: int) -> tuple[str, int]:
    """(task of the file, how many labelled chunks it can give)."""
    from laom.data.format import DatasetReader
    from laom.data.labeled import chunks_of

    with DatasetReader(path) as reader:
        lengths = {i: reader.length(i) for i in reader.indices}
        return reader.task, len(chunks_of(lengths, chunk))


def make_config(
    tasks: str, methods: str, labeled: str, seeds: str, data: str, eval_data: str | None = None, *,
    preset: str = "cpu", episodes: int = 25, eval_seed: int = 0, max_steps: int | None = None,
    normalizer: str = "auto", chunk: int = 1000, overrides: Sequence[str] = (),
    log: Callable[[str], None] | None = None,
) -> SweepConfig:  # fmt: skip
    """Parse and check the command's values against the files, so a bad flag fails in
    a second rather than hours into the sweep."""
    task_list = parse_list(tasks, "--tasks")
    method_list = parse_methods(methods)
    budgeted = any(registry.get(m).reads("labeled") for m in method_list)  # bc-full has no budget
    budgets = parse_ints(labeled, "--labeled", 1) if budgeted else []
    require(bool(budgets) or not budgeted, "--labeled: expected at least one budget")
    seed_list = parse_ints(seeds, "--seeds", 0)
    require(episodes >= 0, f"--episodes {episodes}: expected >= 0")
    require(chunk >= 1, f"--chunk {chunk}: expected >= 1")
    require(max_steps is None or max_steps >= 1, f"--max-steps {max_steps}: expected >= 1")
    norm = check_normalizer(normalizer)
    if norm == "paper":
        from laom.experiments.paper import BC_FULL_RETURN

        missing = [t for t in task_list if t not in BC_FULL_RETURN]
        require(not missing, f"--normalizer paper: the paper has no BC-full return for {', '.join(missing)}")
    if norm.startswith(SWEEP_NORMALIZER):
        known = sweep_normalizers(norm)
        missing = [t for t in task_list if t not in known]
        require(not missing, f"--normalizer {norm.removeprefix(SWEEP_NORMALIZER)}: that sweep has no normaliser for "
                f"{', '.join(missing)} (sweep it with bc-full, or let its bc-full runs finish)")  # fmt: skip
    ignored = check_overrides(method_list, list(overrides))
    if ignored and log is not None:
        log(f"note: no stage of {', '.join(method_list)} has {', '.join(ignored)}; ignored")
    data_files = {t: expand(data, t, "--data", task_list) for t in task_list}
    eval_files = {t: expand(eval_data, t, "--eval-data", task_list) if eval_data else "" for t in task_list}
    for task in task_list:
        for flag, path in (("--data", data_files[task]), ("--eval-data", eval_files[task])):
            if not path:
                continue
            require(Path(path).is_file(), f"{flag} {path}: no such file")
            file_task, chunks = count_chunks(path, chunk)
            require(file_task == task, f"{flag} {path}: holds {file_task} data, not {task}")
            if flag == "--data" and budgets:
                require(
                    budgets[-1] <= chunks,
                    f"--labeled {budgets[-1]}: {path} has only {chunks} labelled chunk(s) of up to {chunk} steps",
                )
        check_inputs(task, data_files[task], eval_files[task], episodes)
    cfg = SweepConfig(
        tasks=task_list, methods=method_list, labeled=budgets, seeds=seed_list, data=data_files,
        eval_data=eval_files, preset=preset, episodes=episodes, eval_seed=eval_seed, max_steps=max_steps,
        normalizer=norm, chunk=chunk, overrides=list(overrides),
    )  # fmt: skip
    check_stage_configs(cfg)
    return cfg


def check_inputs(task: str, data: str, eval_data: str, episodes: int) -> None:
    """The task's files hold one layout (frames, action and state sizes) and, when runs
    are evaluated, the environments have the task: checked before the first run."""
    from laom.data.compat import check_compatible

    check_compatible({"--data": data, "--eval-data": eval_data})
    if episodes > 0:
        from laom.envs.tasks import parse_task

        try:
            parse_task(task)
        except LaomError as exc:
            raise LaomError(f"--tasks {task}: cannot evaluate online: {exc} (use --episodes 0)") from None


def check_stage_configs(cfg: SweepConfig) -> None:
    """Resolve every method's stage configs once (preset files, field names and values)."""
    from laom.training.pipeline import chain, plan_chain, split_overrides

    task = cfg.tasks[0]
    data = cfg.data[task]
    for method in cfg.methods:
        stages = chain(method, data, data, cfg.eval_data[task])
        routed = split_overrides(overrides_for(method, cfg.overrides), stages, method, [])
        plan_chain(stages, Path("/nonexistent-sweep-check"), cfg.preset, routed)


def file_identity(path: str) -> dict[str, Any]:
    st = Path(path).stat()
    return {"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def sweep_record(cfg: SweepConfig) -> dict[str, Any]:
    """sweep.yaml's content: the config and the identity of its input files."""
    inputs = {t: {"data": file_identity(cfg.data[t])} for t in cfg.tasks}
    for t in cfg.tasks:
        if cfg.eval_data[t]:
            inputs[t]["eval_data"] = file_identity(cfg.eval_data[t])
    return {"sweep_version": SWEEP_VERSION, "config": cfg.to_dict(), "inputs": inputs}


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Human-readable paths where two records differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += differences(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


GRID = ("tasks", "methods", "labeled", "seeds")


def extends(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether ``new`` only adds tasks, methods, budgets or seeds to ``old``'s grid.

    Growing a sweep (more seeds, more budgets) is the usual way to spend more compute on
    a study; every run already recorded stays valid, so it needs no --force.
    """
    old_cfg, new_cfg = old.get("config"), new.get("config")
    if not isinstance(old_cfg, dict) or not isinstance(new_cfg, dict):
        return False
    for key in GRID:
        before, after = old_cfg.get(key), new_cfg.get(key)
        if not isinstance(before, list) or not isinstance(after, list) or not set(before) <= set(after):
            return False
    tasks = set(old_cfg["tasks"])
    projected = {**new, "config": {**new_cfg, **{k: old_cfg[k] for k in GRID}}}
    for key in ("data", "eval_data"):
        if isinstance(new_cfg.get(key), dict):
            projected["config"][key] = {t: v for t, v in new_cfg[key].items() if t in tasks}
    if isinstance(new.get("inputs"), dict):
        projected["inputs"] = {t: v for t, v in new["inputs"].items() if t in tasks}
    return not differences(old, projected)


def open_sweep_dir(root: Path, cfg: SweepConfig, force: bool) -> bool:
    """Create or resume ``root``; returns whether the config changed (forced).

    A sweep dir is tied to one config: mixing runs of two configs in one runs.jsonl
    would make its report silently wrong.
    """
    changed = check_sweep_dir(root, cfg, force)
    root.mkdir(parents=True, exist_ok=True)
    from laom.outputs import atomic_write_text

    atomic_write_text(root / "sweep.yaml", yaml.safe_dump(sweep_record(cfg), sort_keys=False))
    return changed


def check_sweep_dir(root: Path, cfg: SweepConfig, force: bool) -> bool:
    """Whether ``root`` holds a sweep of another config (allowed with ``force``; refused
    otherwise), writing nothing: ``--plan`` refuses what the sweep would refuse."""
    record = sweep_record(cfg)
    path = root / "sweep.yaml"
    require(not root.exists() or root.is_dir(), f"--out {root}: exists and is not a directory")
    changed = False
    if path.is_file():
        try:
            old = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise LaomError(f"{path}: invalid YAML ({' '.join(str(exc).split())})") from None
        diff = differences(old, record) if isinstance(old, dict) else ["sweep.yaml: not a mapping"]
        if diff and not extends(old, record):
            if not force:
                shown = "; ".join(diff[:3]) + (f"; and {len(diff) - 3} more" if len(diff) > 3 else "")
                raise LaomError(f"{root} was made with a different config ({shown}); use another --out, or --force to continue it with this config (runs that no longer match are moved to runs.stale.jsonl)")
            changed = True
    elif (root / "runs.jsonl").is_file():
        if not force:
            raise LaomError(f"{root} has runs.jsonl but no sweep.yaml; use another --out, or --force")
        changed = True
    return changed


# --------------------------------------------------------------------------- labelled subsets


def labeled_path(root: Path, task: str, n: int, seed: int) -> Path:
    return root / "labeled" / f"{task}-{n}-s{seed}.hdf5"


def labeled_is_valid(path: Path, source: str, n: int, seed: int, chunk: int) -> bool:
    """A subset made earlier is reused only if it is whole, was drawn with these
    settings, and is newer than its source (a rewritten source gets new subsets)."""
    from laom.data.format import DatasetReader

    if not path.is_file() or path.stat().st_mtime_ns < Path(source).stat().st_mtime_ns:
        return False
    try:
        with DatasetReader(path) as reader:
            attrs = reader.attrs
            return (
                len(reader) == n
                and attrs.get("labeled_seed") == seed
                and attrs.get("chunk") == chunk
                and attrs.get("source_file") == Path(source).name
            )
    except LaomError:
        return False


def make_labeled(root: Path, cfg: SweepConfig, log: Callable[[str], None] = print) -> dict[tuple[str, int, int], str]:
    """Every (task, budget, seed) subset, made with ``laom data sample-labeled``'s code."""
    from laom.data.labeled import sample_labeled

    needs = any(registry.get(m).reads("labeled") for m in cfg.methods)
    paths: dict[tuple[str, int, int], str] = {}
    if not needs:
        return paths
    (root / "labeled").mkdir(parents=True, exist_ok=True)
    made = 0
    for task in cfg.tasks:
        for seed in cfg.seeds:
            for n in cfg.labeled:
                path = labeled_path(root, task, n, seed)
                if not labeled_is_valid(path, cfg.data[task], n, seed, cfg.chunk):
                    sample_labeled(cfg.data[task], n, path, seed=seed, chunk=cfg.chunk, force=True)
                    made += 1
                paths[(task, n, seed)] = str(path.resolve())
    total = len(paths)
    log(f"labelled subsets: {total} ({made} made, {total - made} reused) in {root / 'labeled'}")
    return paths


# --------------------------------------------------------------------------- planning


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
        "chunk": cfg.chunk, "overrides": overrides_for(job.method, cfg.overrides),
    }  # fmt: skip
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- runs.jsonl


def read_runs(path: Path) -> list[dict[str, Any]]:
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
        runs.append(run)
    return runs


def append_run(path: Path, run: dict[str, Any]) -> None:
    """One whole line per run, flushed to disk before the run counts as done."""
    with open(path, "a") as f:
        f.write(json.dumps(run, sort_keys=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def renormalize(path: Path, norms: Normalizers) -> int:
    """Re-apply the current normaliser to recorded lines whose task's normaliser is
    known; returns how many lines changed (the file is rewritten atomically)."""
    from laom.outputs import atomic_write_text

    if not path.is_file():
        return 0
    fields = ("normalizer", "normalized_return", "normalized_std")
    lines, changed = [], 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            run = json.loads(line)
        except json.JSONDecodeError:
            lines.append(line)  # a torn last line: read_runs ignores it, keep it as it was
            continue
        if run.get("task") in norms.bc_full and norms.known(run["task"]):
            before = [run.get(k) for k in fields]
            norms.apply(run)
            if [run.get(k) for k in fields] != before:
                changed += 1
                line = json.dumps(run, sort_keys=False)
        lines.append(line)
    if changed:
        atomic_write_text(path, "".join(line + "\n" for line in lines))
    return changed


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


# --------------------------------------------------------------------------- normalisers


class Normalizers:
    """Per-task normaliser, known up front (number, paper, none) or once every seed's
    bc-full run has finished (auto)."""

    def __init__(self, cfg: SweepConfig) -> None:
        self.cfg = cfg
        self.bc_full: dict[str, dict[int, float | None]] = {t: {} for t in cfg.tasks}
        # Read once per command: the other sweep's value when this one started (or resumed).
        self.other = sweep_normalizers(cfg.normalizer) if cfg.normalizer.startswith(SWEEP_NORMALIZER) else {}

    def add(self, run: dict[str, Any]) -> None:
        if run["method"] == "bc-full" and run["task"] in self.bc_full:
            self.bc_full[run["task"]][int(run["seed"])] = run.get("return_mean")

    def known(self, task: str) -> bool:
        if self.cfg.normalizer != "auto" or self.cfg.episodes == 0:
            return True
        return set(self.bc_full[task]) >= set(self.cfg.seeds)

    def value(self, task: str) -> float | None:
        """The normaliser (None: not normalised). Call only when :meth:`known`."""
        spec = self.cfg.normalizer
        if spec == "none" or self.cfg.episodes == 0:
            return None
        if spec == "paper":
            from laom.experiments.paper import BC_FULL_RETURN

            return BC_FULL_RETURN[task]
        if spec.startswith(SWEEP_NORMALIZER):
            return self.other.get(task)
        if spec != "auto":
            return float(spec)
        returns = [self.bc_full[task][s] for s in self.cfg.seeds]
        if any(r is None for r in returns):
            return None
        mean = sum(returns) / len(returns)  # type: ignore[arg-type]
        return mean if abs(mean) > 1e-9 else None

    def apply(self, run: dict[str, Any]) -> dict[str, Any]:
        norm = self.value(run["task"])
        run["normalizer"] = norm
        if norm is not None and run.get("return_mean") is not None:
            run["normalized_return"] = run["return_mean"] / norm
            run["normalized_std"] = run["return_std"] / abs(norm)
        else:
            run["normalized_return"] = run["normalized_std"] = None
        return run


# --------------------------------------------------------------------------- one run


def run_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one pipeline (in this process or a spawned worker), its output in a log file.

    Module-level and taking plain data, so a spawned process can unpickle it.
    """
    from laom.progress import progress_output
    from laom.training.pipeline import PipelineOptions, run_pipeline

    log_path = Path(spec.pop("log"))
    # The stages' progress goes to the console, named by the run; their messages to the log.
    console = progress_output(sys.stderr, prefix=spec.pop("progress_prefix", ""), plain=spec.pop("progress_plain", None), leave=False)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with console, open(log_path, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        print(f"# {datetime.now(timezone.utc).isoformat(timespec='seconds')} pipeline {json.dumps(spec)}", flush=True)
        try:
            summary = run_pipeline(PipelineOptions(**spec), log=lambda m: print(m, flush=True))
        except Exception:
            traceback.print_exc()  # the console gets one line; the log keeps the whole story
            raise
    summary["wall_s"] = time.perf_counter() - start
    return summary


def job_spec(
    opts: SweepOptions, job: Job, labeled_file: str, threads: int | None, plain: bool | None = None
) -> dict[str, Any]:
    cfg = opts.config
    root = Path(opts.out).resolve()
    overrides = [*overrides_for(job.method, cfg.overrides), "--seed", str(job.seed)]
    if threads is not None:
        overrides += ["--threads", str(threads)]
    label = "full" if job.labeled is None else str(job.labeled)
    return {
        "method": job.method, "data": cfg.data[job.task], "labeled": labeled_file, "out": str(root / "cache"),
        "eval_data": cfg.eval_data[job.task], "preset": cfg.preset, "episodes": cfg.episodes,
        "eval_seed": cfg.eval_seed, "workers": opts.workers, "num_envs": opts.num_envs,
        "max_steps": cfg.max_steps, "progress": opts.progress, "overrides": overrides,
        "log": str(root / "logs" / f"{job.task}-{job.method}-{label}-s{job.seed}.log"),
        "progress_prefix": job.id, "progress_plain": plain,
    }  # fmt: skip


def run_record(job: Job, summary: dict[str, Any], labeled_file: str) -> dict[str, Any]:
    """A runs.jsonl line (before normalisation)."""
    return {
        "task": job.task, "method": job.method, "labeled": job.labeled, "seed": job.seed, "run_key": job.key,
        "return_mean": summary.get("return_mean"), "return_std": summary.get("return_std"),
        "episodes": summary.get("episodes"),
        "action_probe_mse": summary.get("action_probe_mse"),
        "action_probe_baseline_mse": summary.get("action_probe_baseline_mse"),
        "state_probe_mse": summary.get("state_probe_mse"),
        "offline": summary.get("offline"),
        "stages": summary.get("stages", {}), "stage_seconds": summary.get("stage_seconds", {}), "labeled_file": labeled_file,
        "summary_file": summary.get("summary_file"), "wall_s": round(float(summary.get("wall_s", 0.0)), 3),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "laom_version": summary.get("laom_version"), "git_commit": summary.get("git_commit"),
    }  # fmt: skip


# --------------------------------------------------------------------------- scheduling


class InlineExecutor(Executor):
    """Runs each job when submitted, in this process (``--jobs 1``): the same scheduling
    loop as the process pool, with tracebacks and monkeypatching intact."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:  # reported per job by the scheduler
            future.set_exception(exc)
        return future


@dataclass
class Outcome:
    job: Job
    summary: dict[str, Any] | None = None
    error: str | None = None  # one line; "skipped: ..." for a job whose dependency failed


def schedule(
    jobs: list[Job], executor: Executor, parallel: int, submit: Callable[[Executor, Job], Future],
    on_outcome: Callable[[Outcome], None],
) -> list[Outcome]:  # fmt: skip
    """Start jobs in list order as soon as their dependencies are done, at most
    ``parallel`` at a time. A failed job does not stop the others; jobs that wait on
    it are skipped (they would retrain its stages, racing each other)."""
    ids = {j.id for j in jobs}
    ok: set[str] = set()
    failed: set[str] = set()
    pending = list(jobs)
    running: dict[Future, Job] = {}
    outcomes: list[Outcome] = []

    def finish(outcome: Outcome) -> None:
        (failed if outcome.error else ok).add(outcome.job.id)
        outcomes.append(outcome)
        on_outcome(outcome)

    while pending or running:
        for job in list(pending):
            deps = [d for d in job.after if d in ids]
            if any(d in failed for d in deps):
                pending.remove(job)
                finish(Outcome(job, error=f"skipped: {', '.join(d for d in deps if d in failed)} failed"))
            elif len(running) < parallel and all(d in ok for d in deps):
                pending.remove(job)
                try:
                    running[submit(executor, job)] = job
                except Exception as exc:  # e.g. a process pool broken by a killed worker
                    finish(Outcome(job, error=f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]))
        if not running:
            for job in pending:  # unreachable with planned jobs: a dependency outside the list
                finish(Outcome(job, error="skipped: dependency never ran"))
            break
        done, _ = wait(list(running), return_when=FIRST_COMPLETED)
        for future in done:
            job = running.pop(future)
            exc = future.exception()
            if exc is None:
                finish(Outcome(job, summary=future.result()))
            else:
                text = " ".join(str(exc).split()) or type(exc).__name__
                finish(Outcome(job, error=f"{type(exc).__name__}: {text}"[:300]))
    return outcomes


# --------------------------------------------------------------------------- the sweep


@dataclass
class SweepResult:
    planned: int
    already_done: int
    finished: int
    failed: list[Outcome]
    unrecorded: list[Outcome]
    runs_file: Path


def default_threads(jobs: int) -> int | None:
    """CPU threads per run when several share the machine (None: the stage's default)."""
    if jobs <= 1:
        return None
    return max(1, (os.cpu_count() or 1) // jobs)


def run_threads(cfg: SweepConfig, jobs: int) -> int | None:
    """The --threads the sweep gives every run (None: none), unless the command sets it."""
    explicit = any(n.rpartition(".")[2] == "threads" for n, _ in override_pairs(cfg.overrides))
    return None if explicit else default_threads(jobs)


def run_sweep(opts: SweepOptions, log: Callable[[str], None] = print) -> SweepResult:
    """Make the labelled subsets, then run every unfinished (task, method, budget, seed)."""
    require(opts.jobs >= 1, f"--jobs {opts.jobs}: expected >= 1")
    root = check_output(Path(opts.out).resolve(), "--out", kind="dir", create_parents=True)
    root.mkdir(parents=True, exist_ok=True)
    with sweep_lock(root):
        return _run_sweep(opts, root, log)


@contextlib.contextmanager
def sweep_lock(root: Path) -> Iterator[None]:
    """One ``laom sweep`` per directory: two would run the same jobs and race on them."""
    import fcntl

    with open(root / ".sweep.lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise LaomError(f"{root}: another laom sweep is running in it; wait for it or stop it") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run_sweep(opts: SweepOptions, root: Path, log: Callable[[str], None]) -> SweepResult:
    cfg = opts.config
    forced = open_sweep_dir(root, cfg, opts.force)
    labeled = make_labeled(root, cfg, log)
    jobs = plan_jobs(cfg)
    files = {j.id: (labeled[(j.task, j.labeled, j.seed)] if j.labeled is not None else "") for j in jobs}
    for job in jobs:
        job.key = job_key(cfg, job, files[job.id])
    runs_file = root / "runs.jsonl"
    if forced:
        moved = drop_stale(runs_file, {j.key for j in jobs})
        if moved:
            log(f"config changed (--force): {moved} run(s) that no longer match moved to runs.stale.jsonl")
    done_keys = {r.get("run_key") for r in read_runs(runs_file)}
    norms = Normalizers(cfg)
    for run in read_runs(runs_file):
        if run.get("run_key") in {j.key for j in jobs}:
            norms.add(run)
    if renormalize(runs_file, norms):
        log("normaliser changed: recorded runs re-normalised")
    todo = link_shared([j for j in jobs if j.key not in done_keys])
    log(f"sweep {root}: {len(jobs)} runs, {len(jobs) - len(todo)} already done, {len(todo)} to run (--jobs {opts.jobs})")

    threads = run_threads(cfg, opts.jobs)
    rows, rates_file = predict(cfg, root, todo, files, threads, opts, log)
    waiting: list[tuple[Job, dict[str, Any]]] = []  # finished, task normaliser not known yet
    recorded = 0

    def flush() -> None:
        nonlocal recorded
        for item in list(waiting):
            job, record = item
            if norms.known(job.task):
                append_run(runs_file, norms.apply(record))
                waiting.remove(item)
                recorded += 1
        renormalize(runs_file, norms)  # lines recorded before the last bc-full seed finished

    def submit(executor: Executor, job: Job) -> Future:
        bar.start(job)
        return executor.submit(run_job, job_spec(opts, job, files[job.id], threads, plain=bar.plain))

    bar = SweepProgress(todo, cfg.episodes > 0, opts.jobs, opts.progress, read_runs(runs_file))

    def on_outcome(outcome: Outcome) -> None:
        job = outcome.job
        if outcome.summary is not None:
            record = run_record(job, outcome.summary, files[job.id])
            norms.add(record)
            waiting.append((job, record))
            flush()
        bar.advance(outcome, describe(outcome))

    executor: Executor
    if opts.jobs == 1:
        executor = InlineExecutor()
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        executor = ProcessPoolExecutor(max_workers=opts.jobs, mp_context=multiprocessing.get_context("spawn"))
    try:
        with bar:
            outcomes = schedule(todo, executor, opts.jobs, submit, on_outcome)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    for line in comparison(rows, outcomes, rates_file):
        log(line)
    failed = [o for o in outcomes if o.error]
    unrecorded = [o for o in outcomes if o.summary is not None and any(o.job is j for j, _ in waiting)]
    return SweepResult(len(jobs), len(jobs) - len(todo), recorded, failed, unrecorded, runs_file)


def predict(
    cfg: SweepConfig, root: Path, todo: list[Job], files: dict[str, str], threads: int | None, opts: SweepOptions,
    log: Callable[[str], None],
) -> tuple[list[Any], Path | None]:  # fmt: skip
    """Every stage's predicted time from the cached rates (laom.experiments.cost), for the
    table at the end. A sweep never calibrates, and a prediction that fails (a rates file
    gone bad mid-way, a stage the model does not know) never stops one: it is noted."""
    from laom.experiments import cost

    try:
        book = cost.RateBook.load(opts.rates or cost.default_rates_path())
        rows = cost.plan_runs(cfg, root, todo, files, threads, opts.workers, opts.num_envs)
        cost.price(rows, book)
    except Exception as exc:
        log(f"note: no time prediction for this sweep ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})")
        return [], None
    return rows, book.path


def comparison(rows: list[Any], outcomes: list[Outcome], rates_file: Path | None) -> list[str]:
    """The predicted vs actual lines for the end of a sweep (none when nothing was predicted)."""
    from laom.experiments.cost import comparison_lines

    return comparison_lines(rows, outcomes, rates_file) if rows else []


def describe(outcome: Outcome) -> str:
    """One line per finished run, for the console."""
    job = outcome.job
    name = f"{job.task} {job.method} n={'full' if job.labeled is None else job.labeled} s{job.seed}"
    if outcome.error:
        return f"{name}: {outcome.error}"
    s = outcome.summary or {}
    parts = []
    if s.get("return_mean") is not None:
        parts.append(f"return {s['return_mean']:.1f} ± {s['return_std']:.1f}")
    if s.get("action_probe_mse") is not None:
        parts.append(f"probe MSE {s['action_probe_mse']:.4f}")
    reused = all(st.get("reused") for st in s.get("stages", {}).values())
    parts.append(f"{s.get('wall_s', 0.0):.0f} s" + (" (all stages reused)" if reused else ""))
    return f"{name}: " + ", ".join(parts)


def stage_kind(method: str, stage: str) -> str:
    """What a stage's time is estimated from: a LAM's cost depends on the method, a
    bc-baseline's on whether it reads the full dataset (bc-full) or a labelled subset."""
    return f"{stage} ({method})" if stage in ("lam", "bc-baseline") else stage


def job_stage_kinds(job: Job, evaluates: bool) -> list[str]:
    """The stage kinds a planned run will train: a lapo/laom run that waits for its
    group's first run reuses that run's LAM and latent BC and trains only its decoder."""
    spec = registry.get(job.method)
    names = [s for s in spec.stage_names if not job.after or s in spec.label_stages]
    return [stage_kind(job.method, n) for n in names] + (["evaluate"] if evaluates else [])


class StageClock:
    """Measured seconds per stage kind, from the runs finished in this sweep (and the
    earlier sessions' runs.jsonl lines). The mean of whole runs would mislead: the quick
    BC runs finish first and the LAM stages, minutes each, come later."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = {}

    def add(self, method: str, summary: dict[str, Any]) -> None:
        """Time a finished run: its trained (not reused) stages, and its evaluation as the
        rest of its wall time."""
        seconds = summary.get("stage_seconds") or {}
        stages = summary.get("stages") or {}
        trained = False
        for name, value in seconds.items():
            if not (stages.get(name) or {}).get("reused"):
                trained = True
                self.seconds.setdefault(stage_kind(method, name), []).append(float(value))
        if trained and summary.get("episodes") and summary.get("wall_s") is not None:
            rest = float(summary["wall_s"]) - sum(float(v) for v in seconds.values())
            self.seconds.setdefault("evaluate", []).append(max(0.0, rest))

    def estimate(self, kind: str) -> float | None:
        """Mean seconds of ``kind``; for an untimed LAM or BC baseline, that of the same
        stage of another method (closer than nothing); None when nothing is known."""
        if self.seconds.get(kind):
            return sum(self.seconds[kind]) / len(self.seconds[kind])
        stage = kind.split(" (")[0]
        similar = [v for k, vs in self.seconds.items() if k.split(" (")[0] == stage for v in vs]
        return sum(similar) / len(similar) if similar else None


class SweepProgress:
    """The sweep's console: a line per started and finished run with the sweep's ETA,
    estimated per stage kind (:class:`StageClock`). On a terminal (one job at a time) a
    tqdm bar over runs with the current stage's bar below it; elsewhere plain lines."""

    def __init__(
        self, jobs: list[Job], evaluates: bool, parallel: int, enabled: bool, history: Sequence[dict[str, Any]] = (),
        plain: bool | None = None,
    ) -> None:  # fmt: skip
        from laom.progress import is_terminal

        self.jobs = {j.id: j for j in jobs}
        self.left = set(self.jobs)
        self.total, self.count = len(jobs), 0
        self.evaluates, self.parallel = evaluates, max(1, parallel)
        self.enabled = enabled and self.total > 0
        self.plain = (parallel > 1 or not is_terminal(sys.stderr)) if plain is None else plain
        self.running: dict[str, float] = {}
        self.clock = StageClock()
        for run in history:
            if isinstance(run.get("method"), str):
                self.clock.add(run["method"], run)
        self.bar: Any = None

    def __enter__(self) -> SweepProgress:
        if self.enabled and not self.plain:
            from laom.progress import progress

            self.bar = progress(
                self.total, "sweep", "run", file=sys.stderr, plain=False, position=0,
                bar_format="{desc}: {n_fmt}/{total_fmt} runs |{bar}| {elapsed}{postfix}",
            )  # fmt: skip
            self.bar.set_postfix_str(self.eta(), refresh=True)
        return self

    def remaining(self, now: float | None = None) -> tuple[float, list[str]]:
        """(estimated seconds left, stage kinds with no timing yet)."""
        now = time.monotonic() if now is None else now
        total, unknown = 0.0, set()
        for job_id in self.left:
            est = 0.0
            for kind in job_stage_kinds(self.jobs[job_id], self.evaluates):
                seconds = self.clock.estimate(kind)
                if seconds is None:
                    unknown.add(kind)
                else:
                    est += seconds
            if job_id in self.running:
                est = max(0.0, est - (now - self.running[job_id]))
            total += est
        return total / min(self.parallel, max(1, len(self.left))), sorted(unknown)

    def eta(self) -> str:
        if not self.left:
            return "eta 0:00"
        seconds, unknown = self.remaining()
        if not unknown:
            return f"eta {format_interval(seconds)}"
        bound = f"> {format_interval(seconds)}" if seconds > 0 else "unknown"
        return f"eta {bound} (not timed yet: {', '.join(unknown)})"

    def start(self, job: Job) -> None:
        self.running[job.id] = time.monotonic()
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_description_str(f"sweep [{job.id}]", refresh=False)
            self.bar.set_postfix_str(self.eta())
        else:
            stages = ", ".join(job_stage_kinds(job, self.evaluates))
            print(f"[{self.count}/{self.total} done] start {job.id}: {stages}; {self.eta()}", flush=True)

    def advance(self, outcome: Outcome, line: str) -> None:
        job = outcome.job
        self.count += 1
        self.running.pop(job.id, None)
        self.left.discard(job.id)
        if outcome.summary is not None:
            self.clock.add(job.method, outcome.summary)
        text = f"[{self.count}/{self.total}] {line}"
        if self.bar is not None:
            self.bar.write(text, file=sys.stdout)
            self.bar.set_description_str("sweep", refresh=False)
            self.bar.set_postfix_str(self.eta(), refresh=False)
            self.bar.update(1)
        else:
            print(text + (f"; sweep {self.eta()}" if self.enabled and self.left else ""), flush=True)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------- CLI


def sweep_command(args: argparse.Namespace, extra: list[str]) -> int:
    from laom.training.cli import maybe_reexec_with_malloc_env

    maybe_reexec_with_malloc_env()
    from laom.experiments import cost

    check_output(args.out, "--out", kind="dir", create_parents=True)  # before the files are read
    require(args.plan or not args.recalibrate, "--recalibrate: only with --plan (a sweep itself never calibrates)")
    rates = args.rates or str(cost.default_rates_path())
    if args.plan:
        check_output(rates, "--rates", kind="file", create_parents=True)
    # A --rates that is not a rates file is refused before any work; the default file is
    # only read at the end of a plain sweep, whose prediction notes a bad one and goes on.
    book = cost.RateBook.load(rates) if (args.plan or args.rates) else None
    cfg = make_config(
        args.tasks, args.methods, args.labeled, args.seeds, args.data, args.eval_data, preset=args.preset,
        episodes=args.episodes, eval_seed=args.eval_seed, max_steps=args.max_steps, normalizer=args.normalizer,
        chunk=args.chunk, overrides=extra, log=print,
    )  # fmt: skip
    opts = SweepOptions(cfg, args.out, jobs=args.jobs, workers=args.workers, num_envs=args.num_envs, force=args.force,
                        progress=not args.no_progress, rates=rates)  # fmt: skip
    if book is not None and args.plan:
        cost.run_plan(cfg, args.out, book, jobs=args.jobs, workers=args.workers, num_envs=args.num_envs,
                      force=args.force, recalibrate=args.recalibrate, log=lambda m: print(m, flush=True))  # fmt: skip
        return 0
    result = run_sweep(opts, log=lambda m: print(m, flush=True))
    print(f"{result.finished} run(s) recorded in {result.runs_file} ({result.already_done} were already done)")
    for outcome in result.unrecorded:
        print(f"not recorded (no normaliser for {outcome.job.task}: a bc-full run failed): {outcome.job.id}", file=sys.stderr)
    if result.failed:
        first = result.failed[0]
        raise LaomError(
            f"{len(result.failed)} of {result.planned - result.already_done} run(s) failed or were skipped "
            f"(first: {first.job.id}: {first.error}); logs in {Path(opts.out) / 'logs'}; re-run the same command to retry"
        )
    print(f"report: laom report {opts.out} --out {Path(opts.out) / 'report'}")
    return 0
