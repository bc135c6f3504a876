"""A restricted Boltzmann machine: binary visible units v and hidden units h, a bipartite loopy model.

    E(v, h) = -v·b - h·c - vᵀ W h,        p(v, h) = exp(-E(v, h)) / Z,        Z = Σ_{v,h} exp(-E(v, h))

The hidden units are independent given v (and the visibles given h), so they sum out in closed form:

    log f(v) = log Σ_h exp(-E(v, h)) = v·b + Σ_j softplus(c_j + (vᵀW)_j)        (= -F(v), F the free energy)

is exact, and p(v) = f(v) / Z. What is not exact is Z itself: it sums over 2^(n_v + n_h) states, and after
summing one side out analytically still over 2^min(n_v, n_h). `RBM.log_partition(exact=True)` enumerates
that smaller side up to `MAX_ENUMERATED` = 20 units and refuses beyond; otherwise estimate log Z with
`latentvar.estimate.ais_log_partition` along `RBM.annealing_path` (Salakhutdinov & Murray 2008).

`RBM.sample` is block Gibbs sampling (h | v, then v | h): a Markov chain whose law tends to p(v) as
``num_steps`` grows, at a rate nobody can bound for a trained model -- approximate MCMC, never exact draws.

Shapes (named axes): ``...`` batch axes, ``n_v`` visible units, ``n_h`` hidden units, ``c`` AIS chains.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from latentvar._checks import as_tensor, check_finite, check_positive, check_sample_shape
from latentvar.core import IntractableMarginalError

MAX_ENUMERATED = 20  # 2^20 configurations of the smaller side, summed in chunks of 2^CHUNK_BITS
CHUNK_BITS = 14
ESTIMATORS = (
    "latentvar.estimate.ais_log_partition",
    f"RBM.log_partition(exact=True) for min(n_v, n_h) <= {MAX_ENUMERATED}",
)


class RBM:
    """An RBM with weights ``W`` (n_v, n_h), ``visible_bias`` b (n_v,) and ``hidden_bias`` c (n_h,), all
    finite floats (integer inputs become the default float dtype). The parameters are plain tensors,
    read at every call: a training loop may update them in place."""

    def __init__(self, W, visible_bias, hidden_bias):
        W = _float("W", W)
        if W.dim() != 2:
            raise ValueError(f"W: expected 2 dimensions (n_v, n_h), got shape {tuple(W.shape)}")
        n_v, n_h = W.shape
        if n_v == 0 or n_h == 0:
            raise ValueError(
                f"W: expected at least one visible and one hidden unit, got shape {tuple(W.shape)}"
            )
        b = _float("visible_bias", visible_bias, W.dtype)
        c = _float("hidden_bias", hidden_bias, W.dtype)
        if b.shape != (n_v,):
            raise ValueError(f"visible_bias: expected shape ({n_v},) (n_v, from W), got {tuple(b.shape)}")
        if c.shape != (n_h,):
            raise ValueError(f"hidden_bias: expected shape ({n_h},) (n_h, from W), got {tuple(c.shape)}")
        self.W, self.visible_bias, self.hidden_bias = W, b.to(W.device), c.to(W.device)

    @property
    def num_visible(self) -> int:
        return self.W.shape[0]

    @property
    def num_hidden(self) -> int:
        return self.W.shape[1]

    def __repr__(self) -> str:
        return f"RBM(num_visible={self.num_visible}, num_hidden={self.num_hidden}, dtype={self.W.dtype})"

    # -- exact quantities -------------------------------------------------------------------------------
    def log_unnormalized(self, v) -> Tensor:
        """log f(v) = v·b + Σ_j softplus(c_j + (vᵀW)_j), exact (the hidden units summed out): (...,)."""
        v = self.check_visible(v)
        return v @ self.visible_bias + F.softplus(v @ self.W + self.hidden_bias).sum(-1)

    def free_energy(self, v) -> Tensor:
        """F(v) = -log Σ_h exp(-E(v, h)) = -log f(v), so p(v) = exp(-F(v)) / Z: (...,)."""
        return -self.log_unnormalized(v)

    def energy(self, v, h) -> Tensor:
        """E(v, h) = -v·b - h·c - vᵀWh: (...,) over the broadcast batch axes of v and h."""
        v, h = self.check_visible(v), self.check_hidden(h)
        return -(v @ self.visible_bias) - h @ self.hidden_bias - ((v @ self.W) * h).sum(-1)

    def log_partition(self, exact: bool = True, side: str = "auto") -> Tensor:
        """log Z, exactly, by enumerating the 2^k states of one side and summing the other out analytically
        (``side``: 'hidden' sums over h with log Σ_h exp(h·c) Π_i (1 + exp(b_i + (W h)_i)), 'visible' over v
        with log f(v), 'auto' the smaller). Refused beyond k = `MAX_ENUMERATED` (about 10^6 states, seconds
        of CPU); ``exact=False`` raises `IntractableMarginalError` naming the estimator to use. A float64
        scalar (differentiable in the parameters)."""
        if not exact:
            raise self._intractable("log Z")
        if side == "auto":
            side = "hidden" if self.num_hidden <= self.num_visible else "visible"
        if side not in ("hidden", "visible"):
            raise ValueError(f"side: expected 'auto', 'hidden' or 'visible', got {side!r}")
        k = self.num_hidden if side == "hidden" else self.num_visible
        if k > MAX_ENUMERATED:
            raise ValueError(
                f"exact: summing over the {side} side enumerates 2^{k} states, beyond the limit "
                f"2^{MAX_ENUMERATED}; estimate log Z with latentvar.estimate.ais_log_partition"
            )
        W, b, c = self.W.double(), self.visible_bias.double(), self.hidden_bias.double()
        if side == "visible":  # enumerate v, sum h: log f(v)
            W, b, c = W.T, c, b
        terms = []
        for states in _all_states(k, W.device):
            terms.append(states @ c + F.softplus(states @ W.T + b).sum(-1))
        return torch.logsumexp(torch.cat(terms), 0)

    def log_prob(self, v, exact: bool = False) -> Tensor:
        """log p(v) = log f(v) - log Z: (...,). log f(v) is exact but log Z is not in general, so this
        raises `IntractableMarginalError` unless ``exact=True``, which enumerates (see `log_partition`)."""
        if not exact:
            raise self._intractable("log P(v)")
        return self.log_unnormalized(v).double() - self.log_partition(exact=True)

    def _intractable(self, what: str) -> IntractableMarginalError:
        k = min(self.num_visible, self.num_hidden)
        return IntractableMarginalError(
            "RBM",
            what,
            why=(
                f"the partition function Z sums over 2^{self.num_visible + self.num_hidden} joint states; "
                f"with one side summed out analytically it still sums over 2^{k} states of the other, with no "
                "chain or tree structure to exploit (the bipartite graph is loopy)"
            ),
            estimators=ESTIMATORS,
        )

    # -- conditionals and block Gibbs -------------------------------------------------------------------
    def conditional_h(self, v) -> Tensor:
        """P(h_j = 1 | v) = σ(c_j + (vᵀW)_j): (..., n_h), exact (the hiddens are independent given v)."""
        return torch.sigmoid(self.check_visible(v) @ self.W + self.hidden_bias)

    def conditional_v(self, h) -> Tensor:
        """P(v_i = 1 | h) = σ(b_i + (W h)_i): (..., n_v), exact."""
        return torch.sigmoid(self.check_hidden(h) @ self.W.T + self.visible_bias)

    def sample(
        self,
        sample_shape: torch.Size | tuple[int, ...] = torch.Size(),
        num_steps: int = 1000,
        generator: torch.Generator | None = None,
        init=None,
    ) -> Tensor:
        """Approximate draws of v, (*sample_shape, n_v): ``num_steps`` sweeps of block Gibbs sampling
        (h ~ P(h | v), then v ~ P(v | h)) from ``init`` (binary, broadcast to the output shape; by default
        independent draws v_i ~ Bernoulli(σ(b_i))). Each sweep leaves p(v) invariant, so the chains'
        law tends to p(v), but after finitely many steps they are *not* exact samples: a trained RBM mixes
        slowly between modes, and how many steps suffice is not known. Independent chains per sample."""
        check_positive("num_steps", num_steps, integer=True)
        per_draw = self.num_visible + self.num_hidden
        shape = check_sample_shape("sample_shape", sample_shape, per_draw) + (self.num_visible,)
        if init is None:
            v = _bernoulli(torch.sigmoid(self.visible_bias).expand(shape), generator)
        else:
            v = self.check_visible(init, "init")
            try:
                v = v.expand(shape).clone()
            except RuntimeError:
                raise ValueError(
                    f"init: expected a shape broadcastable to {tuple(shape)}, got {tuple(v.shape)}"
                ) from None
        for _ in range(num_steps):
            h = _bernoulli(torch.sigmoid(v @ self.W + self.hidden_bias), generator)
            v = _bernoulli(torch.sigmoid(h @ self.W.T + self.visible_bias), generator)
        return v

    # -- AIS --------------------------------------------------------------------------------------------
    def annealing_path(self, base_visible_bias=None) -> RBMAnnealingPath:
        """Salakhutdinov & Murray's (2008) path from the base RBM with W = 0, c = 0 and visible biases b_A
        (``base_visible_bias``, by default the model's own; the data's log-odds logit(mean v) is the usual
        choice for a trained model) to this one, for `latentvar.estimate.ais_log_partition`."""
        if base_visible_bias is None:
            base = self.visible_bias
        else:
            base = _float("base_visible_bias", base_visible_bias, self.W.dtype).to(self.W.device)
            if base.shape != (self.num_visible,):
                raise ValueError(
                    f"base_visible_bias: expected shape ({self.num_visible},) (n_v), got {tuple(base.shape)}"
                )
        return RBMAnnealingPath(
            self.W.double(), self.visible_bias.double(), self.hidden_bias.double(), base.double()
        )

    # -- argument checks --------------------------------------------------------------------------------
    def check_visible(self, v, name: str = "v") -> Tensor:
        """v as a float tensor (..., n_v) of 0s and 1s, or a ValueError naming ``name``."""
        return _binary(name, v, self.num_visible, "n_v", self.W)

    def check_hidden(self, h, name: str = "h") -> Tensor:
        return _binary(name, h, self.num_hidden, "n_h", self.W)


@dataclass
class RBMAnnealingPath:
    """The intermediate distributions of RBM AIS (Salakhutdinov & Murray 2008, eq. 13-15), β ∈ [0, 1]:

        p_β(v) ∝ f_β(v) = exp((1 - β) b_A·v + β b·v) Π_j (1 + exp(β (c_j + (vᵀW)_j))),

    the joint of the base model (W = 0, c = 0, visible biases b_A) at β = 0 and of the RBM at β = 1, so
    Z_0 = 2^{n_h} Π_i (1 + exp(b_A,i)). Its transition is one block Gibbs sweep at β:
    h ~ σ(β (c + vᵀW)), v ~ σ((1 - β) b_A + β (b + W h)). Chains are the leading axis, (c, n_v); float64."""

    W: Tensor
    visible_bias: Tensor
    hidden_bias: Tensor
    base_visible_bias: Tensor

    def log_partition_base(self) -> Tensor:
        """log Z_0 = Σ_i softplus(b_A,i) + n_h log 2."""
        return F.softplus(self.base_visible_bias).sum() + self.W.shape[1] * math.log(2.0)

    def sample_base(self, num_chains: int, generator: torch.Generator | None = None) -> Tensor:
        """Exact draws of the base model's visibles, independent Bernoulli(σ(b_A)): (c, n_v)."""
        p = torch.sigmoid(self.base_visible_bias).expand(num_chains, -1)
        return _bernoulli(p, generator)

    def log_unnormalized(self, x: Tensor, beta: float) -> Tensor:
        """log f_β(x) for chains x (c, n_v): (c,) float64."""
        x = x.double()
        field = (1.0 - beta) * self.base_visible_bias + beta * self.visible_bias
        return x @ field + F.softplus(beta * (x @ self.W + self.hidden_bias)).sum(-1)

    def transition(self, x: Tensor, beta: float, generator: torch.Generator | None = None) -> Tensor:
        """One block Gibbs sweep that leaves p_β invariant: (c, n_v) -> (c, n_v)."""
        h = _bernoulli(torch.sigmoid(beta * (x.double() @ self.W + self.hidden_bias)), generator)
        field = (1.0 - beta) * self.base_visible_bias + beta * (self.visible_bias + h @ self.W.T)
        return _bernoulli(torch.sigmoid(field), generator)


