"""Colorization models: x = L (the grey image), y = ab quantised to Q in-gamut bins (`ABBins`).

Shapes (named axes): b batch, h/w pixels, k segments, q ab bins, l L-bins, c feature channels.

`LatentColorizer` -- the flagship. A per-pixel mixture over K segments (a `ConditionalMixture` whose
`Mixture` has batch shape (b, h, w) and K components):

    P(y|x) = Π_pixels Σ_k P(z_p = k | x) P(y_p | z_p = k, x)

- P(z|x): a small fully convolutional net, a softmax over K at every pixel (the prior segmentation).
- P(y_p | z_p = k, x) = softmax_q( α_kq + β_kq ℓ_p + u_{l(p) q} ): a Categorical over the Q ab bins whose
  logits depend on the image only through segment k's summary s_k (the features pooled under the soft
  segment mask P(z=k|x)) -> (α_k, β_k) by a small MLP, plus a low-capacity per-pixel term of the pixel's
  own lightness: β_k ℓ_p (ℓ_p = L_p/50 - 1) and u_{l(p)}, one learned Q-vector per L-bin (10 bins of 10 L
  units) shared by every image and segment -- which carries the gamut (near L = 0 or 100, ab must be 0).
  With ``colour_law='levels'`` the MLP gives segment k one logit vector α_{k,l} per L-bin instead of
  α_k + β_k ℓ (the pixel still enters only through its L-bin). With ``colour_law='global'`` (α_k, β_k) are
  parameters shared by every image: segment k is one colour class everywhere (a latent-class model whose
  classes P(z|x) predicts from the grey image), not a region whose colour the image sets.

Because a segment's colour law sees the image only through its summary, a segment *is* a region that
shares a colour distribution: that is what makes z interpretable. Training minimises the exact marginal
NLL by one logsumexp over k per pixel; the exact posterior P(z|x,y) is `Mixture.posterior`.

Baselines (in `baselines`, importable from here too), trained by the same code: `PerPixelColorizer` (no latent: a Q-way softmax per pixel from the
same trunk, Zhang et al. 2016 without class rebalancing) and `RegressionColorizer` (L2 on ab; its NLL is
reported through a Gaussian on the bin centres whose variance is the training MSE, `GaussianBins`).
"""

from __future__ import annotations

import math

import torch
import torch.distributions as D
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from latentvar.colorize.prior import (
    PRIORS,
    EdgeAwareSmoothing,
    balance_loss,
    confidence_loss,
    invariance_loss,
    jitter_lightness,
    superpixel_pool,
    superpixel_scale,
)
from latentvar.colorize.trunks import ARCHS, PhotoTrunk, Trunk, build_trunk, replicate_borders  # noqa: F401
from latentvar.mixture import ConditionalMixture, Mixture

L_BINS = 10
# a segment's colour law across lightness: 'linear' -- logits α_k + β_k ℓ (one colour whose odds drift with
# L); 'levels' -- one logit vector per L-bin (a sky's pale horizon and deep zenith, a shadowed and a lit
# lawn: one segment, a colour per lightness level); 'global' -- 'linear' with (α_k, β_k) shared by every
# image (segment k means one colour class in all images). Each adds the shared gamut term u_l.
COLOUR_LAWS = ("linear", "levels", "global")


def lightness_input(L: Tensor) -> Tensor:
    """L (b, h, w) in [0, 100] -> the network's input (b, 1, h, w), centred and scaled to [-1, 1]."""
    return (L / 50.0 - 1.0).unsqueeze(1)


def lightness_bin(L: Tensor, bins: int = L_BINS) -> Tensor:
    """L (b, h, w) -> int64 (b, h, w) index of its L-bin (equal widths over [0, 100])."""
    return (L * (bins / 100.0)).floor().clamp(0, bins - 1).to(torch.int64)


