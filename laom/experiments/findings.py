"""The report's Findings section (``findings`` in summary.json): the paper's four claims,
each checked on the report's own runs per task and distractor setting.

The tables give every number, but whether the study reproduces the paper is a comparison
of two or three cells under one distractor setting: a reader should not have to pick
them out of tables that hold both settings (a sweep without distractors reported beside
one with them, ``laom report SWEEP vanilla=SWEEP_VANILLA``) and check the thresholds by
hand. A finding is "holds", "does not hold" or "not measured" (saying what is missing);
the verdict is decided on the means over seeds and the seed
bands (mean +- std, ddof=0) are checked beside it (:data:`RULE`).

A run's distractor setting is the ``difficulty`` attribute its training data was
collected with (``laom collect --difficulty``; ``vanilla``: none), read from the data
file its pipeline summary names, else from its labelled subset (a copy of the data's
attributes), else from the environment its policy was evaluated in (the pipeline
summary's ``env``: set from the same attribute, but defaulted where a file lacks it).
A sweep's directory or report name is never read: ``vanilla=DIR`` is only a label.
Runs whose setting cannot be read are left out, and the section says how many.

Which runs stand for a method in a (task, setting): those of the method itself (an
unnamed sweep's), else those of the first named sweep that ran it there (``lapo
(vanilla)``); the figures name the runs used.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from laom.experiments import paper
from laom.experiments.paper import label, split_variant
from laom.experiments.runs_store import RunRecord

# laom.envs.distractors.DIFFICULTIES: the one preset without any distractor.
NO_DISTRACTORS = "vanilla"
MIN_SEEDS = 3  # fewer in any cell: a verdict is printed but is not a claim
HALF = 0.5  # finding 2: LAOM's probe at most half of LAPO w/o FSQ's (the paper: 1/8)
TWICE = 2.0  # finding 3: LAOM+supervision at least twice LAPO's return (the paper: 4.4x at 128)
FROM_BUDGET = 32  # finding 3: at this many labelled trajectories and above
AT_BUDGET = 128  # finding 4
CLOSE = (0.8, 1.25)  # finding 4: LAOM / LAPO within this (the paper: .47 / .42 = 1.12)
PROBE_METRIC = "probe MSE / chance"
# Where a run's setting was read (distractor_setting), as the section names it.
SOURCES = {"data": "the training data", "labelled subset": "the labelled subset",
           "evaluation env": "the evaluation's environment"}  # fmt: skip
SWEEP_VANILLA = "needs a sweep without distractors: laom report SWEEP vanilla=SWEEP_VANILLA"
SWEEP_DISTRACTORS = "needs a sweep with distractors: laom report SWEEP_VANILLA distractors=SWEEP"
RULE = (
    "Verdicts are decided on the means over seeds (for probes, a seed's LAM; the mean of its LAMs where "
    "it was trained more than once). "
    "Where every cell has 2+ seeds, the seed bands are checked too: if some values within mean ± std "
    "(ddof=0) of each cell would give the other verdict, it says the bands cross the threshold. "
    f"A verdict resting on a cell of fewer than {MIN_SEEDS} seeds is marked not a claim. "
    "A finding that holds rests on all of its comparisons; one that does not hold, on its failing "
    "comparison with the most seeds among those whose band is clear of the threshold (one failing "
    "comparison is enough to fail it). "
    "Along the learning curves (the points every seed's curve has), a comparison's gap to its "
    "threshold is fitted against log x: closing or widening when the slope's 95% interval excludes "
    "0, else no clear trend; a closing line says at what multiple of the last point it would meet "
    "the threshold. "
    "Per task and distractor setting, never averaged over tasks. A run's setting is its training "
    f"data's `difficulty` attribute (`{NO_DISTRACTORS}`: without distractors), not its sweep's name."
)


# --------------------------------------------------------------------------- settings


def run_key(run: RunRecord) -> tuple[Any, ...]:
    """What identifies a run in a report (two sweeps holding one are refused)."""
    return (run.task, run.method, run.labeled, run.seed)


def _difficulty(path: str | None, cache: dict[str, str | None]) -> str | None:
    """An HDF5 file's ``difficulty`` attribute (None when the file or attribute is gone)."""
    if not path:
        return None
    if path not in cache:
        cache[path] = None
        if Path(path).is_file():
            try:
                import h5py

                from laom.data.format import plain

                with h5py.File(path, "r") as f:
                    value = f.attrs.get("difficulty")
                cache[path] = str(plain(value)) if value is not None else None
            except (OSError, ValueError, TypeError):
                pass
    return cache[path]


