"""The report's Compute section: stage hours from what the stage folders recorded, and
what the paper's release (every stage retrained for every run) would take instead."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_experiments import table_cell, write_runs

from laom.errors import LaomError
from laom.experiments import compute as cp
from laom.experiments import report as rp


def rows(*pairs: tuple[int, float]) -> list[dict]:
    return [{"update": u, "loss": 0.1, "samples_per_s": rate} for u, rate in pairs]


def test_training_seconds_adds_each_process_clock() -> None:
    # One process, uneven speed: rows at 10 s, 30 s and 35 s of training (batch 10).
    clocks = {100: 10.0, 200: 30.0, 300: 35.0}
    assert cp.training_seconds(rows(*((u, u * 10 / t) for u, t in clocks.items())), 10, 100) == (
        pytest.approx(35.0),
        1,
    )
    # Killed after 250 and resumed from the checkpoint at 200 (row 250 dropped), twice as
    # fast: 20 s to update 200, then 10 s from 200 to 400. Read as one process it would be
    # 400 updates at the last rate: 20 s.
    first = rows((100, 100.0), (200, 100.0))
    second = rows((250, 200.0), (300, 200.0), (400, 200.0))
    assert cp.training_seconds(first + second, 10, 200) == (pytest.approx(30.0), 2)
    # Rows every 300 updates, checkpoints every 200: the process logged 300, was killed
    # past its checkpoint at 400, and its successor resumed there. The updates 300..400
    # count at the first process's rate.
    assert cp.training_seconds(rows((300, 100.0), (600, 400.0)), 10, 200) == (
        pytest.approx(30.0 + 10.0 + 5.0),
        2,
    )
    # A process as fast as its predecessor is not told apart, and need not be.
    seconds, _ = cp.training_seconds(rows((100, 100.0), (200, 100.0), (300, 100.0)), 10, 100)
    assert seconds == pytest.approx(30.0)
    assert cp.training_seconds([], 10, 100) == (0.0, 0)


def stage(root: Path, name: str, *, batch: int, metrics: list[dict], updates: int, threads: int = 1,
          checkpoint_every: int = 100, batch_field: str = "batch_size", curve: list[float] | None = None,
          probes: int = 0) -> str:  # fmt: skip
    """A cached stage folder with a config, metrics rows and a summary."""
    folder = root / "cache" / name
    folder.mkdir(parents=True)
    config = {
        "threads": threads,
        "checkpoint_every": checkpoint_every,
        "log_every": 50,
        batch_field: batch,
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
    (folder / "summary.json").write_text(
        json.dumps({"updates": updates, "samples_per_s": metrics[-1]["samples_per_s"]})
    )
    if curve is not None:
        lines = [
            {"update": 100 * (i + 1), "return_mean": 1.0, "eval_seconds": s}
            for i, s in enumerate(curve)
        ]
        (folder / "curve.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    if probes:
        lines = [{"update": 50 * i, "samples": 50 * i * batch, "action_probe_rel": 0.9, "online_probe_rel": None}
                 for i in range(probes)]  # fmt: skip
        (folder / "probe_curve.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return str(folder)


def evaluated(root: Path, name: str, seconds: float) -> str:
    """A run's pipeline summary naming its evaluation file, which took ``seconds``."""
    file = root / "cache" / f"eval-{name}.json"
    file.write_text(json.dumps({"mean": 1.0, "episodes": 5, "seconds": seconds}))
    summary = root / "cache" / f"pipeline-{name}.json"
    summary.write_text(json.dumps({"eval_file": str(file)}))
    return str(summary)


