"""`Colorizer`: a trained run (or a shipped model, or the grey baseline) as an object to colorize, segment,
sample and score.

Images in: a path, a PIL image, or an array (h, w) grey / (h, w, 3) RGB / (h, w, 4) RGBA, uint8 or float
in [0, 1]; alpha is composited on white. Every output keeps the input's size.

Two grids (shapes h × w, the input's own size):
- the **work grid**, where the model runs exactly as it was trained -- network, P(z|x) (its 1/4-resolution
  logits upsampled bilinearly plus the per-pixel lightness term), each segment's colour law, the decoding
  and the samples: the emoji model's training square S × S (the image squashed to it, as it was trained);
  for a photo model the image resized so its short side is ``work_side`` (176 px, the middle of its
  training scales; both sides multiples of 16);
- the **full grid**: the input itself. ab and P(z|x) are brought up from the work grid by a joint
  bilateral upsampling steered by the input's own full-resolution L (`grids.joint_bilateral_rows`): a
  pixel takes the values of its low-resolution neighbours that share its lightness, so colours and
  segment boundaries stop at the image's edges instead of bleeding over them in 4-px blocks. The
  colour output is that ab joined with the input's own L (Zhang et al. 2016 and Iizuka et al. 2016 also
  predict ab at reduced resolution); the posterior P(z|x,y) at full resolution multiplies the upsampled
  prior by each pixel's own likelihood P(y_p | z_p = k, x) at its own L-bin. Both are computed in strips
  of rows, so a 12000 × 9000 photo needs memory for its pixels only (BENCHMARKS.md has the peak).

Sampling (``sample``), the generative story: for each draw, one Gumbel vector g^z (k) and one Gumbel
matrix g^y (k, q) are drawn *per image*; every pixel takes z_p = argmax_k log P(z_p=k|x) + g^z_k and
y_p = argmax_q log P(y_p=q|z_p,x) + g^y_{z_p q}. By the Gumbel-max trick each pixel's (z_p, y_p) is an
exact draw from P(z_p|x) P(y_p|z_p,x), while pixels of one segment share their noise, so a segment takes
one colour, shifted only where the per-pixel lightness term moves its distribution.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from torch import Tensor, nn

from latentvar.colorize import grids
from latentvar.colorize.checkpoint_checks import MAX_CHECKPOINT_BYTES, check_run
from latentvar.colorize.images import read_image_rgb_uint8, to_rgba
from latentvar.colorize.lab import lab_to_rgb, lightness, rgb_to_lab, to_float_rgb
from latentvar.colorize.model import lightness_bin, nats_per_pixel
from latentvar.colorize.quantize import ABBins, rebalance_weights
from latentvar.io import load_checkpoint

WORK_SIDE = 176
RECOLOUR_WIDTH = 10.0  # ab units: the tilt of `Colorizer.recolour`, one bin of the ab grid


def as_image(img) -> np.ndarray:
    """Any accepted image -> (h, w, 3|4) uint8 or float array (floats in [0, 1]; not yet composited)."""
    from PIL import Image

    if isinstance(img, (str, os.PathLike)):
        return read_image_rgb_uint8(img)  # (h, w, 3), or (h, w, 4) only when the file has alpha
    if isinstance(img, Image.Image):
        return to_rgba(img)
    arr = img.numpy() if isinstance(img, Tensor) else np.asarray(img)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"img: expected (h, w), (h, w, 3) or (h, w, 4), got shape {arr.shape}")
    if arr.dtype != np.uint8 and not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"img: expected uint8 or float pixels, got dtype {arr.dtype}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"img: expected an image of at least 1 × 1 pixels, got shape {arr.shape}")
    if arr.dtype != np.uint8 and not np.isfinite(arr).all():
        raise ValueError("img: expected finite pixel values, got NaN or infinity")
    if arr.dtype != np.uint8 and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(
            f"img: expected float pixels in [0, 1] (or uint8 in 0..255), got values in "
            f"[{float(arr.min()):.4g}, {float(arr.max()):.4g}]"
        )
    return arr


as_rgba = as_image  # the earlier name


def _lab(rgb) -> Tensor:
    """RGB(A) uint8/float (..., 3|4) -> Lab float32 (..., 3), alpha on white."""
    return rgb_to_lab(to_float_rgb(rgb))


class Colorizer:
    """A colorization model ready for use: ``Colorizer.load()`` (the shipped photo model),
    ``Colorizer.load("twemoji")`` (the shipped emoji model), ``Colorizer.load(run_dir)``, ``Colorizer.grey()``."""

    def __init__(self, model: nn.Module, size: int, meta: dict | None = None, device: str = "cpu"):
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.size = size
        self.meta = meta or {}
        self.bins = ABBins(model.bin_centres.cpu())
        self.kind = model.kind
        self.arch = getattr(model, "config", {}).get("arch", "emoji")
        self.work_side = int(self.meta.get("work_side", WORK_SIDE))
        self.temperature = float(self.meta.get("temperature", 0.38))  # chosen on val for shipped models
        self.rebalance = float(self.meta.get("rebalance", 0.0))  # likewise; 0: the model's own law
        prior = self.meta.get("bin_prior")  # the train split's smoothed bin marginal (`quantize.bin_prior`)
        self.bin_prior = None if prior is None else torch.tensor(prior, dtype=torch.float64)

    @classmethod
    def load(cls, run: str | os.PathLike | None = None, device: str = "cpu") -> Colorizer:
        """A run directory written by ``latentvar colorize train`` (its best-on-val checkpoint when it has
        one), or a shipped model by name (None: 'photo'; 'twemoji'). Safetensors + JSON only."""
        from latentvar.colorize.shipped import resolve_run
        from latentvar.colorize.train import resolve_device, restore_model

        resolve_device(device)
        run = resolve_run(run)
        name = (
            "best"
            if (os.path.isdir(run) and os.path.isfile(os.path.join(run, "best.json")))
            else "checkpoint"
        )
        tensors, meta = load_checkpoint(run, name=name, max_bytes=MAX_CHECKPOINT_BYTES)
        if not str(meta.get("kind", "")).startswith("colorize-"):
            raise ValueError(f"run: {run} holds a {meta.get('kind')!r} checkpoint, not a colorization run")
        check_run(meta, tensors, os.path.join(run, f"{name}.safetensors"))  # every field, before building
        return cls(restore_model(tensors, meta), meta["config"]["size"], meta, device)

    @classmethod
    def grey(cls, residual_var: float | Tensor = 100.0, size: int = 32) -> Colorizer:
        """The no-training baseline ab = 0 (its NLL via a Gaussian of variance ``residual_var`` per axis)."""
        from latentvar.colorize.model import build_model

        model = build_model("grey", ABBins().centres)
        model.gaussian.residual_var.copy_(torch.as_tensor(residual_var, dtype=torch.float32).expand(2))
        return cls(model, size)

    # -- grids -------------------------------------------------------------------------------------
    def work_shape(self, h: int, w: int) -> tuple[int, int]:
        if self.arch == "emoji":
            return self.size, self.size
        return grids.short_side_shape(h, w, self.work_side, multiple=16)

    def _L(self, rgb: np.ndarray, shape: tuple[int, int]) -> Tensor:
        """The lightness of ``rgb`` resized to ``shape``: (h', w') float32 on the device."""
        return lightness(grids.resize(rgb, shape)).to(self.device)

    def _require_latent(self, what: str) -> None:
        if self.kind != "latent":
            raise ValueError(f"{what}: needs a latent-segmentation run, this one is {self.kind!r}")

    def _latent(self, rgb: np.ndarray):
        """On the work grid: (log P(z|x) (hw, ww, k), log table (k, l, q), L (hw, ww)). The last result is
        kept, keyed by the work-grid lightness itself, so colorize + segment + sample of one image (what
        `apply` does) run the network once."""
        L = self._L(rgb, self.work_shape(*rgb.shape[:2]))
        key = (tuple(L.shape), hash(L.cpu().numpy().tobytes()))
        last = getattr(self, "_last", (None, None))  # one read: another thread may replace it meanwhile
        if last[0] == key:
            return last[1]
        mix = self.model.mixture(L[None])
        result = (mix.log_weights[0], mix.components.log_table[0], L)
        self._last = (key, result)
        return result

    def _strips(self, rgb: np.ndarray, low: Tensor, L_low: Tensor):
        """(rows, L of the strip (r, W), ``low`` (c, hw, ww) upsampled to those rows), top to bottom."""
        for rows, strip in grids.strips(rgb):
            L = lightness(strip).to(self.device)
            yield rows, L, grids.joint_bilateral_rows(low, L_low, L, rgb.shape[:2], rows)

    def _finish(self, rgb: np.ndarray, ab: Tensor, L_low: Tensor) -> np.ndarray:
        """ab on the work grid (hw, ww, 2), or n of them (n, hw, ww, 2), + the input's full-resolution L ->
        RGB uint8 (h, w, 3), or (n, h, w, 3): the n fields are upsampled together, so the strip's L and the
        bilateral weights are computed once for all of them."""
        many = ab.dim() == 4
        fields = ab if many else ab[None]
        n = fields.shape[0]
        out = np.empty((n, *rgb.shape[:2], 3), np.uint8)
        low = fields.permute(0, 3, 1, 2).reshape(2 * n, *fields.shape[1:3]).float()  # (2n, hw, ww)
        for rows, L, up in self._strips(rgb, low, L_low):
            up = up.reshape(n, 2, *up.shape[1:]).permute(0, 2, 3, 1)  # (n, r, W, 2)
            lab = torch.cat([L[None, ..., None].expand(n, *L.shape, 1), up], dim=-1)
            out[:, rows] = (lab_to_rgb(lab) * 255 + 0.5).to(torch.uint8).cpu().numpy()
        return out if many else out[0]

    # -- the API -----------------------------------------------------------------------------------
    @torch.no_grad()
    def colorize(
        self, img, temperature: float | None = None, decode: str = "annealed", rebalance: float | None = None
    ) -> np.ndarray:
        """RGB uint8 (h, w, 3): annealed mean (``temperature``, default the model's; Zhang et al. eq. 5) or
        ``decode='mode'`` of each pixel's law P(y_p | x), reweighted by prior(q)^-``rebalance`` first
        (default the model's; 0 for a run without a bin prior; `quantize.rebalance_weights`): the
        shipped photo model's λ and T were chosen on val for colour without losing AuC to grey."""
        rgb = as_image(img)
        if decode not in ("annealed", "mode"):
            raise ValueError(f"decode: expected 'annealed' or 'mode', got {decode!r}")
        temperature = self.temperature if temperature is None else temperature
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature: expected a positive number, got {temperature!r}")
        weights = self.rebalance_weights(rebalance)
        if self.kind != "latent":
            L = self._L(rgb, self.work_shape(*rgb.shape[:2]))
            if self.kind in ("regression", "grey"):
                return self._finish(rgb, self.model.predict_ab(L[None])[0], L)
            logp = self.model.log_probs(L[None])[0]
            if weights is not None:
                logp = logp + weights.to(logp).log()
            ab = self.bins.annealed_mean(logp, temperature) if decode == "annealed" else self.bins.mode(logp)
            return self._finish(rgb, ab, L)
        log_w, table, L = self._latent(rgb)
        centres = self.bins.centres.to(self.device)
        ab = grids.mixture_decode(log_w, table, lightness_bin(L), centres, temperature, decode, weights)
        return self._finish(rgb, ab, L)

    def set_superpixels(self, scale: float) -> None:
        """From now on pool the learned prior over the grey image's Felzenszwalb regions of ``scale`` (0: off;
        `prior.superpixel_pool`): coarser or finer segments than the model's own scale (chosen on val)."""
        from latentvar.colorize.prior import superpixel_scale

        if self.kind != "latent" or self.model.net.prior != "learned":
            raise ValueError("superpixels: pools a learned segment prior; this model has none")
        self.model.net.superpixels = superpixel_scale(scale)
        self._last = (None, None)  # the cached P(z|x) was pooled at the old scale

    def rebalance_weights(self, rebalance: float | None = None) -> Tensor | None:
        """The (q,) decoding weights prior^-λ (`quantize.rebalance_weights`) for λ = ``rebalance`` (None:
        the model's), on the device; None when λ = 0."""
        rebalance = self.rebalance if rebalance is None else rebalance
        if (
            isinstance(rebalance, bool)
            or not isinstance(rebalance, (int, float))
            or not (math.isfinite(rebalance) and rebalance >= 0)
        ):
            raise ValueError(f"rebalance: expected a finite number >= 0, got {rebalance!r}")
        if rebalance == 0:
            return None
        if self.kind in ("regression", "grey"):
            raise ValueError(
                f"rebalance: a {self.kind} model predicts one colour, there is no law to reweight"
            )
        if self.bin_prior is None:
            raise ValueError(
                "rebalance: this run carries no bin prior (the shipped photo model does; "
                "scripts/colorize_ship.py writes one from the train split)"
            )
        return rebalance_weights(self.bin_prior, rebalance).to(self.device)

    @torch.no_grad()
    def segment_probs(self, img) -> Tensor:
        """P(z|x) on the work grid: (hw, ww, k)."""
        self._require_latent("segment")
        return self._latent(as_image(img))[0].exp()

    @torch.no_grad()
    def segment(self, img, dtype=np.int64) -> np.ndarray:
        """The prior segmentation argmax_k P(z_p=k|x) at the input's full resolution: (h, w) of ``dtype``
        (int64; np.uint8 takes an eighth of the memory for a huge photo)."""
        self._require_latent("segment")
        return self._full_res_argmax(as_image(img), dtype=dtype)

    @torch.no_grad()
    def posterior_segment(self, img, color_img) -> np.ndarray:
        """The exact posterior mode argmax_k P(z_p=k|x, y) at full resolution: int64 (h, w); x is ``img``'s
        lightness, y the quantised ab of ``color_img`` (the same size as ``img``, or resized to it)."""
        self._require_latent("posterior_segment")
        rgb, colour = as_image(img), as_image(color_img)
        if colour.shape[:2] != rgb.shape[:2]:
            colour = grids.resize(colour, rgb.shape[:2])
        return self._full_res_argmax(rgb, colour)

    def _full_res_argmax(self, rgb: np.ndarray, colour_rgb=None, dtype=np.int64) -> np.ndarray:
        """argmax_k of the upsampled P(z_p=k|x) at full resolution, times P(y_p | z_p = k, x) of
        ``colour_rgb``'s quantised ab at the pixel's own L-bin when given (the posterior)."""
        log_w, table, L = self._latent(rgb)
        out = np.empty(rgb.shape[:2], dtype)
        for rows, L_rows, prior in self._strips(rgb, log_w.exp().permute(2, 0, 1), L):
            score = prior  # the prior's argmax needs no log
            if colour_rgb is not None:
                y = self.bins.encode(_lab(colour_rgb[rows])[..., 1:].to(self.device))
                score = prior.clamp_min(1e-30).log() + table[:, lightness_bin(L_rows), y]
            out[rows] = score.max(0).indices.cpu().numpy()  # max(0) is ~5x faster than argmax(0) here
        return out

    @torch.no_grad()
    def sample(self, img, n: int = 3, generator: torch.Generator | None = None) -> np.ndarray:
        """n colorizations, RGB uint8 (n, h, w, 3), each coherent within a segment (see module doc)."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n: expected a positive integer number of samples, got {n!r}")
        rgb = as_image(img)
        q = self.bins.num_bins

        def gumbel(*shape):
            return -torch.log(-torch.log(torch.rand(*shape, generator=generator).clamp(1e-12, 1)))

        if self.kind != "latent":  # no segments: per-pixel Gumbel noise shared by all pixels of a draw
            L = self._L(rgb, self.work_shape(*rgb.shape[:2]))
            logp = self.model.log_probs(L[None])[0].cpu()
            draws = [self.bins.decode((logp + gumbel(q)).argmax(-1)) for _ in range(n)]
            return self._finish(rgb, torch.stack(draws).to(self.device), L)
        log_w, table, L = self._latent(rgb)
        log_w, table, lbin = log_w.cpu(), table.cpu(), lightness_bin(L).cpu()
        k = table.shape[0]
        draws = []
        for _ in range(n):
            z = (log_w + gumbel(k)).argmax(-1)  # (hw, ww)
            choice = (table + gumbel(k, 1, q)).argmax(-1)  # (k, l): the bin each segment takes at each L-bin
            draws.append(self.bins.decode(choice[z, lbin]))
        return self._finish(rgb, torch.stack(draws).to(self.device), L)  # all n upsampled at once

    # -- the segments as a person uses them ----------------------------------------------------------
    @torch.no_grad()
    def palettes(self, img, n: int = 8) -> list[dict]:
        """Each segment's ``n`` most probable colours under P(y | z = k, x): the law of a random pixel of
        segment k on the work grid, p̄_k(q) = Σ_p P(z_p=k|x) P(y_p=q | z_p=k, x) / Σ_p P(z_p=k|x).

        One dict per segment k, in order: ``segment`` k; ``area``, its share of the work grid under
        argmax P(z|x); ``lightness``, the mean L of its pixels (weighted as p̄_k); ``colours``, a list of
        {``ab``: [a, b], ``probability``: p̄_k(q), ``rgb``: [r, g, b] (uint8) of that ab at that lightness},
        most probable first."""
        self._require_latent("palettes")
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= self.bins.num_bins:
            raise ValueError(
                f"n: expected an integer number of colours in 1..{self.bins.num_bins}, got {n!r}"
            )
        log_w, table, L = self._latent(as_image(img))
        k, levels = table.shape[0], table.shape[1]
        flat = log_w.reshape(-1, k)
        # weights scaled by each segment's largest (the scale cancels in p̄_k), so a segment of tiny mass
        # still has its own law instead of 0/0
        w = (flat - flat.amax(0)).exp()  # (p, k)
        # Σ_p w_pk P(q | k, l_p) = Σ_l (Σ_{p: l_p = l} w_pk) P(q | k, l): one (l, k) sum, no (p, k, q) tensor
        per_level = torch.zeros(levels, k, device=w.device).index_add_(0, lightness_bin(L).reshape(-1), w)
        mass = per_level.sum(0)  # (k,), each >= 1
        law = torch.einsum("lk,klq->kq", per_level, table.exp()) / mass[:, None]
        light = (w * L.reshape(-1, 1)).sum(0) / mass
        area = torch.bincount(flat.argmax(-1), minlength=k).float() / w.shape[0]
        probs, index = law.topk(n, dim=-1)  # (k, n)
        ab = self.bins.decode(index.cpu())  # (k, n, 2)
        lab = torch.cat([light.cpu()[:, None, None].expand(k, n, 1), ab], dim=-1)
        rgb = (lab_to_rgb(lab) * 255 + 0.5).to(torch.uint8)
        return [
            {
                "segment": s,
                "area": float(area[s]),
                "lightness": float(light[s]),
                "colours": [
                    {"ab": ab[s, j].tolist(), "probability": float(probs[s, j]), "rgb": rgb[s, j].tolist()}
                    for j in range(n)
                ],
            }
            for s in range(k)
        ]

    @torch.no_grad()
    def recolour(
        self, img, segment: int, ab, base=None, segments=None, width: float = RECOLOUR_WIDTH, where=None
    ) -> np.ndarray:
        """``base`` (RGB uint8 (h, w, 3); default the colorization) with one segment recoloured toward the
        colour ``ab`` = (a, b): every pixel p of segment k = ``segment`` (argmax_k P(z_p=k|x) at full
        resolution, or the given ``segments`` (h, w)) -- only those where ``where`` (bool (h, w), e.g.
        `region_at`: one connected region of k) is True, when given -- takes the mean of its own colour law
        in k tilted toward ab,

            P'(y_p = q) ∝ P(y_p = q | z_p = k, x) · exp(-|c_q - ab|² / 2 width²),

        (c_q the bin centres, width 10 ab units: one bin) joined with the pixel's own L; every other pixel
        keeps base's value. The tilt is conditioning on a soft observation "the colour is near ab", so where
        the segment's law allows ab the pixel takes it, and where it does not (a dark pixel cannot be a
        light yellow) the pixel takes the nearest colour the law does allow."""
        self._require_latent("recolour")
        rgb = as_image(img)
        log_w, table, L = self._latent(rgb)
        k = table.shape[0]
        if not isinstance(segment, (int, np.integer)) or isinstance(segment, bool) or not 0 <= segment < k:
            raise ValueError(f"segment: expected a segment id in 0..{k - 1}, got {segment!r}")
        try:
            target = torch.as_tensor(np.asarray(ab, dtype=np.float64), dtype=torch.float32)
        except (TypeError, ValueError):
            raise ValueError(f"ab: expected a colour (a, b) of two finite numbers, got {ab!r}") from None
        if target.shape != (2,) or not bool(torch.isfinite(target).all()):
            raise ValueError(f"ab: expected a colour (a, b) of two finite numbers, got {ab!r}")
        if not bool(self.bins.in_gamut(target)):
            raise ValueError(f"ab: ({target[0]:g}, {target[1]:g}) is outside the sRGB gamut of the ab bins")
        if not (isinstance(width, (int, float)) and math.isfinite(width) and width > 0):
            raise ValueError(f"width: expected a positive number of ab units, got {width!r}")
        shape = rgb.shape[:2]
        segments = self._full_res_argmax(rgb, dtype=np.uint8) if segments is None else np.asarray(segments)
        if segments.shape != shape:
            raise ValueError(f"segments: expected the image's shape {shape}, got {segments.shape}")
        chosen = segments == segment
        if where is not None:
            where = np.asarray(where)
            if where.shape != shape or where.dtype != np.bool_:
                raise ValueError(f"where: expected a bool mask of the image's shape {shape}, got "
                                 f"{where.dtype} {where.shape}")  # fmt: skip
            chosen &= where
        base = self.colorize(rgb) if base is None else np.asarray(base)
        if base.shape != (*shape, 3) or base.dtype != np.uint8:
            raise ValueError(
                f"base: expected RGB uint8 of shape {(*shape, 3)}, got {base.dtype} {base.shape}"
            )
        centres = self.bins.centres.to(self.device)
        tilt = -(centres - target.to(self.device)).pow(2).sum(-1) / (2 * width**2)  # (q,)
        law = torch.softmax(table[segment] + tilt, dim=-1)  # (l, q): the tilted law at each L-bin
        ab_low = (law @ centres)[lightness_bin(L)]  # (hw, ww, 2)
        out = base.copy()
        ys, xs = np.nonzero(chosen)
        low = ab_low.permute(2, 0, 1).float()
        for start in range(0, len(ys), grids.STRIP_PIXELS):  # only the segment's pixels are upsampled
            y, x = ys[start : start + grids.STRIP_PIXELS], xs[start : start + grids.STRIP_PIXELS]
            L_p = lightness(rgb[y, x]).to(self.device)
            at = (torch.from_numpy(y).to(self.device), torch.from_numpy(x).to(self.device))
            up = grids.joint_bilateral_points(low, L, L_p, shape, *at)  # (2, n)
            lab = torch.cat([L_p[:, None], up.T], dim=-1)
            out[y, x] = (lab_to_rgb(lab) * 255 + 0.5).to(torch.uint8).cpu().numpy()
        return out

    @torch.no_grad()
    def log_prob(self, color_img) -> Tensor:
        """log P(y|x) in nats, summed over the pixels of the work grid; y the quantised ab of ``color_img``
        resized to it, x its L."""
        rgb = as_image(color_img)
        lab = _lab(grids.resize(rgb, self.work_shape(*rgb.shape[:2]))).to(self.device)
        y = self.bins.encode(lab[..., 1:])[None]
        return -nats_per_pixel(self.model.log_probs(lab[None, ..., 0]), y).cpu() * y.numel()

    def __repr__(self) -> str:
        return (
            f"Colorizer(kind={self.kind!r}, arch={self.arch!r}, size={self.size}, bins={self.bins.num_bins})"
        )


def region_at(segments, x: int, y: int) -> np.ndarray:
    """bool (h, w): the connected region (8-neighbours) of ``segments`` (h, w) that holds pixel (x, y) --
    the part of its segment a person pointed at, without the segment's other, separate parts."""
    from skimage.segmentation import flood  # a bool mask: a fifth of the memory of labelling every region

    segments = np.asarray(segments)
    h, w = segments.shape
    for name, v, n in (("x", x, w), ("y", y, h)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not 0 <= v < n:
            raise ValueError(f"{name}: expected a pixel index in 0..{n - 1}, got {v!r}")
    return flood(segments, (int(y), int(x)), connectivity=2)


def grey_residual_var(ab: Tensor) -> Tensor:
    """E[a²], E[b²] over a training set's pixels: the MLE variance of the grey baseline's Gaussian."""
    return ab.pow(2).reshape(-1, 2).mean(0).clamp_min(1.0)
