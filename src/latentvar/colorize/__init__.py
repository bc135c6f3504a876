"""Colorization with latent segmentation: P(y|x) = Σ_z P(z|x) P(y|z,x), x = L, y = ab bins, z = segments.

    from latentvar.colorize import Colorizer
    c = Colorizer.load("runs/demo/latent")
    rgb = c.colorize("photo.png"); seg = c.segment("photo.png"); draws = c.sample("photo.png", 3)

Modules: `lab` (sRGB <-> Lab), `quantize` (in-gamut ab bins), `model` (the latent model and baselines),
`train` (one training loop, checkpoints, resume, DDP), `colorizer` (the trained-run API), `evaluate` and
`metrics`, `images` (folder loading), `demo` (the `make demo` report), `prepare` (OpenMoji, Tux Paint).
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
