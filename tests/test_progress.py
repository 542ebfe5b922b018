"""Progress output: bars on a terminal, plain lines in logs, the sweep's ETA per stage kind."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from laom import progress as pg
from laom.experiments.plan import plan_jobs
from laom.experiments.runs_store import RunRecord
from laom.experiments.scheduler import Outcome
from laom.experiments.sweep import job_spec, run_job
from laom.experiments.sweep_config import SweepConfig, SweepOptions
from laom.experiments.sweep_progress import SweepProgress, job_stage_kinds


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    bar = pg.progress(100, "lam", "upd", file=out)
    assert isinstance(bar, pg.PlainProgress)
    for i in range(100):
        bar.set_postfix(loss=f"{1 / (i + 1):.3f}")
        bar.update(1)
    bar.close()
    text = out.getvalue()
    lines = text.splitlines()
    assert "\r" not in text
    assert len(lines) == 10  # one per tenth of the work, none repeated by close()
    assert lines[0].startswith("lam:  10%") and "10/100" in lines[0] and "loss=0.100" in lines[0]
    assert lines[-1].startswith("lam: 100%") and "100/100" in lines[-1] and "upd/s" in lines[-1]
    assert "<" in lines[0]  # elapsed<remaining: the ETA


def test_plain_lines_also_by_time_and_a_last_line_on_close() -> None:
    out = io.StringIO()
    bar = pg.progress(1000, "bc", "upd", file=out, seconds=0.0)  # every update is "due" by time
    for _ in range(3):
        bar.update(1)
    assert len(out.getvalue().splitlines()) == 3
    quiet = io.StringIO()
    bar = pg.progress(1000, "bc", "upd", file=quiet, initial=500)  # resumed at 500
    bar.update(7)
    bar.close()
    (line,) = quiet.getvalue().splitlines()
    assert "507/1000" in line


def test_bar_on_a_terminal_and_nothing_when_disabled() -> None:
    from tqdm import tqdm

    tty = Terminal()
    bar = pg.progress(10, "ep", file=tty)
    assert isinstance(bar, tqdm) and not isinstance(bar, pg.PlainProgress)
    bar.update(10)
    bar.close()
    assert "10/10" in tty.getvalue()
    off = io.StringIO()
    bar = pg.progress(10, "ep", file=off, enabled=False)
    bar.update(10)
    bar.close()
    assert off.getvalue() == ""


def test_progress_output_routes_and_names_bars() -> None:
    console = io.StringIO()
    with pg.progress_output(console, prefix="cheetah-run/laom/4/s0"):
        bar = pg.progress(2, "decoder", "upd")
        bar.update(2)
        bar.close()
    assert console.getvalue().startswith("cheetah-run/laom/4/s0 decoder: 100%")
    # Forced plain lines even on a terminal (parallel sweep jobs share one console).
    tty = Terminal()
    with pg.progress_output(tty, plain=True):
        assert isinstance(pg.progress(2, "x"), pg.PlainProgress)


def test_training_progress_shows_samples_per_s() -> None:
    from laom.training.trainlog import Progress

    out = io.StringIO()
    with pg.progress_output(out):
        p = Progress(total=10, initial=0, batch_size=32, desc="lam")
        for done in range(1, 11):
            p.update(done, loss=0.5)
        p.close()
    last = out.getvalue().splitlines()[-1]
    assert "10/10" in last and "samples/s=" in last and "loss=0.5" in last


# --------------------------------------------------------------------------- the sweep's ETA


def grid() -> SweepConfig:
    return SweepConfig(tasks=["t-a"], methods=["bc", "laom"], labeled=[2, 4], seeds=[0, 1],
                          data={"t-a": "/d.h5"}, eval_data={"t-a": ""}, normalizer="none")  # fmt: skip


def summary(stages: dict[str, float], wall: float, reused: bool = False) -> dict:
    return {"stages": {n: {"reused": reused} for n in stages}, "stage_seconds": stages, "wall_s": wall, "episodes": 5}


def test_stage_kinds_of_planned_runs() -> None:
    jobs = {j.id: j for j in plan_jobs(grid())}
    assert job_stage_kinds(jobs["t-a/laom/2/s0"], True) == ["lam (laom)", "bc", "decoder", "evaluate"]
    # A later budget reuses the group's LAM and latent BC: only its decoder trains.
    assert job_stage_kinds(jobs["t-a/laom/4/s0"], False) == ["decoder"]
    assert job_stage_kinds(jobs["t-a/bc/2/s0"], True) == ["bc-baseline (bc)", "evaluate"]


def test_sweep_eta_is_estimated_per_stage_kind(capsys: pytest.CaptureFixture) -> None:
    jobs = plan_jobs(grid())
    by_id = {j.id: j for j in jobs}
    progress = SweepProgress(jobs, evaluates=True, parallel=1, enabled=True, plain=True)

    def finish(job_id: str, result: dict) -> None:
        progress.start(by_id[job_id])
        progress.advance(Outcome(by_id[job_id], summary=result), job_id)

    # Quick BC runs first: their time says nothing about the LAM stages still to come.
    finish("t-a/bc/2/s0", summary({"bc-baseline": 2.0}, wall=5.0))
    finish("t-a/bc/2/s1", summary({"bc-baseline": 2.0}, wall=5.0))
    seconds, unknown = progress.remaining()
    assert "lam (laom)" in unknown and "decoder" in unknown
    assert "not timed yet" in progress.eta()
    finish("t-a/laom/2/s0", summary({"lam": 100.0, "bc": 20.0, "decoder": 5.0}, wall=128.0))
    seconds, unknown = progress.remaining()
    assert unknown == []
    # Left: bc n=4 (2 + 3 evaluation) x 2 seeds, laom s1 n=2 (all stages + evaluation),
    # and two laom n=4 runs that train only a decoder (+ evaluation).
    assert seconds == pytest.approx(2 * 5.0 + (100 + 20 + 5 + 3) + 2 * (5 + 3))
    out = capsys.readouterr().out
    assert "start t-a/laom/2/s0: lam (laom), bc, decoder, evaluate" in out
    assert "[3/8] t-a/laom/2/s0; sweep eta 02:34" in out  # 154 s left


def test_sweep_bar_on_a_terminal(capsys: pytest.CaptureFixture) -> None:
    """On a terminal the sweep draws a tqdm bar over runs (through laom.progress) on
    stderr, and each finished run's line is written above it on stdout."""
    from tqdm import tqdm

    jobs = plan_jobs(grid())
    job = next(j for j in jobs if j.id == "t-a/bc/2/s0")
    with SweepProgress(jobs, evaluates=True, parallel=1, enabled=True, plain=False) as progress:
        assert isinstance(progress.bar, tqdm) and not isinstance(progress.bar, pg.PlainProgress)
        progress.start(job)
        progress.advance(Outcome(job, summary=summary({"bc-baseline": 2.0}, wall=5.0)), job.id)
        assert progress.bar.n == 1
    out, err = capsys.readouterr()
    assert f"[1/{len(jobs)}] t-a/bc/2/s0" in out
    assert f"sweep: 1/{len(jobs)} runs" in err and "eta" in err


