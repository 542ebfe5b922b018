"""The three Distracting Control Suite distractors: camera, colour and background video.

Each distractor is a small state machine with ``reset(rng)`` (new episode) and
``step(rng)`` (one control step), driven by a generator the environment owns, so an
episode is a pure function of its seed. Parameters follow the Distracting Control Suite
(Stone et al., 2021) as summarised in paper-facts §5; the rendering side lives in
:mod:`laom.envs.render`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from laom.errors import LaomError

# Ground-plane alpha when a background video is shown: the floor stays opaque for the
# locomotion domains the paper uses, is invisible for reacher and translucent elsewhere.
GROUND_ALPHA = {"walker": 1.0, "cheetah": 1.0, "hopper": 1.0, "reacher": 0.0}
DEFAULT_GROUND_ALPHA = 0.3
# Domains whose camera may go below the agent's horizon (the suite limits the others
# to the upper quadrant so the camera never looks from under the floor).
FREE_ELEVATION_DOMAINS = {"reacher"}


@dataclass(frozen=True)
class BackgroundConfig:
    """Natural (or procedural) video behind the agent instead of the skybox."""

    enabled: bool = False
    num_videos: int | None = None  # first N videos of the split; None = all
    dynamic: bool = True  # play the video (ping-pong) instead of one still frame
    ground_alpha: float | None = None  # None = per-domain default (GROUND_ALPHA)


@dataclass(frozen=True)
class CameraConfig:
    """Camera moving on a sphere around the agent, with roll and zoom."""

    scale: float = 0.0
    dynamic: bool = True


@dataclass(frozen=True)
class ColorConfig:
    """Per-material colour offsets, drifting during the episode when dynamic."""

    scale: float = 0.0
    dynamic: bool = True


@dataclass(frozen=True)
class DistractorConfig:
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    color: ColorConfig = field(default_factory=ColorConfig)

    @property
    def any(self) -> bool:
        return self.background.enabled or self.camera.scale > 0 or self.color.scale > 0


# difficulty -> (scale of camera and colour, number of videos or None for all)
DIFFICULTIES: dict[str, tuple[float, int | None] | None] = {
    "vanilla": None,
    "easy": (0.1, 4),
    "medium": (0.2, 8),
    "hard": (0.3, None),
    # The paper's setting: mild camera/colour changes but every training video.
    "scale_easy_video_hard": (0.1, None),
}


def distractor_config(
    difficulty: str,
    dynamic: bool = True,
    *,
    camera_scale: float | None = None,
    color_scale: float | None = None,
    background: bool | None = None,
    num_videos: int | None = None,
    ground_alpha: float | None = None,
) -> DistractorConfig:
    """A difficulty preset, with any distractor switched or rescaled on its own.

    ``camera_scale=0`` turns the camera off, ``background=False`` the video, and a
    vanilla preset with ``color_scale=0.2`` gives colour changes alone.
    """
    if difficulty not in DIFFICULTIES:
        raise LaomError(
            f"unknown difficulty {difficulty!r}; expected one of: {', '.join(DIFFICULTIES)}"
        )
    preset = DIFFICULTIES[difficulty]
    scale, videos = preset if preset is not None else (0.0, None)
    cfg = DistractorConfig(
        background=BackgroundConfig(enabled=preset is not None, num_videos=videos, dynamic=dynamic),
        camera=CameraConfig(scale=scale, dynamic=dynamic),
        color=ColorConfig(scale=scale, dynamic=dynamic),
    )
    if camera_scale is not None:
        _check_scale("camera_scale", camera_scale)
        cfg = replace(cfg, camera=replace(cfg.camera, scale=float(camera_scale)))
    if color_scale is not None:
        _check_scale("color_scale", color_scale)
        cfg = replace(cfg, color=replace(cfg.color, scale=float(color_scale)))
    bg = cfg.background
    if background is not None:
        bg = replace(bg, enabled=bool(background))
    if num_videos is not None:
        if num_videos < 1:
            raise LaomError(f"num_videos={num_videos}: expected a positive number of videos")
        bg = replace(bg, num_videos=int(num_videos))
    if ground_alpha is not None:
        if not 0.0 <= ground_alpha <= 1.0:
            raise LaomError(f"ground_alpha={ground_alpha}: expected a value in [0, 1]")
        bg = replace(bg, ground_alpha=float(ground_alpha))
    return replace(cfg, background=bg)


def _check_scale(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise LaomError(f"{name}={value!r}: expected a number in [0, 1]")


class CameraShake:
    """Spherical camera motion around the point the camera looks at.

    The state is (azimuth, elevation, log-free zoom factor, roll) offsets from the
    task's own camera. Bounds: azimuth/elevation/roll within ±pi/2*scale, zoom in
    [1 - 0.5*scale, 1 + 1.5*scale]. Dynamic mode adds Gaussian velocity noise
    (std 0.1*scale for position, pi/300*scale for roll) with speed limits
    (0.4*scale, pi/50*scale) and bounces at the bounds.
    """

    def __init__(self, scale: float, dynamic: bool, upper_only: bool = True) -> None:
        self.scale = float(scale)
        self.dynamic = bool(dynamic)
        self.upper_only = upper_only
        s = self.scale
        half = math.pi / 2 * s
        # order: azimuth, elevation, zoom, roll
        self.low = np.array([-half, -half, 1 - 0.5 * s, -half])
        self.high = np.array([half, half, 1 + 1.5 * s, half])
        self.vel_std = np.array([0.1 * s, 0.1 * s, 0.1 * s, math.pi / 300 * s])
        self.vel_max = np.array([0.4 * s, 0.4 * s, 0.4 * s, math.pi / 50 * s])
        self.state = np.array([0.0, 0.0, 1.0, 0.0])
        self.vel = np.zeros(4)

    @property
    def active(self) -> bool:
        return self.scale > 0

    def reset(self, rng: np.random.Generator) -> None:
        self.state = rng.uniform(self.low, self.high) if self.active else np.array([0, 0, 1.0, 0])
        self.vel = np.zeros(4)

    def step(self, rng: np.random.Generator) -> None:
        if not (self.active and self.dynamic):
            return
        self.vel = np.clip(self.vel + rng.normal(0.0, self.vel_std), -self.vel_max, self.vel_max)
        nxt = self.state + self.vel
        out = (nxt < self.low) | (nxt > self.high)
        self.vel[out] *= -1.0  # bounce off the bounds
        self.state = np.clip(nxt, self.low, self.high)

    def apply(
        self, pos: np.ndarray, mat: np.ndarray, focus: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Move a camera pose (world pos, 3x3 axes as columns) around ``focus``.

        The orbit centre is the point on the optical axis nearest to ``focus`` (the
        tracked centre of mass), so zero offsets reproduce the task's camera exactly.
        """
        if not self.active:
            return pos, mat
        az, el, zoom, roll = self.state
        forward = -mat[:, 2]
        dist = max(float(np.dot(focus - pos, forward)), 0.1)
        centre = pos + dist * forward
        offset = pos - centre
        horiz = np.array([offset[0], offset[1], 0.0])
        hn = float(np.linalg.norm(horiz))
        rot = _rot_z(az)
        if hn > 1e-6:
            u = horiz / hn
            base_el = math.atan2(offset[2], hn)
            target_el = base_el + el
            if self.upper_only:
                target_el = min(max(target_el, 0.0), math.pi / 2 - 0.05)
            axis = np.cross(u, np.array([0.0, 0.0, 1.0]))
            rot = rot @ _rot_axis(axis, target_el - base_el)
        new_pos = centre + zoom * (rot @ offset)
        new_mat = rot @ mat
        if roll != 0.0:
            new_mat = _rot_axis(-new_mat[:, 2], roll) @ new_mat
        return new_pos, new_mat


