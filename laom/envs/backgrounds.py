"""Background videos for the Distracting Control Suite's skybox.

The paper's distractor is natural video (DAVIS 2017) painted onto the skybox, a new
video and start frame every episode, with the 60 DAVIS *train* videos seen while
collecting data and the 30 *val* videos held out for evaluation. Whether a latent
action model survives distractors depends on that hold-out being real, so every
source here yields two disjoint splits, ``"train"`` and ``"eval"``.

:func:`open_backgrounds` picks the source from ``path``:

* **A DAVIS-2017 folder** (the root holding ``JPEGImages/480p/<video>/*.jpg``, or that
  ``480p`` folder itself). ``"train"`` is the official DAVIS-2017 train list and
  ``"eval"`` the val list, embedded below so nothing but the JPEGs is needed; a
  ``ImageSets/2017/{train,val}.txt`` next to them takes precedence. Listed videos that
  are missing on disk are skipped.
* **Any other folder of videos**: video files (.mp4 .gif .webm .avi .mov .mkv) and/or
  subfolders of frames (.jpg .jpeg .png, in natural name order so ``f2`` precedes
  ``f10``). A video belongs to ``"eval"`` iff the first 8 hex digits of the SHA-1 of its
  name (file name with extension, or subfolder name), read as an integer, are divisible
  by 3, so about a third is held out and a video never changes split when others are
  added or removed (Python's ``hash()`` is salted per process, so it cannot be used).
* **None**: procedural videos, needing no download: 60 train and 30 eval videos drawn
  from separate random streams. Each is a drifting multi-colour plasma seen through a
  slowly panning and zooming camera, with several moving, rotating, textured shapes
  occluding each other on top, because a distractor that is static, single-coloured
  or pixel noise would be far easier to ignore than natural video and would make the
  experiments look better than they are.

Within a split videos are in sorted name order and ``num_videos`` keeps the first N,
which is how the DCS builds its easy (4), medium (8) and hard (all) settings.

Frames are resized to ``size x size`` (the whole frame, aspect not kept, as a texture
filling a skybox face) with bilinear filtering. Videos are decoded on first use and
kept in an LRU cache bounded in bytes: an environment needs one video per episode,
and all of DAVIS at full resolution would take gigabytes.
"""

from __future__ import annotations

import hashlib
import math
import operator
import os
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from laom.errors import LaomError

# Official DAVIS-2017 trainval split (ImageSets/2017/train.txt and val.txt).
DAVIS17_TRAIN: tuple[str, ...] = (
    "bear", "bmx-bumps", "boat", "boxing-fisheye", "breakdance-flare", "bus",
    "car-turn", "cat-girl", "classic-car", "color-run", "crossing", "dance-jump",
    "dancing", "disc-jockey", "dog-agility", "dog-gooses", "dogs-scale", "drift-turn",
    "drone", "elephant", "flamingo", "hike", "hockey", "horsejump-low",
    "kid-football", "kite-walk", "koala", "lady-running", "lindy-hop", "longboard",
    "lucia", "mallard-fly", "mallard-water", "miami-surf", "motocross-bumps",
    "motorbike", "night-race", "paragliding", "planes-water", "rallye", "rhino",
    "rollerblade", "schoolgirls", "scooter-board", "scooter-gray", "sheep",
    "skate-park", "snowboard", "soccerball", "stroller", "stunt", "surf", "swing",
    "tennis", "tractor-sand", "train", "tuk-tuk", "upside-down", "varanus-cage",
    "walking",
)  # fmt: skip
DAVIS17_VAL: tuple[str, ...] = (
    "bike-packing", "blackswan", "bmx-trees", "breakdance", "camel", "car-roundabout",
    "car-shadow", "cows", "dance-twirl", "dog", "dogs-jump", "drift-chicane",
    "drift-straight", "goat", "gold-fish", "horsejump-high", "india", "judo",
    "kite-surf", "lab-coat", "libby", "loading", "mbike-trick", "motocross-jump",
    "paragliding-launch", "parkour", "pigs", "scooter-black", "shooting", "soapbox",
)  # fmt: skip

SPLITS = ("train", "eval")
VIDEO_EXTENSIONS = (".mp4", ".gif", ".webm", ".avi", ".mov", ".mkv")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
# How many procedural videos each split has (the DAVIS-2017 counts).
PROCEDURAL_COUNTS = {"train": 60, "eval": 30}
DEFAULT_CACHE_BYTES = 512 * 2**20
# Longest video kept: 1000-step episodes ping-pong through it, so more frames than
# this add memory and decoding time without adding variety.
DEFAULT_MAX_FRAMES = 1000

