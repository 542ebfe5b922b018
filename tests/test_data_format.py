"""The HDF5 layout, the journaled writer, the reader and validate, on tiny synthetic data."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from laom.data.format import (
    Compression,
    DatasetReader,
    Writer,
    create,
    info,
    parse_shard,
    shard_indices,
    validate,
)
from laom.data.journal import _HEADER, JournaledFile, _Intervals, journal_path, recover
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


def traj(seed: int, length: int = 12, d: int = 5, a: int = 2):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, (length, HW, HW, 3), dtype=np.uint8),
        rng.standard_normal((length, d)).astype(np.float32),
        rng.standard_normal((length, a)).astype(np.float32),
        float(seed),
    )


def write_file(path: Path, n: int = 3, compression: str = "none", **attrs) -> Path:
    create(path, {**ATTRS, **attrs})
    with Writer(path, compression) as w:
        for i in range(n):
            w.append(i, *traj(i))
    return path


def write_release_like(path: Path, n: int = 3, byte_strings: bool = False) -> Path:
    """A file written the way the paper's release writes them: plain h5py, nothing extra."""
    with h5py.File(path, "w") as f:
        returns = []
        for i in range(n):
            obs, states, actions, ret = traj(i, length=10 + i)
            g = f.create_group(str(i))
            g.create_dataset("obs", data=obs)
            g.create_dataset("states", data=states)
            g.create_dataset("actions", data=actions)
            g.attrs["traj_return"] = ret
            returns.append(ret)
        for key, value in ATTRS.items():
            f.attrs[key] = np.bytes_(value) if byte_strings and isinstance(value, str) else value
        f.attrs["dataset_return"] = np.mean(returns)
    return path


# ----------------------------------------------------------------------------- layout
def test_layout_dtypes_and_attrs(tmp_path: Path) -> None:
    path = write_file(tmp_path / "d.hdf5", n=3)
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["0", "1", "2"]
        for key in (
            "domain_name",
            "task_name",
            "difficulty",
            "dynamic",
            "img_hw",
            "split",
            "dataset_return",
        ):
            assert key in f.attrs
        assert f.attrs["dataset_return"] == pytest.approx(1.0)  # mean of 0, 1, 2
        g = f["1"]
        assert g["obs"].dtype == np.uint8 and g["obs"].shape == (12, HW, HW, 3)
        assert g["states"].dtype == np.float32 and g["states"].shape == (12, 5)
        assert g["actions"].dtype == np.float32 and g["actions"].shape == (12, 2)
        assert g.attrs["traj_return"] == 1.0
        obs, states, actions, _ = traj(1)
        np.testing.assert_array_equal(g["obs"][()], obs)
        np.testing.assert_array_equal(g["states"][()], states)
        np.testing.assert_array_equal(g["actions"][()], actions)
    assert not journal_path(path).exists()


def test_groups_listed_in_numeric_order(tmp_path: Path) -> None:
    path = tmp_path / "d.hdf5"
    create(path, ATTRS)
    with Writer(path) as w:
        for i in (10, 2, 1, 0, 9):
            w.append(i, *traj(i))
    with DatasetReader(path) as r:
        assert r.indices == [0, 1, 2, 9, 10]
        assert [t.traj_return for t in r] == [0.0, 1.0, 2.0, 9.0, 10.0]


@pytest.mark.parametrize("spec", ["none", "lzf", "gzip", "gzip:1"])
def test_compression_round_trip_and_chunking(tmp_path: Path, spec: str) -> None:
    path = write_file(tmp_path / "d.hdf5", n=2, compression=spec)
    with h5py.File(path, "r") as f:
        dset = f["0"]["obs"]
        comp = Compression.parse(spec)
        if comp.name == "none":
            assert dset.compression is None and dset.chunks is None
        else:
            assert dset.compression == comp.name
            assert dset.chunks == (12, HW, HW, 3)  # whole frames; at most T of them
            if comp.name == "gzip":
                assert dset.compression_opts == comp.level
    with DatasetReader(path) as r:
        np.testing.assert_array_equal(r.obs(1, 3, 7), traj(1)[0][3:7])


def test_compression_parse_errors() -> None:
    assert str(Compression.parse("gzip")) == "gzip:4"
    for bad in ("zstd", "gzip:11", "gzip:x", "lzf:3"):
        with pytest.raises(LaomError):
            Compression.parse(bad)