def distractor_setting(
    run: RunRecord, cache: dict[str, str | None] | None = None
) -> tuple[str | None, str]:
    """(difficulty, where it was read) of a run's training data; (None, "") when unknown."""
    cache = {} if cache is None else cache
    summary: dict[str, Any] = {}
    if run.summary_file:
        try:
            loaded = json.loads(Path(run.summary_file).read_text())
            summary = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            summary = {}
    data = summary.get("data")
    for source, path in (("data", data if isinstance(data, str) else None), ("labelled subset", run.labeled_file)):
        value = _difficulty(path, cache)
        if value is not None:
            return value, source
    env = summary.get("env")
    if isinstance(env, dict) and isinstance(env.get("difficulty"), str):
        return env["difficulty"], "evaluation env"
    return None, ""


def distractor_settings(runs: list[RunRecord]) -> dict[tuple[Any, ...], tuple[str | None, str]]:
    """Every run's (difficulty, source), by :func:`run_key`; each data file opened once."""
    cache: dict[str, str | None] = {}
    return {run_key(r): distractor_setting(r, cache) for r in runs}


def with_distractors(setting: str | None) -> bool | None:
    return None if setting is None else setting != NO_DISTRACTORS


# --------------------------------------------------------------------------- cells


@dataclass
class Cell:
    """One method's values in one (task, setting[, budget]): per seed, or per LAM."""

    task: str
    method: str  # the report's name of the runs used ("lapo (vanilla)" for a named sweep's)
    setting: str
    metric: str
    values: dict[str, float]
    seeds: list[int]
    budget: int | None = None
    # Per entry of ``values``, its learning curve (x -> value): a LAM's probe MSE / chance
    # against training samples, or an acting policy's return against updates.
    curves: dict[str, dict[float, float]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values.values()) / self.n

    @property
    def std(self) -> float:
        return math.sqrt(sum((v - self.mean) ** 2 for v in self.values.values()) / self.n)

    def name(self) -> str:
        at = f" at {self.budget}" if self.budget is not None else ""
        return f"{label(self.method)} [{self.setting}]{at}"

    def text(self) -> str:
        digits = 1 if self.metric == "return" else 3
        unit = "seed"
        band = f" ± {self.std:.{digits}f}" if self.n > 1 else ""
        return f"{self.name()} {self.mean:.{digits}f}{band} (n={self.n} {unit}{'s' * (self.n != 1)})"

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "method": self.method, "label": label(self.method), "distractors": self.setting,
                "budget": self.budget, "metric": self.metric, "mean": self.mean, "std": self.std, "n": self.n,
                "seeds": self.seeds}  # fmt: skip


@dataclass(frozen=True)
class GapFit:
    """A comparison's gap to its threshold along the learning curves: ``direction`` is
    closing, widening, no clear trend or holds at every point; ``slope`` the gap's change
    per e-fold of x, ``margin`` its 95% half-interval; ``reach`` (closing only) the
    multiple of the last point's x where the fitted line meets the threshold."""

    direction: str
    slope: float
    margin: float
    reach: float | None

    def to_json(self) -> dict[str, Any]:
        return {"direction": self.direction, "slope_per_efold": self.slope, "slope_margin_95": self.margin,
                "reaches_threshold_at_x_times": self.reach}  # fmt: skip


