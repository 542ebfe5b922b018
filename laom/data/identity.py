"""What a cached result says about the dataset it came from: the dataset's content.

Cache keys (a stage's folder, a sweep run's key, sweep.yaml) name their input files. With
(path, size, mtime) a dataset collected again, identical frame for frame (collection is
seeded), would look new and every cached LAM, policy and recorded run would be trained
again; a study that outlives its machine (sessions, CI, a cluster's scratch disk) keeps
only its small records and re-collects its data. So a trajectory file is named by a
digest of what it holds: its file attributes, and per trajectory its actions, states,
return and the first and last frame (the frames between follow from the states and the
recorded distractors, and hashing 5 GB of pixels at every sweep start would cost more
than the check is worth). Files that are not trajectory files (model weights) keep
(path, size, mtime): their writer is training, which is not reproducible bit for bit.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from laom.data.format import DISTRACTORS, FIELDS


def file_identity(path: str | Path, resolve: bool = True) -> dict[str, Any]:
    """``{"path", "size", "content"}`` for a trajectory file, ``{"path", "size",
    "mtime_ns"}`` for any other file; ``resolve`` names the path absolute (a stage's key)
    or as given (sweep.yaml keeps what the user typed)."""
    p = Path(path).resolve() if resolve else Path(path)
    st = Path(path).stat()
    content = _content_digest(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if content is None:
        return {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return {"path": str(p), "size": st.st_size, "content": content}


@functools.lru_cache(maxsize=64)
def _content_digest(path: str, size: int, mtime_ns: int) -> str | None:
    """The digest of a trajectory file (None for other files); cached per version of the
    file, since a sweep asks for it once per run and stage."""
    del size, mtime_ns  # the cache key: a rewritten file is read again
    if not os.path.isfile(path) or not h5py.is_hdf5(path):
        return None
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        groups = sorted((k for k in f.keys() if k.isdigit()), key=int)
        if not groups:
            return None
        h.update(repr(sorted((k, _plain(v)) for k, v in f.attrs.items() if k != "laom_version")).encode())
        for name in groups:
            g = f[name]
            if not isinstance(g, h5py.Group) or not all(isinstance(g.get(k), h5py.Dataset) for k in FIELDS):
                return None
            h.update(name.encode())
            h.update(repr(_plain(g.attrs.get("traj_return"))).encode())
            for key in ("actions", "states"):
                h.update(np.ascontiguousarray(g[key][()]).tobytes())
            obs = g["obs"]
            h.update(repr(obs.shape).encode())
            if len(obs):
                h.update(np.ascontiguousarray(obs[0]).tobytes())
                h.update(np.ascontiguousarray(obs[len(obs) - 1]).tobytes())
            if DISTRACTORS in g:
                for key in sorted(g[DISTRACTORS].keys()):
                    h.update(key.encode())
                    h.update(np.ascontiguousarray(g[DISTRACTORS][key][()]).tobytes())
    return h.hexdigest()[:16]


def _plain(value: Any) -> Any:
    """An attribute as a plain Python value (numpy scalars and bytes print alike everywhere)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value