def upsample(x: Tensor, like: Tensor) -> Tensor:
    """(b, c, h', w') -> (b, c, h, w) bilinearly, (h, w) the last two sizes of ``like``."""
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class SegmentColour(D.Distribution):
    """P(y_p | z_p = k, x) for every pixel p and segment k: Categorical over q, batch_shape (b, h, w, k).

    Stored compactly as ``log_table`` (b, k, l, q) -- the log-probabilities of segment k at L-bin l -- and
    each pixel's L-bin ``lbin`` (b, h, w); a pixel's distribution is one row of the table, so the
    (b, h, w, k, q) tensor is never built (``probs_per_pixel`` builds it, for small inputs and tests).
    """

    arg_constraints: dict = {}

    def __init__(self, log_table: Tensor, lbin: Tensor):
        self.log_table = log_table
        self.lbin = lbin
        b, k, _, q = log_table.shape
        self.num_bins = q
        super().__init__(torch.Size((*lbin.shape, k)), validate_args=False)

    @property
    def support(self):
        return D.constraints.integer_interval(0, self.num_bins - 1)

    def expand(self, batch_shape, _instance=None):
        if torch.Size(batch_shape) != self.batch_shape:
            raise ValueError(
                f"batch_shape: SegmentColour cannot expand {tuple(self.batch_shape)} to {batch_shape}"
            )
        return self

    def log_prob(self, value: Tensor) -> Tensor:
        """value: bins broadcastable to (b, h, w, 1) -> log P(y_p = value | z_p = k, x): (b, h, w, k)."""
        b, k, _, q = self.log_table.shape
        value = value.expand(*self.lbin.shape, 1)[..., 0]
        flat = rearrange(self.lbin * q + value, "b h w -> b 1 (h w)").expand(b, k, -1)
        picked = self.log_table.flatten(2).gather(2, flat)  # (b, k, h*w)
        return rearrange(picked, "b k (h w) -> b h w k", h=self.lbin.shape[1])

    def log_probs_per_pixel(self) -> Tensor:
        """(b, h, w, k, q): every pixel's full distribution (memory b·h·w·k·q -- small inputs only)."""
        b = torch.arange(self.lbin.shape[0], device=self.lbin.device).reshape(-1, 1, 1)
        return rearrange(self.log_table, "b k l q -> b l k q")[b, self.lbin]

    def sample(self, sample_shape=torch.Size()) -> Tensor:
        return D.Categorical(logits=self.log_probs_per_pixel()).sample(sample_shape)


