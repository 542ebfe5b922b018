"""Whether the dataset files one run reads belong together, checked from their headers.

Every stage checks its own inputs when it starts, but a pipeline or a sweep reads some
files only in a late stage (the decoder reads ``--labeled`` after the LAM and the latent
BC trained, hours at paper scale). :func:`check_compatible` reads only attributes and
dataset shapes (no frames), so a whole plan is checked in well under a second before
its first stage starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from laom.errors import LaomError


@dataclass(frozen=True)
class DataFacts:
    """What a model trained on one file assumes about another."""

    path: str
    task: str  # "domain-task"; "" when the file does not say
    img_hw: tuple[int, int]  # from the frames themselves, not the img_hw attribute
    action_dim: int
    state_dim: int
    trajectories: int
    transitions: int  # (o_t, o_t+1) pairs: frames minus one per trajectory
    longest: int = 0  # frames in the longest trajectory


def data_facts(path: str | Path, flag: str) -> DataFacts:
    """The facts of ``path`` (one ``LaomError`` line naming ``flag`` if it is not a
    dataset in the release's layout: groups of uint8 [T,H,W,3] obs with actions and
    states of the same length)."""
    from laom.data.format import open_dataset

    path = Path(path)
    if path.is_dir():
        raise LaomError(f"{flag} {path}: is a directory, expected an HDF5 file")
    if not path.is_file():
        raise LaomError(f"{flag} {path}: no such file")
    try:
        reader = open_dataset(path)
    except LaomError as exc:
        raise LaomError(f"{flag} {exc}") from None
    with reader:
        f = reader.h5
        if not reader.indices:
            raise LaomError(f"{flag} {path}: no trajectories (expected groups '0', '1', ...)")
        first: tuple[int, ...] | None = None
        dims: tuple[int, int] | None = None
        transitions = longest = 0
        for index in reader.indices:
            group = f[str(index)]
            missing = [k for k in ("obs", "actions", "states") if k not in group]
            if missing:
                raise LaomError(f"{flag} {path}: trajectory {index} lacks {', '.join(missing)}")
            obs, actions, states = group["obs"], group["actions"], group["states"]
            if obs.ndim != 4 or obs.shape[-1] != 3 or obs.dtype != np.uint8:
                raise LaomError(f"{flag} {path}: trajectory {index} obs must be uint8 [T,H,W,3], got {obs.dtype} {obs.shape}")
            length = obs.shape[0]
            if actions.ndim != 2 or states.ndim != 2 or actions.shape[0] != length or states.shape[0] != length:
                raise LaomError(
                    f"{flag} {path}: trajectory {index} has {length} frames but actions {actions.shape} "
                    f"and states {states.shape}"
                )  # fmt: skip
            if first is None:
                first, dims = obs.shape[1:], (actions.shape[1], states.shape[1])
            elif obs.shape[1:] != first or (actions.shape[1], states.shape[1]) != dims:
                raise LaomError(f"{flag} {path}: trajectory {index} has shapes unlike trajectory {reader.indices[0]}")
            transitions += max(0, length - 1)
            longest = max(longest, length)
        if transitions == 0:
            raise LaomError(f"{flag} {path}: no transitions (trajectories need 2+ frames)")
        domain, task = str(reader.attrs.get("domain_name", "")), str(reader.attrs.get("task_name", ""))
        assert first is not None and dims is not None
        return DataFacts(
            path=str(path), task=f"{domain}-{task}" if domain and task else "", img_hw=(int(first[0]), int(first[1])),
            action_dim=int(dims[0]), state_dim=int(dims[1]), trajectories=len(reader.indices), transitions=transitions,
            longest=longest,
        )  # fmt: skip


def check_compatible(files: Mapping[str, str]) -> dict[str, DataFacts]:
    """Check that the files one run reads together (flag -> path; "" = unused) hold the
    same task with the same image and action sizes; the first file is the reference.
    Returns the facts per flag."""
    facts = {flag: data_facts(path, flag) for flag, path in files.items() if path}
    if not facts:
        return facts
    ref_flag, ref = next(iter(facts.items()))
    for flag, other in list(facts.items())[1:]:
        if ref.task and other.task and other.task != ref.task:
            raise LaomError(f"{flag} {other.path} holds {other.task} data but {ref_flag} {ref.path} holds {ref.task}")
        if other.img_hw != ref.img_hw:
            raise LaomError(
                f"{flag} {other.path}: {_hw(other.img_hw)} frames, but {ref_flag} {ref.path} has {_hw(ref.img_hw)}"
            )
        for what, mine, theirs in (("action", other.action_dim, ref.action_dim), ("state", other.state_dim, ref.state_dim)):
            if mine != theirs:
                raise LaomError(
                    f"{flag} {other.path}: {what}s of size {mine}, but {ref_flag} {ref.path} has {theirs}"
                )
    return facts


def _hw(hw: tuple[int, int]) -> str:
    return f"{hw[0]}x{hw[1]}"