def sweep(root: Path, threads: int = 1) -> Path:
    """LAOM at budgets 2 and 8 (one LAM and one latent BC, a decoder each) and BC-full,
    whose stage was resumed; hours chosen round."""
    # LAM 1 h (100 updates x 36 / 1 per s), latent BC 0.5 h, decoders 0.1 h each
    lam = stage(root, "lam", batch=36, metrics=rows((50, 1.0), (100, 1.0)), updates=100, probes=3)
    bc = stage(root, "bc", batch=18, metrics=rows((50, 1.0), (100, 1.0)), updates=100)
    decoders = [stage(root, f"decoder-{n}", batch=72, metrics=rows((50, 10.0)), updates=50, threads=threads)
                for n in (2, 8)]  # fmt: skip
    # BC-full: 1 h to update 100, then resumed twice as fast: 0.5 h; curves 0.05 h
    full = stage(root, "bc-baseline", batch=36, metrics=rows((50, 1.0), (100, 1.0), (150, 2.0), (200, 2.0)),
                 updates=200, curve=[30.0, 150.0])  # fmt: skip
    runs = [{"task": "cheetah-run", "method": "laom", "labeled": n, "seed": 0, "return_mean": 10.0,
             "stages": {"lam": {"dir": lam, "reused": n == 8}, "bc": {"dir": bc, "reused": n == 8},
                        "decoder": {"dir": decoders[i], "reused": False}},
             "stage_seconds": {"lam": 0.0 if n == 8 else 4000.0, "decoder": 400.0},
             "summary_file": evaluated(root, f"laom-{n}", 360.0 * (i + 1))}
            for i, n in enumerate((2, 8))]  # fmt: skip
    runs.append({"task": "cheetah-run", "method": "bc-full", "labeled": None, "seed": 0, "return_mean": 20.0,
                 "stages": {"bc-baseline": {"dir": full, "reused": False}}, "stage_seconds": {"bc-baseline": 2000.0},
                 "summary_file": evaluated(root, "bc-full", 1080.0)})  # fmt: skip
    return write_runs(root, runs)


def test_report_compute_section(tmp_path: Path) -> None:
    agg = rp.write_report(sweep(tmp_path / "sweep"), tmp_path / "report")
    info = agg["compute"]
    kinds = info["kinds"]
    assert info["unit"] == "CPU-hours (one thread per stage)" and info["runs"] == 3
    # One LAM and one latent BC serve both budgets: the release trains each twice.
    assert kinds["lam"]["stages"] == 1 and kinds["lam"]["release_trainings"] == 2
    assert kinds["lam"]["hours"] == pytest.approx(1.0) and kinds["lam"][
        "release_hours"
    ] == pytest.approx(2.0)
    assert kinds["lam"]["probe_points_not_counted"] == 3
    assert (kinds["bc"]["stages"], kinds["bc"]["release_trainings"]) == (1, 2)
    assert kinds["bc"]["release_hours"] == pytest.approx(1.0)
    assert (
        kinds["decoder"]["stages"],
        kinds["decoder"]["updates"],
        kinds["decoder"]["release_trainings"],
    ) == (2, 100, 2)
    assert kinds["decoder"]["release_hours"] == pytest.approx(0.2)
    full = kinds["bc-baseline"]
    assert full["training_hours"] == pytest.approx(1.5) and full["curve_hours"] == pytest.approx(
        0.05
    )
    assert (full["resumed"], full["release_trainings"], full["updates"]) == (1, 1, 200)
    assert kinds["evaluation"]["stages"] == 3 and kinds["evaluation"]["hours"] == pytest.approx(0.6)
    total = info["total"]
    assert total["hours"] == pytest.approx(3.85) and total["release_hours"] == pytest.approx(5.35)
    assert (total["stages"], total["release_trainings"], total["updates"]) == (8, 10, 500)
    assert info["ratio"] == pytest.approx(5.35 / 3.85)
    # The runs' own clocks, beside: the LAM's from the run that trained it (reused False),
    # none for latent BC (no time recorded), the decoders' and BC-full's.
    assert kinds["lam"]["invocation_hours"] == pytest.approx(4000 / 3600)
    assert (kinds["bc"]["invocation_stages"], kinds["decoder"]["invocation_stages"]) == (0, 2)
    md = (tmp_path / "report" / "results.md").read_text()
    section = "Compute"
    assert (
        table_cell(md, section, "lam", "ours") == "1"
        and table_cell(md, section, "lam", "release: trainings") == "2"
    )
    assert table_cell(md, section, "lam", "release: h") == "2.00"
    assert table_cell(md, section, "bc-baseline", "training h") == "1.50"
    assert table_cell(md, section, "evaluation", "total h") == "0.60"
    assert table_cell(md, section, "total", "total h") == "3.85"
    assert table_cell(md, section, "total", "release: h") == "5.35"
    assert "CPU-hours (one thread per stage" in md and "(1.39x)" in md
    assert "3 probe-curve points" in md and "1 stage folder was resumed" in md
    assert "Finished runs only (3 in runs.jsonl)" in md
    # One thread per stage: CPU h are its hours; the evaluations name no machine, so their
    # cores (every core of it) are unknown and left out of CPU h, as the report says.
    assert total["cpu_hours"] == pytest.approx(3.25) and total["cores_unknown"] == 3
    assert "Not in CPU h (no machine recorded to tell the cores held): 3" in md
    assert (
        "4 of 5 folders" in md
        and f"read {(4000 + 800 + 2000) / 3600:.2f} h where this table counts 2.75 h" in md
    )


