"""Training batches from a release-layout HDF5 file larger than memory, in bounded memory.

:class:`~laom.data.sampler.BatchSampler` needs every frame in RAM. :class:`StreamingSampler`
gives the same batches' *kind* (same keys, shapes, dtypes, frame-stack padding and future
offset rules, one visit per transition per epoch) while holding only a bounded cache of
trajectories:

* **Chunks.** The file's trajectories, in file order, are grouped into chunks of whole
  consecutive trajectories (about an eighth of a window, at most 32 MB, never less than one
  trajectory). A chunk is the unit of shuffling and of reading: consecutive groups were
  written one after the other, so a chunk is one mostly contiguous region of the file.
* **Windows.** Each epoch ``e`` shuffles the chunk order with ``(seed, e)`` and packs the
  shuffled chunks greedily into *windows* of at most half the cache (``cache_mb / 2``).
  Inside a window the chunks are stored in file order (so the same chunk set is the same
  window, whatever the epoch, and reads run forward through the file).
* **Batches.** Epoch ``e`` is the concatenation of its windows' transitions, each window's
  own transitions shuffled with ``(seed, e, window)``; update ``i`` of the epoch takes
  positions ``i*B .. (i+1)*B`` of that sequence, the tail of fewer than ``B`` is dropped
  (as the in-memory sampler's ``drop_last``). A batch may straddle two consecutive windows,
  which is why the cache holds two of them: the one being trained on and the next.
* **Prefetch.** While batches are drawn from window ``w``, a background thread reads window
  ``w+1`` (the first window of the next epoch at an epoch's end) into the other half of the
  cache: whole trajectories, front to back, in contiguous slices (:class:`TrajectoryReader`),
  transposed to channel-first once, exactly as :func:`~laom.data.sampler.load_frames`
  stores them.

Determinism: the schedule (chunk order, window packing, order inside each window) is a pure
function of (seed, epoch, file, cache size) and future offsets of (seed, update), drawn with
the same generator keys as :class:`BatchSampler`, so ``batch(u)`` is the same in a fresh or
resumed run, in any call order. Changing ``cache_mb`` changes the window packing and so the
order of batches (not their statistics); streaming and in-memory runs draw different
orders too.

Shuffling is coarser than in memory: a batch mixes transitions of one window (half the
cache, chunks drawn at random from the whole file), not of the whole file. The larger the
cache relative to the file, the closer the order is to a full shuffle; a file that fits in
one window is read once, and each epoch then shuffles the whole file as the in-memory path
does (with its own generator keys, so not in the same order).

Memory: trajectory data held at any moment (frames, actions, states and the small per-frame
index arrays) is at most ``cache_mb`` -- both windows, the one trained on and the one read
ahead, so a file twice the cache really is streamed; on top come the batch buffers, one
read-staging buffer (8 MB), and O(trajectories) metadata. The two halves of the cache are
allocated once and reused, so steady-state streaming does not page-fault fresh memory in on
every window.

Speed: the reader releases the GIL (``os.preadv``, numpy's transpose), so reads overlap with
training on a free core. Each frame is read and transposed once per epoch: about 5 us for a
64 px frame from the page cache on the 2-core benchmark machine, next to 9-14 us to gather
one sample's three stacks in memory, so with no core to spare the reads add up to half again
to the data path's time (``benchmarks/stream_speed.py`` measures both).
Not thread-safe: one sampler serves one training loop.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from laom.data.access import TrainingData
from laom.data.sampler import STACK_KEYS, Batch, BatchSampler, FrameData, batch_buffers, load_frames
from laom.errors import LaomError

DEFAULT_CACHE_MB = 4096.0
MB = 1 << 20
# Index arrays per resident frame, counted against the cache: a window's FrameData
# (traj_index/start/end, valid_steps: 32 bytes) plus this frame's share of the small LRU
# caches of window plans (local + global valid steps, 16 bytes, 3 kept) and in-window
# permutations (8 bytes, 3 kept) over the two resident windows: 2*32 + 3*16 + 3*8 <= 2*72.
INDEX_BYTES_PER_FRAME = 72
MAX_CHUNK_BYTES = 32 * MB
STAGE_BYTES = 8 * MB  # h5py read_direct slices: large, to amortise h5py's per-call cost
FAST_STAGE_BYTES = 512 * 1024  # preadv slices: small enough to stay in L2 for the transpose
_ALIGN = 64


# --------------------------------------------------------------------------- metadata
class StreamingData:
    """What the trainers read from a :class:`FrameData`, without holding the frames.

    Opening reads only metadata (trajectory lengths, shapes, returns, attributes) and checks
    the file as :func:`load_frames` does, so a bad file fails here with the same one-line
    errors. Frame indices are global, numbered as in ``load_frames(path)``: trajectory
    ``i`` owns frames ``traj_offsets[i] .. traj_offsets[i+1]``.
    """

    def __init__(
        self,
        path: str | Path,
        max_trajectories: int | None = None,
        cache_mb: float = DEFAULT_CACHE_MB,
    ) -> None:
        from laom.data.format import open_dataset

        self.path = str(path)
        self.cache_mb = float(cache_mb)
        with open_dataset(path) as reader:
            f = reader.h5
            names = [str(i) for i in reader.indices]
            if max_trajectories is not None:
                names = names[:max_trajectories]
            if not names:
                raise LaomError(f"dataset {path}: no trajectories (expected groups '0', '1', ...)")
            lengths = []
            shape: tuple[int, ...] | None = None
            dims: tuple[int, int] = (0, 0)
            returns = np.zeros(len(names), dtype=np.float64)
            for i, name in enumerate(names):
                g = f[name]
                missing = [k for k in ("obs", "actions", "states") if k not in g]
                if missing:
                    raise LaomError(f"dataset {path}: trajectory {name} lacks {', '.join(missing)}")
                obs = g["obs"]
                length = int(obs.shape[0]) if obs.ndim else 0
                if shape is None:
                    if obs.ndim != 4 or obs.shape[-1] != 3 or obs.dtype != np.uint8:
                        raise LaomError(
                            f"dataset {path}: obs must be uint8 [T,H,W,3], got {obs.dtype} {obs.shape}"
                        )
                    shape = tuple(obs.shape[1:])
                    dims = (int(g["actions"].shape[1]), int(g["states"].shape[1]))
                if (
                    tuple(obs.shape[1:]) != shape
                    or obs.dtype != np.uint8
                    or g["actions"].shape != (length, dims[0])
                    or g["states"].shape != (length, dims[1])
                ):
                    raise LaomError(
                        f"dataset {path}: trajectory {name} has shapes inconsistent with trajectory {names[0]}"
                    )
                lengths.append(length)
                returns[i] = reader.traj_return(int(name))
            self.attrs: dict[str, Any] = dict(reader.attrs)
        assert shape is not None
        self.names = names
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.traj_offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        self.traj_returns = returns
        self.frame_shape = (3, int(shape[0]), int(shape[1]))  # channel-first, as FrameData
        self._action_dim, self._state_dim = dims
        self._valid_steps: np.ndarray | None = None

    # -- the FrameData interface the trainers use ----------------------------------------
    @property
    def num_frames(self) -> int:
        return int(self.traj_offsets[-1])

    @property
    def num_trajectories(self) -> int:
        return len(self.names)

    @property
    def num_transitions(self) -> int:
        """Steps with a successor in their trajectory (``len(valid_steps)``, without the array)."""
        return int(np.maximum(self.lengths - 1, 0).sum())

    @property
    def img_hw(self) -> int:
        return self.frame_shape[1]

    @property
    def action_dim(self) -> int:
        return self._action_dim

    @property
    def state_dim(self) -> int:
        return self._state_dim

    def task_id(self) -> tuple[str, str]:
        """(domain, task) from the file attributes, '' where missing."""
        return str(self.attrs.get("domain_name", "")), str(self.attrs.get("task_name", ""))

    @property
    def valid_steps(self) -> np.ndarray:
        """Global indices of all steps with a successor (8 bytes per frame, built on first use)."""
        if self._valid_steps is None:
            starts = self.traj_offsets[:-1].tolist()
            stops = (self.traj_offsets[1:] - 1).tolist()  # a trajectory's last frame: none
            pieces = [np.arange(a, b, dtype=np.int64) for a, b in zip(starts, stops, strict=True)]
            self._valid_steps = np.concatenate(pieces) if pieces else np.zeros(0, np.int64)
        return self._valid_steps

    @property
    def frame_bytes(self) -> int:
        return int(np.prod(self.frame_shape))

    @property
    def bytes_per_frame(self) -> int:
        """Cache bytes one resident frame costs: pixels, action, state and index arrays."""
        return self.frame_bytes + 4 * (self.action_dim + self.state_dim) + INDEX_BYTES_PER_FRAME

    @property
    def frames_in_memory(self) -> bool:
        """Never: frames are read from disk when asked for (:meth:`blocks`, :meth:`load`)."""
        return False

    # -- bounded-memory access to the data itself ---------------------------------------
    def load(self, trajectories: Sequence[int]) -> FrameData:
        """The given trajectories (in that order) in memory, e.g. a small held-out split,
        with their distractor records when they all have them (the probes read these)."""
        from laom.data.format import read_distractors

        order = [int(i) for i in trajectories]
        with TrajectoryReader(self) as reader:
            data = reader.read(order)
            data.distractors = read_distractors([reader.h5[self.names[i]] for i in order], self.path)
            return data

    def blocks(self, max_mb: float = 256.0) -> Iterator[tuple[int, FrameData]]:
        """Consecutive runs of whole trajectories of about ``max_mb`` each, in file order.

        Yields ``(first_frame, block)``: the block's local frame ``j`` is global frame
        ``first_frame + j``. For whole-dataset passes (labelling every transition, caching
        latents) in bounded memory; one block is held at a time.
        """
        budget = max(1, int(max_mb * MB) // self.bytes_per_frame)
        with TrajectoryReader(self) as reader:
            start = 0
            while start < self.num_trajectories:
                stop, frames = start, 0
                while stop < self.num_trajectories and (
                    stop == start or frames + self.lengths[stop] <= budget
                ):
                    frames += int(self.lengths[stop])
                    stop += 1
                yield int(self.traj_offsets[start]), reader.read(range(start, stop))
                start = stop

    # -- laom.data.access.TrainingData: what the trainers ask of it ----------------------
    def all_actions(self) -> np.ndarray:
        """Every frame's action [N, A], reading only the action arrays."""
        from laom.data.format import open_dataset

        with open_dataset(self.path) as reader:
            return np.concatenate([np.asarray(reader.h5[name]["actions"], np.float32) for name in self.names])

    def records_distractors(self) -> bool:
        """Whether every trajectory records its distractors, from the headers alone, so a
        file without records costs nothing."""
        from laom.data.format import distractor_summary, open_dataset

        with open_dataset(self.path) as reader:
            found = distractor_summary(reader)
        return bool(found) and found["trajectories"] >= self.num_trajectories

    def take(self, trajectories: Sequence[int] | np.ndarray, max_frames: int) -> FrameData:
        """The first of ``trajectories`` (in that order) that together hold ``max_frames``
        frames, loaded in file order: a probe's sample stays within memory."""
        order = np.asarray(trajectories)
        lengths = self.lengths[order]
        keep = int(np.searchsorted(np.cumsum(lengths), max_frames)) + 1
        return self.load(sorted(order[:keep]))

    def sample(self, rng: np.random.Generator, max_frames: int) -> FrameData:
        """Whole trajectories in an order drawn from ``rng``, about ``max_frames`` frames."""
        return self.take(rng.permutation(self.num_trajectories), max_frames)

    def sampler(
        self, batch_size: int, frame_stack: int = 3, max_offset: int = 1, seed: int = 0,
        keys: tuple[str, ...] = STACK_KEYS, pin_memory: bool = False, with_replacement: bool | None = None,
    ) -> StreamingSampler:  # fmt: skip
        """Batches through a bounded cache of ``cache_mb``; always without replacement (a
        streamed file is far larger than a batch)."""
        if with_replacement:
            raise LaomError(f"dataset {self.path}: a streamed dataset is sampled without replacement")
        return StreamingSampler(self, batch_size, frame_stack, max_offset, seed, keys, pin_memory=pin_memory)

    def __repr__(self) -> str:
        return (
            f"StreamingData({self.path!r}, {self.num_trajectories} trajectories, "
            f"{self.num_frames} frames of {self.frame_shape})"
        )


