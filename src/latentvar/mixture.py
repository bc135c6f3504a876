"""Finite mixtures: z in {0..K-1}, P(y) = Σ_k π_k P(y | z=k) -- exact by one logsumexp.

Shapes (named axes): ``...`` batch, ``k`` components, ``e`` the components' event dims.
``logits``: (..., k); ``components``: any `torch.distributions.Distribution` with batch_shape (..., k).
Observations y have shape ``sample_shape + batch_shape + event_shape``.

The conditional form P(y|x) = Σ_z P(z|x) P(y|z,x) is the same object with networks producing the
logits and the components from x (`ConditionalMixture`); per-site mixtures (one z per pixel, say) are
mixtures with batch shape (b, h, w).
"""

from __future__ import annotations

from functools import cached_property

import torch
import torch.distributions as D
from torch import Tensor, nn

from latentvar._checks import (
    as_tensor,
    check_finite,
    check_integer,
    check_non_negative,
    check_number,
    check_positive,
    check_range,
    check_real,
    check_sample_shape,
    check_support,
)
from latentvar.core import FitResult, LatentVariableModel, Posterior, track_convergence
from latentvar.progress import progress
from latentvar.stats import SufficientStatistics, em_family, unconstrained

__all__ = [
    "ConditionalMixture",
    "Mixture",
    "MixturePosterior",
    "SufficientStatistics",
    "em_family",
    "gaussian_mixture_init",
    "unconstrained",
]


class MixturePosterior(D.Categorical, Posterior):
    """P(z | y) for a mixture: a Categorical over components at every site.

    ``batch_shape`` the sites (...), ``event_shape`` () (one z per site). ``log_partition`` log P(y)
    (...); ``marginals`` (..., k) = P(z = k | y), summing to one over k; ``mode`` (...) the most probable
    component; ``entropy`` H(z | y) (...) in nats; ``sample(sample_shape, generator)`` exact draws
    (*sample_shape, ...); ``log_prob(z)`` log P(z | y). The answers are cached, as for the HMM and CTC
    posteriors. (``entropy`` is a tensor, not `torch.distributions.Categorical`'s method.)
    """

    @classmethod
    def from_log_joint(cls, log_joint: Tensor) -> MixturePosterior:
        """The posterior ∝ exp(log_joint) (..., k) = log π_k + log P(y | z=k), keeping log P(y)."""
        log_partition = torch.logsumexp(log_joint, -1, keepdim=True)
        post = cls(logits=log_joint - log_partition, validate_args=False)
        post.__dict__["log_partition"] = log_partition.squeeze(-1)  # what the cached property would hold
        return post

    @cached_property
    def log_partition(self) -> Tensor:
        """log P(y) = logsumexp_k (log π_k + log P(y | z=k)): (...). Known only to posteriors built from
        the joint (`Mixture.posterior`, `from_log_joint`); normalised logits alone have lost it."""
        raise AttributeError(
            "log_partition: this posterior was built from normalised logits, which do not keep log P(y); "
            "build it with Mixture.posterior(y) or MixturePosterior.from_log_joint"
        )

    @cached_property
    def marginals(self) -> Tensor:
        return self.probs

    @cached_property
    def mode(self) -> Tensor:
        return self.logits.argmax(dim=-1)

    @cached_property
    def entropy(self) -> Tensor:
        """H(z | y) = -Σ_k P(k | y) log P(k | y): (...), in nats (0 · log 0 = 0 for unused components)."""
        return D.Categorical.entropy(self)

    def sample(
        self, sample_shape: torch.Size = torch.Size(), generator: torch.Generator | None = None
    ) -> Tensor:
        """Exact draws of z (*sample_shape, *batch_shape) from ``generator`` (the global RNG if None: then
        the same draws as `torch.distributions.Categorical.sample`)."""
        sample_shape = torch.Size(sample_shape)
        with torch.no_grad():
            probs_2d = self.probs.reshape(-1, self._num_events)
            draws = torch.multinomial(probs_2d, sample_shape.numel(), True, generator=generator).T
        return draws.reshape(self._extended_shape(sample_shape))