def test_release_format_file_loads(tmp_path: Path) -> None:
    for byte_strings in (False, True):
        path = write_release_like(
            tmp_path / f"release{byte_strings}.hdf5", byte_strings=byte_strings
        )
        report = validate(path)
        assert report.trajectories == 3 and report.transitions == 10 + 11 + 12
        with DatasetReader(path) as r:
            assert r.task == "cheetah-run" and r.img_hw == (HW, HW)
            assert r.attrs["split"] == "train"
            t = r[2]
            assert len(t) == 12 and t.obs.dtype == np.uint8
        facts = info(path)
        assert facts["trajectories"] == 3 and facts["compression"] == "none"
        assert facts["return_mean"] == pytest.approx(1.0)


def test_writer_refuses_bad_arrays(tmp_path: Path) -> None:
    path = tmp_path / "d.hdf5"
    create(path, ATTRS)
    obs, states, actions, ret = traj(0)
    with Writer(path) as w:
        with pytest.raises(ValueError):
            w.append(0, obs.astype(np.float32), states, actions, ret)
        with pytest.raises(ValueError):
            w.append(0, obs, states[:-1], actions, ret)
        with pytest.raises(ValueError):
            w.append(0, obs[:0], states[:0], actions[:0], ret)
        w.append(0, obs, states, actions, ret)
        with pytest.raises(ValueError):
            w.append(0, obs, states, actions, ret)
    assert validate(path).trajectories == 1


def test_create_never_overwrites(tmp_path: Path) -> None:
    path = write_file(tmp_path / "d.hdf5", n=1)
    with pytest.raises(LaomError, match="already exists"):
        create(path, ATTRS)
    with pytest.raises(LaomError, match="does not exist"):
        create(tmp_path / "missing" / "d.hdf5", ATTRS)
    assert validate(path).trajectories == 1


# ----------------------------------------------------------------------------- crash safety
def test_uncommitted_append_is_rolled_back(tmp_path: Path) -> None:
    """A writer that dies mid-trajectory (simulated: no commit, handle dropped) loses only it."""
    path = write_file(tmp_path / "d.hdf5", n=2)
    size = path.stat().st_size
    jf = JournaledFile(path)
    h5 = h5py.File(jf, "r+")
    g = h5.create_group("2")
    g.create_dataset("obs", data=traj(2)[0])
    h5.attrs["dataset_return"] = 99.0
    h5.flush()  # the new bytes and the changed metadata are on disk now
    h5.close()
    jf.close()  # no commit: like a kill, the journal stays
    assert journal_path(path).exists() and path.stat().st_size > size
    assert recover(path) is True
    assert not journal_path(path).exists() and path.stat().st_size == size
    report = validate(path)
    assert report.trajectories == 2
    assert report.attrs["dataset_return"] == pytest.approx(0.5)


def test_exception_mid_append_leaves_last_commit(tmp_path: Path) -> None:
    path = write_file(tmp_path / "d.hdf5", n=2)

    class Boom(Exception):
        pass

    w = Writer(path)
    obs, states, actions, ret = traj(2)

    def explode(key: str, value: object) -> None:
        raise Boom

    with pytest.raises(Boom):
        w.append(2, obs, states, actions, ret, attrs=_ExplodingAttrs(explode))
    w.close()
    assert not journal_path(path).exists()
    assert validate(path).trajectories == 2
    with Writer(path) as w2:  # and the file takes appends again
        w2.append(2, obs, states, actions, ret)
    assert validate(path).trajectories == 3


class _ExplodingAttrs(dict):
    def __init__(self, fn) -> None:
        super().__init__(x=1)
        self.fn = fn

    def items(self):
        self.fn("x", 1)
        return super().items()


def test_second_writer_and_reader_are_refused_while_writing(tmp_path: Path) -> None:
    path = write_file(tmp_path / "d.hdf5", n=1)
    with Writer(path):
        with pytest.raises(LaomError, match="being written"):
            Writer(path)
        with pytest.raises(LaomError, match="being written"):
            DatasetReader(path)
    assert validate(path).trajectories == 1


def test_journal_intervals_claim_each_byte_once() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        iv, covered = _Intervals(), set()
        for _ in range(12):
            a = int(rng.integers(0, 60))
            b = a + int(rng.integers(1, 12))
            got = {x for lo, hi in iv.claim(a, b) for x in range(lo, hi)}
            assert got == set(range(a, b)) - covered
            covered |= set(range(a, b))
        assert all(iv.ends[i] < iv.starts[i + 1] for i in range(len(iv.starts) - 1))


