"""The report's Findings section: the paper's four claims as holds / does not hold / not
measured, per task and distractor setting (read from the training data's attributes),
with the seed bands beside the verdict."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_experiments import write_runs

from laom.experiments import findings as fd
from laom.experiments import report as rp
from laom.experiments.runs_store import RunRecord

DISTRACTORS = "scale_easy_video_hard"
TASK = "cheetah-run"
SPREAD = (-0.01, 0.0, 0.01)  # per seed: a band far narrower than every threshold below


def data_file(root: Path, difficulty: str) -> Path:
    """A training data file as collected: only its attributes are read."""
    path = root / f"{difficulty}-train.hdf5"
    root.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["difficulty"], f.attrs["domain_name"], f.attrs["task_name"] = difficulty, "cheetah", "run"
    return path


def sweep(root: Path, difficulty: str | None, *, probes: dict[str, float] | None = None,
          returns: dict[tuple[str, int], float] | None = None, seeds: tuple[int, ...] = (0, 1, 2),
          spread: tuple[float, ...] = SPREAD, task: str = TASK) -> Path:  # fmt: skip
    """A sweep's runs.jsonl with each run's pipeline summary naming its data file (whose
    ``difficulty`` is the setting; None: no summary at all). ``probes``: each LAM method's
    probe MSE (chance 1.0, so also its MSE / chance); ``returns``: normalized return per
    (method, budget); seed i adds ``spread[i]`` to both."""
    data = data_file(root / "data", difficulty) if difficulty else None
    runs = []
    budgets = {n for _, n in (returns or {})} or {128}
    for method in sorted({m for m, _ in (returns or {})} | set(probes or {})):
        for n in sorted(budgets):
            for seed in seeds:
                run: dict = {"task": task, "method": method, "labeled": n, "seed": seed}
                value = (returns or {}).get((method, n))
                if value is not None:
                    v = value + spread[seed]
                    run.update(return_mean=100 * v, normalizer=100.0, normalized_return=v)
                if method in (probes or {}):  # one LAM per (method, seed), shared by its budgets
                    run.update(action_probe_mse=probes[method] + spread[seed], action_probe_baseline_mse=1.0,  # type: ignore[index]
                               stages={"lam": {"dir": str(root / "cache" / f"lam-{method}-{seed}")}})  # fmt: skip
                if data is not None:
                    summary = root / "cache" / f"pipeline-{method}-{n}-{seed}.json"
                    summary.parent.mkdir(parents=True, exist_ok=True)
                    summary.write_text(json.dumps({"method": method, "data": str(data)}))
                    run["summary_file"] = str(summary)
                if value is not None or method in (probes or {}):
                    runs.append(run)
    return write_runs(root, runs)


def findings_of(agg: dict) -> dict[int, list[dict]]:
    return {f["id"]: f["results"] for f in agg["findings"]["findings"]}


def section(md: str) -> str:
    return md.split("## Findings\n", 1)[1].split("\n## ", 1)[0]


# Numbers for which all four findings hold, and for which none does.
HOLDS = {
    DISTRACTORS: dict(probes={"lapo": 0.8, "lapo-nofsq": 0.7, "laom": 0.2},
                      returns={("laom-labels", 32): 0.30, ("lapo", 32): 0.10, ("laom", 32): 0.15, ("bc", 32): 0.20,
                               ("laom-labels", 128): 0.50, ("lapo", 128): 0.12, ("laom", 128): 0.20, ("bc", 128): 0.30}),
    "vanilla": dict(probes={"lapo": 0.5, "laom": 0.15}, returns={("lapo", 128): 0.40, ("laom", 128): 0.44}),
}  # fmt: skip
FAILS = {
    DISTRACTORS: dict(probes={"lapo": 0.5, "lapo-nofsq": 0.7, "laom": 0.5},
                      returns={("laom-labels", 32): 0.15, ("lapo", 32): 0.10, ("bc", 32): 0.20,
                               ("laom-labels", 128): 0.30, ("lapo", 128): 0.12, ("bc", 128): 0.25}),
    "vanilla": dict(probes={"lapo": 0.6}, returns={("lapo", 128): 0.30, ("laom", 128): 0.60}),
}  # fmt: skip


def two_sweeps(tmp_path: Path, numbers: dict, **kw: object) -> dict:
    """The study's report: the sweep with distractors, the one without named ``vanilla``."""
    main = sweep(tmp_path / "main", DISTRACTORS, **numbers[DISTRACTORS], **kw)  # type: ignore[arg-type]
    clean = sweep(tmp_path / "clean", "vanilla", **numbers["vanilla"], **kw)  # type: ignore[arg-type]
    return rp.write_report([str(main), f"vanilla={clean}"], tmp_path / "report")


