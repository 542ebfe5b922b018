"""Online evaluation speed: episodes/s of ``laom.evaluation.online.evaluate`` and its bound.

    MUJOCO_GL=egl .venv/bin/python benchmarks/eval_speed.py                     # cpu preset BC policy
    MUJOCO_GL=egl .venv/bin/python benchmarks/eval_speed.py --workers 2 --num-envs 4 --steps 200

An evaluation step is two things in turn: the policy's forward pass on the batch of
observations of every running environment, then one environment step each (render
included). Neither overlaps the other, so the lockstep loop cannot be faster than

    bound (steps/s) = 1 / (policy seconds per observation at batch ``num_envs``
                           + environment seconds per step / parallel environments)

where "parallel environments" is 1 in-process and ``min(processes, cores)`` with
``--workers`` (``evaluate`` then gives every environment its own process).
This script times the two parts alone (the policy on random frames at the evaluation's
batch; one environment stepping with random actions), prints the bound beside the measured
rate of ``evaluate`` with the same policy and settings, and the rate of the release's
design (``evaluate_bc``: one environment, a batch-1 forward per step) for comparison.
The policy is untrained: what it outputs does not change what a step costs, except that
an episode always runs to its time limit either way (1,000 steps on the DMC tasks).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch


def policy_seconds(policy, obs_shape: tuple[int, ...], batch: int, calls: int) -> float:
    """Seconds per observation of ``policy.act`` at ``batch`` (after 3 warm-up calls)."""
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 256, (batch, *obs_shape), dtype=np.uint8)
    for _ in range(3):
        policy.act(obs)
    start = time.perf_counter()
    for _ in range(calls):
        policy.act(obs)
    return (time.perf_counter() - start) / (calls * batch)


def env_seconds(env_kwargs: dict, steps: int) -> float:
    """Seconds per step of one environment with random actions (resets included)."""
    from laom.envs import make

    env = make(**env_kwargs)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    low, high = env.action_space.low, env.action_space.high
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(rng.uniform(low, high).astype(np.float32))
        if terminated or truncated:
            env.reset()
    seconds = (time.perf_counter() - start) / steps
    env.close()
    return seconds


def release_design(policy, env_kwargs: dict, steps: int) -> float:
    """Steps/s of one environment acted on by a batch-1 forward per step (the release's
    ``evaluate_bc`` loop)."""
    from laom.envs import make

    env = make(**env_kwargs)
    obs, _ = env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        action = policy.act(obs[None])[0]
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--task", default="cheetah-run")
    p.add_argument("--difficulty", default="scale_easy_video_hard")
    p.add_argument(
        "--preset",
        default="cpu",
        help="preset whose bc-baseline policy is timed (cpu, demo, paper)",
    )
    p.add_argument(
        "--num-envs", type=int, default=4, help="environments in lockstep (the sweep's default: 4)"
    )
    p.add_argument(
        "--workers", type=int, default=0, help="environment processes (0: in this process)"
    )
    p.add_argument(
        "--steps", type=int, default=200, help="steps per environment for each measurement"
    )
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads of the policy (the sweep's per-run 1)"
    )
    args = p.parse_args(argv)
    for flag, value, least in (("--num-envs", args.num_envs, 1), ("--workers", args.workers, 0),
                               ("--steps", args.steps, 10), ("--threads", args.threads, 1)):  # fmt: skip
        if value < least:
            print(
                f"eval_speed: error: --{flag.lstrip('-')} {value}: expected an integer >= {least}",
                file=sys.stderr,
            )
            return 2

    from laom.envs import make
    from laom.envs.tasks import parse_task
    from laom.errors import LaomError
    from laom.experiments.cost import measure_evaluate
    from laom.models.policy import ActingPolicy
    from laom.training.baselines import BCBaselineConfig
    from laom.training.bc import build_policy
    from laom.training.config import parse_config
    from laom.training.presets import preset_file

    try:
        parse_task(args.task, "--task")
    except LaomError as exc:
        print(f"eval_speed: error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    cfg = parse_config(BCBaselineConfig, preset_file(args.preset, "bc-baseline"), [])
    env_kwargs = {
        "task": args.task,
        "difficulty": args.difficulty,
        "img_hw": 64,
        "frame_stack": cfg.frame_stack,
    }
    obs_shape = (64, 64, 3 * cfg.frame_stack)
    probe = make(**env_kwargs)
    action_dim = int(probe.action_space.shape[0])
    probe.close()
    policy = ActingPolicy(
        build_policy(cfg, (3 * cfg.frame_stack, 64, 64), action_dim, "cpu"), None, {}
    ).eval()

    cores = len(os.sched_getaffinity(0))
    print(f"torch {torch.__version__}, policy threads {args.threads}, {cores} cores, "
          f"load average {os.getloadavg()[0]:.2f}; {args.task} {args.difficulty}, "
          f"{args.preset} bc-baseline policy, {args.num_envs} envs, {args.workers} workers")  # fmt: skip
    pol = policy_seconds(policy, obs_shape, args.num_envs, max(10, args.steps // 4))
    pol1 = policy_seconds(policy, obs_shape, 1, max(10, args.steps // 4))
    env = env_seconds(env_kwargs, args.steps)
    parallel = min(max(args.num_envs, args.workers), cores) if args.workers else 1
    bound = 1.0 / (pol + env / parallel)
    print(
        f"policy forward at batch {args.num_envs}: {1 / pol:8.1f} observations/s  (batch 1: {1 / pol1:.1f})"
    )
    print(f"one environment alone:      {1 / env:8.1f} steps/s")

    # The same timing the sweep's calibration uses: the policy's call times split the
    # evaluation into its start (and close) and its lockstep rounds.
    per_step, start_s = measure_evaluate(env_kwargs, policy, args.num_envs, args.workers, steps=args.steps)
    measured = 1.0 / per_step
    release = release_design(policy, env_kwargs, args.steps)
    print(f"evaluate(), lockstep rounds: {measured:8.1f} steps/s  (bound {bound:.1f}: "
          f"{100 * measured / bound:.0f}% of it; start and close {start_s:.1f} s)")  # fmt: skip
    print(f"release design (1 env, batch 1): {release:8.1f} steps/s")
    per_episode = 1000
    print(f"episodes/s at {per_episode} steps: evaluate() {measured / per_episode:.3f}, "
          f"bound {bound / per_episode:.3f}, release design {release / per_episode:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
