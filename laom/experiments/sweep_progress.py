"""A sweep's console: a line per run and the sweep's ETA, estimated per stage kind.

Kept apart from the scheduler so that what a user sees can change without touching
what runs when.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from laom import methods as registry
from laom.experiments.plan import Job
from laom.experiments.runs_store import RunRecord
from laom.experiments.scheduler import Outcome
from laom.progress import format_interval


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
        self, jobs: list[Job], evaluates: bool, parallel: int, enabled: bool, history: Sequence[RunRecord] = (),
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
            if isinstance(run.method, str):
                self.clock.add(run.method, run.to_json())
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