def test_each_finding_holds_with_its_figures(tmp_path: Path) -> None:
    agg = two_sweeps(tmp_path, HOLDS)
    results = findings_of(agg)
    for number in (1, 2, 3, 4):
        (result,) = results[number]
        assert (result["verdict"], result["band"], result["claim"]) == ("holds", "clear", True), (number, result)
        assert result["text"] == "**holds**"
    # The cells are the right runs: the vanilla sweep's (named) for "without distractors".
    (one,) = results[1]
    assert one["distractors"] == DISTRACTORS
    (ratio,) = one["comparisons"]
    assert (ratio["top"], ratio["bottom"]) == ("LAPO", "LAPO (vanilla)")
    assert ratio["ratio"] == pytest.approx(0.8 / 0.5)
    by_method = {(f["method"], f["distractors"]): f for f in one["figures"]}
    lapo = by_method[("lapo", DISTRACTORS)]
    assert lapo["mean"] == pytest.approx(0.8) and lapo["std"] == pytest.approx(np.std(SPREAD)) and lapo["n"] == 3
    assert by_method[("lapo (vanilla)", "vanilla")]["seeds"] == [0, 1, 2]
    # The band of a ratio: its cells' corners, (0.8 - s) / (0.5 + s) to (0.8 + s) / (0.5 - s).
    s = np.std(SPREAD)
    assert ratio["band"] == pytest.approx([(0.8 - s) / (0.5 + s), (0.8 + s) / (0.5 - s)])
    (two,) = results[2]
    assert two["comparisons"][0]["ratio"] == pytest.approx(0.2 / 0.7)
    (three,) = results[3]
    # At 32 and 128: twice LAPO, and above each other method (BC and LAOM).
    assert {(c["bottom"], c["budget"], c["threshold"]) for c in three["comparisons"]} == {
        ("LAPO", 32, ">= 2"), ("BC", 32, ">= 1"), ("LAOM", 32, ">= 1"),
        ("LAPO", 128, ">= 2"), ("BC", 128, ">= 1"), ("LAOM", 128, ">= 1")}  # fmt: skip
    (four,) = results[4]
    assert four["distractors"] == "vanilla" and four["comparisons"][0]["ratio"] == pytest.approx(0.44 / 0.40)
    assert four["comparisons"][0]["threshold"] == "within [0.8, 1.25]"
    md = (tmp_path / "report" / "results.md").read_text()
    # Near the top: right after the title paragraph, before the tables.
    assert md.index("## Findings") < md.index("## Normalized return")
    text = section(md)
    assert text.splitlines()[1].startswith("Verdicts are decided on the means")
    assert f"{TASK}: {DISTRACTORS}, vanilla (read from the training data of" in text
    assert "within [0.8, 1.25]" in text  # the rule of "close" is printed
    assert text.count("**holds**") == 4 and ": not a claim)" not in text
    assert ("probe MSE / chance: LAPO [scale_easy_video_hard] 0.800 ± 0.008 (n=3 seeds) / "
            "LAPO (vanilla) [vanilla] 0.500 ± 0.008 (n=3 seeds) = 1.60x, band 1.56x–1.64x (needs >= 1)") in text
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert [f["id"] for f in summary["findings"]["findings"]] == [1, 2, 3, 4]
    assert summary["findings"]["findings"][1]["paper"].startswith("LAOM 2.74, LAPO w/o FSQ 22.09")
    assert {r["distractors"] for r in summary["rows"]} == {DISTRACTORS, "vanilla"}


