"""``laom evaluate --policy RUN [--episodes 25] [--workers W] [--seed S] [--normalizer X]``

Runs the acting policy of a decoder, idm-bc or BC-baseline run in the environment its
training data came from (task, difficulty, distractor dynamics, background split, image
size, frame stack: all read from the run), writes ``RUN/eval-<E>ep-s<S>-<hash>.json``
(one file per setting, never replaced by another setting's result) and prints the mean
return +- std and where it went. ``RUN/eval.json`` is the run's reference evaluation
(the largest in its own environment; see :mod:`laom.evaluation.results`), what
``--normalizer RUN`` reads: a smaller evaluation never replaces it. ``--normalizer``
(a number, or a run evaluated before, e.g. BC-full) adds the normalised return.
"""

from __future__ import annotations

import argparse

from laom.errors import LaomError
from laom.evaluation.run import evaluate_run, normalizer_source


def _evaluate_command(args: argparse.Namespace) -> int:
    normalizer, source = normalizer_source(args.normalizer) if args.normalizer is not None else (None, "")
    if args.episodes < 1:
        raise LaomError(f"--episodes {args.episodes}: expected at least 1")
    result = evaluate_run(
        args.policy, args.episodes, seed=args.seed, workers=args.workers, num_envs=args.num_envs,
        max_steps=args.max_steps, split=args.split, difficulty=args.difficulty, backgrounds=args.backgrounds,
        device=args.device, normalizer=normalizer, progress=not args.no_progress,
    )  # fmt: skip
    line = f"return {result['mean']:.2f} ± {result['std']:.2f} over {result['episodes']} episodes"
    if normalizer is not None:
        line += f"; normalized {result['normalized_return']:.3f} ± {result['normalized_std']:.3f} (÷ {normalizer:g}{' from ' + source if source else ''})"
    print(line)
    print(f"written: {result['file']}")
    print(result["reference"])
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate an acting policy (decoder, idm-bc or bc-baseline run) online in its environment",
        description=(
            "Run a trained policy in the distracting environment of its training data and report the mean "
            "return. Episode i uses a seed derived from (--seed, i), so results do not depend on --workers."
        ),
    )
    p.add_argument("--policy", required=True, help="run directory holding policy.pt (decoder, idm-bc or bc-baseline run, or a one-stage idm run of an earlier laom)")
    p.add_argument("--episodes", type=int, default=25, help="evaluation episodes")
    p.add_argument("--seed", type=int, default=0, help="episode i is reset with a seed from (seed, i)")
    p.add_argument("--workers", type=int, default=0, help="environment processes (0: in this process)")
    p.add_argument("--num-envs", dest="num_envs", type=int, default=4, help="environments stepped in lockstep")
    p.add_argument("--normalizer", default=None, help="reference return: a number, or an evaluated run (BC-full)")
    p.add_argument("--split", default=None, choices=("train", "eval"), help="background videos (default: the dataset's)")
    p.add_argument("--difficulty", default=None, help="distractor preset (default: the dataset's)")
    p.add_argument("--backgrounds", default=None, help="background video folder (default: the dataset's)")
    p.add_argument("--max-steps", dest="max_steps", type=int, default=None, help="cut episodes short (default: full)")
    p.add_argument("--device", default="cpu", help="policy device: cpu, cuda, auto")
    p.add_argument("--no-progress", dest="no_progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_evaluate_command)
