"""A sweep directory's identity: sweep.yaml, and the lock that keeps one sweep in it.

A sweep directory is tied to one config: mixing runs of two configs in one runs.jsonl
would make its report silently wrong, so a resume must match sweep.yaml or only grow the
grid. ``--plan`` runs the same check and writes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from laom.errors import LaomError, require
from laom.experiments.sweep_config import SweepConfig

SWEEP_VERSION = 1


def file_identity(path: str) -> dict[str, Any]:
    """An input as sweep.yaml names it: the path as given, and the dataset's content
    (laom.data.identity), so data collected again alike keeps the sweep."""
    from laom.data.identity import file_identity as identity

    return identity(path, resolve=False)


def sweep_record(cfg: SweepConfig) -> dict[str, Any]:
    """sweep.yaml's content: the config and the identity of its input files."""
    inputs = {t: {"data": file_identity(cfg.data[t])} for t in cfg.tasks}
    for t in cfg.tasks:
        if cfg.eval_data[t]:
            inputs[t]["eval_data"] = file_identity(cfg.eval_data[t])
    return {"sweep_version": SWEEP_VERSION, "config": cfg.to_dict(), "inputs": inputs}


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Human-readable paths where two records differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += differences(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


GRID = ("tasks", "methods", "labeled", "seeds")


def extends(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether ``new`` only adds tasks, methods, budgets or seeds to ``old``'s grid.

    Growing a sweep (more seeds, more budgets) is the usual way to spend more compute on
    a study; every run already recorded stays valid, so it needs no --force.
    """
    old_cfg, new_cfg = old.get("config"), new.get("config")
    if not isinstance(old_cfg, dict) or not isinstance(new_cfg, dict):
        return False
    for key in GRID:
        before, after = old_cfg.get(key), new_cfg.get(key)
        if not isinstance(before, list) or not isinstance(after, list) or not set(before) <= set(after):
            return False
    tasks = set(old_cfg["tasks"])
    projected = {**new, "config": {**new_cfg, **{k: old_cfg[k] for k in GRID}}}
    for key in ("data", "eval_data"):
        if isinstance(new_cfg.get(key), dict):
            projected["config"][key] = {t: v for t, v in new_cfg[key].items() if t in tasks}
    if isinstance(new.get("inputs"), dict):
        projected["inputs"] = {t: v for t, v in new["inputs"].items() if t in tasks}
    return not differences(old, projected)


def open_sweep_dir(root: Path, cfg: SweepConfig, force: bool) -> bool:
    """Create or resume ``root``; returns whether the config changed (forced).

    A sweep dir is tied to one config: mixing runs of two configs in one runs.jsonl
    would make its report silently wrong.
    """
    changed = check_sweep_dir(root, cfg, force)
    root.mkdir(parents=True, exist_ok=True)
    from laom.outputs import atomic_write_text

    atomic_write_text(root / "sweep.yaml", yaml.safe_dump(sweep_record(cfg), sort_keys=False))
    return changed


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A sweep record without the settings that only add curves (CURVE_ONLY_FIELDS): they
    change no run's result, so a sweep resumed with them on (or off) is the same sweep.
    Nor with its precision: "auto" is fp32 on one machine and bf16 on another, so the run
    keys carry what it computes (plan.bf16_stages), and a run of another precision is
    simply not done; `--precision fp32` on an AMX machine continues an fp32 study."""
    from laom.training.options import CURVE_ONLY_FIELDS, without_fields

    config = record.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("overrides"), list):
        return record
    try:
        kept = without_fields([str(t) for t in config["overrides"]], CURVE_ONLY_FIELDS | {"precision"})
    except LaomError:  # not a settings list: compared as it is
        return record
    return {**record, "config": {**config, "overrides": kept}}


def check_sweep_dir(root: Path, cfg: SweepConfig, force: bool) -> bool:
    """Whether ``root`` holds a sweep of another config (allowed with ``force``; refused
    otherwise), writing nothing: ``--plan`` refuses what the sweep would refuse."""
    record = sweep_record(cfg)
    path = root / "sweep.yaml"
    require(not root.exists() or root.is_dir(), f"--out {root}: exists and is not a directory")
    changed = False
    if path.is_file():
        try:
            old = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise LaomError(f"{path}: invalid YAML ({' '.join(str(exc).split())})") from None
        old, compared = (_comparable(old), _comparable(record)) if isinstance(old, dict) else (old, record)
        diff = differences(old, compared) if isinstance(old, dict) else ["sweep.yaml: not a mapping"]
        if diff and not extends(old, compared):
            if not force:
                shown = "; ".join(diff[:3]) + (f"; and {len(diff) - 3} more" if len(diff) > 3 else "")
                raise LaomError(f"{root} was made with a different config ({shown}); use another --out, or --force to continue it with this config (runs that no longer match are moved to runs.stale.jsonl)")
            changed = True
    elif (root / "runs.jsonl").is_file():
        if not force:
            raise LaomError(f"{root} has runs.jsonl but no sweep.yaml; use another --out, or --force")
        changed = True
    return changed


@contextlib.contextmanager
def sweep_lock(root: Path) -> Iterator[None]:
    """One ``laom sweep`` per directory: two would run the same jobs and race on them."""
    import fcntl

    with open(root / ".sweep.lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise LaomError(f"{root}: another laom sweep is running in it; wait for it or stop it") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