@dataclass
class Comparison:
    """``top.mean / bottom.mean`` against a threshold: holds when within [low, high]."""

    top: Cell
    bottom: Cell
    low: float | None = None
    high: float | None = None

    def _inside(self, ratio: float) -> bool:
        return (self.low is None or ratio >= self.low) and (self.high is None or ratio <= self.high)

    @property
    def ratio(self) -> float:
        if self.bottom.mean > 0:
            return self.top.mean / self.bottom.mean
        return math.inf if self.top.mean > 0 else math.nan

    @property
    def holds(self) -> bool:
        return not math.isnan(self.ratio) and self._inside(self.ratio)

    @property
    def band(self) -> tuple[float, float] | None:
        """The ratio's range with each cell anywhere in its band (None under 2 seeds):
        t/b is monotone in each of t and b, so its extremes are at the band's corners."""
        if self.top.n < 2 or self.bottom.n < 2:
            return None
        tops = (self.top.mean - self.top.std, self.top.mean + self.top.std)
        b_low, b_high = self.bottom.mean - self.bottom.std, self.bottom.mean + self.bottom.std
        if b_low <= 0:  # the bottom band reaches 0: any ratio above the smallest
            return (tops[0] / b_high if b_high > 0 and tops[0] >= 0 else -math.inf), math.inf
        ratios = [t / b for t in tops for b in (b_low, b_high)]
        return min(ratios), max(ratios)

    @property
    def crosses(self) -> bool | None:
        """Whether values within the bands give the other verdict (None under 2 seeds)."""
        band = self.band
        if band is None:
            return None
        lo, hi = band
        if self.holds:  # some ratio in [lo, hi] outside [low, high]
            return (self.low is not None and lo < self.low) or (self.high is not None and hi > self.high)
        # some ratio in [lo, hi] inside [low, high]
        return (self.low is None or hi >= self.low) and (self.high is None or lo <= self.high)

    def trend(self) -> list[tuple[float, float]]:
        """The ratio along the learning curves: at each x every entry of both cells has a
        point at, the mean of the tops over the mean of the bottoms ([] when a cell has an
        entry without a curve). Where a finding does not hold, this says whether more
        compute moves it toward holding."""
        cells = (self.top, self.bottom)
        if any(not c.curves or set(c.curves) != set(c.values) for c in cells):
            return []
        xs = set.intersection(*(set(curve) for c in cells for curve in c.curves.values()))
        out = []
        for x in sorted(xs):
            top, bottom = (sum(curve[x] for curve in c.curves.values()) / len(c.curves) for c in cells)
            if bottom > 0:
                out.append((x, top / bottom))
        return out

    def gap(self, ratio: float) -> float:
        """How far a ratio is from holding (0 inside the threshold)."""
        return max(0.0, (self.low - ratio) if self.low is not None else 0.0,
                   (ratio - self.high) if self.high is not None else 0.0)  # fmt: skip

    def fit(self, points: list[tuple[float, float]]) -> GapFit | None:
        """The gap to the threshold fitted against log x (None under 3 points). Compute
        grows by factors, so a trend is read per e-fold of training; whether it is one at
        all is decided by the slope's 95% interval, since 5-episode return points scatter
        by more than a straight line moves across a curve."""
        if len(points) < 3:
            return None
        gaps = [self.gap(r) for _, r in points]
        if not any(gaps):
            return GapFit("holds at every point", 0.0, 0.0, None)
        from scipy import stats

        fit = stats.linregress([math.log(x) for x, _ in points], gaps)
        slope, stderr = float(fit.slope), float(fit.stderr)
        margin = float(stats.t.ppf(0.975, len(points) - 2)) * stderr
        if abs(slope) <= margin:
            return GapFit("no clear trend", slope, margin, None)
        if slope > 0:
            return GapFit("widening", slope, margin, None)
        # where the fitted line reaches gap 0, as a multiple of the last point's x (a
        # nearly flat line's multiple is capped where a float would overflow)
        log_reach = -float(fit.intercept) / slope - math.log(points[-1][0])
        return GapFit("closing", slope, margin, math.exp(min(max(log_reach, 0.0), 700.0)))

    def trend_text(self) -> str:
        points = self.trend()
        if len(points) < 2:
            return ""
        what = "LAM training samples" if self.top.metric == PROBE_METRIC else "policy updates"
        ratios = " / ".join(f"{r:.2f}" for _, r in points)
        span = f"{points[0][0]:,.0f}-{points[-1][0]:,.0f} {what}"
        fit = self.fit(points)
        if fit is None:
            note = ""
        elif fit.direction == "holds at every point":
            note = f" ({fit.direction})"
        else:
            reach = f"; the fitted line meets the threshold at {fit.reach:.3g}x the last point" if fit.reach is not None else ""
            note = (f" (the gap to the threshold against log {what}: {fit.direction}, "
                    f"slope {fit.slope:+.3f} ± {fit.margin:.3f} (95%){reach})")  # fmt: skip
        return f"; along the curves: {ratios} at {span}{note}"

    def threshold(self) -> str:
        if self.low is not None and self.high is not None:
            return f"within [{self.low:g}, {self.high:g}]"
        return f">= {self.low:g}" if self.low is not None else f"<= {self.high:g}"

    def text(self) -> str:
        band = self.band
        spread = f", band {_ratio(band[0])}–{_ratio(band[1])}" if band is not None else ""
        ratio = f"{_ratio(self.ratio)}{spread} (needs {self.threshold()})"
        return f"{self.top.metric}: {self.top.text()} / {self.bottom.text()} = {ratio}{self.trend_text()}"

    def to_json(self) -> dict[str, Any]:
        band, points = self.band, self.trend()
        trend = None
        if points:
            trend = {"x": "LAM training samples" if self.top.metric == PROBE_METRIC else "policy updates",
                     "points": [[x, r] for x, r in points]}  # fmt: skip
            fit = self.fit(points)
            trend.update(fit.to_json() if fit is not None else {"direction": None})
        return {"top": label(self.top.method), "bottom": label(self.bottom.method), "budget": self.top.budget,
                "ratio": _finite(self.ratio), "band": None if band is None else [_finite(band[0]), _finite(band[1])],
                "threshold": self.threshold(), "holds": self.holds, "band_crosses": self.crosses,
                "trend": trend}  # fmt: skip


