"""laom.data.identity: a dataset is named by its content, so data collected again alike
keeps every cache key, while any change to what it holds makes a new one."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
from test_stages import square

from laom.data.identity import file_identity


def test_a_dataset_written_again_alike_keeps_its_identity(tmp_path: Path) -> None:
    a = file_identity(square(tmp_path / "a.h5", 3, 12, seed=0))
    b = file_identity(square(tmp_path / "b.h5", 3, 12, seed=0))
    assert set(a) == {"path", "size", "content"} and a["content"] == b["content"]
    assert a["path"] != b["path"]  # the place still counts
    st = (tmp_path / "a.h5").stat()
    os.utime(tmp_path / "a.h5", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert file_identity(tmp_path / "a.h5") == a
    with h5py.File(tmp_path / "a.h5", "r+") as f:
        f.attrs["laom_version"] = "0.0.0-another"  # which laom wrote it is not what it holds
    assert file_identity(tmp_path / "a.h5")["content"] == a["content"]
    assert file_identity(square(tmp_path / "c.h5", 3, 12, seed=1))["content"] != a["content"]


def test_what_changes_a_datasets_identity(tmp_path: Path) -> None:
    path = square(tmp_path / "a.h5", 2, 10, seed=0)
    before = file_identity(path)["content"]
    edits = {
        "an action": lambda f: f["1/actions"].__setitem__((3, 0), f["1/actions"][3, 0] + 1),
        "a state": lambda f: f["0/states"].__setitem__((5, 1), f["0/states"][5, 1] - 1),
        "the last frame": lambda f: f["1/obs"].__setitem__((9, 0, 0, 0), 255 - f["1/obs"][9, 0, 0, 0]),
        "a file attribute": lambda f: f.attrs.__setitem__("difficulty", "hard"),
    }
    for what, edit in edits.items():
        copy = tmp_path / f"{what.replace(' ', '_')}.h5"
        copy.write_bytes(path.read_bytes())
        with h5py.File(copy, "r+") as f:
            edit(f)
        assert file_identity(copy)["content"] != before, what


def test_other_files_are_named_by_their_version(tmp_path: Path) -> None:
    weights = tmp_path / "lam.pt"
    weights.write_bytes(b"not a dataset")
    ident = file_identity(weights)
    assert set(ident) == {"path", "size", "mtime_ns"}
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert file_identity(weights) != ident
    assert file_identity(weights, resolve=False)["path"] == str(weights)
