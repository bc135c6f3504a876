"""What fitting needs of each distribution family, one layer shared by `Mixture.fit` and `HMM.fit`.

- EM over sufficient statistics (pomegranate's summarize / from_summaries): `em_family` names the family
  of a components / emission distribution, `SufficientStatistics` accumulates Σ_n r_nk T(y_n) for the
  family's statistics T over any number of batches, then does the closed-form M-step. Families: Gaussian
  (full, diagonal, and the 'tied' / 'spherical' covariance types), Categorical, Poisson, Exponential,
  Multinomial, and Gaussian mixtures (`MixtureSameFamily`, the emission of a GMM-HMM).
- Gradient fitting: `unconstrained` gives a family's unconstrained leaf tensors and the function that
  rebuilds the Distribution from them each step.

Shapes: n observations, k components (or states), m mixture components per state, d event dimensions,
v categories.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.distributions as D
from torch import Tensor, nn

COVARIANCE_TYPES = {"full": ("full", "tied"), "diag": ("diag", "spherical")}  # family -> its types
MEANS = ("poisson", "exponential", "multinomial")  # families whose statistics are Σ r y and Σ r


def em_family(dist: D.Distribution, name: str = "components") -> str:
    """'full' (MultivariateNormal), 'diag' (Normal, Independent(Normal)), 'categorical' (Categorical,
    Independent(Categorical)), 'poisson' / 'exponential' (optionally in Independent), 'multinomial', or
    'gmm' (MixtureSameFamily of Categorical weights and Gaussian components); a ValueError naming ``name``
    for any other family."""
    if isinstance(dist, D.MixtureSameFamily):
        if em_family(dist.component_distribution, name) not in COVARIANCE_TYPES:
            raise ValueError(f"{name}: EM supports mixtures of Gaussian components only")
        return "gmm"
    base = dist.base_dist if isinstance(dist, D.Independent) else dist
    if isinstance(dist, D.MultivariateNormal):
        return "full"
    if isinstance(base, D.Normal):
        return "diag"
    if isinstance(base, D.Categorical) and not isinstance(base, D.OneHotCategorical):
        return "categorical"
    for family, cls in (
        ("poisson", D.Poisson),
        ("exponential", D.Exponential),
        ("multinomial", D.Multinomial),
    ):
        if isinstance(base, cls) and (family != "multinomial" or base is dist):
            return family
    raise ValueError(
        f"{name}: EM supports MultivariateNormal, Normal / Independent(Normal), Categorical / "
        "Independent(Categorical), Poisson, Exponential, Multinomial and MixtureSameFamily(Categorical, "
        f"Gaussian) families, got {type(base).__name__}; use method='gradient' for others"
    )


class SufficientStatistics:
    """The EM statistics of k components of one family: ``summarize(y, resp)`` adds a batch of
    observations y (n, *event) with responsibilities resp (n, k); ``from_summaries`` is the M-step.

    Gaussian statistics are accumulated about the first batch's mean (the shifted-data algorithm), so
    E[y yᵀ] − μ μᵀ keeps its precision where the spread is small against the mean. ``covariance_type``
    (Gaussian families): None for the family's own, 'tied' (one full covariance shared by every component,
    MultivariateNormal) or 'spherical' (one variance per component shared by every dimension,
    Independent(Normal)). A mixture emission (gmm) splits each responsibility over its components by
    their posterior under the current parameters (the inner E-step of a GMM-HMM) and keeps inner statistics."""

    def __init__(
        self,
        dist: D.Distribution,
        name: str = "components",
        covariance_type: str | None = None,
        shift: Tensor | None = None,
    ):
        self.family = em_family(dist, name)
        self.dist = dist
        self.independent = isinstance(dist, D.Independent)
        base = dist.base_dist if self.independent else dist
        self.num_values = base.logits.shape[-1] if self.family == "categorical" else 0
        self.n = self.sy = self.syy = self.counts = None
        self.shift = shift  # Gaussian statistics are about it (None: the first batch's mean)
        self.covariance = self.family if self.family in COVARIANCE_TYPES else None
        if self.family == "gmm":
            self.inner = SufficientStatistics(dist.component_distribution, name, covariance_type, shift)
            if self.inner.covariance == "tied":
                raise ValueError("covariance_type: 'tied' is not supported for mixture (GMM) emissions")
        elif covariance_type is not None:
            allowed = COVARIANCE_TYPES.get(self.family, ())
            if covariance_type not in allowed:
                raise ValueError(
                    f"covariance_type: expected one of {allowed} for a {type(base).__name__} {name}, "
                    f"got {covariance_type!r}"
                )
            self.covariance = covariance_type

    def summarize(self, y: Tensor, resp: Tensor) -> None:
        r = resp
        self.n = r.sum(0) if self.n is None else self.n + r.sum(0)
        if self.family == "gmm":
            mix = self.dist
            lp = mix.component_distribution.log_prob(y.reshape(y.shape[0], 1, 1, *y.shape[1:]).to(r.dtype))
            post = torch.softmax(lp + mix.mixture_distribution.logits.log_softmax(-1), -1)  # (n, k, m)
            rm = r.unsqueeze(-1) * post.to(r.dtype)
            self.counts = rm.sum(0) if self.counts is None else self.counts + rm.sum(0)
            self.inner.summarize(y, rm.reshape(y.shape[0], -1))
            return
        if self.family == "categorical":
            if self.independent:  # y (n, d): counts (k, d, v)
                onehot = nn.functional.one_hot(y.long(), self.num_values).to(r.dtype)
                counts = torch.einsum("nk,ndv->kdv", r, onehot)
            else:  # y (n,): index the counts instead of a one-hot (n, v)
                counts = r.new_zeros(r.shape[1], self.num_values).index_add_(1, y.long(), r.T)
            self.counts = counts if self.counts is None else self.counts + counts
            return
        y = y.to(r.dtype)
        if self.family in MEANS:
            sy = r.T @ y.reshape(y.shape[0], -1)  # (k, d), d = 1 for a scalar family
            self.sy = sy if self.sy is None else self.sy + sy
            return
        y = y if self.family == "full" or self.independent else y[:, None]  # Normal: one dimension
        if self.shift is None:
            self.shift = y.mean(0) if y.shape[0] else y.new_zeros(y.shape[1:])
        yc = y - self.shift
        sy = r.T @ yc
        syy = torch.einsum("nk,nd,ne->kde", r, yc, yc) if self.family == "full" else r.T @ (yc * yc)
        self.sy = sy if self.sy is None else self.sy + sy
        self.syy = syy if self.syy is None else self.syy + syy

    def tensors(self) -> list[Tensor]:
        """The accumulated statistics, in a fixed order (to all-reduce across processes, or to blend)."""
        own = [x for x in (self.n, self.sy, self.syy, self.counts) if x is not None]
        return own + (self.inner.tensors() if self.family == "gmm" else [])

    def set_tensors(self, tensors: list[Tensor]) -> None:
        """Replace the statistics by ``tensors`` (the order of `tensors`)."""
        it = iter(tensors)
        for name in ("n", "sy", "syy", "counts"):
            if getattr(self, name) is not None:
                setattr(self, name, next(it))
        if self.family == "gmm":
            self.inner.set_tensors(list(it))

    def from_summaries(
        self, reg_covar: float = 1e-6, pseudocount: float = 0.0, previous: D.Distribution | None = None
    ) -> tuple[D.Distribution, Tensor]:
        """(the re-estimated components, their total responsibilities n_k (k,)). ``reg_covar`` is added to
        the variances (as sklearn does), ``pseudocount`` to the categorical, multinomial and mixture-weight
        counts.

        ``previous`` (the components before this step, same family): a component with no responsibility
        (n_k at most 10·eps of the total) keeps its previous parameters, and one whose variance collapsed
        (a variance zero up to round-off, a covariance not positive definite, an Exponential that saw only
        zeros) keeps its previous (co)variance, each with an `EmptyStateWarning`, instead of a NaN or an
        error. Without it, empty components are guarded as sklearn does (n_k + 10·eps)."""
        nk = self.n + 10 * torch.finfo(self.n.dtype).eps  # as sklearn guards empty components
        empty = None
        if previous is not None:
            empty = self.n <= 10 * torch.finfo(self.n.dtype).eps * self.n.sum().clamp_min(1)
            if (
                bool(empty.any()) and self.family != "gmm"
            ):  # a mixture's inner statistics say it per component
                states = empty.nonzero().flatten().tolist()
                warnings.warn(
                    f"EM: state(s) {states} received no expected observations; their emission parameters "
                    "are kept from the previous iteration",
                    EmptyStateWarning,
                    stacklevel=3,
                )
        if self.family == "gmm":
            return self._mixture(reg_covar, pseudocount, previous, empty), nk
        if self.family in ("categorical", "multinomial"):
            counts = (self.counts if self.family == "categorical" else self.sy) + pseudocount
            probs = counts / counts.sum(-1, keepdim=True).clamp_min(torch.finfo(counts.dtype).tiny)
            if empty is not None:
                old = _base(previous).probs.to(probs.dtype)
                gone = empty.view(-1, *([1] * (probs.dim() - 1))) | (counts.sum(-1, keepdim=True) <= 0)
                probs = torch.where(gone, old, probs)
            if self.family == "multinomial":
                return D.Multinomial(self.dist.total_count, probs=probs), nk
            base = D.Categorical(probs=probs)
            return (D.Independent(base, 1) if self.independent else base), nk
        if self.family in ("poisson", "exponential"):
            mean = self.sy / nk[:, None]  # (k, d)
            rate = mean if self.family == "poisson" else 1 / mean
            if empty is not None:
                old = _base(previous).rate.reshape(rate.shape).to(rate.dtype)
                collapsed = (
                    ~torch.isfinite(rate)
                    if self.family == "exponential"
                    else torch.zeros_like(empty[:, None])
                )
                _warn_collapsed(collapsed.any(-1) & ~empty)
                rate = torch.where(empty[:, None] | collapsed, old, rate)
            cls = D.Poisson if self.family == "poisson" else D.Exponential
            return (D.Independent(cls(rate), 1) if self.independent else cls(rate[:, 0])), nk
        centred = self.sy / nk[:, None]
        mean = self.shift + centred
        if empty is not None:
            mean = torch.where(empty[:, None], _base(previous).mean.reshape(mean.shape).to(mean.dtype), mean)
        if self.family == "full":
            scatter = self.syy - nk[:, None, None] * centred.unsqueeze(-1) * centred.unsqueeze(-2)
            eye = reg_covar * torch.eye(mean.shape[-1], dtype=mean.dtype, device=mean.device)
            if self.covariance == "tied":  # Σ_k n_k Σ_k / Σ_k n_k: one covariance for every component
                cov = (scatter.sum(0) / self.n.sum().clamp_min(torch.finfo(mean.dtype).tiny) + eye).expand_as(
                    scatter
                )
            else:
                cov = scatter / nk[:, None, None] + eye
            if empty is not None:
                _, info = torch.linalg.cholesky_ex(cov)
                bad = empty | (info != 0)
                _warn_collapsed(bad & ~empty)
                cov = torch.where(bad[:, None, None], previous.covariance_matrix.to(cov.dtype), cov)
            return D.MultivariateNormal(mean, covariance_matrix=cov), nk
        var = (self.syy / nk[:, None] - centred**2).clamp_min(0)
        if self.covariance == "spherical":  # one variance per component: the mean over dimensions
            var = var.mean(-1, keepdim=True).expand_as(var)
        var = var + reg_covar
        if empty is not None:
            collapsed = var <= 100 * torch.finfo(var.dtype).eps * (mean**2 + 1)  # zero up to round-off
            bad = empty[:, None] | collapsed
            _warn_collapsed(collapsed.any(-1) & ~empty)
            var = torch.where(bad, _base(previous).variance.reshape(var.shape).to(var.dtype), var)
        if self.independent:
            return D.Independent(D.Normal(mean, var.sqrt()), 1), nk
        return D.Normal(mean[:, 0], var[:, 0].sqrt()), nk

    def _mixture(self, reg_covar, pseudocount, previous, empty) -> D.MixtureSameFamily:
        """The GMM emission: weights (k, m) from the component counts, components from the inner M-step."""
        k, m = self.counts.shape
        inner_prev = None if previous is None else _reshape(previous.component_distribution, (k * m,))
        comps, _ = self.inner.from_summaries(reg_covar, 0.0, inner_prev)
        counts = self.counts + pseudocount
        total = counts.sum(-1, keepdim=True)
        weights = counts / total.clamp_min(torch.finfo(counts.dtype).tiny)
        if previous is not None:
            old = previous.mixture_distribution.probs.to(weights.dtype)
            weights = torch.where(empty[:, None] | (total <= 0), old, weights)
        return D.MixtureSameFamily(D.Categorical(probs=weights), _reshape(comps, (k, m)))


class DegenerateFitWarning(UserWarning):
    """A fit met a degenerate case (an empty state, a collapsed variance, a state with no transitions, a
    likelihood that went down) and carried on without it."""


class EmptyStateWarning(DegenerateFitWarning):
    """EM: a state (component) received no expected observations, or its variance collapsed; its previous
    emission parameters were kept."""


def _base(dist: D.Distribution) -> D.Distribution:
    return dist.base_dist if isinstance(dist, D.Independent) else dist


def _reshape(dist: D.Distribution, batch: tuple) -> D.Distribution:
    """A Gaussian family's components with their batch shape reshaped (k·m,) <-> (k, m)."""
    if isinstance(dist, D.Independent):
        return D.Independent(_reshape(dist.base_dist, (*batch, *dist.base_dist.batch_shape[-1:])), 1)
    if isinstance(dist, D.MultivariateNormal):
        d = dist.event_shape[0]
        return D.MultivariateNormal(
            dist.loc.reshape(*batch, d), scale_tril=dist.scale_tril.reshape(*batch, d, d)
        )
    return D.Normal(dist.loc.reshape(batch), dist.scale.reshape(batch))


