"""Distractor records (issue 15, part 1): the state of the distractors behind every frame,
stored by `laom collect` in an optional ``distractors`` subgroup of each trajectory and
carried by merge, sample-labeled and the loaders; files without it behave as before."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from test_data_collect import FakeEnv, fake_config, read_all

from laom.cli import main
from laom.data.collect import collect, episode_seed
from laom.data.format import (
    DISTRACTORS,
    DatasetReader,
    Writer,
    create,
    info,
    read_distractors,
    validate,
)
from laom.data.labeled import sample_labeled
from laom.data.merge import merge
from laom.data.sampler import load_frames
from laom.data.streaming import StreamingData
from laom.errors import LaomError

HERE = Path(__file__).stem
T = 10  # the fake env's episode length


# ----------------------------------------------------------------------------- fakes
class RecordingFakeEnv(FakeEnv):
    """The collection tests' fake env, plus a distractor state that is a function of the
    reset seed and the step, so tests can say exactly which record belongs to which frame."""

    def reset(self, seed: int | None = None):
        self.seed = int(seed or 0)
        return super().reset(seed=seed)

    def distractor_state(self) -> dict[str, np.ndarray]:
        return {
            "camera": np.array([0.01 * self.t, self.seed % 5, 1.0, -0.02 * self.t], np.float32),
            "background_video": np.asarray(self.seed % 3, np.int32),
            "background_frame": np.asarray(self.t + 4, np.int32),
        }


def make_recording_env(task, difficulty="vanilla", backgrounds=None, split="train", img_hw=16, frame_stack=1,
                       seed=0, render="fast"):  # fmt: skip
    return RecordingFakeEnv(task, difficulty, split, img_hw, 0.0)


def recording_config(out: Path, **kw):
    return fake_config(out, env_factory=f"{HERE}:make_recording_env", **kw)


def records_of(path: Path) -> dict[int, dict[str, np.ndarray]]:
    with h5py.File(path) as f:
        return {int(k): {n: d[()] for n, d in f[k][DISTRACTORS].items()} for k in f if DISTRACTORS in f[k]}


# ----------------------------------------------------------------------------- collection
def test_collect_stores_one_record_per_frame(tmp_path: Path) -> None:
    out = tmp_path / "c.hdf5"
    collect(recording_config(out, episodes=3))
    recs = records_of(out)
    assert sorted(recs) == [0, 1, 2]
    for i, r in recs.items():
        seed = episode_seed(7, i)
        assert set(r) == {"camera", "background_video", "background_frame"}
        assert r["camera"].shape == (T, 4) and r["camera"].dtype == np.float32
        # row t is the state behind obs[t]: the reset frame is t=0, the frame after step 1 is t=1
        np.testing.assert_allclose(r["camera"][:, 0], 0.01 * np.arange(T), rtol=1e-6)
        assert (r["camera"][:, 1] == seed % 5).all()
        assert r["background_video"].shape == (T,) and (r["background_video"] == seed % 3).all()
        np.testing.assert_array_equal(r["background_frame"], np.arange(T) + 4)
    assert validate(out).trajectories == 3
    facts = info(out)
    assert facts["distractors"] == {"trajectories": 3, "records": ["background_frame", "background_video", "camera"]}


def test_envs_without_a_distractor_state_record_nothing(tmp_path: Path) -> None:
    out = tmp_path / "c.hdf5"
    collect(fake_config(out, episodes=2))
    assert records_of(out) == {}
    assert info(out)["distractors"] is None
    assert load_frames(out).distractors is None


def test_records_are_deterministic_across_workers_and_resume(tmp_path: Path) -> None:
    full, part, spawned = tmp_path / "full.hdf5", tmp_path / "part.hdf5", tmp_path / "w2.hdf5"
    collect(recording_config(full, episodes=4))
    collect(recording_config(part, episodes=2))
    collect(recording_config(part, episodes=4))  # resumed: episodes 2 and 3 only
    collect(recording_config(spawned, episodes=4, workers=2))
    for other in (part, spawned):
        a, b = records_of(full), records_of(other)
        assert sorted(a) == sorted(b)
        for i in a:
            for name in a[i]:
                np.testing.assert_array_equal(a[i][name], b[i][name])


def test_info_cli_says_whether_a_file_has_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with_, without = tmp_path / "with.hdf5", tmp_path / "without.hdf5"
    collect(recording_config(with_, episodes=2))
    collect(fake_config(without, episodes=2))
    assert main(["data", "info", str(with_)]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("distractors")]
    assert line and "background_frame, background_video, camera (2 of 2 trajectories)" in line[0]
    assert main(["data", "info", str(without)]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("distractors")]
    assert line and line[0].split(None, 1)[1] == "not recorded"


# ----------------------------------------------------------------------------- tools and loaders
def test_merge_and_sample_labeled_carry_the_records(tmp_path: Path) -> None:
    shards = [tmp_path / f"s{i}.hdf5" for i in range(2)]
    for i, s in enumerate(shards):
        collect(recording_config(s, episodes=4, shard=(i, 2)))
    merged = tmp_path / "m.hdf5"
    merge(merged, shards)
    full = tmp_path / "full.hdf5"
    collect(recording_config(full, episodes=4))
    a, b = records_of(full), records_of(merged)
    for i in range(4):
        np.testing.assert_array_equal(a[i]["camera"], b[i]["camera"])

    lab = tmp_path / "lab.hdf5"
    picked = sample_labeled(full, 3, lab, seed=0, chunk=4)
    got = records_of(lab)
    for k, c in enumerate(picked):
        assert got[k]["camera"].shape == (4, 4)
        np.testing.assert_array_equal(got[k]["camera"], a[c.source]["camera"][c.start : c.start + 4])
        np.testing.assert_array_equal(got[k]["background_frame"], np.arange(c.start, c.start + 4) + 4)
    assert validate(lab).trajectories == 3


def test_loaders_align_records_with_frames(tmp_path: Path) -> None:
    out = tmp_path / "c.hdf5"
    collect(recording_config(out, episodes=3))
    data = load_frames(out)
    assert data.distractors is not None
    assert data.distractors["camera"].shape == (3 * T, 4)
    # frame n of the concatenation and record row n come from the same step
    np.testing.assert_allclose(data.distractors["camera"][:, 0], np.tile(0.01 * np.arange(T), 3), rtol=1e-6)
    sub = data.subset([2, 0])
    np.testing.assert_array_equal(sub.distractors["background_video"][:T], data.distractors["background_video"][2 * T :])
    np.testing.assert_array_equal(sub.frames, np.concatenate([data.frames[2 * T :], data.frames[:T]]))
    streamed = StreamingData(out).load([2, 0])
    for name, values in sub.distractors.items():
        np.testing.assert_array_equal(streamed.distractors[name], values)


def test_a_file_partly_with_records_counts_as_without(tmp_path: Path) -> None:
    """A collection resumed across the change: the probes must not use a subset silently."""
    out = tmp_path / "c.hdf5"
    collect(fake_config(out, episodes=2))
    collect(recording_config(out, episodes=3))  # the same collection, now with records
    assert sorted(records_of(out)) == [2]
    assert info(out)["distractors"] == {"trajectories": 1, "records": ["background_frame", "background_video", "camera"]}
    assert load_frames(out).distractors is None
    assert load_frames(out).subset([0]).distractors is None
    assert_same_training_data(out)


def assert_same_training_data(path: Path) -> None:
    """Whatever the records, the arrays training reads are the group's own."""
    data, raw = load_frames(path), read_all(path)
    np.testing.assert_array_equal(data.actions, np.concatenate([raw[i][2] for i in sorted(raw)]))


