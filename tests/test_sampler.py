"""The in-memory data path: loading release-layout files, frame stacks, offsets, batches."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from laom.data.sampler import BatchSampler, FrameData, load_frames, to_model_input
from laom.errors import LaomError


def _frame_data(lengths: list[int], hw: int = 4) -> FrameData:
    """Frames whose pixels all equal their global index (mod 256): stacks are readable."""
    n = sum(lengths)
    frames = (np.arange(n) % 256).astype(np.uint8)[:, None, None, None] * np.ones(
        (1, 3, hw, hw), np.uint8
    )
    actions = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    states = -np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return FrameData(frames, actions, states, offsets)


def _write_release_file(path, lengths, hw=8, seed=0):
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        for i, t in enumerate(lengths):
            g = f.create_group(str(i))
            g.create_dataset("obs", data=rng.integers(0, 256, (t, hw, hw, 3), dtype=np.uint8))
            g.create_dataset("states", data=rng.normal(size=(t, 5)).astype(np.float32))
            g.create_dataset("actions", data=rng.uniform(-1, 1, (t, 2)).astype(np.float32))
            g.attrs["traj_return"] = float(i)
        for k, v in dict(domain_name="cheetah", task_name="run", difficulty="scale_easy_video_hard",
                         dynamic=True, img_hw=hw, split="train", dataset_return=1.0).items():  # fmt: skip
            f.attrs[k] = v


def test_load_release_layout_concatenates_in_numeric_order(tmp_path):
    path = tmp_path / "d.hdf5"
    _write_release_file(path, [5, 3, 4] + [2] * 8)  # groups "0".."10": "10" sorts after "9"
    data = load_frames(path)
    assert data.frames.shape == (sum([5, 3, 4] + [2] * 8), 3, 8, 8)
    assert data.traj_offsets.tolist()[:4] == [0, 5, 8, 12]
    with h5py.File(path) as f:
        np.testing.assert_array_equal(data.frames[5:8], f["1"]["obs"][()].transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(data.actions[-2:], f["10"]["actions"][()])
        np.testing.assert_array_equal(data.states[8:12], f["2"]["states"][()])
    assert data.task_id() == ("cheetah", "run")
    assert data.img_hw == 8 and data.action_dim == 2 and data.state_dim == 5
    assert data.traj_returns.tolist()[:3] == [0.0, 1.0, 2.0]
    assert load_frames(path, max_trajectories=2).num_frames == 8


def test_load_errors_are_one_line(tmp_path):
    with pytest.raises(LaomError, match="no such file"):
        load_frames(tmp_path / "missing.hdf5")
    empty = tmp_path / "empty.hdf5"
    with h5py.File(empty, "w") as f:
        f.attrs["img_hw"] = 8
    with pytest.raises(LaomError, match="no trajectories"):
        load_frames(empty)


def test_valid_steps_exclude_each_trajectory_end():
    data = _frame_data([4, 1, 3])
    assert data.valid_steps.tolist() == [0, 1, 2, 5, 6]  # 3 and 7 are last frames; traj 1 has none


def test_frame_stack_pads_with_first_frame_of_the_trajectory():
    data = _frame_data([5, 5])
    s = BatchSampler(data, batch_size=2, frame_stack=3, max_offset=1)
    idx = s.stack_indices(np.array([0, 1, 2, 5, 6, 9]))
    assert idx.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [5, 5, 5], [5, 5, 6], [7, 8, 9]]


def test_future_offsets_cover_range_and_stay_inside_trajectory():
    data = _frame_data([50, 7, 30])
    s = BatchSampler(data, batch_size=16, frame_stack=3, max_offset=10, seed=3)
    seen = set()
    for u in range(200):
        steps = s.sample_steps(u)
        k = s.future_offsets(steps, u)
        assert (k >= 1).all() and (k <= 10).all()
        assert (steps + k < data.traj_end[steps]).all()
        seen.update(k[steps + 10 < data.traj_end[steps]].tolist())  # unclamped samples
    assert seen == set(range(1, 11))


def test_batches_match_a_naive_per_item_gather():
    data = _frame_data([20, 15, 25], hw=3)
    s = BatchSampler(data, batch_size=8, frame_stack=3, max_offset=4, seed=1)
    b = s.batch(5)
    for j, (t, k) in enumerate(zip(b.steps, b.offsets, strict=True)):
        start = data.traj_start[t]
        for key, end in (("obs", t), ("next_obs", t + 1), ("future_obs", t + k)):
            expect = np.concatenate([data.frames[max(start, end - d)] for d in (2, 1, 0)])
            np.testing.assert_array_equal(b.arrays[key][j].numpy(), expect)
        assert b.arrays["actions"][j, 0] == t and b.arrays["states"][j, 0] == -t


def test_epoch_visits_every_transition_once_and_batches_are_reproducible():
    data = _frame_data([30, 30])
    s = BatchSampler(data, batch_size=8, frame_stack=2, max_offset=3, seed=7)
    per_epoch = s.updates_per_epoch
    assert per_epoch == len(data.valid_steps) // 8
    steps = np.concatenate([s.sample_steps(u) for u in range(per_epoch)])
    assert len(set(steps.tolist())) == len(steps)
    again = BatchSampler(data, batch_size=8, frame_stack=2, max_offset=3, seed=7)
    b1, b2 = s.batch(per_epoch + 2), again.batch(per_epoch + 2)  # fresh sampler, later epoch
    np.testing.assert_array_equal(b1.steps, b2.steps)
    np.testing.assert_array_equal(b1.offsets, b2.offsets)
    other = BatchSampler(data, batch_size=8, frame_stack=2, max_offset=3, seed=8)
    assert not np.array_equal(
        other.batch(0).steps, BatchSampler(data, 8, 2, 3, seed=7).batch(0).steps
    )


def test_with_replacement_sampler_handles_tiny_datasets():
    data = _frame_data([3])
    s = BatchSampler(data, batch_size=16, frame_stack=3, max_offset=5, with_replacement=True)
    b = s.batch(0)
    assert set(b.steps.tolist()) <= {0, 1}
    with pytest.raises(LaomError, match="fewer than batch size"):
        BatchSampler(data, batch_size=16)


def test_to_model_input_scales_to_unit_range():
    stacks = (
        torch.tensor([0, 255, 51], dtype=torch.uint8)
        .view(1, 3, 1, 1)
        .expand(2, 3, 2, 2)
        .contiguous()
    )
    x = to_model_input(stacks)
    assert x.dtype == torch.float32 and x.shape == (2, 3, 2, 2)
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([-1.0, 1.0, -0.6]))
    out = torch.empty(2, 3, 2, 2)
    assert to_model_input(stacks, out=out).data_ptr() == out.data_ptr()