def test_cpu_hours_count_the_cores_each_stage_held(tmp_path: Path) -> None:
    """The issue's budget is in CPU-hours: a stage on one thread holds one core, one on
    torch's default every core of its machine, an evaluation's workers the whole machine.
    Folders that name no machine are counted at the core count the others' machines have,
    and the report says how many were."""
    root = sweep(tmp_path / "sweep", threads=0)  # the decoders on every core; the rest on one thread
    decoder = root / "cache" / "decoder-2" / "summary.json"
    decoder.write_text(json.dumps({**json.loads(decoder.read_text()), "machine": "Box (4 cores; avx2)"}))
    info = rp.write_report(root, tmp_path / "report")["compute"]
    kinds, total = info["kinds"], info["total"]
    assert kinds["lam"]["cpu_hours"] == pytest.approx(1.0) and kinds["lam"]["release_cpu_hours"] == pytest.approx(2.0)
    assert kinds["decoder"]["cpu_hours"] == pytest.approx(0.2 * 4)  # decoder-8 names no machine: 4 cores too
    assert kinds["evaluation"]["cpu_hours"] == pytest.approx(0.6 * 4)
    assert total["cpu_hours"] == pytest.approx(1.0 + 0.5 + 0.8 + 1.55 + 2.4)
    assert total["release_cpu_hours"] == pytest.approx(2.0 + 1.0 + 0.8 + 1.55 + 2.4)
    assert (info["cores_assumed"], info["cores_assumed_as"], total["cores_unknown"]) == (4, 4, 0)
    md = (tmp_path / "report" / "results.md").read_text()
    assert table_cell(md, "Compute", "total", "CPU h") == "6.25"
    assert table_cell(md, "Compute", "decoder", "release: CPU h") == "0.80"
    assert "4 stage folder(s) or evaluation(s) name no machine" in md and "counted at 4 cores" in md
    assert "7.75 CPU-hours instead of 6.25" in md


def test_report_compute_without_one_thread_or_stage_folders(tmp_path: Path) -> None:
    """A stage with torch's default threads makes every hour a wall hour; a folder that is
    gone is listed, not counted, and the release still counts its trainings. The machines
    the stages' summaries name are listed (a study's sessions may get different CPUs)."""
    root = sweep(tmp_path / "sweep", threads=0)
    lam_summary = next((root / "cache").glob("lam*")) / "summary.json"
    lam_summary.write_text(json.dumps({**json.loads(lam_summary.read_text()), "machine": "Xeon (2 cores; avx512, amx)"}))
    runs = [json.loads(line) for line in (root / "runs.jsonl").read_text().splitlines()]
    runs.append(
        {
            **runs[1],
            "labeled": 32,
            "stages": {**runs[1]["stages"], "decoder": {"dir": str(tmp_path / "gone")}},
        }
    )
    agg = rp.write_report(write_runs(root, runs), tmp_path / "report")
    info = agg["compute"]
    assert info["unit"] == "wall hours" and info["threads"] == [0, 1]
    assert info["missing"] == [str(tmp_path / "gone")]
    assert (
        info["kinds"]["decoder"]["release_trainings"] == 3
        and info["kinds"]["decoder"]["missing"] == 1
    )
    assert info["kinds"]["lam"]["release_trainings"] == 3
    md = (tmp_path / "report" / "results.md").read_text()
    assert "wall hours (the stage configs' threads: 0, 1" in md and "not counted: gone" in md
    assert info["machines"]["Xeon (2 cores; avx512, amx)"] == 1 and info["machines"]["not recorded"] >= 1
    assert "Machines (stage folders): " in md and "Xeon (2 cores; avx512, amx): 1" in md


def test_report_without_stage_records_has_no_compute_table(tmp_path: Path) -> None:
    """Records of an older laom (no stages, no pipeline summary): nothing to count, no section."""
    runs = [{"task": "cheetah-run", "method": "bc", "labeled": 2, "seed": 0, "return_mean": 1.0}]
    agg = rp.write_report(write_runs(tmp_path / "sweep", runs), tmp_path / "report")
    assert agg["compute"]["kinds"]["evaluation"]["runs_without_file"] == 1
    assert agg["compute"]["total"]["stages"] == 0 and agg["compute"]["ratio"] is None
    assert "## Compute" not in (tmp_path / "report" / "results.md").read_text()


