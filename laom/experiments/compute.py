"""The compute a sweep took (the "Compute" section of ``laom report``), beside what the
paper's release would need for the same runs.

The release retrains every stage of every run; a sweep trains a stage once per config
(a LAM and its latent BC serve every labelled budget of a (task, method, seed)) and
reuses it. So the release's count of a stage is the number of finished runs that use
it, and its hours that many times the stage's own. Everything is read from what the
runs already wrote; nothing is timed again.

A stage's training time comes from its ``metrics.jsonl``. Rows written since this was
added carry ``train_s``, the stage's training clock across resumes, and the last row's
is the answer. In older files each row's ``samples_per_s``
is the rate since the process writing it started training (learning-curve and probe
time left out, :class:`laom.training.trainlog.Progress`), so ``(update - start) * batch
/ samples_per_s`` is that process's training clock. A resumed stage's file holds the
rows of several processes (rows past the checkpoint are dropped on resume); a new one
begins at a row after a checkpoint whose clock would otherwise run backwards or at a
rate far from the row's own (:func:`training_seconds`). The runs' own ``stage_seconds``
cannot serve: they time only the invocation that finished a run, and ~0 when reused.

Counted: the training loops, the acting policies' learning-curve points
(``curve.jsonl``'s ``eval_seconds``, and ``train_seconds`` where a point trains its own
decoder) and each run's final evaluation (its eval file's
``seconds``). Not counted, as nothing records their time: loading data, labelling with
a frozen model (latent BC's targets, the IDM's pseudo-labels, the decoder's inputs),
the LAMs' probe-curve points and final probes, the work between a process's last
checkpoint and its kill.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from laom import methods as registry
from laom.experiments.runs_store import RunRecord

EVALUATION = "evaluation"
# The config field holding a stage's samples per update (the one samples/s counts).
BATCH_FIELD = {"idm": "idm_batch_size"}
# A process's first row after a checkpoint is taken for a resume when, read as the same
# process, the interval since the previous row would have run backwards or at a rate
# off the row's own by more than this factor. Missing a resume whose process ran at
# nearly the same rate costs little: the clock read either way is about the same.
RESUME_FACTOR = 3.0


@dataclass
class StageCost:
    """One stage folder's recorded compute, and how many of the report's runs use it."""

    kind: str
    dir: str
    runs: int = 0  # finished runs that use it: the release trains it this many times
    found: bool = False  # the folder and a training record were there
    updates: int | None = None
    training_seconds: float = 0.0
    curve_seconds: float = 0.0
    curve_points: int = 0
    probe_points: int = 0  # LAM probe-curve points: no time recorded, not counted
    processes: int = 0  # training processes in metrics.jsonl (1 + resumes found)
    source: str = ""  # "metrics" or "summary" (updates x batch / the summary's samples/s)
    threads: int | None = None
    machine: str | None = None  # the CPU its summary names (laom.outputs.machine; None before)
    # The wall clock of the invocation that trained it, from a run that did (reused
    # False): loading and labelling included, earlier interrupted invocations not.
    invocation_seconds: float | None = None

    cores: int | None = None  # the cores it held: threads, or 0 = every core of its machine
    # Its process's peak resident memory in GB, from its summary (None before laom recorded it).
    peak_memory_gb: float | None = None

    @property
    def seconds(self) -> float:
        return self.training_seconds + self.curve_seconds


@dataclass
class EvalCost:
    """One final evaluation (an eval file, shared by the runs whose policy it scored)."""

    file: str
    runs: int = 0
    seconds: float | None = None
    episodes: int | None = None
    cores: int | None = None  # its worker processes hold every core of the machine


def machine_cores(machine: str | None) -> int | None:
    """The core count in a summary's machine string ("Xeon (2 cores; avx512)")."""
    found = re.search(r"\((\d+) cores", machine or "")
    return int(found.group(1)) if found and int(found.group(1)) > 0 else None


