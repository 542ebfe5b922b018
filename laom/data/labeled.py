"""Labelled subsets: the few action-labelled trajectories the paper's methods may use.

The paper gives its methods 2, 4, ..., 128 labelled trajectories of 1000 steps out of a
5000-trajectory dataset. A subset here is a set of *chunks*: a source trajectory longer
than ``chunk`` steps is cut into consecutive ``chunk``-step pieces (the tail shorter
than ``chunk`` is not used, so every piece from a long trajectory has the same length);
one no longer than ``chunk`` is a single piece. Pieces are drawn uniformly without
replacement as a prefix of one seeded permutation, so for a fixed seed the subsets are
nested: the 2-chunk subset is inside the 4-chunk one, and so on, which keeps a sweep
over label budgets free of sampling noise between budgets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from laom import __version__
from laom.data.format import (
    Compression,
    DatasetReader,
    Writer,
    atomic_output,
    check_output_path,
    create,
    distractor_datasets,
)
from laom.errors import LaomError

# Attributes of a collection in progress; a subset is a finished file of its own.
_PLAN_ATTRS = ("episodes", "shard")


@dataclass(frozen=True)
class Chunk:
    source: int  # source trajectory (group number)
    start: int
    length: int


def chunks_of(lengths: dict[int, int], chunk: int) -> list[Chunk]:
    """Every piece a labelled subset may be drawn from, in file order."""
    if chunk < 1:
        raise LaomError(f"--chunk {chunk}: need at least 1 step")
    out = []
    for index, length in lengths.items():
        if length <= chunk:
            out.append(Chunk(index, 0, length))
        else:
            out.extend(Chunk(index, s, chunk) for s in range(0, length - chunk + 1, chunk))
    return out


def pick_chunks(chunks: list[Chunk], n: int, seed: int) -> list[Chunk]:
    """``n`` distinct chunks, uniformly, as a prefix of a seeded permutation (file order)."""
    if n < 1:
        raise LaomError(f"--trajectories {n}: need at least 1")
    if n > len(chunks):
        raise LaomError(
            f"--trajectories {n}: the source has only {len(chunks)} chunk(s) to sample from"
        )
    order = np.random.default_rng(seed).permutation(len(chunks))[:n]
    return [chunks[i] for i in sorted(order.tolist())]


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def sample_labeled(
    src: str | os.PathLike[str],
    trajectories: int,
    out: str | os.PathLike[str],
    seed: int,
    chunk: int = 1000,
    force: bool = False,
    compression: str | None = None,
) -> list[Chunk]:
    """Write a labelled subset of ``src`` to ``out``; returns the chunks it took.

    ``out`` has the release layout (groups "0".."n-1"); each group records
    ``source_trajectory``, ``chunk_start`` and ``source_length``, and the file records
    the same as arrays (``source_trajectories``, ``source_chunk_starts``). A chunk's
    ``traj_return`` is its source trajectory's return: per-step rewards are not stored.
    """
    src, out = Path(src), Path(out)
    if _same_file(src, out):
        raise LaomError(f"--out {out} is the source file; refusing to overwrite it")
    check_output_path(out, force, "--out")  # before reading anything
    with DatasetReader(src) as reader:
        lengths = {i: reader.length(i) for i in reader.indices}
        picked = pick_chunks(chunks_of(lengths, chunk), trajectories, seed)
        comp = (
            Compression.parse(compression)
            if compression
            else (
                Compression.of(reader.group(reader.indices[0])["obs"])
                if reader.indices
                else Compression()
            )
        )
        attrs = {k: v for k, v in reader.h5.attrs.items() if k not in _PLAN_ATTRS}
        attrs.update(
            source_file=src.name,
            source_trajectories=np.array([c.source for c in picked], np.int64),
            source_chunk_starts=np.array([c.start for c in picked], np.int64),
            labeled_seed=int(seed),
            chunk=int(chunk),
            obs_compression=str(comp),
            laom_version=__version__,
        )
        with atomic_output(out, force) as tmp:
            create(tmp, attrs, force=True)
            with Writer(tmp, comp, journal=False, durable=False) as writer:
                for k, c in enumerate(picked):
                    group = reader.group(c.source)
                    extra = {
                        "source_trajectory": c.source,
                        "chunk_start": c.start,
                        "source_length": lengths[c.source],
                    }
                    if "episode_index" in group.attrs:
                        extra["episode_index"] = group.attrs["episode_index"]
                    stop = c.start + c.length
                    # The chunk's distractor records travel with its frames (the probes use them).
                    records = {n: d[c.start : stop] for n, d in distractor_datasets(group).items()}
                    writer.append(
                        k,
                        group["obs"][c.start : stop],
                        group["states"][c.start : stop],
                        group["actions"][c.start : stop],
                        reader.traj_return(c.source),
                        extra,
                        distractors=records,
                    )
    return picked