def test_each_finding_does_not_hold(tmp_path: Path) -> None:
    results = findings_of(two_sweeps(tmp_path, FAILS))
    for number in (1, 2, 3, 4):
        (result,) = results[number]
        assert (result["verdict"], result["band"]) == ("does not hold", "clear"), (number, result)
    (three,) = results[3]
    failing = {(c["bottom"], c["budget"]) for c in three["comparisons"] if not c["holds"]}
    assert failing == {("LAPO", 32), ("BC", 32)}  # 1.5x LAPO and below BC at 32 (2.5x and above BC at 128)
    md = (tmp_path / "report" / "results.md").read_text()
    assert section(md).count("**does not hold**") == 4


def test_findings_not_measured_say_what_is_missing(tmp_path: Path) -> None:
    """One sweep with distractors and no LAOM+supervision: nothing to compare. A sweep of
    data with distractors named "vanilla" is still one with distractors (the name is a
    label), and runs whose data cannot be read are counted and left out."""
    only = {"probes": {"lapo": 0.8, "laom": 0.2}, "returns": {("lapo", 128): 0.1, ("laom", 128): 0.2}}
    main = sweep(tmp_path / "main", DISTRACTORS, **only)  # type: ignore[arg-type]
    misnamed = sweep(tmp_path / "misnamed", DISTRACTORS, probes={"lapo": 0.5}, returns={("lapo", 128): 0.4})
    unknown = sweep(tmp_path / "unknown", None, probes={"lapo": 0.1}, returns={("lapo", 128): 0.9})
    agg = rp.write_report([str(main), f"vanilla={misnamed}", f"old={unknown}"], tmp_path / "report")
    results = findings_of(agg)
    assert all(r["verdict"] == "not measured" for rs in results.values() for r in rs)
    assert results[1][0]["missing"] == "needs a sweep without distractors: laom report SWEEP vanilla=SWEEP_VANILLA"
    assert results[2][0]["missing"] == f"needs a finished run of lapo-nofsq with its LAM's probe on {DISTRACTORS} data"
    assert results[3][0]["missing"] == f"needs finished runs of laom-labels at 32 or more labelled trajectories on {DISTRACTORS} data"
    assert results[4][0]["missing"] == results[1][0]["missing"]
    assert agg["findings"]["unknown_setting_runs"] == 3  # the 'old' sweep's: no pipeline summary
    text = section((tmp_path / "report" / "results.md").read_text())
    assert text.count("**not measured**") == 4
    assert "3 runs whose training data's setting could not be read" in text
    # Without LAPO runs the "best" finding names LAPO as what is missing.
    no_lapo = sweep(tmp_path / "no-lapo", DISTRACTORS, returns={("laom-labels", 32): 0.3, ("bc", 32): 0.2})
    (three,) = findings_of(rp.write_report(str(no_lapo), tmp_path / "r2"))[3]
    assert three["missing"] == f"needs finished runs of lapo at 32 labelled trajectories on {DISTRACTORS} data"


def test_one_seed_is_not_a_claim(tmp_path: Path) -> None:
    results = findings_of(two_sweeps(tmp_path, HOLDS, seeds=(0,)))
    for number in (1, 2, 3, 4):
        (result,) = results[number]
        assert result["verdict"] == "holds" and result["band"] is None and not result["claim"]
        assert result["text"] == "**holds** (1 seed: not a claim)"
        assert result["comparisons"][0]["band"] is None
    md = (tmp_path / "report" / "results.md").read_text()
    text = section(md)
    assert text.count("(1 seed: not a claim)") == 4
    assert "normalized return: LAOM (vanilla) [vanilla] at 128 0.430 (n=1 seed) / LAPO (vanilla) [vanilla] at 128 0.390" in text


