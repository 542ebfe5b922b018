"""`laom data export --format minari` and `laom data import`: lossless round trips on tiny
files (arrays, dtypes and attributes equal), what Minari's own reader sees, and refusals."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from laom.cli import main
from laom.data.interchange import decode_attr, encode_attr, export_dataset, import_dataset
from laom.training.synthetic import write_moving_square

HW, LATENT = 16, 8


def odd_attributes(f: h5py.File) -> None:
    """Attribute types release files and ours hold: numpy scalars, fixed and variable-length
    strings, arrays of numbers and of strings."""
    f.attrs["seed"] = np.int64(7)
    f.attrs["action_noise"] = np.float32(0.25)
    f.attrs["expert"] = "builtin:square-move"
    f.attrs["legacy_name"] = np.bytes_(b"release")
    f.attrs["seeds"] = np.array([0, 1, 2], np.int64)
    f.attrs["merged_from"] = np.array(["a.hdf5", "b.hdf5"], dtype=h5py.string_dtype())
    f.attrs["codes"] = np.array([b"x", b"yz"], dtype="S2")


@pytest.fixture()
def relabelled(tmp_path: Path) -> Path:
    """A synthetic dataset with distractor records, a relabel's latents, and odd attributes."""
    path = write_moving_square(tmp_path / "data.hdf5", 3, 9, img_hw=HW, seed=0, distractor_records=True)
    rng = np.random.default_rng(0)
    with h5py.File(path, "r+") as f:
        odd_attributes(f)
        for name in f:
            length = f[name]["obs"].shape[0]
            f[name].create_dataset("latent_actions", data=rng.standard_normal((length - 1, LATENT)).astype(np.float32))
            f[name].attrs["episode_seed"] = np.int64(100 + int(name))
            f[name].attrs["episode_index"] = int(name)
    return path


def contents(path: Path) -> dict[str, Any]:
    """Every dataset (path -> array) and every attribute (path@name -> value) of a file."""
    with h5py.File(path, "r") as f:
        out: dict[str, Any] = {f"@{k}": v for k, v in f.attrs.items()}

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                out[name] = obj[()]
            for key, value in obj.attrs.items():
                out[f"{name}@{key}"] = value

        f.visititems(visit)
    return out


def assert_same(a: dict[str, Any], b: dict[str, Any], allow_extra: tuple[str, ...] = ()) -> None:
    assert set(a) == set(b) - set(allow_extra), set(a) ^ set(b)
    for key, value in a.items():
        other = b[key]
        assert type(other) is type(value), (key, type(value), type(other))
        if isinstance(value, np.ndarray):
            assert other.dtype == value.dtype and other.shape == value.shape, key
        np.testing.assert_array_equal(np.asarray(other), np.asarray(value), err_msg=key)


@pytest.mark.parametrize(
    "value",
    [np.int64(3), np.float32(0.5), np.bool_(True), np.bytes_(b"ab"), "text", b"raw", 2.5, 1,
     np.array([1, 2], np.int32), np.array(["a", "bc"], dtype=h5py.string_dtype()),
     np.array([b"x", b"yz"], dtype="S2"), np.zeros((2, 3), np.float64)],
)  # fmt: skip
def test_attributes_keep_their_type(value: Any, tmp_path: Path) -> None:
    with h5py.File(tmp_path / "a.hdf5", "w") as f:
        f.attrs["v"] = value
        f.attrs["w"] = decode_attr(encode_attr(f.attrs["v"]))
        stored, back = f.attrs["v"], f.attrs["w"]
    assert type(back) is type(stored)
    assert np.asarray(back).dtype == np.asarray(stored).dtype
    np.testing.assert_array_equal(np.asarray(back), np.asarray(stored))


def test_minari_round_trip_is_lossless(relabelled: Path, tmp_path: Path) -> None:
    pytest.importorskip("minari")
    folder = tmp_path / "minari"
    res = export_dataset(relabelled, "minari", folder, progress=False)
    assert (res.trajectories, res.frames) == (3, 27)
    assert "latent_actions" in res.extras and "distractors/camera" in res.extras
    back = import_dataset(folder, tmp_path / "back.hdf5", progress=False)
    assert back.trajectories == 3
    # Every array and attribute as it was; import stamps the laom version it ran with.
    assert_same(contents(relabelled), contents(back.path), allow_extra=("@laom_version",))
    again = tmp_path / "again"
    export_dataset(back.path, "minari", again, progress=False)
    assert_same(contents(back.path), contents(import_dataset(again, tmp_path / "again.hdf5", progress=False).path))


def test_minari_reads_the_export(relabelled: Path, tmp_path: Path) -> None:
    minari = pytest.importorskip("minari")
    folder = tmp_path / "cheetah-run"
    export_dataset(relabelled, "minari", folder, progress=False)
    dataset = minari.MinariDataset(folder / "data")
    assert dataset.spec.dataset_id == "laom/cheetah-run-v0"
    assert dataset.total_episodes == 3 and dataset.total_steps == 3 * 8
    with h5py.File(relabelled, "r") as f:
        for episode in dataset.iterate_episodes():
            group = f[str(episode.id)]
            np.testing.assert_array_equal(episode.observations["pixels"], group["obs"][()])
            np.testing.assert_array_equal(episode.observations["state"], group["states"][()])
            np.testing.assert_array_equal(episode.actions, group["actions"][:-1])
            assert np.isnan(episode.rewards).all() and episode.truncations[-1] and not episode.terminations.any()
            latents = episode.infos["latent_actions"]  # infos[t+1] describes step t
            assert np.isnan(latents[0]).all()
            np.testing.assert_array_equal(latents[1:], group["latent_actions"][()])
            np.testing.assert_array_equal(episode.infos["distractors"]["camera"], group["distractors/camera"][()])


