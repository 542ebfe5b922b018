"""Online evaluation: run a pixel policy in the distracting environment, measure return.

Rendering dominates the cost on CPU and a pixel policy is much cheaper per sample in a
batch, so environments step in lockstep (optionally in spawned worker processes) while
the policy sees one batch of observations per step. Episode ``i`` always uses the seed
derived from ``(seed, i)``, so the returns do not depend on how many environments or
workers ran them.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from laom.errors import LaomError

Policy = Callable[[np.ndarray], np.ndarray]


def episode_seed(seed: int, index: int) -> int:
    """The environment seed of evaluation episode ``index`` (independent of batching)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


@dataclass
class EvalResult:
    returns: list[float]
    lengths: list[int]
    seeds: list[int] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns)) if self.returns else float("nan")

    @property
    def std(self) -> float:
        return float(np.std(self.returns)) if self.returns else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": self.mean, "std": self.std, "episodes": len(self.returns)}


def normalized_return(mean_return: float, reference_return: float) -> float:
    """Return divided by a reference (the paper: BC trained on the full labelled dataset)."""
    if not reference_return or not np.isfinite(reference_return):
        raise LaomError(f"reference return {reference_return!r}: expected a non-zero number")
    return float(mean_return / reference_return)


class _LocalEnv:
    def __init__(self, env_kwargs: dict[str, Any]) -> None:
        from laom.envs import make

        self.env = make(**env_kwargs)

    def reset(self, seed: int):
        return self.env.reset(seed=seed)[0]

    def step_async(self, action: np.ndarray) -> None:
        self._result = self.env.step(action)[:4]

    def step_wait(self):
        return self._result

    def close(self) -> None:
        self.env.close()


def _worker(conn, env_kwargs: dict[str, Any]) -> None:
    from laom.envs import make

    try:
        env = make(**env_kwargs)
        conn.send(("ok", None))
    except Exception as exc:  # report construction errors to the parent, then stop
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        cmd, arg = conn.recv()
        if cmd == "reset":
            conn.send(env.reset(seed=arg)[0])
        elif cmd == "step":
            conn.send(env.step(arg)[:4])
        else:
            env.close()
            conn.close()
            return


class _RemoteEnv:
    """One environment in a spawned process (EGL contexts do not survive fork)."""

    def __init__(self, env_kwargs: dict[str, Any], ctx) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, env_kwargs), daemon=True)
        self.proc.start()
        status, message = self.conn.recv()
        if status != "ok":
            raise LaomError(f"evaluation environment failed to start: {message}")

    def reset(self, seed: int):
        self.conn.send(("reset", seed))
        return self.conn.recv()

    def step_async(self, action: np.ndarray) -> None:
        self.conn.send(("step", action))

    def step_wait(self):
        return self.conn.recv()

    def close(self) -> None:
        try:
            self.conn.send(("close", None))
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(timeout=10)


def evaluate(
    policy: Policy,
    env_kwargs: dict[str, Any],
    episodes: int,
    *,
    seed: int = 0,
    num_envs: int = 4,
    workers: int = 0,
    progress: bool = True,
    desc: str = "evaluate",
) -> EvalResult:
    """Mean return of ``policy`` over ``episodes`` episodes of ``laom.envs.make(**env_kwargs)``.

    ``policy`` maps a batch of observations (uint8 [B, H, W, C]) to actions [B, A].
    ``workers > 0`` runs the environments in that many spawned processes (one
    environment each, so ``num_envs`` is raised to at least ``workers``).
    """
    from laom.progress import progress as progress_bar

    if episodes < 1:
        raise LaomError(f"episodes={episodes}: expected at least 1")
    num_envs = max(1, min(max(num_envs, workers), episodes))
    if workers > 0:
        ctx = mp.get_context("spawn")
        envs: list[Any] = [_RemoteEnv(env_kwargs, ctx) for _ in range(num_envs)]
    else:
        envs = [_LocalEnv(env_kwargs) for _ in range(num_envs)]
    returns = [0.0] * episodes
    lengths = [0] * episodes
    seeds = [episode_seed(seed, i) for i in range(episodes)]
    slot_episode: list[int | None] = [None] * num_envs
    obs: list[np.ndarray | None] = [None] * num_envs
    next_episode = 0
    done_count = 0
    finished: list[float] = []
    bar = progress_bar(episodes, desc, "ep", enabled=progress, leave=False)
    try:
        for slot in range(num_envs):
            slot_episode[slot] = next_episode
            obs[slot] = envs[slot].reset(seeds[next_episode])
            next_episode += 1
        while done_count < episodes:
            active = [s for s in range(num_envs) if slot_episode[s] is not None]
            actions = np.asarray(policy(np.stack([obs[s] for s in active])), np.float32)
            if actions.shape[0] != len(active):
                raise LaomError(
                    f"policy returned {actions.shape[0]} actions for {len(active)} observations"
                )
            for i, s in enumerate(active):
                envs[s].step_async(actions[i])
            for s in active:
                ob, reward, terminated, truncated = envs[s].step_wait()
                ep = slot_episode[s]
                returns[ep] += float(reward)
                lengths[ep] += 1
                if terminated or truncated:
                    done_count += 1
                    bar.update(1)
                    finished.append(returns[ep])
                    bar.set_postfix(mean_return=f"{np.mean(finished):.1f}")
                    if next_episode < episodes:
                        slot_episode[s] = next_episode
                        obs[s] = envs[s].reset(seeds[next_episode])
                        next_episode += 1
                    else:
                        slot_episode[s] = None
                else:
                    obs[s] = ob
    finally:
        bar.close()
        for env in envs:
            env.close()
    return EvalResult(returns=returns, lengths=lengths, seeds=seeds)
