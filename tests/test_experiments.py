"""``laom sweep`` and ``laom report``: job planning, scheduling, resume, normalisers,
input errors, the report's numbers and figures, and one tiny sweep end to end."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_stages import cheetah, square

from laom.cli import main
from laom.errors import LaomError
from laom.experiments import cli as exp_cli
from laom.experiments import paper
from laom.experiments import report as rp
from laom.experiments.labeled_subsets import make_labeled
from laom.experiments.normalizers import Normalizers, check_normalizer, renormalize
from laom.experiments.overrides import check_overrides, overrides_for
from laom.experiments.plan import Job, job_key, link_shared, plan_jobs
from laom.experiments.runs_store import RunRecord, append_run, drop_stale, read_runs
from laom.experiments.scheduler import InlineExecutor, Outcome, schedule
from laom.experiments.sweep import run_sweep
from laom.experiments.sweep_config import METHODS, SweepConfig, SweepOptions, make_config
from laom.experiments.sweep_dir import open_sweep_dir, sweep_lock
from laom.training.options import override_items
from laom.training.pipeline import chain, split_overrides


@pytest.fixture(autouse=True)
def _close_figures() -> object:
    yield
    import matplotlib.pyplot as plt

    plt.close("all")

TINY = [
    "--threads", "1", "--encoder_channels", "[8,8,8]", "--batch_size", "16", "--epochs", "1", "--frame_stack", "2",
    "--min_updates", "5", "--lam.latent_dim", "16", "--lam.probe_samples", "100", "--lam.probe_eval_samples", "100",
    "--decoder.total_updates", "20", "--decoder.hidden_dim", "32",
]  # fmt: skip


def walker(path: Path, trajectories: int = 4) -> Path:
    """Synthetic frames labelled walker-stand: 6-d actions like cheetah, and a reward that
    is not zero in the first steps, so a 4-step evaluation gives a usable normaliser."""
    cheetah(path, trajectories=trajectories, length=20)
    with h5py.File(path, "r+") as f:
        f.attrs["domain_name"], f.attrs["task_name"] = "walker", "stand"
    return path


def one_line_error(args: list[str], capsys: pytest.CaptureFixture, match: str) -> str:
    capsys.readouterr()
    assert main(args) == 2, args
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("laom: error:"), err
    assert match in err, err
    return err


# --------------------------------------------------------------------------- paper data


def test_paper_numbers_are_complete() -> None:
    assert exp_cli.METHODS == METHODS
    assert set(paper.NORMALIZED_RETURN) == {"bc", "idm", "lapo", "laom", "laom-labels"}
    assert all(len(v) == len(paper.BUDGETS) for v in paper.NORMALIZED_RETURN.values())
    assert paper.NORMALIZED_RETURN["laom-labels"][-1] == 0.44 and paper.BC_FULL_RETURN["cheetah-run"] == 823
    assert paper.PROBE_MSE["lapo"] / paper.PROBE_MSE["laom"] == pytest.approx(29.17 / 2.74)


# --------------------------------------------------------------------------- report


def synthetic_runs() -> list[dict]:
    """2 tasks x (bc, laom) x budgets (2, 4) x 3 seeds with known numbers, plus bc-full."""
    runs = []
    for ti, task in enumerate(("cheetah-run", "walker-run")):
        norm = 100.0 * (ti + 1)
        for seed in range(3):
            runs.append({"task": task, "method": "bc-full", "labeled": None, "seed": seed,
                         "return_mean": norm + seed - 1, "return_std": 1.0, "normalizer": norm,
                         "normalized_return": (norm + seed - 1) / norm})  # fmt: skip
            for mi, method in enumerate(("bc", "laom")):
                for n in (2, 4):
                    value = 0.1 * (mi + 1) + 0.01 * n + 0.02 * seed + 0.05 * ti
                    run = {"task": task, "method": method, "labeled": n, "seed": seed, "return_mean": value * norm,
                           "return_std": 2.0, "normalizer": norm, "normalized_return": value}  # fmt: skip
                    if method == "laom":  # one LAM per (task, seed), shared by both budgets
                        run["action_probe_mse"] = 0.1 + 0.01 * seed + 0.1 * ti
                        run["action_probe_baseline_mse"] = 0.5
                        run["stages"] = {"lam": {"dir": f"/cache/lam-{task}-{seed}"}}
                    runs.append(run)
    return runs


def records(runs: list[dict]) -> list[RunRecord]:
    """The runs as a report reads them from runs.jsonl."""
    return [RunRecord.from_json(r) for r in runs]


def write_runs(root: Path, runs: list[dict]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    return root



def test_report_normaliser_per_named_sweep(tmp_path: Path) -> None:
    """A sweep without distractors (``vanilla=DIR``) is normalised by its own BC-full: its
    rows must carry that return beside their quotients, and the normaliser line and table
    must give both, not the main sweep's alone (nor a bare list of numbers)."""

    def run(method: str, labeled: int | None, ret: float, norm: float) -> dict:
        return {"task": "cheetah-run", "method": method, "labeled": labeled, "seed": 0, "return_mean": ret,
                "normalizer": norm, "normalized_return": ret / norm}  # fmt: skip

    main_sweep = write_runs(tmp_path / "main", [run("bc-full", None, 200.0, 200.0), run("bc", 8, 50.0, 200.0)])
    clean = write_runs(tmp_path / "clean", [run("bc-full", None, 300.0, 300.0), run("lapo", 8, 150.0, 300.0)])
    agg = rp.write_report([str(main_sweep), f"vanilla={clean}"], tmp_path / "report")
    rows = {r["method"]: r for r in agg["rows"]}
    assert rows["bc"]["bc_full_return"] == pytest.approx(200.0)
    assert rows["lapo (vanilla)"]["bc_full_return"] == pytest.approx(300.0)
    assert rows["lapo (vanilla)"]["normalized_return"] == pytest.approx(150.0 / rows["lapo (vanilla)"]["bc_full_return"])
    entry = agg["normalizers"]["cheetah-run"]
    assert entry["value"] == 200.0 and entry["sweeps"]["vanilla"]["value"] == 300.0
    md = (tmp_path / "report" / "results.md").read_text()
    assert "Normaliser: 200.00 (BC-full's return 200.0 on 1 seed); vanilla: 300.00 (BC-full's return 300.0 on 1 seed)." in md
    assert table_cell(md, "Normaliser", "cheetah-run (vanilla)", "normaliser") == "300.00"
    assert table_cell(md, "Normaliser", "cheetah-run", "BC-full return") == "200.0"  # one seed: no spread to show
    # One sweep: no per-sweep entries, as before.
    one = rp.write_report([str(main_sweep)], tmp_path / "one")
    assert "sweeps" not in one["normalizers"]["cheetah-run"]

def table_cell(markdown: str, section: str, row: str, column: str) -> str:
    body = markdown.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in body.strip().splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == row:
            return cells[header.index(column)]
    raise AssertionError(f"no row {row!r} in {section}")


