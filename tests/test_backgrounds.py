"""Background video sources: splits, decoding, procedural statistics, errors, caching."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from laom.envs.backgrounds import (
    DAVIS17_TRAIN,
    DAVIS17_VAL,
    PROCEDURAL_COUNTS,
    VideoBank,
    open_backgrounds,
    stable_split,
)
from laom.errors import LaomError

VAL_FROM_PAPER_RELEASE = (
    "bike-packing blackswan bmx-trees breakdance camel car-roundabout car-shadow cows "
    "dance-twirl dog dogs-jump drift-chicane drift-straight goat gold-fish horsejump-high "
    "india judo kite-surf lab-coat libby loading mbike-trick motocross-jump "
    "paragliding-launch parkour pigs scooter-black shooting soapbox"
).split()


def _check_video(video: np.ndarray, size: int) -> None:
    assert video.dtype == np.uint8
    assert video.ndim == 4 and video.shape[1:] == (size, size, 3)
    assert video.shape[0] >= 1
    assert video.flags.c_contiguous


def _neighbour_correlation(frame: np.ndarray) -> float:
    grey = frame.astype(np.float64).mean(axis=2)
    a, b = grey[:, :-1].ravel(), grey[:, 1:].ravel()
    return float(np.corrcoef(a, b)[0, 1])


# ----------------------------------------------------------------------- DAVIS lists


def test_embedded_davis_lists_are_the_official_split() -> None:
    assert len(DAVIS17_TRAIN) == len(set(DAVIS17_TRAIN)) == 60
    assert len(DAVIS17_VAL) == len(set(DAVIS17_VAL)) == 30
    assert not set(DAVIS17_TRAIN) & set(DAVIS17_VAL)
    assert list(DAVIS17_VAL) == VAL_FROM_PAPER_RELEASE
    assert list(DAVIS17_TRAIN) == sorted(DAVIS17_TRAIN)
    assert {"bear", "walking", "varanus-cage", "dogs-scale"} <= set(DAVIS17_TRAIN)


# ----------------------------------------------------------------------- procedural


def test_procedural_shapes_counts_and_readonly() -> None:
    train = open_backgrounds(None, "train", size=24)
    evals = open_backgrounds(None, "eval", size=24)
    assert isinstance(train, VideoBank)
    assert len(train) == len(train.names) == PROCEDURAL_COUNTS["train"] == 60
    assert len(evals) == PROCEDURAL_COUNTS["eval"] == 30
    video = train.frames(0)
    _check_video(video, 24)
    assert 60 <= video.shape[0] <= 100
    assert not video.flags.writeable  # shared with the cache
    assert "procedural" in train.describe()


def test_procedural_is_deterministic_and_seeded() -> None:
    a = open_backgrounds(None, "train", size=16, seed=3)
    b = open_backgrounds(None, "train", size=16, seed=3)
    c = open_backgrounds(None, "train", size=16, seed=4)
    assert a.names == b.names
    for i in (0, 7):
        np.testing.assert_array_equal(a.frames(i), b.frames(i))
    assert not np.array_equal(a.frames(0)[:5], c.frames(0)[:5])
    assert not np.array_equal(a.frames(0)[:5], a.frames(1)[:5])


def test_procedural_train_and_eval_share_no_video() -> None:
    train = open_backgrounds(None, "train", size=8)
    evals = open_backgrounds(None, "eval", size=8)
    assert not set(train.names) & set(evals.names)

    def fingerprints(bank: VideoBank) -> set[str]:
        return {hashlib.sha1(bank.frames(i)[0].tobytes()).hexdigest() for i in range(len(bank))}

    train_prints, eval_prints = fingerprints(train), fingerprints(evals)
    assert len(train_prints) == len(train) and len(eval_prints) == len(evals)
    assert not train_prints & eval_prints


def test_procedural_looks_like_natural_video() -> None:
    bank = open_backgrounds(None, "eval", size=64, num_videos=3)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert _neighbour_correlation(noise) < 0.1
    for i in range(len(bank)):
        video = bank.frames(i).astype(np.int16)
        # Spatial structure and many colours: smooth locally, varied globally.
        assert _neighbour_correlation(bank.frames(i)[0]) > 0.8
        quantised = (bank.frames(i)[0] // 32).reshape(-1, 3)
        assert len(np.unique(quantised, axis=0)) >= 25
        assert video[0].std() > 25
        # It moves, coherently: consecutive frames close, distant frames far apart.
        step = np.abs(np.diff(video, axis=0)).mean(axis=(1, 2, 3))
        assert step.min() > 0.5
        far = np.abs(video[-1] - video[0]).mean()
        assert far > 3 * step.mean()


# ----------------------------------------------------------------------- num_videos


def test_num_videos_keeps_first_n_and_caps_at_all() -> None:
    full = open_backgrounds(None, "train", size=8)
    four = open_backgrounds(None, "train", num_videos=4, size=8)
    assert four.names == full.names[:4]
    np.testing.assert_array_equal(four.frames(3), full.frames(3))
    many = open_backgrounds(None, "eval", num_videos=1000, size=8)
    assert len(many) == 30


# ----------------------------------------------------------------------- DAVIS folders


def _write_jpegs(folder: Path, colours: list[tuple[int, int, int]]) -> None:
    folder.mkdir(parents=True)
    for i, colour in enumerate(colours):
        Image.new("RGB", (24, 16), colour).save(folder / f"{i:05d}.jpg", quality=95)


@pytest.fixture
def davis(tmp_path: Path) -> Path:
    root = tmp_path / "DAVIS"
    frames = root / "JPEGImages" / "480p"
    for name in ("bear", "boat", "blackswan", "dog", "not-in-davis"):
        _write_jpegs(frames / name, [(200, 30, 30), (30, 200, 30), (30, 30, 200)])
    return root


def test_davis_split_membership(davis: Path) -> None:
    train = open_backgrounds(davis, "train", size=8)
    evals = open_backgrounds(davis, "eval", size=8)
    assert train.names == ["bear", "boat"]
    assert evals.names == ["blackswan", "dog"]
    assert train.kind == "davis" and str(davis) in train.describe()
    video = evals.frames(1)
    _check_video(video, 8)
    assert video.shape[0] == 3
    red = video[0].reshape(-1, 3).mean(axis=0)
    assert red[0] > 150 and red[1] < 80 and red[2] < 80
    assert video[2, :, :, 2].mean() > 150  # frames in file order
    # The 480p folder itself is accepted too.
    inner = open_backgrounds(davis / "JPEGImages" / "480p", "eval", size=8)
    assert inner.names == evals.names
    assert open_backgrounds(davis, "train", num_videos=1, size=8).names == ["bear"]


def test_davis_imagesets_files_win(davis: Path) -> None:
    sets = davis / "ImageSets" / "2017"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("boat\nblackswan\nmissing-video\n")
    assert open_backgrounds(davis, "train", size=8).names == ["blackswan", "boat"]
    assert open_backgrounds(davis, "eval", size=8).names == ["blackswan", "dog"]  # no val.txt


def test_davis_empty_split_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "DAVIS"
    _write_jpegs(root / "JPEGImages" / "480p" / "bear", [(1, 2, 3)])
    with pytest.raises(LaomError, match="eval") as info:
        open_backgrounds(root, "eval")
    assert str(root) in str(info.value) and "\n" not in str(info.value)


def test_davis_corrupt_frame_names_the_file(davis: Path) -> None:
    bad = davis / "JPEGImages" / "480p" / "dog" / "00001.jpg"
    bad.write_bytes(b"not a jpeg")
    bank = open_backgrounds(davis, "eval", size=8)
    with pytest.raises(LaomError, match="cannot decode") as info:
        bank.frames(bank.names.index("dog"))
    assert str(bad) in str(info.value)


# ----------------------------------------------------------------------- video folders


def _sha_rule(name: str) -> str:
    return "eval" if int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) % 3 == 0 else "train"


def _names_in(split: str, stem: str, suffix: str, count: int) -> list[str]:
    names = (f"{stem}{i}{suffix}" for i in range(1000))
    return [n for n in names if _sha_rule(n) == split][:count]


def test_stable_split_is_the_documented_sha1_rule() -> None:
    names = [f"video-{i}.mp4" for i in range(300)]
    assert [stable_split(n) for n in names] == [_sha_rule(n) for n in names]
    share = sum(stable_split(n) == "eval" for n in names) / len(names)
    assert 0.2 < share < 0.45


def test_folder_of_videos(tmp_path: Path) -> None:
    import imageio.v3 as iio

    root = tmp_path / "clips"
    root.mkdir()
    gif_name = _names_in("train", "clip", ".gif", 1)[0]
    mp4_name = _names_in("eval", "clip", ".mp4", 1)[0]
    seq_name = _names_in("eval", "seq", "", 1)[0]
    gif = np.zeros((4, 20, 30, 3), np.uint8)
    gif[..., 1] = np.array([100, 140, 180, 220], np.uint8)[:, None, None]  # brightening green
    iio.imwrite(root / gif_name, gif)
    mp4 = np.zeros((6, 32, 32, 3), np.uint8)
    mp4[..., 2] = np.linspace(0, 255, 6, dtype=np.uint8)[:, None, None]  # darkening to blue
    iio.imwrite(root / mp4_name, mp4, fps=10)
    seq = root / seq_name
    seq.mkdir()
    for number, level in ((1, 10), (2, 120), (10, 240)):  # natural order: 1, 2, 10
        Image.new("RGB", (10, 14), (level, level, level)).save(seq / f"f{number}.png")
    (root / "notes.txt").write_text("ignored")

    train = open_backgrounds(root, "train", size=16)
    evals = open_backgrounds(root, "eval", size=16)
    assert train.names == [gif_name]
    assert evals.names == sorted([mp4_name, seq_name])
    assert train.kind == evals.kind == "folder"

    g = train.frames(0)
    _check_video(g, 16)
    assert g.shape[0] == 4 and g[..., 0].max() < 20
    assert [round(f[..., 1].mean() / 10) for f in g] == [10, 14, 18, 22]
    m = evals.frames(evals.names.index(mp4_name))
    _check_video(m, 16)
    assert m.shape[0] == 6 and m[-1, ..., 2].mean() > m[0, ..., 2].mean() + 150
    s = evals.frames(evals.names.index(seq_name))
    _check_video(s, 16)
    assert [int(f.mean()) for f in s] == [10, 120, 240]

    # A video's split never changes when others are added.
    for name in _names_in("train", "extra", ".gif", 2) + _names_in("eval", "extra", ".gif", 2):
        iio.imwrite(root / name, gif)
    assert set(train.names) <= set(open_backgrounds(root, "train", size=16).names)
    assert set(evals.names) <= set(open_backgrounds(root, "eval", size=16).names)


def test_folder_with_one_split_empty(tmp_path: Path) -> None:
    import imageio.v3 as iio

    iio.imwrite(
        tmp_path / _names_in("train", "only", ".gif", 1)[0], np.zeros((2, 8, 8, 3), np.uint8)
    )
    assert len(open_backgrounds(tmp_path, "train", size=4)) == 1
    with pytest.raises(LaomError, match="add more videos") as info:
        open_backgrounds(tmp_path, "eval")
    assert str(tmp_path) in str(info.value)


def test_corrupt_video_names_the_file(tmp_path: Path) -> None:
    name = _names_in("train", "broken", ".mp4", 1)[0]
    (tmp_path / name).write_bytes(b"\x00garbage" * 20)
    bank = open_backgrounds(tmp_path, "train", size=8)
    with pytest.raises(LaomError, match="cannot decode video") as info:
        bank.frames(0)
    assert str(tmp_path / name) in str(info.value) and "\n" not in str(info.value)


# ----------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("setup", "kwargs", "expected"),
    [
        ("missing", {}, "does not exist"),
        ("file", {}, "is a file"),
        ("empty", {}, "has no videos"),
        ("text-only", {}, "has no videos"),
        ("loose-images", {}, "loose images"),
        ("empty", {"split": "test"}, "unknown split"),
        ("empty", {"size": 0}, "size"),
        ("empty", {"num_videos": 0}, "num_videos"),
    ],
)
def test_bad_input_raises_one_line_naming_the_path(
    tmp_path: Path, setup: str, kwargs: dict, expected: str
) -> None:
    target = tmp_path / "bg"
    if setup == "file":
        target.write_bytes(b"x")
    elif setup != "missing":
        target.mkdir()
    if setup == "text-only":
        (target / "readme.txt").write_text("no videos here")
    if setup == "loose-images":
        Image.new("RGB", (4, 4)).save(target / "0001.png")
    with pytest.raises(LaomError, match=expected) as info:
        open_backgrounds(target, **kwargs)
    message = str(info.value)
    assert str(target) in message and "\n" not in message


def test_bad_procedural_arguments() -> None:
    with pytest.raises(LaomError, match="procedural.*unknown split"):
        open_backgrounds(None, "val")
    with pytest.raises(LaomError, match="procedural.*size"):
        open_backgrounds(None, size=-3)
    with pytest.raises(LaomError, match="procedural.*size"):
        open_backgrounds(None, size=2.5)  # type: ignore[arg-type]
    assert len(open_backgrounds(None, num_videos=np.int64(2), size=np.int64(4))) == 2


# ----------------------------------------------------------------------- caching


def test_lru_cache_respects_its_byte_bound() -> None:
    probe = open_backgrounds(None, "train", size=8, num_videos=5)
    sizes = [probe.frames(i).nbytes for i in range(5)]

    # Room for video 0 plus one of 1 or 2: touching 0 again makes 1 the one to go.
    bound = sizes[0] + max(sizes[1], sizes[2])
    bank = open_backgrounds(None, "train", size=8, num_videos=5, cache_bytes=bound)
    zero, one = bank.frames(0), bank.frames(1)
    assert bank.frames(0) is zero and bank.frames(1) is one
    bank.frames(0)
    bank.frames(2)
    assert bank.cached_bytes <= bound
    assert bank.frames(0) is zero
    assert bank.frames(1) is not one  # evicted, decoded again
    np.testing.assert_array_equal(bank.frames(1), one)

    small = open_backgrounds(None, "train", size=8, num_videos=5, cache_bytes=max(sizes))
    for i in [0, 1, 2, 3, 4, 2, 0, 4]:
        np.testing.assert_array_equal(small.frames(i), probe.frames(i))
        assert small.cached_bytes <= max(sizes)
    with pytest.raises(IndexError):
        small.frames(5)

    uncached = open_backgrounds(None, "train", size=8, num_videos=2, cache_bytes=0)
    uncached.frames(0)
    assert uncached.cached_bytes == 0


def test_bank_pickles_without_its_cache() -> None:
    bank = open_backgrounds(None, "eval", size=8, num_videos=2)
    video = bank.frames(1)
    clone = pickle.loads(pickle.dumps(bank))
    assert clone.cached_bytes == 0 and clone.names == bank.names
    np.testing.assert_array_equal(clone.frames(1), video)
