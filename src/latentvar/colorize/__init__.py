"""Colorization with latent segmentation: P(y|x) = Σ_z P(z|x) P(y|z,x), x = L, y = ab bins, z = segments.

    from latentvar.colorize import Colorizer
    c = Colorizer.load()  # the shipped photo model; "twemoji" or a run directory
    rgb = c.colorize("photo.png"); seg = c.segment("photo.png"); draws = c.sample("photo.png", 3)

Modules: `lab` (sRGB <-> Lab), `quantize` (in-gamut ab bins), `model` (the latent model and its emoji and photo
trunks), `prior` (the learned segment prior's smoothing and training terms), `baselines`, `data` (data sets in model form), `crops` (photo crops and views), `train` (one
training loop, val selection, checkpoints, resume, DDP / torchrun), `colorizer` (the trained-model API) with
`grids` (work and full grids, joint bilateral upsampling, strips) and `visual` (segment palettes,
overlays), `shipped` (the packaged models), `evaluate` and `metrics`, `images` (reading photos as people
have them), `photos` and `packages` (the photo corpus from registry packages), `prepare` (OpenMoji,
Tux Paint), `demo` (the `make demo` report).
"""

from latentvar.colorize.colorizer import Colorizer
from latentvar.colorize.model import (
    LatentColorizer,
    PerPixelColorizer,
    RegressionColorizer,
    SegmentColour,
)
from latentvar.colorize.quantize import ABBins
from latentvar.colorize.train import TrainConfig, train

__all__ = [
    "ABBins",
    "Colorizer",
    "LatentColorizer",
    "PerPixelColorizer",
    "RegressionColorizer",
    "SegmentColour",
    "TrainConfig",
    "train",
]