_DAVIS_SPLIT_FILES = {"train": "train.txt", "eval": "val.txt"}
_EVAL_MODULUS = 3
_PROCEDURAL_STREAM = 0x1A0B_BAC6  # keeps these streams apart from other users of `seed`


@dataclass(frozen=True)
class _Entry:
    """How to produce one video; plain data so a bank pickles into worker processes."""

    name: str
    kind: str  # "images" (folder of frames), "video" (file) or "procedural"
    location: str = ""  # folder or file path; empty for procedural
    seed: int = 0
    stream: int = 0
    index: int = 0


class VideoBank:
    """The videos of one split, decoded lazily and cached with an LRU bound in bytes.

    ``frames(i)`` returns a read-only array shared with the cache, so that handing the
    same video to many episodes costs no copies; copy it before modifying it.
    """

    def __init__(
        self,
        entries: list[_Entry],
        *,
        kind: str,
        source: str,
        split: str,
        size: int,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        max_frames: int | None = DEFAULT_MAX_FRAMES,
    ) -> None:
        self._entries = list(entries)
        self.names: list[str] = [e.name for e in self._entries]
        self.kind = kind  # "davis", "folder" or "procedural"
        self.source = source  # the folder, or "procedural (seed=N)"
        self.split = split
        self.size = size
        self.cache_bytes = cache_bytes
        self.max_frames = max_frames
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"VideoBank({self.describe()})"

    def describe(self) -> str:
        """One line saying where the videos come from, for logs and error messages."""
        label = {"davis": "DAVIS-2017", "folder": "video folder", "procedural": "procedural"}
        where = "" if self.kind == "procedural" else f" {self.source}"
        return (
            f"{label.get(self.kind, self.kind)}{where}: {self.split} split, "
            f"{len(self)} videos at {self.size}x{self.size}"
        )

    @property
    def cached_bytes(self) -> int:
        """Bytes of decoded frames currently held (never above ``cache_bytes``)."""
        return sum(a.nbytes for a in self._cache.values())

    def clear_cache(self) -> None:
        self._cache.clear()

    def frames(self, index: int) -> np.ndarray:
        """Video ``index`` as uint8 ``[T, size, size, 3]`` (T >= 1), C-contiguous, read-only."""
        n = len(self._entries)
        index = operator.index(index)
        if not -n <= index < n:
            raise IndexError(f"video index {index} out of range for {n} videos")
        index %= n
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        video = _decode(self._entries[index], self.size, self.max_frames)
        video.flags.writeable = False
        if video.nbytes <= self.cache_bytes:
            self._cache[index] = video
            used = self.cached_bytes
            while used > self.cache_bytes:
                _, dropped = self._cache.popitem(last=False)
                used -= dropped.nbytes
        return video

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()  # decoded frames are cheap to redo, costly to ship
        return state


def open_backgrounds(
    path: str | os.PathLike | None,
    split: str = "train",
    num_videos: int | None = None,
    size: int = 128,
    seed: int = 0,
    *,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    max_frames: int | None = DEFAULT_MAX_FRAMES,
) -> VideoBank:
    """The ``split`` videos found at ``path`` (None: procedural), first ``num_videos`` of them.

    Asking for more videos than the split has gives all of them, as in the DCS. ``seed``
    only matters for procedural videos; for folders the DCS fixes the list and the
    environment draws from it with its own RNG. Videos longer than ``max_frames`` are
    cut there; ``cache_bytes`` bounds the decoded frames kept in memory.
    """
    where = "procedural backgrounds" if path is None else f"backgrounds {os.fspath(path)}"
    if split not in SPLITS:
        raise LaomError(f"{where}: unknown split {split!r}, expected 'train' or 'eval'")
    size = _integer(size, "size", where, minimum=1)
    seed = _integer(seed, "seed", where)
    cache_bytes = _integer(cache_bytes, "cache_bytes", where, minimum=0)
    if num_videos is not None:
        num_videos = _integer(num_videos, "num_videos", where, minimum=1, none_ok=True)
    if max_frames is not None:
        max_frames = _integer(max_frames, "max_frames", where, minimum=1, none_ok=True)

    if path is None:
        entries = _procedural_entries(split, seed)
        kind, source = "procedural", f"procedural (seed={seed})"
    else:
        # Every command takes this path as --backgrounds: its errors say so.
        root = Path(path).expanduser()
        if not root.exists():
            raise LaomError(f"--backgrounds {root}: does not exist; expected a folder of videos or DAVIS-2017")
        if not root.is_dir():
            raise LaomError(f"--backgrounds {root}: is a file; expected a folder of videos or DAVIS-2017")
        try:
            images_dir, sets_dir = _find_davis(root)
            if images_dir is not None:
                entries = _davis_entries(root, images_dir, sets_dir, split)
                kind = "davis"
            else:
                entries = _folder_entries(root, split)
                kind = "folder"
        except LaomError as exc:
            raise LaomError(f"--backgrounds {root}: {exc}") from None
        source = str(root)
    if num_videos is not None:
        entries = entries[:num_videos]
    return VideoBank(
        entries,
        kind=kind,
        source=source,
        split=split,
        size=size,
        cache_bytes=cache_bytes,
        max_frames=max_frames,
    )


