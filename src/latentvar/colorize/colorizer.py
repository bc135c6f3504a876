"""`Colorizer`: a trained run (or the grey baseline) as an object to colorize, segment, sample and score.

Images in: a path, a PIL image, or an array (h, w) grey / (h, w, 3) RGB / (h, w, 4) RGBA, uint8 or float
in [0, 1]; alpha is composited on white. The network runs at its training size S (the L channel resized
to S×S); the predicted ab is upsampled bilinearly to the input's size and joined with the input's own
full-resolution L (as Zhang et al. 2016 predict ab at reduced resolution). Segmentations are returned at
the input's size (nearest-neighbour upsampling).

Sampling (``sample``), the generative story: for each draw, one Gumbel vector g^z (k) and one Gumbel
matrix g^y (k, q) are drawn *per image*; every pixel takes z_p = argmax_k log P(z_p=k|x) + g^z_k and
y_p = argmax_q log P(y_p=q|z_p,x) + g^y_{z_p q}. By the Gumbel-max trick each pixel's (z_p, y_p) is an
exact draw from P(z_p|x) P(y_p|z_p,x), while pixels of one segment share their noise, so a segment takes
one colour, shifted only where the per-pixel lightness term moves its distribution.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentvar.colorize.images import read_image, to_rgba
from latentvar.colorize.lab import lab_to_rgb, rgb_to_lab, to_float_rgb
from latentvar.colorize.model import build_model, nats_per_pixel
from latentvar.colorize.quantize import ABBins
from latentvar.io import load_checkpoint


def as_rgba(img) -> np.ndarray:
    """Any accepted image -> (h, w, 4) uint8 or (h, w, 3|4) float array."""
    from PIL import Image

    if isinstance(img, (str, os.PathLike)):
        return read_image(img)
    if isinstance(img, Image.Image):
        return to_rgba(img)
    arr = img.numpy() if isinstance(img, Tensor) else np.asarray(img)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"img: expected (h, w), (h, w, 3) or (h, w, 4), got shape {arr.shape}")
    if arr.dtype != np.uint8 and not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"img: expected uint8 or float pixels, got dtype {arr.dtype}")
    return arr


class Colorizer:
    """A colorization model ready for use. ``Colorizer.load(run)`` or ``Colorizer.grey()``."""

    def __init__(self, model: nn.Module, size: int, meta: dict | None = None):
        self.model = model.eval()
        self.size = size
        self.meta = meta or {}
        self.bins = ABBins(model.bin_centres)
        self.kind = model.kind

    @classmethod
    def load(cls, run: str | os.PathLike) -> Colorizer:
        """Load a run directory written by ``latentvar colorize train`` (safetensors + JSON only)."""
        from latentvar.colorize.train import restore_model

        tensors, meta = load_checkpoint(run)
        if not str(meta.get("kind", "")).startswith("colorize-"):
            raise ValueError(f"run: {run} holds a {meta.get('kind')!r} checkpoint, not a colorization run")
        return cls(restore_model(tensors, meta), meta["config"]["size"], meta)

    @classmethod
    def grey(cls, residual_var: float | Tensor = 100.0, size: int = 32) -> Colorizer:
        """The no-training baseline ab = 0 (its NLL via a Gaussian of variance ``residual_var`` per axis)."""
        bins = ABBins()
        model = build_model("grey", bins.centres)
        model.gaussian.residual_var.copy_(torch.as_tensor(residual_var, dtype=torch.float32).expand(2))
        return cls(model, size)

    # -- inputs ------------------------------------------------------------------------------------
    def _lab(self, img) -> tuple[Tensor, Tensor]:
        """(L (h, w), ab (h, w, 2)) at the input's own size."""
        lab = rgb_to_lab(to_float_rgb(as_rgba(img)))
        return lab[..., 0], lab[..., 1:]

    def _small(self, channels: Tensor) -> Tensor:
        """(h, w, c) -> (S, S, c) by area averaging (bilinear when enlarging)."""
        x = channels.permute(2, 0, 1)[None]
        mode = "area" if x.shape[-1] >= self.size and x.shape[-2] >= self.size else "bilinear"
        return F.interpolate(x, size=(self.size, self.size), mode=mode)[0].permute(1, 2, 0)

    def _inputs(self, img) -> tuple[Tensor, Tensor, tuple[int, int]]:
        L, _ = self._lab(img)
        return L, self._small(L[..., None])[..., 0][None], tuple(L.shape)

    def _up(self, x: Tensor, shape, mode: str) -> Tensor:
        """(S, S, c) -> (h, w, c)."""
        y = x.permute(2, 0, 1)[None].float()
        kw = {"align_corners": False} if mode == "bilinear" else {}
        return F.interpolate(y, size=shape, mode=mode, **kw)[0].permute(1, 2, 0)

    def _rgb(self, L: Tensor, ab_small: Tensor) -> np.ndarray:
        ab = self._up(ab_small, tuple(L.shape), "bilinear")
        rgb = lab_to_rgb(torch.cat([L[..., None], ab], dim=-1))
        return (rgb * 255 + 0.5).to(torch.uint8).numpy()

    def _require_latent(self, what: str) -> None:
        if self.kind != "latent":
            raise ValueError(f"{what}: needs a latent-segmentation run, this one is {self.kind!r}")

    # -- the API -----------------------------------------------------------------------------------
    @torch.no_grad()
    def colorize(self, img, temperature: float = 0.38, decode: str = "annealed") -> np.ndarray:
        """RGB uint8 (h, w, 3): annealed mean (``temperature``; Zhang et al. eq. 5) or ``decode='mode'``."""
        L, L_small, _ = self._inputs(img)
        if decode not in ("annealed", "mode"):
            raise ValueError(f"decode: expected 'annealed' or 'mode', got {decode!r}")
        if self.kind in ("regression", "grey"):
            ab = self.model.predict_ab(L_small)[0]
        else:
            logp = self.model.log_probs(L_small)[0]
            ab = self.bins.annealed_mean(logp, temperature) if decode == "annealed" else self.bins.mode(logp)
        return self._rgb(L, ab)

    @torch.no_grad()
    def segment_probs(self, img) -> Tensor:
        """P(z|x): (S, S, k) at the model's size."""
        self._require_latent("segment")
        _, L_small, _ = self._inputs(img)
        return self.model.mixture(L_small).weights[0]

    @torch.no_grad()
    def segment(self, img) -> np.ndarray:
        """The prior segmentation argmax_k P(z_p=k|x): int64 (h, w)."""
        L, _, shape = self._inputs(img)
        mode = self.segment_probs(img).argmax(-1, keepdim=True)
        return self._up(mode, shape, "nearest")[..., 0].long().numpy()

    @torch.no_grad()
    def posterior_segment(self, img, color_img) -> np.ndarray:
        """The exact posterior mode argmax_k P(z_p=k|x, y): int64 (h, w); x is ``img``'s lightness, y the
        quantised ab of ``color_img`` (resized to the model's size)."""
        self._require_latent("posterior_segment")
        L, _, shape = self._inputs(img)
        L_small = self._small(L[..., None])[..., 0][None]
        _, ab = self._lab(color_img)
        y = self.bins.encode(self._small(ab))[None]
        mode = self.model.mixture(L_small).posterior(y).mode[0]
        return self._up(mode[..., None], shape, "nearest")[..., 0].long().numpy()

    @torch.no_grad()
    def sample(self, img, n: int = 3, generator: torch.Generator | None = None) -> np.ndarray:
        """n colorizations, RGB uint8 (n, h, w, 3), each coherent within a segment (see module doc)."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected a positive integer number of samples, got {n!r}")
        L, L_small, _ = self._inputs(img)
        if self.kind != "latent":  # no segments: per-pixel Gumbel noise shared by all pixels of a draw
            logp = self.model.log_probs(L_small)[0]
            g = -torch.log(
                -torch.log(torch.rand(n, 1, 1, logp.shape[-1], generator=generator).clamp(1e-12, 1))
            )
            return np.stack([self._rgb(L, self.bins.decode((logp + g[i]).argmax(-1))) for i in range(n)])
        mix = self.model.mixture(L_small)
        log_prior = mix.log_weights[0]  # (S, S, k)
        table = mix.components.log_table[0]  # (k, l, q)
        lbin = mix.components.lbin[0]  # (S, S)
        k, _, q = table.shape
        out = []
        for _ in range(n):
            gz = -torch.log(-torch.log(torch.rand(k, generator=generator).clamp(1e-12, 1)))
            gy = -torch.log(-torch.log(torch.rand(k, 1, q, generator=generator).clamp(1e-12, 1)))
            z = (log_prior + gz).argmax(-1)  # (S, S)
            choice = (table + gy).argmax(-1)  # (k, l): the bin each segment takes at each L-bin
            out.append(self._rgb(L, self.bins.decode(choice[z, lbin])))
        return np.stack(out)

    @torch.no_grad()
    def log_prob(self, color_img) -> Tensor:
        """log P(y|x) in nats, summed over the model-size pixels (y: quantised ab, x: L of ``color_img``)."""
        L, ab = self._lab(color_img)
        L_small = self._small(L[..., None])[..., 0][None]
        y = self.bins.encode(self._small(ab))[None]
        return -nats_per_pixel(self.model.log_probs(L_small), y) * y.numel()

    def __repr__(self) -> str:
        return f"Colorizer(kind={self.kind!r}, size={self.size}, bins={self.bins.num_bins})"


def grey_residual_var(ab: Tensor) -> Tensor:
    """E[a²], E[b²] over a training set's pixels: the MLE variance of the grey baseline's Gaussian."""
    return ab.pow(2).reshape(-1, 2).mean(0).clamp_min(1.0)
