"""runs.jsonl, a sweep's record of finished runs: what a report reads.

One whole line per run, appended and synced before the run counts as done, so a crash
loses at most the line being written (a torn last line is ignored when read).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from laom.errors import LaomError


def read_runs(path: Path) -> list[dict[str, Any]]:
    """The finished runs of a sweep. A torn last line (a crash mid-append) is ignored;
    a bad line elsewhere means the file was edited, which is an error."""
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    runs = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            run = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines):
                continue
            raise LaomError(f"{path}:{i}: not a JSON line") from None
        if not isinstance(run, dict) or not {"task", "method", "seed"} <= set(run):
            raise LaomError(f"{path}:{i}: not a run record (needs task, method, labeled, seed)")
        runs.append(run)
    return runs


def append_run(path: Path, run: dict[str, Any]) -> None:
    """One whole line per run, flushed to disk before the run counts as done."""
    with open(path, "a") as f:
        f.write(json.dumps(run, sort_keys=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def drop_stale(path: Path, keys: set[str]) -> int:
    """Move lines whose run key is not in ``keys`` to runs.stale.jsonl (after --force)."""
    from laom.outputs import atomic_write_text

    if not path.is_file():
        return 0
    keep, stale = [], []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            key = json.loads(line).get("run_key")
        except (json.JSONDecodeError, AttributeError):
            key = None
        (keep if key in keys else stale).append(line)
    if stale:
        with open(path.with_name("runs.stale.jsonl"), "a") as f:
            f.write("\n".join(stale) + "\n")
        atomic_write_text(path, "".join(line + "\n" for line in keep))
    return len(stale)
