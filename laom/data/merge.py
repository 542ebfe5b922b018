"""Joining shard files into one dataset.

``laom collect --shard I/N`` lets N machines (or N runs) collect one dataset; their
files keep global episode numbers as group names. Merging orders all trajectories by
episode, renumbers them "0".."M-1" as the release layout expects, and recomputes
``dataset_return``. Groups are copied as stored (compressed data is not recompressed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from laom import __version__
from laom.data.format import (
    FILE_ATTRS,
    DatasetReader,
    Writer,
    atomic_output,
    check_output_path,
    create,
    img_hw_of,
    plain,
    validate,
)
from laom.data.labeled import _same_file
from laom.errors import LaomError

# Attributes every shard of one dataset must agree on.
MUST_MATCH = ("domain_name", "task_name", "difficulty", "split", "img_hw", "dynamic")
# Attributes that describe a collection in progress, meaningless after a merge.
_PLAN_ATTRS = ("episodes", "shard")


@dataclass
class MergeResult:
    path: Path
    trajectories: int
    transitions: int
    dataset_return: float


def _norm(key: str, value: Any) -> Any:
    return img_hw_of(value) if key == "img_hw" else plain(value)


def merge(
    out: str | os.PathLike[str],
    shards: list[str | os.PathLike[str]],
    force: bool = False,
    allow_incomplete: bool = False,
) -> MergeResult:
    """Merge ``shards`` into ``out`` (built aside, renamed into place when complete)."""
    out = Path(out)
    paths = [Path(p) for p in shards]
    if not paths:
        raise LaomError("merge: give at least one shard file")
    for p in paths:
        if _same_file(p, out):
            raise LaomError(f"output {out} is also an input shard; refusing to overwrite it")
    if len({p.resolve() for p in paths}) != len(paths):
        raise LaomError("merge: the same shard file is given twice")
    check_output_path(out, force)  # before validating the shards
    reports = [validate(p) for p in paths]

    first = reports[0].attrs
    for p, rep in zip(paths[1:], reports[1:], strict=True):
        for key in MUST_MATCH:
            a, b = _norm(key, first.get(key)), _norm(key, rep.attrs.get(key))
            if a != b:
                raise LaomError(
                    f"{p}: {key}={plain(rep.attrs.get(key))!r} but {paths[0]} has "
                    f"{plain(first.get(key))!r}; only shards of one dataset can be merged"
                )
    dims = {(r.state_dim, r.action_dim) for r in reports if r.state_dim is not None}
    if len(dims) > 1:
        raise LaomError(f"merge: shards differ in state/action sizes: {sorted(dims)}")

    if not allow_incomplete:
        for p, rep in zip(paths, reports, strict=True):
            if rep.missing:
                raise LaomError(
                    f"{p} is an unfinished shard ({rep.trajectories} of {rep.planned} episodes); "
                    "finish it by running its `laom collect` command again, or pass --allow-incomplete"
                )
        _check_coverage(paths, reports)

    # Every trajectory, keyed by (episode, shard position): episode order, then file order.
    entries: list[tuple[int, int, int]] = []
    seen: dict[tuple[Any, int], Path] = {}
    readers = [DatasetReader(p) for p in paths]
    try:
        for pos, reader in enumerate(readers):
            seed = reader.attrs.get("seed")
            for index in reader.indices:
                ep = int(plain(reader.group(index).attrs.get("episode_index", index)))
                if seed is not None:
                    if (seed, ep) in seen:
                        raise LaomError(
                            f"episode {ep} (seed {seed}) is in both {seen[(seed, ep)]} and {paths[pos]}"
                        )
                    seen[(seed, ep)] = paths[pos]
                entries.append((ep, pos, index))
        entries.sort()

        attrs = {k: v for k, v in readers[0].h5.attrs.items() if k not in _PLAN_ATTRS}
        seeds = {plain(r.attrs.get("seed")) for r in readers}
        if len(seeds) > 1:
            attrs.pop("seed", None)
            attrs["seeds"] = np.array(sorted(s for s in seeds if s is not None), np.int64)
        comps = {plain(r.attrs.get("obs_compression", "none")) for r in readers}
        attrs["obs_compression"] = comps.pop() if len(comps) == 1 else "mixed"
        attrs["merged_from"] = np.array([p.name for p in paths], dtype=object)
        attrs["laom_version"] = __version__
        missing = [k for k in FILE_ATTRS if k not in attrs]
        if missing:
            raise LaomError(f"{paths[0]}: missing file attribute(s) {', '.join(missing)}")

        transitions = 0
        with atomic_output(out, force) as tmp:
            create(tmp, attrs, force=True)
            with Writer(tmp, journal=False, durable=False) as writer:
                for new, (ep, pos, index) in enumerate(entries):
                    group = readers[pos].group(index)
                    writer.copy_group(
                        group, new, {"episode_index": ep, "source_file": paths[pos].name}
                    )
                    transitions += int(group["obs"].shape[0])
                dataset_return = float(plain(writer.h5.attrs["dataset_return"]))
    finally:
        for r in readers:
            r.close()
    return MergeResult(out, len(entries), transitions, dataset_return)


def _check_coverage(paths: list[Path], reports: list[Any]) -> None:
    """With shard plans on every file, refuse a merge that lacks a whole shard."""
    plans = []
    for rep in reports:
        a = rep.attrs
        if "episodes" not in a or "shard" not in a:
            return
        plans.append((int(a["episodes"]), plain(a.get("seed")), str(a["shard"])))
    if len({(e, s) for e, s, _ in plans}) != 1:
        return  # different collections joined on purpose: nothing to cover
    episodes, seed, _ = plans[0]
    n = int(plans[0][2].split("/")[1])
    given = {sh for _, _, sh in plans}
    absent = [f"{i}/{n}" for i in range(n) if f"{i}/{n}" not in given]
    if absent:
        raise LaomError(
            f"merge: shard(s) {', '.join(absent)} of this {episodes}-episode collection "
            f"(seed {seed}) are not given; add them or pass --allow-incomplete"
        )
