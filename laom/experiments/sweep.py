"""``laom sweep``: the paper's grid of (task, method, labelled budget, seed) pipelines.

Layout of a sweep directory::

    SWEEP/sweep.yaml      the config that made it (a resume must match it or only add tasks,
                          methods, budgets or seeds; anything else needs --force)
    SWEEP/runs.jsonl      one line per finished run: the record a report reads
    SWEEP/labeled/        {task}-{n}-s{seed}.hdf5 labelled subsets (nested per seed)
    SWEEP/cache/          the pipeline's content-hashed stage directories, shared by all runs
    SWEEP/logs/           one log per run

``--records DIR`` keeps the sweep's text records in DIR as it goes (restored from DIR
first, saved after every recorded run): :mod:`laom.experiments.sweep_records`.

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
is written to runs.jsonl as soon as it finishes, divided by the bc-full seeds finished so
far, and every line is re-divided when another seed's bc-full finishes
(:mod:`laom.experiments.normalizers`): a run held back until the last bc-full was lost
with a machine that did not outlast its session.
``--normalizer SWEEP_DIR`` takes another sweep's per-task normaliser, so a variant swept
in its own directory (other stage settings) is normalised exactly like the main sweep.

The parts, one module each: the config and its checks (``sweep_config``), which stage
settings each method reads (``overrides``), sweep.yaml and the lock (``sweep_dir``), the
labelled subsets (``labeled_subsets``), the grid and its run keys (``plan``), runs.jsonl
(``runs_store``), the normalisers (``normalizers``), the scheduler (``scheduler``) and the
console (``sweep_progress``). This module runs one pipeline per run and ties them together;
the command's parser is in :mod:`laom.experiments.cli`.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from laom.errors import require
from laom.experiments.labeled_subsets import make_labeled
from laom.experiments.normalizers import Normalizers, renormalize
from laom.experiments.overrides import overrides_for
from laom.experiments.plan import Job, job_key, link_shared, plan_jobs, put_first
from laom.experiments.runs_store import RunRecord, append_run, drop_stale, read_runs
from laom.experiments.scheduler import InlineExecutor, Outcome, run_threads, schedule
from laom.experiments.sweep_config import SweepConfig, SweepOptions
from laom.experiments.sweep_dir import open_sweep_dir, sweep_lock
from laom.experiments.sweep_progress import SweepProgress, describe
from laom.experiments.sweep_records import holds_records, restore_records, save_records
from laom.outputs import check_output, machine_memory_gb
from laom.training.summaries import OfflineScores, StageRef


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
        "progress_prefix": job.id, "progress_plain": plain, "until": cfg.until,
    }  # fmt: skip


def run_record(job: Job, summary: dict[str, Any], labeled_file: str) -> RunRecord:
    """A runs.jsonl line (before normalisation) from a pipeline summary (with the run's
    ``wall_s``); the figures a pipeline without that step did not write are None."""
    offline = summary.get("offline")
    return RunRecord(
        task=job.task, method=job.method, labeled=job.labeled, seed=job.seed, run_key=job.key,
        return_mean=summary.get("return_mean"), return_std=summary.get("return_std"),
        episodes=summary.get("episodes"),
        action_probe_mse=summary.get("action_probe_mse"),
        action_probe_baseline_mse=summary.get("action_probe_baseline_mse"),
        state_probe_mse=summary.get("state_probe_mse"),
        offline=None if offline is None else OfflineScores.from_json(offline),
        stages={name: StageRef.from_json(ref) for name, ref in summary.get("stages", {}).items()},
        stage_seconds=summary.get("stage_seconds", {}), labeled_file=labeled_file,
        summary_file=summary.get("summary_file"), wall_s=round(float(summary.get("wall_s", 0.0)), 3),
        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        laom_version=summary.get("laom_version"), git_commit=summary.get("git_commit"),
    )  # fmt: skip


@dataclass
class SweepResult:
    planned: int
    already_done: int
    finished: int
    failed: list[Outcome]
    runs_file: Path


def memory_note(cache: Path, jobs: int, total_gb: float | None = None) -> str | None:
    """A note when the ``jobs`` largest peaks this sweep's stages recorded (their summaries'
    ``peak_memory_gb``) add up to more than this machine's memory: two LAOM LAMs' final
    probes at once were OOM-killed on a 24 GB machine, and the killed worker takes the
    sweep's process pool with it. A note, not a refusal: the stages left may be smaller."""
    total_gb = machine_memory_gb() if total_gb is None else total_gb
    peaks = []
    for summary in cache.glob("*/summary.json"):
        try:
            value = json.loads(summary.read_text()).get("peak_memory_gb")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            peaks.append((float(value), summary.parent.name))
    if not peaks or total_gb is None:
        return None
    largest = sorted(peaks, reverse=True)[:jobs]
    if len(largest) < jobs:  # one recorded stage: assume its kind runs twice at once
        largest += [largest[0]] * (jobs - len(largest))
    if sum(v for v, _ in largest) <= total_gb:
        return None
    named = " + ".join(f"{v:.1f} GB ({name})" for v, name in largest)
    return (f"note: --jobs {jobs}: this sweep's largest stages peaked at {named}, more than this machine's "
            f"{total_gb:.1f} GB if they meet; --jobs 1 runs one stage at a time on every core")


