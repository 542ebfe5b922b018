"""The trajectory file format of the paper's release, and safe ways to read and write it.

One HDF5 file per dataset; one group per trajectory named "0", "1", ... holding
``obs`` uint8 [T,H,W,3], ``states`` float32 [T,D] and ``actions`` float32 [T,A], with
the trajectory's return in the group attribute ``traj_return``; the file attributes
``domain_name``, ``task_name``, ``difficulty``, ``dynamic``, ``img_hw``, ``split`` and
``dataset_return`` (mean trajectory return) describe where the data came from.

Files of the release load unchanged. Files we write carry the same groups, datasets,
dtypes and attributes, plus a few extra attributes (``laom_version``; for collections
``seed``, ``episodes``, ``shard`` and per group ``episode_index``/``episode_seed``) that
make them resumable, mergeable and traceable. Readers never depend on the extras.
Collections also record the distractors behind every frame in an optional subgroup
``distractors`` of each trajectory group (datasets ``camera``, ``color``,
``background_video``, ``background_frame``, each [T, ...]; docs/distractors.md): readers
that do not know it never open it, and :func:`read_distractors` gives it to those that do.

Appending goes through :class:`Writer`, which wraps each trajectory in a journaled
transaction (:mod:`laom.data.journal`): a killed writer leaves every trajectory whole or
absent. Commands that produce a new file build it under a temporary name next to the
destination and rename it at the end (:func:`atomic_output`), so an existing output is
never half-overwritten.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from laom import __version__
from laom.data.journal import JournaledFile, journal_path, recover
from laom.errors import LaomError
from laom.outputs import atomic_path, check_output

FIELDS = ("obs", "states", "actions")
# Optional subgroup of a trajectory group: per-frame distractor records (docs/distractors.md).
DISTRACTORS = "distractors"
FILE_ATTRS = (
    "domain_name",
    "task_name",
    "difficulty",
    "dynamic",
    "img_hw",
    "split",
    "dataset_return",
)
# Frames per HDF5 chunk of compressed ``obs``: 16 frames of 64x64 RGB is ~200 KB. Whole
# trajectories read as fast as with bigger chunks, while a short window of frames (a frame
# stack, an (o_t, o_t+k) pair) decompresses less it does not need (measured: 8-frame chunks
# read random 32-frame windows 1.6x faster than 32-frame chunks, at the same whole-file speed).
DEFAULT_CHUNK_FRAMES = 16
COMPRESSIONS = ("none", "lzf", "gzip")


# --------------------------------------------------------------------------- helpers
def plain(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (release files store numpy scalars/bytes)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def plain_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {key: plain(attrs[key]) for key in attrs}


def img_hw_of(value: Any) -> tuple[int, int]:
    """``img_hw`` as (H, W): the release stores one int for square images."""
    value = plain(value)
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return int(value[0]), int(value[0])
        if len(value) == 2:
            return int(value[0]), int(value[1])
        raise ValueError(f"img_hw {value!r}")
    return int(value), int(value)


def task_of(attrs: Mapping[str, Any]) -> str:
    """The "domain-task" name a file was collected on."""
    return f"{plain(attrs.get('domain_name', '?'))}-{plain(attrs.get('task_name', '?'))}"


def trajectory_names(h5: h5py.Group) -> list[str]:
    """Trajectory group names in numeric order ("10" after "9", not after "1")."""
    return sorted((k for k in h5 if k.isdigit()), key=int)


def shard_indices(episodes: int, shard: tuple[int, int] = (0, 1)) -> range:
    """The global episode indices shard ``i`` of ``n`` owns: every n-th from i.

    Interleaving (rather than contiguous blocks) spreads slow and fast episodes evenly
    over shards, and keeps each shard's share within one episode of the others.
    """
    i, n = shard
    return range(i, episodes, n)


def parse_shard(text: str) -> tuple[int, int]:
    """ "I/N" -> (I, N) with 0 <= I < N."""
    try:
        left, right = str(text).split("/")
        i, n = int(left), int(right)
    except ValueError:
        raise LaomError(f"--shard {text!r}: expected I/N, e.g. 0/4 (shard 0 of 4)") from None
    if n < 1 or not 0 <= i < n:
        raise LaomError(f"--shard {text!r}: need 0 <= I < N, e.g. 0/4 .. 3/4")
    return i, n


@dataclass(frozen=True)
class Compression:
    """How ``obs`` is stored: uncompressed and contiguous (the default) or chunked by frame."""

    name: str = "none"
    level: int | None = None
    chunk_frames: int = DEFAULT_CHUNK_FRAMES

    @classmethod
    def parse(
        cls, spec: str | Compression | None, chunk_frames: int = DEFAULT_CHUNK_FRAMES
    ) -> Compression:
        """ "none", "lzf", "gzip" or "gzip:LEVEL" (0-9, default 4)."""
        if isinstance(spec, Compression):
            return spec
        if spec is None or spec == "":
            return cls("none", None, chunk_frames)
        name, _, level = str(spec).partition(":")
        name = name.lower()
        if name not in COMPRESSIONS:
            raise LaomError(f"--compression {spec!r}: choose none, lzf, gzip or gzip:LEVEL")
        if name == "gzip":
            try:
                lvl = int(level) if level else 4
            except ValueError:
                raise LaomError(f"--compression {spec!r}: gzip level must be 0-9") from None
            if not 0 <= lvl <= 9:
                raise LaomError(f"--compression {spec!r}: gzip level must be 0-9")
            return cls("gzip", lvl, chunk_frames)
        if level:
            raise LaomError(f"--compression {spec!r}: only gzip takes a level")
        return cls(name, None, chunk_frames)

    def __str__(self) -> str:
        return f"gzip:{self.level}" if self.name == "gzip" else self.name

    def dataset_kwargs(self, shape: Sequence[int]) -> dict[str, Any]:
        """h5py ``create_dataset`` keywords for an ``obs`` array of ``shape``."""
        if self.name == "none":
            return {}
        chunks = (max(1, min(self.chunk_frames, int(shape[0]))), *shape[1:])
        kwargs: dict[str, Any] = {"chunks": chunks, "compression": self.name}
        if self.name == "gzip":
            kwargs["compression_opts"] = self.level
        return kwargs

    @classmethod
    def of(cls, dset: h5py.Dataset) -> Compression:
        """The compression an existing ``obs`` dataset was written with."""
        name = dset.compression or "none"
        if name not in COMPRESSIONS:
            return cls(str(name), None, int(dset.chunks[0]) if dset.chunks else 0)
        level = dset.compression_opts if name == "gzip" else None
        chunk = int(dset.chunks[0]) if dset.chunks else DEFAULT_CHUNK_FRAMES
        return cls(name, None if level is None else int(level), chunk)


@dataclass
class Trajectory:
    """One trajectory in memory: the arrays of a group and its return."""

    obs: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    traj_return: float
    attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.obs.shape[0])


def check_arrays(obs: np.ndarray, states: np.ndarray, actions: np.ndarray) -> None:
    """Refuse arrays that would make an invalid group, before any byte is written."""
    if obs.dtype != np.uint8 or obs.ndim != 4 or obs.shape[-1] != 3:
        raise ValueError(f"obs must be uint8 [T,H,W,3], got {obs.dtype} {list(obs.shape)}")
    if states.ndim != 2 or actions.ndim != 2:
        raise ValueError(
            f"states/actions must be 2-D, got {list(states.shape)} / {list(actions.shape)}"
        )
    t = obs.shape[0]
    if t == 0:
        raise ValueError("empty trajectory")
    if states.shape[0] != t or actions.shape[0] != t:
        raise ValueError(
            f"lengths differ: obs {t}, states {states.shape[0]}, actions {actions.shape[0]}"
        )


# --------------------------------------------------------------------------- outputs
@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], force: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success
    (:func:`laom.outputs.atomic_path`, after the output check every writer makes)."""
    path = Path(path)
    check_output_path(path, force)
    with atomic_path(path) as tmp:
        yield tmp