def test_seed_bands_crossing_the_threshold_are_named(tmp_path: Path) -> None:
    """Means on one side, bands reaching the other: the verdict stays, and says so."""
    wide = (-0.1, 0.0, 0.1)  # std 0.082
    numbers = {DISTRACTORS: dict(probes={"lapo": 0.6, "lapo-nofsq": 0.5, "laom": 0.2}),  # LAOM at 0.4 of w/o FSQ
               "vanilla": dict(probes={"lapo": 0.55}, returns={("lapo", 128): 0.40, ("laom", 128): 0.52})}  # fmt: skip
    results = findings_of(two_sweeps(tmp_path, numbers, spread=wide))
    (one,), (two,), (four,) = results[1], results[2], results[4]
    assert (one["verdict"], one["band"]) == ("holds", "crosses")  # 1.09x, band 0.83x to 1.45x
    assert one["text"] == "**holds**, but the seed bands cross the threshold"
    assert (two["verdict"], two["band"]) == ("holds", "crosses")  # 0.4, band up to 0.66
    assert (four["verdict"], four["band"]) == ("does not hold", "crosses")  # 1.3x, band from 0.87x
    assert four["text"] == "**does not hold**, but the seed bands cross the threshold"
    # Not holding on several comparisons: the bands cross only if every failing one's does.
    for bc, band in ((0.5, "clear"), (0.2, "crosses")):  # below BC beyond its band / above BC
        root = tmp_path / f"bc-{bc}"
        runs = sweep(root, DISTRACTORS, returns={("laom-labels", 32): 0.30, ("lapo", 32): 0.16, ("bc", 32): bc},
                     spread=wide)  # 1.9x LAPO, band 0.90x to 4.9x: crosses 2  # fmt: skip
        (three,) = findings_of(rp.write_report(str(runs), root / "report"))[3]
        assert (three["verdict"], three["band"]) == ("does not hold", band), bc
    # Two seeds: a band, and still not a claim.
    (two_seeds,) = findings_of(two_sweeps(tmp_path / "two", HOLDS, seeds=(0, 1)))[1]
    assert two_seeds["band"] == "clear" and two_seeds["text"] == "**holds** (2 seeds: not a claim)"


def test_comparison_band_is_its_cells_corners() -> None:
    top = fd.Cell(TASK, "laom", DISTRACTORS, fd.PROBE_METRIC, {"a": 0.1, "b": 0.3}, [0, 1])  # 0.2 ± 0.1
    bottom = fd.Cell(TASK, "lapo-nofsq", DISTRACTORS, fd.PROBE_METRIC, {"a": 0.5, "b": 0.7}, [0, 1])  # 0.6 ± 0.1
    c = fd.Comparison(top, bottom, high=0.5)
    assert c.ratio == pytest.approx(1 / 3) and c.holds
    assert c.band == pytest.approx((0.1 / 0.7, 0.3 / 0.5)) and c.crosses
    assert not fd.Comparison(top, bottom, high=0.7).crosses
    # A bottom band reaching 0: any ratio above the smallest.
    low = fd.Cell(TASK, "lapo", DISTRACTORS, fd.PROBE_METRIC, {"a": 0.0, "b": 0.2}, [0, 1])
    assert fd.Comparison(top, low, low=2.0).band == pytest.approx((0.1 / 0.2, float("inf")))


def test_setting_is_read_from_the_data_then_the_subset_then_the_evaluation(tmp_path: Path) -> None:
    clean = data_file(tmp_path / "d", "vanilla")
    summary = tmp_path / "pipeline.json"
    summary.write_text(json.dumps({"data": str(clean), "env": {"difficulty": DISTRACTORS}}))
    run = RunRecord(task=TASK, method="lapo", labeled=2, seed=0, summary_file=str(summary))
    assert fd.distractor_setting(run) == ("vanilla", "data")  # the data's own, not the evaluation's
    subset = data_file(tmp_path / "s", DISTRACTORS)
    summary.write_text(json.dumps({"data": str(tmp_path / "gone.hdf5"), "env": {"difficulty": "vanilla"}}))
    assert fd.distractor_setting(RunRecord(task=TASK, method="lapo", labeled=2, seed=0, summary_file=str(summary),
                                           labeled_file=str(subset))) == (DISTRACTORS, "labelled subset")  # fmt: skip
    assert fd.distractor_setting(run) == ("vanilla", "evaluation env")
    assert fd.distractor_setting(RunRecord(task=TASK, method="lapo", seed=0)) == (None, "")