def _ratio(value: float) -> str:
    return "∞" if value == math.inf else "-∞" if value == -math.inf else f"{value:.2f}x"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _curve(path: Path, x: str, y: str) -> dict[float, float]:
    """A JSON-lines learning curve as x -> y (points with x > 0 and a finite y; {} when
    the file is gone or unreadable: a curve is extra, never a reason to fail)."""
    from laom.training.metrics import read_jsonl_lenient

    out = {}
    for row in read_jsonl_lenient(path):
        a, b = row.get(x), row.get(y)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0 and math.isfinite(b):
            out[float(a)] = float(b)
    return out


def _mean_curve(curves: list[dict[float, float]]) -> dict[float, float]:
    """The pointwise mean of curves at the x all of them have."""
    xs = set.intersection(*(set(c) for c in curves)) if curves else set()
    return {x: sum(c[x] for c in curves) / len(curves) for x in sorted(xs)}


class Runs:
    """The report's runs by (task, setting, method), for picking each finding's cells."""

    def __init__(self, runs: list[RunRecord], settings: dict[tuple[Any, ...], tuple[str | None, str]]) -> None:
        self.groups: dict[tuple[str, str, str], dict[str, list[RunRecord]]] = {}
        self.settings: dict[str, list[str]] = {}
        self.unknown = 0
        for r in runs:
            setting = settings.get(run_key(r), (None, ""))[0]
            if setting is None:
                self.unknown += 1
                continue
            base = split_variant(r.method)[0]
            self.groups.setdefault((r.task, setting, base), {}).setdefault(r.method, []).append(r)
            if setting not in self.settings.setdefault(r.task, []):
                self.settings[r.task].append(setting)

    def distracting(self, task: str) -> list[str]:
        return [s for s in self.settings.get(task, []) if with_distractors(s)]

    def has_vanilla(self, task: str) -> bool:
        return NO_DISTRACTORS in self.settings.get(task, [])

    def pick(self, task: str, setting: str, base: str) -> tuple[str, list[RunRecord]] | None:
        """The unnamed sweep's runs of ``base`` there, else the first named sweep's."""
        variants = self.groups.get((task, setting, base))
        if not variants:
            return None
        method = base if base in variants else next(iter(variants))
        return method, variants[method]

    def bases(self, task: str, setting: str) -> list[str]:
        return [b for (t, s, b) in self.groups if (t, s) == (task, setting)]

    def probe(self, task: str, setting: str, base: str) -> Cell | None:
        """Probe MSE / chance per seed: a LAM serves every budget of its seed, and where
        one seed has several LAMs (the same LAM trained again, on another machine or
        after a settings change that left the run keys alone) their mean stands for the
        seed, so n counts seeds, not trainings."""
        picked = self.pick(task, setting, base)
        if picked is None:
            return None
        method, runs = picked
        lams: dict[int, dict[str, float]] = {}
        curves: dict[int, dict[str, dict[float, float]]] = {}
        for r in runs:
            if r.action_probe_mse is not None and r.action_probe_baseline_mse:
                lam = r.lam_id()
                lams.setdefault(int(r.seed), {})[lam] = float(r.action_probe_mse) / float(r.action_probe_baseline_mse)
                if r.stage_dir("lam") and lam not in curves.get(int(r.seed), {}):
                    curve = _curve(Path(lam) / "probe_curve.jsonl", "samples", "action_probe_rel")
                    if curve:
                        curves.setdefault(int(r.seed), {})[lam] = curve
        if not lams:
            return None
        values = {f"seed {s}": sum(v.values()) / len(v) for s, v in sorted(lams.items())}
        means = {f"seed {s}": _mean_curve(list(c.values())) for s, c in curves.items()}
        return Cell(task, method, setting, PROBE_METRIC, values, sorted(lams),
                    curves={k: c for k, c in means.items() if c})  # fmt: skip

    def returns(self, task: str, setting: str, base: str, budget: int, metric: str) -> Cell | None:
        picked = self.pick(task, setting, base)
        if picked is None:
            return None
        method, runs = picked
        key = "normalized_return" if metric == "normalized return" else "return_mean"
        chosen = [r for r in runs if r.labeled is not None and int(r.labeled) == budget and getattr(r, key) is not None]
        values = {str(r.seed): float(getattr(r, key)) for r in chosen}
        if not values:
            return None
        # The curves in raw return: a ratio within one (task, setting) has one normaliser.
        curves = {str(r.seed): curve for r in chosen
                  if (curve := next((c for f in r.policy_curve_files() if (c := _curve(f, "update", "return_mean"))), {}))}  # fmt: skip
        return Cell(task, method, setting, metric, values, sorted(int(s) for s in values), budget, curves)

    def return_metric(self, task: str, setting: str) -> str:
        """Normalized return where every run there has one, else the raw return (the
        ratios are the same when one normaliser serves a (task, setting))."""
        runs = [r for (t, s, _), v in self.groups.items() if (t, s) == (task, setting) for rs in v.values() for r in rs
                if r.labeled is not None and r.return_mean is not None]  # fmt: skip
        return "normalized return" if all(r.normalized_return is not None for r in runs) else "return"


