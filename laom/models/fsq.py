"""Finite scalar quantization (Mentzer et al., 2023) for LAPO's latent actions.

Each latent dimension i is squashed with tanh into a box with ``L_i`` integer points
and rounded, with a straight-through gradient; the code is rescaled to about [-1, 1].
``levels`` cycles over the dimensions (dim i uses ``levels[i % len(levels)]``), the
release's "split the latent into groups of len(levels)" without requiring the latent
size to be a multiple of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class FSQ(nn.Module):
    def __init__(self, levels: Sequence[int], dim: int, eps: float = 1e-3) -> None:
        super().__init__()
        if not levels or min(levels) < 2:
            raise ValueError(f"FSQ levels must be integers >= 2, got {tuple(levels)}")
        per_dim = torch.tensor([levels[i % len(levels)] for i in range(dim)], dtype=torch.float32)
        half = (per_dim - 1) * (1 + eps) / 2
        offset = torch.where(per_dim % 2 == 0, 0.5, 0.0)
        self.register_buffer("half_width", half, persistent=False)
        self.register_buffer("offset", offset, persistent=False)
        self.register_buffer("shift", torch.atanh(offset / half), persistent=False)
        self.register_buffer("scale", torch.floor(per_dim / 2), persistent=False)
        self.levels = tuple(int(v) for v in levels)

    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """Integer code per dimension, in {-floor(L/2), ..., ceil(L/2) - 1}."""
        return torch.round(torch.tanh(z.float() + self.shift) * self.half_width - self.offset)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        bounded = torch.tanh(z.float() + self.shift) * self.half_width - self.offset
        quantized = bounded + (torch.round(bounded) - bounded).detach()  # straight-through
        return (quantized / self.scale).to(z.dtype)
