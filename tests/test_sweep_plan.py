"""``laom sweep --plan``: which stages a sweep will train or reuse, what they cost from this
machine's rates (the estimator, the calibration and its cache), and the predicted vs
actual table a sweep prints at its end."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_experiments import TINY, one_line_error, walker

from laom.cli import main
from laom.errors import LaomError
from laom.experiments import cost
from laom.experiments.labeled_subsets import make_labeled
from laom.experiments.plan import Job, job_key
from laom.experiments.runs_store import read_runs
from laom.experiments.sweep_config import SweepConfig, make_config
from laom.experiments.sweep_dir import open_sweep_dir

# The LAM's probe settings spelled out: the arithmetic below depends on them.
SETTINGS = [*TINY, "--lam.probe_every", "0", "--lam.holdout_fraction", "0.1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return walker(tmp_path_factory.mktemp("plan-data") / "walker-stand.h5")  # 4 trajectories x 20 frames


def config(data: Path, methods: str = "bc,lapo", labeled: str = "1,2", seeds: str = "0") -> SweepConfig:
    return make_config("walker-stand", methods, labeled, seeds, str(data), episodes=1, max_steps=4, overrides=SETTINGS)


def rows_by(plan: cost.SweepPlan) -> dict[tuple[str, str], cost.StageRow]:
    return {(row.run, row.stage): row for row in plan.rows}


def book_with(path: Path | None, plan: cost.SweepPlan, per_kind: dict[str, float], default: float = 1000.0) -> cost.RateBook:
    """Rates injected by kind (``default`` for the others), as if measured on this machine."""
    book = cost.RateBook(path)
    for rate in plan.rates():
        book.put(rate, per_kind.get(rate.kind, default))
    return book


LAPO1, LAPO2, BC1, FULL = "walker-stand/lapo/1/s0", "walker-stand/lapo/2/s0", "walker-stand/bc/1/s0", "walker-stand/bc-full/full/s0"


def test_plan_lists_stages_to_train_and_reused_from_the_cache(data: Path, tmp_path: Path) -> None:
    cfg = config(data)
    root = tmp_path / "sweep"
    plan = cost.plan_sweep(cfg, root)
    assert not root.exists()  # planning writes nothing
    assert (plan.runs, plan.recorded) == (5, 0)
    rows = rows_by(plan)
    assert [r.run for r in plan.rows[:2]] == [FULL, FULL]  # bc-full first: the normaliser
    assert rows[(LAPO1, "lam")].status == "train" and rows[(LAPO1, "lam")].folder.startswith("lam-lapo-")
    # Budget 2 reuses the LAM and latent BC its group's first run trains.
    assert rows[(LAPO2, "lam")].status == rows[(LAPO2, "bc")].status == "shared"
    assert rows[(LAPO2, "lam")].works == [] and rows[(LAPO2, "decoder")].status == "train"
    # The labelled subsets do not exist yet: what reads them trains in a folder named later.
    assert rows[(BC1, "bc-baseline")].status == "train" and "not made yet" in rows[(BC1, "bc-baseline")].folder
    assert rows[(LAPO1, "decoder")].key == "" and rows[(LAPO1, "lam")].key

    # A pre-populated cache: subsets made, the LAPO LAM finished, BC-full's policy interrupted,
    # BC-full's evaluation done, and the bc run on budget 1 recorded in runs.jsonl.
    labeled = make_labeled(root, cfg, lambda m: None)
    cache = root / "cache"
    (cache / rows[(LAPO1, "lam")].folder).mkdir(parents=True)
    (cache / rows[(LAPO1, "lam")].folder / "summary.json").write_text("{}")
    (cache / rows[(FULL, "bc-baseline")].folder / "checkpoints").mkdir(parents=True)
    (cache / rows[(FULL, "bc-baseline")].folder / "checkpoints" / "last.pt").write_bytes(b"")
    (cache / cost.evaluation_file(cfg, "bc-full", rows[(FULL, "bc-baseline")].key)).write_text("{}")
    job = Job("walker-stand", "bc", 1, 0)
    key = job_key(cfg, job, labeled[("walker-stand", 1, 0)])
    (root / "runs.jsonl").write_text(json.dumps({"task": "walker-stand", "method": "bc", "labeled": 1, "seed": 0, "run_key": key}) + "\n")

    plan = cost.plan_sweep(cfg, root)
    rows = rows_by(plan)
    assert (plan.runs, plan.recorded) == (5, 1) and not any(r.run == BC1 for r in plan.rows)
    assert rows[(LAPO1, "lam")].status == rows[(LAPO2, "lam")].status == "cached"
    assert rows[(LAPO1, "bc")].status == "train" and rows[(LAPO2, "bc")].status == "shared"
    assert rows[(FULL, "bc-baseline")].status == "resume" and rows[(FULL, "evaluate")].status == "cached"
    assert rows[(LAPO1, "decoder")].folder.startswith("decoder-lapo-")  # its subset exists now
    assert rows[(LAPO1, "decoder")].folder != rows[(LAPO2, "decoder")].folder

    lines = cost.plan_lines(plan, book_with(None, plan, {}))
    text = "\n".join(lines)
    assert lines[0].endswith("5 runs, 1 already recorded, 4 to run")
    header = next(line for line in lines if line.startswith("run "))
    assert header.split() == ["run", "stage", "status", "work", "time", "folder"]
    assert "5 updates x 16" in text and "1 episode x 4 steps" in text
    assert "stage(s) to train (1 resumed, priced whole), 3 reused from the cache, 1 shared" in text
    assert "estimated time:" in text and "lam-lapo forward" in text and "lam-lapo train" not in text


def test_estimator_arithmetic_with_injected_rates(data: Path, tmp_path: Path) -> None:
    a = cost.Rate("a train", "samples", "{}")
    b = cost.Rate("b forward", "transitions", "{}")
    c = cost.Rate("c", "frames", "{}")
    book = cost.RateBook(tmp_path / "rates.json", host={"cpu": "test"})
    book.put(a, 10.0)
    book.put(b, 3.0)
    works = [cost.Work(a, 100, ""), cost.Work(b, 30, ""), cost.Work(c, 0, ""), cost.Work(a, 5, "")]
    assert cost.estimate(works, book) == (pytest.approx(100 / 10 + 30 / 3 + 5 / 10), [])
    seconds, missing = cost.estimate([*works, cost.Work(c, 7, "")], book)
    assert seconds == pytest.approx(20.5) and missing == [c]
    # Another machine's entries are not this one's.
    assert cost.RateBook(None, book.entries, host={"cpu": "other"}).get(a) is None

    # A LAPO LAM on 4 trajectories of 20 frames (76 transitions) at batch 16, one epoch:
    # 4 updates (64 samples); probes on 68 fit + 8 held-out transitions; 80 frames read.
    plan = cost.plan_sweep(config(data, methods="lapo", labeled="1"), tmp_path / "sweep")
    rates = {"lam-lapo train": 32.0, "lam-lapo forward": 38.0, "read": 40.0, "evaluate steps": 2.0, "evaluate start": 0.5}
    book = book_with(None, plan, rates)
    cost.price(plan.rows, book)
    rows = rows_by(plan)
    lam = rows[("walker-stand/lapo/1/s0", "lam")]
    assert [(w.rate.kind, w.amount) for w in lam.works] == [("lam-lapo train", 64), ("lam-lapo forward", 76), ("read", 80)]
    assert lam.seconds == pytest.approx(64 / 32 + 76 / 38 + 80 / 40) and lam.missing == []
    # One episode of 4 steps (--max-steps) in one environment: 4 steps at 2/s, a start at 0.5/s.
    assert rows[("walker-stand/lapo/1/s0", "evaluate")].seconds == pytest.approx(4 / 2 + 1 / 0.5)
    bc = rows[("walker-stand/lapo/1/s0", "bc")]
    assert bc.works[0].what == "5 updates x 16"  # one epoch is 4 updates; --min_updates 5
    assert bc.seconds == pytest.approx(sum(w.amount / rates.get(w.rate.kind, 1000.0) for w in bc.works))
    lines = cost.plan_lines(plan, book)
    assert any(line.split()[1:4] == ["lam", "train", "4"] and "0:06" in line for line in lines)
    total = sum(r.seconds for r in plan.rows)
    assert f"estimated time: {cost.format_seconds(total)}" in "\n".join(lines)
    # A rate not measured yet shows as a lower bound, and the total names it.
    del book.entries[book.key(lam.works[1].rate)]
    cost.price(plan.rows, book)
    text = "\n".join(cost.plan_lines(plan, book))
    assert ">0:04?" in text and "no rate for lam-lapo forward" in text


def test_the_idm_baseline_is_planned_as_two_stages(data: Path, tmp_path: Path) -> None:
    """The IDM on the labelled subset, then its policy on --data (pseudo-labelling it with
    the IDM): a row, a folder and a price each. The policy's frame stack is its IDM's, so
    its rates are BC's at the same settings, and a setting of the policy leaves the IDM's
    key alone."""
    idm = ["--idm.idm_updates", "7", "--idm.idm_batch_size", "8"]
    cfg = make_config("walker-stand", "bc,idm", "1", "0", str(data), episodes=1, max_steps=4, overrides=[*SETTINGS, *idm])
    plan = cost.plan_sweep(cfg, tmp_path / "sweep")
    rows = rows_by(plan)
    run = "walker-stand/idm/1/s0"
    assert [r.stage for r in plan.rows if r.run == run] == ["idm", "idm-bc", "evaluate"]
    model, policy = rows[(run, "idm")], rows[(run, "idm-bc")]
    assert model.status == policy.status == "train" and "not made yet" in policy.folder  # both follow the subset
    assert [(w.rate.kind, w.amount) for w in model.works] == [("idm train", 7 * 8), ("read", 20)]
    assert model.works[0].what == "7 updates x 8 (IDM)"
    # 76 transitions of --data: 4 updates an epoch, 5 with --min_updates; each labelled once.
    assert [(w.rate.kind, w.amount) for w in policy.works] == [
        ("bc-baseline train", 5 * 16), ("idm forward", 76), ("bc-baseline forward", 0), ("read", 80)]  # fmt: skip
    assert policy.works[1].rate.shape == model.works[0].rate.shape  # the IDM's: one measurement prices both
    assert policy.works[0].rate == rows[(FULL, "bc-baseline")].works[0].rate
    assert rows[(run, "evaluate")].works[0].rate == rows[(FULL, "evaluate")].works[0].rate

    # With the subset made: the IDM's folder stays put when only its policy changes.
    make_labeled(tmp_path / "sweep", cfg, lambda m: None)
    before = rows_by(cost.plan_sweep(cfg, tmp_path / "sweep"))
    longer = make_config("walker-stand", "bc,idm", "1", "0", str(data), episodes=1, max_steps=4,
                         overrides=[*SETTINGS, *idm, "--idm.epochs", "2"])  # fmt: skip
    after = rows_by(cost.plan_sweep(longer, tmp_path / "sweep"))
    assert after[(run, "idm")].folder == before[(run, "idm")].folder
    assert after[(run, "idm-bc")].folder != before[(run, "idm-bc")].folder


def test_lapo_labels_plans_a_lam_per_budget_that_reads_its_subset(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LAPO+supervision's LAM reads the labelled subset: one LAM per budget, each reading
    the subset's frames too, and its own rate kind, measured by training it with labels."""
    plan = cost.plan_sweep(config(data, methods="lapo,lapo-labels", labeled="1,2"), tmp_path / "sweep")
    rows = rows_by(plan)
    sup = [rows[(f"walker-stand/lapo-labels/{n}/s0", "lam")] for n in (1, 2)]
    lapo = [rows[(f"walker-stand/lapo/{n}/s0", "lam")] for n in (1, 2)]
    assert [r.status for r in sup] == ["train", "train"] and [r.status for r in lapo] == ["train", "shared"]
    reads = [next(w.amount for w in r.works if w.rate.kind == "read") for r in [*sup, lapo[0]]]
    assert reads == [80 + 20, 80 + 40, 80]  # --data, plus 1 and 2 labelled trajectories of 20 frames
    assert {w.rate.kind for w in sup[0].works} == {"lam-lapo-labels train", "lam-lapo-labels forward", "read"}
    # The calibration times its whole update, labelled batch and action head included.
    import laom.training.lam as lam_mod

    monkeypatch.setattr(cost, "BUDGET_S", 0.05)
    built: list[bool] = []

    class Recording(lam_mod.LAMTrainer):
        def __init__(self, cfg, data, labeled, runtime):
            super().__init__(cfg, data, labeled, runtime)
            built.append(self.label_sampler is not None)

    monkeypatch.setattr(lam_mod, "LAMTrainer", Recording)
    rate = next(w.rate for w in sup[0].works if w.rate.kind == "lam-lapo-labels train")
    measured = rate.measure()
    assert {r.kind for r in measured} == {"lam-lapo-labels train", "lam-lapo-labels forward"}
    assert all(v > 0 for v in measured.values()) and built == [True]