def _integer(
    value: object, what: str, where: str, minimum: int | None = None, none_ok: bool = False
) -> int:
    """``value`` as an int (numpy integers welcome), or a one-line LaomError."""
    expected = "an integer" + (f" >= {minimum}" if minimum is not None else "")
    if none_ok:
        expected = "None or " + expected
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise LaomError(f"{where}: {what} must be {expected}, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise LaomError(f"{where}: {what} must be {expected}, got {value!r}")
    return number


def stable_split(name: str) -> str:
    """The split a folder video named ``name`` belongs to; fixed forever by its SHA-1."""
    digest = int(hashlib.sha1(name.encode("utf-8")).hexdigest()[:8], 16)
    return "eval" if digest % _EVAL_MODULUS == 0 else "train"


# --------------------------------------------------------------------------- sources


def _find_davis(root: Path) -> tuple[Path | None, Path | None]:
    """(frames folder, ImageSets/2017 folder) when ``root`` is DAVIS or its 480p folder."""
    if (root / "JPEGImages" / "480p").is_dir():
        return root / "JPEGImages" / "480p", root / "ImageSets" / "2017"
    resolved = root.resolve()
    if resolved.name == "480p" and resolved.parent.name == "JPEGImages":
        return root, resolved.parent.parent / "ImageSets" / "2017"
    return None, None


def _davis_entries(root: Path, images_dir: Path, sets_dir: Path | None, split: str) -> list[_Entry]:
    listed: tuple[str, ...] = DAVIS17_TRAIN if split == "train" else DAVIS17_VAL
    origin = "built-in DAVIS-2017 " + ("train" if split == "train" else "val") + " list"
    if sets_dir is not None:
        split_file = sets_dir / _DAVIS_SPLIT_FILES[split]
        if split_file.is_file():
            try:
                text = split_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise LaomError(f"cannot read DAVIS split file {split_file}: {err}") from err
            listed = tuple(line.strip() for line in text.splitlines() if line.strip())
            origin = str(split_file)
    names = sorted({n for n in listed if (images_dir / n).is_dir()})
    if not names:
        raise LaomError(
            f"DAVIS folder {root} has none of the {len(listed)} {split!r}-split videos of the "
            f"{origin} under {images_dir}: expected <video>/*.jpg folders"
        )
    return [_Entry(n, "images", str(images_dir / n)) for n in names]


def _folder_entries(root: Path, split: str) -> list[_Entry]:
    found: list[_Entry] = []
    loose_images = False
    nested_davis: Path | None = None
    try:
        children = sorted(os.scandir(root), key=lambda d: d.name)
    except OSError as err:
        raise LaomError(f"cannot list background folder {root}: {err}") from err
    for child in children:
        if child.name.startswith("."):
            continue
        suffix = os.path.splitext(child.name)[1].lower()
        if child.is_dir():
            if _has_image(child.path):
                found.append(_Entry(child.name, "images", child.path))
            elif (Path(child.path) / "JPEGImages" / "480p").is_dir():
                nested_davis = Path(child.path)
        elif suffix in VIDEO_EXTENSIONS:
            found.append(_Entry(child.name, "video", child.path))
        elif suffix in IMAGE_EXTENSIONS:
            loose_images = True
    if not found:
        hint = ""
        if nested_davis is not None:
            hint = f" (did you mean the DAVIS folder {nested_davis}?)"
        elif loose_images:
            hint = " (it holds loose images: put each video's frames in a subfolder of its own)"
        raise LaomError(
            f"background folder {root} has no videos: expected video files "
            f"({' '.join(VIDEO_EXTENSIONS)}), subfolders of {'/'.join(IMAGE_EXTENSIONS)} frames, "
            f"or a DAVIS-2017 root with JPEGImages/480p{hint}"
        )
    chosen = [e for e in found if stable_split(e.name) == split]
    if not chosen:
        raise LaomError(
            f"background folder {root} has {len(found)} videos but none in the {split!r} split "
            f"(a video is 'eval' when the first 8 hex digits of the SHA-1 of its name are "
            f"divisible by {_EVAL_MODULUS}, "
            "about 1 in 3): add more videos"
        )
    return sorted(chosen, key=lambda e: e.name)


def _procedural_entries(split: str, seed: int) -> list[_Entry]:
    stream = SPLITS.index(split) + 1
    return [
        _Entry(f"procedural-{split}-{i:03d}", "procedural", seed=seed, stream=stream, index=i)
        for i in range(PROCEDURAL_COUNTS[split])
    ]


def _has_image(folder: str) -> bool:
    try:
        with os.scandir(folder) as it:
            return any(
                not d.name.startswith(".")
                and os.path.splitext(d.name)[1].lower() in IMAGE_EXTENSIONS
                for d in it
            )
    except OSError:
        return False


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


# --------------------------------------------------------------------------- decoding


def _decode(entry: _Entry, size: int, max_frames: int | None) -> np.ndarray:
    if entry.kind == "procedural":
        video = procedural_video(entry.seed, entry.stream, entry.index, size)
        return (
            video[:max_frames].copy()
            if max_frames is not None and len(video) > max_frames
            else video
        )
    if entry.kind == "images":
        return _decode_images(Path(entry.location), size, max_frames)
    return _decode_video(Path(entry.location), size, max_frames)


def _to_rgb_square(frame: np.ndarray, size: int, source: Path) -> np.ndarray:
    from PIL import Image

    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] not in (1, 3, 4) or frame.size == 0:
        raise LaomError(
            f"cannot decode video {source}: frame of shape {frame.shape} is not an image"
        )
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    frame = frame[:, :, :3]
    if frame.dtype != np.uint8:
        scale = (
            255.0 if np.issubdtype(frame.dtype, np.floating) else 255.0 / np.iinfo(frame.dtype).max
        )
        frame = np.clip(frame.astype(np.float64) * scale + 0.5, 0, 255).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(frame))
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image)