# --------------------------------------------------------------------------- verdicts


def _verdict(task: str, setting: str, comparisons: list[Comparison], note: str = "") -> dict[str, Any]:
    """A (task, setting)'s verdict: holds when every comparison holds on the means.

    A finding that holds rests on all of its comparisons: its bands cross when any
    comparison's band reaches over its threshold, and its seeds are its thinnest cell's.
    One failing comparison is enough to fail a finding, so a finding that does not hold
    rests on its best-established failing comparison: one whose band is clear of the
    threshold (the most seeds among those), else the crossing ones, else any failing one.
    A study can then settle "does not hold" on three seeds of the decisive cells (finding
    3 at 128) while the other budgets stay at one."""
    holds = all(c.holds for c in comparisons)
    basis, band = comparisons, None
    if holds:
        crossing = [c.crosses for c in comparisons]
        if not any(x is None for x in crossing):
            band = "crosses" if any(crossing) else "clear"
    else:
        failing = [c for c in comparisons if not c.holds]
        clear = [c for c in failing if c.crosses is False]
        crossing_ones = [c for c in failing if c.crosses]
        basis, band = (clear, "clear") if clear else (crossing_ones, "crosses") if crossing_ones else (failing, None)

    def seeds_of(c: Comparison) -> int:
        return min(c.top.n, c.bottom.n)

    seeds = min(seeds_of(c) for c in basis) if holds else max(seeds_of(c) for c in basis)
    rests_on = [] if holds else [c for c in basis if seeds_of(c) == seeds]
    cells = {id(x): x for c in comparisons for x in (c.top, c.bottom)}.values()
    verdict = "holds" if holds else "does not hold"
    text = f"**{verdict}**"
    if band == "crosses":
        text += ", but the seed bands cross the threshold"
    thinner = not holds and min(seeds_of(c) for c in comparisons) < seeds
    if thinner:  # the verdict rests on fewer comparisons than were made: name them
        on = "; ".join(f"{c.top.name()} / {c.bottom.name()}" for c in rests_on)
        text += f" (on {seeds} seeds of {on}{'' if seeds >= MIN_SEEDS else ': not a claim'})"
    elif seeds < MIN_SEEDS:
        text += f" ({seeds} seed{'s' * (seeds != 1)}: not a claim)"
    return {"task": task, "distractors": setting, "verdict": verdict, "band": band, "min_seeds": seeds,
            "claim": seeds >= MIN_SEEDS, "missing": None, "note": note,
            "rests_on": [[label(c.top.method), label(c.bottom.method), c.top.budget] for c in rests_on],
            "figures": [x.to_json() for x in cells], "comparisons": [c.to_json() for c in comparisons],
            "text": text, "details": [c.text() for c in comparisons]}  # fmt: skip