def check_output_path(path: Path, force: bool = False, flag: str = "output") -> None:
    """One clear error for an output file that cannot or must not be written (see
    :func:`laom.outputs.check_output`, which every writing command shares)."""
    check_output(path, flag, kind="file", force=force)


def create(path: str | os.PathLike[str], attrs: Mapping[str, Any], force: bool = False) -> Path:
    """Create an empty dataset file with ``attrs``, atomically.

    Starting from a whole (if empty) file is what lets every later state of an appended
    file be a valid HDF5 file: the journal can only roll back to a commit that exists.
    """
    path = Path(path)
    missing = [k for k in FILE_ATTRS if k not in attrs and k != "dataset_return"]
    if missing:
        raise ValueError(f"missing file attributes {missing}")
    with atomic_output(path, force) as tmp:
        with h5py.File(tmp, "w") as h5:
            for key, value in attrs.items():
                h5.attrs[key] = value
            h5.attrs.setdefault("dataset_return", 0.0)
            h5.attrs.setdefault("laom_version", __version__)
    return path


def _put_datasets(group: h5py.Group, datasets: Mapping[str, np.ndarray | None] | None) -> None:
    """Write extra arrays into a trajectory group, replacing any of the same name (never
    the group's own obs/states/actions); a None value removes that dataset, so a copied
    group keeps no stale one."""
    for name, values in (datasets or {}).items():
        if name in FIELDS:
            raise ValueError(f"extra dataset {name!r} would replace the trajectory's own {name}")
        if name in group:
            del group[name]
        if values is not None:
            group.create_dataset(name, data=np.asarray(values))