def test_torn_journal_tail_is_ignored(tmp_path: Path) -> None:
    """A journal entry cut short by a kill protected a write that never started."""
    path = write_file(tmp_path / "d.hdf5", n=2)
    original = path.read_bytes()
    jf = JournaledFile(path, durable=False)
    jf.seek(0)
    jf.write(b"\xff" * 64)  # clobber the superblock region: journaled first
    jf.close()
    jpath = journal_path(path)
    raw = jpath.read_bytes()
    with open(jpath, "ab") as fh:  # a second entry, torn halfway
        fh.write(raw[_HEADER.size : _HEADER.size + 20])
    recover(path)
    assert path.read_bytes() == original


def test_stale_journal_of_a_replaced_file_is_not_applied(tmp_path: Path) -> None:
    """Crash, delete the file, start again: the old journal must not touch the new file."""
    path = write_file(tmp_path / "d.hdf5", n=3)
    jf = JournaledFile(path)
    jf.seek(0)
    jf.write(b"\0" * 4096)
    jf.close()  # crashed mid-transaction
    assert journal_path(path).exists()
    path.unlink()
    fresh = write_file(tmp_path / "other.hdf5", n=1)
    os.replace(fresh, path)
    expected = path.read_bytes()
    assert validate(path).trajectories == 1
    assert path.read_bytes() == expected and not journal_path(path).exists()


# ----------------------------------------------------------------------------- validate
def _mutate(path: Path, fn) -> Path:
    with h5py.File(path, "r+") as f:
        fn(f)
    return path


def _replace(f: h5py.File, name: str, field: str, data: np.ndarray) -> None:
    del f[name][field]
    f[name].create_dataset(field, data=data)


VALIDATE_CASES = {
    "missing group": (lambda f: f.move("2", "7"), "missing trajectory group(s) 2"),
    "missing dataset": (
        lambda f: f["1"].__delitem__("actions"),
        "trajectory 1: missing dataset 'actions'",
    ),
    "length mismatch": (
        lambda f: _replace(f, "1", "states", np.zeros((11, 5), np.float32)),
        "trajectory 1: states: 11 steps but obs has 12",
    ),
    "obs dtype": (
        lambda f: _replace(f, "0", "obs", np.zeros((12, HW, HW, 3), np.float32)),
        "trajectory 0: obs: dtype float32, expected uint8",
    ),
    "obs shape": (
        lambda f: _replace(f, "0", "obs", np.zeros((12, HW, HW), np.uint8)),
        "trajectory 0: obs: shape [12, 16, 16], expected [T,H,W,3]",
    ),
    "img_hw mismatch": (
        lambda f: _replace(f, "2", "obs", np.zeros((12, 8, 8, 3), np.uint8)),
        "trajectory 2: obs: frames are 8x8 but file attribute img_hw is 16x16",
    ),
    "actions dtype": (
        lambda f: _replace(f, "0", "actions", np.zeros((12, 2), np.float64)),
        "trajectory 0: actions: dtype float64, expected float32",
    ),
    "nan action": (
        lambda f: f["1"]["actions"].__setitem__((4, 1), np.nan),
        "trajectory 1: actions: 1 NaN/inf value(s), first at step 4",
    ),
    "inf state": (
        lambda f: f["2"]["states"].__setitem__((0, 0), np.inf),
        "trajectory 2: states: 1 NaN/inf value(s), first at step 0",
    ),
    "empty trajectory": (
        lambda f: [
            _replace(f, "1", k, np.zeros((0, *s), dt))
            for k, s, dt in (
                ("obs", (HW, HW, 3), np.uint8),
                ("states", (5,), np.float32),
                ("actions", (2,), np.float32),
            )
        ],
        "trajectory 1: obs: empty trajectory",
    ),
    "missing file attr": (
        lambda f: f.attrs.__delitem__("split"),
        "missing file attribute(s) split",
    ),
    "missing traj_return": (
        lambda f: f["0"].attrs.__delitem__("traj_return"),
        "trajectory 0: missing attribute traj_return",
    ),
}