def test_messages_and_durations_look_like_the_bars() -> None:
    out = io.StringIO()
    pg.write("resuming at step 10", file=out)
    assert out.getvalue() == "resuming at step 10\n"
    assert [pg.format_interval(s) for s in (-3, 59.6, 154, 3725)] == ["00:00", "00:59", "02:34", "1:02:05"]


def test_sweep_eta_uses_earlier_sessions_and_skips_reused_stages() -> None:
    jobs = plan_jobs(grid())
    history = [RunRecord.from_json({"task": "t-a", "seed": 0, **run}) for run in [
        {"method": "laom", **summary({"lam": 50.0, "bc": 10.0, "decoder": 4.0}, wall=70.0)},
        {"method": "laom", **summary({"lam": 1.0, "bc": 1.0, "decoder": 1.0}, wall=4.0, reused=True)},  # from the cache
        {"method": "bc", **summary({"bc-baseline": 2.0}, wall=4.0)},
    ]]  # runs.jsonl lines  # fmt: skip
    progress = SweepProgress(jobs, evaluates=True, parallel=2, enabled=False, history=history)
    assert progress.clock.estimate("lam (laom)") == 50.0
    assert progress.clock.estimate("evaluate") == pytest.approx((6.0 + 2.0) / 2)  # wall - stage time
    assert progress.clock.estimate("lam (lapo)") == 50.0  # another method's LAM: better than nothing
    seconds, unknown = progress.remaining()
    per_run = {"bc": 2 + 4, "laom-first": 50 + 10 + 4 + 4, "laom-later": 4 + 4}
    assert unknown == [] and seconds == pytest.approx((4 * per_run["bc"] + 2 * per_run["laom-first"] + 2 * per_run["laom-later"]) / 2)


def test_sweep_shows_the_stage_progress_on_the_console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    """A run's stage progress goes to the console, named by the run; its messages to the log."""
    from laom.training import pipeline

    def fake_pipeline(opts: pipeline.PipelineOptions, log=print) -> dict:
        from laom.progress import progress

        log("[lam] training")
        assert opts.progress
        bar = progress(4, "lam", "upd")
        bar.update(4)
        bar.close()
        return {"stages": {}}

    monkeypatch.setattr(pipeline, "run_pipeline", fake_pipeline)
    opts = SweepOptions(grid(), str(tmp_path), progress=True)
    job = plan_jobs(grid())[0]
    spec = job_spec(opts, job, "", None, plain=True)
    run_job(spec)
    err = capsys.readouterr().err
    assert f"{job.id} lam: 100%" in err and "\r" not in err
    log = (tmp_path / "logs").glob("*.log")
    text = next(log).read_text()
    assert "[lam] training" in text and "100%" not in text
    assert json.loads(text.splitlines()[0].split(" pipeline ", 1)[1])["method"] == job.method
