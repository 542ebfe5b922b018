"""Where a run's online evaluations are kept, and which one speaks for the run.

Every evaluation setting (environment, episodes, seed) has its own file,
``RUN/eval-<E>ep-s<S>-<hash>.json``, so evaluating again with other settings never
touches an earlier result. ``RUN/eval.json`` is a copy of the run's *reference*
evaluation, the one ``--normalizer RUN`` reads: the best-specified evaluation the run
has, chosen by :func:`rank` (in the run's own environment with full-length episodes
before any with overrides, then more episodes). A quick ``--episodes 1`` check
therefore never replaces a 25-episode result as the reference; it is kept in its own
file beside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from laom.outputs import atomic_write_text

REFERENCE = "eval.json"
PATTERN = "eval-*ep-s*-*.json"


def result_path(run: Path, episodes: int, seed: int, key: str) -> Path:
    return run / f"eval-{episodes}ep-s{seed}-{key}.json"


def is_full_setting(result: dict[str, Any]) -> bool:
    """Whether the evaluation ran in the run's own environment with full-length episodes.
    Results written before this was recorded count as full unless their episodes were
    cut short (the only override they show)."""
    if "full_setting" in result:
        return bool(result["full_setting"])
    return "max_episode_steps" not in (result.get("env") or {})


def rank(result: dict[str, Any]) -> tuple[bool, int]:
    """Larger is the better reference: full setting first, then more episodes."""
    episodes = result.get("episodes")
    if not isinstance(episodes, int):
        episodes = len(result.get("returns") or [])
    return is_full_setting(result), episodes


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("mean", data.get("return_mean")), (int, float)):
        return None
    return data


def evaluations(run: Path) -> dict[Path, dict[str, Any]]:
    """Every readable per-setting result of ``run`` (unreadable files are skipped)."""
    out = {}
    for path in sorted(run.glob(PATTERN)):
        data = _read(path)
        if data is not None:
            out[path] = data
    return out


def reference(run: Path) -> tuple[Path, dict[str, Any]] | None:
    """The run's reference evaluation: (its file, its result), or None when it has none.

    Candidates are the per-setting files and ``eval.json`` when it is not a copy of one
    (written by hand, or by a laom that kept no per-setting files). Ties keep the current
    ``eval.json``, then prefer the lower seed, so the reference changes only for a
    strictly better evaluation.
    """
    run = Path(run)
    candidates = evaluations(run)
    current = _read(run / REFERENCE)
    current_path: Path | None = None
    if current is not None:
        named = run / Path(str(current.get("file", ""))).name  # however the run was written then
        current_path = named if named in candidates else run / REFERENCE
        if current_path == run / REFERENCE:
            candidates[current_path] = current
    if not candidates:
        return None

    def order(item: tuple[Path, dict[str, Any]]) -> tuple[Any, ...]:
        path, data = item
        seed = data.get("seed")
        if not isinstance(seed, int):  # results written before the seed was recorded
            found = re.search(r"-s(\d+)-", path.name)
            seed = int(found.group(1)) if found else 0
        return (*rank(data), path == current_path, -seed, str(path))

    return max(candidates.items(), key=order)


@contextlib.contextmanager
def _locked(run: Path) -> Iterator[None]:
    """One writer of a run's eval.json at a time (two evaluations of one run in parallel)."""
    fd = os.open(run, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def record(run: Path, path: Path, result: dict[str, Any]) -> str:
    """Write ``result`` to its per-setting ``path``, bring ``eval.json`` up to date, and
    say in one line what became of ``eval.json``."""
    run = Path(run)
    with _locked(run):
        atomic_write_text(path, json.dumps(result, indent=2) + "\n")
        best = reference(run)
        assert best is not None  # the file just written is a candidate
        best_path, kept = best
        if best_path != run / REFERENCE:  # eval.json becomes (or stays) a copy of the best file
            text = best_path.read_text()
            target = run / REFERENCE
            if not target.is_file() or target.read_text() != text:
                atomic_write_text(target, text)
    if best_path == path:
        return f"{run / REFERENCE} (what --normalizer {run} reads): this evaluation"
    shown = f"{rank(kept)[1]}-episode evaluation" + ("" if is_full_setting(kept) else " (with overridden settings)")
    where = "" if best_path == run / REFERENCE else f" ({best_path.name})"
    why = "outranks this one" if rank(kept) > rank(result) else "is as large as this one and stays"
    return f"{run / REFERENCE} (what --normalizer {run} reads) kept: its {shown}{where} {why}"