def test_report_numbers_equal_hand_computed_means(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = synthetic_runs()
    stale = {**runs[1], "normalized_return": 99.0}  # an older record of the same run: superseded
    sweep = write_runs(tmp_path / "sweep", [stale, *runs])
    out = tmp_path / "report"
    assert main(["report", str(sweep), "--out", str(out), "--paper"]) == 0
    for name in ("returns.png", "probe_mse.png", "results.md", "summary.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    md = (out / "results.md").read_text()

    def by_hand(task: str | None, method: str, n: int) -> list[float]:
        if task is not None:
            return [r["normalized_return"] for r in runs if (r["task"], r["method"], r["labeled"]) == (task, method, n)]
        per_seed = [[r["normalized_return"] for r in runs if (r["method"], r["labeled"], r["seed"]) == (method, n, s)]
                    for s in range(3)]  # fmt: skip
        return [float(np.mean(v)) for v in per_seed]

    for task, section in (("cheetah-run", "cheetah-run"), ("walker-run", "walker-run"), (None, "average over tasks")):
        for method, row in (("bc", "BC"), ("laom", "LAOM")):
            for n in (2, 4):
                values = by_hand(task, method, n)
                expected = f"{np.mean(values):.3f} ± {np.std(values):.3f}"
                assert table_cell(md, f"Normalized return: {section}", row, str(n)) == expected
    raw = [r["return_mean"] for r in runs if (r["task"], r["method"], r["labeled"]) == ("walker-run", "laom", 4)]
    assert table_cell(md, "Return: walker-run", "LAOM", "4") == f"{np.mean(raw):.2f} ± {np.std(raw):.2f}"
    assert table_cell(md, "Normalized return: average over tasks", "paper: LAOM", "4") == "0.105"
    probes = [0.1 + 0.01 * s + 0.1 * t for t in range(2) for s in range(3)]
    assert table_cell(md, "Linear-probe MSE (latent to true actions)", "LAOM", "probe MSE") == f"{np.mean(probes):.4f} ± {np.std(probes):.4f}"
    assert table_cell(md, "Linear-probe MSE (latent to true actions)", "LAOM", "LAMs") == "6"  # 12 records, 6 LAMs

    summary = json.loads((out / "summary.json").read_text())
    assert summary["normalized"]["average"]["laom"]["4"]["mean"] == pytest.approx(np.mean(by_hand(None, "laom", 4)))
    assert summary["normalizers"]["walker-run"]["value"] == 200.0
    assert summary["normalizers"]["walker-run"]["bc_full_return"]["mean"] == pytest.approx(200.0)
    assert summary["paper"]["normalized_return_average"]["bc"][-1] == 0.26
    # One row per run (the stale record superseded), each with its normaliser beside it.
    rows = summary["rows"]
    assert len(rows) == len(runs)
    (row,) = [r for r in rows if (r["task"], r["method"], r["labeled"], r["seed"]) == ("walker-run", "laom", 4, 1)]
    (run,) = [r for r in runs if (r["task"], r["method"], r["labeled"], r["seed"]) == ("walker-run", "laom", 4, 1)]
    assert row["return"] == run["return_mean"] and row["normalized_return"] == run["normalized_return"]
    assert row["probe_rel"] == pytest.approx(run["action_probe_mse"] / run["action_probe_baseline_mse"])
    assert row["bc_full_return"] == pytest.approx(200.0) and "expert_return" in row
    # Each row names its LAM, so a reader counts LAMs as the probe table does (6, not 12).
    assert len({r["lam"] for r in rows if r["method"] == "laom"}) == 6
    assert all(r["lam"] is None for r in rows if r["method"] == "bc")


def test_report_figure_lines(tmp_path: Path) -> None:
    agg = rp.aggregate(records(synthetic_runs()), {"tasks": ["walker-run", "cheetah-run"]})
    fig = rp.figure_returns(agg, paper=False)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["walker-run", "cheetah-run", "average over tasks"]  # sweep.yaml's task order
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 2, 2]  # one mean line per method
    assert all(len(ax.collections) == 2 for ax in fig.axes)  # one shaded band per method
    with_paper = rp.figure_returns(rp.aggregate(records(synthetic_runs()), paper=True), paper=True)
    # The paper's curves get a panel (and a scale) of their own; ours keep theirs.
    assert [len(ax.get_lines()) for ax in with_paper.axes] == [2, 2, 2, 2]
    assert with_paper.axes[-1].get_title().startswith("paper")
    assert not any(ln.get_linestyle() == "--" for ax in with_paper.axes[:-1] for ln in ax.get_lines())
    dashed = [ln for ln in with_paper.axes[-1].get_lines() if ln.get_linestyle() == "--"]
    assert [list(ln.get_ydata()) for ln in dashed] == [list(paper.NORMALIZED_RETURN[m]) for m in ("bc", "laom")]
    assert with_paper.axes[0].get_xscale() == "log"
    probe = rp.figure_probe(agg)
    assert len(probe.axes[0].patches) == 1  # laom only: bc has no LAM
    # One task: the task's panel and the paper's.
    one = rp.aggregate(records([r for r in synthetic_runs() if r["task"] == "cheetah-run"]), paper=True)
    fig = rp.figure_returns(one, paper=True)
    assert len(fig.axes) == 2 and [len(ax.get_lines()) for ax in fig.axes] == [2, 2]


def test_probe_figure_relative_to_chance_with_n_per_bar() -> None:
    from matplotlib.container import ErrorbarContainer

    agg = rp.aggregate(records(synthetic_runs()))
    data = rp.probe_bars(agg)
    # One bar per LAM method, on the scale of MSE / chance (each LAM over its own chance).
    expected = sorted((0.1 + 0.01 * seed + 0.1 * ti) / 0.5 for ti in range(2) for seed in range(3))
    assert data["relative"] and data["chance"] == 1.0
    assert sorted(data["bars"]["laom"]["values"]) == pytest.approx(expected)
    assert data["bars"]["laom"]["n"] == 6
    ax = rp.figure_probe(agg).axes[0]
    bottom, top = ax.get_ylim()
    # The axis starts near the data, not at 0, and the chance line is inside the plot.
    assert 0 < bottom < min(expected) and max(expected) < 1.0 < top
    assert any(list(ln.get_ydata()) == [1.0, 1.0] for ln in ax.get_lines())
    assert ax.patches[0].get_y() + ax.patches[0].get_height() == pytest.approx(np.mean(expected))
    assert "n=6" in [t.get_text() for t in ax.texts]
    assert sum(isinstance(c, ErrorbarContainer) for c in ax.containers) == 1  # 6 LAMs: a std
    # A single seed: one LAM per method, no error bar, and n=1 written on the bar.
    single = [r for r in synthetic_runs() if r["seed"] == 0 and r["task"] == "cheetah-run"]
    single += [{**r, "method": "lapo", "action_probe_mse": 0.45} for r in single if r["method"] == "laom"]
    ax = rp.figure_probe(rp.aggregate(records(single))).axes[0]
    assert not any(isinstance(c, ErrorbarContainer) for c in ax.containers)
    assert [t.get_text() for t in ax.texts if t.get_text().startswith("n=")] == ["n=1", "n=1"]
    assert ax.get_ylim()[1] > 1.0  # chance (1.0) is visible above the bars (0.2, 0.9)
    # Without a chance level the raw MSE is drawn.
    raw = [{k: v for k, v in r.items() if k != "action_probe_baseline_mse"} for r in single]
    assert not rp.probe_bars(rp.aggregate(records(raw)))["relative"]
    assert rp.figure_probe(rp.aggregate(records(raw))).axes[0].get_ylabel().startswith("linear-probe MSE")


def test_report_without_returns_or_normaliser(tmp_path: Path) -> None:
    runs = [{**r, "normalizer": None, "normalized_return": None} for r in synthetic_runs()]
    agg = rp.write_report(write_runs(tmp_path / "raw", runs), tmp_path / "raw-report")
    assert agg["metric"] == "return_mean" and "average" not in agg["normalized"]
    assert rp.figure_returns(agg).axes[0].get_ylabel() == "return"
    no_eval = [{**r, "return_mean": None} for r in runs]
    agg = rp.write_report(write_runs(tmp_path / "none", no_eval), tmp_path / "none-report")
    assert agg["metric"] is None and not (tmp_path / "none-report" / "returns.png").exists()
    assert (tmp_path / "none-report" / "probe_mse.png").is_file()


def test_report_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    one_line_error(["report", str(tmp_path / "missing")], capsys, "no such sweep directory")
    (tmp_path / "empty-dir").mkdir()
    one_line_error(["report", str(tmp_path / "empty-dir")], capsys, "no runs.jsonl")
    (tmp_path / "empty-dir" / "runs.jsonl").write_text("\n")
    one_line_error(["report", str(tmp_path / "empty-dir")], capsys, "no finished runs")
    good = json.dumps(synthetic_runs()[0])
    bad = write_runs(tmp_path / "bad", [])
    (bad / "runs.jsonl").write_text(f"{good}\n{{oops\n{good}\n")
    one_line_error(["report", str(bad)], capsys, "runs.jsonl:2: not a JSON line")
    (bad / "runs.jsonl").write_text(f'{good}\n{{"task": 1}}\n')
    one_line_error(["report", str(bad)], capsys, "runs.jsonl:2: not a run record")
    # A torn last line (a crash mid-append) is ignored.
    (bad / "runs.jsonl").write_text(f'{good}\n{{"task": "chee')
    assert len(read_runs(bad / "runs.jsonl")) == 1


def test_report_of_a_named_variant_sweep(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A second sweep given as NAME=DIR shows up as 'method (NAME)' beside the first."""
    runs = synthetic_runs()
    main_sweep = write_runs(tmp_path / "main", runs)
    variant = [{**r, "normalized_return": r["normalized_return"] + 1.0} for r in runs if r["method"] == "laom"]
    other = write_runs(tmp_path / "variant", variant)
    out = tmp_path / "report"
    assert main(["report", str(main_sweep), f"strong={other}", "--out", str(out)]) == 0
    md = (out / "results.md").read_text()
    values = [r["normalized_return"] for r in variant if (r["task"], r["labeled"]) == ("walker-run", 4)]
    assert table_cell(md, "Normalized return: walker-run", "LAOM (strong)", "4") == f"{np.mean(values):.3f} ± {np.std(values):.3f}"
    assert table_cell(md, "Normalized return: walker-run", "LAOM", "4") != table_cell(md, "Normalized return: walker-run", "LAOM (strong)", "4")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods"] == ["bc", "laom", "laom (strong)"]  # a variant follows its base method
    assert summary["probe_mse"]["laom (strong)"]["n"] == 6
    fig = rp.figure_returns(rp.aggregate(rp.load_sweeps([str(main_sweep), f"strong={other}"])[0]))
    for ax in fig.axes:  # three methods, each band in its line's colour, the variant's not its base's
        lines, bands = ax.get_lines(), ax.collections
        assert len(lines) == len(bands) == 3
        for line, band in zip(lines, bands, strict=True):
            assert np.allclose(matplotlib_rgba(line.get_color()), band.get_facecolor()[0][:3])
        assert lines[1].get_color() != lines[2].get_color()
    # The same runs twice without a name would be mixed up: refused.
    one_line_error(["report", str(main_sweep), str(other)], capsys, "name one of them (NAME=DIR)")
    one_line_error(["report", str(main_sweep), "=x"], capsys, "expected a sweep directory or NAME=DIR")


def test_report_tables_offline_mse_and_latent_bc(tmp_path: Path) -> None:
    """The diagnostic tables: offline action MSE from the run records, latent BC's
    relative loss from its stage summary (skipped when the cache is gone)."""
    runs = synthetic_runs()
    for i, r in enumerate(runs):
        r["offline"] = {"action_mse": 0.3 + 0.01 * i, "constant_action_mse": 0.5}
        if r["method"] == "laom":
            bc_dir = tmp_path / "cache" / f"bc-{i}"
            bc_dir.mkdir(parents=True)
            (bc_dir / "summary.json").write_text(json.dumps({"relative_loss": 0.1 * r["seed"] + 0.001 * i}))
            r["stages"] = {**r["stages"], "bc": {"dir": str(bc_dir)}}
    runs.append({**runs[-1], "task": "walker-run", "labeled": 8, "stages": {"bc": {"dir": str(tmp_path / "gone")}}})
    agg = rp.write_report(write_runs(tmp_path / "sweep", runs), tmp_path / "report")
    md = (tmp_path / "report" / "results.md").read_text()
    off = [r["offline"]["action_mse"] for r in runs[:-1] if (r["task"], r["method"], r["labeled"]) == ("cheetah-run", "bc", 4)]
    assert table_cell(md, "Offline action MSE: cheetah-run", "BC", "4") == f"{np.mean(off):.3f} ± {np.std(off):.3f}"
    rel = [0.1 * r["seed"] + 0.001 * i for i, r in enumerate(runs[:-1]) if (r["task"], r["method"], r["labeled"]) == ("walker-run", "laom", 2)]
    section = "Latent BC: share of latent-action variance left unexplained: walker-run"
    assert table_cell(md, section, "LAOM", "2") == f"{np.mean(rel):.3f} ± {np.std(rel):.3f}"
    assert table_cell(md, section, "LAOM", "8") == "–"  # its stage summary is gone: no value, no error
    assert "| BC |" not in md.split(section)[1].split("\n## ")[0]  # no latent BC in the BC baseline
    assert agg["offline_constant_mse"]["cheetah-run"] == pytest.approx(0.5)


def test_report_learning_curves(tmp_path: Path) -> None:
    """curves.png and summary.json's curves: the LAMs' probe curves (one per distinct LAM)
    and the acting policies' return curves, read from the stage caches; none without them."""
    runs = synthetic_runs()
    agg = rp.write_report(write_runs(tmp_path / "plain", runs), tmp_path / "plain-report")
    assert all(not agg["curves"][kind] for kind in ("probe", "policy", "latent_bc"))
    assert not (tmp_path / "plain-report" / "curves.png").exists()
    assert "curves.png" not in (tmp_path / "plain-report" / "results.md").read_text()  # no link to a missing figure
    for r in list(runs):
        if r["method"] == "laom":
            lam = tmp_path / "cache" / f"lam-{r['task']}-{r['seed']}"
            lam.mkdir(parents=True, exist_ok=True)
            rows = [{"update": u, "samples": 64 * u, "action_probe_rel": 1 - u / 100, "online_probe_rel": None if u == 0 else 0.9}
                    for u in (0, 10, 20)]  # fmt: skip
            (lam / "probe_curve.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
            bc = tmp_path / "cache" / f"bc-{r['task']}-{r['seed']}"  # one latent BC per LAM
            bc.mkdir(parents=True, exist_ok=True)
            (bc / "summary.json").write_text(json.dumps({"stage": "bc", "latent_variance": 2.0}))
            (bc / "metrics.jsonl").write_text("".join(json.dumps({"update": u, "loss": 2.0 / u}) + "\n" for u in (1, 2, 4)))
            # its acting policy's curve: a decoder per budget, scored per latent-BC snapshot
            dec = tmp_path / "cache" / f"decoder-{r['task']}-{r['labeled']}-{r['seed']}"
            dec.mkdir(parents=True, exist_ok=True)
            (dec / "curve.jsonl").write_text("".join(json.dumps({"update": u, "return_mean": 3.0 * u}) + "\n" for u in (2, 4)))
            r["stages"] = {"lam": {"dir": str(lam)}, "bc": {"dir": str(bc)}, "decoder": {"dir": str(dec)}}
            # laom-labels trains a LAM per budget: one probe curve each, not one per seed.
            sup = tmp_path / "cache" / f"lam-sup-{r['task']}-{r['labeled']}-{r['seed']}"
            sup.mkdir(parents=True, exist_ok=True)
            (sup / "probe_curve.jsonl").write_text(json.dumps({"update": 5, "samples": 320, "action_probe_rel": r["labeled"] / 10}) + "\n")
            runs.append({**r, "method": "laom-labels", "stages": {"lam": {"dir": str(sup)}}})
        if r["method"] == "bc-full":
            bc = tmp_path / "cache" / f"bc-full-{r['task']}-{r['seed']}"
            bc.mkdir(parents=True, exist_ok=True)
            rows = [{"update": u, "return_mean": 10.0 * u, "offline_action_mse": 0.5 / u} for u in (1, 2)]
            (bc / "curve.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
            r["stages"] = {"bc-baseline": {"dir": str(bc)}}
    agg = rp.write_report(write_runs(tmp_path / "sweep", runs), tmp_path / "report")
    assert set(agg["curves"]["probe"]) == {"laom", "laom-labels"} and len(agg["curves"]["probe"]["laom"]) == 6  # 2 tasks x 3 seeds
    assert agg["curves"]["probe"]["laom"]["cheetah-run seed 1"][1]["action_probe_rel"] == pytest.approx(0.9)
    assert len(agg["curves"]["probe"]["laom-labels"]) == 12  # x 2 budgets
    assert agg["curves"]["probe"]["laom-labels"]["walker-run seed 2, 4 labelled"][0]["action_probe_rel"] == pytest.approx(0.4)
    latent = agg["curves"]["latent_bc"]
    assert set(latent) == {"laom"} and len(latent["laom"]) == 6
    assert [p["relative_loss"] for p in latent["laom"]["cheetah-run seed 0"]] == pytest.approx([1.0, 0.5, 0.25])
    assert set(agg["curves"]["policy"]) == {"laom", "bc-full"} and len(agg["curves"]["policy"]["bc-full"]) == 6
    assert agg["curves"]["policy"]["laom"]["cheetah-run 2 labelled, seed 0"][1]["return_mean"] == 12.0
    assert agg["curves"]["meta"]["policy"]["laom"]["cheetah-run 2 labelled, seed 0"]["labeled"] == 2
    assert agg["curves"]["meta"]["probe"]["laom-labels"]["walker-run seed 2, 4 labelled"]["seed"] == 2
    # Each probe curve carries its LAM's final probe (the tables' figure, fitted on more
    # transitions than the curve's points), drawn as a star at the curve's end.
    final = agg["curves"]["meta"]["probe"]["laom"]["walker-run seed 1"]
    assert final["final_probe_rel"] == pytest.approx((0.1 + 0.01 + 0.1) / 0.5)
    stars = [line for ax in rp.figure_curves(agg).axes for line in ax.get_lines() if line.get_marker() == "*"]
    assert len(stars) == 6 + 12 and any(line.get_ydata()[0] == pytest.approx(0.42) for line in stars)
    assert (tmp_path / "report" / "curves.png").is_file()
    # results.md shows each figure it wrote under the tables it draws.
    md = (tmp_path / "report" / "results.md").read_text()
    for name in ("returns.png", "probe_mse.png", "curves.png"):
        assert f"]({name})" in md, name
    assert "## Learning curves" in md and md.index("](probe_mse.png)") > md.index("## Linear-probe MSE")
    # Small multiples: a block per task (and setting), each with the probe, latent BC and a
    # return panel per labelled budget, BC-full's curve in every one of them.
    fig = rp.figure_curves(agg)
    titles = [ax.get_title() for ax in fig.axes if ax.axison]
    budgets = sorted({r["labeled"] for r in runs if r["method"] == "laom"})
    assert len(titles) == 2 * (2 + len(budgets))
    assert sum("LAM probe" in t and "walker-run" in t for t in titles) == 1
    returns = [ax for ax in fig.axes if f"{budgets[0]} labelled" in ax.get_title() and "cheetah-run" in ax.get_title()]
    assert {text.get_text() for text in returns[0].get_legend().get_texts()} == {"LAOM", "BC (full data)"}
    # Offline-only curves (the demo's BC-full) are drawn as action error / chance, with no
    # empty panel: the figure's policy axis carries the runs' lines.
    for r in runs:
        stage = {"bc-full": "bc-baseline", "laom": "decoder"}.get(r["method"])
        if stage in r.get("stages", {}):
            rows = [{"update": u, "offline_action_mse": 0.5 / u, "constant_action_mse": 0.6} for u in (1, 2)]
            (Path(r["stages"][stage]["dir"]) / "curve.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    agg = rp.write_report(write_runs(tmp_path / "sweep2", runs), tmp_path / "report2")
    fig = rp.figure_curves(agg)
    policy_ax = next(ax for ax in fig.axes if "Acting policies" in ax.get_title())
    assert any("Latent BC" in ax.get_title() for ax in fig.axes)
    assert "held-out" in policy_ax.get_title()
    ys = sorted(y for line in policy_ax.get_lines() for y in line.get_ydata() if y != 1.0)
    assert ys[0] == pytest.approx(0.25 / 0.6) and ys[-1] == pytest.approx(0.5 / 0.6)
    # A block gets a return panel only at the budgets its own policies ran (a sweep without
    # distractors at one budget: one panel, not BC-full's curve alone in the others).
    fewer = [r for r in runs if not (r["task"] == "walker-run" and r["labeled"] == budgets[0])]
    fig = rp.figure_curves(rp.write_report(write_runs(tmp_path / "sweep3", fewer), tmp_path / "report3"))
    titles = [ax.get_title() for ax in fig.axes if ax.axison]
    assert len(titles) == (2 + len(budgets)) + (2 + len(budgets) - 1)
    assert not any(f"{budgets[0]} labelled" in t and "walker-run" in t for t in titles)
    assert sum(f"{budgets[-1]} labelled" in t and "walker-run" in t for t in titles) == 1


def matplotlib_rgba(c: str) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    return to_rgb(c)


# --------------------------------------------------------------------------- planning


def config(**kw: object) -> SweepConfig:
    base = dict(tasks=["t-a"], methods=["bc", "lapo", "laom-labels"], labeled=[2, 8], seeds=[0, 1],
                data={"t-a": "/d"}, eval_data={"t-a": ""})  # fmt: skip
    return SweepConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_plan_jobs_order_and_dependencies() -> None:
    jobs = plan_jobs(config())
    ids = [j.id for j in jobs]
    assert ids[:2] == ["t-a/bc-full/full/s0", "t-a/bc-full/full/s1"]  # the normaliser first
    assert len(jobs) == 2 + 3 * 2 * 2 and len(set(ids)) == len(ids)
    budgets = [j.labeled for j in jobs[2:]]
    assert budgets == sorted(budgets)  # small budgets of every method first
    deps = {j.id: j.after for j in jobs}
    # lapo's larger budgets wait for the run that trains their shared LAM and latent BC ...
    assert deps["t-a/lapo/8/s1"] == ["t-a/lapo/2/s1"] and deps["t-a/lapo/2/s1"] == []
    # ... the others read the labelled file in their first stage: nothing to share.
    assert deps["t-a/laom-labels/8/s0"] == [] and deps["t-a/bc/8/s0"] == []
    position = {j: i for i, j in enumerate(ids)}
    assert all(position[d] < position[j] for j, ds in deps.items() for d in ds)
    # Resumed with lapo/2 done: the first unfinished budget leads the group instead.
    todo = link_shared([j for j in jobs if j.id != "t-a/lapo/2/s1"])
    assert {j.id: j.after for j in todo}["t-a/lapo/8/s1"] == []
    assert {j.id: j.after for j in todo}["t-a/lapo/8/s0"] == ["t-a/lapo/2/s0"]
    # No evaluation or no auto normaliser: no bc-full runs unless asked for.
    assert not any(j.method == "bc-full" for j in plan_jobs(config(episodes=0)))
    assert not any(j.method == "bc-full" for j in plan_jobs(config(normalizer="paper")))
    assert sum(j.method == "bc-full" for j in plan_jobs(config(methods=["bc-full"], normalizer="none"))) == 2


def test_job_keys(tmp_path: Path) -> None:
    data = square(tmp_path / "d.h5", 2, 10, seed=0)
    cfg = config(data={"t-a": str(data)})
    jobs = {j.id: j for j in plan_jobs(cfg)}
    key = job_key(cfg, jobs["t-a/lapo/2/s0"], "")
    assert key == job_key(cfg, jobs["t-a/lapo/2/s0"], "")
    assert key != job_key(cfg, jobs["t-a/lapo/2/s1"], "")
    assert key != job_key(config(data={"t-a": str(data)}, overrides=["--lam.latent_dim", "8"]), jobs["t-a/lapo/2/s0"], "")
    # A run's own result depends neither on the seed list nor on the normaliser (both are
    # re-applied to recorded lines), so adding seeds re-runs nothing ...
    for other in (config(data={"t-a": str(data)}, seeds=[0, 1, 2]), config(data={"t-a": str(data)}, normalizer="none")):
        assert key == job_key(other, jobs["t-a/lapo/2/s0"], "")
    # ... and an override for a stage a method does not have leaves its key alone.
    full = jobs["t-a/bc-full/full/s0"]
    assert job_key(cfg, full, "") == job_key(config(data={"t-a": str(data)}, seeds=[0, 1, 2], normalizer="paper",
                                                          overrides=["--lam.latent_dim", "8"]), full, "")  # fmt: skip


def test_schedule_runs_dependencies_first_and_skips_after_failure() -> None:
    jobs = plan_jobs(config(methods=["lapo", "bc"], labeled=[2, 4, 8], seeds=[0], normalizer="none"))
    events: list[tuple[str, str]] = []
    lock = threading.Lock()

    def run(job: Job) -> dict:
        with lock:
            events.append(("start", job.id))
        time.sleep(0.01)
        if job.id == "t-a/bc/4/s0":
            raise LaomError("boom")
        with lock:
            events.append(("end", job.id))
        return {"ok": job.id}

    for executor, parallel in ((InlineExecutor(), 1), (ThreadPoolExecutor(3), 3)):
        events.clear()
        seen: list[Outcome] = []
        outcomes = schedule(jobs, executor, parallel, lambda ex, j: ex.submit(run, j), seen.append)
        executor.shutdown()
        assert len(outcomes) == len(jobs) == len(seen)
        errors = {o.job.id: o.error for o in outcomes if o.error}
        assert errors == {"t-a/bc/4/s0": "LaomError: boom"}
        order = [(kind, j) for kind, j in events]
        for follower in ("t-a/lapo/4/s0", "t-a/lapo/8/s0"):
            assert order.index(("end", "t-a/lapo/2/s0")) < order.index(("start", follower))
    # A failed leader: its followers are skipped, not started.
    lapo = [j for j in jobs if j.method == "lapo"]

    def fail_leader(job: Job) -> dict:
        if job.labeled == 2:
            raise RuntimeError("no LAM")
        return {}

    outcomes = schedule(lapo, InlineExecutor(), 1, lambda ex, j: ex.submit(fail_leader, j), lambda o: None)
    assert [o.error for o in outcomes] == ["RuntimeError: no LAM", "skipped: t-a/lapo/2/s0 failed", "skipped: t-a/lapo/2/s0 failed"]


def test_normalizers() -> None:
    cfg = config(seeds=[0, 1])
    norms = Normalizers(cfg)
    assert not norms.known("t-a") and norms.value("t-a") is None
    norms.add(RunRecord(task="t-a", method="bc-full", seed=0, return_mean=300.0))
    assert not norms.known("t-a") and norms.value("t-a") == 300.0  # so far: seed 0's
    norms.add(RunRecord(task="t-a", method="bc-full", seed=1, return_mean=500.0))
    assert norms.known("t-a") and norms.value("t-a") == 400.0
    run = norms.apply(RunRecord(task="t-a", method="bc", seed=0, return_mean=100.0, return_std=20.0))
    assert run.normalized_return == 0.25 and run.normalized_std == 0.05 and run.normalizer == 400.0
    zero = Normalizers(config(seeds=[0]))
    zero.add(RunRecord(task="t-a", method="bc-full", seed=0, return_mean=0.0))
    assert zero.known("t-a") and zero.apply(RunRecord(task="t-a", method="bc", seed=0, return_mean=1.0, return_std=0.0)).normalized_return is None
    assert Normalizers(config(tasks=["cheetah-run"], normalizer="paper")).value("cheetah-run") == 823.0
    assert Normalizers(config(normalizer=check_normalizer("250"))).value("t-a") == 250.0
    assert Normalizers(config(normalizer="none")).value("t-a") is None
    with pytest.raises(LaomError, match="non-zero"):
        check_normalizer("0")
    with pytest.raises(LaomError, match="auto, paper, none, a number or a sweep directory"):
        check_normalizer("bc")


def test_runs_are_recorded_before_every_seeds_bc_full_and_re_divided_after(tmp_path: Path) -> None:
    """A finished run is written at once: divided by the bc-full seeds finished so far
    (none yet: not normalised), and every line again when another seed's bc-full ends."""
    from laom.experiments.normalizers import renormalize

    runs_file = tmp_path / "runs.jsonl"
    norms = Normalizers(config(seeds=[0, 1]))
    early = norms.apply(RunRecord(task="t-a", method="bc", labeled=2, seed=1, return_mean=100.0, return_std=10.0))
    assert early.normalizer is None and early.normalized_return is None
    append_run(runs_file, early)
    for seed, value, expected in ((0, 200.0, 0.5), (1, 600.0, 0.25)):
        full = RunRecord(task="t-a", method="bc-full", seed=seed, return_mean=value, return_std=0.0)
        norms.add(full)
        append_run(runs_file, norms.apply(full))
        assert renormalize(runs_file, norms) >= 1
        bc = next(r for r in read_runs(runs_file) if r.method == "bc")
        assert bc.normalized_return == pytest.approx(expected) and bc.normalized_std == pytest.approx(expected / 10)
    assert norms.known("t-a") and renormalize(runs_file, norms) == 0


def test_normalizer_from_another_sweep(tmp_path: Path, data: Path, capsys: pytest.CaptureFixture) -> None:
    """A variant sweep divides by the main sweep's normaliser, as that sweep recorded it."""
    main_sweep = write_runs(tmp_path / "main", [
        {"task": "t-a", "method": "bc-full", "labeled": None, "seed": 0, "return_mean": 40.0, "normalizer": 40.0},
        {"task": "t-a", "method": "bc", "labeled": 2, "seed": 0, "return_mean": 4.0, "normalizer": 40.0},
        {"task": "t-a", "method": "bc", "labeled": 2, "seed": 0, "return_mean": 4.0, "normalizer": 45.0},  # re-normalised
        {"task": "t-b", "method": "bc", "labeled": 2, "seed": 0, "return_mean": 4.0, "normalizer": None},
    ])  # fmt: skip
    spec = check_normalizer(str(main_sweep))
    assert spec == f"sweep:{main_sweep.resolve()}" and check_normalizer(spec) == spec
    norms = Normalizers(config(normalizer=spec, tasks=["t-a"]))
    assert norms.known("t-a") and norms.apply(RunRecord(task="t-a", method="bc", seed=0, return_mean=9.0, return_std=0.0)).normalized_return == 0.2
    # The variant's task must have a normaliser there: refused before any training.
    one_line_error(sweep_args(data, tmp_path / "variant", "--normalizer", str(main_sweep)), capsys, "that sweep has no normaliser for")
    (tmp_path / "not-a-sweep").mkdir()
    (tmp_path / "auto").mkdir()  # a folder named like a keyword does not hijack it
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        assert check_normalizer("auto") == "auto"
    one_line_error(sweep_args(data, tmp_path / "v2", "--normalizer", str(tmp_path / "not-a-sweep")), capsys, "no runs.jsonl")


def test_adding_a_seed_renormalizes_recorded_runs(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    one = Normalizers(config(seeds=[0]))
    rows = [{"task": "t-a", "method": "bc-full", "labeled": None, "seed": 0, "return_mean": 300.0, "return_std": 0.0},
            {"task": "t-a", "method": "bc", "labeled": 2, "seed": 0, "return_mean": 150.0, "return_std": 30.0}]  # fmt: skip
    for row in rows:
        one.add(RunRecord.from_json(row))
    path.write_text("".join(json.dumps(one.apply(RunRecord.from_json(r)).to_json()) + "\n" for r in rows) + '{"torn')
    assert renormalize(path, one) == 0  # nothing changed: the file is left alone
    two = Normalizers(config(seeds=[0, 1]))
    two.add(RunRecord.from_json(rows[0]))
    assert renormalize(path, two) == 0  # seed 1's bc-full not finished: not known yet
    two.add(RunRecord.from_json({**rows[0], "seed": 1, "return_mean": 600.0}))
    assert renormalize(path, two) == 2
    lines = path.read_text().splitlines()
    assert json.loads(lines[1])["normalized_return"] == 150.0 / 450.0 and lines[-1] == '{"torn'


# --------------------------------------------------------------------------- sweep inputs, resume


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("sweep-data")
    return walker(d / "walker-stand.h5")


def sweep_args(data: Path, out: Path, *extra: str, methods: str = "bc,lapo", labeled: str = "1,2") -> list[str]:
    return ["sweep", "--tasks", "walker-stand", "--methods", methods, "--labeled", labeled, "--seeds", "0",
            "--data", str(data), "--out", str(out), "--episodes", "1", "--max-steps", "4", "--no-progress",
            *TINY, *extra]  # fmt: skip


def test_sweep_bad_input(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "s"
    one_line_error(sweep_args(data, out, methods="bc,lapx"), capsys, "unknown method lapx")
    one_line_error(sweep_args(data, out, labeled="2,8"), capsys, "--labeled 8: ")
    one_line_error(sweep_args(data, out, labeled="0,2"), capsys, "0 is below 1")
    one_line_error(sweep_args(tmp_path / "none.h5", out), capsys, "no such file")
    args = sweep_args(data, out)
    args[args.index("--tasks") + 1] = "walker-stand,cheetah-run"
    one_line_error(args, capsys, "use a template with {task}")
    args[args.index("--tasks") + 1] = "cheetah-run"
    one_line_error(args, capsys, "holds walker-stand data, not cheetah-run")
    one_line_error(sweep_args(data, out, "--seed", "3"), capsys, "sets every stage's seed")
    one_line_error(sweep_args(data, out, "--bogus", "3"), capsys, "unknown option --bogus")
    one_line_error(sweep_args(data, out, "--lam.bogus", "3"), capsys, "unknown option --bogus")
    one_line_error(sweep_args(data, out, "--dec.hidden_dim", "3"), capsys, "no stage 'dec'")
    # Settings of stages these methods lack are ignored (one command line for any methods).
    assert check_overrides(["bc", "lapo"], ["--idm_updates", "3", "--idm.idm_batch_size", "4", "--lam.latent_dim", "8"]) == [
        "--idm_updates", "--idm.idm_batch_size"
    ]  # fmt: skip
    assert check_overrides(["bc"], ["--idm.epochs", "3", "--idm-bc.epochs", "3"]) == ["--idm.epochs", "--idm-bc.epochs"]
    assert check_overrides(["idm"], ["--idm.epochs", "3", "--idm-bc.epochs", "3", "--idm_updates", "3"]) == []
    one_line_error(sweep_args(data, out, "--normalizer", "paper"), capsys, "no BC-full return for walker-stand")
    assert not out.exists()  # nothing is created before the inputs are checked


def test_idm_settings_of_a_sweep_keep_their_run_keys() -> None:
    """The IDM baseline was one stage `idm`: a sweep's `--idm.FIELD` settings (the
    study's `--idm.epochs 8 --idm.max_trajectories 100`) still concern it, in the same
    words, so its run keys and the runs.jsonl lines recorded under them stay valid."""
    tokens = ["--idm.epochs", "8", "--idm.max_trajectories", "100", "--idm.idm_updates", "3", "--bc.epochs", "8",
              "--idm-bc.use_aug", "false", "--frame_stack", "2"]  # fmt: skip
    assert overrides_for("idm", tokens) == [
        "--idm.epochs", "8", "--idm.max_trajectories", "100", "--idm.idm_updates", "3", "--idm-bc.use_aug", "false",
        "--frame_stack", "2"]  # fmt: skip
    assert overrides_for("lapo", tokens) == ["--bc.epochs", "8", "--frame_stack", "2"]


def test_sweep_and_pipeline_read_stage_settings_alike(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """One reader (override_items) for laom train, pipeline and sweep: a list typed as
    words reaches a sweep's runs as it reaches a pipeline's stages."""
    tokens = ["--encoder_channels", "8", "16", "--lam.frame_stack=2", "--idm.idm_updates", "3", "--progress"]
    assert list(override_items(tokens, "usage")) == [
        ("encoder_channels", ["8", "16"]), ("lam.frame_stack", ["2"]), ("idm.idm_updates", ["3"]), ("progress", []),
    ]  # fmt: skip
    with pytest.raises(LaomError, match=r"unexpected argument '--' \(usage\)"):
        list(override_items(["--seed", "1", "--", "stray"], "usage"))
    with pytest.raises(LaomError, match=r"unexpected argument 'stray' \(usage\)"):
        list(override_items(["stray"], "usage"))
    # The sweep keeps what laom reads, in the pipeline's own words.
    kept = overrides_for("laom", tokens)
    assert kept == ["--encoder_channels", "8", "16", "--lam.frame_stack", "2", "--progress"]
    stages = chain("laom", str(data), str(data), "")
    routed = split_overrides(kept, stages, "laom")
    assert routed == split_overrides(tokens, stages, "laom", [])
    assert routed["lam"][:5] == ["--encoder_channels", "8", "16", "--frame_stack", "2"]
    # Words after a field are its values, judged by its type, in the sweep as in the
    # pipeline, before anything is made.
    out = tmp_path / "s"
    one_line_error(sweep_args(data, out, "--lam.latent_dim", "8", "stray"), capsys, "--latent_dim takes one value, got 2")
    assert not out.exists()


def test_sweep_config_mismatch_is_refused(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "s"
    cfg = make_config("walker-stand", "bc,lapo", "1,2", "0", str(data), episodes=1, max_steps=4, overrides=TINY)
    assert open_sweep_dir(out, cfg, force=False) is False
    assert open_sweep_dir(out, cfg, force=False) is False  # same config: a resume
    (out / "runs.jsonl").write_text(json.dumps({"task": "walker-stand", "method": "bc", "labeled": 1, "seed": 0, "run_key": "old"}) + "\n")
    one_line_error(sweep_args(data, out, labeled="1"), capsys, "config.labeled: [1, 2] -> [1]")
    one_line_error(sweep_args(data, out, "--lam.latent_dim", "8"), capsys, "different config")
    # Adding budgets, seeds or methods grows the grid: every recorded run stays valid.
    grown = SweepConfig(**{**cfg.to_dict(), "labeled": [1, 2, 3], "seeds": [0, 1], "methods": ["bc", "idm", "lapo"]})
    assert open_sweep_dir(out, grown, force=False) is False
    assert "run_key" in (out / "runs.jsonl").read_text()
    grown_other = SweepConfig(**{**grown.to_dict(), "episodes": 2})
    with pytest.raises(LaomError, match="config.episodes: 1 -> 2"):
        open_sweep_dir(out, grown_other, force=False)
    assert open_sweep_dir(out, cfg, force=True) is True  # a smaller grid needs --force
    other = dict(labeled=[1, 2, 3])
    assert open_sweep_dir(out, SweepConfig(**{**cfg.to_dict(), **other}), force=False) is False
    assert drop_stale(out / "runs.jsonl", {"new"}) == 1
    assert (out / "runs.jsonl").read_text() == "" and "old" in (out / "runs.stale.jsonl").read_text()
    # Data written again alike (collected again on a new machine) is the same input;
    # changed data is a different one.
    st = data.stat()
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert open_sweep_dir(out, SweepConfig(**{**cfg.to_dict(), **other}), force=False) is False
    with h5py.File(data, "r+") as f:
        original = f["0/actions"][0, 0]
        f["0/actions"][0, 0] = original + 0.5
    try:
        with pytest.raises(LaomError, match=r"inputs.walker-stand.data.content"):
            open_sweep_dir(out, SweepConfig(**{**cfg.to_dict(), **other}), force=False)
    finally:
        with h5py.File(data, "r+") as f:
            f["0/actions"][0, 0] = original
    stray = tmp_path / "stray"
    write_runs(stray, synthetic_runs()[:1])
    with pytest.raises(LaomError, match="no sweep.yaml"):
        open_sweep_dir(stray, cfg, force=False)


def test_labeled_subsets_are_reused_until_the_source_changes(data: Path, tmp_path: Path) -> None:
    cfg = make_config("walker-stand", "bc", "1,3", "0,1", str(data), episodes=0)
    logs: list[str] = []
    paths = make_labeled(tmp_path, cfg, logs.append)
    assert sorted(paths) == [("walker-stand", n, s) for n in (1, 3) for s in (0, 1)]
    with h5py.File(paths[("walker-stand", 3, 1)]) as f:
        assert len([k for k in f if k.isdigit()]) == 3 and f.attrs["labeled_seed"] == 1
    assert "4 made, 0 reused" in logs[0]
    make_labeled(tmp_path, cfg, logs.append)
    assert "0 made, 4 reused" in logs[1]
    Path(paths[("walker-stand", 1, 0)]).write_bytes(b"not hdf5")
    make_labeled(tmp_path, cfg, logs.append)
    assert "1 made, 3 reused" in logs[2]


def test_one_sweep_per_directory(data: Path, tmp_path: Path) -> None:
    cfg = make_config("walker-stand", "bc", "1", "0", str(data), episodes=0)
    opts = SweepOptions(cfg, str(tmp_path / "s"), progress=False)
    (tmp_path / "s").mkdir()
    with sweep_lock(tmp_path / "s"), pytest.raises(LaomError, match="another laom sweep is running"):
        run_sweep(opts)
    with pytest.raises(LaomError, match="--jobs 0"):
        run_sweep(SweepOptions(cfg, str(tmp_path / "s"), jobs=0))


@pytest.mark.integration
def test_tiny_sweep_end_to_end(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "sweep"
    capsys.readouterr()
    assert main(sweep_args(data, out)) == 0
    log = capsys.readouterr().out
    runs = read_runs(out / "runs.jsonl")
    assert sorted((r.method, r.labeled) for r in runs) == [
        ("bc", 1), ("bc", 2), ("bc-full", None), ("lapo", 1), ("lapo", 2)
    ]  # fmt: skip
    full = next(r for r in runs if r.method == "bc-full")
    assert full.return_mean > 0 and full.normalizer == pytest.approx(full.return_mean)
    for r in runs:
        assert r.normalized_return == pytest.approx(r.return_mean / full.return_mean)
        assert r.wall_s > 0 and Path(r.summary_file).is_file()
    lapo = sorted((r for r in runs if r.method == "lapo"), key=lambda r: r.labeled)
    # The LAM and latent BC are trained once and shared by both budgets; decoders differ.
    assert lapo[0].stages["lam"] == dataclasses.replace(lapo[1].stages["lam"], reused=False)
    assert lapo[1].stages["lam"].reused and lapo[1].stages["bc"].reused
    assert lapo[0].stages["decoder"].dir != lapo[1].stages["decoder"].dir
    assert lapo[0].action_probe_mse is not None
    assert len(list((out / "cache").glob("lam-*"))) == 1 and len(list((out / "cache").glob("decoder-*"))) == 2
    # The sweep seed reaches every stage.
    stage = json.loads((Path(lapo[0].stages["lam"].dir) / "stage.json").read_text())
    assert stage["config"]["seed"] == 0 and "5 to run" in log

    # Same command: nothing runs. A lost record is redone from the cache (every stage reused).
    lines = (out / "runs.jsonl").read_text().splitlines()
    (out / "runs.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    capsys.readouterr()
    assert main(sweep_args(data, out)) == 0
    log = capsys.readouterr().out
    assert "4 already done, 1 to run" in log and "(all stages reused)" in log
    assert len(read_runs(out / "runs.jsonl")) == 5
    assert main(sweep_args(data, out)) == 0
    assert "0 to run" in capsys.readouterr().out

    assert main(["report", str(out), "--out", str(tmp_path / "report"), "--paper"]) == 0
    md = (tmp_path / "report" / "results.md").read_text()
    norm = [r.normalized_return for r in runs if (r.method, r.labeled) == ("bc", 2)]
    assert table_cell(md, "Normalized return: walker-stand", "BC", "2") == f"{norm[0]:.3f}"  # one seed: no spread
    # Compute, from the real stage folders: the one LAM and latent BC serve both LAPO
    # budgets, so the release (every stage retrained per run) trains each twice.
    compute = json.loads((tmp_path / "report" / "summary.json").read_text())["compute"]
    assert [(compute["kinds"][k]["stages"], compute["kinds"][k]["release_trainings"]) for k in ("lam", "bc", "decoder")] == [
        (1, 2), (1, 2), (2, 2)
    ]  # fmt: skip
    assert compute["kinds"]["evaluation"]["release_trainings"] == 5 and compute["missing"] == []
    assert all(f["source"] == "metrics" and f["training_seconds"] > 0 for f in compute["folders"])
    assert table_cell(md, "Compute", "lam", "release: trainings") == "2"

    # Its records (no weights, no data) outlive the machine: they make the same report
    # once the sweep is gone, and restored on a "new machine" the sweep finds its runs
    # done; a new budget trains the LAM again (its weights are gone) and then the rest.
    records = tmp_path / "records"
    assert main(["records", "save", str(out), str(records)]) == 0
    assert (records / "runs.jsonl").is_file() and not [p for p in records.rglob("*") if p.suffix in (".pt", ".h5", ".npy")]
    shutil.move(out, tmp_path / "old-machine")
    assert main(["report", str(records), "--out", str(tmp_path / "report2")]) == 0
    again = json.loads((tmp_path / "report2" / "summary.json").read_text())["compute"]
    assert again["kinds"] == compute["kinds"] and again["missing"] == []
    assert table_cell((tmp_path / "report2" / "results.md").read_text(), "Normalized return: walker-stand", "BC", "2") == f"{norm[0]:.3f}"  # one seed: no spread
    # ... the expert's return too, from the records' inputs.json when the data is gone.
    with h5py.File(data, "r") as f:
        expert = float(f.attrs["dataset_return"])
    assert json.loads((records / "inputs.json").read_text())["walker-stand"]["data"]["dataset_return"] == pytest.approx(expert)
    data.rename(data.with_suffix(".away"))
    try:
        assert main(["report", str(records), "--out", str(tmp_path / "report3")]) == 0
    finally:
        data.with_suffix(".away").rename(data)
    rows = json.loads((tmp_path / "report3" / "summary.json").read_text())["rows"]
    assert rows and all(r["expert_return"] == pytest.approx(expert) for r in rows)
    capsys.readouterr()
    assert main(["records", "restore", str(out), str(records)]) == 0
    assert main(sweep_args(data, out)) == 0
    assert "0 to run" in capsys.readouterr().out
    # --records saves as the sweep goes (and would have restored them too).
    assert main(sweep_args(data, out, "--records", str(records), labeled="1,2,3")) == 0
    assert "2 to run" in capsys.readouterr().out
    log = (out / "logs" / "walker-stand-lapo-3-s0.log").read_text()
    assert "lam.pt missing" in log and "upstream stage trained again" in log
    assert len(read_runs(records / "runs.jsonl")) == 7 and (records / "logs" / "walker-stand-lapo-3-s0.log").is_file()
    shutil.move(out, tmp_path / "second-machine")  # a third machine, the same checkout path
    assert main(sweep_args(data, out, "--records", str(records), labeled="1,2,3")) == 0
    assert "7 already done, 0 to run" in capsys.readouterr().out
    assert main(sweep_args(data, tmp_path / "s4", "--records", str(tmp_path / "report2"))) == 2
    assert "--records" in capsys.readouterr().err


@pytest.mark.integration
def test_tiny_sweep_with_lapo_labels(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`laom sweep --methods lapo,lapo-labels`: LAPO's budgets share its LAM, while
    LAPO+supervision's LAM reads the labels, so each of its budgets trains its own
    chain and none waits for another; the report names it as the registry labels it."""
    cfg = make_config("walker-stand", "lapo,lapo-labels", "1,2", "0", str(data), episodes=0, overrides=TINY)
    deps = {j.id: j.after for j in plan_jobs(cfg)}
    assert deps == {"walker-stand/lapo/1/s0": [], "walker-stand/lapo-labels/1/s0": [],
                    "walker-stand/lapo/2/s0": ["walker-stand/lapo/1/s0"], "walker-stand/lapo-labels/2/s0": []}  # fmt: skip
    out = tmp_path / "sweep"
    capsys.readouterr()
    assert main(sweep_args(data, out, "--episodes", "0", methods="lapo,lapo-labels")) == 0
    runs = read_runs(out / "runs.jsonl")
    assert sorted((r.method, r.labeled) for r in runs) == [
        ("lapo", 1), ("lapo", 2), ("lapo-labels", 1), ("lapo-labels", 2)
    ]  # fmt: skip
    sup = sorted((r for r in runs if r.method == "lapo-labels"), key=lambda r: r.labeled)
    assert not any(s.reused for r in sup for s in r.stages.values())
    assert sup[0].stages["lam"].dir != sup[1].stages["lam"].dir
    assert all(r.action_probe_mse is not None for r in sup)
    lams = sorted(p.name.rsplit("-", 1)[0] for p in (out / "cache").glob("lam-*"))
    assert lams == ["lam-lapo", "lam-lapo-labels", "lam-lapo-labels"]
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    assert "LAPO+supervision" in (tmp_path / "report" / "results.md").read_text()


# --------------------------------------------------------------------------- demo summary


def test_demo_summary_shows_the_expert_and_hides_a_broken_normaliser() -> None:
    from laom.experiments.demo import summary_lines

    runs = [
        RunRecord(task="cheetah-run", method="bc-full", labeled=None, seed=0, return_mean=100.0, return_std=5.0,
                  normalized_return=1.0),
        RunRecord(task="cheetah-run", method="laom", labeled=4, seed=0, return_mean=150.0, return_std=9.0,
                  normalized_return=1.5, action_probe_mse=0.3, action_probe_baseline_mse=0.6),
    ]  # fmt: skip
    rows, notes = summary_lines(runs, expert=400.0)
    assert rows[1] == ["laom", "4", "0.50", "150 ± 9", "38%", "-"]  # BC-full at 25%: no norm.
    assert any("BC-full reached 25% of the expert" in n for n in notes)
    assert any("= 400" in n for n in notes)
    runs[0].return_mean = 300.0
    rows, notes = summary_lines(runs, expert=400.0)
    assert rows[1][-1] == "1.50" and rows[0][4] == "75%"
    assert any("BC-full's (300)" in n for n in notes)
    assert any("every probe is at 0.50-0.50 of chance" in n for n in notes)
    runs[1].action_probe_mse = 0.2  # 0.33 of chance: the latents learned something
    assert not any("of chance, so" in n for n in summary_lines(runs, expert=400.0)[1])
    assert not any(n.startswith("probe order") for n in summary_lines(runs, expert=400.0)[1])  # one method


def test_demo_summary_orders_the_probes_against_the_papers() -> None:
    from laom.experiments.demo import summary_lines

    def run(method: str, probe: float) -> RunRecord:
        return RunRecord(task="cheetah-run", method=method, labeled=4, seed=0, return_mean=10.0, return_std=1.0,
                         action_probe_mse=probe, action_probe_baseline_mse=0.5)  # fmt: skip

    def order(runs: list[RunRecord]) -> str:
        return next(n for n in summary_lines(runs, expert=400.0)[1] if n.startswith("probe order"))

    assert order([run("laom", 0.4), run("laom-labels", 0.35)]) == (
        "probe order: laom-labels 0.70 < laom 0.80; the paper's ordering (laom-labels < laom)"
    )
    assert order([run("laom", 0.4), run("laom-labels", 0.45), run("lapo", 0.3)]).endswith(
        "not the paper's ordering (laom-labels < laom < lapo)"
    )
    # Seeds of one method are averaged; a method outside the paper's three is ranked only.
    assert order([run("laom", 0.4), run("laom", 0.2), run("lapo-labels", 0.1)]) == (
        "probe order: lapo-labels 0.20 < laom 0.60"
    )


def report_with_expert(tmp_path: Path) -> dict:
    """The synthetic sweep's report, with cheetah-run's data recording an expert return of
    400 and walker-run's none."""
    import h5py
    import yaml

    data = tmp_path / "cheetah.hdf5"
    with h5py.File(data, "w") as f:
        f.attrs["dataset_return"] = 400.0
    sweep = write_runs(tmp_path / "sweep", synthetic_runs())
    (sweep / "sweep.yaml").write_text(yaml.safe_dump({"config": {"tasks": ["cheetah-run", "walker-run"],
                                                                 "data": {"cheetah-run": str(data)}}}))  # fmt: skip
    return rp.write_report(sweep, tmp_path / "report")


def test_report_scores_returns_between_a_random_policy_and_the_expert(tmp_path: Path) -> None:
    """D4RL-style scores beside the paper's quotient: 0 is a uniform random policy measured
    on the task, 100 the dataset's expert; a task without an expert return gets none."""
    from laom.envs.tasks import RANDOM_POLICY_EPISODES, random_policy_returns

    agg = report_with_expert(tmp_path)
    floor = agg["random_return"]["cheetah-run"]
    assert floor["n"] == floor["episodes"] == RANDOM_POLICY_EPISODES
    assert floor["mean"] == pytest.approx(float(np.mean(random_policy_returns("cheetah-run", RANDOM_POLICY_EPISODES))))
    scores = []
    for seed in range(3):
        row = next(r for r in agg["rows"] if (r["task"], r["method"], r["labeled"], r["seed"]) == ("cheetah-run", "bc", 2, seed))
        assert row["random_return"] == floor["mean"]
        scores.append(100 * (row["return"] - floor["mean"]) / (400.0 - floor["mean"]))
        assert row["expert_score"] == pytest.approx(scores[-1])
    assert all(r["expert_score"] is None for r in agg["rows"] if r["task"] == "walker-run")
    md = (tmp_path / "report" / "results.md").read_text()
    expected = f"{np.mean(scores):.1f} ± {np.std(scores):.1f}"
    assert table_cell(md, "Expert-normalised score (D4RL-style): cheetah-run", "BC", "2") == expected
    assert "## Expert-normalised score (D4RL-style): walker-run" not in md
    assert table_cell(md, "Normaliser", "cheetah-run", "random policy's return") == f"{floor['mean']:.1f}"
    full = 100 * (100.0 - floor["mean"]) / (400.0 - floor["mean"])  # BC-full's mean return is 100
    assert f"BC-full scores {full:.1f}." in md


def test_report_puts_the_expert_beside_the_normaliser(tmp_path: Path) -> None:
    """Every normalised table says what it divided by, beside the dataset's expert return."""
    agg = report_with_expert(tmp_path)
    assert agg["expert_return"] == {"cheetah-run": 400.0, "walker-run": None}
    md = (tmp_path / "report" / "results.md").read_text()
    # cheetah's bc-full returns are 99, 100, 101: 25% of the expert, flagged.
    assert ("Normaliser: 100.00 (BC-full's return 100.0 ± 0.8, 25% of the expert; below half: these quotients "
            "say little); the dataset's expert return 400.0.") in md
    assert table_cell(md, "Normaliser", "cheetah-run", "BC-full / expert") == "25% (below 50%: no working normaliser)"
    assert table_cell(md, "Normaliser", "walker-run", "expert return (dataset)") == "–"


def test_sweep_notes_when_its_largest_stages_would_not_fit_together(tmp_path: Path) -> None:
    """Two LAOM LAMs probing at once were OOM-killed on a 24 GB machine: with --jobs 2 the
    sweep says so before it starts, from the peaks its stages recorded."""
    from laom.experiments.sweep import memory_note

    cache = tmp_path / "cache"
    assert memory_note(cache, 2, total_gb=24.0) is None  # nothing recorded yet
    for name, peak in (("lam-laom-a", 12.6), ("decoder-b", 10.9), ("bc-c", None)):
        (cache / name).mkdir(parents=True)
        (cache / name / "summary.json").write_text(json.dumps({"peak_memory_gb": peak}))
    note = memory_note(cache, 2, total_gb=23.0)
    assert note == ("note: --jobs 2: this sweep's largest stages peaked at 12.6 GB (lam-laom-a) + 10.9 GB "
                    "(decoder-b), more than this machine's 23.0 GB if they meet; --jobs 1 runs one stage at a "
                    "time on every core")  # fmt: skip
    assert memory_note(cache, 2, total_gb=24.0) is None  # 23.5 GB fits
    assert memory_note(cache, 3, total_gb=64.0) is None