@pytest.mark.integration  # real updates and an environment: seconds, not milliseconds
def test_calibration_is_written_and_reused(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cost, "BUDGET_S", 0.05)  # a couple of timed calls per rate
    monkeypatch.setattr(cost, "EVAL_STEPS", 5)
    cfg = config(data, methods="bc,idm,lapo", labeled="1")
    path = tmp_path / "cache" / "stage-rates.json"
    log: list[str] = []
    plan = cost.run_plan(cfg, tmp_path / "sweep", cost.RateBook.load(path), log=log.append)
    kinds = {r.kind for r in plan.rates()}
    count = len(plan.rates())  # the IDM's policy may differ from BC's in shape: a rate of its own
    assert kinds == {
        "bc-baseline train", "bc-baseline forward", "read", "evaluate steps", "evaluate start", "idm train",
        "idm forward", "lam-lapo train", "lam-lapo forward", "latent-bc train", "latent-bc forward", "decoder train",
    }  # fmt: skip
    assert log[0].startswith(f"calibrating {count} rate(s)") and f"[{count}/{count}]" in "\n".join(log)
    doc = json.loads(path.read_text())
    assert doc["version"] == cost.RATES_VERSION
    assert {e["kind"] for e in doc["rates"].values()} == kinds and len(doc["rates"]) == count
    assert all(e["per_s"] > 0 and e["machine"]["cores"] >= 1 for e in doc["rates"].values())
    assert all(not r.missing for r in plan.rows) and not (tmp_path / "sweep").exists()

    # The same plan again: every rate comes from the file, nothing is measured.
    before = path.read_text()
    log.clear()
    plan = cost.run_plan(cfg, tmp_path / "sweep", cost.RateBook.load(path), log=log.append)
    assert not any("calibrating" in line for line in log) and path.read_text() == before
    assert sum(r.seconds for r in plan.rows) > 0
    # Another shape (a wider decoder) measures only what it changes.
    other = make_config("walker-stand", "bc,idm,lapo", "1", "0", str(data), episodes=1, max_steps=4,
                           overrides=[*SETTINGS, "--decoder.hidden_dim", "48"])  # fmt: skip
    log.clear()
    cost.run_plan(other, tmp_path / "sweep", cost.RateBook.load(path), log=log.append)
    assert log[0].startswith("calibrating 1 rate(s)") and "decoder train" in log[2]
    # --recalibrate measures every rate again.
    log.clear()
    cost.run_plan(cfg, tmp_path / "sweep", cost.RateBook.load(path), recalibrate=True, log=log.append)
    assert log[0].startswith(f"calibrating {count} rate(s)")


