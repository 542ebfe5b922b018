"""A run's acting policy evaluated online, and the reference return a result is normalised by.

``laom evaluate`` and ``laom pipeline`` both end here: :func:`evaluate_run` loads the
run's policy, rebuilds the environment of its training data, and records the result
beside the run (:mod:`laom.evaluation.results`). It is kept out of the command module so
that the pipeline, which sits above evaluation, calls the same code the command does
without importing a command line.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from laom.errors import LaomError


def resolve_normalizer(value: str | float) -> float:
    """A reference return: a number, an evaluated run directory (its reference
    evaluation, :func:`laom.evaluation.results.reference`), or an eval/pipeline JSON."""
    return normalizer_source(value)[0]


def normalizer_source(value: str | float) -> tuple[float, str]:
    """(reference return, where it came from: "" for a number, else the file read)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if number is not None:
        if number == 0 or not math.isfinite(number):
            raise LaomError(f"--normalizer {value}: expected a non-zero number")
        return number, ""
    path = Path(str(value))
    if path.is_dir():
        from laom.evaluation.results import reference

        best = reference(path)
        if best is None:
            raise LaomError(
                f"--normalizer {value}: the run has no eval.json; evaluate it first (laom evaluate --policy {value})"
            )
        path = best[0]
    if not path.is_file():
        raise LaomError(f"--normalizer {value}: not a number, run directory or JSON file")
    try:
        data = json.loads(path.read_text())
        mean = float(data.get("mean", data.get("return_mean")))
    except (ValueError, TypeError, AttributeError):
        raise LaomError(f"--normalizer {path}: no mean return in it") from None
    if mean == 0 or not math.isfinite(mean):
        raise LaomError(f"--normalizer {path}: mean return {mean} cannot normalise")
    return mean, str(path)


def evaluate_run(
    run: str | Path,
    episodes: int = 25,
    *,
    seed: int = 0,
    workers: int = 0,
    num_envs: int = 4,
    max_steps: int | None = None,
    split: str | None = None,
    difficulty: str | None = None,
    backgrounds: str | None = None,
    device: str = "cpu",
    normalizer: float | None = None,
    progress: bool = True,
    reuse: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Evaluate a run's acting policy online; returns (and writes) the result dict.

    The file name is keyed on what determines the returns (environment, episodes,
    seed), not on workers or batching, which do not change them; ``reuse`` returns a
    matching earlier result instead of running again. ``result["reference"]`` says
    what became of ``RUN/eval.json`` (:func:`laom.evaluation.results.record`).
    """
    from laom.evaluation.online import evaluate
    from laom.evaluation.policy import env_kwargs
    from laom.evaluation.results import record, result_path
    from laom.models.device import resolve_device
    from laom.models.saving import load_policy
    from laom.outputs import check_output, code_version

    for flag, value, least in (
        ("--workers", workers, 0),
        ("--num-envs", num_envs, 1),
        ("--seed", seed, 0),
    ):
        if value < least:  # before the policy loads or an environment starts
            raise LaomError(f"{flag} {value}: expected an integer >= {least}")
    if max_steps is not None and max_steps < 1:
        raise LaomError(f"--max-steps {max_steps}: expected an integer >= 1")
    run = Path(run)
    policy = load_policy(run, resolve_device(device))
    kwargs = env_kwargs(
        policy.meta,
        split=split,
        difficulty=difficulty,
        backgrounds=backgrounds,
        max_episode_steps=max_steps,
    )
    settings = {"env": kwargs, "episodes": episodes, "seed": seed}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    out = check_output(result_path(run, episodes, seed, key), "--policy")  # before the episodes run
    # A result older than the policy is of the weights it replaced (a stage trained again
    # in its folder, laom.training.rundir.RunDir.finished): it is not reused.
    if reuse and out.is_file() and out.stat().st_mtime_ns >= (run / "policy.pt").stat().st_mtime_ns:
        result = json.loads(out.read_text())
        log(f"[evaluate] {out}: done, reused")
    else:
        log(
            f"[evaluate] {kwargs['task']} ({kwargs['difficulty']}, {kwargs['split']} videos): {episodes} episodes"
        )
        start = time.perf_counter()
        res = evaluate(
            policy.act,
            kwargs,
            episodes,
            seed=seed,
            num_envs=num_envs,
            workers=workers,
            progress=progress,
        )
        result = {
            **res.to_dict(),
            "env": kwargs,
            "seconds": time.perf_counter() - start,
            "policy": str(run / "policy.pt"),
        }
    result["file"] = str(out)
    result["seed"] = seed
    # In the run's own environment with full-length episodes: eligible to be its reference.
    result["full_setting"] = kwargs == env_kwargs(policy.meta)
    if normalizer is not None:
        result["normalizer"] = normalizer
        result["normalized_return"] = result["mean"] / normalizer
        result["normalized_std"] = result["std"] / abs(normalizer)
    result.update(code_version())
    result.pop("reference", None)
    note = record(run, out, result)
    result["reference"] = note
    return result
