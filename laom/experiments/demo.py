"""``laom demo``: the whole study, small enough for a laptop CPU.

Collects a cheetah-run dataset with procedural distractors using the built-in expert,
trains LAOM, LAOM+supervision and BC (LAPO on request) and BC on every action at the
demo preset (laom/configs/demo: the CPU preset's rules and acting-policy recipe, small
latents), evaluates them online,
writes the report and prints a one-screen summary. Every step is a regular laom command
run in this process, so the demo is resumable for free: each of them skips finished work.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from laom.errors import LaomError
from laom.experiments.normalizers import NORMALISER_MIN_SHARE, normaliser_works
from laom.outputs import check_output

if TYPE_CHECKING:
    from laom.experiments.runs_store import RunRecord


def _run(argv: list[str]) -> None:
    from laom.cli import main

    print(f"\n$ laom {' '.join(argv)}", flush=True)
    code = main(argv)
    if code != 0:
        raise LaomError(f"demo step failed (exit {code}): laom {' '.join(argv)}")


def check_plan(
    *, task: str, methods: str, episodes: int, eval_episodes: int, episode_steps: int, labeled: int,
    rollouts: int, difficulty: str, img_hw: int, workers: int, expert: str | None, preset: str, extra: list[str],
) -> None:
    """Refuse what a later step would refuse (methods, budgets, preset, stage settings),
    before the first dataset is collected."""
    from laom.data.collect import CollectConfig, check_settings, load_expert
    from laom.envs.tasks import parse_task
    from laom.experiments.overrides import check_overrides, overrides_for
    from laom.experiments.sweep_config import parse_methods
    from laom.training.pipeline import chain, plan_chain, split_overrides

    parse_task(task, flag="--task")
    chosen = parse_methods(methods)
    for flag, value, minimum in (
        ("--episodes", episodes, 1), ("--eval-episodes", eval_episodes, 1),
        ("--episode-steps", episode_steps, 2), ("--labeled", labeled, 1), ("--rollouts", rollouts, 0),
    ):  # fmt: skip
        if value < minimum:
            raise LaomError(f"{flag} {value}: expected >= {minimum}")
    if labeled > episodes:
        raise LaomError(f"--labeled {labeled}: the demo collects only --episodes {episodes} trajectories")
    # The collections' own checks (--img-hw, --workers, --difficulty, --expert), as `laom collect` runs them.
    collect = CollectConfig(task=task, episodes=episodes, out="", difficulty=difficulty,
                            img_hw=img_hw, workers=workers, expert=expert)  # fmt: skip
    check_settings(collect)
    load_expert(expert, task)
    check_overrides(chosen, list(extra))
    for method in chosen:  # preset files, field names and values; no file is read yet
        stages = chain(method, "", "", "")
        plan_chain(stages, Path("/nonexistent-demo-check"), preset, split_overrides(overrides_for(method, extra), stages, method, []))


def run_demo(
    *, out: str, task: str, methods: str, episodes: int, eval_episodes: int, episode_steps: int, labeled: int,
    rollouts: int, difficulty: str, img_hw: int, workers: int, expert: str | None, preset: str, extra: list[str],
) -> int:
    """Collect, sweep, report and print the summary; ``extra`` (``--STAGE.FIELD VALUE``
    tokens) goes to the sweep."""
    start = time.perf_counter()
    folder = check_output(out, "--out", kind="dir", create_parents=True)
    check_plan(task=task, methods=methods, episodes=episodes, eval_episodes=eval_episodes, episode_steps=episode_steps,
               labeled=labeled, rollouts=rollouts, difficulty=difficulty, img_hw=img_hw, workers=workers,
               expert=expert, preset=preset, extra=extra)  # fmt: skip
    data = folder / "data"
    train = data / f"{task}-train.hdf5"
    evals = data / f"{task}-eval.hdf5"
    from laom.data.collect import check_free_space, collection_bytes

    # Both collections at once (a resumed demo: those not begun), so the eval set does not
    # find the disk full after the train set; each `laom collect` checks its own rest.
    fresh = sum(n for path, n in ((train, episodes), (evals, eval_episodes)) if not path.exists())
    need = collection_bytes(fresh, episode_steps, img_hw)
    check_free_space(folder, need, "--out", compressed=False, what="its datasets need", compress_hint=False)
    data.mkdir(parents=True, exist_ok=True)
    expert_flags = [] if expert is None else ["--expert", expert]
    common = ["--task", task, "--difficulty", difficulty, "--img-hw", str(img_hw),
              "--workers", str(workers), *expert_flags]
    _run(["collect", *common, "--episodes", str(episodes), "--seed", "0",
          "--max-steps", str(episode_steps), "--out", str(train)])
    _run(["collect", *common, "--episodes", str(eval_episodes), "--split", "eval", "--seed", "1",
          "--max-steps", str(episode_steps), "--out", str(evals)])
    sweep = folder / "sweep"
    # Policies are scored over as many steps as the expert's trajectories have, or their
    # returns and the expert's would not be on one scale.
    short = ["--max-steps", str(episode_steps)] if episode_steps < 1000 else []
    _run([
        "sweep", "--tasks", task, "--methods", methods, "--labeled", str(labeled),
        "--seeds", "0", "--data", str(train), "--eval-data", str(evals), "--out", str(sweep),
        "--preset", preset, "--episodes", str(rollouts), "--chunk", str(episode_steps),
        "--workers", str(workers), "--normalizer", "auto", *short, *extra,
    ])
    report = folder / "report"
    _run(["report", str(sweep), "--out", str(report), "--paper"])
    from laom.experiments.report import expert_return

    print_summary(sweep, report, time.perf_counter() - start, expert_return(str(train)), task)
    return 0


# Probe MSE / chance at or above which a latent action model has learned too little of the
# actions for its return to say anything about the method (the paper's LAOM under
# distractors: 2.74 of ~35, under 0.1).
LATENTS_UNLEARNED = 0.5
# The paper's ordering of the probes under distractors, lowest (closest to the true
# actions) first: supervision helps, and LAOM beats LAPO.
PAPER_PROBE_ORDER = ("laom-labels", "laom", "lapo")


def summary_lines(runs: list[RunRecord], expert: float | None) -> tuple[list[list[str]], list[str]]:
    """The summary table's rows and the notes under it."""
    full = [r.return_mean for r in runs if r.method == "bc-full" and r.return_mean is not None]
    bc_full = sum(full) / len(full) if full else None
    works = bool(expert and bc_full is not None and normaliser_works(bc_full, expert))
    rows = []
    for run in sorted(runs, key=lambda r: (r.method, r.labeled or 0)):
        probe = run.action_probe_mse
        base = run.action_probe_baseline_mse
        ret_mean, ret_std = run.return_mean, run.return_std
        norm = run.normalized_return
        rows.append([
            str(run.method),
            "all" if run.labeled in (None, "full") else str(run.labeled),
            "-" if probe is None or not base else f"{probe / base:.2f}",
            "-" if ret_mean is None else f"{ret_mean:.0f} ± {ret_std:.0f}",
            "-" if ret_mean is None or not expert else f"{100 * ret_mean / expert:.0f}%",
            "-" if norm is None or not works else f"{norm:.2f}",
        ])  # fmt: skip
    notes = [
        "probe: linear-probe MSE (latent action -> true action, held-out videos) / action variance; 1 = chance",
        f"expert: mean return of the collected trajectories = {expert:.0f}" if expert else "expert: unknown",
    ]
    by_method: dict[str, list[float]] = {}  # probe MSE / chance of every run, per method
    for r in runs:
        if r.action_probe_mse is not None and r.action_probe_baseline_mse:
            by_method.setdefault(str(r.method), []).append(r.action_probe_mse / r.action_probe_baseline_mse)
    rel = [v for values in by_method.values() for v in values]
    if rel and min(rel) >= LATENTS_UNLEARNED:
        notes.append(
            f"latent action models: every probe is at {min(rel):.2f}-{max(rel):.2f} of chance, so at this compute "
            "their latents carry little of the true actions and their returns cannot show the paper's ordering "
            "(LAOM+supervision > LAOM > LAPO); docs/lam_probes.md has the curves at the CPU preset"
        )
    if len(by_method) >= 2:  # the ordering is the finding a reader checks first
        mean = {m: sum(v) / len(v) for m, v in by_method.items()}
        ranked = sorted(mean, key=mean.__getitem__)
        expected = [m for m in PAPER_PROBE_ORDER if m in mean]
        verdict = "the paper's" if [m for m in ranked if m in expected] == expected else "not the paper's"
        notes.append(
            "probe order: " + " < ".join(f"{m} {mean[m]:.2f}" for m in ranked)
            + (f"; {verdict} ordering ({' < '.join(expected)})" if len(expected) >= 2 else "")
        )
    if bc_full is not None and not works:
        share = f"{100 * bc_full / expert:.0f}%" if expert else "an unknown share"
        notes.append(
            f"norm. (return / BC-full's) not shown: BC-full reached {share} of the expert, "
            f"below {NORMALISER_MIN_SHARE:.0%}, so it is no normaliser at this compute"
        )
    elif bc_full is not None:
        notes.append(f"norm.: return / BC-full's ({bc_full:.0f})")
    return rows, notes


def print_summary(
    sweep: Path, report: Path, seconds: float, expert: float | None = None, task: str = "cheetah-run"
) -> None:
    """One screen: probe quality and return per method beside the expert's, and where the
    plots are."""
    from laom.experiments.report import load_runs

    runs, _ = load_runs(sweep)
    rows, notes = summary_lines(runs, expert)
    print(f"laom demo: {task} with distractors")
    # Plain lines, never wrapped: a log or CI page keeps each note on one line.
    for line in format_table(["method", "labels", "probe", "return", "% expert", "norm."], rows):
        print(line)
    for note in notes:
        print(note)
    print(f"plots and tables: {report}/returns.png, {report}/probe_mse.png, {report}/curves.png, {report}/results.md")
    print(f"finished in {seconds / 60:.1f} min", flush=True)


def format_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Aligned text columns (the first left-aligned, the rest right-aligned) under a rule."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]