def test_release_layout_without_records_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "release.hdf5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for k, v in dict(domain_name="cheetah", task_name="run", difficulty="easy", dynamic=True, img_hw=16,
                         split="train", dataset_return=1.0).items():  # fmt: skip
            f.attrs[k] = v
        for i in range(2):
            g = f.create_group(str(i))
            g.create_dataset("obs", data=rng.integers(0, 255, (5, 16, 16, 3), dtype=np.uint8))
            g.create_dataset("states", data=np.zeros((5, 3), np.float32))
            g.create_dataset("actions", data=np.zeros((5, 2), np.float32))
            g.attrs["traj_return"] = 1.0
    assert validate(path).trajectories == 2
    assert load_frames(path).distractors is None and StreamingData(path).load([0]).distractors is None
    assert info(path)["distractors"] is None


def _file_with_record(path: Path, record: np.ndarray) -> Path:
    create(path, {"domain_name": "cheetah", "task_name": "run", "difficulty": "easy", "dynamic": True,
                  "img_hw": 16, "split": "train"})  # fmt: skip
    with Writer(path) as w:
        obs = np.zeros((5, 16, 16, 3), np.uint8)
        w.append(0, obs, np.zeros((5, 3)), np.zeros((5, 2)), 0.0, distractors={"camera": np.zeros((5, 4))})
    with h5py.File(path, "r+") as f:
        del f["0"][DISTRACTORS]["camera"]
        f["0"][DISTRACTORS].create_dataset("camera", data=record)
    return path