def _missing(task: str | None, setting: str | None, what: str) -> dict[str, Any]:
    return {"task": task, "distractors": setting, "verdict": "not measured", "band": None, "min_seeds": None,
            "claim": False, "missing": what, "note": "", "rests_on": [], "figures": [], "comparisons": [],
            "text": f"**not measured**: {what}", "details": []}  # fmt: skip


def _needs(method: str, setting: str, budgets: str = "") -> str:
    """What a "not measured" lacks (not yet finished, or not in any sweep reported)."""
    if budgets:
        return f"needs finished runs of {method} at {budgets} labelled trajectories on {setting} data"
    return f"needs a finished run of {method} with its LAM's probe on {setting} data"


def finding_probe_degrades(runs: Runs, task: str) -> list[dict[str, Any]]:
    """1: LAPO's probe / chance is worse (higher) with distractors than without."""
    distracting = runs.distracting(task)
    if not distracting:
        return [_missing(task, None, SWEEP_DISTRACTORS)]
    clean = runs.probe(task, NO_DISTRACTORS, "lapo")
    out = []
    for s in distracting:
        noisy = runs.probe(task, s, "lapo")
        if noisy is not None and clean is not None:
            out.append(_verdict(task, s, [Comparison(noisy, clean, low=1.0)]))
            continue
        needs = [_needs("lapo", s)] if noisy is None else []
        if clean is None:
            needs.append(_needs("lapo", NO_DISTRACTORS) if runs.has_vanilla(task) else SWEEP_VANILLA)
        out.append(_missing(task, s, "; ".join(needs)))
    return out


def finding_probe_half(runs: Runs, task: str) -> list[dict[str, Any]]:
    """2: with distractors, LAOM's probe / chance is at most half of LAPO w/o FSQ's."""
    distracting = runs.distracting(task)
    if not distracting:
        return [_missing(task, None, SWEEP_DISTRACTORS)]
    out = []
    for s in distracting:
        laom, nofsq = runs.probe(task, s, "laom"), runs.probe(task, s, "lapo-nofsq")
        if laom is None or nofsq is None:
            needs = [_needs(m, s) for m, cell in (("laom", laom), ("lapo-nofsq", nofsq)) if cell is None]
            out.append(_missing(task, s, "; ".join(needs)))
        else:
            out.append(_verdict(task, s, [Comparison(laom, nofsq, high=HALF)]))
    return out


LAPOS = ("lapo", "lapo-nofsq")  # finding 3's "LAPO": each that ran


