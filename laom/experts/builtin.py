"""Experts trained by this project and shipped inside the package.

The release's experts are not redistributed with the library, yet collecting a dataset
should work right after ``pip install``; so small SAC actors (a few hundred KB of
weights, nothing else) live under ``laom/assets/experts/<task>/expert.npz`` with an
``info.json`` that records how they were trained and what they score.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from laom.errors import LaomError
from laom.experts.policy import Expert, read_npz

BUILTIN_PREFIX = "builtin:"
ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "experts"


def available_builtin() -> list[str]:
    """Tasks that have a shipped expert."""
    if not ASSET_DIR.is_dir():
        return []
    return sorted(p.name for p in ASSET_DIR.iterdir() if (p / "expert.npz").is_file())


def builtin(task: str) -> Expert | None:
    """The shipped expert for ``task``, or None so callers can fall back to a user's file."""
    path = ASSET_DIR / task / "expert.npz"
    if not path.is_file():
        return None
    expert = read_npz(path)
    expert.task = expert.task or task
    expert.meta = {**expert.meta, "info": builtin_info(task)}
    return expert


def builtin_info(task: str) -> dict[str, Any]:
    """Training and evaluation record of a shipped expert (empty if none)."""
    path = ASSET_DIR / task / "info.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def resolve(spec: str | Path, task: str | None = None) -> Expert:
    """What a user typed for an expert -> Expert: a path, ``builtin:TASK`` or ``builtin``.

    Commands that take ``--expert`` share this so "builtin" means the same everywhere;
    plain ``builtin`` picks the shipped expert for ``task``.
    """
    from laom.experts.formats import load

    text = str(spec)
    if text == "builtin" or text.startswith(BUILTIN_PREFIX):
        name = text[len(BUILTIN_PREFIX) :] if text.startswith(BUILTIN_PREFIX) else ""
        name = name or task or ""
        if not name:
            raise LaomError("expert 'builtin' needs a task (builtin:TASK or --task)")
        if task and name != task:
            raise LaomError(f"expert {text!r} is for {name}, not {task}")
        expert = builtin(name)
        if expert is None:
            raise LaomError(
                f"no built-in expert for {name!r}; built-in: {', '.join(available_builtin()) or 'none'}"
                " (train one with `laom expert train`)"
            )
        return expert
    return load(spec, task)
