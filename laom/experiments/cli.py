"""``laom demo``, ``laom sweep``, ``laom records`` and ``laom report``.

The parsers and the unpacking of their flags live here and the work in
:mod:`laom.experiments.demo` / :mod:`laom.experiments.sweep` /
:mod:`laom.experiments.report`, imported only when a command runs, so ``laom --help``
stays instant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from laom import methods

# The method registry's names (laom.methods imports no torch, so `laom --help` stays instant).
METHODS = methods.names()
# The paper's grid: its five methods (bc-full runs anyway as the normaliser).
DEFAULT_METHODS = "bc,idm,lapo,laom,laom-labels"
# LAPO is left out of the demo by default: its pixel decoder makes its LAM the slowest one,
# and with its latent BC, decoder and evaluation it adds 5.0 minutes to the demo's 12.9 on
# 2 AVX2 cores (README), past 15; `--methods bc,lapo,laom,laom-labels` adds it.
DEMO_METHODS = "bc,laom,laom-labels"


def sweep_command(args: argparse.Namespace, extra: list[str]) -> int:
    """``laom sweep``: the parsed flags to a checked config, then ``--plan`` or the sweep."""
    from laom.training.cli import maybe_reexec_with_malloc_env

    maybe_reexec_with_malloc_env()
    from laom.errors import LaomError, require
    from laom.experiments import cost
    from laom.experiments.sweep import run_sweep
    from laom.experiments.sweep_config import SweepOptions, make_config, parse_first
    from laom.outputs import check_output

    check_output(args.out, "--out", kind="dir", create_parents=True)  # before the files are read
    if args.records:
        from laom.experiments.sweep_records import check_records_dir

        check_records_dir(Path(args.records), Path(args.out), "--records")
    require(args.plan or not args.recalibrate, "--recalibrate: only with --plan (a sweep itself never calibrates)")
    rates = args.rates or str(cost.default_rates_path())
    if args.plan:
        check_output(rates, "--rates", kind="file", create_parents=True)
    # A --rates that is not a rates file is refused before any work; the default file is
    # only read at the end of a plain sweep, whose prediction notes a bad one and goes on.
    book = cost.RateBook.load(rates) if (args.plan or args.rates) else None
    cfg = make_config(
        args.tasks, args.methods, args.labeled, args.seeds, args.data, args.eval_data, preset=args.preset,
        episodes=args.episodes, eval_seed=args.eval_seed, max_steps=args.max_steps, normalizer=args.normalizer,
        chunk=args.chunk, overrides=extra, log=print, until=args.until or "",
    )  # fmt: skip
    first = parse_first(args.first, cfg.methods, cfg.labeled, tasks=cfg.tasks, seeds=cfg.seeds) if args.first is not None else []
    opts = SweepOptions(cfg, args.out, jobs=args.jobs, workers=args.workers, num_envs=args.num_envs, force=args.force,
                        progress=not args.no_progress, rates=rates, records=args.records or "", first=first)  # fmt: skip
    if book is not None and args.plan:
        cost.run_plan(cfg, args.out, book, jobs=args.jobs, workers=args.workers, num_envs=args.num_envs,
                      force=args.force, recalibrate=args.recalibrate, first=first,
                      log=lambda m: print(m, flush=True))  # fmt: skip
        return 0
    result = run_sweep(opts, log=lambda m: print(m, flush=True))
    print(f"{result.finished} run(s) recorded in {result.runs_file} ({result.already_done} were already done)")
    if result.failed:
        first = result.failed[0]
        raise LaomError(
            f"{len(result.failed)} of {result.planned - result.already_done} run(s) failed or were skipped "
            f"(first: {first.job.id}: {first.error}); logs in {Path(opts.out) / 'logs'}; re-run the same command to retry"
        )
    print(f"report: laom report {opts.out} --out {Path(opts.out) / 'report'}")
    return 0


def _records(args: argparse.Namespace) -> int:
    from laom.experiments.sweep_records import restore_records, save_records

    if args.action == "save":
        from laom.experiments.sweep_records import check_records_dir

        check_records_dir(Path(args.records), Path(args.sweep), "RECORDS")
        done = save_records(Path(args.sweep), Path(args.records))
        print(f"{args.records}: {done.copied} record(s) written, {done.unchanged} unchanged")
        for rel in done.too_large or []:
            print(f"left out (over 2 MB, not a record): {rel}", file=sys.stderr)
    else:
        done = restore_records(Path(args.records), Path(args.sweep))
        print(f"{args.sweep}: {done.copied} record(s) restored, {done.unchanged} already there (kept)")
    return 0


def _report(args: argparse.Namespace) -> int:
    from laom.experiments.report import run_report

    return run_report(args.sweeps, out=args.out, paper=args.paper, readme=args.readme)


def _demo(args: argparse.Namespace, extra: list[str]) -> int:
    from laom.experiments.demo import run_demo

    return run_demo(
        out=args.out, task=args.task, methods=args.methods, episodes=args.episodes, eval_episodes=args.eval_episodes,
        episode_steps=args.episode_steps, labeled=args.labeled, rollouts=args.rollouts, difficulty=args.difficulty,
        img_hw=args.img_hw, workers=args.workers, expert=args.expert, preset=args.preset, extra=extra,
    )  # fmt: skip


def register_demo(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="collect a small dataset, train LAOM/LAOM+supervision/BC (and LAPO on request), evaluate, report",
        description=(
            "The end-to-end study at laptop scale, with built-in procedural distractors and the "
            "built-in expert (no downloads). Re-running resumes. Extra --STAGE.FIELD VALUE "
            "options go to the sweep."
        ),
    )
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    p.add_argument("--task", default="cheetah-run", help="the task to collect and train on")
    p.add_argument("--difficulty", default="scale_easy_video_hard", help="distractor preset (laom env list)")
    p.add_argument("--expert", default=None, help="expert to collect with (default: built-in)")
    p.add_argument("--episodes", type=int, default=20, help="trajectories in the unlabelled dataset")
    p.add_argument("--eval-episodes", type=int, default=4, help="trajectories in the held-out (novel videos) dataset")
    p.add_argument("--episode-steps", type=int, default=1000, help="steps per collected trajectory")
    p.add_argument("--labeled", type=int, default=4, help="labelled trajectories")
    budgeted = [m.name for m in methods.METHODS.values() if m.reads("labeled")]  # bc-full runs anyway
    p.add_argument("--methods", default=DEMO_METHODS, help=f"comma-separated: {', '.join(budgeted)}")
    p.add_argument("--preset", default="demo", help="stage presets: demo (sized for 15 minutes on 2 cores), cpu, paper, or a folder")
    p.add_argument("--rollouts", type=int, default=5, help="online evaluation episodes per method")
    p.add_argument("--img-hw", type=int, default=64, help="frame height and width in pixels")
    p.add_argument("--workers", type=int, default=2, help="processes for collection and evaluation")
    p.set_defaults(func=_demo, accepts_extra=True)


def register(subparsers: argparse._SubParsersAction) -> None:
    register_demo(subparsers)
    p = subparsers.add_parser(
        "sweep",
        allow_abbrev=False,  # --seed (a stage override) must not be taken for --seeds
        help="run the paper's grid: tasks x methods x labelled budgets x seeds (resumable)",
        description=(
            "Run `laom pipeline` for every (task, method, labelled budget, seed) into SWEEP/cache/, "
            "sharing LAMs and latent BC across budgets, and record each finished run in SWEEP/runs.jsonl. "
            "Re-running the same command skips finished runs. Stage settings (--STAGE.FIELD VALUE or "
            "--FIELD VALUE) go to every run; every stage's seed is the sweep seed."
        ),
    )
    p.add_argument("--tasks", required=True, help="comma-separated, e.g. cheetah-run,walker-run")
    p.add_argument("--methods", default=DEFAULT_METHODS, help=f"comma-separated from {', '.join(METHODS)}")
    p.add_argument("--labeled", default="2,4,8,16,32,64,128", help="labelled trajectory budgets (chunks of --chunk steps)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    p.add_argument("--data", required=True, help="large dataset: a file, or a template with {task}")
    p.add_argument("--eval-data", dest="eval_data", default=None, help="held-out dataset (file or {task} template)")
    p.add_argument("--out", required=True, help="sweep directory (created; resumed if it exists)")
    p.add_argument("--preset", default="cpu", help="cpu (default), paper, or a folder of <stage>.yaml files")
    p.add_argument("--episodes", type=int, default=25, help="evaluation episodes per run (0: no evaluation)")
    p.add_argument("--eval-seed", dest="eval_seed", type=int, default=0,
                   help="seed of the evaluation episodes, the same for every run so methods meet the same episodes")
    p.add_argument("--max-steps", dest="max_steps", type=int, default=None, help="cut evaluation episodes short (smoke tests)")
    p.add_argument("--normalizer", default="auto",
                   help="auto (return of BC on the full dataset, mean over seeds), paper (the paper's BC-full returns), none, a number, or another sweep directory (its normaliser per task)")
    p.add_argument("--chunk", type=int, default=1000, help="steps per labelled trajectory (longer ones are cut)")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (spawned processes; default 1)")
    p.add_argument("--first", default=None,
                   help="comma-separated runs that start before the others', entry by entry in this order (default: "
                        "by budget, every method's small budgets first): a method of --methods (lapo), one budget of it "
                        "(laom-labels/128), one seed (lapo@1, lapo/128@1), each optionally of one task "
                        "(walker-run:lapo@1); e.g. to finish one LAM method's budgets while its LAM is at hand, or one "
                        "seed of every method before the next, on a machine that may not last")
    p.add_argument("--until", default=None, metavar="STAGE",
                   help="every run stops after this stage: lam records each LAM's probes alone (a finding's seeds for "
                        "a fifth of the compute; needs --episodes 0; a sweep folder of its own)")
    p.add_argument("--workers", type=int, default=0, help="evaluation environment processes per run")
    p.add_argument("--num-envs", dest="num_envs", type=int, default=4, help="environments stepped in lockstep")
    p.add_argument("--force", action="store_true", help="continue a sweep dir made with another config")
    p.add_argument("--no-progress", dest="no_progress", action="store_true", help="no progress bars")
    p.add_argument("--plan", action="store_true",
                   help="print every stage that would train or be reused and its estimated time, then exit; "
                        "measures this machine's missing rates first (a short calibration)")
    p.add_argument("--rates", default=None,
                   help="file of this machine's measured rates (default: $XDG_CACHE_HOME/laom/stage-rates.json)")
    p.add_argument("--recalibrate", action="store_true", help="with --plan: measure every rate again")
    p.add_argument("--records", default=None,
                   help="a folder that keeps the sweep's text records (laom records): restored into --out first, "
                        "saved after every recorded run, e.g. to commit a study that outlives its machine")
    p.set_defaults(func=sweep_command, accepts_extra=True)

    k = subparsers.add_parser(
        "records",
        help="keep a sweep's small records (summaries, curves, logs) apart from its weights and data",
        description=(
            "save: mirror SWEEP's text records (runs.jsonl, sweep.yaml, every stage's config, summary and "
            "metrics, evaluation results, logs) into RECORDS, leaving out weights, latent caches, labelled "
            "subsets and checkpoints, e.g. to commit a study to git. restore: put RECORDS back into SWEEP "
            "on a new machine, never over a file SWEEP has; the sweep then skips the recorded runs and "
            "trains again only the stages an unrecorded run needs. laom report reads RECORDS as a sweep."
        ),
    )
    k.add_argument("action", choices=("save", "restore"), help="save SWEEP into RECORDS, or restore RECORDS into SWEEP")
    k.add_argument("sweep", metavar="SWEEP", help="the sweep directory (made by laom sweep)")
    k.add_argument("records", metavar="RECORDS", help="the records folder")
    k.set_defaults(func=_records)

    r = subparsers.add_parser(
        "report",
        help="figures and tables (return vs labelled trajectories, probe MSE) from a sweep",
        description=(
            "Read SWEEP/runs.jsonl and write returns.png, probe_mse.png, results.md and summary.json. "
            "Lines are means over seeds; bands and ± are the population std over seeds."
        ),
    )
    r.add_argument("sweeps", nargs="+", metavar="SWEEP",
                   help="sweep directory (made by laom sweep); more as DIR or NAME=DIR, whose methods "
                        "are shown as 'method (NAME)', e.g. a variant swept with other stage settings")  # fmt: skip
    r.add_argument("--out", default=None, help="report folder (default: the first SWEEP/report)")
    r.add_argument("--paper", action="store_true", help="draw the paper's numbers (dashed) beside ours")
    r.add_argument("--readme", default=None, metavar="FILE",
                   help="also render the headline (table per task and setting, the findings' verdicts) from the "
                        "written summary.json into FILE, between its <!-- headline:start --> and "
                        "<!-- headline:end --> lines (e.g. README.md)")  # fmt: skip
    r.set_defaults(func=_report)