class Writer:
    """Appends whole trajectories to a dataset file; each append is all-or-nothing.

    With ``journal=True`` (the default) a ``kill -9`` at any moment leaves the file at its
    last completed trajectory (see :mod:`laom.data.journal`). ``journal=False`` is for
    temporary files that are renamed into place only when complete, where the journal's
    copy-before-overwrite would be wasted work.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        compression: Compression | str | None = None,
        *,
        journal: bool = True,
        durable: bool = True,
    ) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise LaomError(f"{self.path}: no such file")
        self.compression = Compression.parse(compression)
        self._jf: JournaledFile | None = None
        try:
            if journal:
                self._jf = JournaledFile(self.path, durable=durable)
                self._h5 = h5py.File(self._jf, "r+")
            else:
                recover(self.path)
                self._h5 = h5py.File(self.path, "r+")
        except OSError as exc:
            if self._jf is not None:
                self._jf.finish(commit=False)
            raise LaomError(open_error(self.path, exc)) from None
        names = trajectory_names(self._h5)
        self._indices = {int(n) for n in names}
        self._returns = {
            int(n): float(plain(self._h5[n].attrs.get("traj_return", 0.0))) for n in names
        }

    # -- reading what is there --------------------------------------------------------
    @property
    def indices(self) -> list[int]:
        return sorted(self._indices)

    def __contains__(self, index: int) -> bool:
        return index in self._indices

    def __len__(self) -> int:
        return len(self._indices)

    @property
    def attrs(self) -> dict[str, Any]:
        return plain_attrs(self._h5.attrs)

    @property
    def h5(self) -> h5py.File:
        return self._h5

    # -- writing ----------------------------------------------------------------------
    def append(
        self,
        index: int,
        obs: np.ndarray,
        states: np.ndarray,
        actions: np.ndarray,
        traj_return: float,
        attrs: Mapping[str, Any] | None = None,
        distractors: Mapping[str, np.ndarray] | None = None,
        datasets: Mapping[str, np.ndarray | None] | None = None,
    ) -> None:
        """Add trajectory group ``str(index)`` with its arrays, atomically; ``distractors``
        (name -> [T, ...] per-frame records) go to its optional ``distractors`` subgroup.
        ``datasets`` are any other arrays kept beside them (``laom relabel``'s latent
        actions; a name may hold ``/``), written in the same transaction so a trajectory
        never appears without them."""
        obs = np.asarray(obs)
        states = np.asarray(states, dtype=np.float32)
        actions = np.asarray(actions, dtype=np.float32)
        check_arrays(obs, states, actions)
        records = {k: np.asarray(v) for k, v in (distractors or {}).items()}
        for name, values in records.items():
            if values.ndim < 1 or values.shape[0] != obs.shape[0]:
                raise ValueError(
                    f"distractor record {name!r}: {list(values.shape)}, expected {obs.shape[0]} steps first"
                )
        if index in self._indices:
            raise ValueError(f"{self.path}: trajectory {index} already exists")
        comp = self.compression

        def write() -> None:
            group = self._h5.create_group(str(index))
            group.create_dataset("obs", data=obs, **comp.dataset_kwargs(obs.shape))
            group.create_dataset("states", data=states)
            group.create_dataset("actions", data=actions)
            group.attrs["traj_return"] = float(traj_return)
            for key, value in (attrs or {}).items():
                group.attrs[key] = value
            if records:
                sub = group.create_group(DISTRACTORS)
                for name, values in records.items():
                    sub.create_dataset(name, data=values)
            _put_datasets(group, datasets)

        self._transaction(write, index, float(traj_return))

    def copy_group(
        self,
        source: h5py.Group,
        index: int,
        attrs: Mapping[str, Any] | None = None,
        datasets: Mapping[str, np.ndarray | None] | None = None,
    ) -> None:
        """Copy a trajectory group as stored (no decompress/recompress), atomically;
        ``datasets`` are added to the copy (replacing any of the same name) in the same
        transaction."""
        if index in self._indices:
            raise ValueError(f"{self.path}: trajectory {index} already exists")
        traj_return = float(plain(source.attrs["traj_return"]))

        def write() -> None:
            source.file.copy(source, self._h5, name=str(index))
            for key, value in (attrs or {}).items():
                self._h5[str(index)].attrs[key] = value
            _put_datasets(self._h5[str(index)], datasets)

        self._transaction(write, index, traj_return)

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        """Update file attributes, atomically."""

        def write() -> None:
            for key, value in attrs.items():
                self._h5.attrs[key] = value

        self._transaction(write, None, 0.0)

    def _transaction(self, write: Any, index: int | None, traj_return: float) -> None:
        try:
            write()
            if index is not None:
                returns = [*self._returns.values(), traj_return]
                self._h5.attrs["dataset_return"] = float(np.mean(returns))
            self._h5.flush()
        except BaseException:
            self._abort()
            raise
        if self._jf is not None:
            self._jf.commit()
        if index is not None:
            self._indices.add(index)
            self._returns[index] = traj_return

    def _abort(self) -> None:
        """Undo a half-done append; the writer is closed afterwards."""
        with contextlib.suppress(Exception):
            self._h5.close()
        if self._jf is not None:
            self._jf.finish(commit=False)
            self._jf = None

    def close(self) -> None:
        if self._h5.id.valid:
            self._h5.close()
        if self._jf is not None:
            self._jf.finish(commit=True)
            self._jf = None

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- reading
def open_error(path: Path, exc: BaseException) -> str:
    """A one-line reason why HDF5 could not open ``path``."""
    msg = " ".join(str(exc).split())
    if not path.exists():
        return f"{path}: no such file"
    if path.is_dir():
        return f"{path}: is a directory, not an HDF5 file"
    if "unable to lock file" in msg.lower():
        if "errno = 11" in msg or "temporarily unavailable" in msg.lower():
            return f"{path}: the file is being written by another process; wait for it to finish"
        return f"{path}: HDF5 could not lock the file ({msg}); on filesystems without locks set HDF5_USE_FILE_LOCKING=FALSE"
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError:
        is_hdf5 = False
    if not is_hdf5:
        return f"{path}: not an HDF5 file ({path.stat().st_size} bytes, no HDF5 signature)"
    if "truncated" in msg.lower():
        return f"{path}: truncated HDF5 file ({msg})"
    return f"{path}: corrupt or unreadable HDF5 file ({msg})"


class DatasetReader:
    """Read access to a dataset file, ours or the release's.

    Trajectories are addressed by their group number (``reader[3]`` is group "3");
    :attr:`indices` lists them in numeric order. Opening a file whose writer was killed
    first undoes the unfinished trajectory (see :mod:`laom.data.journal`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise LaomError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise LaomError(f"{self.path}: is a directory, not an HDF5 file")
        self.recovered = recover(self.path) if journal_path(self.path).exists() else False
        try:
            self._h5 = h5py.File(self.path, "r")
        except OSError as exc:
            raise LaomError(open_error(self.path, exc)) from None
        try:
            self.attrs: dict[str, Any] = plain_attrs(self._h5.attrs)
            self.indices: list[int] = [int(n) for n in trajectory_names(self._h5)]
        except (OSError, KeyError, RuntimeError, ValueError) as exc:
            self._h5.close()
            raise LaomError(
                f"{self.path}: corrupt HDF5 file ({' '.join(str(exc).split())})"
            ) from None

    @property
    def h5(self) -> h5py.File:
        return self._h5

    @property
    def task(self) -> str:
        return task_of(self.attrs)

    @property
    def img_hw(self) -> tuple[int, int]:
        return img_hw_of(self.attrs["img_hw"])

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[Trajectory]:
        for i in self.indices:
            yield self[i]

    def group(self, index: int) -> h5py.Group:
        try:
            return self._h5[str(index)]
        except KeyError:
            raise LaomError(f"{self.path}: no trajectory {index}") from None

    def __getitem__(self, index: int) -> Trajectory:
        g = self.group(index)
        return Trajectory(
            obs=g["obs"][()],
            states=g["states"][()],
            actions=g["actions"][()],
            traj_return=float(plain(g.attrs.get("traj_return", math.nan))),
            attrs=plain_attrs(g.attrs),
        )

    def length(self, index: int) -> int:
        return int(self.group(index)["obs"].shape[0])

    def traj_return(self, index: int) -> float:
        return float(plain(self.group(index).attrs.get("traj_return", math.nan)))

    def returns(self) -> np.ndarray:
        return np.array([self.traj_return(i) for i in self.indices], dtype=np.float64)

    def obs(self, index: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self.group(index)["obs"][start:stop]

    def states(self, index: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self.group(index)["states"][start:stop]

    def actions(self, index: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self.group(index)["actions"][start:stop]

    def compression(self) -> str:
        """How ``obs`` is stored, e.g. "none", "lzf (32-frame chunks)", or "mixed: ..."."""
        kinds = set()
        for i in self.indices:
            dset = self.group(i)["obs"]
            comp = Compression.of(dset)
            kinds.add(str(comp) + (f" ({dset.chunks[0]}-frame chunks)" if dset.chunks else ""))
        if not kinds:
            return "-"
        return kinds.pop() if len(kinds) == 1 else "mixed: " + ", ".join(sorted(kinds))

    def close(self) -> None:
        self._h5.close()

    def __enter__(self) -> DatasetReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_dataset(path: str | os.PathLike[str]) -> DatasetReader:
    """Open a dataset file for reading (ours or the release's)."""
    return DatasetReader(path)


def distractor_datasets(group: h5py.Group) -> dict[str, h5py.Dataset]:
    """The per-frame distractor records of one trajectory group ({} when it has none)."""
    sub = group.get(DISTRACTORS)
    if not isinstance(sub, h5py.Group):
        return {}
    return {name: dset for name, dset in sub.items() if isinstance(dset, h5py.Dataset)}


def read_distractors(groups: Sequence[h5py.Group], where: str | os.PathLike[str] = "") -> dict[str, np.ndarray] | None:
    """The distractor records of ``groups`` (trajectory groups) concatenated in that order,
    frame by frame as the samplers concatenate frames, so record row i belongs to frame i.

    Only the records every group has; None when some group has none (the release's files,
    collections from before the records, or one resumed across that change), because a
    probe over part of the data would silently answer a different question. A record
    whose length is not its group's ``obs`` length, or whose shape per frame changes
    between groups, is a broken file: one LaomError naming the trajectory and record.
    """
    per_group = [distractor_datasets(g) for g in groups]
    if not per_group or not all(per_group):
        return None
    common = set.intersection(*(set(r) for r in per_group))
    out: dict[str, np.ndarray] = {}
    for name in sorted(common):
        pieces: list[np.ndarray] = []
        for group, records in zip(groups, per_group, strict=True):
            dset, length = records[name], int(group["obs"].shape[0])
            field = f"{where}: trajectory {group.name.strip('/')} {DISTRACTORS}/{name}"
            if dset.dtype.kind not in "biuf":
                raise LaomError(f"{field}: dtype {dset.dtype}, expected numbers")
            if dset.ndim < 1 or dset.shape[0] != length:
                raise LaomError(f"{field}: shape {list(dset.shape)}, expected {length} steps (as obs)")
            if pieces and dset.shape[1:] != pieces[0].shape[1:]:
                raise LaomError(
                    f"{field}: {list(dset.shape[1:])} per frame, but earlier trajectories have {list(pieces[0].shape[1:])}"
                )
            pieces.append(dset[()])
        out[name] = np.concatenate(pieces)
    return out or None


# --------------------------------------------------------------------------- validation
@dataclass
class ValidationReport:
    """What :func:`validate` found in a file that passed."""

    path: Path
    trajectories: int
    transitions: int
    img_hw: tuple[int, int]
    state_dim: int | None
    action_dim: int | None
    attrs: dict[str, Any]
    planned: int | None = None  # episodes a (possibly partial) collection will hold
    missing: list[int] = field(default_factory=list)  # planned episodes not written yet
    recovered: bool = False  # an interrupted write was undone on open

    @property
    def complete(self) -> bool:
        return not self.missing

    def summary(self) -> str:
        dims = (
            f"state {self.state_dim}, action {self.action_dim}"
            if self.state_dim is not None
            else "no data"
        )
        text = (
            f"OK {self.path}: {task_of(self.attrs)} ({self.attrs.get('difficulty')}, "
            f"{self.attrs.get('split')}), {self.trajectories} trajectories, "
            f"{self.transitions} transitions, {self.img_hw[0]}x{self.img_hw[1]} px, {dims}"
        )
        if self.missing:
            text += f"; incomplete collection: {self.trajectories} of {self.planned} episodes (resume with `laom collect`)"
        if self.recovered:
            text += "; an interrupted write was rolled back"
        return text


def _planned(attrs: Mapping[str, Any]) -> list[int] | None:
    """Episode indices a collection file is meant to hold, if it records its plan."""
    if "episodes" not in attrs:
        return None
    shard = parse_shard(attrs.get("shard", "0/1"))
    return list(shard_indices(int(attrs["episodes"]), shard))


def validate(path: str | os.PathLike[str], deep: bool = False) -> ValidationReport:
    """Check a dataset file end to end; raise :class:`LaomError` naming the first problem.

    Cheap by default: every dataset's dtype and shape, every float array for NaN/inf,
    and the first and last frame of every ``obs`` (which proves its storage is on disk).
    ``deep`` reads every frame too, for files copied over unreliable links.
    """
    path = Path(path)
    with DatasetReader(path) as reader:
        problems: list[str] = []
        attrs = reader.attrs
        missing_attrs = [k for k in FILE_ATTRS if k not in attrs]
        if missing_attrs:
            raise LaomError(f"{path}: missing file attribute(s) {', '.join(missing_attrs)}")
        try:
            hw = img_hw_of(attrs["img_hw"])
        except (TypeError, ValueError):
            raise LaomError(
                f"{path}: file attribute img_hw={attrs['img_hw']!r} is not a size"
            ) from None

        stray = [k for k in reader.h5 if not k.isdigit()]
        if stray:
            problems.append(
                f"{path}: unexpected object(s) {', '.join(stray[:3])} at the top level (trajectory groups are named 0, 1, ...)"
            )
        names = [int(n) for n in trajectory_names(reader.h5)]
        planned = _planned(attrs)
        missing: list[int] = []
        if planned is not None:
            extra = sorted(set(names) - set(planned))
            if extra:
                problems.append(
                    f"{path}: trajectory group(s) {extra[:5]} are outside this collection's episodes/shard plan"
                )
            missing = sorted(set(planned) - set(names))
        else:
            gaps = sorted(set(range(len(names))) - set(names))
            if gaps:
                problems.append(
                    f"{path}: missing trajectory group(s) {', '.join(map(str, gaps[:5]))} (groups must be numbered 0..{len(names) - 1})"
                )
            elif not names:
                problems.append(f"{path}: no trajectory groups")

        transitions = 0
        dims: dict[str, int] = {}
        for index in names:
            problem, length = _check_group(reader.h5, path, index, hw, dims, deep)
            if problem:
                problems.append(problem)
            transitions += length
        if problems:
            more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
            raise LaomError(problems[0] + more)
        return ValidationReport(
            path=path,
            trajectories=len(names),
            transitions=transitions,
            img_hw=hw,
            state_dim=dims.get("states"),
            action_dim=dims.get("actions"),
            attrs=attrs,
            planned=None if planned is None else len(planned),
            missing=missing,
            recovered=reader.recovered,
        )


def _check_group(
    h5: h5py.File, path: Path, index: int, hw: tuple[int, int], dims: dict[str, int], deep: bool
) -> tuple[str | None, int]:
    """The first problem of one trajectory group (or None) and its length."""
    where = f"{path}: trajectory {index}"
    try:
        group = h5[str(index)]
        if not isinstance(group, h5py.Group):
            return f"{where}: is not a group", 0
        for name in FIELDS:
            if name not in group:
                return f"{where}: missing dataset '{name}'", 0
            if not isinstance(group[name], h5py.Dataset):
                return f"{where}: '{name}' is not a dataset", 0
        obs, states, actions = (group[n] for n in FIELDS)
        if obs.dtype != np.uint8:
            return f"{where}: obs: dtype {obs.dtype}, expected uint8", 0
        if obs.ndim != 4 or obs.shape[3] != 3:
            return f"{where}: obs: shape {list(obs.shape)}, expected [T,H,W,3]", 0
        if tuple(obs.shape[1:3]) != hw:
            return (
                f"{where}: obs: frames are {obs.shape[1]}x{obs.shape[2]} but file attribute img_hw is {hw[0]}x{hw[1]}",
                0,
            )
        length = int(obs.shape[0])
        if length == 0:
            return f"{where}: obs: empty trajectory (0 steps)", 0
        for name, dset in (("states", states), ("actions", actions)):
            if dset.dtype != np.float32:
                return f"{where}: {name}: dtype {dset.dtype}, expected float32", length
            if dset.ndim != 2:
                return (
                    f"{where}: {name}: shape {list(dset.shape)}, expected [T,{'D' if name == 'states' else 'A'}]",
                    length,
                )
            if dset.shape[0] != length:
                return f"{where}: {name}: {dset.shape[0]} steps but obs has {length}", length
            if dims.setdefault(name, int(dset.shape[1])) != dset.shape[1]:
                return (
                    f"{where}: {name}: width {dset.shape[1]} differs from earlier trajectories ({dims[name]})",
                    length,
                )
            values = dset[()]
            bad = ~np.isfinite(values)
            if bad.any():
                step = int(np.argwhere(bad)[0][0])
                return (
                    f"{where}: {name}: {int(bad.sum())} NaN/inf value(s), first at step {step}",
                    length,
                )
        if deep:
            frames = obs[()]
            del frames
        else:
            obs[0]
            obs[length - 1]
        problem = _check_distractors(group, where, length)
        if problem:
            return problem, length
        if "traj_return" not in group.attrs:
            return f"{where}: missing attribute traj_return", length
        ret = plain(group.attrs["traj_return"])
        if not isinstance(ret, (int, float)) or not math.isfinite(ret):
            return f"{where}: traj_return: {ret!r} is not a finite number", length
        return None, length
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        msg = " ".join(str(exc).split())
        return f"{where}: unreadable (truncated or corrupt file?): {msg}", 0


def _check_distractors(group: h5py.Group, where: str, length: int) -> str | None:
    """The first problem of a group's optional distractor records (None if fine or absent)."""
    if DISTRACTORS not in group:
        return None
    sub = group[DISTRACTORS]
    if not isinstance(sub, h5py.Group):
        return f"{where}: '{DISTRACTORS}' is not a group"
    for name, dset in sub.items():
        field = f"{where}: {DISTRACTORS}/{name}"
        if not isinstance(dset, h5py.Dataset):
            return f"{field}: is not a dataset"
        if dset.dtype.kind not in "biuf":
            return f"{field}: dtype {dset.dtype}, expected numbers"
        if dset.ndim < 1 or dset.shape[0] != length:
            return f"{field}: shape {list(dset.shape)}, expected {length} steps (as obs)"
        if dset.dtype.kind == "f" and not np.isfinite(dset[()]).all():
            return f"{field}: NaN/inf values"
    return None


def distractor_summary(reader: DatasetReader) -> dict[str, Any] | None:
    """Which trajectories carry distractor records and which records (None: none do)."""
    names: set[str] = set()
    have = 0
    for index in reader.indices:
        records = distractor_datasets(reader.group(index))
        if records:
            have += 1
            names |= set(records)
    if not have:
        return None
    return {"trajectories": have, "records": sorted(names)}


# --------------------------------------------------------------------------- info
def info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The facts ``laom data info`` prints, as a dict."""
    path = Path(path)
    try:
        return _info(path)
    except (OSError, KeyError, RuntimeError) as exc:
        msg = " ".join(str(exc).split())
        raise LaomError(
            f"{path}: corrupt HDF5 file ({msg}); `laom data validate` names the trajectory"
        ) from None


def _check_layout(path: Path, reader: DatasetReader) -> None:
    """LaomError unless the file has the release's layout, as far as ``info`` reads it:
    the task attributes and the three datasets of the first trajectory group."""
    missing = [k for k in ("domain_name", "task_name") if k not in reader.attrs]
    if missing:
        raise LaomError(
            f"{path}: not a dataset in the release's layout (no file attribute {', '.join(missing)}; "
            "expected trajectory groups 0, 1, ... of obs, states, actions and the task's attributes)"
        )
    if reader.indices:
        index = reader.indices[0]
        group = reader.h5[str(index)]
        absent = [k for k in FIELDS if not isinstance(group.get(k), h5py.Dataset)]
        if absent:
            raise LaomError(
                f"{path}: trajectory {index} has no dataset {', '.join(absent)} "
                f"(the release's layout: {', '.join(FIELDS)} in every trajectory group)"
            )
        obs = group["obs"]
        if obs.ndim != 4 or obs.shape[-1] != 3 or obs.dtype != np.uint8:
            raise LaomError(f"{path}: trajectory {index} obs must be uint8 [T,H,W,3], got {obs.dtype} {obs.shape}")
        if group["actions"].ndim != 2 or group["states"].ndim != 2:
            raise LaomError(
                f"{path}: trajectory {index} actions and states must be [T, dim], got "
                f"{group['actions'].shape} and {group['states'].shape}"
            )  # fmt: skip


def _info(path: Path) -> dict[str, Any]:
    with DatasetReader(path) as reader:
        _check_layout(path, reader)
        attrs = reader.attrs
        returns = reader.returns()
        lengths = [reader.length(i) for i in reader.indices]
        finite = returns[np.isfinite(returns)]
        out: dict[str, Any] = {
            "file": str(path),
            "task": task_of(attrs),
            "difficulty": attrs.get("difficulty"),
            "dynamic": attrs.get("dynamic"),
            "split": attrs.get("split"),
            "img_hw": attrs.get("img_hw"),
            "trajectories": len(reader),
            "transitions": int(sum(lengths)),
            "return_mean": float(finite.mean()) if finite.size else None,
            "return_std": float(finite.std()) if finite.size else None,
            "return_min": float(finite.min()) if finite.size else None,
            "return_max": float(finite.max()) if finite.size else None,
            "dataset_return": attrs.get("dataset_return"),
            "file_bytes": path.stat().st_size,
            "compression": reader.compression(),
        }
        if reader.indices:
            first = reader.group(reader.indices[0])
            out["state_dim"] = int(first["states"].shape[1])
            out["action_dim"] = int(first["actions"].shape[1])
        for key in ("seed", "episodes", "shard", "expert", "source_file", "labeled_seed", "chunk"):
            if key in attrs:
                out[key] = attrs[key]
        planned = _planned(attrs)
        if planned is not None:
            out["missing_episodes"] = len(set(planned) - set(reader.indices))
        out["distractors"] = distractor_summary(reader)
        return out