def test_comparison_table_from_outcomes(data: Path, tmp_path: Path) -> None:
    plan = cost.plan_sweep(config(data, methods="lapo", labeled="1,2"), tmp_path / "sweep")
    cost.price(plan.rows, book_with(None, plan, {}, default=10.0))
    rows = rows_by(plan)
    first = {"stage_seconds": {"lam": 12.0, "bc": 3.0, "decoder": 1.0}, "episodes": 1, "wall_s": 20.0,
             "stages": {s: {"reused": False} for s in ("lam", "bc", "decoder")}}  # fmt: skip
    outcomes = [
        SimpleNamespace(job=SimpleNamespace(id=LAPO1), summary=first),
        SimpleNamespace(job=SimpleNamespace(id=LAPO2), summary=None),  # failed
    ]
    lines = cost.comparison_lines(plan.rows, outcomes, Path("rates.json"))
    assert lines[0].startswith("predicted vs actual")
    assert lines[1].split() == ["run", "stage", "predicted", "actual", "actual/predicted"]
    cells = [line.split() for line in lines[2:]]
    assert cells[0] == [LAPO1, "lam", cost.format_seconds(rows[(LAPO1, "lam")].seconds), "0:12",
                        f"{12.0 / rows[(LAPO1, 'lam')].seconds:.2f}"]  # fmt: skip
    assert cells[3][0] == "evaluate" and cells[3][2] == "0:04"  # the rest of the run's wall time: 20 - 16 s
    assert cells[4][:2] == [LAPO2, "decoder"] and cells[4][3] == "failed"  # LAPO2 trains only its decoder
    predicted = sum(rows[(LAPO1, s)].seconds for s in ("lam", "bc", "decoder", "evaluate"))
    assert lines[-1].split()[-3:] == [cost.format_seconds(predicted), "0:20", f"{20 / predicted:.2f}"]
    # Without rates: the actual times, and what to run to get predictions.
    cost.price(plan.rows, cost.RateBook(None))
    lines = cost.comparison_lines(plan.rows, outcomes, Path("rates.json"))
    assert "not predicted (no measured rate in rates.json)" in lines[-1] and "--plan" in lines[-1]