def _decode_images(folder: Path, size: int, max_frames: int | None) -> np.ndarray:
    from PIL import Image

    try:
        files = sorted(
            (
                d.name
                for d in os.scandir(folder)
                if not d.name.startswith(".")
                and os.path.splitext(d.name)[1].lower() in IMAGE_EXTENSIONS
            ),
            key=_natural_key,
        )
    except OSError as err:
        raise LaomError(f"cannot list video frames in {folder}: {err}") from err
    if not files:
        raise LaomError(
            f"video folder {folder} has no frames: expected {'/'.join(IMAGE_EXTENSIONS)} files"
        )
    if max_frames is not None:
        files = files[:max_frames]
    out = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for i, name in enumerate(files):
        file = folder / name
        try:
            with Image.open(file) as image:
                # JPEG can decode straight at 1/2, 1/4 or 1/8 scale: much faster for 480p.
                image.draft("RGB", (size, size))
                rgb = image.convert("RGB")
                if rgb.size != (size, size):
                    rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
                out[i] = np.asarray(rgb)
        except Exception as err:  # PIL raises OSError, ValueError, DecompressionBombError...
            raise LaomError(f"cannot decode frame {file}: {_first_line(err)}") from err
    return out


def _decode_video(file: Path, size: int, max_frames: int | None) -> np.ndarray:
    import imageio.v3 as iio

    frames: list[np.ndarray] = []
    try:
        # imopen as a context (not imiter) so ffmpeg's pipes are closed even on early exit.
        with iio.imopen(file, "r") as handle:
            for frame in handle.iter():
                frames.append(_to_rgb_square(np.asarray(frame), size, file))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except LaomError:
        raise
    except Exception as err:  # imageio's plugins raise many exception types
        raise LaomError(f"cannot decode video {file}: {_first_line(err)}") from err
    if not frames:
        raise LaomError(f"cannot decode video {file}: it has no frames")
    return np.ascontiguousarray(np.stack(frames))


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