def test_probe_table_keeps_distractor_settings_apart(tmp_path: Path) -> None:
    """Two unnamed sweeps on different data (here different tasks): a method's LAMs on
    each setting are a row each, not pooled; one setting keeps the method's own row."""
    noisy = sweep(tmp_path / "a", DISTRACTORS, probes={"lapo": 0.8, "laom": 0.2})
    clean = sweep(tmp_path / "b", "vanilla", probes={"lapo": 0.5}, task="walker-run")
    agg = rp.write_report([str(noisy), str(clean)], tmp_path / "report", paper=True)
    probe = agg["probe_mse"]
    assert set(probe) == {f"lapo [{DISTRACTORS}]", "lapo [vanilla]", "laom"}
    assert probe[f"lapo [{DISTRACTORS}]"]["mean"] == pytest.approx(0.8) and probe["lapo [vanilla]"]["n"] == 3
    assert probe["laom"]["distractors"] == DISTRACTORS
    md = (tmp_path / "report" / "results.md").read_text()
    from test_experiments import table_cell

    table = "Linear-probe MSE (latent to true actions)"
    assert table_cell(md, table, "LAPO [vanilla]", "distractors") == "vanilla"
    assert table_cell(md, table, "LAPO [vanilla]", "probe / predict-the-mean") == "0.500"
    assert table_cell(md, table, "LAPO [vanilla]", "paper (its units)") == "16.41"  # the paper's without distractors
    assert table_cell(md, table, f"LAPO [{DISTRACTORS}]", "paper (its units)") == "29.17"
    assert [t.get_text() for t in rp.figure_probe(agg).axes[0].get_xticklabels()] == [
        f"LAPO [{DISTRACTORS}]", "LAPO [vanilla]", "LAOM"]  # fmt: skip
    # Per task: cheetah-run has no run without distractors, walker-run none with them.
    (one_cheetah, one_walker) = findings_of(agg)[1]
    assert (one_cheetah["task"], one_cheetah["missing"]) == (TASK, fd.SWEEP_VANILLA)
    assert (one_walker["task"], one_walker["missing"]) == ("walker-run", fd.SWEEP_DISTRACTORS)


def test_supervision_must_double_each_lapo_that_ran(tmp_path: Path) -> None:
    """Finding 3's "LAPO" is both LAPOs when both ran: the release trains LAPO without FSQ,
    the paper's probe ablation starts from LAPO with FSQ, and its curves do not say which."""
    numbers = {k: dict(v) for k, v in HOLDS.items()}
    returns = dict(numbers[DISTRACTORS]["returns"])  # type: ignore[arg-type]
    returns[("lapo-nofsq", 32)], returns[("lapo-nofsq", 128)] = 0.12, 0.30  # 2.5x at 32, 1.67x at 128
    numbers[DISTRACTORS] = {**numbers[DISTRACTORS], "returns": returns}
    (three,) = findings_of(two_sweeps(tmp_path, numbers))[3]
    assert three["verdict"] == "does not hold"
    by = {(c["bottom"], c["budget"]): c for c in three["comparisons"]}
    assert by[("LAPO w/o FSQ", 32)]["holds"] and by[("LAPO w/o FSQ", 32)]["threshold"] == ">= 2"
    assert not by[("LAPO w/o FSQ", 128)]["holds"] and by[("LAPO", 128)]["holds"]


