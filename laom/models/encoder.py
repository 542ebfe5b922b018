"""The IMPALA-style ResNet family shared by every image model in the project.

One stage = a stride-2 3x3 conv followed by residual blocks [ReLU6, conv, ReLU6, conv].
The channel widths are ``channels * scale``; the paper's "encoder_deep False" family is
``(16, 32, 32)``. ReLU6 (not ReLU) bounds activations, which the paper found keeps long
runs stable. Decoder stages mirror the encoder with 2x transposed convs so LAPO's pixel
FDM is the same family run backwards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

DEFAULT_CHANNELS: tuple[int, ...] = (16, 32, 32)


def orthogonal_init(module: nn.Module) -> None:
    """Orthogonal weights, zero biases (the release's init) for conv and linear layers."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.orthogonal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU6(),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
            nn.ReLU6(inplace=True),  # on the conv's fresh output (the first must keep x)
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def _stage(in_ch: int, out_ch: int, num_res_blocks: int, up: bool = False) -> nn.Sequential:
    if up:
        resample = nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2)
    else:
        resample = nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=2, padding=1)
    return nn.Sequential(resample, *[ResidualBlock(out_ch) for _ in range(num_res_blocks)])


class ResNetEncoder(nn.Module):
    """Image stack [B, C, H, W] in [-1, 1] -> feature map [B, C', H/2^n, W/2^n].

    ``out_shape`` and ``out_dim`` (flattened) let heads size themselves without a dummy
    forward pass.
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        scale: int = 1,
        num_res_blocks: int = 2,
        channels: Sequence[int] = DEFAULT_CHANNELS,
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        stages = []
        for ch in channels:
            stages.append(_stage(c, ch * scale, num_res_blocks))
            c, h, w = ch * scale, (h + 1) // 2, (w + 1) // 2
        self.stages = nn.Sequential(*stages)
        self.in_shape = tuple(in_shape)
        self.out_shape = (c, h, w)
        self.out_dim = math.prod(self.out_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(match_first_conv(x, self.stages[0][0]))


def match_first_conv(x: torch.Tensor, conv: nn.Module) -> torch.Tensor:
    """Give an image batch the autocast dtype and the conv's memory format up front.

    Left to the conv, a float32 NCHW input into a bf16 channels_last network is cast
    and permuted in forward and permuted again for the weight gradient in backward;
    cast first (cheap, contiguous) then permute the half-size tensor, once.
    """
    if torch.is_autocast_enabled(x.device.type):
        x = x.to(torch.get_autocast_dtype(x.device.type))
    if (
        conv.weight.is_contiguous(memory_format=torch.channels_last)
        and not conv.weight.is_contiguous()
    ):
        x = x.contiguous(memory_format=torch.channels_last)
    return x


class ResNetDecoder(nn.Module):
    """Feature map [B, C, h, w] -> image stack [B, out_channels, h*2^n, w*2^n] in (-1, 1).

    The mirror of :class:`ResNetEncoder`: transposed-conv upsampling stages with the
    encoder's widths in reverse, a ReLU6, a 1x1 conv to pixels and tanh (the targets are
    images scaled to [-1, 1]).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        scale: int = 1,
        num_res_blocks: int = 2,
        channels: Sequence[int] = DEFAULT_CHANNELS,
    ) -> None:
        super().__init__()
        stages = []
        c = in_channels
        for ch in reversed(channels):
            stages.append(_stage(c, ch * scale, num_res_blocks, up=True))
            c = ch * scale
        self.stages = nn.Sequential(*stages)
        self.to_pixels = nn.Sequential(nn.ReLU6(), nn.Conv2d(c, out_channels, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # tanh in float32: the vectorised fp32 kernel beats bf16's, and the pixel loss
        # is computed in float32 anyway.
        return torch.tanh(self.to_pixels(self.stages(x)).float())
