"""LAOM's image augmentations as one batched perspective warp.

The release chains kornia modules (pad, random crop / rotation / perspective, centre
crop) image by image. Every one of those steps is a plane projective map, so each
sample's chain collapses into a single 3x3 homography; the whole batch is then one
``grid_sample`` call. Edge padding followed by a centre crop is what ``padding_mode=
"border"`` does, so no padded copies are made.

Per image, one of eight chains is drawn uniformly (paper Table 5 / release):

    none, shift, rotate, perspective, shift+rotate, rotate+shift,
    rotate+perspective, perspective+rotate

* shift: replicate-pad by ``shift_pad`` px and crop back at a random offset, i.e. an
  integer translation in [-shift_pad, shift_pad] on each axis;
* rotate: a rotation by U(-max_degrees, max_degrees) about the centre (the release pads
  17 px at 64 px so the corners stay inside real pixels: border mode again);
* perspective: the corners of the ``perspective_pad``-padded image move inward by
  U(0, distortion * size / 2) each (kornia's RandomPerspective), then the centre crop.

All frames stacked in the channels of one observation get the same warp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

CHAINS: tuple[tuple[str, ...], ...] = (
    (),
    ("shift",),
    ("rotate",),
    ("perspective",),
    ("shift", "rotate"),
    ("rotate", "shift"),
    ("rotate", "perspective"),
    ("perspective", "rotate"),
)


@dataclass(frozen=True)
class AugmentParams:
    shift_pad: int = 14
    max_degrees: float = 90.0
    distortion: float = 0.5
    perspective_pad: int = 30


def _translation(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = torch.eye(3, dtype=tx.dtype).repeat(tx.shape[0], 1, 1)
    m[:, 0, 2] = tx
    m[:, 1, 2] = ty
    return m


def _rotation(theta: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(theta), torch.sin(theta)
    m = torch.eye(3, dtype=theta.dtype).repeat(theta.shape[0], 1, 1)
    m[:, 0, 0], m[:, 0, 1] = c, -s
    m[:, 1, 0], m[:, 1, 1] = s, c
    return m


def homography_from_points(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """The [B,3,3] homographies mapping 4 points ``src`` [B,4,2] onto ``dst`` [B,4,2]."""
    b = src.shape[0]
    x, y = src[..., 0], src[..., 1]
    u, v = dst[..., 0], dst[..., 1]
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    # Two rows per correspondence: h11 x + h12 y + h13 - u (h31 x + h32 y) = u, same for v.
    rows_u = torch.stack([x, y, ones, zeros, zeros, zeros, -u * x, -u * y], dim=-1)
    rows_v = torch.stack([zeros, zeros, zeros, x, y, ones, -v * x, -v * y], dim=-1)
    a = torch.cat([rows_u, rows_v], dim=1)  # [B, 8, 8]
    rhs = torch.cat([u, v], dim=1).unsqueeze(-1)  # [B, 8, 1]
    h = torch.linalg.solve(a, rhs).squeeze(-1)
    return torch.cat([h, torch.ones(b, 1, dtype=h.dtype)], dim=1).view(b, 3, 3)


def _perspective(n: int, size: int, params: AugmentParams, g: torch.Generator) -> torch.Tensor:
    half = (size + 2 * params.perspective_pad) / 2.0
    corners = torch.tensor(
        [[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64
    )
    src = (corners * half).expand(n, 4, 2)
    inward = torch.rand(n, 4, 2, generator=g, dtype=torch.float64) * (params.distortion * half)
    dst = src - corners * inward  # each corner moves towards the centre
    return homography_from_points(src, dst)


def sample_homographies(
    n: int, size: int, generator: torch.Generator, params: AugmentParams = AugmentParams()
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one chain per image: (chain index [n], forward homography [n,3,3]).

    The homographies act on pixel coordinates centred on the image centre (float64 so
    that composing and inverting them stays exact enough for the identity case).
    """
    g = generator
    choice = torch.randint(len(CHAINS), (n,), generator=g)
    shift = torch.randint(-params.shift_pad, params.shift_pad + 1, (n, 2), generator=g).double()
    theta = (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * math.radians(
        params.max_degrees
    )
    parts = {
        "shift": _translation(shift[:, 0], shift[:, 1]),
        "rotate": _rotation(theta),
        "perspective": _perspective(n, size, params, g),
    }
    total = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
    for step in ("first", "second"):
        pos = 0 if step == "first" else 1
        m = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
        for name, part in parts.items():
            mask = torch.tensor([len(c) > pos and c[pos] == name for c in CHAINS])[choice]
            m[mask] = part[mask]
        total = m @ total  # apply the later step after the earlier one
    return choice, total


_BASE_GRIDS: dict[tuple[int, int], torch.Tensor] = {}


def _base_grid(h: int, w: int) -> torch.Tensor:
    """Output pixel centres in grid_sample's normalised coords, homogeneous [3, H*W]."""
    if (h, w) not in _BASE_GRIDS:
        ys = (torch.arange(h, dtype=torch.float64) + 0.5) * (2.0 / h) - 1.0
        xs = (torch.arange(w, dtype=torch.float64) + 0.5) * (2.0 / w) - 1.0
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        _BASE_GRIDS[(h, w)] = torch.stack([gx.flatten(), gy.flatten(), torch.ones(h * w)]).float()
    return _BASE_GRIDS[(h, w)]


def warp(images: torch.Tensor, homographies: torch.Tensor) -> torch.Tensor:
    """Warp [B,C,H,W] by forward homographies in centred pixel coordinates (border fill)."""
    b, _, h, w = images.shape
    # Centred pixel coords -> grid_sample's normalised coords (align_corners=False); the
    # 3x3 algebra in float64, the per-pixel grid in float32 (one batched matmul).
    to_norm = torch.diag(torch.tensor([2.0 / w, 2.0 / h, 1.0], dtype=torch.float64))
    from_norm = torch.diag(torch.tensor([w / 2.0, h / 2.0, 1.0], dtype=torch.float64))
    inverse = (
        to_norm @ torch.linalg.inv(homographies.double()) @ from_norm
    ).float()  # output -> input
    src = torch.matmul(inverse, _base_grid(h, w))  # [B, 3, HW]: contiguous rows divide fast
    grid = (src[:, :2] / src[:, 2:]).transpose(1, 2).reshape(b, h, w, 2)
    grid = grid.to(device=images.device, dtype=images.dtype)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


class Augmenter:
    """Callable applying an independent random chain to every image of a batch."""

    def __init__(self, size: int, params: AugmentParams = AugmentParams()) -> None:
        self.size = size
        self.params = params

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        _, homographies = sample_homographies(images.shape[0], self.size, generator, self.params)
        return warp(images, homographies)


class RandomShift:
    """DrQ's random shift (Kostrikov et al. 2020): replicate-pad by ``pad`` px and crop back
    at a random offset, i.e. an integer translation in [-pad, pad] per image and axis.

    The standard augmentation for pixel policies (behaviour cloning and RL alike): it
    costs one ``grid_sample`` and is what keeps a pixel BC policy from memorising the
    exact frames of ~100k transitions. All frames stacked in one observation move
    together.
    """

    def __init__(self, pad: int) -> None:
        if pad < 1:
            raise ValueError(f"pad must be >= 1, got {pad}")
        self.pad = pad

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = images.shape[0]
        shift = torch.randint(-self.pad, self.pad + 1, (n, 2), generator=generator).double()
        return warp(images, _translation(shift[:, 0], shift[:, 1]))