class TrajectoryReader:
    """Reads whole trajectories of a file into one FrameData (concatenated, channel-first).

    Frames go through a small staging buffer and are transposed to channel-first into their
    place, so no per-trajectory temporaries are allocated and peak extra memory is the stage.
    Two ways to fill the stage:

    * ``obs`` stored contiguous and uncompressed (the release's and our default layout):
      ``os.preadv`` of the frames' byte range at the dataset's file offset, in L2-sized
      (512 KB) slices. One contiguous read per slice with no HDF5 per-call overhead, the GIL
      released, and the stage still in cache when it is transposed: on the 2-core benchmark
      machine 4.9 us per 64 px frame against 8.2 us for 8 MB ``read_direct`` slices, and a
      training loop running beside it slowed half as much.
    * otherwise (chunked, compressed, or no ``preadv``): h5py ``read_direct`` in 8 MB slices
      (whole HDF5 chunks; bigger slices amortise h5py's per-call cost).

    The fast path is checked once per file against h5py (first frame of the first
    trajectory) and dropped if they disagree. ``cancel`` is checked between slices.
    """

    def __init__(self, data: StreamingData, cancel: threading.Event | None = None) -> None:
        from laom.data.format import open_error

        self.data = data
        self.cancel = cancel
        try:
            self.h5 = h5py.File(data.path, "r")
        except OSError as exc:
            raise LaomError(open_error(Path(data.path), exc)) from None
        self._fd: int | None = None
        self._stages: dict[int, np.ndarray] = {}
        if hasattr(os, "preadv"):
            try:
                self._fd = os.open(data.path, os.O_RDONLY)
                agrees = self._fast_path_agrees()
            except OSError:
                agrees = False
            if not agrees and self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _offset(self, obs: h5py.Dataset) -> int | None:
        """File offset of ``obs``'s bytes when they are one plain contiguous run."""
        if self._fd is None or obs.chunks is not None or obs.dtype != np.uint8:
            return None
        return obs.id.get_offset()

    def _fast_path_agrees(self) -> bool:
        """Whether preadv at the first contiguous trajectory's offset reads its first frame."""
        for name, length in zip(self.data.names, self.data.lengths.tolist(), strict=True):
            obs = self.h5[name]["obs"]
            offset = self._offset(obs) if length else None
            if offset is not None:
                first = np.empty(obs.shape[1:], np.uint8)
                if os.preadv(self._fd, [memoryview(first).cast("B")], offset) != first.nbytes:
                    return False
                return bool(np.array_equal(first, obs[0]))
        return True  # no contiguous trajectory: every read goes through h5py

    def _stage(self, nbytes: int) -> np.ndarray:
        frames = max(1, nbytes // self.data.frame_bytes)
        frames = min(frames, max(1, int(self.data.lengths.max())))
        if frames not in self._stages:
            _, h, w = self.data.frame_shape
            self._stages[frames] = np.empty((frames, h, w, 3), dtype=np.uint8)
        return self._stages[frames]

    def read(self, trajectories: Sequence[int], slab: np.ndarray | None = None) -> FrameData:
        """The trajectories' frames, actions and states; views of ``slab`` if given (a
        reusable uint8 buffer of at least :func:`_slab_bytes`), fresh arrays otherwise."""
        data = self.data
        lengths = data.lengths[list(trajectories)]
        n = int(lengths.sum())
        a_dim, s_dim = data.action_dim, data.state_dim
        if slab is None:
            frames = np.empty((n, *data.frame_shape), dtype=np.uint8)
            actions = np.empty((n, a_dim), dtype=np.float32)
            states = np.empty((n, s_dim), dtype=np.float32)
        else:
            frames, actions, states = _slab_views(slab, n, data.frame_shape, a_dim, s_dim)
        pos = 0
        for traj, length in zip(trajectories, lengths.tolist(), strict=True):
            name = data.names[traj]
            try:
                g = self.h5[name]
                self._read_frames(g["obs"], length, frames[pos : pos + length])
                if length:
                    g["actions"].read_direct(actions, None, np.s_[pos : pos + length])
                    g["states"].read_direct(states, None, np.s_[pos : pos + length])
            except (OSError, KeyError, RuntimeError, ValueError, TypeError) as exc:
                msg = " ".join(str(exc).split())
                raise LaomError(
                    f"dataset {data.path}: trajectory {name} unreadable ({msg})"
                ) from None
            pos += length
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return FrameData(frames, actions, states, offsets, dict(data.attrs), data.path)

    def _read_frames(self, obs: h5py.Dataset, length: int, out: np.ndarray) -> None:
        offset = self._offset(obs)
        stage = self._stage(FAST_STAGE_BYTES if offset is not None else STAGE_BYTES)
        view = memoryview(stage).cast("B")
        frame_bytes = self.data.frame_bytes
        for a in range(0, length, len(stage)):
            if self.cancel is not None and self.cancel.is_set():
                raise _Cancelled
            b = min(a + len(stage), length)
            if offset is not None:
                want = (b - a) * frame_bytes
                assert self._fd is not None
                got = os.preadv(self._fd, [view[:want]], offset + a * frame_bytes)
                if got != want:
                    raise OSError(f"short read: {got} of {want} bytes (truncated file?)")
            else:
                obs.read_direct(stage, np.s_[a:b], np.s_[0 : b - a])
            out[a:b] = stage[: b - a].transpose(0, 3, 1, 2)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.h5.close()

    def __enter__(self) -> TrajectoryReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _slab_bytes(frames: int, frame_shape: tuple[int, ...], a_dim: int, s_dim: int) -> int:
    return (
        _align(frames * int(np.prod(frame_shape))) + _align(frames * a_dim * 4) + frames * s_dim * 4
    )


def _slab_views(
    slab: np.ndarray, n: int, frame_shape: tuple[int, ...], a_dim: int, s_dim: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames [n, 3, H, W], actions [n, A] and states [n, D] carved out of a uint8 buffer."""
    f_end = n * int(np.prod(frame_shape))
    a_start = _align(f_end)
    s_start = a_start + _align(n * a_dim * 4)
    frames = slab[:f_end].reshape(n, *frame_shape)
    actions = slab[a_start : a_start + n * a_dim * 4].view(np.float32).reshape(n, a_dim)
    states = slab[s_start : s_start + n * s_dim * 4].view(np.float32).reshape(n, s_dim)
    return frames, actions, states


class _Cancelled(Exception):
    """A read stopped because the sampler was closed."""


# --------------------------------------------------------------------------- schedule
@dataclass
class _WindowPlan:
    """A set of chunks as one resident block: which trajectories, and its transitions."""

    chunks: tuple[int, ...]  # ascending chunk ids
    trajectories: np.ndarray  # global trajectory ids, ascending (the storage order)
    frames: int
    local_valid: np.ndarray  # window-local frame index of each transition, ascending
    global_valid: np.ndarray  # the same transitions as global frame indices


@dataclass
class _EpochPlan:
    """One epoch's windows in training order and their cumulative transition counts."""

    windows: list[tuple[int, ...]]
    starts: np.ndarray  # int64 [W+1]; window w owns epoch positions starts[w]..starts[w+1]

    def segments(self, p0: int, p1: int) -> list[tuple[int, int, int]]:
        """(window, first, stop) position ranges, window-relative, covering p0..p1."""
        out = []
        w = int(np.searchsorted(self.starts, p0, side="right")) - 1
        while p0 < p1:
            stop = min(p1, int(self.starts[w + 1]))
            if stop > p0:
                out.append((w, p0 - int(self.starts[w]), stop - int(self.starts[w])))
            p0 = stop
            w += 1
        return out


@dataclass
class _Slot:
    """Half of the cache: a reusable buffer and the window it holds (or is reading)."""

    key: tuple[int, ...] | None = None
    frames: int = 0
    window: FrameData | None = None
    error: BaseException | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    slab: np.ndarray | None = None


# --------------------------------------------------------------------------- loader
class _Loader:
    """One background thread that reads windows into slots, one request at a time.

    It holds its own read-only h5py handle and no reference to the sampler, so a sampler
    that is dropped without ``close()`` is still collected (and its finaliser stops this).
    """

    def __init__(self, data: StreamingData) -> None:
        self.data = data
        self.cancel = threading.Event()
        self.busy_seconds = 0.0
        self._jobs: queue.Queue[tuple[_Slot, list[int]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="laom-stream-prefetch", daemon=True)
        self._thread.start()

    def submit(self, slot: _Slot, trajectories: list[int]) -> None:
        self._jobs.put((slot, trajectories))

    def _run(self) -> None:
        reader: TrajectoryReader | None = None
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                slot, trajectories = job
                t0 = time.perf_counter()
                try:
                    if self.cancel.is_set():
                        raise _Cancelled
                    if reader is None:
                        reader = TrajectoryReader(self.data, self.cancel)
                    slot.window = reader.read(trajectories, slot.slab)
                except BaseException as exc:  # handed to the waiting caller
                    slot.error = exc
                finally:
                    self.busy_seconds += time.perf_counter() - t0
                    slot.ready.set()
        finally:
            if reader is not None:
                reader.close()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float = 30.0) -> None:
        """Stop reading (between slices), end the thread and close its file."""
        self.cancel.set()
        self._jobs.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)


# --------------------------------------------------------------------------- sampler
class StreamingSampler:
    """:class:`BatchSampler`'s interface over a file streamed through a bounded cache.

    ``batch(update)`` returns a :class:`Batch` with the same keys, shapes and dtypes as the
    in-memory sampler's, its arrays views of buffers reused by the next call. ``steps`` are
    global frame indices (as in ``load_frames(path)``), so per-frame side arrays such as
    cached latents index the same way in both modes. See the module docstring for the
    schedule and the memory bound; call :meth:`close` (or use ``with``) to stop the
    prefetch thread, though a dropped sampler stops it too.
    """

    def __init__(
        self,
        data: StreamingData | str | Path,
        batch_size: int,
        frame_stack: int = 3,
        max_offset: int = 1,
        seed: int = 0,
        keys: tuple[str, ...] = STACK_KEYS,
        cache_mb: float | None = None,
        prefetch: bool = True,
        pin_memory: bool = False,
    ) -> None:
        if not isinstance(data, StreamingData):
            data = StreamingData(data)
        if batch_size < 1 or frame_stack < 1 or max_offset < 1:
            raise LaomError("batch_size, frame_stack and max_offset must be >= 1")
        unknown = [k for k in keys if k not in STACK_KEYS]
        if unknown:
            raise LaomError(f"unknown batch key(s) {unknown}; choose from {list(STACK_KEYS)}")
        if data.num_transitions == 0:
            raise LaomError(f"dataset {data.path}: no transitions (trajectories need 2+ frames)")
        if data.num_transitions < batch_size:
            raise LaomError(
                f"dataset {data.path}: {data.num_transitions} transitions, fewer than batch size {batch_size}"
            )
        self.data = data
        self.batch_size = batch_size
        self.frame_stack = frame_stack
        self.max_offset = max_offset
        self.seed = seed
        self.keys = keys
        self.cache_mb = float(data.cache_mb if cache_mb is None else cache_mb)
        if not self.cache_mb > 0 or not math.isfinite(self.cache_mb):
            raise LaomError(f"--cache_mb {self.cache_mb:g}: must be a positive number of MB")
        self.window_frames = int(self.cache_mb * MB) // 2 // data.bytes_per_frame
        self._check_cache()
        self._chunk_first, self._chunk_frames, self._chunk_transitions = _chunks(
            data, self.window_frames
        )

        self._epochs: OrderedDict[int, _EpochPlan] = OrderedDict()
        self._plans: OrderedDict[tuple[int, ...], _WindowPlan] = OrderedDict()
        self._perms: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._slots = [_Slot(), _Slot()]
        self.peak_resident_frames = 0
        self.windows_read = 0
        self.wait_seconds = 0.0  # time batch() spent blocked on reads
        self._closed = False
        self._sync_reader: TrajectoryReader | None = None  # reads when prefetch is off

        self._buffers = batch_buffers(
            batch_size, frame_stack, data.frame_shape, data.action_dim, data.state_dim, keys,
            pin_memory,
        )  # fmt: skip
        # Last, so that a failed constructor leaves no thread behind.
        self._loader = _Loader(data) if prefetch else None
        self._finalizer = (
            weakref.finalize(self, self._loader.close) if self._loader is not None else None
        )

    # -- sizes -----------------------------------------------------------------------
    @property
    def updates_per_epoch(self) -> int:
        return max(1, self.data.num_transitions // self.batch_size)

    @property
    def resident_frames(self) -> int:
        """Frames held (or being read) in the cache right now."""
        return sum(s.frames for s in self._slots if s.key is not None)

    @property
    def capacity_frames(self) -> int:
        """The most frames the cache may hold: two windows."""
        return 2 * self.window_frames

    def _check_cache(self) -> None:
        """One-line errors for a cache too small for a trajectory or for a batch."""
        data, cache = self.data, self.cache_mb
        longest = int(data.lengths.max())
        if longest > self.window_frames:
            need = 2 * longest * data.bytes_per_frame / MB
            name = data.names[int(data.lengths.argmax())]
            raise LaomError(
                f"--cache_mb {cache:g} is too small for {data.path}: trajectory {name} "
                f"({longest} frames, {longest * data.bytes_per_frame / MB:.1f} MB) must fit in "
                f"half the cache; use --cache_mb {math.ceil(need)} or more"
            )
        if _min_window_transitions(data, self.window_frames) < self.batch_size:
            need = cache
            while _min_window_transitions(data, _window_frames(data, need)) < self.batch_size:
                need *= 1.25
            raise LaomError(
                f"--cache_mb {cache:g} is too small for batch size {self.batch_size} on {data.path}: "
                f"a cache window could hold fewer transitions than one batch; use --cache_mb "
                f"{math.ceil(need)} or more"
            )

    # -- schedule (metadata only, no frames) -------------------------------------------
    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, *key])

    def _epoch(self, epoch: int) -> _EpochPlan:
        plan = self._epochs.get(epoch)
        if plan is None:
            order = self._rng(epoch, 3).permutation(len(self._chunk_frames))
            windows: list[tuple[int, ...]] = []
            counts: list[int] = []
            current: list[int] = []
            frames = 0
            for c in order.tolist():
                if current and frames + self._chunk_frames[c] > self.window_frames:
                    windows.append(tuple(sorted(current)))
                    current, frames = [], 0
                current.append(c)
                frames += int(self._chunk_frames[c])
            windows.append(tuple(sorted(current)))
            counts = [int(self._chunk_transitions[list(w)].sum()) for w in windows]
            if any(n < self.batch_size for n in counts[:-1]):  # excluded by _check_cache
                raise LaomError(
                    f"--cache_mb {self.cache_mb:g}: a cache window holds fewer transitions than batch size {self.batch_size}"
                )
            plan = _EpochPlan(windows, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
            _remember(self._epochs, epoch, plan, 3)
        return plan

    def _plan(self, chunks: tuple[int, ...]) -> _WindowPlan:
        plan = self._plans.get(chunks)
        if plan is None:
            trajs = np.concatenate(
                [np.arange(self._chunk_first[c], self._chunk_first[c + 1]) for c in chunks]
            )
            lengths = self.data.lengths[trajs]
            local_start = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
            global_start = self.data.traj_offsets[trajs]
            # Each trajectory contributes its steps 0..len-2 (the last frame has no successor).
            counts = np.maximum(lengths - 1, 0)
            within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
            plan = _WindowPlan(
                chunks=chunks,
                trajectories=trajs,
                frames=int(lengths.sum()),
                local_valid=np.repeat(local_start, counts) + within,
                global_valid=np.repeat(global_start, counts) + within,
            )
            _remember(self._plans, chunks, plan, 3)
        return plan

    def _perm(self, epoch: int, window: int, n: int) -> np.ndarray:
        perm = self._perms.get((epoch, window))
        if perm is None:
            perm = self._rng(epoch, 4, window).permutation(n)
            _remember(self._perms, (epoch, window), perm, 3)
        return perm

    def _locate(self, update: int) -> list[tuple[int, int, _WindowPlan, np.ndarray]]:
        """(epoch, window, plan, window-local transition numbers) for each part of a batch."""
        epoch, i = divmod(update, self.updates_per_epoch)
        plan = self._epoch(epoch)
        parts = []
        for w, a, b in plan.segments(i * self.batch_size, (i + 1) * self.batch_size):
            wp = self._plan(plan.windows[w])
            parts.append((epoch, w, wp, self._perm(epoch, w, len(wp.local_valid))[a:b]))
        return parts

    def sample_steps(self, update: int) -> np.ndarray:
        """Global frame indices t of update ``update``'s batch (no frames are read)."""
        return np.concatenate([wp.global_valid[pick] for _, _, wp, pick in self._locate(update)])

    # -- cache ------------------------------------------------------------------------
    def _find(self, key: tuple[int, ...]) -> _Slot | None:
        return next((s for s in self._slots if s.key == key), None)

    def _start(self, slot: _Slot, plan: _WindowPlan) -> None:
        """Point ``slot`` at ``plan``'s window and read it: in the background with prefetch
        on (callers wait on ``slot.ready``), here and now without."""
        if slot.key is not None and not slot.ready.is_set():
            slot.ready.wait()  # never overwrite a buffer the loader is still writing
        if slot.slab is None:
            frames = min(self.window_frames, self.data.num_frames)
            slot.slab = np.empty(
                _slab_bytes(
                    frames, self.data.frame_shape, self.data.action_dim, self.data.state_dim
                ),
                dtype=np.uint8,
            )
        slot.key, slot.frames, slot.window, slot.error = plan.chunks, plan.frames, None, None
        slot.ready.clear()
        self.peak_resident_frames = max(self.peak_resident_frames, self.resident_frames)
        self.windows_read += 1
        trajs = plan.trajectories.tolist()
        if self._loader is not None:
            self._loader.submit(slot, trajs)
            return
        try:  # prefetch=False: read here, now
            if self._sync_reader is None:
                self._sync_reader = TrajectoryReader(self.data)
            slot.window = self._sync_reader.read(trajs, slot.slab)
        except BaseException as exc:
            slot.error = exc
        slot.ready.set()

    def _acquire(self, plans: list[_WindowPlan]) -> list[FrameData]:
        """The windows of ``plans`` resident, reading whichever are not (blocking)."""
        needed = {p.chunks for p in plans}
        for plan in plans:
            if self._find(plan.chunks) is None:
                free = [s for s in self._slots if s.key not in needed]
                # Prefer an empty slot, then one whose read has finished.
                free.sort(key=lambda s: (s.key is not None, not s.ready.is_set()))
                self._start(free[0], plan)
        out = []
        for plan in plans:
            slot = self._find(plan.chunks)
            assert slot is not None
            if not slot.ready.is_set():
                t0 = time.perf_counter()
                slot.ready.wait()
                self.wait_seconds += time.perf_counter() - t0
            if slot.error is not None:
                error, slot.key, slot.error = slot.error, None, None
                if isinstance(error, _Cancelled):
                    raise LaomError(f"streaming sampler for {self.data.path} is closed")
                raise error
            assert slot.window is not None
            out.append(slot.window)
        return out

    def _prefetch_after(self, epoch: int, window: int, pinned: set[tuple[int, ...]]) -> None:
        """Start reading the window after (epoch, window) into a slot no batch part needs."""
        plan = self._epoch(epoch)
        if window + 1 < len(plan.windows):
            key = plan.windows[window + 1]
        else:
            key = self._epoch(epoch + 1).windows[0]
        if self._find(key) is not None:
            return
        free = [
            s for s in self._slots if s.key not in pinned and (s.key is None or s.ready.is_set())
        ]
        if free:
            self._start(free[0], self._plan(key))

    # -- batches ----------------------------------------------------------------------
    def batch(self, update: int) -> Batch:
        """Update ``update``'s batch: a pure function of (seed, update) for a given file."""
        if self._closed:
            raise LaomError(f"streaming sampler for {self.data.path} is closed")
        parts = self._locate(update)
        windows = self._acquire([wp for _, _, wp, _ in parts])
        if self._loader is not None:
            epoch, last = parts[-1][0], parts[-1][1]
            self._prefetch_after(epoch, last, {wp.chunks for _, _, wp, _ in parts})

        b = self.batch_size
        k = self._rng(update, 2).integers(1, self.max_offset + 1, b)  # as BatchSampler's
        steps = np.empty(b, dtype=np.int64)
        offsets = np.empty(b, dtype=np.int64)
        out = {key: self._buffers[key] for key in (*self.keys, "actions", "states")}
        start = 0
        back = np.arange(-self.frame_stack + 1, 1)
        for (_, _, wp, pick), win in zip(parts, windows, strict=True):
            n = len(pick)
            rows = slice(start, start + n)
            local = wp.local_valid[pick]
            steps[rows] = wp.global_valid[pick]
            # The in-memory rules, on window-local indices: k clamped inside t's trajectory,
            # stacks padded with the first frame of the trajectory.
            offsets[rows] = np.minimum(k[rows], win.traj_end[local] - 1 - local)
            targets = {"obs": local, "next_obs": local + 1, "future_obs": local + offsets[rows]}
            for key in self.keys:
                t = targets[key]
                idx = np.maximum(t[:, None] + back, win.traj_start[t][:, None])
                dest = out[key][rows].numpy().reshape(n, -1, *win.frames.shape[1:])
                np.take(win.frames, idx, axis=0, out=dest, mode="clip")
            np.take(win.actions, local, axis=0, out=out["actions"][rows].numpy(), mode="clip")
            np.take(win.states, local, axis=0, out=out["states"][rows].numpy(), mode="clip")
            start += n
        return Batch(steps, offsets, out)

    # -- lifetime ---------------------------------------------------------------------
    def close(self) -> None:
        """Stop the prefetch thread (a read in progress stops at its next slice) and free
        the cache. Idempotent; ``batch`` afterwards raises LaomError."""
        if self._closed:
            return
        self._closed = True
        if self._finalizer is not None:
            self._finalizer()
        if self._sync_reader is not None:
            self._sync_reader.close()
            self._sync_reader = None
        for slot in self._slots:
            slot.key, slot.window, slot.slab, slot.frames = None, None, None, 0

    @property
    def prefetch_alive(self) -> bool:
        return self._loader is not None and self._loader.alive

    @property
    def read_seconds(self) -> float:
        """Time the background thread has spent reading windows."""
        return self._loader.busy_seconds if self._loader is not None else 0.0

    def __enter__(self) -> StreamingSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _remember(cache: OrderedDict, key: Any, value: Any, size: int) -> None:
    cache[key] = value
    while len(cache) > size:
        cache.popitem(last=False)


def _window_frames(data: StreamingData, cache_mb: float) -> int:
    return int(cache_mb * MB) // 2 // data.bytes_per_frame


def _chunks(data: StreamingData, window_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Consecutive trajectories grouped into chunks of about ``window_frames / 8`` frames.

    Returns (first trajectory of each chunk plus a final end marker, frames per chunk,
    transitions per chunk). Small chunks shuffle finer (windows mix more of the file) and
    keep windows nearly full; a chunk is never split below one trajectory.
    """
    target = max(1, min(window_frames // 8, MAX_CHUNK_BYTES // data.bytes_per_frame))
    first = [0]
    frames = 0
    for i, length in enumerate(data.lengths.tolist()):
        # A new chunk once this one reached the target, or if the trajectory would push it
        # past a window (so every chunk fits a window whenever every trajectory does).
        if frames and (frames >= target or frames + length > window_frames):
            first.append(i)
            frames = 0
        frames += length
    bounds = np.asarray([*first, len(data.lengths)], dtype=np.int64)
    cum_frames = data.traj_offsets[bounds]
    cum_trans = np.concatenate([[0], np.cumsum(np.maximum(data.lengths - 1, 0))])[bounds]
    return bounds, np.diff(cum_frames), np.diff(cum_trans)


def _min_window_transitions(data: StreamingData, window_frames: int) -> int:
    """A lower bound on the transitions of any window except an epoch's last.

    Greedy packing closes a window only when the next chunk does not fit, so a non-final
    window holds more than ``window_frames - largest chunk`` frames. The fewest transitions
    that many frames can carry is bounded below by filling them, fractionally, with the
    chunks poorest in transitions per frame first.
    """
    if window_frames < 1:
        return 0
    if data.num_frames <= window_frames:
        return data.num_transitions  # one window per epoch: it is every epoch's last
    _, frames, transitions = _chunks(data, window_frames)
    need = window_frames - int(frames.max()) + 1
    if need <= 0:
        return 0
    total = 0.0
    for c in np.argsort(transitions / np.maximum(frames, 1), kind="stable").tolist():
        take = min(need, int(frames[c]))
        total += transitions[c] * take / frames[c]
        need -= take
        if need <= 0:
            break
    return int(total)


# --------------------------------------------------------------------------- entry points
def open_training_data(
    path: str | Path,
    stream: bool = False,
    cache_mb: float = DEFAULT_CACHE_MB,
    max_trajectories: int | None = None,
) -> FrameData | StreamingData:
    """The training data of ``path``: all frames in memory, or (``stream``) metadata only.

    Both implement :class:`laom.data.access.TrainingData`, all the trainers read; its
    ``sampler`` (or :func:`training_sampler`) builds the matching sampler.
    """
    if not stream:
        return load_frames(path, max_trajectories)
    if not cache_mb > 0:
        raise LaomError(f"--cache_mb {cache_mb:g}: must be a positive number of MB")
    return StreamingData(path, max_trajectories, cache_mb)


def training_sampler(
    data: TrainingData,
    batch_size: int,
    frame_stack: int = 3,
    max_offset: int = 1,
    seed: int = 0,
    keys: tuple[str, ...] = STACK_KEYS,
    pin_memory: bool = False,
) -> BatchSampler | StreamingSampler:
    """A :class:`BatchSampler` for in-memory data, a :class:`StreamingSampler` (with the
    data's ``cache_mb``) for streamed data (the data's own ``sampler``); both answer
    ``batch(update)`` and draw without replacement."""
    return data.sampler(batch_size, frame_stack, max_offset, seed, keys, pin_memory=pin_memory, with_replacement=False)
