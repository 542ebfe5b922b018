"""``laom report SWEEP --out REPORT [--paper]``: the paper's figures and tables from a sweep.

Reads ``SWEEP/runs.jsonl`` (the last line of each (task, method, budget, seed) wins, so
a re-run supersedes an older record) and writes

    REPORT/returns.png    normalized return (raw return if the sweep had no normaliser)
                          against labelled trajectories, log2 axis; one panel per task and
                          one for the average over tasks; line = mean over seeds, band =
                          mean +- std over seeds (population std, ddof=0)
    REPORT/probe_mse.png  linear-probe MSE of latent to true actions / chance (predicting
                          the mean action) per LAM method (a bar per distractor setting
                          when a method's LAMs saw several); dots: each LAM, n per bar
    REPORT/encodes.png    what the latents encode: linear-probe R² to the action and to the
                          change of each distractor (camera, background frame, colour), per
                          method, for the LAM's latents and the latent-BC policy's; only
                          when the probe data recorded its distractors (docs/distractors.md)
    REPORT/curves.png     learning curves from the stage folders: each LAM's probe MSE /
                          chance against training samples (both protocols, log axes), the
                          acting policies' return against updates (BC, BC-full, the IDM
                          baseline), and latent BC's loss / latent variance against updates
                          (the latent-action methods act through a decoder per budget, so
                          their return is the run's end alone)
    REPORT/results.md     first the Findings: the paper's four claims, each "holds",
                          "does not hold" or "not measured" per task and distractor
                          setting (laom.experiments.findings); then the same numbers
                          as Markdown tables, plus raw returns, D4RL-style scores
                          (0 = a uniform random policy measured on the task, 100 = the
                          dataset's expert), the acting policies'
                          offline action MSE on the held-out file, how much of the
                          latent actions latent BC could not predict, and the hours
                          each stage kind took beside what the paper's release would
                          need (laom.experiments.compute)
    REPORT/summary.json   everything aggregated, for scripts

Several sweeps can share one report (``laom report SWEEP NAME=OTHER ...``): the runs of a
sweep given as ``NAME=DIR`` appear as ``method (NAME)``, so a variant swept with other
stage settings (say a stronger supervision coefficient) is drawn beside the methods it
varies. Two sweeps that hold the same unnamed run are refused rather than merged.

With ``--paper`` the paper's four-task averages are drawn as dashed lines in a panel
of their own (on its scale; ours would squash them) and added to the tables.
The average over tasks of a (method, budget) uses only seeds that finished every task,
so a half-finished sweep does not mix task difficulty into the curve.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from laom import methods as registry
from laom.envs.tasks import RANDOM_POLICY_EPISODES, random_policy_returns
from laom.errors import LaomError, require
from laom.experiments import paper as paper_data
from laom.experiments.compute import compute, compute_table, compute_text
from laom.experiments.findings import (
    NO_DISTRACTORS,
    distractor_settings,
    findings,
    findings_markdown,
    run_key,
)
from laom.experiments.normalizers import NORMALISER_MIN_SHARE, normaliser_works
from laom.experiments.paper import label, split_variant
from laom.experiments.runs_store import RunRecord, read_runs
from laom.experiments.sweep_records import recorded_inputs
from laom.outputs import check_output, code_version
from laom.training.summaries import LAMSummary, LatentBCSummary, StageSummary, action_r2

METHODS = registry.names()
COLORS = {m.name: m.color for m in registry.METHODS.values()}
# Methods without a colour of their own (variants from named sweeps) take these in turn.
EXTRA_COLORS = ("tab:brown", "tab:pink", "tab:olive", "tab:cyan", "gold", "navy")
BAND = "mean ± std over seeds (population std, ddof=0)"
AVERAGE = "average"


def color(method: str, methods: list[str]) -> str:
    """The paper-figure colour of a method; variants get the next unused extra colour, so
    a line and its band always match (matplotlib would pick them separately)."""
    if method in COLORS:
        return COLORS[method]
    extra = [m for m in methods if m not in COLORS]
    return EXTRA_COLORS[extra.index(method) % len(EXTRA_COLORS)] if method in extra else "tab:gray"


# --------------------------------------------------------------------------- reading


def parse_sweep_arg(text: str) -> tuple[str, str]:
    """``"DIR"`` -> ``("", "DIR")``, ``"NAME=DIR"`` -> ``("NAME", "DIR")`` (an existing
    directory whose own name holds ``=`` stays unnamed)."""
    name, sep, path = text.partition("=")
    if not sep or Path(text).is_dir() or "/" in name:
        return "", text
    require(bool(name.strip()) and bool(path), f"{text!r}: expected a sweep directory or NAME=DIR")
    require("(" not in name and ")" not in name, f"{text!r}: a sweep name cannot hold parentheses")
    return name.strip(), path


def load_sweeps(sweeps: list[str]) -> tuple[list[RunRecord], dict[str, Any]]:
    """The runs of every sweep (methods of a ``NAME=DIR`` sweep renamed ``method (NAME)``)
    and the first sweep's config; refuses two sweeps holding the same run, except a
    probe-only run and the whole run that reused its LAM (the whole run is kept)."""
    require(bool(sweeps), "no sweep directory given")
    runs: list[RunRecord] = []
    seen: dict[tuple[Any, ...], tuple[str, int]] = {}  # a run's key -> its sweep, its place in runs
    config: dict[str, Any] = {}
    for i, text in enumerate(sweeps):
        name, path = parse_sweep_arg(text)
        these, cfg = load_runs(path)
        if i == 0:
            config = cfg
        for run in these:
            if name:
                run = dataclasses.replace(run, method=f"{run.method} ({name})")
            key = (run.task, run.method, run.labeled, run.seed)
            if key in seen:
                other, place = seen[key]
                kept = _superseding(runs[place], run)
                require(
                    kept is not None,
                    f"{path} and {other} both hold {run.task} {run.method} "
                    f"labelled={run.labeled} seed={run.seed}: name one of them (NAME=DIR) to report both",
                )
                if kept is run:
                    runs[place], seen[key] = run, (path, place)
                continue
            seen[key] = (path, len(runs))
            runs.append(run)
    return runs, config


def _superseding(a: RunRecord, b: RunRecord) -> RunRecord | None:
    """Of two records of one run, the whole run that grew from the other's probe-only
    (``--until lam``) run: a sweep reuses a probe-only sweep's LAM (the same folder name,
    which hashes its config), so the whole run carries every figure the other has. None
    when they are two different runs."""
    lams = {Path(r.stage_dir("lam") or "").name for r in (a, b)}
    if len(lams) != 1 or "" in lams:
        return None
    probe_only = [r for r in (a, b) if r.return_mean is None and "decoder" not in r.stages]
    if len(probe_only) != 1:
        return None
    return b if probe_only[0] is a else a


def load_runs(sweep: str | Path) -> tuple[list[RunRecord], dict[str, Any]]:
    """The latest record of every run, and the sweep's config (empty if sweep.yaml is gone)."""
    root = Path(sweep)
    require(root.is_dir(), f"{root}: no such sweep directory")
    path = root / "runs.jsonl"
    require(path.is_file(), f"{root}: no runs.jsonl (not a sweep directory, or no run has finished yet)")
    latest: dict[tuple[Any, ...], RunRecord] = {}
    for run in read_runs(path):
        latest[(run.task, run.method, run.labeled, run.seed)] = run
    require(bool(latest), f"{path}: no finished runs in it yet")
    config: dict[str, Any] = {}
    if (root / "sweep.yaml").is_file():
        try:
            config = (yaml.safe_load((root / "sweep.yaml").read_text()) or {}).get("config", {}) or {}
        except (yaml.YAMLError, AttributeError):
            config = {}
    inputs = recorded_inputs(root)  # a records folder's facts of the data it left out
    if inputs and isinstance(config, dict):
        config = {**config, "recorded_inputs": inputs}
    return list(latest.values()), config


# --------------------------------------------------------------------------- aggregation