@pytest.mark.parametrize("case", sorted(VALIDATE_CASES))
def test_validate_reports_one_line_naming_file_trajectory_field(tmp_path: Path, case: str) -> None:
    fn, expected = VALIDATE_CASES[case]
    path = _mutate(write_file(tmp_path / "d.hdf5", n=3), fn)
    with pytest.raises(LaomError) as err:
        validate(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg
    assert expected in msg


def test_validate_not_hdf5_and_truncated(tmp_path: Path) -> None:
    junk = tmp_path / "junk.hdf5"
    junk.write_bytes(b"this is not hdf5" * 100)
    with pytest.raises(LaomError, match="not an HDF5 file"):
        validate(junk)
    path = write_file(tmp_path / "d.hdf5", n=3)
    data = path.read_bytes()
    cut = tmp_path / "cut.hdf5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(LaomError, match="truncated") as err:
        validate(cut)
    assert "\n" not in str(err.value) and str(cut) in str(err.value)
    with pytest.raises(LaomError, match="no such file"):
        validate(tmp_path / "nope.hdf5")


def test_validate_counts_further_problems(tmp_path: Path) -> None:
    def two(f: h5py.File) -> None:
        f["0"]["actions"][0, 0] = np.nan
        f["2"]["actions"][0, 0] = np.nan

    path = _mutate(write_file(tmp_path / "d.hdf5", n=3), two)
    with pytest.raises(LaomError, match=r"trajectory 0: .*\(and 1 more problem"):
        validate(path)


def test_validate_partial_collection_is_ok_but_incomplete(tmp_path: Path) -> None:
    path = tmp_path / "d.hdf5"
    create(path, {**ATTRS, "episodes": 8, "shard": "1/2", "seed": 0})
    with Writer(path) as w:
        for i in (1, 5):
            w.append(i, *traj(i))
    report = validate(path)
    assert report.planned == 4 and report.missing == [3, 7] and not report.complete
    assert "incomplete" in report.summary()
    with Writer(path) as w:
        w.append(2, *traj(2))  # not this shard's episode
    with pytest.raises(LaomError, match="outside this collection"):
        validate(path)


def test_empty_collection_file_validates(tmp_path: Path) -> None:
    """A collection killed before its first episode still opens and validates."""
    path = tmp_path / "d.hdf5"
    create(path, {**ATTRS, "episodes": 2, "shard": "0/1", "seed": 0})
    report = validate(path)
    assert report.trajectories == 0 and report.missing == [0, 1]


def test_shards() -> None:
    assert parse_shard("1/4") == (1, 4)
    assert list(shard_indices(10, (1, 4))) == [1, 5, 9]
    assert sorted(i for s in range(3) for i in shard_indices(7, (s, 3))) == list(range(7))
    for bad in ("1", "4/4", "-1/2", "a/b", "1/0", "1/2/3"):
        with pytest.raises(LaomError, match="--shard"):
            parse_shard(bad)


def test_info_reports_compression_and_size(tmp_path: Path) -> None:
    path = write_file(tmp_path / "d.hdf5", n=2, compression="lzf")
    facts = info(path)
    assert facts["compression"].startswith("lzf")
    assert facts["file_bytes"] == os.path.getsize(path)
    assert facts["transitions"] == 24 and facts["state_dim"] == 5 and facts["action_dim"] == 2


class _DiesAfter(JournaledFile):
    """Simulates the process dying at write number ``n``: that write is torn, later ones vanish."""

    def __init__(self, path: Path, n: int | None) -> None:
        super().__init__(path, durable=False)
        self.n = n
        self.writes = 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self.writes += 1
        if self.n is None or self.writes < self.n:
            return super().write(view)
        if self.writes == self.n:
            super().write(view[: len(view) // 2])  # torn: only a prefix reached the disk
        return len(view)

    def truncate(self, size: int | None = None) -> int:
        if self.n is not None and self.writes >= self.n:
            return size or 0
        return super().truncate(size)


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_crash_at_every_write_of_an_append(tmp_path: Path, compression: str) -> None:
    """Exhaustive fault injection: die at each write of an append, recover, and compare."""
    base = write_file(tmp_path / "base.hdf5", n=2, compression=compression)
    expected = base.read_bytes()

    def append_through(jf: JournaledFile) -> None:
        h5 = h5py.File(jf, "r+")
        g = h5.create_group("2")
        g.create_dataset(
            "obs", data=traj(2)[0], **Compression.parse(compression).dataset_kwargs((12, HW, HW, 3))
        )
        g.create_dataset("states", data=traj(2)[1])
        g.create_dataset("actions", data=traj(2)[2])
        g.attrs["traj_return"] = 2.0
        h5.attrs["dataset_return"] = 1.0
        h5.flush()
        h5.close()

    path = tmp_path / "d.hdf5"
    path.write_bytes(expected)
    counter = _DiesAfter(path, None)
    append_through(counter)
    total = counter.writes
    counter.close()
    assert total > 3
    for n in range(1, total + 1):
        path.write_bytes(expected)
        journal_path(path).unlink(missing_ok=True)
        jf = _DiesAfter(path, n)
        append_through(jf)
        jf.close()  # dead: no commit, the journal stays behind
        recover(path)
        assert path.read_bytes() == expected, f"crash at write {n} of {total} not undone"
        assert validate(path).trajectories == 2