def _json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _rows(path: Path) -> list[dict[str, Any]]:
    """A JSON-lines file's rows, read as the report reads its curves (a torn last line is
    left out; a damaged file counts as none, and the compute table says the stage is missing)."""
    from laom.training.metrics import read_jsonl_lenient

    return read_jsonl_lenient(path)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def training_seconds(
    rows: list[dict[str, Any]], batch: int, checkpoint_every: int | None
) -> tuple[float, int]:
    """(seconds, processes) of training in a stage's metrics rows: the sum of each
    training process's clock at its last row, plus, for a process cut off past its last
    row, the updates to the checkpoint its successor resumed from at its rate.

    A new process can only begin at the first row after a checkpoint (``update`` a
    multiple of ``checkpoint_every``; any row when that is unknown); it is assumed there
    when, read as the previous process's, the row's clock would run backwards or the rate
    since the previous row would be off by more than ``RESUME_FACTOR``."""
    clocks = [_number(row.get("train_s")) for row in rows if _number(row.get("update")) is not None]
    if clocks and all(c is not None for c in clocks):
        # Written since the stage's first process: its whole training clock, resumes included.
        starts = {row.get("start_update") for row in rows if _number(row.get("update")) is not None}
        return float(clocks[-1] or 0.0), max(1, len(starts - {None}))
    total = 0.0
    start, prev_update, prev_clock, prev_rate = 0, 0, 0.0, 0.0
    processes = 0
    for row in rows:
        update, rate = _number(row.get("update")), _number(row.get("samples_per_s"))
        if update is None or rate is None or rate <= 0 or update <= prev_update:
            continue
        clock = (update - start) * batch / rate
        if processes == 0:
            processes = 1
        else:
            every = checkpoint_every if checkpoint_every and checkpoint_every > 0 else None
            resumed_at = (int(update) - 1) // every * every if every else prev_update
            if resumed_at >= prev_update:
                step = clock - prev_clock
                rate_between = (update - prev_update) * batch / step if step > 0 else 0.0
                if not (rate / RESUME_FACTOR < rate_between < rate * RESUME_FACTOR):
                    total += prev_clock + (resumed_at - prev_update) * batch / prev_rate
                    start, processes = int(resumed_at), processes + 1
                    clock = (update - start) * batch / rate
        prev_update, prev_clock, prev_rate = int(update), clock, rate
    return total + prev_clock, processes


