"""A sweep's records: its small text files without the weights and data, to keep in git.

A study outlives the machine it runs on (a session's scratch disk, a cluster job, a CI
runner), while its weights (hundreds of MB per LAM) and datasets (GBs) do not fit in a
repository. What a report and a resumed sweep need to know of the finished work does:
runs.jsonl, sweep.yaml, every stage's config, manifest, summary and metrics, the
evaluation results and the logs. ``save`` mirrors those into a folder; ``restore`` puts
them back into an empty or partial sweep folder on a new machine, at the sweep's path,
never over a file that is there. After a restore the sweep skips every recorded run (its
key names the data and the labelled subsets by path and content, so data collected again
alike at its path matches), and a stage that an unrecorded run
still needs trains again in its folder (its summary stays, its weights are gone:
:attr:`laom.training.rundir.RunDir.finished`). ``laom report`` reads a records folder as
it reads the sweep (:func:`laom.experiments.runs_store.read_runs` finds the stage folders
under it).
"""

from __future__ import annotations

import filecmp
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from laom.errors import LaomError, require

# What a record is: text a report or a resume reads. Everything else (weights, caches of
# latents, labelled subsets, datasets, TensorBoard events) is left out.
SUFFIXES = frozenset({".json", ".jsonl", ".yaml", ".yml", ".txt", ".csv", ".md", ".log"})
MAX_BYTES = 2_000_000  # a record past this is not a record (a log gone wild); left out, and said
SKIPPED_PARTS = frozenset({"checkpoints", "tensorboard", "wandb", "superseded"})
INPUTS = "inputs.json"  # what a report needs of the data files, which the records leave out


@dataclass
class Copied:
    copied: int = 0  # files written
    unchanged: int = 0  # already there alike (save) or kept as they were (restore)
    too_large: list[str] | None = None


def _records(root: Path) -> Iterator[Path]:
    """The record files under ``root``, relative to it, in a stable order."""
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or path.is_symlink() or path.suffix not in SUFFIXES:
            continue
        if any(part.startswith(".") for part in rel.parts) or SKIPPED_PARTS & set(rel.parts[:-1]):
            continue  # the sweep's lock, temporary files of atomic writes, checkpoints
        if rel == Path(INPUTS):
            continue  # the records' own, written from the data where it is (_write_inputs)
        yield rel


def holds_records(folder: Path) -> bool:
    return (folder / "runs.jsonl").is_file() or (folder / "sweep.yaml").is_file()


def check_records_dir(records: Path, sweep: Path, flag: str) -> None:
    """LaomError unless ``records`` can hold ``sweep``'s records: new, empty, or a sweep's
    records already (saving into another folder would mix its files with the sweep's)."""
    from laom.outputs import check_output

    check_output(records, flag, kind="dir", create_parents=True)
    require(records.resolve() != sweep.resolve(), f"{flag} {records}: the records folder must not be the sweep itself")
    require(not records.is_dir() or holds_records(records) or not any(records.iterdir()),
            f"{flag} {records}: holds files but no sweep's records (no sweep.yaml or runs.jsonl); give a new or empty folder")  # fmt: skip


def save_records(sweep: Path, dest: Path) -> Copied:
    """Mirror ``sweep``'s records into ``dest`` (created): new and changed files are
    copied; a record deleted from the sweep stays in ``dest`` (the records outlive the
    work, which is their point)."""
    require(holds_records(sweep), f"{sweep}: not a sweep directory (no sweep.yaml or runs.jsonl)")
    require(not dest.exists() or dest.is_dir(), f"{dest}: exists and is not a directory")
    require(dest.resolve() != sweep.resolve(), f"{dest}: the records folder must not be the sweep itself")
    out = Copied(too_large=[])
    _write_inputs(sweep, dest)
    for rel in _records(sweep):
        src, dst = sweep / rel, dest / rel
        if src.stat().st_size > MAX_BYTES:
            out.too_large.append(str(rel))
            continue
        if dst.is_file() and filecmp.cmp(src, dst, shallow=False):
            out.unchanged += 1
            continue
        _copy(src, dst)
        out.copied += 1
    return out


def restore_records(src: Path, sweep: Path) -> Copied:
    """Copy ``src``'s records into ``sweep`` where it has no such file; a file the sweep
    has (newer work of this machine) is never replaced."""
    require(src.is_dir(), f"{src}: no such records folder")
    if not holds_records(src):
        raise LaomError(f"{src}: not a sweep's records (no sweep.yaml or runs.jsonl)")
    require(not sweep.exists() or sweep.is_dir(), f"{sweep}: exists and is not a directory")
    out = Copied()
    for rel in _records(src):
        dst = sweep / rel
        if dst.exists():
            out.unchanged += 1
            continue
        _copy(src / rel, dst)
        out.copied += 1
    return out


def _copy(src: Path, dst: Path) -> None:
    """A record is whole or absent, as in the sweep (a hidden temporary name, then a rename)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dst)



def _write_inputs(sweep: Path, dest: Path) -> None:
    """``dest/inputs.json``: what a report reads of the sweep's data files (the expert's
    mean return, the distractor setting), which the records would otherwise lose with
    the data. Kept as it is when the data files are gone."""
    import json

    import h5py
    import yaml

    from laom.data.format import plain_attrs

    try:
        config = (yaml.safe_load((sweep / "sweep.yaml").read_text()) or {}).get("config") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return
    facts: dict[str, dict[str, object]] = {}
    for kind in ("data", "eval_data"):
        for task, path in (config.get(kind) or {}).items():
            if not path or not Path(path).is_file():
                continue
            try:
                with h5py.File(path, "r") as f:
                    attrs = plain_attrs(f.attrs)
            except OSError:
                continue
            keep = {k: attrs[k] for k in ("dataset_return", "difficulty", "split", "episodes") if k in attrs}
            facts.setdefault(task, {})[kind] = {"path": path, **keep}
    if facts:
        dest.mkdir(parents=True, exist_ok=True)
        tmp = dest / f".{INPUTS}.tmp"
        tmp.write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
        tmp.replace(dest / INPUTS)


def recorded_inputs(folder: Path) -> dict[str, dict[str, dict[str, object]]]:
    """``inputs.json`` of a records folder (empty when there is none or it is unreadable)."""
    import json

    try:
        value = json.loads((folder / INPUTS).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}