# --------------------------------------------------------------------------- procedural


def procedural_video(seed: int, stream: int, index: int, size: int = 128) -> np.ndarray:
    """A synthetic natural-looking video, uint8 ``[T, size, size, 3]`` with 60 <= T <= 100.

    Everything is drawn from ``(seed, stream, index)``, and the scene is defined in
    resolution-free coordinates, so the same arguments give the same video and another
    ``size`` gives the same scene resampled. Distinct streams never share a video.
    """
    rng = np.random.default_rng([_PROCEDURAL_STREAM, stream, index, seed & (2**64 - 1)])
    n = int(rng.integers(60, 101))
    t = np.arange(n, dtype=np.float32)

    # Camera: a slow pan and zoom over the whole scene, as hand-held footage has.
    # A frame coordinate f in [-0.5, 0.5] sees the world point f * zoom + pan.
    zoom = (1.0 + 0.12 * np.sin(rng.uniform(0.02, 0.06) * t + rng.uniform(0, 2 * np.pi))).astype(
        np.float32
    )
    pan = np.stack(
        [0.08 * np.sin(rng.uniform(0.015, 0.05) * t + rng.uniform(0, 2 * np.pi)) for _ in range(2)]
    ).astype(np.float32)  # [2 (x, y), n]
    coord = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    wx = coord[None, :] * zoom[:, None] + pan[0][:, None]  # [n, W] world x per column
    wy = coord[None, :] * zoom[:, None] + pan[1][:, None]  # [n, H] world y per row

    canvas = _plasma(rng, t, wx, wy)  # [n, H, W, 3] uint8
    _draw_shapes(rng, canvas, t, zoom, pan, size)
    return canvas


def _plasma(rng: np.random.Generator, t: np.ndarray, wx: np.ndarray, wy: np.ndarray) -> np.ndarray:
    """Background: drifting sinusoid interference mapped through a random cyclic palette.

    A plane wave sin(kx*x + ky*y + w*t + p) splits into sin(a)cos(b) + cos(a)sin(b) with
    a depending on the column and b on the row, so the sum of all waves in a frame is
    one small matrix product: only 1-D sines are evaluated and BLAS does the rest.
    """
    n, width = wx.shape
    height = wy.shape[1]
    waves = 5
    by_column = np.empty((n, 2 * waves, width), dtype=np.float32)
    by_row = np.empty((n, height, 2 * waves), dtype=np.float32)
    for k in range(waves):
        freq = rng.uniform(3.0, 14.0)
        angle = rng.uniform(0, 2 * np.pi)
        speed = float(rng.choice([-1.0, 1.0])) * rng.uniform(0.03, 0.12)
        phase = (rng.uniform(0, 2 * np.pi) + speed * t).astype(np.float32)  # [n]
        a = np.float32(freq * math.cos(angle)) * wx + phase[:, None]  # [n, W]
        b = np.float32(freq * math.sin(angle)) * wy  # [n, H]
        weight = np.float32(rng.uniform(0.5, 1.0))
        by_column[:, 2 * k] = np.sin(a) * weight
        by_column[:, 2 * k + 1] = np.cos(a) * weight
        by_row[:, :, 2 * k] = np.cos(b)
        by_row[:, :, 2 * k + 1] = np.sin(b)
    field = np.matmul(by_row, by_column)  # [n, H, W]
    # One radial ripple from a wandering centre breaks the lattice look of plane waves.
    cx = rng.uniform(-0.4, 0.4) + 0.15 * np.sin(rng.uniform(0.02, 0.06) * t)
    cy = rng.uniform(-0.4, 0.4) + 0.15 * np.cos(rng.uniform(0.02, 0.06) * t)
    dx2 = np.square(wx - cx[:, None].astype(np.float32))
    dy2 = np.square(wy - cy[:, None].astype(np.float32))
    ripple = dx2[:, None, :] + dy2[:, :, None]
    np.sqrt(ripple, out=ripple)
    ripple *= np.float32(rng.uniform(8.0, 20.0))
    ripple -= (0.1 * t)[:, None, None].astype(np.float32)
    np.sin(ripple, out=ripple)
    field += ripple

    # Palette position: a few colour cycles across the field, slowly drifting in time.
    bands = np.float32(rng.uniform(0.12, 0.3) * 256)
    drift = (rng.uniform(0.002, 0.008) * 256 * t).astype(np.float32)
    field *= bands
    field += drift[:, None, None]
    idx = field.astype(np.int32)
    idx &= 255
    return _palette(rng)[idx]