def stage_cost(kind: str, folder: str) -> StageCost:
    """What one stage folder recorded of its compute (``found`` False when nothing)."""
    cost = StageCost(kind, folder)
    path = Path(folder)
    try:
        config = yaml.safe_load((path / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        config = None
    config = config if isinstance(config, dict) else {}
    if not config:  # the cache key's config has the batch, not threads or checkpoints
        config = (_json(path / "stage.json") or {}).get("config") or {}
    summary = _json(path / "summary.json") or {}
    batch = _number(config.get(BATCH_FIELD.get(kind, "batch_size")))
    threads = config.get("threads")
    cost.threads = int(threads) if isinstance(threads, int) else None
    cost.machine = summary.get("machine") if isinstance(summary.get("machine"), str) else None
    cost.cores = cost.threads if cost.threads and cost.threads > 0 else machine_cores(cost.machine)
    cost.peak_memory_gb = _number(summary.get("peak_memory_gb"))
    metrics = [r for r in _rows(path / "metrics.jsonl") if _number(r.get("update")) is not None]
    updates = _number(summary.get("updates"))
    if updates is None and metrics:
        updates = max(float(r["update"]) for r in metrics)
    cost.updates = int(updates) if updates is not None else None
    every = _number(config.get("checkpoint_every"))
    if batch and metrics:
        cost.training_seconds, cost.processes = training_seconds(
            metrics, int(batch), int(every) if every else None
        )
        cost.source = "metrics" if cost.processes else ""
    if not cost.source:
        rate = _number(summary.get("samples_per_s"))
        if batch and updates and rate and rate > 0:
            cost.training_seconds, cost.processes, cost.source = (
                updates * batch / rate,
                1,
                "summary",
            )
    curve = _rows(path / "curve.jsonl")
    cost.curve_points = len(curve)
    cost.curve_seconds = sum((_number(r.get("eval_seconds")) or 0.0) + (_number(r.get("train_seconds")) or 0.0) for r in curve)
    cost.probe_points = len(_rows(path / "probe_curve.jsonl"))
    cost.found = bool(cost.source)
    return cost


def _eval_file(run: RunRecord) -> str | None:
    """The run's final evaluation file, named in its pipeline summary."""
    if not run.summary_file:
        return None
    value = (_json(Path(run.summary_file)) or {}).get("eval_file")
    if not isinstance(value, str) or not value:
        return None
    acting = next(reversed(run.stages.values()), None)  # where the evaluation was written
    if not Path(value).exists() and acting is not None and (Path(acting.dir) / Path(value).name).exists():
        return str(Path(acting.dir) / Path(value).name)  # the sweep was moved, or read from its records
    return value


def _totals(
    items: list[Any], seconds: Callable[[Any], float | None], updates: bool
) -> dict[str, Any]:
    found = [c for c in items if seconds(c) is not None]
    held = [c for c in found if c.cores]
    entry: dict[str, Any] = {
        "stages": len(found),
        "hours": sum(seconds(c) for c in found) / 3600,
        "release_trainings": sum(c.runs for c in items),
        "release_hours": sum(seconds(c) * c.runs for c in found) / 3600,
        "missing": len(items) - len(found),
        # CPU-hours: each one's hours times the cores it held (its threads; every core of
        # its machine for threads 0 and for an evaluation's worker processes)
        "cpu_hours": sum(seconds(c) * c.cores for c in held) / 3600,
        "release_cpu_hours": sum(seconds(c) * c.cores * c.runs for c in held) / 3600,
        "cores_unknown": len(found) - len(held),
    }
    if updates:
        # the largest peak among its folders that recorded one: what two at once would need
        peaks = [c.peak_memory_gb for c in found if c.peak_memory_gb is not None]
        entry["peak_memory_gb"] = max(peaks) if peaks else None
        entry["peak_memory_folders"] = len(peaks)
        entry["updates"] = sum(c.updates or 0 for c in found)
        entry["release_updates"] = sum((c.updates or 0) * c.runs for c in found)
        entry["training_hours"] = sum(c.training_seconds for c in found) / 3600
        entry["curve_hours"] = sum(c.curve_seconds for c in found) / 3600
        entry["curve_points"] = sum(c.curve_points for c in found)
        entry["probe_points_not_counted"] = sum(c.probe_points for c in found)
        entry["resumed"] = sum(c.processes > 1 for c in found)
        clocked = [c for c in found if c.invocation_seconds is not None]
        entry["invocation_stages"] = len(clocked)
        entry["invocation_hours"] = sum(c.invocation_seconds or 0.0 for c in clocked) / 3600
        entry["invocation_counted_hours"] = sum(c.seconds for c in clocked) / 3600
    return entry


def compute(runs: list[RunRecord]) -> dict[str, Any]:
    """summary.json's ``compute``: per stage kind (and the final evaluations) the folders
    trained, their updates and hours, and the release's trainings and hours; totals."""
    stages: dict[str, StageCost] = {}
    evals: dict[str, EvalCost] = {}
    no_eval = 0
    for r in runs:
        for kind, ref in r.stages.items():
            if ref.dir:
                # by folder name, which hashes the stage's config: a sweep that copied a
                # LAM from a probe-only sweep holds the same training under another path
                entry = stages.setdefault(f"{kind}/{Path(ref.dir).name}", StageCost(kind, ref.dir))
                entry.runs += 1
                clock = _number(r.stage_seconds.get(kind))
                if not ref.reused and clock is not None:
                    entry.invocation_seconds = clock
        if r.return_mean is not None:
            file = _eval_file(r)
            if file is None:
                no_eval += 1
            else:
                evals.setdefault(file, EvalCost(file)).runs += 1
    costs = []
    for entry in stages.values():
        cost = stage_cost(entry.kind, entry.dir)
        cost.runs, cost.invocation_seconds = entry.runs, entry.invocation_seconds
        costs.append(cost)
    # A folder whose summary names no machine (an older laom's) with threads 0 is counted
    # at the cores of the machines the others name (compute_text says how many).
    known = {machine_cores(c.machine) for c in costs if c.found} - {None}
    fallback = max(known) if known else None
    assumed = 0
    for c in costs:
        if c.found and c.cores is None:
            c.cores, assumed = fallback, assumed + (fallback is not None)
    machines = {c.dir: machine_cores(c.machine) for c in costs}
    for e in evals.values():
        data = _json(Path(e.file)) or {}
        e.seconds, episodes = _number(data.get("seconds")), _number(data.get("episodes"))
        e.episodes = int(episodes) if episodes is not None else None
        folder = str(Path(e.file).parent)  # the acting stage's folder, whose summary names the machine
        e.cores = machines.get(folder) or machine_cores((_json(Path(folder) / "summary.json") or {}).get("machine"))
        if e.cores is None and e.seconds is not None:
            e.cores, assumed = fallback, assumed + (fallback is not None)
    kinds: dict[str, Any] = {}
    for kind in dict.fromkeys([*registry.STAGE_NAMES, *(c.kind for c in costs)]):
        these = [c for c in costs if c.kind == kind]
        if these:
            kinds[kind] = _totals(these, lambda c: c.seconds if c.found else None, updates=True)
    if evals or no_eval:
        kinds[EVALUATION] = {**_totals(list(evals.values()), lambda e: e.seconds, updates=False),
                             "runs_without_file": no_eval}  # fmt: skip
    total = {
        key: sum(k[key] for k in kinds.values())
        for key in ("stages", "hours", "release_trainings", "release_hours")
    }
    for key in ("updates", "training_hours", "curve_hours", "cpu_hours", "release_cpu_hours", "cores_unknown"):
        total[key] = sum(k.get(key, 0) for k in kinds.values())
    peaks = [k["peak_memory_gb"] for k in kinds.values() if k.get("peak_memory_gb") is not None]
    total["peak_memory_gb"] = max(peaks) if peaks else None
    threads = sorted({c.threads for c in costs if c.found and c.threads is not None})
    one_thread = bool(threads) and threads == [1] and all(c.threads == 1 for c in costs if c.found)
    return {
        "runs": len(runs),
        "unit": "CPU-hours (one thread per stage)" if one_thread else "wall hours",
        "threads": threads,
        "machines": dict(Counter(c.machine or "not recorded" for c in costs if c.found)),
        "kinds": kinds,
        "total": total,
        "ratio": total["release_hours"] / total["hours"] if total["hours"] else None,
        "cores_assumed": assumed,
        "cores_assumed_as": fallback if assumed else None,
        "missing": sorted(c.dir for c in costs if not c.found),
        "folders": [{**asdict(c), "seconds": c.seconds} for c in costs],
        "evaluations": [asdict(e) for e in evals.values()],
    }


def compute_text(info: dict[str, Any]) -> tuple[str, list[str]]:
    """The section's opening paragraph and the lines after its table: what the hours are,
    what the release's columns mean, and what is not counted."""
    kinds, total = info["kinds"], info["total"]
    digits = hour_digits(info)
    if info["unit"].startswith("CPU"):
        unit = "CPU-hours (one thread per stage: every stage config has threads 1)"
    else:
        threads = ", ".join(map(str, info["threads"])) or "unknown"
        unit = (
            f"wall hours (the stage configs' threads: {threads}; 0 = torch's default, every core)"
        )
    intro = (
        f"Finished runs only ({info['runs']} in runs.jsonl). Ours: the stage folders trained (evaluation: "
        f"the evaluation files). Training: {unit}. Curves (the acting policies' "
        "learning-curve points) and the final evaluations: wall hours, their episodes in worker processes. "
        "A stage folder counts once however many runs use it (one shared with another sweep counts in each "
        "sweep's report). The release retrains every stage of every run: its trainings are the runs using "
        "each folder, its hours that many times the folder's own."
    )
    if info["total"].get("cpu_hours"):
        intro += (
            " CPU h: each one's hours times the cores it held (its threads; every core of its machine for "
            "threads 0 and for the evaluations' worker processes)."
        )
    machines = info.get("machines") or {}
    if len(machines) > 1 or any(m != "not recorded" for m in machines):
        intro += " Machines (stage folders): " + "; ".join(f"{m}: {n}" for m, n in machines.items()) + "."
    after = []
    if info["ratio"] is not None:
        ours = sum(e["stages"] for e in kinds.values())
        after.append(
            f"The release: {total['release_trainings']} trainings and evaluations instead of {ours}, "
            f"{total['release_hours']:.{digits}f} h instead of {total['hours']:.{digits}f} h ({info['ratio']:.2f}x)"
            + (
                f"; {total['release_cpu_hours']:.{digits}f} CPU-hours instead of {total['cpu_hours']:.{digits}f}."
                if total.get("cpu_hours")
                else "."
            )
        )
    if info.get("cores_assumed"):
        after.append(
            f"{info['cores_assumed']} stage folder(s) or evaluation(s) name no machine and held every core: "
            f"counted at {info['cores_assumed_as']} cores, the core count of the machines the others name."
        )
    if total.get("cores_unknown"):
        after.append(f"Not in CPU h (no machine recorded to tell the cores held): {total['cores_unknown']} stage folder(s) or evaluation(s).")
    notes = []
    probes = sum(e.get("probe_points_not_counted", 0) for e in kinds.values())
    if probes:
        notes.append(
            f"the LAMs' probes ({probes} probe-curve points and the final probes: no time recorded)"
        )
    elif "lam" in kinds:
        notes.append("the LAMs' final probes (no time recorded)")
    notes.append(
        "loading data and labelling with a frozen model (latent BC's targets, the IDM's pseudo-labels, "
        "the decoder's inputs)"
    )
    resumed = sum(e.get("resumed", 0) for e in kinds.values())
    folders = "1 stage folder was" if resumed == 1 else f"{resumed} stage folders were"
    notes.append(
        "the updates lost to interruptions"
        + (f" ({folders} resumed; each training process's clock is added)" if resumed else "")
    )
    after.append("Not counted: " + "; ".join(notes) + ".")
    clocked = sum(e.get("invocation_stages", 0) for e in kinds.values())
    if clocked:
        stages = sum(e["stages"] for k, e in kinds.items() if k != EVALUATION)
        after.append(
            f"For scale, the runs' own stage clocks (the invocation that trained a folder, {clocked} of {stages} "
            "folders: all of the above included, earlier interrupted invocations not) read "
            f"{sum(e.get('invocation_hours', 0) for e in kinds.values()):.{digits}f} h where this table counts "
            f"{sum(e.get('invocation_counted_hours', 0) for e in kinds.values()):.{digits}f} h."
        )
    if info["total"].get("peak_memory_gb") is not None:
        recorded = sum(e.get("peak_memory_folders", 0) for e in kinds.values())
        stages = sum(e["stages"] for k, e in kinds.items() if k != EVALUATION)
        after.append(
            f"Peak memory GB: the largest peak resident memory of one stage process of that kind, from start to "
            f"summary ({recorded} of {stages} folders recorded one, older laoms did not; the "
            "evaluations' worker processes are not in it). Runs in parallel (`laom sweep --jobs`) need about the "
            "sum of the stages they run at once."
        )
    if info["missing"]:
        names = ", ".join(Path(m).name for m in info["missing"])
        after.append(f"Stage folders gone or without a training record, not counted: {names}.")
    evaluation = kinds.get(EVALUATION) or {}
    unknown = evaluation.get("missing", 0) + evaluation.get("runs_without_file", 0)
    if unknown:
        after.append(f"Runs whose evaluation time is unknown, not counted: {unknown}.")
    return intro, after


def hour_digits(info: dict[str, Any]) -> int:
    """Decimals of the hours: 2, or 3 for a sweep of minutes (a demo's)."""
    return 2 if info["total"]["release_hours"] >= 1 else 3


def compute_table(info: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per stage kind, one for the final evaluations, a total."""
    digits = hour_digits(info)

    def h(value: float) -> str:
        return f"{value:.{digits}f}"

    cpu = bool(info["total"].get("cpu_hours"))
    memory = info["total"].get("peak_memory_gb") is not None
    header = ["stage", "ours", "updates", "training h", "curves h", "total h", *(["CPU h"] if cpu else []),
              "release: trainings", "release: h", *(["release: CPU h"] if cpu else []),
              *(["peak memory GB"] if memory else [])]  # fmt: skip

    def peak(e: dict[str, Any]) -> str:
        value = e.get("peak_memory_gb")
        return "–" if value is None else f"{value:.1f}"

    def row(name: str, e: dict[str, Any], stage: bool) -> list[str]:
        done = [str(e["updates"]), h(e["training_hours"]), h(e["curve_hours"])] if stage else ["–", "–", "–"]
        return [name, str(e["stages"]), *done, h(e["hours"]), *([h(e["cpu_hours"])] if cpu else []),
                str(e["release_trainings"]), h(e["release_hours"]), *([h(e["release_cpu_hours"])] if cpu else []),
                *([peak(e)] if memory else [])]  # fmt: skip

    rows = [row(kind, e, kind != EVALUATION) for kind, e in info["kinds"].items()]
    rows.append(row("total", info["total"], True))
    return header, rows
