"""Online evaluation: batching and workers do not change the result."""

from __future__ import annotations

import numpy as np
import pytest

from laom.errors import LaomError
from laom.evaluation import evaluate, normalized_return

ENV = {"task": "cheetah-run", "img_hw": 16, "frame_stack": 2, "max_episode_steps": 15}


def _policy(obs: np.ndarray) -> np.ndarray:
    # Deterministic function of the pixels, so returns depend on what the env shows.
    m = obs.reshape(len(obs), -1).astype(np.float32).mean(1, keepdims=True) / 255.0
    return np.tanh(np.repeat(m, 6, 1) * np.linspace(-2, 2, 6)).astype(np.float32)


def test_returns_do_not_depend_on_batching():
    a = evaluate(_policy, ENV, episodes=3, seed=1, num_envs=1, progress=False)
    b = evaluate(_policy, ENV, episodes=3, seed=1, num_envs=3, progress=False)
    assert a.lengths == [15, 15, 15]
    np.testing.assert_allclose(a.returns, b.returns)
    c = evaluate(_policy, ENV, episodes=3, seed=2, num_envs=2, progress=False)
    assert not np.allclose(a.returns, c.returns)


@pytest.mark.integration
def test_worker_processes_match_in_process():
    a = evaluate(_policy, ENV, episodes=2, seed=3, num_envs=2, progress=False)
    b = evaluate(_policy, ENV, episodes=2, seed=3, workers=2, progress=False)
    np.testing.assert_allclose(a.returns, b.returns)


def test_bad_input():
    with pytest.raises(LaomError, match="episodes"):
        evaluate(_policy, ENV, episodes=0)
    with pytest.raises(LaomError, match="reference"):
        normalized_return(10.0, 0.0)
    assert normalized_return(50.0, 200.0) == 0.25
