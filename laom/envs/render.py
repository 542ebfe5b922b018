"""Offscreen rendering of dm_control scenes, with the background video composited in.

Why not re-upload the skybox texture like the original Distracting Control Suite? On a
software OpenGL (Mesa llvmpipe) an ``mjr_uploadTexture`` of the skybox costs 2.5-5 ms
whatever its size, twice a whole 64 px render. Instead we render once with the skybox
off, read colour and depth together, and fill the empty pixels ourselves: each pixel's
world-space view ray is looked up in a cube map whose six faces show the current video
frame, which is what a skybox texture does. The background therefore moves correctly
with the (shaking) camera. A translucent floor (ground alpha < 1) is found from the
depth buffer: pixels whose reconstructed world point lies on the floor plane are blended
with the video seen along the same ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

RENDER_MODES = ("fast", "quality")


@dataclass
class FloorPlane:
    """A visible plane geom (the floor), in world coordinates."""

    centre: np.ndarray  # (3,)
    axes: np.ndarray  # 3x3, columns = plane x, y, normal
    half_x: float  # 0 = unbounded
    half_y: float


def find_floor(model, data) -> FloorPlane | None:
    """The first plane geom of the model, which is the floor in every suite domain."""
    for g in range(model.ngeom):
        if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE:
            size = model.geom_size[g]
            return FloorPlane(
                centre=np.array(data.geom_xpos[g], np.float64),
                axes=np.array(data.geom_xmat[g], np.float64).reshape(3, 3),
                half_x=float(size[0]),
                half_y=float(size[1]),
            )
    return None


def _coarsen_meshes(model) -> None:
    """Fewer triangles where 64 px cannot show them (must run before the GL context).

    A plane's third size is only its render grid spacing (collisions ignore it): the
    humanoid floor, 200 m wide at 0.2 m spacing, is drawn as ~10^6 quads, which made its
    render 4x slower than cheetah's. Capping the grid at ~20 cells per side and using 12
    slices for capsules and spheres leaves 64 px frames visually unchanged.
    """
    for g in range(model.ngeom):
        if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE:
            size = model.geom_size[g]
            size[2] = max(float(size[2]), max(float(size[0]), float(size[1])) / 10.0)
    quality = model.vis.quality
    quality.numslices = min(int(quality.numslices), 12)
    quality.numstacks = min(int(quality.numstacks), 8)


class SceneRenderer:
    """Renders one fixed camera of a dm_control ``Physics`` into uint8 RGB.

    ``fast`` turns off shadows, reflections and multisampling (6-15x faster on CPU);
    ``quality`` keeps dm_control's default look. The camera pose can be overridden per
    frame (camera distractor) and a background frame composited where the skybox was.
    """

    def __init__(self, physics, height: int, width: int, camera_id: int, mode: str = "fast"):
        if mode not in RENDER_MODES:
            raise ValueError(f"render mode {mode!r}: expected one of {RENDER_MODES}")
        self.physics = physics
        self.height, self.width = int(height), int(width)
        self.camera_id = int(camera_id)
        self.mode = mode
        model = physics.model
        vis_global = model.vis.global_
        # The offscreen buffer is sized when the GL context is made: set it first.
        vis_global.offwidth = max(int(vis_global.offwidth), self.width)
        vis_global.offheight = max(int(vis_global.offheight), self.height)
        if mode == "fast":
            model.vis.quality.offsamples = 0
            _coarsen_meshes(model)
        self._scene = mujoco.MjvScene(model.ptr, maxgeom=2000)
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._camera.fixedcamid = self.camera_id
        self._option = mujoco.MjvOption()
        self._perturb = mujoco.MjvPerturb()
        if mode == "fast":
            self._scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
            self._scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        self._rect = mujoco.MjrRect(0, 0, self.width, self.height)
        self._rgb = np.empty((self.height, self.width, 3), np.uint8)
        self._depth = np.empty((self.height, self.width), np.float32)
        # Camera-frame view rays for every pixel, top row first (x right, y up, -z ahead).
        fovy = math.radians(float(model.cam_fovy[self.camera_id]))
        focal = (self.height / 2) / math.tan(fovy / 2)
        cols = (np.arange(self.width) + 0.5 - self.width / 2) / focal
        rows = (self.height / 2 - (np.arange(self.height) + 0.5)) / focal
        xs, ys = np.meshgrid(cols, rows)
        self._rays = np.stack([xs, ys, -np.ones_like(xs)], -1).reshape(-1, 3)
        extent = float(model.stat.extent)
        self._near = float(model.vis.map.znear) * extent
        self._far = float(model.vis.map.zfar) * extent

    def set_skybox(self, visible: bool) -> None:
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = int(visible)

    def _draw(self) -> None:
        con = self.physics.contexts.mujoco.ptr
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, con)
        mujoco.mjr_render(self._rect, self._scene, con)
        mujoco.mjr_readPixels(self._rgb, self._depth, self._rect, con)

    def render(
        self,
        cam_pose: tuple[np.ndarray, np.ndarray] | None = None,
        background: np.ndarray | None = None,
        floor: FloorPlane | None = None,
        ground_alpha: float = 1.0,
    ) -> np.ndarray:
        """Render the current physics state; returns a new [H, W, 3] uint8 array.

        ``cam_pose`` (pos, 3x3 axes) overrides the camera for this frame only.
        ``background`` (an [S, S, 3] frame) fills every pixel the scene does not cover
        and shows through the floor with weight ``1 - ground_alpha``.
        """
        physics = self.physics
        data = physics.data
        cid = self.camera_id
        if cam_pose is None:
            pos = np.array(data.cam_xpos[cid], np.float64)
            mat = np.array(data.cam_xmat[cid], np.float64).reshape(3, 3)
        else:
            pos, mat = cam_pose
            data.cam_xpos[cid] = pos
            data.cam_xmat[cid] = mat.reshape(-1)
        mujoco.mjv_updateScene(
            physics.model.ptr,
            data.ptr,
            self._option,
            self._perturb,
            self._camera,
            mujoco.mjtCatBit.mjCAT_ALL,
            self._scene,
        )
        with physics.contexts.gl.make_current() as ctx:
            ctx.call(self._draw)
        image = self._rgb[::-1].copy()  # OpenGL rows are bottom-up
        if background is not None:
            self._composite(image, self._depth[::-1], pos, mat, background, floor, ground_alpha)
        return image

    def _composite(self, image, depth, pos, mat, frame, floor, ground_alpha) -> None:
        flat_depth = depth.reshape(-1)
        out = image.reshape(-1, 3)
        sky = np.flatnonzero(flat_depth >= 1.0)
        if sky.size:
            out[sky] = _cube_lookup(frame, self._rays[sky] @ mat.T)
        if floor is None or ground_alpha >= 1.0:
            return
        solid = np.flatnonzero(flat_depth < 1.0)
        if not solid.size:
            return
        z = flat_depth[solid].astype(np.float64)
        dist = self._near / (1.0 - z * (1.0 - self._near / self._far))
        dirs = self._rays[solid] @ mat.T
        local = (pos + dist[:, None] * dirs - floor.centre) @ floor.axes
        on = np.abs(local[:, 2]) < 0.01 + 0.002 * dist
        if floor.half_x > 0:
            on &= np.abs(local[:, 0]) <= floor.half_x
        if floor.half_y > 0:
            on &= np.abs(local[:, 1]) <= floor.half_y
        idx = solid[on]
        if idx.size:
            video = _cube_lookup(frame, dirs[on]).astype(np.float32)
            mixed = ground_alpha * out[idx].astype(np.float32) + (1.0 - ground_alpha) * video
            out[idx] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def _cube_lookup(frame: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Colour seen along world directions ``dirs`` in a cube map of ``frame`` faces.

    Every face shows the same frame, upright on the four side faces (+z is up).
    Nearest-neighbour sampling; ``frame`` is [S, S, 3].
    """
    size = frame.shape[0]
    ax = np.abs(dirs)
    dx, dy, dz = dirs[:, 0], dirs[:, 1], dirs[:, 2]
    u = np.empty(len(dirs))
    v = np.empty(len(dirs))
    top = (ax[:, 2] >= ax[:, 0]) & (ax[:, 2] >= ax[:, 1])
    xface = ~top & (ax[:, 0] >= ax[:, 1])
    yface = ~top & ~xface
    # Side faces: u runs left to right as seen from the centre (facing +x, right is -y).
    u[xface] = -np.sign(dx[xface]) * dy[xface] / ax[xface, 0]
    v[xface] = -dz[xface] / ax[xface, 0]
    u[yface] = np.sign(dy[yface]) * dx[yface] / ax[yface, 1]
    v[yface] = -dz[yface] / ax[yface, 1]
    u[top] = dx[top] / ax[top, 2]
    v[top] = dy[top] / ax[top, 2]
    iu = np.clip(((u + 1.0) * 0.5 * size).astype(np.int64), 0, size - 1)
    iv = np.clip(((v + 1.0) * 0.5 * size).astype(np.int64), 0, size - 1)
    return frame[iv, iu]
