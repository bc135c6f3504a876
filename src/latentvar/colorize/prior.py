"""The learned segment prior P(z|x) and the training terms that keep it a segmentation.

Shapes (named axes): b batch, k segments, h/w pixels.

P(z|x) is the network's alone: per-pixel logits from the trunk, made spatially coherent by an edge-aware
smoothing *inside* the model (`EdgeAwareSmoothing`, a few mean-field steps guided by the grey image, trained
through the exact NLL). It stays a per-pixel Categorical given x, so the marginal P(y|x), the posterior
P(z|x,y) and samples are exact as before. Optionally (``superpixels``, `superpixel_pool`) the logits are
then averaged over each region of a fine over-segmentation of the grey image (Felzenszwalb & Huttenlocher
2004), so a segment is a union of whole grey-image regions: still a deterministic function of x, so every
exact quantity stays exact. No per-pixel lightness quantiser: lightness enters the network
(its input) and the colour law (its L-bin and slope terms), never as a fixed band assignment.

Three training terms, added to the NLL by `LatentColorizer.forward` (weights in the model's config):
- ``balance`` -- balanced use of the K segments: minus the entropy of the batch's mean P(z|x) (IIC's
  marginal entropy), so the model cannot collapse onto a few segments. Under DDP the batch mean is
  all-reduced (differentiably), so 2 ranks compute the same loss and gradient as 1.
- ``confidence`` -- the mean per-pixel entropy of P(z|x): with ``balance`` it makes IIC's mutual
  information between pixel and segment (balanced *and* decided); balance alone is met by a uniform
  P(z|x) at every pixel.
- ``invariance`` -- photometric invariance: P(z|x) should not move when the grey input's brightness,
  contrast or gamma changes (IIC / PiCIE's transformation consistency). A lightness quantiser cannot
  satisfy it; a segmenter of objects can. The jitter of each image is drawn from a generator seeded by the
  image's own pixels (`jitter_lightness`), so a batch's loss is a pure function of the batch: resumed runs
  and any split of the batch over ranks see the same jitter.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

PRIORS = ("learned", "lightness")  # 'lightness': the earlier hand-set quantiser term (old checkpoints)
MAX_SUPERPIXEL_SCALE = 1e5


def superpixel_scale(scale) -> float:
    """``scale`` of `superpixel_pool` checked: a number in [0, MAX_SUPERPIXEL_SCALE] (0: no pooling)."""
    if (
        isinstance(scale, bool)
        or not isinstance(scale, (int, float))
        or not 0 <= scale <= MAX_SUPERPIXEL_SCALE
    ):
        raise ValueError(f"superpixels: expected a scale from 0 to {MAX_SUPERPIXEL_SCALE:g}, got {scale!r}")
    return float(scale)


def superpixel_labels(L: Tensor, scale: float) -> Tensor:
    """Felzenszwalb's graph-based over-segmentation of each grey image L (b, h, w) in [0, 100]: int64
    (b, h, w) region ids, 0..n_i-1 per image. ``scale`` is skimage's (larger: fewer, larger regions; in
    pixels of the grid it runs on), with σ = 0.5 pre-smoothing and regions of at least scale / 4 pixels."""
    from skimage.segmentation import felzenszwalb

    grey = (L.detach().float().cpu() / 100.0).clamp(0, 1).numpy().astype(np.float64)
    min_size = max(4, int(scale / 4))
    labels = [felzenszwalb(g, scale=scale, sigma=0.5, min_size=min_size) for g in grey]
    return torch.from_numpy(np.stack(labels)).to(device=L.device, dtype=torch.int64)


def superpixel_pool(logits: Tensor, L: Tensor, scale: float) -> Tensor:
    """logits (b, k, h, w) of P(z|x) -> the same with each pixel's logits replaced by their mean over its
    region of `superpixel_labels` (L (b, h, w), the same grid). Differentiable in ``logits``; the regions
    depend on x alone, so P(z|x) stays a per-pixel Categorical given x."""
    b, k, h, w = logits.shape
    labels = superpixel_labels(L, scale).reshape(b, 1, h * w)
    flat = logits.reshape(b, k, h * w).float()
    n = int(labels.max()) + 1
    sums = flat.new_zeros(b, k, n).scatter_add(2, labels.expand(b, k, h * w), flat)
    counts = flat.new_zeros(b, 1, n).scatter_add(2, labels, torch.ones_like(flat[:, :1]))
    means = sums / counts.clamp_min(1.0)
    return means.gather(2, labels.expand(b, k, h * w)).reshape(b, k, h, w).to(logits.dtype)


class EdgeAwareSmoothing(nn.Module):
    """Mean-field-style smoothing of segment logits guided by lightness: (b, k, h, w) -> (b, k, h, w).

    Each step adds to a pixel's logits λ · (the mean of its neighbours' segment probabilities), the
    neighbours weighted by exp(-(ℓ_p - ℓ_q)² / 2σ²) -- a Potts attraction that stops at lightness edges,
    as one mean-field update of a dense CRF on a 3×3 window (Krähenbühl & Koltun 2011, Zheng et al. 2015).
    Step i looks at neighbours 2^i pixels away, so 3 steps reach 7 pixels. λ (≥ 0) and σ are learned.
    """

    def __init__(self, steps: int = 3, strength: float = 2.0, sigma: float = 0.1):
        super().__init__()
        self.steps = steps
        self.log_strength = nn.Parameter(torch.tensor(math.log(strength)))
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)))

    def forward(self, logits: Tensor, x: Tensor) -> Tensor:
        """logits (b, k, h, w), x (b, 1, h, w) the network's lightness input in [-1, 1]."""
        if self.steps == 0:
            return logits
        h, w = logits.shape[-2:]
        strength = self.log_strength.exp()
        inv_two_var = 0.5 * torch.exp(-2.0 * self.log_sigma)
        out = logits
        for step in range(self.steps):
            d = 2**step
            xp = F.pad(x, (d, d, d, d), mode="replicate")
            probs = F.pad(torch.softmax(out, 1), (d, d, d, d), mode="replicate")
            message, total = 0.0, 0.0
            for dy in (0, d, 2 * d):
                for dx in (0, d, 2 * d):
                    if dy == d and dx == d:
                        continue  # the pixel itself
                    weight = torch.exp(-((xp[..., dy : dy + h, dx : dx + w] - x) ** 2) * inv_two_var)
                    message = message + weight * probs[..., dy : dy + h, dx : dx + w]
                    total = total + weight
            out = logits + strength * message / (total + 1e-6)
        return out


