"""A whole pipeline, sweep or demo plan is checked before its first stage: one error line,
exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from test_stages import cheetah

from laom.cli import main
from laom.data.compat import check_compatible, data_facts
from laom.errors import LaomError
from laom.training.synthetic import write_moving_square


def refused(args: list[str], capsys: pytest.CaptureFixture, match: str) -> str:
    capsys.readouterr()
    assert main(args) == 2, args
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("laom: error:"), err
    assert match in err, err
    return captured.out


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("plans")
    walker = cheetah(d / "walker.h5", seed=1)
    with h5py.File(walker, "r+") as f:
        f.attrs["domain_name"], f.attrs["task_name"] = "walker", "walk"
    small = cheetah(d / "small.h5", seed=2)  # cheetah-run, but 8x8 frames (the others: 16x16)
    with h5py.File(small, "r+") as f:
        for name in [k for k in f if k.isdigit()]:
            obs = f[name]["obs"][()][:, :8, :8]
            del f[name]["obs"]
            f[name].create_dataset("obs", data=obs)
    gray = cheetah(d / "gray.h5", seed=3)  # frames without the colour axis
    with h5py.File(gray, "r+") as f:
        obs = f["0"]["obs"][()][..., 0]
        del f["0"]["obs"]
        f["0"].create_dataset("obs", data=obs)
    single = cheetah(d / "single.h5", trajectories=2, length=1, seed=4)  # no (o_t, o_t+1) pair
    unknown = cheetah(d / "unknown.h5", seed=7)
    with h5py.File(unknown, "r+") as f:
        f.attrs["task_name"] = "fly"  # no such environment
    return {
        "cheetah": cheetah(d / "cheetah.h5"), "cheetah_b": cheetah(d / "cheetah_b.h5", seed=6),
        "walker": walker, "small": small, "gray": gray, "single": single, "unknown": unknown,
        # Labelled cheetah-run with frames of the same size, but 2-d actions.
        "square": write_moving_square(d / "square.h5", 2, 20, img_hw=16, seed=0, task=("cheetah", "run")),
    }  # fmt: skip


def test_facts_come_from_the_headers(files: dict[str, Path]) -> None:
    facts = data_facts(files["cheetah"], "--data")
    assert (facts.task, facts.img_hw, facts.action_dim, facts.trajectories) == ("cheetah-run", (16, 16), 6, 2)
    assert facts.transitions == 2 * 19
    assert data_facts(files["small"], "--data").img_hw == (8, 8)
    with pytest.raises(LaomError, match=r"--labeled .*gray.h5: trajectory 0 obs must be uint8 \[T,H,W,3\]"):
        data_facts(files["gray"], "--labeled")
    with pytest.raises(LaomError, match="--data .*single.h5: no transitions"):
        data_facts(files["single"], "--data")
    with pytest.raises(LaomError, match="--eval-data .*missing.h5: no such file"):
        data_facts(files["cheetah"].with_name("missing.h5"), "--eval-data")


def test_files_read_together_must_match(files: dict[str, Path]) -> None:
    ok = check_compatible({"--data": str(files["cheetah"]), "--labeled": str(files["cheetah_b"]), "--eval-data": ""})
    assert list(ok) == ["--data", "--labeled"]
    with pytest.raises(LaomError, match="--labeled .*walker.h5 holds walker-walk data but --data .*cheetah.h5 holds cheetah-run"):
        check_compatible({"--data": str(files["cheetah"]), "--labeled": str(files["walker"])})
    with pytest.raises(LaomError, match="--eval-data .*small.h5: 8x8 frames, but --data .* has 16x16"):
        check_compatible({"--data": str(files["cheetah"]), "--eval-data": str(files["small"])})
    with pytest.raises(LaomError, match="--labeled .*square.h5: actions of size 2, but --data .* has 6"):
        check_compatible({"--data": str(files["cheetah"]), "--labeled": str(files["square"])})


def pipeline(files: dict[str, Path], out: Path, labeled: str = "cheetah_b", *extra: str) -> list[str]:
    return ["pipeline", "--method", "laom", "--data", str(files["cheetah"]), "--labeled", str(files[labeled]),
            "--out", str(out), "--episodes", "0", "--no-progress", "--threads", "1", *extra]  # fmt: skip


def test_pipeline_refuses_a_late_stage_s_file_before_training(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from laom.training import pipeline as pl

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a stage ran before the plan was checked")

    monkeypatch.setattr(pl, "run_chain", no_training)
    out = tmp_path / "root"
    # Only the decoder (the third stage) reads --labeled: refused before the LAM trains.
    refused(pipeline(files, out, "walker"), capsys, "--labeled")
    refused(pipeline(files, out, "small"), capsys, "8x8 frames")
    refused(pipeline(files, out, "cheetah_b", "--eval-data", str(files["walker"])), capsys, "--eval-data")
    refused(pipeline(files, out, "single"), capsys, "no transitions")
    # Evaluated online, the task must be one the environments have.
    args = pipeline(files, out, "cheetah_b")
    args[args.index("--data") + 1] = str(files["unknown"])
    args[args.index("--labeled") + 1] = str(files["unknown"])
    args[args.index("--episodes") + 1] = "2"
    refused(args, capsys, "cannot evaluate online")
    assert not out.exists()  # nothing written


def test_sweep_refuses_mismatched_files_before_the_first_run(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "sweep"
    base = ["sweep", "--tasks", "cheetah-run", "--methods", "bc,laom", "--labeled", "1", "--seeds", "0",
            "--data", str(files["cheetah"]), "--out", str(out), "--episodes", "0", "--chunk", "20"]  # fmt: skip
    refused([*base, "--eval-data", str(files["small"])], capsys, "--eval-data")
    refused([*base, "--eval-data", str(files["gray"])], capsys, "obs must be uint8 [T,H,W,3]")
    assert not out.exists()


def test_demo_refuses_bad_settings_before_collecting(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from laom.experiments import demo

    def no_step(argv: list[str]) -> None:
        raise AssertionError(f"the demo ran a step: laom {' '.join(argv)}")

    monkeypatch.setattr(demo, "_run", no_step)
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out)]
    refused([*args, "--methods", "bc,foo"], capsys, "unknown method foo")
    refused([*args, "--labeled", "30"], capsys, "--labeled 30: the demo collects only --episodes 20")
    refused([*args, "--episodes", "0"], capsys, "--episodes 0: expected >= 1")
    refused([*args, "--lam.bogus", "3"], capsys, "--bogus")
    refused([*args, "--task", "cheetah-fly"], capsys, "cheetah-fly")
    refused([*args, "--preset", str(tmp_path / "no-preset")], capsys, "--preset")
    assert not out.exists()


def test_demo_plan_with_its_defaults_passes_and_the_first_step_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusals above mean nothing if a good plan is refused too: the defaults (and
    LAPO) must reach the first collection step."""
    from laom.experiments import demo

    class FirstStep(Exception):
        pass

    steps: list[list[str]] = []

    def first_step(argv: list[str]) -> None:
        steps.append(argv)
        raise FirstStep

    monkeypatch.setattr(demo, "_run", first_step)
    for methods in ([], ["--methods", "bc,lapo,laom,laom-labels"]):
        with pytest.raises(FirstStep):
            main(["demo", "--out", str(tmp_path / "demo"), *methods])
    assert [argv[0] for argv in steps] == ["collect", "collect"]