def finding_supervision_best(runs: Runs, task: str) -> list[dict[str, Any]]:
    """3: with distractors, at every budget from 32 up, LAOM+supervision's return is the
    highest of the methods run there (variants of it are not rivals) and at least twice
    LAPO's: twice each LAPO that ran, with FSQ (the paper's probe-ablation start) and
    without (what the release's train_lapo.py trains), since the paper's curves do not say
    which."""
    distracting = runs.distracting(task)
    if not distracting:
        return [_missing(task, None, SWEEP_DISTRACTORS)]
    out = []
    for s in distracting:
        metric = runs.return_metric(task, s)
        picked = runs.pick(task, s, "laom-labels")
        budgets = sorted({int(r.labeled) for r in (picked[1] if picked else []) if r.labeled is not None
                          and int(r.labeled) >= FROM_BUDGET})  # fmt: skip
        comparisons: list[Comparison] = []
        lapo_missing = []
        for n in budgets:
            ours = runs.returns(task, s, "laom-labels", n, metric)
            if ours is None:
                continue
            lapos = [c for m in LAPOS if (c := runs.returns(task, s, m, n, metric)) is not None]
            if not lapos:
                lapo_missing.append(n)
                continue
            comparisons += [Comparison(ours, lapo, low=TWICE) for lapo in lapos]
            rivals = [c for b in runs.bases(task, s) if b not in ("laom-labels", *LAPOS, "bc-full")
                      and (c := runs.returns(task, s, b, n, metric)) is not None]  # fmt: skip
            comparisons += [Comparison(ours, rival, low=1.0) for rival in rivals]
        if not comparisons:
            if budgets:
                out.append(_missing(task, s, _needs("lapo", s, ", ".join(map(str, lapo_missing)))))
            else:
                out.append(_missing(task, s, _needs("laom-labels", s, f"{FROM_BUDGET} or more")))
            continue
        note = f"budgets {', '.join(map(str, sorted({c.top.budget for c in comparisons})))}"
        if lapo_missing:
            note += f"; not at {', '.join(map(str, lapo_missing))} (no LAPO run there)"
        out.append(_verdict(task, s, comparisons, note))
    return out


def finding_close_without(runs: Runs, task: str) -> list[dict[str, Any]]:
    """4: without distractors, LAOM's and LAPO's returns at 128 are close (ratio in CLOSE)."""
    if not runs.has_vanilla(task):
        return [_missing(task, NO_DISTRACTORS, SWEEP_VANILLA)]
    metric = runs.return_metric(task, NO_DISTRACTORS)
    laom = runs.returns(task, NO_DISTRACTORS, "laom", AT_BUDGET, metric)
    lapo = runs.returns(task, NO_DISTRACTORS, "lapo", AT_BUDGET, metric)
    if laom is None or lapo is None:
        needs = [_needs(m, NO_DISTRACTORS, str(AT_BUDGET)) for m, cell in (("laom", laom), ("lapo", lapo)) if cell is None]
        return [_missing(task, NO_DISTRACTORS, "; ".join(needs))]
    return [_verdict(task, NO_DISTRACTORS, [Comparison(laom, lapo, low=CLOSE[0], high=CLOSE[1])])]


def _paper_ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x"