def _jsonl(path: Path) -> list[dict[str, Any]]:
    """A cached stage's curve rows; an unreadable file counts as no curve (the report
    still draws everything else)."""
    from laom.training.metrics import read_jsonl_lenient

    return read_jsonl_lenient(path)


def _number_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def expert_return(path: str | None) -> float | None:
    """The mean return of the trajectories in a dataset file (``dataset_return``), or None."""
    if not path or not Path(path).is_file():
        return None
    try:
        import h5py

        with h5py.File(path, "r") as f:
            value = f.attrs.get("dataset_return")
        return float(value) if value is not None else None
    except (OSError, ValueError, TypeError):
        return None


@functools.cache
def _random_returns(task: str, episodes: int) -> tuple[float, ...] | None:
    try:
        return tuple(random_policy_returns(task, episodes))
    except LaomError:  # not a suite task (a test's made-up name)
        return None


def random_return(task: str, episodes: int = RANDOM_POLICY_EPISODES) -> dict[str, Any] | None:
    """A uniform random policy's return on ``task`` (mean over ``episodes``), or None for a
    task the suite does not have. Measured, not tabulated: about a second per task, once
    per process."""
    values = _random_returns(task, episodes)
    if values is None:
        return None
    return {**stats(list(values)), "episodes": episodes, "policy": "uniform random actions, episode i reset with seed i"}


def expert_score(value: float | None, floor: float | None, expert: float | None) -> float | None:
    """D4RL's normalised score, 100 * (R - R_random) / (R_expert - R_random): 0 is the random
    policy, 100 the dataset's expert. The paper divides by BC-full instead; this one does
    not move with how well BC-full learned, and it is what Minari's reference scores give."""
    if value is None or floor is None or expert is None or expert <= floor:
        return None
    return 100.0 * (float(value) - floor) / (expert - floor)