def _palette(rng: np.random.Generator) -> np.ndarray:
    """256 smoothly cyclic colours through 4-6 random, mostly saturated anchors."""
    anchors = int(rng.integers(4, 7))
    hues = (rng.uniform(0, 1) + np.sort(rng.uniform(0, 1, anchors))) % 1.0
    colours = _hsv_to_rgb(hues, rng.uniform(0.35, 1.0, anchors), rng.uniform(0.15, 1.0, anchors))
    pos = np.arange(256) / 256.0 * anchors
    lo = np.floor(pos).astype(int)
    frac = pos - lo
    frac = frac * frac * (3 - 2 * frac)  # smoothstep: no visible kinks at the anchors
    rgb = colours[lo % anchors] * (1 - frac[:, None]) + colours[(lo + 1) % anchors] * frac[:, None]
    return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    h, s, v = np.broadcast_arrays(np.asarray(h, float), np.asarray(s, float), np.asarray(v, float))
    k = (np.array([5.0, 3.0, 1.0]) + h[..., None] * 6.0) % 6.0
    return v[..., None] - v[..., None] * s[..., None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _draw_shapes(
    rng: np.random.Generator,
    canvas: np.ndarray,
    t: np.ndarray,
    zoom: np.ndarray,
    pan: np.ndarray,
    size: int,
) -> None:
    """Paint 5-9 moving, rotating, textured shapes over ``canvas`` in place, back to front.

    Each shape is rendered only inside a square window that follows it, for all frames
    at once, then blended into a padded copy of the canvas so shapes can enter and
    leave the frame.
    """
    n = len(t)
    count = int(rng.integers(5, 10))
    radii = rng.uniform(0.06, 0.2, count)
    max_half = int(math.ceil(float(radii.max()) * 1.1 / float(zoom.min()) * size)) + 2
    # Centres stay within +-0.6 of the world, the pan within +-0.08: the farthest a
    # window can reach beyond the frame edge sets the padding.
    reach = (0.6 + float(np.abs(pan).max())) / float(zoom.min()) - 0.5
    pad = max_half + int(math.ceil(max(reach, 0.0) * size)) + 2
    padded = np.zeros((n, size + 2 * pad, size + 2 * pad, 3), dtype=np.uint8)
    padded[:, pad : pad + size, pad : pad + size] = canvas

    for radius in radii:
        # World motion: drift plus wobble, reflected to stay roughly within view.
        centre = []
        for _ in range(2):
            path = (
                rng.uniform(-0.5, 0.5)
                + rng.choice([-1.0, 1.0]) * rng.uniform(0.002, 0.012) * t
                + rng.uniform(0.0, 0.08) * np.sin(rng.uniform(0.05, 0.2) * t + rng.uniform(0, 6.3))
            )
            centre.append(_reflect(path, -0.6, 0.6))
        world_r = radius * (1.0 + 0.08 * np.sin(rng.uniform(0.03, 0.1) * t + rng.uniform(0, 6.3)))
        angle = rng.uniform(0, 2 * np.pi) + rng.choice([-1.0, 1.0]) * rng.uniform(0.01, 0.07) * t

        # Frame position in pixels of the padded canvas, and the window around it.
        cx = ((centre[0] - pan[0]) / zoom + 0.5) * size + pad
        cy = ((centre[1] - pan[1]) / zoom + 0.5) * size + pad
        half = int(math.ceil(radius * 1.1 / float(zoom.min()) * size)) + 1
        x0 = np.floor(cx).astype(int) - half
        y0 = np.floor(cy).astype(int) - half
        offs = np.arange(2 * half + 1)
        # Pixel-centre offsets from the shape centre, in world units: [n, w].
        dxw = ((x0[:, None] + offs + 0.5 - cx[:, None]) / size * zoom[:, None]).astype(np.float32)
        dyw = ((y0[:, None] + offs + 0.5 - cy[:, None]) / size * zoom[:, None]).astype(np.float32)
        cos_a = np.cos(angle).astype(np.float32)[:, None, None]
        sin_a = np.sin(angle).astype(np.float32)[:, None, None]
        u = dxw[:, None, :] * cos_a + dyw[:, :, None] * sin_a  # [n, w, w]
        v = dyw[:, :, None] * cos_a - dxw[:, None, :] * sin_a
        r_now = world_r.astype(np.float32)[:, None, None]

        alpha = _shape_alpha(rng, u, v, r_now, size / zoom[:, None, None])
        tex = _texture(rng, u, v, r_now, t)
        hue = rng.uniform(0, 1)
        c1 = (_hsv_to_rgb(hue, rng.uniform(0.4, 1.0), rng.uniform(0.5, 1.0)) * 255).astype(
            np.float32
        )
        c2 = _hsv_to_rgb(
            (hue + rng.uniform(0.25, 0.75)) % 1, rng.uniform(0.3, 1.0), rng.uniform(0.1, 0.9)
        )
        c2 = (c2 * 255).astype(np.float32)
        shade = 1.0 - rng.uniform(0.0, 0.4) * np.minimum((u * u + v * v) / (r_now * r_now), 1.0)
        colour = (c1 + (c2 - c1) * tex[..., None]) * shade[..., None]

        # Per-frame slicing beats one fancy-indexed gather/scatter by ~20x here.
        w = 2 * half + 1
        views = [padded[i, y0[i] : y0[i] + w, x0[i] : x0[i] + w] for i in range(n)]
        below = np.stack(views).astype(np.float32)
        below += (colour.astype(np.float32) - below) * alpha[..., None]
        blended = (below + 0.5).astype(np.uint8)
        for i in range(n):
            views[i][...] = blended[i]

    canvas[...] = padded[:, pad : pad + size, pad : pad + size]


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    span = hi - lo
    y = np.mod(x - lo, 2 * span)
    return lo + np.where(y > span, 2 * span - y, y)


def _shape_alpha(
    rng: np.random.Generator, u: np.ndarray, v: np.ndarray, r: np.ndarray, px_per_unit: np.ndarray
) -> np.ndarray:
    """Coverage in [0, 1] with a one-pixel soft edge, for a random outline."""
    kind = int(rng.integers(5))
    if kind == 0:  # disc
        dist = r - np.sqrt(u * u + v * v)
    elif kind == 1:  # ellipse (approximate distance: radial scaling)
        squash = np.float32(rng.uniform(0.45, 0.8))
        rho = np.sqrt(u * u + (v / squash) ** 2)
        dist = (r - rho) * squash
    elif kind == 2:  # square, corners on the radius
        dist = r / np.float32(math.sqrt(2.0)) - np.maximum(np.abs(u), np.abs(v))
    elif kind == 3:  # ring
        rho = np.sqrt(u * u + v * v)
        inner = np.float32(rng.uniform(0.45, 0.7))
        dist = np.minimum(r - rho, rho - inner * r)
    else:  # blob: radius wobbling with the angle
        lobes = int(rng.integers(3, 7))
        phase = rng.uniform(0, 2 * np.pi)
        bound = r * (0.78 + 0.2 * np.sin(lobes * np.arctan2(v, u) + phase))
        dist = bound - np.sqrt(u * u + v * v)
    return np.clip(dist * px_per_unit + 0.5, 0.0, 1.0).astype(np.float32)


def _texture(
    rng: np.random.Generator, u: np.ndarray, v: np.ndarray, r: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """Two-colour mix factor in [0, 1]: stripes, checkers, rings, spots or a gradient."""
    kind = int(rng.integers(5))
    period = np.float32(rng.uniform(0.04, 0.1))
    k = np.float32(2 * np.pi) / period
    scroll = (rng.uniform(-0.25, 0.25) * t).astype(np.float32)[:, None, None]
    if kind == 0:
        wave = np.sin(k * u + scroll)
    elif kind == 1:
        wave = np.sin(k * u + scroll) * np.sin(k * v) * 2.0
    elif kind == 2:
        wave = np.sin(k * np.sqrt(u * u + v * v) - scroll)
    elif kind == 3:
        k2 = np.float32(k * rng.uniform(0.6, 1.4))
        wave = np.sin(k * u + scroll) + np.sin(k2 * v) + np.sin(0.7 * k * (u + v))
    else:
        return np.clip(0.5 + 0.5 * u / r, 0.0, 1.0)
    return 0.5 + 0.5 * np.tanh(2.5 * wave)