def _float(name: str, value, dtype: torch.dtype | None = None) -> Tensor:
    x = as_tensor(name, value)
    if not torch.is_floating_point(x):
        x = x.to(dtype or torch.get_default_dtype())
    elif dtype is not None:
        x = x.to(dtype)
    return check_finite(name, x)


def _binary(name: str, x, size: int, axis: str, like: Tensor) -> Tensor:
    x = as_tensor(name, x)
    if x.dim() == 0 or x.shape[-1] != size:
        raise ValueError(f"{name}: expected shape (..., {size}) ({axis} last), got {tuple(x.shape)}")
    if torch.is_complex(x):
        raise ValueError(f"{name}: expected binary values (0 or 1), got dtype {x.dtype}")
    x = x.to(like.dtype) if x.dtype != like.dtype else x
    bad = (x != 0) & (x != 1)
    if bool(bad.any()):
        n, first = int(bad.sum()), x[bad][0].item()
        raise ValueError(f"{name}: expected binary values (0 or 1), got {n} other entries (e.g. {first!r})")
    return x.to(like.device)


def _bernoulli(p: Tensor, generator: torch.Generator | None) -> Tensor:
    """1.0 where a uniform draw falls below p (one torch.rand: the same stream on every device)."""
    return (torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device) < p).to(p.dtype)


def _all_states(k: int, device) -> Iterator[Tensor]:
    """Every binary vector of length k, in chunks of at most 2^CHUNK_BITS rows, float64 (2^k, k)."""
    bits = 2 ** torch.arange(k, device=device)
    chunk = 2 ** min(k, CHUNK_BITS)
    for start in range(0, 2**k, chunk):
        codes = torch.arange(start, start + chunk, device=device)
        yield ((codes[:, None] & bits) > 0).double()