class Mixture(LatentVariableModel):
    """P(y) = Σ_k softmax(logits)_k · components_k(y).

    Args:
        logits: (..., k) unnormalised log mixing weights (-inf allowed for an unused component).
        components: a `torch.distributions.Distribution` whose batch_shape ends in k.
    """

    def __init__(self, logits: Tensor, components: D.Distribution):
        logits = as_tensor(
            "logits", logits, torch.get_default_dtype() if not torch.is_tensor(logits) else None
        )
        if logits.dim() < 1:
            raise ValueError(
                f"logits: expected shape (..., K) with K >= 1 components, got {tuple(logits.shape)}"
            )
        if not torch.is_floating_point(logits):
            raise ValueError(f"logits: expected a floating-point tensor, got dtype {logits.dtype}")
        check_finite("logits", logits, allow_neg_inf=True)
        if bool(torch.isneginf(logits).all(dim=-1).any()):
            raise ValueError("logits: every component has weight zero (all -inf) at some site")
        if not isinstance(components, D.Distribution):
            raise ValueError(
                f"components: expected a torch.distributions.Distribution, got {type(components).__name__}"
            )
        cb = tuple(components.batch_shape)
        k = logits.shape[-1]
        if len(cb) == 0 or cb[-1] != k:
            raise ValueError(
                f"components: expected batch_shape ending in K={k} (the size of logits' last dimension), "
                f"got batch_shape {cb}"
            )
        try:
            batch = torch.broadcast_shapes(logits.shape[:-1], torch.Size(cb[:-1]))
        except RuntimeError:
            raise ValueError(
                f"logits and components: batch shapes {tuple(logits.shape[:-1])} and {cb[:-1]} do not broadcast"
            ) from None
        self.logits = logits
        self.components = components
        self.num_components = k
        self.batch_shape = batch
        self.event_shape = components.event_shape

    # -- shapes ------------------------------------------------------------------------------------
    @property
    def log_weights(self) -> Tensor:
        """log π, normalised: (..., k)."""
        return torch.log_softmax(self.logits, dim=-1)

    @property
    def weights(self) -> Tensor:
        return self.log_weights.exp()

    def _check_y(self, y: Tensor) -> Tensor:
        y = as_tensor("y", y)
        ev = len(self.event_shape)
        if tuple(y.shape[y.dim() - ev :]) != tuple(self.event_shape) or y.dim() < ev:
            raise ValueError(
                f"y: expected trailing shape {tuple(self.event_shape)} (the components' event shape), "
                f"got shape {tuple(y.shape)}"
            )
        try:
            torch.broadcast_shapes(y.shape[: y.dim() - ev], self.batch_shape)
        except RuntimeError:
            raise ValueError(
                f"y: batch shape {tuple(y.shape[: y.dim() - ev])} does not broadcast with the model's "
                f"batch shape {tuple(self.batch_shape)}"
            ) from None
        check_finite("y", check_real("y", y))
        return y

    def component_log_prob(self, y: Tensor) -> Tensor:
        """log P(y | z=k) for every k: (..., k)."""
        y = self._check_y(y)
        ev = len(self.event_shape)
        if y.numel() == 0:  # no observations: an empty answer (some families cannot reshape empty input)
            sites = torch.broadcast_shapes(y.shape[: y.dim() - ev], self.batch_shape)
            return torch.zeros((*sites, self.num_components), dtype=self.logits.dtype)
        y_k = y.unsqueeze(y.dim() - ev)  # a k axis before the event dims
        check_support("y", self.components, y_k)
        return self.components.log_prob(y_k)

    # -- the API -----------------------------------------------------------------------------------
    def log_joint(self, z: Tensor, y: Tensor) -> Tensor:
        """log P(z, y) = log π_z + log P(y | z)."""
        z = check_range("z", check_integer("z", as_tensor("z", z)), 0, self.num_components)
        lj = self.log_weights + self.component_log_prob(y)
        z, lj = torch.broadcast_tensors(z.unsqueeze(-1), lj)
        return lj.gather(-1, z[..., :1]).squeeze(-1)

    def log_prob(self, y: Tensor) -> Tensor:
        """Exact log P(y) = logsumexp_k (log π_k + log P(y|k)), per site: shape of y less the event dims."""
        return torch.logsumexp(self.log_weights + self.component_log_prob(y), dim=-1)

    def posterior(self, y: Tensor) -> MixturePosterior:
        """Exact P(z | y) ∝ π_z P(y|z) at every site."""
        return MixturePosterior.from_log_joint(self.log_weights + self.component_log_prob(y))

    def sample(self, sample_shape: torch.Size = torch.Size()) -> tuple[Tensor, Tensor]:
        """(z, y) with z: sample_shape + batch_shape, y: sample_shape + batch_shape + event_shape."""
        per_draw = max(self.batch_shape.numel(), 1) * self.num_components * max(self.event_shape.numel(), 1)
        sample_shape = check_sample_shape("sample_shape", sample_shape, per_draw)
        k = self.num_components
        logits = self.logits.expand(*self.batch_shape, k)
        z = D.Categorical(logits=logits).sample(sample_shape)
        comp = self.components.expand(torch.Size((*self.batch_shape, k)))
        y_all = comp.rsample(sample_shape) if comp.has_rsample else comp.sample(sample_shape)
        ev = len(self.event_shape)
        index = z.reshape(*z.shape, 1, *([1] * ev)).expand(*z.shape, 1, *self.event_shape)
        y = y_all.gather(z.dim(), index).squeeze(z.dim())
        return z, y

    def marginal_mean(self) -> Tensor:
        """E[y] = Σ_k π_k E[y|k]."""
        w = self.weights.reshape(*self.weights.shape, *([1] * len(self.event_shape)))
        return (w * self.components.mean).sum(dim=-1 - len(self.event_shape))

    def __repr__(self) -> str:
        return (
            f"Mixture(K={self.num_components}, batch_shape={tuple(self.batch_shape)}, "
            f"components={type(self.components).__name__}, event_shape={tuple(self.event_shape)})"
        )

    # -- fitting -----------------------------------------------------------------------------------
    def fit(
        self,
        y: Tensor,
        method: str = "em",
        max_iter: int = 200,
        tol: float = 1e-6,
        reg_covar: float = 1e-6,
        pseudocount: float = 0.0,
        lr: float = 0.05,
        batch_size: int | None = None,
        show_progress: bool = False,
        callback=None,
    ) -> FitResult:
        """Fit to data y (n, *event_shape) starting from this mixture's parameters.

        ``method="em"``: expectation-maximisation (Dempster et al. 1977) for Gaussian components with full
        (`MultivariateNormal`) or diagonal (`Normal`, `Independent(Normal)`) covariance and for Categorical
        components; ``reg_covar`` is added to the covariance diagonal (as sklearn does), ``pseudocount``
        to categorical counts. Stops when the mean log-likelihood improves by less than ``tol``.

        ``method="gradient"``: Adam on the exact -mean log P(y) over unconstrained parameters, for any
        Normal/MultivariateNormal/Categorical/Bernoulli components (optionally wrapped in Independent).

        ``callback(model, iteration, mean_ll)`` runs after every EM iteration that did not converge (the
        iteration hook: checkpoint, log, evaluate); returning True stops the fit there.

        Returns a `FitResult` with the fitted mixture and the mean log-likelihood after each iteration.
        """
        if self.batch_shape != torch.Size():
            raise ValueError(
                f"fit: expected a single mixture (batch_shape ()), got batch_shape {tuple(self.batch_shape)}"
            )
        y = self._check_y(y)
        if y.dim() != 1 + len(self.event_shape):
            raise ValueError(
                f"y: expected shape (n, *{tuple(self.event_shape)}) -- n observations -- got {tuple(y.shape)}"
            )
        if y.shape[0] == 0:
            raise ValueError(f"y: expected at least one observation to fit, got shape {tuple(y.shape)}")
        check_positive("max_iter", max_iter, integer=True)
        check_number("tol", tol)
        check_non_negative("reg_covar", reg_covar)
        check_non_negative("pseudocount", pseudocount)
        check_positive("lr", lr)
        if batch_size is not None:
            check_positive("batch_size", batch_size, integer=True)
        if method == "em":
            return _fit_em(self, y, max_iter, tol, reg_covar, pseudocount, callback, show_progress)
        if method == "gradient":
            return _fit_gradient(self, y, max_iter, tol, lr, batch_size, show_progress)
        raise ValueError(f"method: expected 'em' or 'gradient', got {method!r}")