def test_curve_points_that_train_a_decoder_count_its_training(tmp_path: Path) -> None:
    """A latent method's curve point trains its own decoder before it is scored; that
    minute is compute the study spent, so it is counted beside the point's evaluation."""
    folder = Path(stage(tmp_path, "decoder-a", batch=32, metrics=rows((50, 1.0), (100, 1.0)), updates=100,
                        curve=[3.0, 4.0]))  # fmt: skip
    points = [json.loads(line) for line in (folder / "curve.jsonl").read_text().splitlines()]
    points[0]["train_seconds"] = 60.0
    (folder / "curve.jsonl").write_text("".join(json.dumps(r) + "\n" for r in points))
    assert cp.stage_cost("decoder", str(folder)).curve_seconds == pytest.approx(67.0)


def test_peak_memory_per_stage_kind_is_its_largest_folder(tmp_path: Path) -> None:
    """The stage summaries' peak memory: per kind the largest folder's (what two stages at
    once would need), the total the largest of all; a report of older folders has none
    and no column."""
    root = sweep(tmp_path / "sweep")
    rp.write_report(root, tmp_path / "old")
    assert "peak memory GB" not in (tmp_path / "old" / "results.md").read_text()
    for name, peak in (("lam", 12.5), ("decoder-2", 3.25), ("decoder-8", 4.5)):
        summary = root / "cache" / name / "summary.json"
        summary.write_text(json.dumps({**json.loads(summary.read_text()), "peak_memory_gb": peak}))
    info = rp.write_report(root, tmp_path / "report")["compute"]
    kinds = info["kinds"]
    assert (kinds["lam"]["peak_memory_gb"], kinds["decoder"]["peak_memory_gb"], kinds["bc"]["peak_memory_gb"]) == (12.5, 4.5, None)
    assert (kinds["decoder"]["peak_memory_folders"], info["total"]["peak_memory_gb"]) == (2, 12.5)
    md = (tmp_path / "report" / "results.md").read_text()
    assert table_cell(md, "Compute", "decoder", "peak memory GB") == "4.5"
    assert table_cell(md, "Compute", "bc", "peak memory GB") == "–"
    assert table_cell(md, "Compute", "total", "peak memory GB") == "12.5"
    assert "(3 of 5 folders recorded one, older laoms did not;" in md


def test_a_whole_run_supersedes_the_probe_only_run_whose_lam_it_copied(tmp_path: Path) -> None:
    """A study runs `--until lam` sweeps first and later whole runs that copy those LAMs
    (the folder keeps its name, which hashes its config). The report keeps the whole run
    and counts the LAM's training once, wherever its copies sit; two different runs under
    one key are still refused."""
    main_root = sweep(tmp_path / "main")
    lam = json.loads((main_root / "runs.jsonl").read_text().splitlines()[0])["stages"]["lam"]["dir"]
    probe_root = tmp_path / "probe"
    (probe_root / "cache").mkdir(parents=True)
    copy = probe_root / "cache" / Path(lam).name
    copy.mkdir()
    for f in Path(lam).iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    probe_only = {"task": "cheetah-run", "method": "laom", "labeled": 2, "seed": 0, "action_probe_mse": 0.3,
                  "stages": {"lam": {"dir": str(copy), "reused": False}}, "stage_seconds": {"lam": 4000.0}}  # fmt: skip
    write_runs(probe_root, [probe_only])
    runs, _ = rp.load_sweeps([str(main_root), str(probe_root)])
    (kept,) = [r for r in runs if (r.method, r.labeled) == ("laom", 2)]
    assert kept.return_mean == 10.0 and "decoder" in kept.stages
    # the probe-only sweep first: the same answer
    runs_reversed, _ = rp.load_sweeps([str(probe_root), str(main_root)])
    assert [r.return_mean for r in runs_reversed if (r.method, r.labeled) == ("laom", 2)] == [10.0]
    info = cp.compute(runs)
    assert info["kinds"]["lam"]["stages"] == 1 and info["kinds"]["lam"]["hours"] == pytest.approx(1.0)
    # A probe-only run of another LAM under the same key is a different run: refused.
    other = probe_root / "cache" / "lam-other"
    copy.rename(other)
    write_runs(probe_root, [{**probe_only, "stages": {"lam": {"dir": str(other), "reused": False}}}])
    with pytest.raises(LaomError, match="name one of them"):
        rp.load_sweeps([str(main_root), str(probe_root)])