def jitter_lightness(L: Tensor) -> Tensor:
    """A photometric jitter of each grey image L (b, h, w) in [0, 100]: gamma in [0.67, 1.5], contrast in
    [0.7, 1.3] about its mean, brightness ± 12 L units, clipped to [0, 100].

    The parameters of image i come from a generator seeded by a checksum of its own pixels, so the jitter
    is a pure function of the image: the same whatever batch, rank or resumed run it appears in."""
    b = L.shape[0]
    codes = (L.detach().reshape(b, -1) * 2.55).round().to(torch.int64)
    ramp = torch.arange(codes.shape[1], device=L.device, dtype=torch.int64) % 9973 + 1
    checksums = ((codes * ramp).sum(1) % (2**31 - 1)).tolist()
    params = torch.empty(b, 3)
    for i, seed in enumerate(checksums):
        g = torch.Generator().manual_seed(int(seed))
        params[i] = torch.rand(3, generator=g)
    params = params.to(L)
    gamma = torch.exp((params[:, 0] * 2 - 1) * math.log(1.5))[:, None, None]
    contrast = (0.7 + 0.6 * params[:, 1])[:, None, None]
    shift = ((params[:, 2] * 2 - 1) * 12.0)[:, None, None]
    u = (L / 100.0).clamp(0, 1) ** gamma * 100.0
    mean = u.mean((1, 2), keepdim=True)
    return ((u - mean) * contrast + mean + shift).clamp(0.0, 100.0)


def _global_mean(probs: Tensor) -> Tensor:
    """The mean of P(z|x) over batch and pixels, (k,); over every DDP rank's batch when one is running
    (a differentiable all-reduce, so the gradient equals the single-process one)."""
    total = probs.sum((0, 2, 3))
    count = torch.tensor(float(probs.shape[0] * probs.shape[2] * probs.shape[3]), device=probs.device)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        from torch.distributed.nn.functional import all_reduce

        total = all_reduce(total)
        count = count * dist.get_world_size()
    return total / count


def balance_loss(log_probs: Tensor) -> Tensor:
    """log P(z|x) (b, k, h, w) -> log K - H(mean P(z|x)) ≥ 0: zero when the K segments are used equally
    over the batch, log K when one segment takes every pixel."""
    mean = _global_mean(log_probs.exp())
    k = log_probs.shape[1]
    return math.log(k) + (mean * mean.clamp_min(1e-12).log()).sum()


def confidence_loss(log_probs: Tensor) -> Tensor:
    """log P(z|x) (b, k, h, w) -> the mean per-pixel entropy of P(z|x), nats: zero when every pixel is sure
    of its segment. With `balance_loss` it is IIC's objective, log K minus the mutual information between
    a pixel and its segment; without it, a uniform P(z|x) at every pixel satisfies the balance (and the
    invariance) term trivially."""
    return -(log_probs.exp() * log_probs).sum(1).mean()


def invariance_loss(log_p: Tensor, log_q: Tensor) -> Tensor:
    """The symmetric KL between two per-pixel segmentations (b, k, h, w), nats per pixel."""
    p, q = log_p.exp(), log_q.exp()
    return 0.5 * ((p * (log_p - log_q)).sum(1) + (q * (log_q - log_p)).sum(1)).mean()
