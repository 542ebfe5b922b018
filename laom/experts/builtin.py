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

from laom.experts.policy import Expert, read_npz

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