@pytest.mark.integration
def test_sweep_prints_predicted_beside_actual(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rates = tmp_path / "rates.json"
    cfg = config(data, methods="bc", labeled="1")
    plan = cost.plan_sweep(cfg, tmp_path / "sweep")
    book_with(rates, plan, {}, default=50.0).save()
    args = ["sweep", "--tasks", "walker-stand", "--methods", "bc", "--labeled", "1", "--seeds", "0", "--data", str(data),
            "--out", str(tmp_path / "sweep"), "--episodes", "1", "--max-steps", "4", "--no-progress",
            "--rates", str(rates), *SETTINGS]  # fmt: skip
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    start = next(i for i, line in enumerate(out) if line.startswith("predicted vs actual"))
    table = out[start + 1 : start + 7]
    assert [line.split()[:2] for line in table[1:5:2]] == [[FULL, "bc-baseline"], [BC1, "bc-baseline"]]
    runs = {r.method: r for r in read_runs(tmp_path / "sweep" / "runs.jsonl")}
    actual = runs["bc"].stage_seconds["bc-baseline"]
    assert table[3].split()[-2] == cost.format_seconds(actual)
    assert table[5].startswith("total (stages with both)")


def test_plan_command_and_bad_input(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "sweep"
    rates = tmp_path / "rates.json"
    book_with(rates, cost.plan_sweep(config(data), out), {}).save()
    args = ["sweep", "--tasks", "walker-stand", "--methods", "bc,lapo", "--labeled", "1,2", "--seeds", "0",
            "--data", str(data), "--out", str(out), "--episodes", "1", "--max-steps", "4", "--no-progress", *SETTINGS]  # fmt: skip
    capsys.readouterr()
    assert main([*args, "--plan", "--rates", str(rates)]) == 0
    printed = capsys.readouterr().out
    assert "sweep plan for" in printed and "estimated time:" in printed and "calibrating" not in printed
    assert not out.exists()  # --plan trains nothing and writes nothing there

    one_line_error([*args, "--plan", "--rates", str(tmp_path)], capsys, "--rates")
    (tmp_path / "bad.json").write_text("not json")
    one_line_error([*args, "--plan", "--rates", str(tmp_path / "bad.json")], capsys, "not a rates file")
    (tmp_path / "other.json").write_text('{"version": 99}')
    one_line_error([*args, "--rates", str(tmp_path / "other.json")], capsys, "--rates")
    one_line_error([*args, "--recalibrate"], capsys, "--recalibrate: only with --plan")
    one_line_error([*args, "--plan", "--rates", str(rates), "--jobs", "0"], capsys, "--jobs 0")
    (tmp_path / "file").write_text("")
    one_line_error([*args, "--plan", "--rates", str(tmp_path / "file" / "rates.json")], capsys, "--rates")
    assert not out.exists()
    open_sweep_dir(out, config(data), force=False)
    with pytest.raises(LaomError, match="different config"):  # what the sweep would refuse, --plan refuses
        cost.run_plan(config(data, labeled="1"), out, cost.RateBook.load(rates), log=lambda m: None)


def test_first_puts_one_methods_runs_before_the_others(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--first finishes one LAM method's chain before the other methods' runs start (a
    machine that may not last keeps no weights), and its LAM still trains once."""
    cfg = config(data, methods="bc,lapo")
    default = [row.run for row in cost.plan_sweep(cfg, tmp_path / "a").rows if row.trains]
    first = [row.run for row in cost.plan_sweep(cfg, tmp_path / "a", first=["lapo"]).rows if row.trains]
    runs = list(dict.fromkeys(default))
    assert runs.index(BC1) < runs.index(LAPO2)  # by budget: bc at 1 before lapo at 2
    assert list(dict.fromkeys(first))[:2] == [LAPO1, LAPO2]  # lapo's chain first
    plan = cost.plan_sweep(cfg, tmp_path / "a", first=["lapo"])
    lam = [row for row in plan.rows if row.stage == "lam" and row.trains]
    assert [row.run for row in lam] == [LAPO1]  # the later budget reuses the first one's LAM
    both = [row.run for row in cost.plan_sweep(cfg, tmp_path / "a", first=["lapo", "bc"]).rows if row.trains]
    assert list(dict.fromkeys(both))[:3] == [LAPO1, LAPO2, BC1]  # method by method, in the order given
    one = [row.run for row in cost.plan_sweep(cfg, tmp_path / "a", first=["lapo/2", "bc"]).rows if row.trains]
    assert list(dict.fromkeys(one))[:3] == [LAPO2, BC1, "walker-stand/bc/2/s0"]  # a budget entry: that run alone, first
    lam = [row for row in cost.plan_sweep(cfg, tmp_path / "a", first=["lapo/2"]).rows if row.stage == "lam" and row.trains]
    assert [row.run for row in lam] == [LAPO2]  # the group's first pending run trains the shared LAM

    # One seed of every method before the next seed of any; a task picks one task's runs.
    two = config(data, methods="bc,lapo", seeds="0,1")
    order = list(dict.fromkeys(row.run for row in cost.plan_sweep(two, tmp_path / "c", first=["lapo@1", "bc/2@1", "walker-stand:bc@0"]).rows if row.trains))
    assert order[:5] == ["walker-stand/lapo/1/s1", "walker-stand/lapo/2/s1", "walker-stand/bc/2/s1",
                         "walker-stand/bc/1/s0", "walker-stand/bc/2/s0"]  # fmt: skip
    assert set(order[5:]) == {"walker-stand/bc/1/s1", LAPO1, LAPO2, FULL, "walker-stand/bc-full/full/s1"}

    args = ["sweep", "--tasks", "walker-stand", "--methods", "bc,lapo", "--labeled", "1,2", "--seeds", "0",
            "--data", str(data), "--out", str(tmp_path / "b"), "--episodes", "1", "--max-steps", "4",
            "--no-progress", *SETTINGS]  # fmt: skip
    one_line_error([*args, "--first", "laom"], capsys, "--first laom: method 'laom' not in --methods")
    one_line_error([*args, "--first", "/2"], capsys, "--first /2: method '' not in --methods")
    one_line_error([*args, "--first", "lapo/"], capsys, "--first lapo/: budget (none) not in --labeled")
    one_line_error([*args, "--first", "lapo,,bc"], capsys, "--first")
    one_line_error([*args, "--first", "lapo/4"], capsys, "--first lapo/4: budget 4 not in --labeled")
    one_line_error([*args, "--first", "lapo/x"], capsys, "--first lapo/x: budget x not in --labeled")
    one_line_error([*args, "--first", "lapo@1"], capsys, "--first lapo@1: seed 1 not in --seeds (expected one of 0)")
    one_line_error([*args, "--first", "lapo/2@"], capsys, "--first lapo/2@: seed (none) not in --seeds")
    one_line_error([*args, "--first", "cheetah-run:lapo"], capsys, "--first cheetah-run:lapo: task 'cheetah-run' not in --tasks")
    assert not (tmp_path / "b").exists()


def test_curve_only_overrides_leave_run_keys_alone(data: Path, tmp_path: Path) -> None:
    """Turning the latent return curve on in a running study retrains no recorded run,
    and the sweep folder takes the command as the same sweep."""
    from laom.experiments.sweep_dir import check_sweep_dir

    job = Job("walker-stand", "lapo", 1, 0)
    plain = make_config("walker-stand", "bc,lapo", "1,2", "0", str(data), overrides=SETTINGS)
    curved = make_config("walker-stand", "bc,lapo", "1,2", "0", str(data),
                         overrides=[*SETTINGS, "--bc.snapshot_every", "2500", "--decoder.snapshot_episodes", "5"])  # fmt: skip
    other = make_config("walker-stand", "bc,lapo", "1,2", "0", str(data), overrides=[*SETTINGS, "--bc.epochs", "2"])
    assert job_key(curved, job, "") == job_key(plain, job, "")
    assert job_key(other, job, "") != job_key(plain, job, "")
    open_sweep_dir(tmp_path / "s", plain, force=False)
    assert check_sweep_dir(tmp_path / "s", curved, force=False) is False
    with pytest.raises(LaomError, match="different config"):
        check_sweep_dir(tmp_path / "s", other, force=False)


def test_precision_in_keys_is_what_it_computes(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """"auto" is bf16 on an AMX CPU and fp32 elsewhere: a run recorded in fp32 is not done
    where "auto" means bf16, and `--precision fp32` there continues the fp32 study."""
    import laom.models.device as device
    from laom.experiments.sweep_dir import check_sweep_dir

    job = Job("walker-stand", "lapo", 1, 0)

    def key(*extra: str) -> str:
        return job_key(make_config("walker-stand", "bc,lapo", "1,2", "0", str(data), overrides=[*SETTINGS, *extra]), job, "")

    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: False)
    assert device.keyed_precision("auto") == "auto" and device.keyed_precision("fp32") == "fp32"
    recorded = key()  # an fp32 machine, "auto"
    assert key("--precision", "fp32") == recorded
    open_sweep_dir(tmp_path / "s", make_config("walker-stand", "bc,lapo", "1,2", "0", str(data), overrides=SETTINGS),
                   force=False)  # fmt: skip
    monkeypatch.setattr(device, "cpu_has_fast_bf16", lambda: True)
    assert device.keyed_precision("auto") == "bf16" and device.keyed_precision("auto", "cpu") == "bf16"
    assert key() != recorded  # "auto" is bf16 here: another run
    assert key("--precision", "bf16") == key()
    assert key("--precision", "fp32") == recorded  # the fp32 study goes on
    assert key("--lam.precision", "fp32") not in (recorded, key())  # its latent BC and decoder in bf16
    fp32 = make_config("walker-stand", "bc,lapo", "1,2", "0", str(data), overrides=[*SETTINGS, "--precision", "fp32"])
    assert check_sweep_dir(tmp_path / "s", fp32, force=False) is False


def test_a_probe_only_sweep_until_the_lam(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`laom sweep --until lam --episodes 0`: each run trains its LAM alone and is recorded
    with its probes and no return; the plan prices only the LAMs; its runs are not the
    whole runs' (another key), and a sweep without --until keeps its sweep.yaml as before."""
    cut = make_config("walker-stand", "lapo,laom", "1", "0", str(data), episodes=0, overrides=SETTINGS, until="lam")
    plain = make_config("walker-stand", "lapo,laom", "1", "0", str(data), episodes=0, overrides=SETTINGS)
    assert "until" not in plain.to_dict() and cut.to_dict()["until"] == "lam"
    job = Job("walker-stand", "lapo", 1, 0)
    assert job_key(cut, job, "") != job_key(plain, job, "")
    assert {row.stage for row in cost.plan_sweep(cut, tmp_path / "p").rows} == {"lam"}
    out = tmp_path / "sweep"
    args = ["sweep", "--tasks", "walker-stand", "--methods", "lapo,laom", "--labeled", "1", "--seeds", "0",
            "--data", str(data), "--out", str(out), "--episodes", "0", "--no-progress", *SETTINGS]  # fmt: skip
    capsys.readouterr()
    assert main([*args, "--until", "lam"]) == 0
    runs = read_runs(out / "runs.jsonl")
    assert sorted(r.method for r in runs) == ["laom", "lapo"]
    assert all(list(r.stages) == ["lam"] and r.action_probe_mse is not None and r.return_mean is None for r in runs)
    assert not list((out / "cache").glob("bc-*"))
    one_line_error([*args[:-len(SETTINGS)], "--methods", "lapo,bc", *SETTINGS, "--until", "lam"], capsys,
                   "--until lam: bc has no such stage (its stages: bc-baseline)")  # fmt: skip
    one_line_error([*args, "--until", "lam", "--episodes", "2"], capsys, "add --episodes 0")
