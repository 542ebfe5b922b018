"""The Distracting Control Suite as a gymnasium environment over stacked pixels.

Observations are uint8 [H, W, 3 * frame_stack] (oldest frame first); the expert-facing
proprioceptive state rides along in ``info["state"]``. Everything random (the task's
initial state, the video, its start frame, camera and colour offsets and their noise)
comes from generators seeded by ``reset(seed=...)``, so the same seed and actions give
the same frames and states, in any process. :meth:`DistractingEnv.distractor_state` says
what the distractors were when the latest frame was rendered (``laom collect`` stores it
beside every frame, docs/distractors.md).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

from laom.envs.distractors import (
    DEFAULT_GROUND_ALPHA,
    FREE_ELEVATION_DOMAINS,
    GROUND_ALPHA,
    CameraShake,
    ColorJitter,
    DistractorConfig,
    VideoPlayer,
)
from laom.envs.render import RENDER_MODES, SceneRenderer, find_floor
from laom.envs.tasks import CAMERA_ID, action_bounds, flatten_state, load_dmc, parse_task
from laom.errors import LaomError


class DistractingEnv(gym.Env):
    """One dm_control task with DCS distractors, rendered from its default camera."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        task: str,
        distractors: DistractorConfig,
        background_bank=None,
        *,
        difficulty: str = "custom",
        split: str = "train",
        img_hw: int = 64,
        frame_stack: int = 3,
        seed: int = 0,
        render: str = "fast",
        camera_id: int | None = None,
        max_episode_steps: int | None = None,
    ) -> None:
        self.domain, self.task_name = parse_task(task)
        self.task = task
        self.difficulty = difficulty
        self.split = split
        self.img_hw = int(img_hw)
        self.frame_stack = int(frame_stack)
        self.distractors = distractors
        self.dynamic = bool(
            distractors.camera.dynamic and distractors.color.dynamic and distractors.background.dynamic
        )
        self.render_mode = "rgb_array"
        self.max_episode_steps = max_episode_steps
        if render not in RENDER_MODES:
            raise LaomError(f"render={render!r}: expected one of {', '.join(RENDER_MODES)}")

        self._dmc = load_dmc(task, seed)
        physics = self._dmc.physics
        self._camera_id = CAMERA_ID.get(self.domain, 0) if camera_id is None else int(camera_id)
        if not 0 <= self._camera_id < physics.model.ncam:
            raise LaomError(f"camera_id={self._camera_id}: {task} has {physics.model.ncam} cameras")
        self._renderer = SceneRenderer(physics, self.img_hw, self.img_hw, self._camera_id, render)

        bg = distractors.background
        self._video = None
        self._ground_alpha = 1.0
        if bg.enabled:
            if background_bank is None:
                raise LaomError("background distractor is on but no background videos were given")
            self._video = VideoPlayer(background_bank, bg.dynamic)
            self._ground_alpha = (
                bg.ground_alpha
                if bg.ground_alpha is not None
                else GROUND_ALPHA.get(self.domain, DEFAULT_GROUND_ALPHA)
            )
            self._renderer.set_skybox(False)
        self._floor = find_floor(physics.model, physics.data)
        self._camera = CameraShake(
            distractors.camera.scale,
            distractors.camera.dynamic,
            upper_only=self.domain not in FREE_ELEVATION_DOMAINS,
        )
        self._color = ColorJitter(
            np.array(physics.model.mat_rgba[:, :3]), distractors.color.scale, distractors.color.dynamic
        )

        low, high = action_bounds(self._dmc)
        self.action_space = gym.spaces.Box(low, high, dtype=np.float32)
        self.observation_space = gym.spaces.Box(
            0, 255, (self.img_hw, self.img_hw, 3 * self.frame_stack), np.uint8
        )
        self._master = np.random.default_rng(seed)
        self._rng = np.random.default_rng(seed)
        self._frames: deque[np.ndarray] = deque(maxlen=self.frame_stack)
        self._steps = 0
        self._last_frame: np.ndarray | None = None

    # -- gymnasium API -------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._master = np.random.default_rng(seed)
        episode_seed = int(self._master.integers(2**63 - 1))
        task_seed, distractor_seed = np.random.SeedSequence(episode_seed).spawn(2)
        self._dmc.task._random = np.random.RandomState(task_seed.generate_state(1)[0])
        self._rng = np.random.default_rng(distractor_seed)
        time_step = self._dmc.reset()
        self._camera.reset(self._rng)
        self._color.reset(self._rng)
        if self._video is not None:
            self._video.reset(self._rng)
        self._steps = 0
        frame = self._render_frame()
        self._frames.clear()
        for _ in range(self.frame_stack):
            self._frames.append(frame)
        return self._observation(), self._info(time_step)

    def step(self, action):
        action = np.clip(np.asarray(action, np.float32), self.action_space.low, self.action_space.high)
        time_step = self._dmc.step(action)
        self._steps += 1
        self._camera.step(self._rng)
        self._color.step(self._rng)
        if self._video is not None:
            self._video.step()
        self._frames.append(self._render_frame())
        terminated = bool(time_step.last() and time_step.discount == 0.0)
        truncated = bool(time_step.last() and not terminated)
        if self.max_episode_steps is not None and self._steps >= self.max_episode_steps:
            truncated = not terminated
        reward = float(time_step.reward or 0.0)
        return self._observation(), reward, terminated, truncated, self._info(time_step)

    def render(self) -> np.ndarray | None:
        return None if self._last_frame is None else self._last_frame.copy()

    def distractor_state(self) -> dict[str, np.ndarray]:
        """The distractors' state behind the latest rendered frame, one array per record.

        Collection stores these per frame so that analyses can ask what a model's latents
        encode besides the agent (the distractor probes). ``camera``: offsets (azimuth,
        elevation, zoom factor, roll) from the task's camera, neutral (0, 0, 1, 0) when off;
        ``color``: per-material RGB offsets from the task's colours, zeros when off;
        ``background_video``/``background_frame``: which video of the split plays and
        which of its frames is shown, present only with a background video.
        """
        out = {"camera": np.asarray(self._camera.state, np.float32).copy()}
        if self._color.base.size:
            out["color"] = np.asarray(self._color.rgb - self._color.base, np.float32)
        if self._video is not None:
            out["background_video"] = np.asarray(self._video.video, np.int32)
            out["background_frame"] = np.asarray(self._video.index, np.int32)
        return out

    def close(self) -> None:
        physics = getattr(getattr(self, "_dmc", None), "physics", None)
        if physics is not None:
            physics.free()

    # -- internals -----------------------------------------------------------------
    @property
    def physics(self) -> Any:
        return self._dmc.physics

    def _render_frame(self) -> np.ndarray:
        physics = self._dmc.physics
        if self._color.active:
            physics.model.mat_rgba[:, :3] = self._color.rgb
        pose = None
        if self._camera.active:
            data = physics.data
            cid = self._camera_id
            base_pos = np.array(data.cam_xpos[cid], np.float64)
            base_mat = np.array(data.cam_xmat[cid], np.float64).reshape(3, 3)
            focus = np.array(data.subtree_com[physics.model.cam_bodyid[cid]], np.float64)
            pose = self._camera.apply(base_pos, base_mat, focus)
        frame = self._renderer.render(
            cam_pose=pose,
            background=None if self._video is None else self._video.frame,
            floor=self._floor,
            ground_alpha=self._ground_alpha,
        )
        self._last_frame = frame
        return frame

    def _observation(self) -> np.ndarray:
        if self.frame_stack == 1:
            return self._frames[-1]
        return np.concatenate(self._frames, axis=-1)

    def _info(self, time_step) -> dict[str, Any]:
        return {"state": flatten_state(time_step.observation)}
