"""`laom data info|validate|sample-labeled|merge` on tiny synthetic files."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from laom.cli import main
from laom.data.format import DatasetReader, Writer, create, validate
from laom.data.labeled import Chunk, chunks_of, pick_chunks, sample_labeled
from laom.data.merge import merge
from laom.errors import LaomError

HW = 16
ATTRS = {
    "domain_name": "cheetah",
    "task_name": "run",
    "difficulty": "scale_easy_video_hard",
    "dynamic": True,
    "img_hw": HW,
    "split": "train",
}


def arrays(key: int, length: int):
    rng = np.random.default_rng(key)
    return (
        rng.integers(0, 256, (length, HW, HW, 3), dtype=np.uint8),
        rng.standard_normal((length, 4)).astype(np.float32),
        rng.standard_normal((length, 2)).astype(np.float32),
    )


def make_dataset(path: Path, lengths: list[int], compression: str = "none") -> Path:
    create(path, ATTRS)
    with Writer(path, compression) as w:
        for i, n in enumerate(lengths):
            w.append(i, *arrays(i, n), float(10 * i))
    return path


def make_shard(path: Path, episodes: int, shard: tuple[int, int], seed: int = 0, **attrs) -> Path:
    create(
        path,
        {**ATTRS, "episodes": episodes, "shard": f"{shard[0]}/{shard[1]}", "seed": seed, **attrs},
    )
    with Writer(path) as w:
        for ep in range(shard[0], episodes, shard[1]):
            w.append(ep, *arrays(1000 * seed + ep, 5), float(ep), {"episode_index": ep})
    return path


# ----------------------------------------------------------------------------- sample-labeled
def test_chunks_cut_long_trajectories() -> None:
    chunks = chunks_of({0: 25, 1: 7, 2: 10}, chunk=10)
    assert chunks == [Chunk(0, 0, 10), Chunk(0, 10, 10), Chunk(1, 0, 7), Chunk(2, 0, 10)]


def test_pick_is_distinct_deterministic_and_nested() -> None:
    chunks = chunks_of({i: 30 for i in range(20)}, chunk=10)  # 60 chunks
    a = pick_chunks(chunks, 16, seed=3)
    assert len(set(a)) == 16
    assert a == pick_chunks(chunks, 16, seed=3)
    assert a != pick_chunks(chunks, 16, seed=4)
    small = pick_chunks(chunks, 4, seed=3)
    assert set(small) <= set(a)  # budgets of one seed are nested


def test_sample_labeled_writes_chunks_with_sources(tmp_path: Path) -> None:
    src = make_dataset(tmp_path / "src.hdf5", [25, 7, 10, 30])
    out = tmp_path / "lab.hdf5"
    picked = sample_labeled(src, 4, out, seed=1, chunk=10)
    assert len(set(picked)) == 4
    report = validate(out)
    assert report.trajectories == 4
    with DatasetReader(out) as lab, DatasetReader(src) as s:
        assert lab.attrs["source_trajectories"] == [c.source for c in picked]
        assert lab.attrs["source_chunk_starts"] == [c.start for c in picked]
        assert lab.attrs["labeled_seed"] == 1 and lab.attrs["chunk"] == 10
        for k, c in enumerate(picked):
            g = lab.group(k)
            assert g.attrs["source_trajectory"] == c.source and g.attrs["chunk_start"] == c.start
            np.testing.assert_array_equal(lab.obs(k), s.obs(c.source, c.start, c.start + c.length))
            np.testing.assert_array_equal(
                lab.actions(k), s.actions(c.source, c.start, c.start + c.length)
            )
            assert lab.traj_return(k) == s.traj_return(c.source)
    again = tmp_path / "lab2.hdf5"
    assert sample_labeled(src, 4, again, seed=1, chunk=10) == picked


def test_sample_labeled_refusals(tmp_path: Path) -> None:
    src = make_dataset(tmp_path / "src.hdf5", [10, 10, 10])
    before = src.read_bytes()
    with pytest.raises(LaomError, match="only 3 chunk"):
        sample_labeled(src, 4, tmp_path / "o.hdf5", seed=0, chunk=10)
    with pytest.raises(LaomError, match="at least 1"):
        sample_labeled(src, 0, tmp_path / "o.hdf5", seed=0, chunk=10)
    with pytest.raises(LaomError, match="source file"):
        sample_labeled(src, 1, src, seed=0, chunk=10, force=True)
    with pytest.raises(LaomError, match="source file"):
        sample_labeled(src, 1, tmp_path / "." / "src.hdf5", seed=0, chunk=10, force=True)
    out = tmp_path / "o.hdf5"
    sample_labeled(src, 1, out, seed=0, chunk=10)
    with pytest.raises(LaomError, match="already exists"):
        sample_labeled(src, 2, out, seed=0, chunk=10)
    assert validate(out).trajectories == 1
    sample_labeled(src, 2, out, seed=0, chunk=10, force=True)
    assert validate(out).trajectories == 2
    assert src.read_bytes() == before
    assert not list(tmp_path.glob(".*tmp*"))


def test_sample_labeled_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_dataset(tmp_path / "src.hdf5", [20, 20], compression="lzf")
    out = tmp_path / "lab.hdf5"
    rc = main(
        [
            "data",
            "sample-labeled",
            str(src),
            "--trajectories",
            "3",
            "--chunk",
            "10",
            "--seed",
            "0",
            "--out",
            str(out),
        ]
    )
    assert rc == 0 and "3 chunk(s), 30 steps" in capsys.readouterr().out
    with h5py.File(out) as f:
        assert f["0"]["obs"].compression == "lzf"  # as the source
    rc = main(
        [
            "data",
            "sample-labeled",
            str(src),
            "-n",
            "9",
            "--chunk",
            "10",
            "--out",
            str(tmp_path / "x.hdf5"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("laom: error:") and err.count("\n") == 1


# ----------------------------------------------------------------------------- merge
def test_merge_renumbers_in_episode_order(tmp_path: Path) -> None:
    shards = [make_shard(tmp_path / f"s{i}.hdf5", 7, (i, 3)) for i in (2, 0, 1)]
    out = tmp_path / "all.hdf5"
    res = merge(out, shards)
    assert res.trajectories == 7 and res.transitions == 35
    report = validate(out)
    assert report.trajectories == 7 and report.complete
    with DatasetReader(out) as r:
        assert r.indices == list(range(7))
        assert [r.group(i).attrs["episode_index"] for i in range(7)] == list(range(7))
        assert r.attrs["dataset_return"] == pytest.approx(3.0)
        assert "episodes" not in r.attrs and "shard" not in r.attrs
        np.testing.assert_array_equal(r.obs(4), arrays(4, 5)[0])


def test_merge_refuses_mismatch_naming_the_attr(tmp_path: Path) -> None:
    a = make_shard(tmp_path / "a.hdf5", 4, (0, 2))
    b = make_shard(tmp_path / "b.hdf5", 4, (1, 2), difficulty="easy")
    with pytest.raises(
        LaomError, match=r"b.hdf5: difficulty='easy' but .*a.hdf5 has 'scale_easy_video_hard'"
    ):
        merge(tmp_path / "o.hdf5", [a, b])
    c = make_shard(tmp_path / "c.hdf5", 4, (1, 2), split="eval")
    with pytest.raises(LaomError, match="split="):
        merge(tmp_path / "o.hdf5", [a, c])
    assert not (tmp_path / "o.hdf5").exists()


def test_merge_refuses_incomplete_duplicate_and_overwrite(tmp_path: Path) -> None:
    a = make_shard(tmp_path / "a.hdf5", 6, (0, 3))
    b = make_shard(tmp_path / "b.hdf5", 6, (1, 3))
    with pytest.raises(LaomError, match="shard.* 2/3 .* not given"):
        merge(tmp_path / "o.hdf5", [a, b])
    res = merge(tmp_path / "o.hdf5", [a, b], allow_incomplete=True)
    assert res.trajectories == 4
    with pytest.raises(LaomError, match="already exists"):
        merge(tmp_path / "o.hdf5", [a, b], allow_incomplete=True)
    with pytest.raises(LaomError, match="also an input"):
        merge(a, [a, b], force=True)
    dup = make_shard(tmp_path / "dup.hdf5", 6, (0, 3))
    with pytest.raises(LaomError, match="episode 0 .* is in both"):
        merge(tmp_path / "p.hdf5", [a, dup], allow_incomplete=True)
    partial = tmp_path / "partial.hdf5"
    create(partial, {**ATTRS, "episodes": 6, "shard": "2/3", "seed": 0})
    with pytest.raises(LaomError, match="unfinished shard"):
        merge(tmp_path / "q.hdf5", [a, b, partial])


def test_merge_cli_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shards = [str(make_shard(tmp_path / f"s{i}.hdf5", 4, (i, 2))) for i in range(2)]
    out = tmp_path / "m.hdf5"
    assert main(["data", "merge", str(out), *shards]) == 0
    assert "4 trajectories" in capsys.readouterr().out
    assert main(["data", "merge", str(out), *shards]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["data", "merge", str(out), *shards, "--force"]) == 0


# ----------------------------------------------------------------------------- info / validate CLI
def test_info_and_validate_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = make_dataset(tmp_path / "d.hdf5", [5, 6, 7])
    assert main(["data", "info", str(path)]) == 0
    out = capsys.readouterr().out
    for word in (
        "cheetah-run",
        "scale_easy_video_hard",
        "trajectories  3",
        "transitions   18",
        "compression",
        "file size",
    ):
        assert word in out
    assert main(["data", "info", str(path), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["return_max"] == 20.0 and facts["return_mean"] == 10.0
    assert main(["data", "validate", str(path)]) == 0
    assert capsys.readouterr().out.startswith("OK ")
    with h5py.File(path, "r+") as f:
        f["2"]["actions"][3, 0] = np.inf
    assert main(["data", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trajectory 2: actions" in err
    bad = tmp_path / "bad.hdf5"
    bad.write_text("hello")
    assert main(["data", "info", str(bad)]) == 2
    assert "not an HDF5 file" in capsys.readouterr().err