def run_sweep(opts: SweepOptions, log: Callable[[str], None] = print) -> SweepResult:
    """Make the labelled subsets, then run every unfinished (task, method, budget, seed)."""
    require(opts.jobs >= 1, f"--jobs {opts.jobs}: expected >= 1")
    root = check_output(Path(opts.out).resolve(), "--out", kind="dir", create_parents=True)
    root.mkdir(parents=True, exist_ok=True)
    with sweep_lock(root):
        return _run_sweep(opts, root, log)


def _run_sweep(opts: SweepOptions, root: Path, log: Callable[[str], None]) -> SweepResult:
    cfg = opts.config
    if opts.records and holds_records(Path(opts.records)):
        done = restore_records(Path(opts.records), root)
        if done.copied:
            log(f"--records {opts.records}: {done.copied} record(s) restored into {root}")
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
    done_keys = {r.run_key for r in read_runs(runs_file)}
    norms = Normalizers(cfg)
    for run in read_runs(runs_file):
        if run.run_key in {j.key for j in jobs}:
            norms.add(run)
    if renormalize(runs_file, norms):
        log("normaliser changed: recorded runs re-normalised")
    todo = link_shared(put_first([j for j in jobs if j.key not in done_keys], opts.first))
    log(f"sweep {root}: {len(jobs)} runs, {len(jobs) - len(todo)} already done, {len(todo)} to run (--jobs {opts.jobs})")
    note = memory_note(root / "cache", opts.jobs) if opts.jobs > 1 and todo else None
    if note:
        log(note)

    threads = run_threads(cfg, opts.jobs)
    rows, rates_file = predict(cfg, root, todo, files, threads, opts, log)
    recorded = 0

    def record(run: RunRecord) -> None:
        """Write a finished run at once (divided by the bc-full seeds finished so far), and
        re-divide every line when this run is another seed's bc-full."""
        nonlocal recorded
        norms.add(run)
        append_run(runs_file, norms.apply(run))
        recorded += 1
        renormalize(runs_file, norms)
        save()

    def save() -> None:
        if opts.records:  # after every recorded run, so a machine lost mid-sweep loses no record
            save_records(root, Path(opts.records))

    def submit(executor: Executor, job: Job) -> Future:
        bar.start(job)
        return executor.submit(run_job, job_spec(opts, job, files[job.id], threads, plain=bar.plain))

    bar = SweepProgress(todo, cfg.episodes > 0, opts.jobs, opts.progress, read_runs(runs_file))

    def on_outcome(outcome: Outcome) -> None:
        job = outcome.job
        if outcome.summary is not None:
            record(run_record(job, outcome.summary, files[job.id]))
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
        save()  # the stages' summaries and logs of runs that did not finish too
    for line in comparison(rows, outcomes, rates_file):
        log(line)
    failed = [o for o in outcomes if o.error]
    return SweepResult(len(jobs), len(jobs) - len(todo), recorded, failed, runs_file)


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
