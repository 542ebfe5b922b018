"""``laom env ...``: list tasks, preview distractors, measure speed."""

from __future__ import annotations

import argparse


def _add_env_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", help="dm_control task as domain-task, e.g. cheetah-run")
    p.add_argument("--difficulty", default="scale_easy_video_hard",
                   help="vanilla, easy, medium, hard or scale_easy_video_hard (default)")
    p.add_argument("--split", default="train", choices=("train", "eval"), help="background videos: train or eval")
    p.add_argument("--backgrounds", default=None,
                   help="DAVIS-2017 folder or folder of videos (default: built-in procedural)")
    p.add_argument("--img-hw", type=int, default=64, help="image height and width in pixels")
    p.add_argument("--render", default="fast", choices=("fast", "quality"), help="fast (default) or quality")
    p.add_argument("--static", action="store_true", help="static distractors (no per-step change)")
    p.add_argument("--camera-scale", type=float, default=None, help="override the camera distractor scale")
    p.add_argument("--color-scale", type=float, default=None, help="override the colour distractor scale")
    p.add_argument("--no-background", action="store_true", help="turn the background video off")
    p.add_argument("--seed", type=int, default=0, help="seed of the reset and the random actions")


def _make_kwargs(args: argparse.Namespace) -> dict:
    return {
        "task": args.task,
        "difficulty": args.difficulty,
        "split": args.split,
        "backgrounds": args.backgrounds,
        "img_hw": args.img_hw,
        "render": args.render,
        "dynamic": not args.static,
        "camera_scale": args.camera_scale,
        "color_scale": args.color_scale,
        "background": False if args.no_background else None,
    }


def check_flags(args: argparse.Namespace, **counts: int) -> None:
    """Refuse a bad flag in its own words (``--img-hw 8``) before an environment is built;
    ``counts`` are the command's own counts (``steps=...``), each at least 1."""
    import math

    from laom.envs import MAX_IMG_HW, MIN_IMG_HW, parse_task
    from laom.errors import require

    parse_task(args.task, flag="TASK")
    require(MIN_IMG_HW <= args.img_hw <= MAX_IMG_HW, f"--img-hw {args.img_hw}: expected {MIN_IMG_HW} to {MAX_IMG_HW} pixels")
    for flag in ("camera_scale", "color_scale"):
        value = getattr(args, flag)
        require(value is None or (math.isfinite(value) and 0 <= value <= 1),
                f"--{flag.replace('_', '-')} {value}: expected a number from 0 to 1")  # fmt: skip
    require(args.seed >= 0, f"--seed {args.seed}: expected an integer >= 0")
    for name, value in counts.items():
        require(value >= 1, f"--{name} {value}: expected an integer >= 1")


def _validate(args: argparse.Namespace) -> None:
    """Fail before spawning anything: build (and close) one environment."""
    from laom.envs import make

    make(frame_stack=1, seed=args.seed, **_make_kwargs(args)).close()


def cmd_list(args: argparse.Namespace) -> int:
    from laom.envs import DIFFICULTIES, all_tasks

    print("tasks:", " ".join(all_tasks()))
    print("difficulties:", " ".join(DIFFICULTIES))
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from pathlib import Path

    from laom.envs.bench import preview_grid, write_png
    from laom.errors import LaomError
    from laom.outputs import check_output

    check_flags(args, steps=args.steps, frames=args.frames)
    if args.frames > args.steps + 1:
        raise LaomError(f"--frames {args.frames}: a rollout of --steps {args.steps} has only {args.steps + 1} frames")
    if Path(args.out).suffix.lower() != ".png":
        raise LaomError(f"--out {args.out}: expected a .png file name")
    check_output(args.out, "--out")  # before the rollout
    grid = preview_grid(_make_kwargs(args), steps=args.steps, frames=args.frames, seed=args.seed)
    out = write_png(grid, args.out)
    print(f"wrote {out} ({args.frames} frames over {args.steps} steps of {args.task}, {args.difficulty})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from laom.envs.bench import measure

    check_flags(args, steps=args.steps, workers=args.workers)
    _validate(args)
    rate = measure(_make_kwargs(args), steps=args.steps, workers=args.workers, seed=args.seed)
    print(
        f"{args.task} {args.difficulty} {args.img_hw}px render={args.render} "
        f"workers={args.workers}: {rate:.0f} steps/s"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    env = sub.add_parser("env", help="Distracting Control Suite environments")
    env_sub = env.add_subparsers(dest="env_command", metavar="SUBCOMMAND")
    env_sub.required = True

    p = env_sub.add_parser("list", help="list tasks and difficulties")
    p.set_defaults(func=cmd_list)

    p = env_sub.add_parser("preview", help="write a grid of frames from a short random rollout")
    _add_env_args(p)
    p.add_argument("--out", default="preview.png", help="PNG to write (default preview.png)")
    p.add_argument("--steps", type=int, default=200, help="rollout length")
    p.add_argument("--frames", type=int, default=16, help="frames in the grid")
    p.set_defaults(func=cmd_preview)

    p = env_sub.add_parser("bench", help="print environment steps/s with random actions")
    _add_env_args(p)
    p.add_argument("--steps", type=int, default=2000, help="steps per worker")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (spawn)")
    p.set_defaults(func=cmd_bench)