class LatentColorNet(nn.Module):
    """x (b, h, w) lightness -> (prior logits (b, h, w, k), `SegmentColour` with batch (b, h, w, k)).

    ``prior`` -- 'learned' (default for new runs): P(z|x) is the trunk's segment logits, upsampled and
    smoothed edge-aware (`prior.EdgeAwareSmoothing`, ``smooth_steps`` mean-field steps) and, with
    ``superpixels`` > 0, averaged over the grey image's Felzenszwalb regions of that scale
    (`prior.superpixel_pool`); 'lightness': the
    earlier prior, which added a hand-set per-pixel lightness quantiser -exp(s)(ℓ_p - m_k)² (kept so runs
    and shipped models from before load and behave as they did).
    """

    def __init__(
        self,
        num_bins: int,
        segments: int = 8,
        width: int = 16,
        hidden: int = 64,
        arch: str = "emoji",
        prior: str = "lightness",
        smooth_steps: int = 3,
        colour_law: str = "linear",
        superpixels: float = 0.0,
    ):
        super().__init__()
        if prior not in PRIORS:
            raise ValueError(f"prior: expected one of {PRIORS}, got {prior!r}")
        if colour_law not in COLOUR_LAWS:
            raise ValueError(f"colour_law: expected one of {COLOUR_LAWS}, got {colour_law!r}")
        self.superpixels = superpixel_scale(superpixels)
        if self.superpixels and prior != "learned":
            raise ValueError("superpixels: pools the learned prior's logits; expected prior 'learned'")
        self.prior, self.colour_law = prior, colour_law
        self.trunk = build_trunk(arch, width)
        self.segment_head = nn.Conv2d(width, segments, 1)
        # summary: pooled features, the segment's share of the image and its mean lightness
        if colour_law == "global":
            # (α, β) per segment, shared by every image; `colour_wheel` sets α from the bins' ab centres
            self.global_law = nn.Parameter(0.1 * torch.randn(segments, 2, num_bins))
        else:
            self.colour_head = nn.Sequential(
                nn.Linear(width + 2, hidden),
                nn.ReLU(),
                nn.Linear(hidden, (2 if colour_law == "linear" else L_BINS) * num_bins),
            )
        self.lightness_logits = nn.Parameter(torch.zeros(L_BINS, num_bins))  # u: (l, q)
        self.register_buffer("bin_lightness", (torch.arange(L_BINS) + 0.5) * (2.0 / L_BINS) - 1.0)
        if prior == "lightness":
            # segment k starts as "pixels of lightness near m_k" (a soft k-means on L), sharpness 10·K²/2
            self.lightness_centres = nn.Parameter(torch.linspace(-1.0, 1.0, segments))
            self.log_sharpness = nn.Parameter(torch.tensor(math.log(10 * segments**2 / 2.0)))
        else:
            # replicated borders: with zeros the trunk sees every image edge as a feature, and the balance
            # term then finds a cheap use for a segment as a frame around the image
            replicate_borders(self.trunk)
            self.smoothing = EdgeAwareSmoothing(smooth_steps)  # at the trunk's grid: dilations 1, 2, 4
            self.refine = EdgeAwareSmoothing(min(smooth_steps, 1))  # one step at the input's grid
        self.segments = segments

    @torch.no_grad()
    def colour_wheel(self, centres: Tensor, radius: float = 40.0, width: float = 20.0) -> None:
        """The 'global' law's start: segment 0 neutral, the others evenly spaced hues at chroma ``radius``
        (α_kq = -|c_q - m_k|² / 2·width², β = 0), so every segment explains a different colour from the first
        step. Measured on Twemoji without the balance term: from a random start one segment took every
        pixel's argmax, from this start the neutral class still took 95 % (docs/colorize.md)."""
        k = self.segments
        hue = torch.arange(k - 1, dtype=centres.dtype) * (2 * math.pi / max(k - 1, 1))
        means = torch.cat([centres.new_zeros(1, 2), radius * torch.stack([hue.cos(), hue.sin()], -1)])
        self.global_law[:, 0] = -torch.cdist(means, centres.to(means.dtype)).square() / (2 * width**2)
        self.global_law[:, 1] = 0.0

    def lightness_prior(self, x: Tensor) -> Tensor:
        """(b, 1, h, w) -> (b, k, h, w): -exp(s) (ℓ - m_k)² (the 'lightness' prior only)."""
        return -self.log_sharpness.exp() * (x - self.lightness_centres[None, :, None, None]) ** 2

    def semantic(self, L: Tensor) -> tuple[Tensor, Tensor]:
        """L (b, h, w) -> (features (b, c, h/s, w/s), semantic logits (b, k, h/s, w/s)), s the trunk's stride."""
        features = self.trunk(lightness_input(L))
        return features, self.segment_head(features)

    def coarse_logits(self, L: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """L (b, h, w) -> (features, semantic logits, the learned prior's logits), all at the trunk's grid:
        the semantic logits smoothed edge-aware there (guided by the lightness averaged to that grid)."""
        x = lightness_input(L)
        features, semantic = self.semantic(L)
        return features, semantic, self.smoothing(semantic, F.adaptive_avg_pool2d(x, semantic.shape[-2:]))

    def prior_logits(self, L: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """L (b, h, w) -> (logits of P(z|x) (b, k, h, w), features, semantic logits at the trunk's grid).

        The learned prior: `coarse_logits` upsampled to the input's grid, then one more edge-aware step
        there (so boundaries follow the grey image's edges at full resolution)."""
        x = lightness_input(L)
        if self.prior == "lightness":
            features, semantic = self.semantic(L)
            return upsample(semantic, x) + self.lightness_prior(x), features, semantic
        features, semantic, coarse = self.coarse_logits(L)
        logits = self.refine(upsample(coarse, x), x)
        if self.superpixels:
            logits = superpixel_pool(logits, L, self.superpixels)
        return logits, features, semantic

    def forward(self, L: Tensor) -> tuple[Tensor, SegmentColour]:
        logits, features, semantic = self.prior_logits(L)
        return rearrange(logits, "b k h w -> b h w k"), self.components(features, semantic, L, logits)

    def components(self, features: Tensor, semantic: Tensor, L: Tensor, logits: Tensor | None = None):
        """Each segment's colour law (a `SegmentColour`) from its summary (`segment_logits`) and the shared
        gamut term; L (b, h, w) gives the pixels' L-bins."""
        table = self.segment_logits(features, semantic, L, logits) + self.lightness_logits[None, None]
        table = table.expand(L.shape[0], -1, -1, -1)  # (b, k, l, q); the 'global' law is one for all images
        return SegmentColour(torch.log_softmax(table, dim=-1), lightness_bin(L))

    def segment_logits(self, features: Tensor, semantic: Tensor, L: Tensor, logits: Tensor | None) -> Tensor:
        """Segment k's own logits at each L-bin, (b, k, l, q) -- (1, k, l, q) for the 'global' law. The
        summary pools the features under P(z|x) at the features' resolution: the full-resolution
        ``logits`` averaged down (the learned prior), or the lightness prior's coarse form."""
        if self.colour_law == "global":
            alpha, beta = self.global_law[None].unbind(2)  # (1, k, q) each: the same for every image
        else:
            head = self.colour_head(self.summary(features, semantic, L, logits))
            if self.colour_law == "levels":  # the segment's own logits at each L-bin
                return rearrange(head, "b k (l q) -> b k l q", l=L_BINS)
            alpha, beta = head.chunk(2, dim=-1)  # (b, k, q) each
        return alpha[:, :, None, :] + beta[:, :, None, :] * self.bin_lightness[None, None, :, None]

    def summary(self, features: Tensor, semantic: Tensor, L: Tensor, logits: Tensor | None) -> Tensor:
        """(b, k, c + 2): each segment's features pooled under its soft mask, its share of the image and its
        mean lightness, all at the features' resolution."""
        x_coarse = F.adaptive_avg_pool2d(lightness_input(L), semantic.shape[-2:])
        if self.prior == "lightness" or logits is None:
            coarse = semantic + (self.lightness_prior(x_coarse) if self.prior == "lightness" else 0.0)
        else:
            coarse = F.adaptive_avg_pool2d(logits, semantic.shape[-2:])
        mask = torch.softmax(coarse, dim=1)
        mass = mask.sum((2, 3)) + 1e-6  # (b, k)
        pooled = torch.einsum("bkhw,bchw->bkc", mask, features) / mass[..., None]
        mean_l = torch.einsum("bkhw,bhw->bk", mask, x_coarse[:, 0]) / mass
        share = mass / (mask.shape[2] * mask.shape[3])
        return torch.cat([pooled, share[..., None], mean_l[..., None]], dim=-1)


class LatentColorizer(nn.Module):
    """The latent-segmentation colorizer; ``mixture(L)`` is the per-pixel `Mixture` P(y|x).

    Training loss (``forward``): the exact marginal NLL + ``balance`` · `prior.balance_loss` +
    ``confidence`` · `prior.confidence_loss` + ``invariance`` · `prior.invariance_loss` (the learned
    prior's terms; see `prior`)."""

    kind = "latent"

    def __init__(
        self,
        num_bins: int,
        segments: int = 8,
        width: int = 16,
        hidden: int = 64,
        arch: str = "emoji",
        prior: str = "lightness",
        smooth_steps: int = 3,
        balance: float = 0.0,
        invariance: float = 0.0,
        confidence: float = 0.0,
        colour_law: str = "linear",
        superpixels: float = 0.0,
    ):
        super().__init__()
        net = LatentColorNet(
            num_bins, segments, width, hidden, arch, prior, smooth_steps, colour_law, superpixels
        )
        self.model = ConditionalMixture(net)
        self.config = {"segments": segments, "width": width, "hidden": hidden, "arch": arch, "prior": prior}
        if colour_law != "linear":  # runs from before the option carry no key
            self.config["colour_law"] = colour_law
        if prior == "learned":
            self.config |= {"smooth_steps": smooth_steps, "balance": balance, "invariance": invariance}
            if confidence:  # runs from before the term carry no key
                self.config["confidence"] = confidence
            if superpixels:  # nor runs from before the option
                self.config["superpixels"] = float(superpixels)
        self.balance, self.invariance, self.confidence = balance, invariance, confidence

    @property
    def net(self) -> LatentColorNet:
        return self.model.network

    def mixture(self, L: Tensor) -> Mixture:
        return self.model(L)

    def forward(self, L: Tensor, y: Tensor, ab: Tensor) -> Tensor:
        """The training loss: the exact marginal NLL, nats per pixel (mean over b, h, w), plus the learned
        prior's balance and invariance terms when their weights are set."""
        logits, features, semantic = self.net.prior_logits(L)
        components = self.net.components(features, semantic, L, logits)
        log_w = torch.log_softmax(logits, 1)  # (b, k, h, w)
        nll = -torch.logsumexp(rearrange(log_w, "b k h w -> b h w k") + components.log_prob(y[..., None]), -1)
        loss = nll.mean()
        if self.balance:
            loss = loss + self.balance * balance_loss(log_w)
        if self.confidence:
            loss = loss + self.confidence * confidence_loss(log_w)
        if self.invariance:
            # compared at the trunk's grid (the jittered copy needs no full-resolution pass)
            clean = torch.log_softmax(F.adaptive_avg_pool2d(logits, semantic.shape[-2:]), 1)
            jittered = torch.log_softmax(self.net.coarse_logits(jitter_lightness(L))[2], 1)
            loss = loss + self.invariance * invariance_loss(clean, jittered)
        return loss

    def log_probs(self, L: Tensor) -> Tensor:
        """Per-pixel marginal log P(y_p = q | x), (b, h, w, q) = log Σ_k P(z_p=k|x) P(q|z_p=k, x)."""
        mix = self.model(L)
        weights = mix.weights  # (b, h, w, k)
        table = mix.components.log_table.exp()  # (b, k, l, q)
        levels = F.one_hot(mix.components.lbin, table.shape[2]).to(weights.dtype)  # (b, h, w, l)
        # weight of (segment k, L-bin l) at each pixel: nonzero only at the pixel's own L-bin; one dense bmm
        spread = torch.einsum("bhwk,bhwl->bhwlk", weights, levels).flatten(3)  # (b, h, w, l*k)
        mixed = torch.einsum("bhwj,bjq->bhwq", spread, rearrange(table, "b k l q -> b (l k) q"))
        return mixed.clamp_min(1e-30).log()


MODELS = ("latent", "per-pixel", "regression")


def build_model(
    kind: str,
    centres: Tensor,
    segments: int = 8,
    width: int = 16,
    hidden: int = 64,
    arch: str = "emoji",
    depth: int = 0,
    **prior_options,
) -> nn.Module:
    """A fresh model of ``kind`` ("latent", "per-pixel", "regression", "grey") over the bins ``centres``;
    ``arch`` picks the trunk ('emoji': 32×32 images, 'photo': crops of photos, see `PhotoTrunk`), ``depth``
    its extra residual blocks (photo only); ``prior_options`` (latent only): ``prior``, ``smooth_steps``,
    ``balance``, ``invariance`` of `LatentColorizer` (the default prior is the earlier 'lightness' one, as
    runs from before need)."""
    q = centres.shape[0]
    if arch not in ARCHS:
        raise ValueError(f"arch: expected one of {ARCHS}, got {arch!r}")
    from latentvar.colorize.baselines import GreyColorizer, PerPixelColorizer, RegressionColorizer

    if kind == "latent":
        model = LatentColorizer(q, segments, width, hidden, arch, **prior_options)
        if model.net.colour_law == "global":
            model.net.colour_wheel(centres)
    elif kind == "per-pixel":
        model = PerPixelColorizer(q, width, arch)
    elif kind == "regression":
        model = RegressionColorizer(centres, width, arch)
    elif kind == "grey":
        model = GreyColorizer(centres)
    else:
        raise ValueError(f"model: expected one of {(*MODELS, 'grey')}, got {kind!r}")
    if depth and kind != "grey":  # the deeper trunk replaces the default one (the models build depth 0)
        owner = model.net if kind == "latent" else model
        owner.trunk = build_trunk(arch, width, depth)
        if kind == "latent" and model.net.prior == "learned":
            replicate_borders(owner.trunk)
        model.config["depth"] = depth
    model.register_buffer("bin_centres", centres.clone())  # saved with the weights: the bins travel along
    return model


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def nats_per_pixel(log_probs: Tensor, y: Tensor) -> Tensor:
    """Mean -log P(y_p) over pixels from per-pixel log-probabilities (b, h, w, q) and bins y (b, h, w)."""
    return -log_probs.gather(-1, y.unsqueeze(-1)).mean()


def __getattr__(name: str):
    """The baselines live in `baselines`; they stay importable from here."""
    if name in ("PerPixelColorizer", "GaussianBins", "RegressionColorizer", "GreyColorizer"):
        from latentvar.colorize import baselines

        return getattr(baselines, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
