"""``laom expert ...``: train, evaluate, export and list state experts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from laom.errors import LaomError
from laom.experts.builtin import BUILTIN_PREFIX, resolve


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("expert", help="train, evaluate and export state experts")
    sub = parser.add_subparsers(dest="expert_command", metavar="SUBCOMMAND")
    sub.required = True

    p = sub.add_parser(
        "train",
        help="train a state expert with stable-baselines3",
        description="Train a state expert; re-running the same command resumes an interrupted run.",
    )
    p.add_argument("task", help="dm_control task as domain-task, e.g. cheetah-run")
    p.add_argument("--steps", type=int, required=True, help="environment steps in total")
    p.add_argument("--out", required=True, help="run folder (best.npz, last.npz, expert.json, evals.csv)")
    p.add_argument("--algo", default="sac", choices=["sac", "td3"], help="stable-baselines3 algorithm")
    p.add_argument("--seed", type=int, default=0, help="seed of the networks and the environment")
    p.add_argument("--eval-every", type=int, default=10_000, help="steps between greedy evaluations")
    p.add_argument("--eval-episodes", type=int, default=5, help="episodes per periodic evaluation")
    p.add_argument("--learning-starts", type=int, default=5_000, help="random steps before updates")
    p.add_argument("--batch-size", type=int, default=256, help="replay batch size")
    p.add_argument("--lr", type=float, default=3e-4, help="learning rate of actor and critic")
    p.add_argument("--net", type=int, nargs="+", default=[256, 256], help="hidden sizes of actor and critic")
    p.add_argument("--train-freq", type=int, default=1, help="env steps between update rounds")
    p.add_argument("--gradient-steps", type=int, default=1, help="updates per round")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for small nets)")
    p.add_argument("--restart", action="store_true", help="discard an existing run in --out instead of resuming")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (evaluations are still printed)")
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="greedy returns of an expert (mean ± std)")
    p.add_argument("path", help=f"expert path (any supported format), or {BUILTIN_PREFIX}TASK / builtin for a shipped one")
    p.add_argument("--task", default=None, help="needed when the files do not say which task")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes")
    p.add_argument("--seed", type=int, default=0, help="episode i is reset with seed + i")
    p.add_argument("--json", dest="as_json", action="store_true", help="print one JSON line")
    p.set_defaults(func=_eval)

    p = sub.add_parser("export", help="write any expert as a compact laom .npz (actor weights only)")
    p.add_argument("path", help=f"expert path (any supported format) or {BUILTIN_PREFIX}TASK")
    p.add_argument("out", help="output .npz file")
    p.add_argument("--task", default=None, help="the task the expert acts in, when its file does not say")
    p.set_defaults(func=_export)

    p = sub.add_parser("list", help="list the experts shipped with laom")
    p.set_defaults(func=_list)


def _train(args: argparse.Namespace) -> int:
    from laom.experts.train import TrainConfig, train

    cfg = TrainConfig(
        task=args.task,
        steps=args.steps,
        out=args.out,
        algo=args.algo,
        seed=args.seed,
        eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        learning_starts=args.learning_starts,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        net=list(args.net),
        train_freq=args.train_freq,
        gradient_steps=args.gradient_steps,
        threads=args.threads,
        restart=args.restart,
    )
    meta = train(cfg, progress=not args.no_progress)
    best = meta.get("best") or {}
    print(
        f"done: {meta['steps_done']} steps in {meta['wall_s'] / 60:.1f} min; best eval return "
        f"{best.get('mean', float('nan')):.1f} at step {best.get('step', '-')}; load it with "
        f"laom.experts.load({str(Path(args.out))!r})"
    )
    return 0


def _eval(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from laom.experts import check_task
    from laom.experts.train import evaluate

    if args.episodes < 1:
        raise LaomError(f"--episodes {args.episodes}: expected an integer >= 1")
    if args.seed < 0:
        raise LaomError(f"--seed {args.seed}: expected an integer >= 0")
    expert = resolve(args.path, args.task)
    task = args.task or expert.task
    if not task:
        raise LaomError(f"{args.path}: the files do not say which task this expert is for; pass --task")
    check_task(expert, task)
    start = time.monotonic()
    returns = evaluate(expert, task, args.episodes, seed=args.seed)
    mean, std = float(np.mean(returns)), float(np.std(returns))
    if args.as_json:
        print(json.dumps({"path": args.path, "task": task, "seed": args.seed, "episodes": args.episodes, "mean": mean, "std": std, "returns": returns}))
    else:
        print(f"{expert.describe()}")
        print("returns: " + " ".join(f"{r:.1f}" for r in returns))
        print(
            f"{task}: mean return {mean:.1f} ± {std:.1f} over {args.episodes} episodes "
            f"(seeds {args.seed}..{args.seed + args.episodes - 1}, {time.monotonic() - start:.0f} s)"
        )
    return 0


def _export(args: argparse.Namespace) -> int:
    from laom.outputs import check_output

    check_output(args.out, "OUT", create_parents=True)
    expert = resolve(args.path, args.task)
    if not expert.task:
        raise LaomError(f"{args.path}: the files do not say which task this expert is for; pass --task")
    out = expert.save(args.out, exported_from=str(args.path))
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB): {expert.describe()}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from laom.experts.builtin import available_builtin, builtin_info

    tasks = available_builtin()
    if not tasks:
        print("no built-in experts")
    for task in tasks:
        info = builtin_info(task)
        score = info.get("eval", {})
        extra = f"mean return {score['mean']:.1f} ± {score['std']:.1f} ({score['episodes']} episodes)" if score else ""
        print(f"{BUILTIN_PREFIX}{task}  {info.get('algo', '')}  {extra}")
    return 0