def test_minari_export_carries_d4rl_reference_scores(relabelled: Path, tmp_path: Path) -> None:
    """``minari.get_normalized_score`` works on an export of a suite task's file: 0 is a
    uniform random policy on the task, 1 the file's mean return (its expert's). A file of
    no suite task (the synthetic square) has no reference scores, as Minari allows."""
    minari = pytest.importorskip("minari")
    from laom.envs.tasks import random_policy_returns

    export_dataset(relabelled, "minari", tmp_path / "square", progress=False)
    with pytest.raises(ValueError, match="Reference score not provided"):
        minari.get_normalized_score(minari.MinariDataset(tmp_path / "square" / "data"), np.array([1.0]))
    with h5py.File(relabelled, "r+") as f:
        f.attrs["domain_name"], f.attrs["task_name"], f.attrs["dataset_return"] = "cheetah", "run", 300.0
    export_dataset(relabelled, "minari", tmp_path / "cheetah", progress=False)
    dataset = minari.MinariDataset(tmp_path / "cheetah" / "data")
    floor = float(np.mean(random_policy_returns("cheetah-run", 25)))
    assert minari.get_normalized_score(dataset, np.array([floor, 300.0])) == pytest.approx([0.0, 1.0])


def test_cli(relabelled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("minari")
    folder = tmp_path / "m"
    assert main(["data", "export", str(relabelled), "--format", "minari", "--out", str(folder), "--quiet"]) == 0
    assert "3 episodes, 27 frames" in capsys.readouterr().out
    assert main(["data", "import", str(folder), "--out", str(tmp_path / "b.hdf5"), "--quiet"]) == 0
    assert "3 trajectories, 27 frames; also distractors/camera, latent_actions" in capsys.readouterr().out


def refused(argv: list[str], capsys: pytest.CaptureFixture[str], names: str) -> None:
    assert main(argv) == 2, argv
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("laom: error: ") and names in err, err


def snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_bad_input_is_one_line_and_loses_nothing(
    relabelled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    before = snapshot(tmp_path)
    export = ["data", "export", str(relabelled), "--quiet"]
    refused([*export, "--format", "parquet", "--out", str(tmp_path / "x")], capsys, "--format 'parquet'")
    refused([*export, "--format", "lerobot", "--out", str(tmp_path / "x")], capsys, "torch<2.11.0")
    refused([*export, "--format", "minari", "--out", str(tmp_path / "no" / "x")], capsys, "--out")
    refused(["data", "import", str(tmp_path / "absent"), "--out", str(tmp_path / "y.hdf5")], capsys, "no such folder")
    refused(["data", "import", str(existing), "--out", str(tmp_path / "y.hdf5")], capsys, "not a Minari dataset")
    monkeypatch.setitem(sys.modules, "minari", None)  # as without the extra
    refused([*export, "--format", "minari", "--out", str(tmp_path / "x")], capsys, "pip install 'laom[minari]'")
    monkeypatch.delitem(sys.modules, "minari")
    if importlib.util.find_spec("minari") is not None:
        refused([*export, "--format", "minari", "--out", str(existing)], capsys, f"--out {existing}: already exists")
        refused([*export, "--format", "minari", "--out", str(tmp_path / "x"), "--dataset-id", "a b"], capsys, "--dataset-id")
        folder = tmp_path / "ok"
        export_dataset(relabelled, "minari", folder, progress=False)
        before = snapshot(tmp_path)
        target = tmp_path / "data.hdf5"  # exists: import replaces it only with --force
        refused(["data", "import", str(folder), "--out", str(target), "--quiet"], capsys, "--force")
    assert snapshot(tmp_path) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_import_refuses_a_foreign_minari_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("minari")
    import gymnasium as gym
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_storage import MinariStorage

    storage = MinariStorage.new(
        (tmp_path / "foreign").resolve(), observation_space=gym.spaces.Box(-1, 1, (2,)),
        action_space=gym.spaces.Box(-1, 1, (1,)),
    )  # fmt: skip
    storage.update_episodes([EpisodeBuffer(observations=np.zeros((3, 2), np.float32), actions=np.zeros((2, 1), np.float32),
                                           rewards=np.zeros(2), terminations=np.zeros(2, bool), truncations=np.ones(2, bool))])  # fmt: skip
    refused(["data", "import", str(tmp_path / "foreign"), "--out", str(tmp_path / "y.hdf5")], capsys, "not written by `laom data export`")
    assert not (tmp_path / "y.hdf5").exists()


def test_an_interrupted_export_leaves_nothing(relabelled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("minari")
    from minari.dataset._storages.hdf5_storage import HDF5Storage

    calls = {"n": 0}
    real = HDF5Storage.update_episodes

    def cut(self: Any, episodes: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real(self, episodes)

    monkeypatch.setattr(HDF5Storage, "update_episodes", cut)
    with pytest.raises(KeyboardInterrupt):
        export_dataset(relabelled, "minari", tmp_path / "m", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.hdf5"]