@pytest.mark.parametrize(
    "record, word",
    [
        (np.zeros((4, 4), np.float32), "distractors/camera: shape [4, 4], expected 5 steps"),
        (np.full((5, 4), np.nan, np.float32), "distractors/camera: NaN/inf"),
        (np.array([b"a"] * 5), "distractors/camera: dtype"),
    ],
)
def test_broken_records_are_one_line_naming_trajectory_and_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], record: np.ndarray, word: str
) -> None:
    path = _file_with_record(tmp_path / "bad.hdf5", record)
    assert main(["data", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("laom: error:") and err.count("\n") == 1
    assert "trajectory 0" in err and word in err


def test_loading_a_record_of_the_wrong_length_names_it(tmp_path: Path) -> None:
    path = _file_with_record(tmp_path / "bad.hdf5", np.zeros((4, 4), np.float32))
    with pytest.raises(LaomError, match=r"bad.hdf5: trajectory 0 distractors/camera: shape \[4, 4\], expected 5"):
        load_frames(path)
    with DatasetReader(path) as r, pytest.raises(LaomError, match="distractors/camera"):
        read_distractors([r.group(0)], path)


def test_writer_refuses_records_of_another_length(tmp_path: Path) -> None:
    path = tmp_path / "w.hdf5"
    create(path, {"domain_name": "cheetah", "task_name": "run", "difficulty": "easy", "dynamic": True,
                  "img_hw": 16, "split": "train"})  # fmt: skip
    with Writer(path) as w, pytest.raises(ValueError, match="'camera'.*expected 5 steps"):
        w.append(0, np.zeros((5, 16, 16, 3), np.uint8), np.zeros((5, 3)), np.zeros((5, 2)), 0.0,
                 distractors={"camera": np.zeros((6, 4))})  # fmt: skip


# ----------------------------------------------------------------------------- the real env
def test_distracting_env_reports_its_distractors() -> None:
    from laom.envs import make

    env = make("cheetah-run", img_hw=16, frame_stack=1)
    try:
        env.reset(seed=3)
        first = env.distractor_state()
        assert set(first) == {"camera", "color", "background_video", "background_frame"}
        assert first["camera"].shape == (4,) and first["color"].shape[1:] == (3,)
        assert 0 <= int(first["background_video"]) < len(env._video.bank)
        env.step(np.zeros(env.action_space.shape))
        second = env.distractor_state()
        assert abs(int(second["background_frame"]) - int(first["background_frame"])) == 1  # the video plays
        assert not np.array_equal(first["camera"], second["camera"])  # the camera shakes
        env.reset(seed=3)
        again = env.distractor_state()
        for name in first:
            np.testing.assert_array_equal(first[name], again[name])
    finally:
        env.close()
    vanilla = make("cheetah-run", difficulty="vanilla", img_hw=16, frame_stack=1)
    try:
        vanilla.reset(seed=0)
        state = vanilla.distractor_state()
        assert "background_video" not in state
        np.testing.assert_array_equal(state["camera"], [0, 0, 1, 0])
        assert not state["color"].any()
    finally:
        vanilla.close()
