"""SWEEP/labeled/: the labelled subset of each (task, budget, seed).

Drawn with ``laom data sample-labeled``'s code and reused while whole and newer than
their source, so a resumed sweep gives every run the file it had before.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from laom import methods as registry
from laom.errors import LaomError
from laom.experiments.sweep_config import SweepConfig


def labeled_path(root: Path, task: str, n: int, seed: int) -> Path:
    return root / "labeled" / f"{task}-{n}-s{seed}.hdf5"


def labeled_is_valid(path: Path, source: str, n: int, seed: int, chunk: int) -> bool:
    """A subset made earlier is reused only if it is whole, was drawn with these
    settings, and is newer than its source (a rewritten source gets new subsets)."""
    from laom.data.format import DatasetReader

    if not path.is_file() or path.stat().st_mtime_ns < Path(source).stat().st_mtime_ns:
        return False
    try:
        with DatasetReader(path) as reader:
            attrs = reader.attrs
            return (
                len(reader) == n
                and attrs.get("labeled_seed") == seed
                and attrs.get("chunk") == chunk
                and attrs.get("source_file") == Path(source).name
            )
    except LaomError:
        return False


def make_labeled(root: Path, cfg: SweepConfig, log: Callable[[str], None] = print) -> dict[tuple[str, int, int], str]:
    """Every (task, budget, seed) subset, made with ``laom data sample-labeled``'s code."""
    from laom.data.labeled import sample_labeled

    needs = any(registry.get(m).reads("labeled") for m in cfg.methods)
    paths: dict[tuple[str, int, int], str] = {}
    if not needs:
        return paths
    (root / "labeled").mkdir(parents=True, exist_ok=True)
    made = 0
    for task in cfg.tasks:
        for seed in cfg.seeds:
            for n in cfg.labeled:
                path = labeled_path(root, task, n, seed)
                if not labeled_is_valid(path, cfg.data[task], n, seed, cfg.chunk):
                    sample_labeled(cfg.data[task], n, path, seed=seed, chunk=cfg.chunk, force=True)
                    made += 1
                paths[(task, n, seed)] = str(path.resolve())
    total = len(paths)
    log(f"labelled subsets: {total} ({made} made, {total - made} reused) in {root / 'labeled'}")
    return paths
