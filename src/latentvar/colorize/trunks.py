"""The colorization models' trunks: x (b, 1, h, w) lightness in [-1, 1] -> features at a coarser grid.

`Trunk` (the 32×32 emoji images, features at 1/2) and `PhotoTrunk` (photo crops, features at 1/4, a global
feature as Iizuka et al. 2016, optional residual blocks); `build_trunk` picks one by ``arch``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Trunk(nn.Module):
    """A small U-shaped FCN: (b, 1, h, w) -> features (b, c, h/2, w/2); h and w must be multiples of 4.

    Work is done at 1/2 and 1/4 resolution (pixel-unshuffle in) to stay cheap on CPU; heads upsample
    bilinearly what they need at full resolution. Receptive field ≈ 38 full-resolution pixels.
    """

    def __init__(self, width: int = 16):
        super().__init__()
        c = width
        self.stem = nn.Sequential(nn.Conv2d(4, c, 3, padding=1), nn.ReLU())
        self.down = nn.Sequential(
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * c, 2 * c, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * c, 2 * c, 3, padding=2, dilation=2),
            nn.ReLU(),
        )
        self.fuse = nn.Sequential(nn.Conv2d(3 * c, c, 1), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        half = self.stem(F.pixel_unshuffle(x, 2))
        quarter = F.interpolate(self.down(half), scale_factor=2, mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([half, quarter], 1))


def _conv(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation), nn.ReLU()
    )


class PhotoTrunk(nn.Module):
    """The photo trunk: (b, 1, h, w) -> features (b, c, h/4, w/4); h and w must be multiples of 16.

    An encoder at 1/4, 1/8 and 1/16 resolution (pixel-unshuffle in, as in `Trunk`) and a decoder back to
    1/4 with skip connections. The 1/16 level adds a *global* feature -- the mean over the whole input
    through a linear layer, broadcast to every position, as Iizuka et al. (2016) fuse global and local
    features -- so every output position sees the whole crop or image (a receptive field that covers it).
    """

    stride = 4
    multiple = 16

    def __init__(self, width: int = 32, depth: int = 0):
        super().__init__()
        c = width
        self.enc4 = nn.Sequential(_conv(16, c), _conv(c, c))
        self.enc8 = nn.Sequential(_conv(c, 2 * c, stride=2), _conv(2 * c, 2 * c))
        self.enc16 = nn.Sequential(_conv(2 * c, 4 * c, stride=2), _conv(4 * c, 4 * c, dilation=2))
        if (
            depth
        ):  # a deeper trunk: residual blocks at 1/16 (depth 0 has none: today's weights load as they are)
            self.deep = nn.Sequential(*(_Residual(4 * c, dilation=2 ** (1 + i % 2)) for i in range(depth)))
        self.glob = nn.Sequential(nn.Linear(4 * c, 4 * c), nn.ReLU())
        self.dec8 = nn.Sequential(nn.Conv2d(6 * c, 2 * c, 1), nn.ReLU(), _conv(2 * c, 2 * c))
        self.dec4 = nn.Sequential(nn.Conv2d(3 * c, c, 1), nn.ReLU(), _conv(c, c))

    def forward(self, x: Tensor) -> Tensor:
        f4 = self.enc4(F.pixel_unshuffle(x, 4))
        f8 = self.enc8(f4)
        f16 = self.enc16(f8)
        if hasattr(self, "deep"):
            f16 = self.deep(f16)
        f16 = f16 + self.glob(f16.mean((2, 3)))[..., None, None]
        up8 = F.interpolate(f16, size=f8.shape[-2:], mode="bilinear", align_corners=False)
        d8 = self.dec8(torch.cat([f8, up8], 1))
        up4 = F.interpolate(d8, size=f4.shape[-2:], mode="bilinear", align_corners=False)
        return self.dec4(torch.cat([f4, up4], 1))


class _Residual(nn.Module):
    """relu(x + conv(relu(conv(x)))), two 3×3 convolutions (the second dilated) at constant width. The
    second starts at zero (Goyal et al. 2017's zero-initialised residual): a new block is the identity on
    the non-negative features it follows, so a deeper trunk warm-started from a shallower one's weights
    starts as that model."""

    def __init__(self, c: int, dilation: int = 2):
        super().__init__()
        self.body = nn.Sequential(_conv(c, c), nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x + self.body(x))


Trunk.stride, Trunk.multiple = 2, 4
ARCHS = ("emoji", "photo")


def build_trunk(arch: str, width: int, depth: int = 0) -> nn.Module:
    """'emoji' -- the 32×32 `Trunk` (features at 1/2); 'photo' -- `PhotoTrunk` (features at 1/4), with
    ``depth`` extra residual blocks at 1/16."""
    if depth and arch != "photo":
        raise ValueError(f"depth: extra blocks are for the 'photo' trunk, got arch={arch!r}")
    if arch == "emoji":
        return Trunk(width)
    if arch == "photo":
        return PhotoTrunk(width, depth)
    raise ValueError(f"arch: expected one of {ARCHS}, got {arch!r}")


def replicate_borders(trunk: nn.Module) -> None:
    """Every padded convolution of ``trunk`` pads by repeating the border instead of with zeros."""
    for conv in trunk.modules():
        if isinstance(conv, nn.Conv2d) and conv.padding != (0, 0):
            conv.padding_mode = "replicate"
