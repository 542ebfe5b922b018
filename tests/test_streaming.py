"""Streaming batches through a bounded cache, checked against the in-memory sampler."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from laom.data.format import Writer, create
from laom.data.sampler import BatchSampler, FrameData, load_frames
from laom.data.streaming import (
    StreamingData,
    StreamingSampler,
    open_training_data,
    training_sampler,
)
from laom.errors import LaomError

HW = 8
ATTRS = {
    "domain_name": "cheetah",
    "task_name": "run",
    "difficulty": "scale_easy_video_hard",
    "dynamic": True,
    "img_hw": HW,
    "split": "train",
}
# Uneven lengths, including a 1-frame trajectory (no transitions) and 2-frame ones.
LENGTHS = [30, 5, 1, 17, 40, 2, 25, 33, 12, 9, 50, 3, 21, 2, 28]


def make_dataset(path: Path, lengths: list[int] = LENGTHS, compression: str = "none") -> Path:
    create(path, ATTRS)
    with Writer(path, compression, durable=False) as w:
        for i, t in enumerate(lengths):
            rng = np.random.default_rng(i)
            w.append(
                i,
                rng.integers(0, 256, (t, HW, HW, 3), dtype=np.uint8),
                rng.standard_normal((t, 4)).astype(np.float32),
                rng.standard_normal((t, 2)).astype(np.float32),
                float(i),
            )
    return path


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "d.hdf5")


@pytest.fixture
def short_trajectories(tmp_path: Path) -> Path:
    """Many trajectories short next to a 60-frame window: the file is 5 windows or more."""
    lengths = np.random.default_rng(0).integers(2, 16, 40).tolist()
    return make_dataset(tmp_path / "short.hdf5", lengths)


def cache_for(data: StreamingData, window_frames: int) -> float:
    """The cache_mb whose windows hold exactly ``window_frames`` frames."""
    return 2 * window_frames * data.bytes_per_frame / 2**20


def streaming(path: Path, window_frames: int = 80, batch: int = 16, **kw) -> StreamingSampler:
    data = StreamingData(path)
    kw.setdefault("max_offset", 5)
    return StreamingSampler(data, batch, cache_mb=cache_for(data, window_frames), **kw)


def assert_same_as_in_memory(s: StreamingSampler, mem: FrameData, update: int) -> None:
    ref = BatchSampler(mem, s.batch_size, s.frame_stack, s.max_offset, s.seed, s.keys)
    b = s.batch(update)
    np.testing.assert_array_equal(b.steps, s.sample_steps(update))
    # Same future offsets as the in-memory sampler draws for these steps at this update...
    np.testing.assert_array_equal(b.offsets, ref.future_offsets(b.steps, update))
    # ...and exactly the frames, actions and states its gather picks for them.
    expect = ref.gather(b.steps, b.offsets)
    assert set(b.arrays) == set(expect)
    for key, value in expect.items():
        assert b.arrays[key].shape == value.shape and b.arrays[key].dtype == value.dtype
        np.testing.assert_array_equal(b.arrays[key].numpy(), value.numpy(), err_msg=key)


@pytest.mark.parametrize("compression", ["none", "gzip"])
@pytest.mark.parametrize("prefetch", [True, False])
def test_batches_hold_exactly_the_in_memory_frames(tmp_path, compression, prefetch):
    path = make_dataset(tmp_path / "d.hdf5", compression=compression)
    mem = load_frames(path)
    with streaming(path, frame_stack=3, seed=1, prefetch=prefetch) as s:
        assert len(s._epoch(0).windows) >= 3  # the file really is streamed
        straddling = 0
        for u in range(2 * s.updates_per_epoch + 1):
            assert_same_as_in_memory(s, mem, u)
            straddling += len(s._locate(u)) > 1
        assert straddling > 0  # batches that span two windows were checked too


def test_key_subsets_and_frame_stack_one(dataset):
    mem = load_frames(dataset)
    with streaming(dataset, frame_stack=1, keys=("obs", "future_obs"), seed=2) as s:
        for u in range(5):
            assert_same_as_in_memory(s, mem, u)
        assert set(s.batch(0).arrays) == {"obs", "future_obs", "actions", "states"}


def test_every_transition_once_per_epoch(dataset):
    mem = load_frames(dataset)
    with streaming(dataset, batch=16, seed=3) as s:
        per_epoch = s.updates_per_epoch
        assert per_epoch == len(mem.valid_steps) // 16
        for epoch in range(3):
            steps = np.concatenate(
                [s.sample_steps(u) for u in range(epoch * per_epoch, (epoch + 1) * per_epoch)]
            )
            assert len(steps) == per_epoch * 16
            assert len(np.unique(steps)) == len(steps)  # without replacement
            assert set(steps.tolist()) <= set(mem.valid_steps.tolist())
        # Each epoch has a new order: chunk order, packing and in-window shuffle all change.
        a, b = s.sample_steps(0), s.sample_steps(per_epoch)
        assert not np.array_equal(a, b)


def test_every_transition_is_visited_when_the_epoch_divides_evenly(tmp_path):
    lengths = [9, 9, 9, 9, 9, 9, 9, 9]  # 64 transitions: 4 batches of 16, nothing dropped
    path = make_dataset(tmp_path / "even.hdf5", lengths)
    with streaming(path, window_frames=30, batch=16) as s:
        steps = np.concatenate([s.batch(u).steps for u in range(s.updates_per_epoch)])
        assert sorted(steps.tolist()) == load_frames(path).valid_steps.tolist()


def test_batches_are_deterministic_and_resumable(dataset):
    with streaming(dataset, seed=5) as s:
        updates = range(3 * s.updates_per_epoch)
        first = {}
        for u in updates:  # copies: a batch's arrays are reused by the next call
            b = s.batch(u)
            first[u] = (b.steps.copy(), b.offsets.copy(), b.arrays["obs"].clone())
    # A fresh sampler, as after a restart, asked in another order (resume mid-epoch,
    # jump back, skip across epochs) gives the same batches.
    with streaming(dataset, seed=5) as again:
        for u in [17, 18, 2, 40, *reversed(updates)]:
            if u not in first:
                continue
            b = again.batch(u)
            np.testing.assert_array_equal(b.steps, first[u][0])
            np.testing.assert_array_equal(b.offsets, first[u][1])
            np.testing.assert_array_equal(b.arrays["obs"].numpy(), first[u][2].numpy())
    with streaming(dataset, seed=6) as other:
        assert not np.array_equal(other.sample_steps(0), first[0][0])


def test_memory_stays_within_the_cache(short_trajectories):
    mem = load_frames(short_trajectories)
    with streaming(short_trajectories, window_frames=60) as s:
        data = s.data
        assert data.num_frames > 2 * s.capacity_frames  # the file is over twice the cache
        for epoch in range(3):
            for window in s._epoch(epoch).windows:
                assert s._plan(window).frames <= s.window_frames
        for u in range(3 * s.updates_per_epoch):
            s.batch(u)
            assert s.resident_frames <= s.capacity_frames
            held = [slot.window for slot in s._slots if slot.window is not None]
            assert sum(w.num_frames for w in held) <= s.capacity_frames
            for w in held:  # each half of the cache is one buffer of at most a window
                assert w.frames.base is not None and w.frames.nbytes <= w.frames.base.nbytes
        assert 0 < s.peak_resident_frames <= s.capacity_frames
        assert s.windows_read >= 3 * len(s._epoch(0).windows) - 1
        assert_same_as_in_memory(s, mem, 3)


def test_a_file_that_fits_one_window_is_read_once(dataset):
    mem = load_frames(dataset)
    with streaming(dataset, window_frames=10_000) as s:
        for u in range(3 * s.updates_per_epoch):
            s.batch(u)
        assert s.windows_read == 1
        assert_same_as_in_memory(s, mem, 7)


def test_prefetch_thread_stops_on_close(short_trajectories):
    dataset = short_trajectories

    def prefetch_threads() -> int:
        return sum(t.name == "laom-stream-prefetch" and t.is_alive() for t in threading.enumerate())

    before = prefetch_threads()
    s = streaming(dataset, window_frames=60)
    s.batch(0)
    assert s.prefetch_alive and prefetch_threads() == before + 1
    s.close()
    assert not s.prefetch_alive and prefetch_threads() == before
    assert s.resident_frames == 0
    s.close()  # idempotent
    with pytest.raises(LaomError, match="closed"):
        s.batch(1)

    # Closing while a window is being read stops the read at its next slice.
    s = streaming(dataset, window_frames=60)
    s.batch(0)  # starts the prefetch of the next window
    s.close()
    assert not s.prefetch_alive

    # A sampler dropped without close() stops its thread once collected.
    s = streaming(dataset, window_frames=60)
    s.batch(0)
    loader = s._loader
    del s
    gc.collect()
    loader._thread.join(10)
    assert not loader.alive and prefetch_threads() == before


def test_open_training_data_both_ways(dataset):
    mem = open_training_data(dataset)
    streamed = open_training_data(dataset, stream=True, cache_mb=0.05)
    assert isinstance(mem, FrameData) and isinstance(streamed, StreamingData)
    for attr in ("img_hw", "action_dim", "state_dim", "num_frames", "num_trajectories", "path"):
        assert getattr(streamed, attr) == getattr(mem, attr), attr
    assert streamed.task_id() == mem.task_id() == ("cheetah", "run")
    assert streamed.attrs == mem.attrs
    np.testing.assert_array_equal(streamed.valid_steps, mem.valid_steps)
    assert streamed.num_transitions == len(mem.valid_steps)
    np.testing.assert_array_equal(streamed.traj_offsets, mem.traj_offsets)
    np.testing.assert_array_equal(streamed.traj_returns, mem.traj_returns)
    assert open_training_data(dataset, True, 1.0, max_trajectories=3).num_trajectories == 3

    assert isinstance(training_sampler(mem, 8, 3, 4), BatchSampler)
    with training_sampler(streamed, 8, 3, 4) as s:
        assert isinstance(s, StreamingSampler) and s.cache_mb == 0.05
        assert s.batch(0).arrays["obs"].shape == (8, 9, HW, HW)

    # Whole-dataset passes in bounded memory, and small in-memory subsets.
    blocks = list(streamed.blocks(max_mb=0.02))
    assert len(blocks) > 1
    for first, block in blocks:
        np.testing.assert_array_equal(block.frames, mem.frames[first : first + block.num_frames])
        np.testing.assert_array_equal(block.actions, mem.actions[first : first + block.num_frames])
    assert sum(b.num_frames for _, b in blocks) == mem.num_frames
    sub = streamed.load([4, 0])
    np.testing.assert_array_equal(sub.frames, mem.subset([4, 0]).frames)
    np.testing.assert_array_equal(sub.states, mem.subset([4, 0]).states)


def test_both_kinds_answer_the_trainers_alike(dataset):
    """laom.data.access.TrainingData: the trainers ask, the data decides how to read."""
    mem = open_training_data(dataset)
    streamed = open_training_data(dataset, stream=True, cache_mb=0.05)
    np.testing.assert_array_equal(streamed.all_actions(), mem.all_actions())
    assert mem.all_actions() is mem.actions
    assert mem.records_distractors() is streamed.records_distractors() is False
    # take: streamed reads only the first trajectories that hold max_frames; both in file order.
    order = np.array([4, 0, 2, 1])
    first_two = int(streamed.lengths[4] + streamed.lengths[0])
    part = streamed.take(order, first_two)
    np.testing.assert_array_equal(part.frames, mem.subset([0, 4]).frames)
    np.testing.assert_array_equal(streamed.take(order, first_two + 1).frames, mem.subset([0, 2, 4]).frames)
    np.testing.assert_array_equal(mem.take(order, 1).frames, mem.subset([0, 1, 2, 4]).frames)
    # sample: streamed draws its order from rng; in memory it is all the data and draws nothing.
    rng, twin = np.random.default_rng(5), np.random.default_rng(5)
    assert mem.sample(rng, 10) is mem
    assert rng.integers(1 << 30) == twin.integers(1 << 30)
    rng, twin = np.random.default_rng(5), np.random.default_rng(5)
    expected = mem.subset(sorted(twin.permutation(mem.num_trajectories)[:1]))
    np.testing.assert_array_equal(streamed.sample(rng, 1).frames, expected.frames)
    # blocks: in memory, one block, the data itself; streamed, read from disk block by block.
    assert [(first, block is mem) for first, block in mem.blocks()] == [(0, True)]
    assert mem.frames_in_memory is True and streamed.frames_in_memory is False
    # sampler: with replacement by default only when the data is smaller than a batch.
    assert mem.sampler(8).with_replacement is False
    assert mem.sampler(len(mem.valid_steps) + 1).with_replacement is True
    with pytest.raises(LaomError, match="fewer than batch size"):
        training_sampler(mem, len(mem.valid_steps) + 1)
    with pytest.raises(LaomError, match="sampled without replacement"):
        streamed.sampler(8, with_replacement=True)


def test_errors_are_one_line(dataset, tmp_path):
    data = StreamingData(dataset)
    # The longest trajectory (50 frames) must fit half the cache.
    with pytest.raises(LaomError, match=r"--cache_mb .* trajectory 10 \(50 frames.*use --cache_mb"):
        StreamingSampler(data, 4, cache_mb=cache_for(data, 49))
    # A window must hold at least one batch.
    with pytest.raises(LaomError, match="fewer transitions than one batch") as info:
        StreamingSampler(data, 64, cache_mb=cache_for(data, 60))
    assert "\n" not in str(info.value)
    suggested = float(str(info.value).split("--cache_mb ")[-1].split()[0])
    StreamingSampler(data, 64, cache_mb=suggested).close()  # the suggestion works
    with pytest.raises(LaomError, match="fewer than batch size"):
        StreamingSampler(data, 10_000)
    with pytest.raises(LaomError, match="positive"):
        StreamingSampler(data, 4, cache_mb=0)
    with pytest.raises(LaomError, match="positive"):
        open_training_data(dataset, stream=True, cache_mb=-1)
    with pytest.raises(LaomError, match="unknown batch key"):
        StreamingSampler(data, 4, keys=("obs", "pixels"))
    with pytest.raises(LaomError, match="no such file"):
        StreamingData(tmp_path / "missing.hdf5")
    with pytest.raises(LaomError, match="no transitions"):
        StreamingSampler(make_dataset(tmp_path / "ones.hdf5", [1, 1]), 1)


def test_a_read_error_in_the_background_reaches_the_caller_as_one_line(tmp_path):
    path = make_dataset(tmp_path / "z.hdf5", [20] * 12, compression="gzip")
    with h5py.File(path, "r") as f:  # where trajectory 7's first compressed chunk lies
        info = f["7"]["obs"].id.get_chunk_info(0)
    with open(path, "r+b") as f:
        f.seek(info.byte_offset)
        f.write(b"\xff" * info.size)
    s = streaming(path, window_frames=40, batch=8, seed=0)
    data = s.data
    with pytest.raises(LaomError, match=r"trajectory 7 unreadable") as err:
        for u in range(s.updates_per_epoch):
            s.batch(u)
    assert "\n" not in str(err.value) and str(data.path) in str(err.value)
    s.close()


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_reader_assembles_trajectories_from_small_slices(tmp_path, monkeypatch, compression):
    from laom.data import streaming as mod

    path = make_dataset(tmp_path / "d.hdf5", compression=compression)
    data = StreamingData(path)
    expect = load_frames(path).subset([4, 10, 2])
    # Slices smaller than a trajectory (and not dividing it) still assemble it exactly.
    monkeypatch.setattr(mod, "STAGE_BYTES", 7 * data.frame_bytes)
    monkeypatch.setattr(mod, "FAST_STAGE_BYTES", 7 * data.frame_bytes)
    with mod.TrajectoryReader(data) as reader:
        fast = reader._offset(reader.h5["4"]["obs"]) is not None
        assert fast == (compression == "none")  # preadv where the bytes lie contiguous
        block = reader.read([4, 10, 2])
        assert reader._stage(1).shape[0] == 1
    for key in ("frames", "actions", "states"):
        np.testing.assert_array_equal(getattr(block, key), getattr(expect, key), err_msg=key)
    np.testing.assert_array_equal(block.traj_offsets, expect.traj_offsets)


def test_reader_falls_back_to_h5py_if_file_offsets_disagree(dataset, monkeypatch):
    from laom.data import streaming as mod

    real = mod.TrajectoryReader._offset
    monkeypatch.setattr(
        mod.TrajectoryReader, "_offset", lambda self, obs: None if real(self, obs) is None else 0
    )
    data = StreamingData(dataset)
    with mod.TrajectoryReader(data) as reader:
        assert reader._fd is None
        frames = reader.read([0, 3]).frames
    np.testing.assert_array_equal(frames, load_frames(dataset).subset([0, 3]).frames)


def test_reads_stop_between_slices_when_cancelled(dataset):
    from laom.data import streaming as mod

    cancel = threading.Event()
    cancel.set()
    with mod.TrajectoryReader(StreamingData(dataset), cancel) as reader:
        with pytest.raises(mod._Cancelled):
            reader.read([0, 1])
