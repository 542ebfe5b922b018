"""What commands write: output paths checked before any work, results never replaced by
smaller evaluations, readable stage folders that still find old caches, the code version
in every summary, and no checkpoints left beside a finished stage."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from test_pipeline import TINY
from test_stages import FAST, TINY_BASELINE, cheetah, fails, ok, square

import laom
from laom.cli import main
from laom.errors import LaomError
from laom.evaluation import results as ev
from laom.models.meta import PolicyMeta
from laom.outputs import check_output, code_version, read_code_version
from laom.training import pipeline as pl


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("outputs")
    return {"data": square(d / "data.h5", 4, 30, seed=0), "labeled": square(d / "labeled.h5", 2, 20, seed=1)}


# --------------------------------------------------------------------------- check_output


def test_check_output_cases(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(LaomError, match=rf"--out {blocker}/x.png: {blocker} is a file, not a directory"):
        check_output(blocker / "x.png")
    with pytest.raises(LaomError, match="is a file, not a directory"):  # deeper, even when parents are made
        check_output(blocker / "a" / "b", kind="dir", create_parents=True)
    with pytest.raises(LaomError, match="does not exist"):
        check_output(tmp_path / "missing" / "x.png")
    assert check_output(tmp_path / "missing" / "run", kind="dir", create_parents=True) == tmp_path / "missing" / "run"
    assert not (tmp_path / "missing").exists()  # a check creates nothing
    with pytest.raises(LaomError, match="exists and is not a directory"):
        check_output(blocker, "--out", kind="dir")
    with pytest.raises(LaomError, match="is a directory, expected a file"):
        check_output(tmp_path, "OUT")
    with pytest.raises(LaomError, match="already exists"):
        check_output(blocker, force=False)
    assert check_output(blocker) == blocker  # replaced atomically
    with pytest.raises(LaomError, match="empty"):
        check_output("")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_check_output_not_writable(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(LaomError, match="not writable"):
            check_output(locked / "x.png")
        with pytest.raises(LaomError, match="not writable"):
            check_output(locked, kind="dir")
    finally:
        locked.chmod(0o700)


def test_every_writing_command_refuses_an_output_under_a_file(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The issue's cases (train, env preview, pipeline, report, demo) and every other
    command that writes: one line naming --out, exit 2, nothing written."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "runs.jsonl").write_text("")
    d, lab = str(data["data"]), str(data["labeled"])
    commands = [
        ["train", "lam", "--method", "laom", "--data", d, "--out", f"{blocker}/run", *FAST],
        ["train", "bc-baseline", "--data", d, "--out", f"{blocker}/run", *FAST],
        ["train", "lam", "--method", "laom", "--data", d, "--out", str(blocker), *FAST],
        ["env", "preview", "cheetah-run", "--out", f"{blocker}/grid.png"],
        ["pipeline", "--method", "bc", "--labeled", lab, "--out", f"{blocker}/root", "--no-progress"],
        ["sweep", "--tasks", "square-move", "--methods", "bc", "--labeled", "1", "--seeds", "0", "--data", d,
         "--out", f"{blocker}/sweep", "--episodes", "0"],
        ["report", str(sweep), "--out", f"{blocker}/report"],
        ["demo", "--out", f"{blocker}/demo"],
        ["collect", "--task", "cheetah-run", "--episodes", "1", "--out", f"{blocker}/x.hdf5"],
        ["data", "sample-labeled", d, "--trajectories", "1", "--out", f"{blocker}/l.hdf5"],
        ["expert", "train", "cheetah-run", "--steps", "10", "--out", f"{blocker}/expert"],
    ]  # fmt: skip
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for args in commands:
        fails(args, capsys, str(blocker))
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert blocker.read_text() == "x"
    fails(["env", "preview", "cheetah-run", "--out", str(tmp_path)], capsys, "expected a .png file name")


# --------------------------------------------------------------------------- code version


def test_code_version() -> None:
    version = code_version()
    assert version["laom_version"] == laom.__version__
    root = Path(laom.__file__).resolve().parent.parent
    if (root / ".git").exists():
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
        if head.returncode == 0:
            assert version["git_commit"] == head.stdout.strip()
            assert isinstance(version["git_dirty"], bool)


def test_code_version_outside_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_code_version(tmp_path) == {"laom_version": laom.__version__, "git_commit": None, "git_dirty": None}
    # A checkout but no git program: no commit, no failure.
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text("")
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert read_code_version(tmp_path)["git_commit"] is None


# --------------------------------------------------------------------------- evaluation results


class FakePolicy:
    meta = PolicyMeta.from_json(
        {"domain_name": "cheetah", "task_name": "run", "img_hw": 16, "frame_stack": 2, "difficulty": "vanilla"}
    )

    @staticmethod
    def act(obs):  # never called: the episodes are faked
        raise AssertionError


@pytest.fixture
def fake_evaluation(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """evaluate_run without environments: episode i of seed s returns 100 * s + i."""
    import laom.evaluation.online as online
    import laom.models.saving as saving
    from laom.evaluation.online import EvalResult

    calls: list[int] = []

    def evaluate(act, kwargs, episodes, seed=0, **_):
        calls.append(episodes)
        return EvalResult([float(100 * seed + i) for i in range(episodes)], [5] * episodes, list(range(episodes)))

    monkeypatch.setattr(saving, "load_policy", lambda run, device=None: FakePolicy())
    monkeypatch.setattr(online, "evaluate", evaluate)
    return calls


def evaluate(run: Path, capsys: pytest.CaptureFixture, *extra: str) -> list[str]:
    """The command's result lines: [return ..., written: FILE, what became of eval.json]."""
    capsys.readouterr()
    ok(["evaluate", "--policy", str(run), "--no-progress", *extra])
    lines = capsys.readouterr().out.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("return "))
    return lines[start:]