FINDINGS: tuple[tuple[int, str, str, str, Callable[[Runs, str], list[dict[str, Any]]]], ...] = (
    (1, "LAPO's probe degrades under distractors",
     f"LAPO's probe MSE {paper.PROBE_MSE['lapo']} with distractors, {paper.PROBE_MSE_NO_DISTRACTORS['lapo']} without "
     f"({_paper_ratio(paper.PROBE_MSE['lapo'], paper.PROBE_MSE_NO_DISTRACTORS['lapo'])})",
     "LAPO's probe MSE / chance with distractors over without >= 1 (worse with them)", finding_probe_degrades),
    (2, "Under distractors, LAOM's probe MSE is at most half of LAPO w/o FSQ's",
     f"LAOM {paper.PROBE_MSE['laom']}, LAPO w/o FSQ {paper.PROBE_MSE['lapo-nofsq']} "
     f"(LAOM at 1/{paper.PROBE_MSE['lapo-nofsq'] / paper.PROBE_MSE['laom']:.1f})",
     f"LAOM's probe MSE / chance over LAPO w/o FSQ's <= {HALF:g}, with distractors", finding_probe_half),
    (3, f"Under distractors, LAOM+supervision gives the best return at {FROM_BUDGET} labelled trajectories and above, "
        f"at least {TWICE:g}x LAPO's",
     f"normalized return at {AT_BUDGET}: LAOM+supervision {paper.NORMALIZED_RETURN['laom-labels'][-1]:.2f}, LAPO "
     f"{paper.NORMALIZED_RETURN['lapo'][-1]:.2f} "
     f"({_paper_ratio(paper.NORMALIZED_RETURN['laom-labels'][-1], paper.NORMALIZED_RETURN['lapo'][-1])}); "
     f"the best method at {', '.join(str(n) for n in paper.BUDGETS if n >= FROM_BUDGET)} (4-task average)",
     f"at each budget >= {FROM_BUDGET} run: LAOM+supervision / LAPO >= {TWICE:g} and LAOM+supervision / each other "
     "method >= 1 (its variants aside)", finding_supervision_best),
    (4, f"Without distractors, LAPO and LAOM are close in return at {AT_BUDGET} labelled trajectories",
     f"normalized return LAOM {paper.NO_DISTRACTORS_AT_128['laom']:.2f}, LAPO {paper.NO_DISTRACTORS_AT_128['lapo']:.2f} "
     f"({_paper_ratio(paper.NO_DISTRACTORS_AT_128['laom'], paper.NO_DISTRACTORS_AT_128['lapo'])})",
     f"LAOM / LAPO within [{CLOSE[0]:g}, {CLOSE[1]:g}] (what close means here)", finding_close_without),
)  # fmt: skip


def findings(
    runs: list[RunRecord], settings: dict[tuple[Any, ...], tuple[str | None, str]], tasks: Iterable[str]
) -> dict[str, Any]:
    """summary.json's ``findings``: the rule, how many runs had no readable setting, and
    per finding its claim, the paper's figure, the threshold and one result per (task,
    setting) with the figures it used."""
    grouped = Runs(runs, settings)
    sources: dict[str, int] = {}
    for setting, source in settings.values():
        if setting is not None:
            sources[source] = sources.get(source, 0) + 1
    items = []
    for number, claim, paper_figure, threshold, check in FINDINGS:
        results = [result for task in tasks for result in check(grouped, task)]
        items.append({"id": number, "claim": claim, "paper": paper_figure, "rule": threshold, "results": results})
    return {"rule": RULE, "settings_read_from": sources, "unknown_setting_runs": grouped.unknown,
            "settings": {t: s for t, s in grouped.settings.items()}, "findings": items}  # fmt: skip


def findings_markdown(info: dict[str, Any]) -> list[str]:
    """The section's lines: the rule, then per finding its claim, the paper's figure, the
    threshold and a line per (task, setting) with the verdict and our figures."""
    out = ["## Findings", "", info["rule"], ""]
    present = "; ".join(f"{t}: {', '.join(s)}" for t, s in info["settings"].items())
    if present:
        sources = ", ".join(f"{SOURCES.get(k, k)} of {n} run{'s' * (n != 1)}" for k, n in info["settings_read_from"].items())
        out += [f"Distractor settings present: {present} (read from {sources}).", ""]
    if info["unknown_setting_runs"]:
        out += [f"{info['unknown_setting_runs']} runs whose training data's setting could not be read (no pipeline "
                "summary, data file or evaluation record left) are not used.", ""]  # fmt: skip
    for item in info["findings"]:
        out += [f"**{item['id']}. {item['claim']}.** Paper: {item['paper']}. Holds when: {item['rule']}.", ""]
        for r in item["results"]:
            where = ", ".join(x for x in (r["task"], r["distractors"]) if x)
            note = f" ({r['note']})" if r["note"] else ""
            out.append(f"- {where}{note}: {r['text']}")
            out += [f"  - {line}" for line in r["details"]]
        out.append("")
    return out