def _warn_collapsed(bad: Tensor) -> None:
    if bool(bad.any()):
        warnings.warn(
            f"EM: the variance of state(s) {bad.nonzero().flatten().tolist()} collapsed to zero (one distinct "
            "observation); their previous (co)variances are kept -- raise reg_covar to avoid it",
            EmptyStateWarning,
            stacklevel=4,
        )


def unconstrained(
    components: D.Distribution,
) -> tuple[list[Tensor], Callable[[list[Tensor]], D.Distribution]]:
    """(unconstrained leaf tensors, rebuild(leaves) -> Distribution) for gradient fitting of a family."""
    if isinstance(components, D.Independent):
        leaves, rebuild = unconstrained(components.base_dist)
        n = components.reinterpreted_batch_ndims
        return leaves, lambda p: D.Independent(rebuild(p), n)
    if isinstance(components, D.MultivariateNormal):
        tril = components.scale_tril
        raw = tril.tril(-1) + torch.diag_embed(tril.diagonal(dim1=-2, dim2=-1).log())
        leaves = [components.loc.detach().clone(), raw.detach().clone()]

        def mvn(p):
            off, diag = p[1].tril(-1), p[1].diagonal(dim1=-2, dim2=-1).exp()
            return D.MultivariateNormal(p[0], scale_tril=off + torch.diag_embed(diag))

        return leaves, mvn
    if isinstance(components, D.Normal):
        return [components.loc.detach().clone(), components.scale.log().detach().clone()], lambda p: D.Normal(
            p[0], p[1].exp()
        )
    if isinstance(components, D.Categorical):
        return [components.logits.detach().clone()], lambda p: D.Categorical(logits=p[0])
    if isinstance(components, D.Bernoulli):
        return [components.logits.detach().clone()], lambda p: D.Bernoulli(logits=p[0])
    if isinstance(components, (D.Poisson, D.Exponential)):
        cls = type(components)
        return [components.rate.log().detach().clone()], lambda p: cls(p[0].exp())
    if isinstance(components, D.Multinomial):
        n = components.total_count
        return [components.logits.detach().clone()], lambda p: D.Multinomial(n, logits=p[0])
    if isinstance(components, D.MixtureSameFamily):
        inner, rebuild_inner = unconstrained(components.component_distribution)
        leaves = [components.mixture_distribution.logits.detach().clone(), *inner]
        return leaves, lambda p: D.MixtureSameFamily(D.Categorical(logits=p[0]), rebuild_inner(p[1:]))
    raise ValueError(
        f"components: gradient fitting supports Normal, MultivariateNormal, Categorical, Bernoulli, Poisson, "
        f"Exponential, Multinomial (optionally inside Independent) and MixtureSameFamily of them, got "
        f"{type(components).__name__}"
    )