def test_a_smaller_evaluation_never_replaces_the_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture, fake_evaluation: list[int]
) -> None:
    from laom.evaluation.run import normalizer_source

    run = tmp_path / "bc-full"
    run.mkdir()
    out = evaluate(run, capsys, "--episodes", "25")
    big = Path(out[1].removeprefix("written: "))
    assert big.name.startswith("eval-25ep-s0-") and big.is_file()
    assert "eval.json" in out[2] and "this evaluation" in out[2]
    reference = json.loads((run / "eval.json").read_text())
    assert reference["episodes"] == 25 and reference["full_setting"] and reference["laom_version"] == laom.__version__

    # The case: a one-episode check keeps its own file; eval.json keeps 25 episodes.
    out = evaluate(run, capsys, "--episodes", "1")
    small = Path(out[1].removeprefix("written: "))
    assert small != big and json.loads(small.read_text())["episodes"] == 1
    assert "kept" in out[2] and "25-episode" in out[2] and big.name in out[2]
    assert json.loads((run / "eval.json").read_text()) == reference
    assert json.loads(big.read_text())["episodes"] == 25
    assert normalizer_source(str(run)) == (reference["mean"], str(big))

    # More episodes, but cut short: not the run's own setting, so not the reference either.
    out = evaluate(run, capsys, "--episodes", "40", "--max-steps", "5")
    assert "kept" in out[2] and "outranks" in out[2]
    assert json.loads((run / "eval.json").read_text())["episodes"] == 25
    # Same size, another seed: stays with the first; a larger full evaluation takes over.
    out = evaluate(run, capsys, "--episodes", "25", "--seed", "3")
    assert "kept" in out[2] and json.loads((run / "eval.json").read_text())["seed"] == 0
    out = evaluate(run, capsys, "--episodes", "30")
    assert "this evaluation" in out[2] and json.loads((run / "eval.json").read_text())["episodes"] == 30
    assert len(list(run.glob("eval-*.json"))) == 5  # one file per setting, none lost

    # Normalising by this run reads the reference and says which file it read.
    other = tmp_path / "bc"
    other.mkdir()
    out = evaluate(other, capsys, "--episodes", "2", "--normalizer", str(run))
    assert f"from {run / 'eval-30ep-s0-'}" in out[0]


