"""LAOM's MLP heads: Transformer-style MLP blocks, conditioned at every block.

A block is ``LayerNorm(x + Linear(4d, d)(ReLU6(Linear(d, 4d)(x))))``. The head input of
every block is ``concat(h, cond)``, not only of the first (the paper found this much
better for predicting latent actions).

``Linear(concat(h, c))`` equals ``W_h h + W_c c``, and the ``W_c c`` terms of all blocks
depend only on the conditioning, so they are computed by one wide matmul up front. Same
function and parameter count as concatenating, without copying the (often 8k-24k wide)
conditioning once per block.
"""

from __future__ import annotations

import torch
from torch import nn


class MLPBlock(nn.Module):
    def __init__(self, dim: int, expand: int = 4) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(dim, expand * dim), nn.ReLU6(), nn.Linear(expand * dim, dim)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.mlp(x))


class ConditionedMLP(nn.Module):
    """f(x, cond): ``num_blocks`` MLP blocks whose inputs are all projected from (h, cond).

    ``in_dim`` may be 0 (the first block then sees only ``cond``), which is how the latent
    IDM conditions on the pair of embeddings.
    """

    def __init__(
        self,
        in_dim: int,
        cond_dim: int,
        out_dim: int,
        hidden_dim: int = 1024,
        num_blocks: int = 3,
        expand: int = 4,
    ) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.num_blocks = num_blocks
        # Conditioning's share of every block's input projection (bias lives here).
        self.cond_proj = nn.Linear(cond_dim, num_blocks * hidden_dim)
        # h's share: the input x for block 0 (absent if in_dim == 0), then the hidden state.
        self.h_proj = nn.ModuleList(
            [nn.Linear(in_dim, hidden_dim, bias=False)] if in_dim > 0 else [nn.Identity()]
        )
        self.h_proj.extend(
            nn.Linear(hidden_dim, hidden_dim, bias=False) for _ in range(num_blocks - 1)
        )
        self.blocks = nn.ModuleList(MLPBlock(hidden_dim, expand) for _ in range(num_blocks))
        self.out = nn.Linear(hidden_dim, out_dim)
        self.has_input = in_dim > 0

    def forward(self, x: torch.Tensor | None, cond: torch.Tensor) -> torch.Tensor:
        c = self.cond_proj(cond).split(self.hidden_dim, dim=-1)
        h = x
        for i, (proj, block) in enumerate(zip(self.h_proj, self.blocks, strict=True)):
            pre = c[i] if (i == 0 and not self.has_input) else c[i] + proj(h)
            h = block(pre)
        return self.out(h)
