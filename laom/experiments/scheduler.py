"""Running a sweep's planned runs: in dependency order, ``--jobs`` at a time.

The scheduler knows nothing of pipelines: it starts whatever ``submit`` starts, so
``--jobs 1`` runs through the same loop in this process (:class:`InlineExecutor`) and
the tests drive it with stand-ins.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass
from typing import Any

from laom.experiments.overrides import USAGE
from laom.experiments.plan import Job
from laom.experiments.sweep_config import SweepConfig
from laom.training.options import override_items


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


def default_threads(jobs: int) -> int | None:
    """CPU threads per run when several share the machine (None: the stage's default)."""
    if jobs <= 1:
        return None
    return max(1, (os.cpu_count() or 1) // jobs)


def run_threads(cfg: SweepConfig, jobs: int) -> int | None:
    """The --threads the sweep gives every run (None: none), unless the command sets it."""
    explicit = any(n.rpartition(".")[2] == "threads" for n, _ in override_items(cfg.overrides, USAGE))
    return None if explicit else default_threads(jobs)