def _rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_axis(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation about a (not necessarily unit) axis."""
    a = axis / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


class ColorJitter:
    """Material colours offset within ±scale of the originals (clipped to [0, 1]).

    Starts uniform in that box each episode; dynamic mode takes Gaussian steps of std
    0.03*scale per control step, clipped to the box.
    """

    def __init__(self, base_rgb: np.ndarray, scale: float, dynamic: bool) -> None:
        self.base = np.asarray(base_rgb, np.float64).copy()
        self.scale = float(scale)
        self.dynamic = bool(dynamic)
        self.low = np.clip(self.base - self.scale, 0.0, 1.0)
        self.high = np.clip(self.base + self.scale, 0.0, 1.0)
        self.rgb = self.base.copy()

    @property
    def active(self) -> bool:
        return self.scale > 0 and self.base.size > 0

    def reset(self, rng: np.random.Generator) -> None:
        if self.active:
            self.rgb = rng.uniform(self.low, self.high)

    def step(self, rng: np.random.Generator) -> None:
        if self.active and self.dynamic:
            noise = rng.normal(0.0, 0.03 * self.scale, self.rgb.shape)
            self.rgb = np.clip(self.rgb + noise, self.low, self.high)


class VideoPlayer:
    """Picks a random video and start frame per episode and plays it back and forth."""

    def __init__(self, bank, dynamic: bool) -> None:
        self.bank = bank
        self.dynamic = bool(dynamic)
        self.frames: np.ndarray | None = None
        self.video = -1  # which video of the bank plays (-1 before the first reset)
        self.index = 0
        self.direction = 1

    def reset(self, rng: np.random.Generator) -> None:
        video = int(rng.integers(len(self.bank)))
        self.video = video
        self.frames = self.bank.frames(video)
        self.index = int(rng.integers(len(self.frames)))
        self.direction = 1

    def step(self) -> None:
        if not self.dynamic or self.frames is None or len(self.frames) < 2:
            return
        nxt = self.index + self.direction
        if nxt < 0 or nxt >= len(self.frames):  # ping-pong at both ends
            self.direction = -self.direction
            nxt = self.index + self.direction
        self.index = nxt

    @property
    def frame(self) -> np.ndarray:
        assert self.frames is not None, "reset() first"
        return self.frames[self.index]
