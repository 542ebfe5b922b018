"""IDM baseline runs of the one-stage layout, as laom wrote them at commit bda8351 (IDM and
policy in one folder: RUN/idm/, RUN/bc/, RUN/policy.pt), before the baseline became two
stages (idm, then idm-bc).

tests/fixtures/idm-bda8351 holds such a run's sweep (runs.jsonl, the stage folder, its
pipeline summary; made by tests/fixtures/make_idm_run_by_main.py). Today's laom must
evaluate its policy, report its sweep, train the two stages beside it in the same cache
without touching it, and refuse to train into or from it with one line that says what
it is.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_stages import FAST, TINY_IDM, TINY_IDM_BC, cheetah, fails

from laom.cli import main
from laom.experiments.report import learning_curves
from laom.experiments.runs_store import read_runs
from laom.training.rundir import RunDir
from laom.training.summaries import FitSummary, IDMBCSummary

FIXTURE = Path(__file__).parent / "fixtures" / "idm-bda8351"


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A copy of the fixture's sweep folder, every path its files hold moved to the copy."""
    old = (FIXTURE / "sweep-dir").read_text().strip()
    root = tmp_path / "sweep"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("sweep-dir"))
    for file in root.rglob("*"):
        if file.suffix in (".json", ".jsonl", ".yaml"):
            file.write_text(file.read_text().replace(old, str(root)))
    return root


def one_stage_run(sweep: Path) -> Path:
    (run,) = [p for p in (sweep / "cache").glob("idm-*") if p.is_dir()]
    return run


def test_its_summaries_read_as_todays_records(sweep: Path) -> None:
    run = one_stage_run(sweep)
    summary = RunDir(run).read_summary(IDMBCSummary)
    assert summary.stage == "idm" and summary.method == "idm" and summary.extra == {}
    assert summary.policy == str(run / "policy.pt") and summary.offline.idm_action_mse is not None
    assert RunDir(run / "idm").read_summary(FitSummary).final_loss == summary.idm_final_loss


def test_its_policy_evaluates(sweep: Path, capsys: pytest.CaptureFixture) -> None:
    run = one_stage_run(sweep)
    assert main(["evaluate", "--policy", str(run), "--episodes", "2", "--max-steps", "4", "--num-envs", "2",
                 "--no-progress"]) == 0  # fmt: skip
    (written,) = run.glob("eval-2ep-*.json")  # beside the fixture's own 1-episode result
    result = json.loads(written.read_text())
    assert result["episodes"] == 2 and result["env"]["task"] == "cheetah-run"


def test_its_sweep_reports_with_the_policys_learning_curve(sweep: Path, tmp_path: Path) -> None:
    (record,) = read_runs(sweep / "runs.jsonl")
    assert list(record.stages) == ["idm"] and record.stage_dir("idm") == str(one_stage_run(sweep))
    curves = learning_curves([record], ["idm"])
    (rows,) = curves["policy"]["idm"].values()  # from RUN/bc/curve.jsonl
    assert [r["update"] for r in rows] == [3, 4]
    out = tmp_path / "report"
    assert main(["report", str(sweep), "--out", str(out)]) == 0
    assert "| IDM |" in (out / "results.md").read_text() and (out / "curves.png").is_file()


@pytest.mark.integration
def test_a_pipeline_over_its_cache_trains_the_two_stages_beside_it(sweep: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    run = one_stage_run(sweep)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    data, labeled = cheetah(tmp_path / "data.h5", trajectories=4, seed=5), cheetah(tmp_path / "labeled.h5", seed=7)
    capsys.readouterr()
    assert main(["pipeline", "--method", "idm", "--data", str(data), "--labeled", str(labeled), "--out",
                 str(sweep / "cache"), "--episodes", "0", "--no-progress", "--threads", "1", "--encoder_channels",
                 "[8,8,8]", "--batch_size", "16", "--epochs", "1", "--frame_stack", "2", "--idm.idm_updates", "5",
                 "--idm.idm_batch_size", "16", "--idm.idm_head_dim", "32"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    summary = json.loads(Path(out.strip().splitlines()[-1].removeprefix("summary: ")).read_text())
    assert list(summary["stages"]) == ["idm", "idm-bc"] and not any(s["reused"] for s in summary["stages"].values())
    assert str(run) not in {s["dir"] for s in summary["stages"].values()}
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_the_stages_refuse_its_folder_in_one_line(sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = one_stage_run(sweep)
    labeled = cheetah(tmp_path / "labeled.h5", seed=7)
    what = f"{run} is an IDM baseline run of an earlier laom (IDM and policy in one folder)"
    fails(["train", "idm", "--labeled", str(labeled), "--out", str(run), *TINY_IDM, *FAST], capsys, f"--out {what}")
    err = fails(["train", "idm-bc", "--idm", str(run), "--data", str(labeled), "--out", str(tmp_path / "bc"),
                 *TINY_IDM_BC, *FAST], capsys, f"--idm {what}")  # fmt: skip
    assert f"its policy still evaluates (laom evaluate --policy {run})" in err
    # Its inner IDM run is no IDM run of this laom either: its summary lacks what idm-bc reads.
    fails(["train", "idm-bc", "--idm", str(run / "idm"), "--data", str(labeled), "--out", str(tmp_path / "bc2"),
           *TINY_IDM_BC, *FAST], capsys, "not an IDM run of this laom")  # fmt: skip