def test_demo_scores_policies_over_the_collected_episode_length(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --episode-steps below an episode, the expert's return covers that many steps,
    so the sweep's evaluations must stop there too (or '% of expert' compares 1000 steps
    with 60)."""
    from laom.experiments import demo

    class Stop(Exception):
        pass

    steps: list[list[str]] = []

    def record(argv: list[str]) -> None:
        steps.append(argv)
        if argv[0] == "sweep":
            raise Stop

    monkeypatch.setattr(demo, "_run", record)
    for length, expected in (("60", ["--max-steps", "60"]), ("1000", [])):
        steps.clear()
        with pytest.raises(Stop):
            main(["demo", "--out", str(tmp_path / f"demo{length}"), "--episode-steps", length])
        sweep = steps[-1]
        flags = sweep[sweep.index("--max-steps"):sweep.index("--max-steps") + 2] if "--max-steps" in sweep else []
        assert flags == expected


def test_demo_summary_is_plain_unwrapped_text(tmp_path: Path, capsys: pytest.CaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from laom.experiments import demo, report
    from laom.experiments.runs_store import RunRecord

    runs = [RunRecord.from_json(r) for r in (
        {"task": "cheetah-run", "method": "laom-labels", "labeled": 4, "seed": 0, "action_probe_mse": 0.5,
         "action_probe_baseline_mse": 0.6, "return_mean": 30.0, "return_std": 5.0},
        {"task": "cheetah-run", "method": "bc-full", "labeled": None, "seed": 0, "return_mean": 300.0,
         "return_std": 20.0, "normalized_return": 1.0},
    )]  # fmt: skip
    monkeypatch.setattr(report, "load_runs", lambda sweep: (runs, {}))
    demo.print_summary(tmp_path / "sweep", tmp_path / "a-report-folder-with-a-long-name" / ("x" * 80), 90.0, 400.0)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "laom demo: cheetah-run with distractors"
    assert lines[1].split() == ["method", "labels", "probe", "return", "%", "expert", "norm."]
    assert set(lines[2].replace(" ", "")) == {"-"}
    row = lines[3].split()
    assert row[:3] == ["bc-full", "all", "-"] and "75%" in row
    assert any(line.startswith("plots and tables: ") and line.endswith("results.md") for line in lines)
    assert "\x1b" not in out  # no terminal codes in a log
    assert np.isclose(float(lines[4].split()[2]), 0.5 / 0.6, atol=0.005)