def test_reference_repairs_an_eval_json_overwritten_by_an_older_laom(tmp_path: Path, capsys, fake_evaluation) -> None:
    """Before this fix eval.json was a copy of the latest evaluation: a run evaluated
    with 25 and then 1 episode has eval.json = the one-episode result."""
    from laom.evaluation.run import resolve_normalizer

    run = tmp_path / "run"
    run.mkdir()
    evaluate(run, capsys, "--episodes", "25")
    evaluate(run, capsys, "--episodes", "1")
    small = next(run.glob("eval-1ep-*.json"))
    legacy = {k: v for k, v in json.loads(small.read_text()).items() if k not in ("full_setting", "seed")}
    (run / "eval.json").write_text(json.dumps(legacy))
    assert resolve_normalizer(str(run)) == pytest.approx(12.0)  # mean of 0..24, not the one episode's 0
    evaluate(run, capsys, "--episodes", "2")  # the next evaluation rewrites eval.json to the reference
    assert json.loads((run / "eval.json").read_text())["episodes"] == 25


def test_reference_of_a_hand_written_eval_json(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    assert ev.reference(run) is None
    (run / "eval.json").write_text(json.dumps({"mean": 4.0, "episodes": 10}))
    assert ev.reference(run) == (run / "eval.json", {"mean": 4.0, "episodes": 10})
    (run / "eval-5ep-s0-abcd1234.json").write_text(json.dumps({"mean": 1.0, "episodes": 5, "env": {}}))
    (run / "eval-9ep-s0-ffff0000.json").write_text("{torn")  # unreadable: skipped
    assert ev.reference(run)[0] == run / "eval.json"


# --------------------------------------------------------------------------- stage folders


def planned(method: str, root: Path, files: dict[str, Path]) -> list[pl.PlannedStage]:
    stages = pl.chain(method, str(files["data"]), str(files["labeled"]), "")
    return pl.plan_chain(stages, root, "cpu", pl.split_overrides(list(TINY), stages, method))


def test_stage_folders_name_stage_and_method(data: dict[str, Path], tmp_path: Path) -> None:
    names = {m: [p.path.name for p in planned(m, tmp_path, data)] for m in ("laom", "laom-labels", "idm", "bc", "bc-full")}
    pattern = r"-[0-9a-f]{8}"
    assert [re.fullmatch(f"(lam|bc|decoder)-laom{pattern}", n) is not None for n in names["laom"]] == [True] * 3
    assert re.fullmatch(f"lam-laom-labels{pattern}", names["laom-labels"][0])
    assert re.fullmatch(f"idm{pattern}", names["idm"][0]) and re.fullmatch(f"idm-bc-idm{pattern}", names["idm"][1])
    assert re.fullmatch(f"bc-baseline-bc{pattern}", names["bc"][0])
    assert re.fullmatch(f"bc-baseline-bc-full{pattern}", names["bc-full"][0])
    # Each folder name holds the start of the stage's key; stage.json holds all of it.
    assert all(p.path.name.endswith(p.key[:8]) for p in planned("laom", tmp_path, data))


def test_a_folder_with_another_stage_in_it_is_refused(data: dict[str, Path], tmp_path: Path) -> None:
    lam = planned("laom", tmp_path, data)[0]
    lam.path.mkdir()
    (lam.path / "stage.json").write_text(json.dumps({"stage": "lam", "config": {"other": 1}}))
    with pytest.raises(LaomError, match="holds another stage"):
        planned("laom", tmp_path, data)


@pytest.mark.integration
def test_old_caches_are_reused_and_resumed_and_finished_stages_pruned(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache made by laom 0.1.0 (``<stage>-<key>`` folders) with an interrupted latent BC:
    the LAM is reused where it is, the BC resumes in its old folder, the decoder trains in
    a new-style one; no finished stage keeps checkpoints."""
    import laom.training.trainlog as trainlog

    class Interrupting(trainlog.Progress):
        def __init__(self, *args: object, desc: str = "", **kwargs: object) -> None:
            super().__init__(*args, desc=desc, **kwargs)
            self.desc = desc

        def update(self, update: int, **postfix: object) -> None:
            super().update(update, **postfix)
            if update == 5 and self.desc.startswith("latent bc"):
                raise KeyboardInterrupt

    def old_name(root: Path, stage: pl.Stage, key: str) -> Path:
        return root / f"{stage.name}-{key}"

    args = ["pipeline", "--method", "laom", "--data", str(data["data"]), "--labeled", str(data["labeled"]),
            "--out", str(tmp_path), "--episodes", "0", "--no-progress", *TINY, "--bc.epochs", "2",
            "--bc.checkpoint_every", "2"]  # fmt: skip
    with monkeypatch.context() as m:
        m.setattr(pl, "stage_dir", old_name)
        m.setattr(trainlog, "Progress", Interrupting)
        assert main(args) == 130
    (lam_dir,) = tmp_path.glob("lam-*")
    (bc_dir,) = tmp_path.glob("bc-*")
    assert re.fullmatch(r"lam-[0-9a-f]{12}", lam_dir.name) and (lam_dir / "summary.json").is_file()
    assert not (lam_dir / "checkpoints").exists()  # pruned when it finished
    assert (bc_dir / "checkpoints" / "last.pt").is_file()  # what the resume needs

    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    summary = json.loads(Path(out.strip().splitlines()[-1].removeprefix("summary: ")).read_text())
    assert f"[lam] {lam_dir}: done, reused" in out and f"[bc] {bc_dir}: resuming" in out
    stages = summary["stages"]
    assert stages["lam"]["dir"] == str(lam_dir) and stages["bc"]["dir"] == str(bc_dir)
    assert re.fullmatch(r"decoder-laom-[0-9a-f]{8}", Path(stages["decoder"]["dir"]).name)
    assert summary["laom_version"] == laom.__version__ and "git_commit" in summary
    for stage in stages.values():
        folder = Path(stage["dir"])
        assert not (folder / "checkpoints").exists(), folder
        stage_summary = json.loads((folder / "summary.json").read_text())
        assert stage_summary["laom_version"] == laom.__version__ and "git_commit" in stage_summary
    # What downstream reads is still there: the LAM, latent policy and acting policy.
    assert (lam_dir / "lam.pt").is_file() and (bc_dir / "latent_policy.pt").is_file()
    assert (Path(stages["decoder"]["dir"]) / "policy.pt").is_file()
    # Again: everything reused in place, no folder renamed or added.
    folders = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert main(args) == 0
    assert "training" not in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == folders


@pytest.mark.integration
def test_a_finished_stage_keeps_what_evaluation_reads(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A finished bc-baseline keeps policy.pt and summary (what evaluate and report read)
    but no checkpoints; the evaluation records the code version."""
    data = cheetah(tmp_path / "cheetah.h5")
    run = tmp_path / "bc"
    ok(["train", "bc-baseline", "--data", str(data), "--out", str(run), *TINY_BASELINE, *FAST])
    assert not (run / "checkpoints").exists() and (run / "policy.pt").is_file()
    assert json.loads((run / "summary.json").read_text())["laom_version"] == laom.__version__
    out = evaluate(run, capsys, "--episodes", "1", "--max-steps", "3")
    result = json.loads(Path(out[1].removeprefix("written: ")).read_text())
    assert result["lengths"] == [3] and result["laom_version"] == laom.__version__


def test_report_summary_records_the_code_version(tmp_path: Path) -> None:
    from test_experiments import synthetic_runs, write_runs

    from laom.experiments.report import write_report

    agg = write_report(write_runs(tmp_path / "sweep", synthetic_runs()), tmp_path / "report")
    written = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert written["laom_version"] == agg["laom_version"] == laom.__version__ and "git_commit" in written


def test_sweep_records_the_code_version_of_each_run() -> None:
    from laom.experiments.plan import Job
    from laom.experiments.sweep import run_record

    record = run_record(Job("cheetah-run", "bc", 2, 0), {"laom_version": "9.9", "git_commit": "abc"}, "")
    assert record.laom_version == "9.9" and record.git_commit == "abc"


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux only")
def test_peak_memory_starts_over_for_each_stage() -> None:
    """A sweep worker runs stage after stage in one process: each stage's summary records
    the peak since its own start (RunDir.prepare resets it), not the worst stage before.
    After a reset the peak is the current resident size, and it grows with what the
    stage allocates from there (whether the allocator returned earlier blocks or not)."""
    import mmap

    from laom.outputs import peak_memory_gb, reset_peak_memory

    def resident_gb() -> float:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024 / 1e9

    assert reset_peak_memory()
    start = peak_memory_gb()
    assert start is not None and abs(start - resident_gb()) < 0.05
    size = 200_000_000
    block = mmap.mmap(-1, size)  # fresh pages, whatever the allocator keeps from earlier tests
    for i in range(0, size, mmap.PAGESIZE):
        block[i] = 1  # touched: resident
    grown = peak_memory_gb()
    block.close()
    assert grown is not None and grown - start > 0.15