def learning_curves(
    runs: list[RunRecord], methods: list[str],
    settings: dict[tuple[Any, ...], tuple[str | None, str]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Per method, the probe curves of its LAMs (probe MSE / chance and the online probe
    against training samples, one per distinct LAM), the return curves of its acting
    policies (return and offline MSE against updates), and its latent BC's training loss
    over the variance of the latents it imitates (one per distinct latent BC: the share of
    the latent actions it has not yet learned to predict), read from the cached stages.
    Runs whose stages kept no curve contribute nothing. ``meta`` says of each curve its
    task, distractor setting, labelled budget and seed, so the figure can put curves of
    one setting and budget side by side without parsing the curve names."""
    probe: dict[str, dict[str, list[dict[str, Any]]]] = {}
    policy: dict[str, dict[str, list[dict[str, Any]]]] = {}
    latent: dict[str, dict[str, list[dict[str, Any]]]] = {}
    meta: dict[str, dict[str, dict[str, dict[str, Any]]]] = {"probe": {}, "policy": {}, "latent_bc": {}}
    for r in runs:
        method = r.method
        about = {"task": r.task, "setting": (settings or {}).get(run_key(r), (None, ""))[0],
                 "labeled": r.labeled, "seed": int(r.seed)}  # fmt: skip
        # laom-labels' LAM (and so its latent BC) is one per budget; the others' one per seed
        per_budget = registry.lam_reads_labels(split_variant(method)[0])
        lam_key = f"{r.task} seed {r.seed}" + (f", {r.labeled} labelled" if per_budget else "")
        lam_dir = r.stage_dir("lam")
        if lam_dir:
            rows = _jsonl(Path(lam_dir) / "probe_curve.jsonl")
            if rows:
                probe.setdefault(method, {})[lam_key] = rows
                meta["probe"].setdefault(method, {})[lam_key] = {
                    **about, "labeled": r.labeled if per_budget else None, **_final_probe(r, Path(lam_dir))}
        bc_dir = r.stage_dir("bc")
        if bc_dir and lam_key not in latent.get(method, {}):
            rows = _latent_bc_curve(Path(bc_dir))
            if rows:
                latent.setdefault(method, {})[lam_key] = rows
                meta["latent_bc"].setdefault(method, {})[lam_key] = {**about, "labeled": r.labeled if per_budget else None}
        for file in r.policy_curve_files():
            rows = _jsonl(file)
            if rows:
                key = f"{r.task} {r.labeled or 'all'} labelled, seed {r.seed}"
                policy.setdefault(method, {})[key] = rows
                meta["policy"].setdefault(method, {})[key] = about
    order = [*methods, *sorted(m for m in {*probe, *policy, *latent} if m not in methods)]
    return {
        "probe": {m: probe[m] for m in order if m in probe},
        "policy": {m: policy[m] for m in order if m in policy},
        "latent_bc": {m: latent[m] for m in order if m in latent},
        "meta": {kind: {m: found[m] for m in order if m in found} for kind, found in meta.items()},
    }


def _final_probe(run: RunRecord, lam_dir: Path) -> dict[str, Any]:
    """The LAM's final held-out probe (the one the tables give) beside its curve: the curve's
    points fit the probe on fewer transitions (``probe_fit_samples``) than the final one
    (``probe_train_samples``), and an 8,192-d latent's probe is variance-limited there
    (docs/lam_probes.md), so the two are drawn apart rather than read as one line."""
    if run.action_probe_mse is None or not run.action_probe_baseline_mse:
        return {}
    try:
        fit = json.loads((lam_dir / "summary.json").read_text()).get("probe_train_samples")
    except (OSError, ValueError, AttributeError):
        fit = None
    return {"final_probe_rel": float(run.action_probe_mse) / float(run.action_probe_baseline_mse),
            "final_probe_fit_samples": fit if isinstance(fit, int) else None}  # fmt: skip


def _latent_bc_curve(folder: Path) -> list[dict[str, Any]]:
    """A latent BC run's logged loss over the variance of its targets, against updates
    ([] when the run kept no metrics or cached no latents to take the variance of)."""
    try:
        variance = json.loads((folder / "summary.json").read_text()).get("latent_variance")
    except (OSError, ValueError, AttributeError):
        return []
    if not isinstance(variance, (int, float)) or not math.isfinite(variance) or variance <= 0:
        return []
    rows = []
    for row in _jsonl(folder / "metrics.jsonl"):
        update, loss = row.get("update"), row.get("loss")
        if isinstance(update, (int, float)) and isinstance(loss, (int, float)) and math.isfinite(loss):
            rows.append({"update": int(update), "relative_loss": float(loss) / float(variance)})
    return rows


def stats(values: list[float], seeds: list[int] | None = None) -> dict[str, Any]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    out = {"mean": mean, "std": std, "min": min(values), "max": max(values), "n": n}
    if seeds is not None:
        out["seeds"] = seeds
    return out


def _ordered(values: set[Any], preferred: list[Any]) -> list[Any]:
    return [v for v in preferred if v in values] + sorted(v for v in values if v not in preferred)


def _curves(
    runs: list[RunRecord], value: Callable[[RunRecord], float | None]
) -> dict[str, dict[str, dict[str, dict[tuple[int, int], float]]]]:
    """task -> method -> budget -> {seed: value} for runs with a budget and a value."""
    out: dict[str, Any] = {}
    for r in runs:
        v = value(r)
        if r.labeled is None or v is None:
            continue
        out.setdefault(r.task, {}).setdefault(r.method, {}).setdefault(int(r.labeled), {})[int(r.seed)] = float(v)
    return out


def _offline_mse(run: RunRecord) -> float | None:
    return run.offline.action_mse if run.offline is not None else None


def _offline_constant_mse(run: RunRecord) -> float | None:
    return run.offline.constant_action_mse if run.offline is not None else None


def _table(curves: dict[str, dict[int, dict[int, float]]]) -> dict[str, dict[str, dict[str, Any]]]:
    return {
        m: {str(n): stats([by_seed[s] for s in sorted(by_seed)], sorted(by_seed)) for n, by_seed in sorted(budgets.items())}
        for m, budgets in curves.items()
    }


def aggregate(runs: list[RunRecord], config: dict[str, Any] | None = None, paper: bool = False) -> dict[str, Any]:
    """Everything the figures and tables show, as plain data (summary.json)."""
    config = config or {}
    tasks = _ordered({r.task for r in runs}, list(config.get("tasks", [])))
    present = {r.method for r in runs}
    methods = [m for base in METHODS for m in [base, *sorted(v for v in present if split_variant(v)[0] == base and v != base)]
               if m in present]  # fmt: skip
    methods += sorted(present - set(methods))
    budgets = sorted({int(r.labeled) for r in runs if r.labeled is not None})
    seeds = sorted({int(r.seed) for r in runs})
    normalized = _curves(runs, lambda r: r.normalized_return)
    raw = _curves(runs, lambda r: r.return_mean)
    metric = "normalized_return" if normalized else ("return_mean" if raw else None)

    agg: dict[str, Any] = {
        "runs": len(runs), "tasks": tasks, "methods": [m for m in methods if m != "bc-full"], "budgets": budgets,
        "seeds": seeds, "metric": metric, "band": BAND,
    }  # fmt: skip
    agg["normalized"] = {t: _table(normalized[t]) for t in tasks if t in normalized}
    if len(tasks) > 1 and normalized:
        average: dict[str, dict[int, dict[int, float]]] = {}
        for m in agg["methods"]:
            for n in budgets:
                per_seed = {}
                for s in seeds:
                    vals = [normalized.get(t, {}).get(m, {}).get(n, {}).get(s) for t in tasks]
                    if all(v is not None for v in vals):
                        per_seed[s] = sum(vals) / len(vals)  # type: ignore[arg-type]
                if per_seed:
                    average.setdefault(m, {})[n] = per_seed
        agg["normalized"][AVERAGE] = _table(average)
    agg["returns"] = {t: _table(raw[t]) for t in tasks if t in raw}
    settings = distractor_settings(runs)
    summaries: dict[str, StageSummary | None] = {}

    def latent_bc_relative_loss(run: RunRecord) -> float | None:
        """How much of the latents latent BC could not predict (its stage summary, if the cache is there)."""
        bc = _stage_summary(run, "bc", LatentBCSummary, summaries)[1]
        return bc.relative_loss if isinstance(bc, LatentBCSummary) else None

    for key, value in (("offline_action_mse", _offline_mse), ("latent_bc_relative_loss", latent_bc_relative_loss)):
        curves = _curves(runs, value)
        agg[key] = {t: _table(curves[t]) for t in tasks if t in curves}
    constant = {t: [mse for r in runs if r.task == t and (mse := _offline_constant_mse(r)) is not None]
                for t in tasks}  # fmt: skip
    agg["offline_constant_mse"] = {t: sum(v) / len(v) for t, v in constant.items() if v}

    agg["normalizers"] = {t: normalizer_groups([r for r in runs if r.task == t]) for t in tasks}

    # Probe MSE: one value per LAM of a seed (lapo/laom reuse one LAM for every budget),
    # a row per distractor setting: a method whose LAMs saw data with and without
    # distractors (two unnamed sweeps) gets one row for each, "method [setting]".
    probe: dict[str, Any] = {}
    unit_of: dict[str, tuple[Any, ...]] = {}
    for m in agg["methods"]:
        by_setting: dict[str | None, dict[str, tuple[float, float | None]]] = {}
        per_budget = registry.lam_reads_labels(split_variant(m)[0])
        for r in runs:
            if r.method == m and r.action_probe_mse is not None:
                lam = r.lam_id()
                lams_of = by_setting.setdefault(settings[run_key(r)][0], {})
                lams_of[lam] = (float(r.action_probe_mse), r.action_probe_baseline_mse)
                unit_of[lam] = (r.task, int(r.seed), r.labeled if per_budget else None)
        for setting, found in by_setting.items():
            # A LAM per (task, seed), or per budget too where it reads the labels; one
            # trained twice (another machine, a key change) counts once, as its mean.
            units: dict[tuple[Any, ...], list[tuple[float, float | None]]] = {}
            for lam, value in found.items():
                units.setdefault(unit_of[lam], []).append(value)
            lams = {str(u): _mean_pair(vs) for u, vs in units.items()}
            entry = stats([v for v, _ in lams.values()])
            baselines = [b for _, b in lams.values() if b is not None]
            entry["baseline_mean"] = sum(baselines) / len(baselines) if baselines else None
            entry["relative"] = entry["mean"] / entry["baseline_mean"] if entry["baseline_mean"] else None
            # Per seed's LAM, its MSE and its MSE over its own chance level (the figure's bars).
            entry["values"] = [v for v, _ in lams.values()]
            entry["relative_values"] = [v / b for v, b in lams.values() if b] if len(baselines) == len(lams) else None
            entry["method"], entry["distractors"] = m, setting
            probe[m if len(by_setting) == 1 else f"{m} [{setting or 'unknown'}]"] = entry
    agg["probe_mse"] = probe
    agg["encodes"] = what_latents_encode(runs, agg["methods"], summaries)
    agg["curves"] = learning_curves(runs, agg["methods"], settings)
    recorded = config.get("recorded_inputs") or {}
    agg["expert_return"] = {
        t: expert_return((config.get("data") or {}).get(t)) or _number_or_none(
            ((recorded.get(t) or {}).get("data") or {}).get("dataset_return")
        )
        for t in tasks
    }
    agg["random_return"] = {t: random_return(t) for t in tasks}

    def score(run: RunRecord) -> float | None:
        floor = (agg["random_return"].get(run.task) or {}).get("mean")
        return expert_score(run.return_mean, floor, agg["expert_return"].get(run.task))

    agg["expert_score"] = {t: _table(table) for t, table in _curves(runs, score).items()}
    agg["rows"] = run_rows(runs, agg, summaries, settings)
    agg["compute"] = compute(runs)
    agg["findings"] = findings(runs, settings, tasks)
    if paper:
        agg["paper"] = {
            "source": "Nikulin et al. (ICML 2025), figures of the paper and its release, +-0.01",
            "budgets": list(paper_data.BUDGETS),
            "normalized_return_average": {m: list(v) for m, v in paper_data.NORMALIZED_RETURN.items()},
            "per_task_at_128": paper_data.PER_TASK_AT_128,
            "probe_mse": paper_data.PROBE_MSE,
            "bc_full_return": paper_data.BC_FULL_RETURN,
        }
    return agg


def normalizer_groups(runs: list[RunRecord]) -> dict[str, Any]:
    """One task's normaliser: ``value`` (what its normalised returns were divided by) and
    ``bc_full_return`` (the BC-full runs it came from), for the unnamed sweep's runs, and
    with ``sweeps`` the same per sweep name where named sweeps (``NAME=DIR``) have their
    own: a sweep without distractors normalises by its own BC-full, and a row of it must
    show that one beside its quotient, not the main sweep's."""
    groups: dict[str, dict[str, Any]] = {}
    for variant in sorted({split_variant(r.method)[1] for r in runs}):
        mine = [r for r in runs if split_variant(r.method)[1] == variant]
        values = {r.normalizer for r in mine if r.normalizer is not None}
        full = [r for r in mine if split_variant(r.method)[0] == registry.NORMALIZER and r.return_mean is not None]
        groups[variant] = {
            "value": values.pop() if len(values) == 1 else (sorted(values) if values else None),
            "bc_full_return": stats([r.return_mean for r in full], sorted(int(r.seed) for r in full)) if full else None,
        }
    for group in groups.values():  # normalised by another sweep's BC-full (--normalizer SWEEP_DIR)
        if group["bc_full_return"] is None and group["value"] is not None:
            group["bc_full_return"] = next((g["bc_full_return"] for g in groups.values()
                                            if g["bc_full_return"] and g["value"] == group["value"]), None)  # fmt: skip
    if not groups:
        return {"value": None, "bc_full_return": None}
    main = dict(groups.get("") or next(iter(groups.values())))
    if len(groups) > 1:
        main["sweeps"] = groups
    return main


def normalizer_sweeps(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A task's normaliser per sweep name ("" the unnamed sweep's), one entry or several."""
    return entry.get("sweeps") or {"": entry}


def normalizer_of(agg: dict[str, Any], task: str, method: str) -> dict[str, Any]:
    """The normaliser entry a run of ``method`` (``NAME`` variant or not) was divided by."""
    entry = agg["normalizers"].get(task) or {}
    return normalizer_sweeps(entry).get(split_variant(method)[1]) or entry


def _mean_pair(values: list[tuple[float, float | None]]) -> tuple[float, float | None]:
    """The mean (probe MSE, chance MSE) of a seed's LAMs (chance None if any lacks it)."""
    chance = [b for _, b in values if b is not None]
    return sum(v for v, _ in values) / len(values), sum(chance) / len(chance) if len(chance) == len(values) else None


def run_rows(
    runs: list[RunRecord], agg: dict[str, Any], summaries: dict[str, StageSummary | None],
    settings: dict[tuple[Any, ...], tuple[str | None, str]] | None = None,
) -> list[dict[str, Any]]:
    """One row per finished run, each with what a normalised return needs beside it (the
    task's BC-full return and the expert's), so a reader or a README table can check every
    figure without re-deriving it from the aggregates."""
    rows = []
    for r in sorted(runs, key=lambda r: (r.task, r.method, -1 if r.labeled is None else int(r.labeled), int(r.seed))):
        lam = _stage_summary(r, "lam", LAMSummary, summaries)[1]
        online = lam.online_probe_rel if isinstance(lam, LAMSummary) else None
        full = normalizer_of(agg, r.task, r.method).get("bc_full_return") or {}
        floor = ((agg.get("random_return") or {}).get(r.task) or {}).get("mean")
        held_out = (float(r.action_probe_mse) / float(r.action_probe_baseline_mse)
                    if r.action_probe_mse is not None and r.action_probe_baseline_mse else None)  # fmt: skip
        rows.append({
            "task": r.task, "method": r.method, "labeled": r.labeled, "seed": int(r.seed),
            "distractors": (settings or {}).get(run_key(r), (None, ""))[0],
            "probe_mse": r.action_probe_mse, "probe_chance_mse": r.action_probe_baseline_mse,
            # the LAM it used (its cache folder's name): runs sharing one share it, so a
            # reader averages a seed's probe over its LAMs, not its runs; None where the
            # run kept no LAM folder (each such row then counts alone, as in the findings)
            "lam": Path(lam_dir).name if r.action_probe_mse is not None and (lam_dir := r.stage_dir("lam")) else None,
            "probe_rel": held_out, "online_probe_rel": online,
            "return": r.return_mean, "return_std": r.return_std, "episodes": r.episodes,
            "normalized_return": r.normalized_return, "normalizer": r.normalizer,
            "bc_full_return": full.get("mean"), "expert_return": agg["expert_return"].get(r.task),
            "random_return": floor, "expert_score": expert_score(r.return_mean, floor, agg["expert_return"].get(r.task)),
        })  # fmt: skip
    return rows


# What each probe of "what the latents encode" is called in the figure and tables.
ENCODES = {"action": "action", "camera": "camera motion", "background": "background frame", "color": "colour drift"}
ENCODES_SOURCES = {"latent": "LAM latents z(o_t, o_t+1)", "policy": "latent-BC policy's prediction from o_t"}


def _stage_summary(
    run: RunRecord, stage: str, kind: type[StageSummary], cache: dict[str, StageSummary | None]
) -> tuple[str | None, StageSummary | None]:
    """(stage dir, its summary.json as ``kind``) of one of a run's cached stages (None when
    unreadable: the report draws what it can without it)."""
    folder = run.stage_dir(stage)
    if not folder:
        return None, None
    if folder not in cache:
        try:
            cache[folder] = kind.from_json(json.loads((Path(folder) / "summary.json").read_text()))
        except (OSError, ValueError, LaomError):
            cache[folder] = None
    return folder, cache[folder]


def what_latents_encode(
    runs: list[RunRecord], methods: list[str], cache: dict[str, StageSummary | None] | None = None
) -> dict[str, Any]:
    """Per method and source (the LAM's latents, the latent-BC policy's predictions), the
    R² of linear probes to the action and to each distractor's change: stats over distinct
    LAMs (policies), read from the runs' stage summaries. Only stages whose probe data
    recorded the distractors count; methods with none are left out."""
    cache = {} if cache is None else cache
    out: dict[str, Any] = {}
    for m in methods:
        found: dict[str, dict[str, dict[str, float | None]]] = {"latent": {}, "policy": {}}
        for r in runs:
            if r.method != m:
                continue
            lam_dir, lam = _stage_summary(r, "lam", LAMSummary, cache)
            lam = lam if isinstance(lam, LAMSummary) else None
            # A record may carry the R² figures itself (kept in its extra: this laom's
            # records do not); the LAM's summary is read when it does not.
            distractors = r.extra.get("distractor_probe_r2") or (lam.distractor_probe_r2 if lam else None)
            if isinstance(distractors, dict):
                key = lam_dir or f"{r.task}/{r.labeled}/{r.seed}"
                # the LAM's own summary first: a run record keeps only the MSEs
                action = lam.action_r2 if lam is not None else None
                if action is None:
                    action = action_r2(r.extra.get("action_probe_r2"), r.action_probe_mse, r.action_probe_baseline_mse)
                found["latent"][key] = {"action": action, **distractors}
            bc_dir, bc = _stage_summary(r, "bc", LatentBCSummary, cache)
            if bc_dir and isinstance(bc, LatentBCSummary) and isinstance(bc.policy_distractor_probe_r2, dict):
                found["policy"][bc_dir] = {"action": bc.policy_action_probe_r2, **bc.policy_distractor_probe_r2}
        entry: dict[str, Any] = {}
        for source, per_stage in found.items():
            if per_stage:
                cells = {}
                for factor in ENCODES:
                    values = [float(v[factor]) for v in per_stage.values() if v.get(factor) is not None]
                    cells[factor] = stats(values) if values else None
                entry[source] = {**cells, "n": len(per_stage)}
        if entry:
            out[m] = entry
    return out


# --------------------------------------------------------------------------- figures


def _panels(agg: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    key = "normalized" if agg["metric"] == "normalized_return" else "returns"
    table = agg[key]
    names = [t for t in agg["tasks"] if t in table]
    if AVERAGE in table:
        names.append(AVERAGE)
    return names, table


def figure_returns(agg: dict[str, Any], paper: bool = False) -> Any:
    """The return-vs-budget figure (a matplotlib Figure), or None without returns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if agg["metric"] is None:
        return None
    names, table = _panels(agg)
    normalized = agg["metric"] == "normalized_return"
    # The paper's curves get a panel of their own: on ours, a scale set by returns 10x
    # smaller would squash them flat (and theirs would squash ours).
    with_paper = normalized and paper
    panels = len(names) + int(with_paper)
    fig, axes = plt.subplots(1, panels, figsize=(max(6.0, 4.2 * panels), 4.2), squeeze=False)
    if with_paper:
        figure_paper_panel(axes[0][-1], agg)
    for ax, name in zip(axes[0], names, strict=False):
        for m in agg["methods"]:
            cells = table[name].get(m)
            if not cells:
                continue
            xs = sorted(int(n) for n in cells)
            mean = [cells[str(n)]["mean"] for n in xs]
            std = [cells[str(n)]["std"] for n in xs]
            ax.plot(xs, mean, "-o", color=color(m, agg["methods"]), label=label(m), markersize=4, linewidth=1.8)
            ax.fill_between(xs, [a - b for a, b in zip(mean, std, strict=True)], [a + b for a, b in zip(mean, std, strict=True)],
                            color=color(m, agg["methods"]), alpha=0.18, linewidth=0)  # fmt: skip
        ticks = sorted(set(agg["budgets"]))
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_title("average over tasks" if name == AVERAGE else name, fontsize=10)
        ax.set_xlabel("labelled trajectories")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("normalized return" if normalized else "return")
    legend: dict[str, Any] = {}
    for ax in axes[0]:
        for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(text, handle)
    # As many legend columns as fit the figure's width (about 1.9 in per entry at 8 pt),
    # and the figure grows downwards by the legend's rows so the plots keep their size.
    width, height = fig.get_size_inches()
    ncol = max(1, min(len(legend), int(width / 1.9)))
    rows = math.ceil(len(legend) / ncol)
    legend_h = 0.25 + 0.2 * rows
    fig.set_size_inches(width, height + legend_h)
    fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.suptitle(f"{'Normalized return' if normalized else 'Return'}: line = mean over seeds, band = ± std", fontsize=10)
    fig.tight_layout(rect=(0, legend_h / (height + legend_h), 1, 1))
    return fig


def figure_paper_panel(ax: Any, agg: dict[str, Any]) -> None:
    """The paper's normalised returns (dashed; its 4-task average) for the methods of this
    report, with its per-task value at 128 labelled trajectories (x) for our tasks."""
    shown = [m for m in agg["methods"] if m in paper_data.NORMALIZED_RETURN]
    for m in shown:
        ax.plot(paper_data.BUDGETS, paper_data.NORMALIZED_RETURN[m], "--o", color=COLORS.get(m), markersize=3,
                linewidth=1.4, label=f"paper: {label(m)}")  # fmt: skip
    for task in agg["tasks"]:
        for m, value in paper_data.PER_TASK_AT_128.get(task, {}).items():
            if m in shown:
                ax.scatter([128], [value], marker="x", color=COLORS.get(m), zorder=5, label="x: paper, our tasks at 128")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(paper_data.BUDGETS))
    ax.set_xticklabels([str(t) for t in paper_data.BUDGETS])
    ax.minorticks_off()
    ax.set_title("paper: 4-task average (own scale)", fontsize=10)
    ax.set_xlabel("labelled trajectories")
    ax.set_ylabel("normalized return (paper)")
    ax.grid(alpha=0.3)


def probe_label(agg: dict[str, Any], key: str) -> str:
    """A probe row's name: its method's, and its distractor setting when the method's
    LAMs saw more than one (the row's key then names it)."""
    entry = agg["probe_mse"][key]
    method = entry.get("method", key)
    return label(method) + (f" [{entry.get('distractors') or 'unknown'}]" if key != method else "")


def probe_bars(agg: dict[str, Any]) -> dict[str, Any]:
    """What the probe figure draws: per method the per-LAM values, their mean and n, on
    the scale of MSE / chance (predicting the mean action) when every LAM has its chance
    level, raw MSE otherwise."""
    probe = agg["probe_mse"]
    relative = all(e.get("relative_values") for e in probe.values())
    bars = {}
    for m, e in probe.items():
        values = list(e["relative_values"] if relative else e["values"])
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        bars[m] = {"values": values, "mean": mean, "std": std, "n": len(values)}
    chance = None
    if not relative:
        baselines = [e["baseline_mean"] for e in probe.values() if e["baseline_mean"] is not None]
        chance = sum(baselines) / len(baselines) if baselines else None
    return {"relative": relative, "chance": 1.0 if relative else chance, "bars": bars}


def figure_probe(agg: dict[str, Any], paper: bool = False) -> Any:
    """Bar chart of linear-probe MSE / chance per LAM method (None if no LAM ran).

    Differences between methods can be a few hundredths of the chance level, so the axis
    starts just below the data rather than at 0 and the chance line sits inside the plot;
    each bar says how many LAMs it averages, and an error bar (std) is drawn only for 2+.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not agg["probe_mse"]:
        return None
    data = probe_bars(agg)
    bars, chance = data["bars"], data["chance"]
    methods = list(bars)
    fig, ax = plt.subplots(figsize=(max(4.8, 1.4 * len(methods) + 2.2), 3.8))
    xs = list(range(len(methods)))
    colors = [color(agg["probe_mse"][m].get("method", m), agg["methods"]) for m in methods]
    lows = [min(b["values"]) for b in bars.values()] + ([chance] if chance is not None else [])
    highs = [max(max(b["values"]), b["mean"] + b["std"]) for b in bars.values()] + ([chance] if chance is not None else [])
    lo, hi = min(lows), max(highs)
    pad = max(0.08 * (hi - lo), 0.02 * max(abs(hi), 1e-12))
    bottom = max(0.0, lo - 2 * pad)
    top = hi + 3 * pad  # room for the n labels and the chance line's label
    ax.bar(xs, [b["mean"] - bottom for b in bars.values()], bottom=bottom, color=colors, alpha=0.8, width=0.6)
    for x, b in zip(xs, bars.values(), strict=True):
        if b["n"] >= 2:
            ax.errorbar([x], [b["mean"]], yerr=[b["std"]], color="black", capsize=4, linewidth=1)
        ax.scatter([x] * b["n"], b["values"], color="black", s=10, zorder=3)
        ax.annotate(f"n={b['n']}", (x, b["mean"] + (b["std"] if b["n"] >= 2 else 0)), textcoords="offset points",
                    xytext=(0, 4), ha="center", fontsize=7)  # fmt: skip
    if chance is not None:
        ax.axhline(chance, color="black", linestyle="--", linewidth=1.2, label="chance: predict the mean action")
        ax.legend(fontsize=7, frameon=False, loc="lower right")
    ax.set_ylim(bottom, top)
    ax.set_xticks(xs)
    ax.set_xticklabels([probe_label(agg, m) for m in methods], fontsize=8)
    ax.set_ylabel("probe MSE / chance" if data["relative"] else "linear-probe MSE (true actions)")
    if bottom > 0:
        ax.text(0.0, 1.01, f"axis starts at {bottom:.3g}", transform=ax.transAxes, fontsize=7, va="bottom")
    title = "Linear probe of latent actions (lower is better)\nbar: mean over LAMs, dots: each LAM"
    if any(b["n"] >= 2 for b in bars.values()):
        title += ", error bar: std"
    probe = agg["probe_mse"]
    for lapo in (m for m in paper_data.PROBE_MSE if m != "laom"):  # the paper: 10.6x with FSQ, 8.1x without
        if paper and lapo in probe and "laom" in probe and probe["laom"]["mean"] > 0:
            ours = probe[lapo]["mean"] / probe["laom"]["mean"]
            theirs = paper_data.PROBE_MSE[lapo] / paper_data.PROBE_MSE["laom"]
            title += f"\n{label(lapo)}/LAOM ratio: ours {ours:.1f}x, paper {theirs:.1f}x"
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def figure_curves(agg: dict[str, Any], paper: bool = False) -> Any:
    """Learning curves, a row per (task, distractor setting): the LAMs' probe MSE / chance
    against training samples (both protocols, log axes), latent BC's unexplained share of
    the latents against its updates, and the acting policies' return against updates, a
    panel per labelled budget with BC-full's curve in each (None if no stage kept a curve).
    Small multiples because one panel of every method x budget x setting is unreadable."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = agg.get("curves") or {}
    probe, policy = curves.get("probe") or {}, curves.get("policy") or {}
    latent = curves.get("latent_bc") or {}
    if not probe and not policy and not latent:
        return None
    meta = curves.get("meta") or {}

    def about(kind: str, method: str, key: str) -> dict[str, Any]:
        return ((meta.get(kind) or {}).get(method) or {}).get(key) or {}

    def row_of(kind: str, method: str, key: str) -> tuple[str, str]:
        info = about(kind, method, key)
        return str(info.get("task") or ""), str(info.get("setting") or "")

    rows = sorted({row_of(kind, m, k) for kind, found in (("probe", probe), ("policy", policy), ("latent_bc", latent))
                   for m, lines in found.items() for k in lines})  # fmt: skip
    full = {m for m in policy if split_variant(m)[0] == registry.NORMALIZER}

    def columns_of(row: tuple[str, str]) -> list[Any]:
        """A row's panels: a return panel only at the budgets some policy of that row ran
        (a sweep without distractors at 128 alone gets one, not BC-full's curve four times)."""
        def has(kind: str, found: dict[str, Any]) -> bool:
            return any(row_of(kind, m, k) == row for m, lines in found.items() for k in lines)

        budgets = sorted({about("policy", m, k).get("labeled") for m in policy if m not in full for k in policy[m]
                          if row_of("policy", m, k) == row} - {None})  # fmt: skip
        return [*(["probe"] if has("probe", probe) else []), *(["latent"] if has("latent_bc", latent) else []),
                *([("policy", b) for b in budgets] or ([("policy", None)] if has("policy", policy) else []))]  # fmt: skip

    row_columns = [columns_of(row) for row in rows]
    width = min(3, max(len(c) for c in row_columns))  # wrapped, so the figure stays readable at a page's width
    lines_of = [-(-len(c) // width) for c in row_columns]
    fig, axes = plt.subplots(sum(lines_of), width, figsize=(4.8 * width, 3.7 * sum(lines_of)), squeeze=False)
    # Returns when the curves have them; the demo's curves are offline only (their returns
    # cost a minute): action error relative to predicting the mean.
    use_returns = any(r.get("return_mean") is not None for lines in policy.values() for pts in lines.values() for r in pts)

    def colour(method: str, present: set[str]) -> str:
        """A method's colour, shared by its named-sweep variant in a row without the base
        method (the same method in another setting), so each row reads alike."""
        base = split_variant(method)[0]
        return color(base, [base]) if base != method and base not in present and base in COLORS else color(method, palette)

    palette = [*agg["methods"], registry.NORMALIZER]
    for i, (task, setting) in enumerate(rows):
        where = f"{task}, {setting or 'setting unknown'}" if task else (setting or "")
        columns, first = row_columns[i], sum(lines_of[:i])
        for j in range(len(columns), lines_of[i] * width):  # a block's unused places
            axes[first + j // width][j % width].axis("off")
        for j, column in enumerate(columns):
            ax = axes[first + j // width][j % width]
            if column == "probe":
                present = {m for m, lines in probe.items() if any(row_of("probe", m, k) == (task, setting) for k in lines)}
                finals: set[tuple[Any, Any]] = set()  # (curve's fit size, final probe's fit size) drawn
                for method in probe:
                    shown = False
                    for key, pts_ in probe[method].items():
                        if row_of("probe", method, key) != (task, setting):
                            continue
                        c = colour(method, present)
                        pts = [(r["samples"], r["action_probe_rel"]) for r in pts_ if r["samples"] > 0]
                        online = [(r["samples"], r["online_probe_rel"]) for r in pts_
                                  if r["samples"] > 0 and r.get("online_probe_rel") is not None]  # fmt: skip
                        if pts:
                            ax.plot(*zip(*pts, strict=True), color=c, marker="o", markersize=3,
                                    label=None if shown else label(method))  # fmt: skip
                            final = about("probe", method, key).get("final_probe_rel")
                            if final is not None and final > 0:
                                ax.plot([pts[-1][0]], [final], color=c, marker="*", markersize=9, linestyle="none")
                                finals.add((pts_[-1].get("probe_fit_samples"),
                                            about("probe", method, key).get("final_probe_fit_samples")))  # fmt: skip
                        if online:
                            ax.plot(*zip(*online, strict=True), color=c, linestyle="--", linewidth=1)
                        shown = shown or bool(pts)
                ax.axhline(1.0, color="black", linestyle=":", linewidth=1, label="chance")
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_xlabel("LAM training samples")
                ax.set_ylabel("probe MSE / action variance")
                sizes = ""
                if len(finals) == 1 and all(isinstance(n, int) for n in next(iter(finals))):
                    curve_fit, final_fit = next(iter(finals))
                    sizes = f" (fits on {curve_fit:,} / {final_fit:,} transitions)"
                star = f"; \u2605 the final probe{sizes}" if finals else ""
                ax.set_title(f"LAM probe, held-out videos (solid{star};\nthe release's online probe dashed): {where}",
                             fontsize=8)  # fmt: skip
                ax.grid(alpha=0.3, which="both")
            elif column == "latent":
                present = {m for m, lines in latent.items() if any(row_of("latent_bc", m, k) == (task, setting) for k in lines)}
                for method in latent:
                    keys = [k for k in latent[method] if row_of("latent_bc", method, k) == (task, setting)]
                    for n, key in enumerate(keys):
                        pts = [(r["update"], r["relative_loss"]) for r in latent[method][key] if r["update"] > 0]
                        if pts:
                            ax.plot(*zip(*pts, strict=True), color=colour(method, present), linewidth=1,
                                    label=label(method) if n == 0 else None)  # fmt: skip
                ax.axhline(1.0, color="black", linestyle=":", linewidth=1, label="predicting the mean latent")
                ax.set_xlabel("latent BC updates")
                ax.set_ylabel("loss / variance of the latent actions")
                ax.set_title(f"Latent BC: share of the latents not yet\npredicted from the frames: {where}", fontsize=8)
                ax.grid(alpha=0.3)
            else:
                budget = column[1]
                present = {m for m, lines in policy.items() if any(row_of("policy", m, k) == (task, setting) for k in lines)}
                for method in policy:
                    keys = [k for k in policy[method] if row_of("policy", method, k) == (task, setting)
                            and (budget is None or method in full or about("policy", method, k).get("labeled") == budget)]
                    for n, key in enumerate(keys):
                        pts_ = policy[method][key]
                        if use_returns:
                            pts = [(r["update"], r["return_mean"]) for r in pts_ if r.get("return_mean") is not None]
                        else:
                            pts = [(r["update"], r["offline_action_mse"] / r["constant_action_mse"]) for r in pts_
                                   if r.get("offline_action_mse") is not None and r.get("constant_action_mse")]  # fmt: skip
                        if pts:
                            ax.plot(*zip(*pts, strict=True), color=colour(method, present), marker="o", markersize=3,
                                    linewidth=1.5 if method not in full else 1, label=label(method) if n == 0 else None)  # fmt: skip
                ax.set_xlabel("policy updates")
                at = f"{budget} labelled trajectories" if budget is not None else "every budget"
                if use_returns:
                    ax.set_ylabel("return")
                    ax.set_title(f"Acting policies, {at}:\nreturn during training, {where}", fontsize=8)
                else:
                    ax.axhline(1.0, color="black", linestyle=":", linewidth=1, label="predicting the mean")
                    ax.set_ylabel("offline action MSE / predicting the mean")
                    ax.set_title(f"Acting policies, {at}: action error\non the held-out file during training, {where}",
                                 fontsize=8)  # fmt: skip
                ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6, frameon=False)
            else:
                ax.text(0.5, 0.5, "no curve", ha="center", va="center", transform=ax.transAxes, color="gray")
    fig.tight_layout()
    return fig


def figure_encodes(agg: dict[str, Any], paper: bool = False) -> Any:
    """What the latents encode (None without distractor records): per source a panel of
    grouped bars, one group per probe target (the action, then each distractor's change),
    one bar per method, height = mean R² over LAMs (policies), error bar = std for 2+.

    A method whose latents carry the action and little else has a tall first bar and
    short others; R² near 0 (or below: worse than predicting the mean) means not linearly
    there. A factor the data never varied has no bar ("n/a")."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = agg.get("encodes") or {}
    sources = [s for s in ENCODES_SOURCES if any(s in e for e in table.values())]
    if not sources:
        return None
    fig, axes = plt.subplots(1, len(sources), figsize=(5.6 * len(sources), 4.0), squeeze=False)
    factors = list(ENCODES)
    for ax, source in zip(axes[0], sources, strict=True):
        methods = [m for m in table if source in table[m]]
        width = 0.8 / max(1, len(methods))
        lowest = 0.0
        for i, m in enumerate(methods):
            cells = table[m][source]
            xs = [f + (i - (len(methods) - 1) / 2) * width for f in range(len(factors))]
            legend: str | None = f"{label(m)} (n={cells['n']})"  # on the method's first bar only
            for x, factor in zip(xs, factors, strict=True):
                cell = cells.get(factor)
                if cell is None:
                    ax.text(x, 0.02, "n/a", ha="center", va="bottom", fontsize=6, rotation=90)
                    continue
                lowest = min(lowest, cell["mean"] - cell["std"])
                ax.bar([x], [cell["mean"]], width=width * 0.9, color=color(m, agg["methods"]), alpha=0.85, label=legend)
                legend = None
                if cell["n"] >= 2:
                    ax.errorbar([x], [cell["mean"]], yerr=[cell["std"]], color="black", capsize=3, linewidth=1)
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(factors)))
        ax.set_xticklabels([ENCODES[f] for f in factors], fontsize=8)
        ax.set_ylim(min(-0.05, lowest - 0.05), 1.05)
        ax.set_ylabel("linear-probe R² (held-out)")
        ax.set_title(ENCODES_SOURCES[source], fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        handles, texts = ax.get_legend_handles_labels()
        if handles:
            ax.legend(handles, texts, fontsize=7, frameon=False)
    fig.suptitle("What the latents encode: the action vs the change of each distractor (higher = more of it)", fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- tables


def cell(stat: dict[str, Any] | None, digits: int, seeds: int) -> str:
    if not stat:
        return "–"
    text = f"{stat['mean']:.{digits}f}"
    if stat["n"] > 1:  # a spread over one seed would read as a measured 0
        text += f" ± {stat['std']:.{digits}f}"
    return text + (f" (n={stat['n']})" if stat["n"] < seeds else "")


def _digits(table: dict[str, dict[str, dict[str, Any]]]) -> int:
    """Decimals for raw returns: 1 for the hundreds of a real task, more for tiny ones."""
    biggest = max((abs(c["mean"]) for cells in table.values() for c in cells.values()), default=0.0)
    return 1 if biggest >= 100 else 2 if biggest >= 10 else 3


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def normaliser_line(agg: dict[str, Any], task: str) -> str:
    """What the normalised returns of ``task`` were divided by, beside the expert's return:
    a quotient means something only when its normaliser works."""
    info = agg["normalizers"].get(task) or {}
    expert = (agg.get("expert_return") or {}).get(task)
    parts = []
    for variant, group in normalizer_sweeps(info).items():
        full = group.get("bc_full_return")
        text = f"{variant}: " if variant else ""
        text += f"{_normaliser_value(group.get('value'))}"
        if full:
            spread = f" ± {full['std']:.1f}" if full.get("n", 1) > 1 else " on 1 seed"
            text += f" (BC-full's return {full['mean']:.1f}{spread}"
            if expert:
                share = full["mean"] / expert
                text += f", {share:.0%} of the expert" + ("; below half: these quotients say little" if not normaliser_works(full["mean"], expert) else "")
            text += ")"
        parts.append(text)
    line = "Normaliser: " + "; ".join(parts)
    if expert:
        line += f"; the dataset's expert return {expert:.1f}"
    return line + "."


def score_line(agg: dict[str, Any], task: str) -> str:
    """How the expert-normalised scores of ``task`` were made, with BC-full's beside them."""
    floor, expert = agg["random_return"][task], agg["expert_return"][task]
    line = (f"100 × (return − random) / (expert − random): 0 is a uniform random policy ({floor['mean']:.1f} ± "
            f"{floor['std']:.1f} over {floor['episodes']} episodes), 100 the dataset's expert ({expert:.1f}). "
            "It does not depend on BC-full, so it stays meaningful where BC-full is a weak normaliser.")  # fmt: skip
    fulls = [(variant, group["bc_full_return"]) for variant, group in
             normalizer_sweeps((agg.get("normalizers") or {}).get(task) or {}).items() if group.get("bc_full_return")]  # fmt: skip
    scored = [(variant, v) for variant, full in fulls if (v := expert_score(full["mean"], floor["mean"], expert)) is not None]
    if scored:
        line += " BC-full scores " + ", ".join(f"{v:.1f}" + (f" in {variant}" if variant else "") for variant, v in scored) + "."
    return line


def _share_cell(bc_full: float, expert: float) -> str:
    """BC-full's share of the expert, flagged where it is no working normaliser."""
    flag = "" if normaliser_works(bc_full, expert) else f" (below {NORMALISER_MIN_SHARE:.0%}: no working normaliser)"
    return f"{bc_full / expert:.0%}{flag}"


def _normaliser_value(value: Any) -> str:
    """A normaliser as a table shows it: one number, several (a task whose sweeps were
    normalised apart, merged), or none."""
    if isinstance(value, (int, float)):
        return f"{value:.2f}"
    if isinstance(value, list) and value:
        return ", ".join(f"{v:.2f}" for v in value)
    return "–"


def results_markdown(agg: dict[str, Any], paper: bool = False, sweep: str = "", figures: Iterable[str] = ()) -> str:
    """The report's tables: one row per method, one column per labelled budget; each of
    ``figures`` (file names written beside results.md) shown under the tables it draws."""
    budgets, seeds = agg["budgets"], len(agg["seeds"])
    drawn = set(figures)

    def figure(name: str, alt: str) -> list[str]:
        return [f"![{alt}]({name})", ""] if name in drawn else []

    out = [f"# Results{f' of {sweep}' if sweep else ''}", ""]
    out.append(
        f"{agg['runs']} runs; tasks {', '.join(agg['tasks'])}; seeds {', '.join(map(str, agg['seeds']))}. "
        f"Cells: {BAND}; (n=k) when fewer seeds finished. Columns: labelled trajectories."
    )
    out.append("")
    if agg.get("findings"):
        out += findings_markdown(agg["findings"])
    header = ["method", *map(str, budgets)]
    if agg["normalized"]:
        names = [t for t in agg["tasks"] if t in agg["normalized"]]
        names = ([AVERAGE] if AVERAGE in agg["normalized"] else []) + names
        paper_on = names[0] if paper else None
        for name in names:
            title = "average over tasks" if name == AVERAGE else name
            out += [f"## Normalized return: {title}", ""]
            rows = [[label(m), *(cell(agg["normalized"][name].get(m, {}).get(str(n)), 3, seeds) for n in budgets)]
                    for m in agg["methods"] if m in agg["normalized"][name]]  # fmt: skip
            if name == paper_on:
                for m in agg["methods"]:
                    if m in paper_data.NORMALIZED_RETURN:
                        values = dict(zip(paper_data.BUDGETS, paper_data.NORMALIZED_RETURN[m], strict=True))
                        rows.append([f"paper: {label(m)}", *(f"{values[n]:.3f}" if n in values else "–" for n in budgets)])
            out += _markdown_table(header, rows)
            if name == paper_on and name != AVERAGE:
                out += ["", "Paper rows are its average over cheetah, walker, hopper and humanoid."]
            if name != AVERAGE:
                out += ["", normaliser_line(agg, name)]
            out.append("")
    out += figure("returns.png", "normalized return against labelled trajectories")
    for task in agg["tasks"]:
        if task not in agg["returns"]:
            continue
        out += [f"## Return: {task}", ""]
        digits = _digits(agg["returns"][task])
        rows = [[label(m), *(cell(agg["returns"][task].get(m, {}).get(str(n)), digits, seeds) for n in budgets)]
                for m in agg["methods"] if m in agg["returns"][task]]  # fmt: skip
        out += _markdown_table(header, rows) + [""]
        if task in (agg.get("expert_score") or {}):
            out += [f"## Expert-normalised score (D4RL-style): {task}", "", score_line(agg, task), ""]
            rows = [[label(m), *(cell(agg["expert_score"][task].get(m, {}).get(str(n)), 1, seeds) for n in budgets)]
                    for m in agg["methods"] if m in agg["expert_score"][task]]  # fmt: skip
            out += _markdown_table(header, rows) + [""]
    for task in agg["tasks"]:
        if task in agg["offline_action_mse"]:
            out += [f"## Offline action MSE: {task}", "",
                    "The acting policy's actions against the true ones on the held-out file (lower is better); "
                    f"predicting the mean action scores {agg['offline_constant_mse'].get(task, float('nan')):.4f}.", ""]  # fmt: skip
            rows = [[label(m), *(cell(agg["offline_action_mse"][task].get(m, {}).get(str(n)), 3, seeds) for n in budgets)]
                    for m in agg["methods"] if m in agg["offline_action_mse"][task]]  # fmt: skip
            out += _markdown_table(header, rows) + [""]
        if task in agg["latent_bc_relative_loss"]:
            out += [f"## Latent BC: share of latent-action variance left unexplained: {task}", "",
                    "Latent BC's final training loss / the variance of the LAM's latent actions: near 1, the policy "
                    "cannot predict from the current frames what the LAM encodes.", ""]  # fmt: skip
            rows = [[label(m), *(cell(agg["latent_bc_relative_loss"][task].get(m, {}).get(str(n)), 3, seeds) for n in budgets)]
                    for m in agg["methods"] if m in agg["latent_bc_relative_loss"][task]]  # fmt: skip
            out += _markdown_table(header, rows) + [""]
    if agg["probe_mse"]:
        out += ["## Linear-probe MSE (latent to true actions)", ""]
        # The setting of each row's LAMs' data (a method's LAMs on two settings are two rows).
        settings = any(e.get("distractors") for e in agg["probe_mse"].values())
        head = ["method", *(["distractors"] if settings else []), "probe MSE", "predict-the-mean MSE",
                "probe / predict-the-mean", "LAMs"]  # fmt: skip
        if paper:
            head.append("paper (its units)")
        rows = []
        for m, e in agg["probe_mse"].items():
            row = [probe_label(agg, m), *([e.get("distractors") or "unknown"] if settings else []),
                   f"{e['mean']:.4f} ± {e['std']:.4f}",
                   "–" if e["baseline_mean"] is None else f"{e['baseline_mean']:.4f}",
                   "–" if e["relative"] is None else f"{e['relative']:.3f}", str(e["n"])]  # fmt: skip
            if paper:  # the paper's figure for the row's setting
                theirs = paper_data.PROBE_MSE_NO_DISTRACTORS if e.get("distractors") == NO_DISTRACTORS else paper_data.PROBE_MSE
                method = e.get("method", m)
                row.append(f"{theirs[method]:.2f}" if method in theirs else "–")
            rows.append(row)
        out += _markdown_table(head, rows) + [""]
        out += figure("probe_mse.png", "linear-probe MSE per method")
    if agg.get("encodes"):
        out += ["## What the latents encode (linear-probe R²)", "",
                "R² of linear probes from the latents to the action and to the change of each distractor between "
                "o_t and o_t+1, on held-out data (mean ± std over LAMs or policies; 1 = all of it, 0 = none; "
                "– = not recorded or never varied).", ""]  # fmt: skip
        rows = []
        for m, entry in agg["encodes"].items():
            for source, cells in entry.items():
                rows.append([label(m), ENCODES_SOURCES[source],
                             *("–" if cells[f] is None else f"{cells[f]['mean']:.3f} ± {cells[f]['std']:.3f}" for f in ENCODES),
                             str(cells["n"])])  # fmt: skip
        out += _markdown_table(["method", "latents", *ENCODES.values(), "n"], rows) + [""]
        out += figure("encodes.png", "what the latents encode")
    if "curves.png" in drawn:
        out += ["## Learning curves", "",
                "Per task and distractor setting: the LAMs' probe against training samples, latent BC's unexplained "
                "share of the latents against its updates, and the acting policies' return against their updates, "
                "a panel per labelled budget (summary.json's `curves` holds the points).", "",
                *figure("curves.png", "learning curves")]  # fmt: skip
    out += ["## Normaliser", ""]
    rows = []
    for t, entry in agg["normalizers"].items():
        expert = (agg.get("expert_return") or {}).get(t)
        floor = (agg.get("random_return") or {}).get(t)
        for variant, e in normalizer_sweeps(entry).items():
            full = e["bc_full_return"]
            rows.append([f"{t} ({variant})" if variant else t, _normaliser_value(e["value"]),
                         cell(full, _digits({"": {"": full}}), seeds) if full else "–",
                         f"{expert:.1f}" if expert else "–", _share_cell(full['mean'], expert) if full and expert else "–",
                         f"{floor['mean']:.1f}" if floor else "–"]
                        + ([f"{paper_data.BC_FULL_RETURN[t]:.0f}" if t in paper_data.BC_FULL_RETURN else "–"] if paper else []))  # fmt: skip
    header = ["task", "normaliser", "BC-full return", "expert return (dataset)", "BC-full / expert", "random policy's return"]
    out += _markdown_table([*header, *(["paper BC-full"] if paper else [])], rows)
    if agg["compute"]["total"]["stages"]:  # nothing recorded (an older laom's records): no section
        intro, after = compute_text(agg["compute"])
        out += ["", "## Compute", "", intro, "", *_markdown_table(*compute_table(agg["compute"])), "", *after]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- the command


REPORT_FILES = ("returns.png", "probe_mse.png", "encodes.png", "curves.png", "results.md", "summary.json")


def write_report(sweep: str | Path | list[str], out: str | Path, paper: bool = False) -> dict[str, Any]:
    """Write the figures, results.md and summary.json; returns the summary. ``sweep`` is
    one directory or a list of ``DIR`` / ``NAME=DIR`` (see the module docstring)."""
    import matplotlib.pyplot as plt

    sweeps = [str(sweep)] if isinstance(sweep, (str, Path)) else [str(s) for s in sweep]
    out = check_output(out, "--out", kind="dir", create_parents=True)
    for name in REPORT_FILES:  # a folder where a file goes fails now, not after the plots
        check_output(out / name, "--out", create_parents=True)
    runs, config = load_sweeps(sweeps)
    agg = aggregate(runs, config, paper)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    figures = (("returns.png", figure_returns), ("probe_mse.png", figure_probe), ("encodes.png", figure_encodes),
               ("curves.png", figure_curves))  # fmt: skip
    for name, make in figures:
        fig = make(agg, paper)
        if fig is not None:
            fig.savefig(out / name, dpi=130)
            plt.close(fig)
            files.append(str(out / name))
    (out / "results.md").write_text(results_markdown(agg, paper, " + ".join(sweeps), [Path(f).name for f in files]))
    files.append(str(out / "results.md"))
    agg["sweep"] = str(Path(parse_sweep_arg(sweeps[0])[1]).resolve())
    agg["sweeps"] = {text: str(Path(parse_sweep_arg(text)[1]).resolve()) for text in sweeps}
    agg["files"] = [*files, str(out / "summary.json")]
    agg.update(code_version())
    (out / "summary.json").write_text(json.dumps(agg, indent=2) + "\n")
    return agg


def run_report(sweeps: list[str], *, out: str | None = None, paper: bool = False, readme: str | None = None) -> int:
    """``laom report``: write the report (by default into the first sweep's ``report``
    folder), and with ``readme`` its headline into that Markdown file's marked block
    (:mod:`laom.experiments.headline`); print what was written."""
    from laom.experiments.headline import check_readme, write_readme

    sweeps = list(sweeps)
    out = out or str(Path(parse_sweep_arg(sweeps[0])[1]) / "report")
    if readme:
        check_readme(readme)
    agg = write_report(sweeps, out, paper=paper)
    if agg["metric"] is None:
        print("note: no run has a return (swept with --episodes 0?): no return figure")
    for f in agg["files"]:
        print(f"written: {f}")
    if readme:
        write_readme(readme, Path(out) / "summary.json")
        print(f"written: {readme} (the headline block, from {Path(out) / 'summary.json'})")
    return 0
