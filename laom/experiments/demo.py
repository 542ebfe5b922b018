"""``laom demo``: the whole study, small enough for a laptop CPU.

Collects a cheetah-run dataset with procedural distractors using the built-in expert,
trains LAPO, LAOM, LAOM+supervision and BC at the CPU preset, evaluates them online,
writes the report and prints a one-screen summary. Every step is a regular laom command
run in this process, so the demo is resumable for free: each of them skips finished work.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from laom.errors import LaomError

DEMO_METHODS = "bc,lapo,laom,laom-labels"


def _run(argv: list[str]) -> None:
    from laom.cli import main

    print(f"\n$ laom {' '.join(argv)}", flush=True)
    code = main(argv)
    if code != 0:
        raise LaomError(f"demo step failed (exit {code}): laom {' '.join(argv)}")


def demo_command(args: argparse.Namespace, extra: list[str]) -> int:
    start = time.perf_counter()
    out = Path(args.out)
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    task = args.task
    train = data / f"{task}-train.hdf5"
    evals = data / f"{task}-eval.hdf5"
    expert = [] if args.expert is None else ["--expert", args.expert]
    common = ["--task", task, "--difficulty", args.difficulty, "--img-hw", str(args.img_hw),
              "--workers", str(args.workers), *expert]
    _run(["collect", *common, "--episodes", str(args.episodes), "--seed", "0",
          "--max-steps", str(args.episode_steps), "--out", str(train)])
    _run(["collect", *common, "--episodes", str(args.eval_episodes), "--split", "eval", "--seed", "1",
          "--max-steps", str(args.episode_steps), "--out", str(evals)])
    sweep = out / "sweep"
    _run([
        "sweep", "--tasks", task, "--methods", args.methods, "--labeled", str(args.labeled),
        "--seeds", "0", "--data", str(train), "--eval-data", str(evals), "--out", str(sweep),
        "--preset", args.preset, "--episodes", str(args.rollouts), "--chunk", str(args.episode_steps),
        "--workers", str(args.workers), "--normalizer", "auto", *extra,
    ])
    report = out / "report"
    _run(["report", str(sweep), "--out", str(report), "--paper"])
    print_summary(sweep, report, time.perf_counter() - start)
    return 0


def print_summary(sweep: Path, report: Path, seconds: float) -> None:
    """One screen: probe MSE and return per method, and where the plots are."""
    from rich.console import Console
    from rich.table import Table

    from laom.experiments.report import load_runs

    runs, _ = load_runs(sweep)
    table = Table(title="laom demo: cheetah-run with distractors", min_width=78)
    # Short headers: the summary must fit an 80-column terminal (or a CI log).
    for col in ("method", "labels", "probe MSE", "act. var.", "return", "norm."):
        table.add_column(col, justify="right" if col != "method" else "left", no_wrap=True)
    for run in sorted(runs, key=lambda r: (r.get("method", ""), r.get("labeled", 0))):
        probe = run.get("action_probe_mse")
        base = run.get("action_probe_baseline_mse")
        ret_mean, ret_std = run.get("return_mean"), run.get("return_std")
        norm = run.get("normalized_return")
        table.add_row(
            str(run.get("method")),
            "all" if run.get("labeled") in (None, "full") else str(run["labeled"]),
            "-" if probe is None else f"{probe:.4f}",
            "-" if base is None else f"{base:.4f}",
            "-" if ret_mean is None else f"{ret_mean:.1f} ± {ret_std:.1f}",
            "-" if norm is None else f"{norm:.2f}",
        )
    table.caption = (
        "probe MSE: linear probe latent action -> true action on the held-out videos "
        "(act. var.: the MSE of predicting the mean); norm.: return / BC-full's return"
    )
    console = Console()
    console.print(table)
    console.print(f"plots and table: {report}/returns.png, {report}/probe_mse.png, {report}/results.md")
    console.print(f"finished in {seconds / 60:.1f} min")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="collect a small dataset, train LAPO/LAOM/LAOM+supervision/BC, evaluate, report",
        description=(
            "The end-to-end study at laptop scale, with built-in procedural distractors and the "
            "built-in expert (no downloads). Re-running resumes. Extra --STAGE.FIELD VALUE "
            "options go to the sweep."
        ),
    )
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    p.add_argument("--task", default="cheetah-run")
    p.add_argument("--difficulty", default="scale_easy_video_hard")
    p.add_argument("--expert", default=None, help="expert to collect with (default: built-in)")
    p.add_argument("--episodes", type=int, default=20, help="trajectories in the unlabelled dataset")
    p.add_argument("--eval-episodes", type=int, default=4, help="trajectories in the held-out (novel videos) dataset")
    p.add_argument("--episode-steps", type=int, default=1000, help="steps per collected trajectory")
    p.add_argument("--labeled", type=int, default=4, help="labelled trajectories")
    p.add_argument("--methods", default=DEMO_METHODS)
    p.add_argument("--preset", default="cpu")
    p.add_argument("--rollouts", type=int, default=5, help="online evaluation episodes per method")
    p.add_argument("--img-hw", type=int, default=64)
    p.add_argument("--workers", type=int, default=2, help="processes for collection and evaluation")
    p.set_defaults(func=demo_command, accepts_extra=True)
