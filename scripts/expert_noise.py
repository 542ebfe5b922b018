"""How an expert's return holds up under Gaussian noise on its actions.

Why: a BC policy's action error acts like noise on the expert's actions; an expert whose
gait breaks under small noise cannot be imitated reliably by an imperfect policy.

    python scripts/expert_noise.py builtin|EXPERT_PATH 0,0.1,0.2 [--task cheetah-run]
"""

from __future__ import annotations

import argparse
import os

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("expert", help="builtin, or an expert path that laom collect --expert takes")
    p.add_argument("sigmas", help="comma-separated noise standard deviations")
    p.add_argument("--task", default="cheetah-run")
    p.add_argument("--episodes", type=int, default=10)
    args = p.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    from laom.data.collect import episode_seed, load_expert
    from laom.envs import make

    env = make(args.task, difficulty="scale_easy_video_hard", img_hw=64, frame_stack=1, seed=0)
    expert = load_expert(None if args.expert == "builtin" else args.expert, args.task)
    for sigma in (float(x) for x in args.sigmas.split(",")):
        returns = []
        for i in range(args.episodes):
            rng = np.random.default_rng([7, i])
            _, info = env.reset(seed=episode_seed(0, 1000 + i))
            total, done = 0.0, False
            while not done:
                action = expert.act(np.asarray(info["state"], np.float32))
                action = (action + sigma * rng.standard_normal(action.shape)).astype(np.float32)
                _, reward, terminated, truncated, info = env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        print(f"{args.expert} sigma {sigma}: mean {np.mean(returns):.1f}, returns {np.round(returns).astype(int).tolist()}")


if __name__ == "__main__":
    main()