def _fit_em(model: Mixture, y, max_iter, tol, reg_covar, pseudocount, callback, show_progress) -> FitResult:
    em_family(model.components)  # refuse unsupported families before any work
    history: list[float] = []
    converged = False
    with torch.no_grad():
        bar = progress(range(max_iter), desc="EM", disable=not show_progress)
        for _ in bar:
            joint = model.log_weights + model.component_log_prob(y)  # (n, k)
            ll = torch.logsumexp(joint, -1, keepdim=True)
            resp = (joint - ll).exp()
            stats = SufficientStatistics(model.components)
            stats.summarize(y, resp)
            components, nk = stats.from_summaries(reg_covar, pseudocount)
            model = Mixture((nk / nk.sum()).log(), components)
            mean_ll = float(model.log_prob(y).mean())
            bar.set_postfix(loglik=f"{mean_ll:.5f}")
            done = bool(history) and abs(mean_ll - history[-1]) < tol
            history.append(mean_ll)
            if done:
                converged = True
                break
            if callback is not None and callback(model, len(history), mean_ll):
                break
    return FitResult(model, history, converged)


def _fit_gradient(model: Mixture, y, max_iter, tol, lr, batch_size, show_progress) -> FitResult:
    leaves, rebuild = unconstrained(model.components)
    logits = model.logits.detach().clone()
    params = [logits, *leaves]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    n = y.shape[0]
    history: list[float] = []
    converged = False
    bar = progress(range(max_iter), desc="gradient", disable=not show_progress)
    for _ in bar:
        batch = y if batch_size is None or batch_size >= n else y[torch.randint(n, (batch_size,))]
        loss = -Mixture(logits, rebuild(leaves)).log_prob(batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            mean_ll = float(Mixture(logits, rebuild(leaves)).log_prob(y).mean())
        bar.set_postfix(loglik=f"{mean_ll:.5f}")
        done = track_convergence(history, mean_ll, tol, lr)
        if done:
            converged = True
            break
    with torch.no_grad():
        fitted = Mixture(logits.detach(), rebuild([p.detach() for p in leaves]))
    return FitResult(fitted, history, converged)


class ConditionalMixture(nn.Module):
    """P(y | x) = Σ_z P(z|x) P(y|z,x), with both factors produced by a network from x.

    ``network(x)`` returns ``(logits, components)``: logits (..., k) for P(z|x) and a Distribution with
    batch_shape (..., k) for P(y|z,x) -- one network, so that the colour model of a segment may look at
    the segmentation itself. ``model(x)`` is a `Mixture`; every question goes through it:

        model(x).log_prob(y)       exact log P(y|x) per site
        model(x).posterior(y)      exact P(z|x,y)
        model(x).sample(shape)     (z, y) ~ P(z|x) P(y|z,x)
    """

    def __init__(self, network: nn.Module):
        super().__init__()
        if not callable(network):
            raise ValueError(
                f"network: expected an nn.Module (or callable) x -> (logits, components), got {type(network).__name__}"
            )
        self.network = network

    def forward(self, x: Tensor) -> Mixture:
        out = self.network(x)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ValueError(
                f"network: expected (logits, components) from network(x), got {type(out).__name__}"
            )
        return Mixture(*out)

    def log_prob(self, y: Tensor, x: Tensor) -> Tensor:
        return self(x).log_prob(y)

    def posterior(self, y: Tensor, x: Tensor) -> MixturePosterior:
        return self(x).posterior(y)

    def sample(self, x: Tensor, sample_shape: torch.Size = torch.Size()) -> tuple[Tensor, Tensor]:
        return self(x).sample(sample_shape)


def gaussian_mixture_init(
    y: Tensor, num_components: int, covariance: str = "full", seed: int = 0, reg_covar: float = 1e-6
) -> Mixture:
    """A Gaussian mixture initialised as sklearn does: k-means labels as hard responsibilities, one M-step.

    ``covariance``: "full" (MultivariateNormal) or "diag" (Independent(Normal)). y: (n, d).
    """
    from sklearn.cluster import KMeans

    y = check_finite("y", as_tensor("y", y))
    if y.dim() != 2:
        raise ValueError(f"y: expected shape (n, d), got {tuple(y.shape)}")
    check_positive("num_components", num_components, integer=True)
    if num_components > y.shape[0]:
        raise ValueError(f"num_components: expected at most n={y.shape[0]} components, got {num_components}")
    if covariance not in ("full", "diag"):
        raise ValueError(f"covariance: expected 'full' or 'diag', got {covariance!r}")
    labels = KMeans(num_components, n_init=1, random_state=seed).fit(y.numpy()).labels_
    resp = nn.functional.one_hot(torch.as_tensor(labels).long(), num_components).to(y.dtype)
    d = y.shape[1]
    template = (
        D.MultivariateNormal(
            torch.zeros(num_components, d, dtype=y.dtype),
            torch.eye(d, dtype=y.dtype).expand(num_components, d, d),
        )
        if covariance == "full"
        else D.Independent(
            D.Normal(
                torch.zeros(num_components, d, dtype=y.dtype), torch.ones(num_components, d, dtype=y.dtype)
            ),
            1,
        )
    )
    stats = SufficientStatistics(template)
    stats.summarize(y, resp)
    components, nk = stats.from_summaries(reg_covar)
    return Mixture((nk / nk.sum()).log(), components)


_unconstrained = unconstrained  # the old private name
