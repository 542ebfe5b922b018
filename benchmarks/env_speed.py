"""Environment throughput: random-action steps/s with all three distractors on.

    MUJOCO_GL=egl .venv/bin/python benchmarks/env_speed.py [--steps 3000] [--tasks ...]

Prints, per task, steps/s of one process and the sum over 2 spawned worker processes
(scale_easy_video_hard, 64 px, procedural backgrounds, fast render), plus two reference
points on cheetah-run: our quality render, and dm_control's own ``physics.render`` at
its default settings (what a plain dm_control pixel wrapper does per step).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

from laom.envs.bench import measure

TASKS = ["cheetah-run", "walker-run", "hopper-hop", "humanoid-walk"]


def dm_control_default_render(task: str, steps: int) -> float:
    from laom.envs.tasks import load_dmc

    env = load_dmc(task, 0)
    env.reset()
    rng = np.random.default_rng(0)
    spec = env.action_spec()
    env.physics.render(64, 64, camera_id=0)
    start = time.perf_counter()
    for _ in range(steps):
        ts = env.step(rng.uniform(spec.minimum, spec.maximum))
        env.physics.render(64, 64, camera_id=0)
        if ts.last():
            env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000, help="steps per process")
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    parser.add_argument("--img-hw", type=int, default=64)
    args = parser.parse_args()

    print(f"cpu cores: {os.cpu_count()}, steps per process: {args.steps}, {args.img_hw} px")
    print(f"{'task':<16} {'1 process':>10} {'2 workers':>10}   (steps/s, scale_easy_video_hard, fast)")
    for task in args.tasks:
        kw = {"task": task, "difficulty": "scale_easy_video_hard", "img_hw": args.img_hw}
        one = measure(kw, steps=args.steps, workers=1)
        two = measure(kw, steps=args.steps, workers=2)
        print(f"{task:<16} {one:>10.0f} {two:>10.0f}", flush=True)
    kw = {"task": "cheetah-run", "difficulty": "scale_easy_video_hard", "img_hw": args.img_hw}
    quality = measure({**kw, "render": "quality"}, steps=max(200, args.steps // 5))
    vanilla = measure({**kw, "difficulty": "vanilla"}, steps=args.steps)
    plain = dm_control_default_render("cheetah-run", max(200, args.steps // 10))
    print(f"cheetah-run, quality render, distractors on: {quality:.0f} steps/s")
    print(f"cheetah-run, fast render, vanilla (no distractors): {vanilla:.0f} steps/s")
    print(f"cheetah-run, dm_control physics.render default (no distractors): {plain:.0f} steps/s")


if __name__ == "__main__":
    main()
