"""dm_control suite tasks as "domain-task" names, and the proprioceptive state.

The paper's experts act on the dm_control observation dict flattened in alphabetical
key order as float32; :func:`flatten_state` is that convention in one place so experts,
collection and the pixel environment can never disagree about it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import numpy as np

from laom.errors import LaomError

# Domains whose default camera is not camera 0 (DCS uses camera 2 for quadruped).
CAMERA_ID = {"quadruped": 2}


def all_tasks() -> list[str]:
    """Every dm_control suite task as a "domain-task" name."""
    from dm_control import suite

    return sorted(f"{d}-{t}" for d, t in suite.ALL_TASKS)


def parse_task(task: str, flag: str | None = None) -> tuple[str, str]:
    """Split "domain-task" and check that the suite has it; errors name ``flag`` (the
    command-line option the task came from) when given."""
    from dm_control import suite

    if not isinstance(task, str) or "-" not in task:
        raise LaomError(f"{flag or 'task'} {task!r}: expected 'domain-task', e.g. 'cheetah-run'")
    domain, name = task.split("-", 1)
    if (domain, name) not in set(suite.ALL_TASKS):
        close = [t for t in all_tasks() if t.startswith(domain + "-")]
        hint = f"; {domain} has: {', '.join(close)}" if close else "; see `laom env list`"
        raise LaomError(f"{flag} {task!r}: unknown task{hint}" if flag else f"unknown task {task!r}{hint}")
    return domain, name


def load_dmc(task: str, seed: int | None = 0, environment_kwargs: dict | None = None) -> Any:
    """Load a dm_control suite environment for ``task`` with a seeded task RNG."""
    from absl import logging as absl_logging
    from dm_control import suite

    # The suite's XML uses a compiler attribute MuJoCo deprecates; the warning on every
    # load is noise to users (it does not change the model).
    absl_logging.set_verbosity(absl_logging.ERROR)

    domain, name = parse_task(task)
    return suite.load(
        domain,
        name,
        task_kwargs={"random": np.random.RandomState(seed)},
        environment_kwargs=environment_kwargs or {},
    )


def flatten_state(observation: dict[str, Any]) -> np.ndarray:
    """dm_control observation dict -> flat float32 vector, keys in alphabetical order."""
    parts = [np.asarray(observation[k], dtype=np.float32).reshape(-1) for k in sorted(observation)]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def state_dim(task: str) -> int:
    """Size of the flat proprioceptive state of ``task``."""
    env = load_dmc(task)
    return int(sum(int(np.prod(s.shape)) for s in env.observation_spec().values()))


def reseed_task(dmc_env: Any, seed: int) -> None:
    """Give the dm_control task a fresh RNG so the next reset is a function of ``seed``."""
    dmc_env.task._random = np.random.RandomState(seed)


def action_bounds(dmc_env: Any) -> tuple[np.ndarray, np.ndarray]:
    spec = dmc_env.action_spec()
    return spec.minimum.astype(np.float32), spec.maximum.astype(np.float32)


class StateEnv(gym.Env):
    """A dm_control task as a gymnasium env over the flat proprioceptive state.

    Used to train and evaluate state experts: no rendering, so it runs at physics speed.
    Episodes end by truncation at the suite's time limit (1000 steps).
    """

    metadata = {"render_modes": []}

    def __init__(self, task: str, seed: int = 0) -> None:
        self.task = task
        self._env = load_dmc(task, seed)
        low, high = action_bounds(self._env)
        self.action_space = gym.spaces.Box(low, high, dtype=np.float32)
        dim = sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values())
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self._seed = seed

    @property
    def physics(self) -> Any:
        return self._env.physics

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            reseed_task(self._env, seed)
        ts = self._env.reset()
        return flatten_state(ts.observation), {}

    def step(self, action):
        action = np.clip(np.asarray(action, np.float32), self.action_space.low, self.action_space.high)
        ts = self._env.step(action)
        reward = float(ts.reward or 0.0)
        terminated = bool(ts.last() and ts.discount == 0.0)
        truncated = bool(ts.last() and not terminated)
        return flatten_state(ts.observation), reward, terminated, truncated, {}


# Episodes of the random policy behind D4RL-style floors (the report's and the Minari export's).
RANDOM_POLICY_EPISODES = 25


def random_policy_returns(task: str, episodes: int = RANDOM_POLICY_EPISODES, seed: int = 0) -> list[float]:
    """Returns of a uniform random policy over ``task``'s action bounds, episode ``i``
    reset with seed ``seed + i`` and its actions drawn from ``default_rng([seed, i])``.

    The floor of D4RL-style scores, 100 * (R - R_random) / (R_expert - R_random), and
    Minari's ``ref_min_score``. The distractors only change what is rendered, never the
    physics or the reward, so the state environment gives every distractor setting's
    floor without rendering (a second per task on cheetah-run).
    """
    if episodes < 1:
        raise LaomError(f"random policy returns: episodes {episodes}: expected at least 1")
    env = StateEnv(task, seed)
    low, high = env.action_space.low, env.action_space.high

    def episode_policy(i: int) -> Callable[[np.ndarray], np.ndarray]:
        rng = np.random.default_rng([seed, i])
        return lambda _state: rng.uniform(low, high).astype(np.float32)

    return state_returns(env, episodes, seed, episode_policy)


def state_returns(
    env: StateEnv, episodes: int, seed: int, episode_policy: Callable[[int], Callable[[np.ndarray], np.ndarray]]
) -> list[float]:
    """Undiscounted returns of ``episodes`` state-environment episodes, episode ``i``
    reset with seed ``seed + i`` and acted in by ``episode_policy(i)``.

    One rollout loop for every state-based evaluation (an expert's greedy returns, the
    random floor), so they share the seeding that makes their returns comparable.
    """
    out = []
    for i in range(episodes):
        act = episode_policy(i)
        state, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            state, reward, terminated, truncated, _ = env.step(act(state))
            total += float(reward)
            done = terminated or truncated
        out.append(total)
    return out