def test_curves_figure_has_a_row_per_setting(tmp_path: Path) -> None:
    """With and without distractors, the probe curves sit in a row each (the issue's
    comparison), and the vanilla sweep's LAPO keeps LAPO's colour in its own row."""
    for root in (tmp_path / "main", tmp_path / "clean"):
        for seed in (0, 1, 2):
            lam = root / "cache" / f"lam-lapo-{seed}"
            lam.mkdir(parents=True, exist_ok=True)
            rows = [{"update": u, "samples": 64 * u, "action_probe_rel": 1 - u / 100} for u in (0, 10, 20)]
            (lam / "probe_curve.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    agg = two_sweeps(tmp_path, HOLDS)
    meta = agg["curves"]["meta"]["probe"]
    assert {info["setting"] for info in meta["lapo"].values()} == {DISTRACTORS}
    assert {info["setting"] for info in meta["lapo (vanilla)"].values()} == {"vanilla"}
    fig = rp.figure_curves(agg)
    probes = {ax.get_title().rsplit(": ", 1)[1]: ax for ax in fig.axes if ax.get_title().startswith("LAM probe")}
    assert set(probes) == {f"{TASK}, {DISTRACTORS}", f"{TASK}, vanilla"}
    colours = {ax_name: {line.get_color() for line in ax.get_lines() if line.get_label() != "chance"
                         and line.get_linestyle() == "-"} for ax_name, ax in probes.items()}  # fmt: skip
    assert colours[f"{TASK}, {DISTRACTORS}"] == colours[f"{TASK}, vanilla"] == {rp.color("lapo", ["lapo"])}


def test_a_finding_that_does_not_hold_says_where_its_curves_point(tmp_path: Path) -> None:
    """The issue: where a finding does not hold, the curves must show whether more compute
    points to it. Each comparison carries its ratio along the learning curves (points all
    entries share), and whether the gap to its threshold closes or widens there."""
    main = sweep(tmp_path / "main", DISTRACTORS, **FAILS[DISTRACTORS])
    # LAOM's probe falls and LAPO w/o FSQ's stays: the ratio closes on 0.5, its gap falls by
    # 0.25 per e-fold of samples from 0.5 at 1,000, so the line meets it at 1,000 e^2.
    laom = tuple(0.8 * (1.0 - 0.25 * math.log(k)) for k in (1, 2, 3)) + (0.45,)
    for seed in (0, 1, 2):
        for method, values in (("laom", laom), ("lapo-nofsq", (0.8, 0.8, 0.8, 0.8))):
            lam = main / "cache" / f"lam-{method}-{seed}"
            lam.mkdir(parents=True, exist_ok=True)
            rows = [{"update": u, "samples": 100 * u, "action_probe_rel": v} for u, v in zip((0, 10, 20, 30, 40), (1.0, *values), strict=True)]
            if seed == 2 and method == "laom":
                rows = rows[:4]  # a shorter curve: only the points every LAM has count
            (lam / "probe_curve.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    agg = rp.write_report(main, tmp_path / "report")
    (two,) = findings_of(agg)[2]
    (comparison,) = two["comparisons"]
    trend = comparison["trend"]
    assert trend["x"] == "LAM training samples" and trend["direction"] == "closing"
    assert trend["points"] == [[1000.0, pytest.approx(1.0)], [2000.0, pytest.approx(laom[1] / 0.8)],
                               [3000.0, pytest.approx(laom[2] / 0.8)]]  # fmt: skip
    assert trend["slope_per_efold"] == pytest.approx(-0.25)
    assert trend["reaches_threshold_at_x_times"] == pytest.approx(1000 * math.e**2 / 3000)
    assert ("along the curves: 1.00 / 0.83 / 0.73 at 1,000-3,000 LAM training samples (the gap to the "
            "threshold against log LAM training samples: closing, slope -0.250 ± 0.000 (95%); the fitted "
            "line meets the threshold at 2.46x the last point)") in section((tmp_path / "report" / "results.md").read_text())
    # No curve (an older laom's LAMs, or LAPO's with none kept): no trend, no error.
    (one,) = [r for r in findings_of(two_sweeps(tmp_path / "plain", FAILS))[3]]
    assert all(c["trend"] is None for c in one["comparisons"])


def test_trend_direction_on_the_gap_to_the_threshold() -> None:
    Comparison = fd.Comparison

    def cell(values: list[float]) -> fd.Cell:
        return fd.Cell(TASK, "m", DISTRACTORS, "return", {"0": values[-1]}, [0], 32,
                    curves={"0": {float(1000 * (i + 1)): v for i, v in enumerate(values)}})  # fmt: skip

    bottom = cell([1.0, 1.0, 1.0, 1.0])
    holds = Comparison(cell([2.5, 2.2, 2.1, 2.0]), bottom, low=2.0)
    assert holds.fit(holds.trend()).direction == "holds at every point"
    # the gap grows by 0.3 per e-fold of updates: a trend however few the points
    widening = Comparison(cell([1.8 - 0.3 * math.log(k) for k in (1, 2, 3, 4)]), bottom, low=2.0)
    assert widening.fit(widening.trend()).direction == "widening"
    assert widening.fit(widening.trend()).slope == pytest.approx(0.3)
    # 5-episode return points that go up and down: a fitted slope, but inside its 95% interval
    noisy = Comparison(cell([1.0, 1.3, 0.9, 1.2, 1.0]), cell([1.0] * 5), low=2.0)
    fit = noisy.fit(noisy.trend())
    assert fit.direction == "no clear trend" and abs(fit.slope) <= fit.margin and fit.reach is None
    assert "no clear trend" in noisy.text() and "reaches" not in noisy.text()
    # closing, but the line meets 2x only far past the last point
    slow = Comparison(cell([1.0, 1.05, 1.1, 1.15]), cell([1.0] * 4), low=2.0)
    fit = slow.fit(slow.trend())
    assert fit.direction == "closing" and fit.reach > 10
    # a line that barely moves: its multiple is huge but finite (summary.json stays JSON)
    crawl = Comparison(cell([1.0 + 1e-9 * math.log(k) for k in (1, 2, 3, 4)]), cell([1.0] * 4), low=2.0)
    fit = crawl.fit(crawl.trend())
    assert fit.direction == "closing" and math.isfinite(fit.reach) and fit.reach > 1e100
    short = Comparison(cell([1.8, 1.5]), cell([1.0, 1.0]), low=2.0)
    assert short.fit(short.trend()) is None and "the gap to the threshold" not in short.text()
    assert Comparison(cell([1.0]), bottom, low=2.0).trend_text() == ""  # one common point: no curve to speak of


def test_a_seed_trained_twice_counts_once(tmp_path: Path) -> None:
    """The study's LAPO w/o FSQ LAM of seed 0 was trained on two machines (its later
    budget's key changed): the two are one seed, their mean its value, n=1."""
    main = sweep(tmp_path / "main", DISTRACTORS, probes={"laom": 0.8, "lapo-nofsq": 0.7}, seeds=(0,))
    runs = [json.loads(line) for line in (main / "runs.jsonl").read_text().splitlines()]
    again = next(r for r in runs if r["method"] == "lapo-nofsq")
    runs.append({**again, "labeled": 32, "action_probe_mse": 0.9,
                 "stages": {"lam": {"dir": str(main / "cache" / "lam-lapo-nofsq-again")}}})  # fmt: skip
    agg = rp.write_report(write_runs(main, runs), tmp_path / "report")
    (two,) = findings_of(agg)[2]
    nofsq = next(f for f in two["figures"] if f["method"] == "lapo-nofsq")
    assert nofsq["n"] == 1 and nofsq["mean"] == pytest.approx((0.7 + SPREAD[0] + 0.9) / 2) and nofsq["seeds"] == [0]


def test_probe_only_seeds_join_the_whole_runs_in_the_findings(tmp_path: Path) -> None:
    """`laom sweep --until lam` in a folder of its own, reported beside the whole runs
    (two unnamed sweeps): its seeds join seed 0's in the probe findings, and the return
    findings stay on the seeds that have returns."""
    main = sweep(tmp_path / "main", DISTRACTORS, **HOLDS[DISTRACTORS], seeds=(0,))
    probes = sweep(tmp_path / "probes", DISTRACTORS, probes=HOLDS[DISTRACTORS]["probes"], seeds=(1, 2))
    clean = sweep(tmp_path / "clean", "vanilla", **HOLDS["vanilla"], seeds=(0,))
    clean_probes = sweep(tmp_path / "clean-probes", "vanilla", probes={"lapo": 0.5}, seeds=(1, 2))
    # The study's four folders: a name given twice merges those two as the unnamed ones do.
    sweeps = [str(main), str(probes), f"vanilla={clean}", f"vanilla={clean_probes}"]
    agg = rp.write_report(sweeps, tmp_path / "report")
    (two,) = findings_of(agg)[2]
    assert {f["method"]: f["seeds"] for f in two["figures"]} == {"laom": [0, 1, 2], "lapo-nofsq": [0, 1, 2]}
    assert two["claim"] is True
    (one,) = findings_of(agg)[1]
    assert {f["method"]: f["seeds"] for f in one["figures"]} == {"lapo": [0, 1, 2], "lapo (vanilla)": [0, 1, 2]}
    assert one["verdict"] == "holds" and one["claim"] is True
    (three,) = findings_of(agg)[3]
    assert three["min_seeds"] == 1 and three["claim"] is False
    (four,) = findings_of(agg)[4]
    assert four["min_seeds"] == 1 and four["claim"] is False


def test_a_finding_that_fails_rests_on_its_decisive_comparison(tmp_path: Path) -> None:
    """One failing comparison fails a finding: three seeds of the cells at 128 settle
    finding 3 while its budget of 32 has one, and a finding that holds still needs three
    seeds in every cell."""
    whole = sweep(tmp_path / "whole", DISTRACTORS, returns={("laom-labels", 32): 0.15, ("lapo", 32): 0.10,
                  ("laom-labels", 128): 0.30, ("lapo", 128): 0.25}, seeds=(0,))  # fmt: skip
    more = sweep(tmp_path / "more", DISTRACTORS, returns={("laom-labels", 128): 0.30, ("lapo", 128): 0.25}, seeds=(1, 2))
    (three,) = findings_of(rp.write_report([str(whole), str(more)], tmp_path / "report"))[3]
    assert (three["verdict"], three["band"], three["min_seeds"], three["claim"]) == ("does not hold", "clear", 3, True)
    assert three["rests_on"] == [["LAOM+supervision", "LAPO", 128]]
    assert three["text"] == ("**does not hold** (on 3 seeds of LAOM+supervision [scale_easy_video_hard] at 128 / "
                             "LAPO [scale_easy_video_hard] at 128)")  # fmt: skip
    # The same seeds where it holds (2.5x at 128, 1.5x at 32): the thinnest cell decides.
    holds = sweep(tmp_path / "h", DISTRACTORS, returns={("laom-labels", 32): 0.15, ("lapo", 32): 0.10,
                  ("laom-labels", 128): 0.50, ("lapo", 128): 0.20}, seeds=(0,))  # fmt: skip
    more = sweep(tmp_path / "h-more", DISTRACTORS, returns={("laom-labels", 128): 0.50, ("lapo", 128): 0.20}, seeds=(1, 2))
    (three,) = findings_of(rp.write_report([str(holds), str(more)], tmp_path / "h-report"))[3]
    assert (three["verdict"], three["min_seeds"], three["claim"]) == ("does not hold", 1, False)  # 1.5x at 32 fails
    assert three["text"] == "**does not hold** (1 seed: not a claim)"
    (three,) = findings_of(rp.write_report(str(more), tmp_path / "m-report"))[3]
    assert (three["verdict"], three["min_seeds"], three["claim"], three["rests_on"]) == ("holds", 2, False, [])
