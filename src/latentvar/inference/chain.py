"""The factored linear chain: one semiring recursion for every exact question about an HMM or a CTC lattice.

A chain over k states scores a state sequence z_0 .. z_{L-1} as

    score(z) = init[z_0] + e_0[z_0] + Σ_{t≥1} (A_t[z_{t-1}, z_t] + e_t[z_t]) + final[z_{L-1}]

and the forward recursion α_0 = init ⊗ e_0,  α_t = (α_{t-1} ⊗ A_t) ⊗ e_t  (Rabiner 1989, eq. 20) answers
(Goodman 1999; torch-struct):

- ``log_partition``: ⊕_z score(z) in `LogSemiring` (log P(y)) or `MaxSemiring` (the best score);
- ``marginals``: P(z_t = k | ·), *defined* as ∂ log Z / ∂ e_t[k] (Eisner 2016) -- autograd, no hand-written
  backward pass; compiled forward-backward kernels are registered fast paths checked against it;
- ``backtrack(alphas, choose)``: one walk back through stored forward variables, z_t = choose(α_t ⊗ A_{t+1}
  [:, z_{t+1}]): argmax gives Viterbi (from max-semiring alphas), a Gumbel draw gives exact posterior
  samples (from log-semiring alphas; forward-filtering backward-sampling, Chib 1996);
- ``entropy``: H = log Z − E[score], E[score] by the expectation recursion (or Σ θ · ∂ log Z / ∂θ).

Shapes (named axes): b sequences (any batch of models or data, flattened), t steps, k states. Potentials are
*factored*, never a dense (b, t, k, k) tensor unless the transitions really vary:

- ``init`` (k,) or (b, k); ``final`` None, (k,) or (b, k);
- ``transitions``: log A (k, k) shared (`Dense`), (b, t|1, k, k) per sequence and step (row t is the step
  t-1 → t; row 0 is not used), or a `latentvar.inference.lattice.Banded` step (CTC);
- ``emissions`` (b, t, k), or a callable returning an iterator over its time chunks (b, c, k), so that scoring
  keeps O(b·k) memory besides one chunk;
- ``lengths`` (b,): steps at or past a sequence's length are ignored, whatever they hold.

Every alpha is shifted to max 0 and the shifts summed in float64 (the scaled recursion, Rabiner 1989 §V.A),
so float32 keeps its precision over 100,000 steps. All tensors are made on the inputs' device and dtype.
The log-depth alternative to the sequential loop is `latentvar.inference.scan` (Särkkä & García-Fernández
2021).
"""

from __future__ import annotations

from functools import cached_property

import torch
from torch import Tensor

from latentvar.inference import _registry
from latentvar.inference.backtrack import Argmax, GumbelDraw, backtrack
from latentvar.inference.semiring import LogSemiring, MaxSemiring, logsumexp_safe


class Dense:
    """Transitions log A of a k-state chain: (k, k) shared (rows = from-state), or (b, t|1, k, k) per
    sequence and step."""

    def __init__(self, log_trans: Tensor):
        if log_trans.dim() not in (2, 4):
            raise ValueError(
                f"transitions: expected log A of shape (k, k) or (b, t, k, k), got {tuple(log_trans.shape)}"
            )
        self.log_trans = log_trans
        self.shared = log_trans.dim() == 2

    def at(self, t: int) -> Tensor:
        """log A_t: (k, k) or (b, k, k)."""
        if self.shared:
            return self.log_trans
        return self.log_trans[:, t if self.log_trans.shape[1] > 1 else 0]

    def runner(self, semiring, exact: bool) -> _DenseRun:
        return _DenseRun(self, semiring, exact)

    def predecessors(self, t: int, nxt: Tensor, at_end: Tensor, final: Tensor | None):
        """Candidates for z_{t-1} given z_t = ``nxt`` (..., b): None (all k states) and their scores
        log A_t[:, nxt] (..., b, k), or ``final`` where the walk starts (``at_end``)."""
        k = self.log_trans.shape[-1]
        end_bias = self.log_trans.new_zeros(()) if final is None else final
        if not self.shared and 1 < self.log_trans.shape[1] <= t:  # past the last step: only ends
            return None, end_bias.expand(*nxt.shape, k)
        a = self.at(t)
        if a.dim() == 2:
            bias = a.T[nxt]  # (..., b, k)
        else:  # (b, k, k): column nxt of each sequence's matrix
            cols = a.transpose(-1, -2).expand(*nxt.shape, k, k)
            bias = cols.gather(-2, nxt[..., None, None].expand(*nxt.shape, 1, k)).squeeze(-2)
        return None, torch.where(at_end[..., None], end_bias, bias)


class _DenseRun:
    """α_{t-1} ⊗ A_t for one pass. A shared (k, k) matrix in the log semiring: a matmul of exp(α) with the
    column-shifted exp(A), O(b·k²) without a (b, k, k) tensor; a product that underflows to 0 (a path
    near-impossible on *both* sides) shows up as -inf and the caller redoes the pass exactly by broadcasting.
    Otherwise (max semiring, batched or time-varying A, ``exact``) the broadcast ⊕ over from-states."""

    def __init__(self, step: Dense, semiring, exact: bool):
        self.step, self.semiring = step, semiring
        self.matmul = step.shared and semiring is LogSemiring and not exact
        self.seen = None
        if self.matmul:
            a = step.log_trans
            self.col_max = a.amax(0).clamp_min(torch.finfo(a.dtype).min)
            self.trans_exp = (a - self.col_max).exp()

    def __call__(self, alpha: Tensor, t: int) -> Tensor:
        if self.matmul:
            out = (alpha.exp() @ self.trans_exp).log()
            self.seen = out.detach().clone() if self.seen is None else self.seen.add_(out.detach())
            return out + self.col_max
        a = self.step.at(t)
        return self.semiring.sum(alpha.unsqueeze(-1) + a, dim=-2)

    def underflowed(self) -> bool:
        return self.seen is not None and bool(torch.isneginf(self.seen).any())


class Chain:
    """A linear chain's factored potentials (see the module docstring) and its exact questions.

    ``fast``: use the registered compiled fast paths where they apply (`latentvar.inference._registry`);
    False runs the generic recursion only (the reference each fast path is tested against).
    Results are cached per object: build a new Chain for new potentials."""

    def __init__(self, init, transitions, emissions, lengths: Tensor, final=None, fast: bool = True):
        self.init = init
        self.step = Dense(transitions) if torch.is_tensor(transitions) else transitions
        self.emissions = emissions
        self.lengths = lengths
        self.final = final
        self.fast = fast

    # -- the inputs ------------------------------------------------------------------------------
    @property
    def batch(self) -> int:
        return self.lengths.shape[0]

    def chunks(self):
        """An iterator over the emissions' time chunks (b, c, k)."""
        return iter([self.emissions]) if torch.is_tensor(self.emissions) else self.emissions()

    @cached_property
    def emission_tensor(self) -> Tensor:
        """The emissions as one (b, t, k) tensor."""
        if torch.is_tensor(self.emissions):
            return self.emissions
        parts = list(self.emissions())
        return torch.cat(parts, 1) if parts else self.init.new_zeros(self.batch, 0, self.init.shape[-1])

    def replace(self, **changes) -> Chain:
        """A new Chain with some of the fields changed (e.g. ``fast=False``, or leaf emissions)."""
        fields = dict(
            init=self.init, transitions=self.step, emissions=self.emissions, lengths=self.lengths,
            final=self.final, fast=self.fast,
        )  # fmt: skip
        fields.update(changes)
        return Chain(**fields)

    def _differentiable(self) -> bool:
        if not torch.is_grad_enabled():
            return False
        tensors = [self.init, self.final, getattr(self.step, "log_trans", None)]
        if any(torch.is_tensor(x) and x.requires_grad for x in tensors):
            return True
        em = self.emissions
        if torch.is_tensor(em) or hasattr(em, "requires_grad"):
            return bool(em.requires_grad)
        first = next(self.chunks(), None)  # a chunked emission says so through its first chunk
        return first is not None and first.requires_grad

    # -- the recursion ---------------------------------------------------------------------------
    def forward(self, semiring=LogSemiring, keep: bool = False) -> tuple[Tensor, Tensor | None]:
        """(⊕_z score(z) per sequence (b,) -- ``semiring.one`` for empty sequences --, the forward
        variables (b, t, k) if ``keep``, each step shifted by a constant, else None)."""
        if not self._differentiable():
            fast = _registry.run("forward", self, semiring, keep)
            if fast is not None:
                return fast
        return _forward(self, semiring, keep, exact=False)

    def log_partition(self, semiring=LogSemiring) -> Tensor:
        """log Z (b,) (or the best score in `MaxSemiring`), differentiable in every potential."""
        if self._differentiable() and semiring is LogSemiring:
            fast = _registry.run("log_partition_grad", self)
            if fast is not None:
                return fast
        return self.forward(semiring)[0]

    @cached_property
    def marginals(self) -> Tensor:
        """P(z_t = k) (b, t, k) = ∂ log Z / ∂ e_t[k]; zero past each length and where log Z = -inf."""
        fast = _registry.run("marginals", self)
        if fast is not None:
            return fast
        return self.expected_counts()[3]

    def expected_counts(self) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
        """(log Z (b,), ∂ log Z/∂ init, ∂ log Z/∂ log A (None for a `Banded` step), ∂ log Z/∂ emissions),
        the gradients of Σ_b log Z_b: EM's expected initial, transition and state counts (Eisner 2016).
        By autograd through the generic recursion, or a registered fast path."""
        fast = _registry.run("expected_counts", self)
        if fast is not None:
            return fast
        with torch.enable_grad():
            init = self.init.detach().requires_grad_(True)
            step, trans = self.step, None
            if isinstance(step, Dense):
                trans = step.log_trans.detach().requires_grad_(True)
                step = Dense(trans)
            e = self.emission_tensor.detach().requires_grad_(True)
            total, _ = _forward(
                self.replace(init=init, transitions=step, emissions=e, fast=False), LogSemiring
            )
            wanted = [x for x in (init, trans, e) if x is not None]
            grads = list(torch.autograd.grad(total.sum(), wanted, allow_unused=True))
        grads = [torch.zeros_like(x) if g is None else g for x, g in zip(wanted, grads, strict=True)]
        g_init, g_e = grads[0], grads[-1]
        return total.detach(), g_init, (grads[1] if trans is not None else None), g_e

    def score(self, z: Tensor) -> Tensor:
        """score(z) (..., b) of state sequences z (..., b, t) of a `Dense` chain; steps past each length
        are ignored (they may hold -1)."""
        e = self.emission_tensor
        b, T, k = e.shape
        lengths = self.lengths
        valid = torch.arange(T, device=e.device) < lengths.unsqueeze(-1)
        zc = z.clamp_min(0)
        emit = e.expand(*z.shape, k).gather(-1, zc.unsqueeze(-1)).squeeze(-1)
        total = torch.where(valid, emit, torch.zeros_like(emit)).sum(-1)
        if T == 0:
            return total
        first = self.init.expand(*z.shape[:-1], k).gather(-1, zc[..., :1]).squeeze(-1)
        total = total + torch.where(lengths > 0, first, torch.zeros_like(first))
        if T > 1:
            a = self.step.log_trans
            if self.step.shared:
                trans = a[zc[..., :-1], zc[..., 1:]]
            else:
                a = (a[:, 1:T] if a.shape[1] > 1 else a.expand(b, T - 1, k, k)).reshape(b, T - 1, k * k)
                pair = (zc[..., :-1] * k + zc[..., 1:]).unsqueeze(-1)
                trans = a.expand(*z.shape[:-1], T - 1, k * k).gather(-1, pair).squeeze(-1)
            total = total + torch.where(valid[:, 1:], trans, torch.zeros_like(trans)).sum(-1)
        if self.final is not None:
            last = zc.gather(-1, (lengths - 1).clamp_min(0).expand(*z.shape[:-1]).unsqueeze(-1))
            end = self.final.expand(*z.shape[:-1], k).gather(-1, last).squeeze(-1)
            total = total + torch.where(lengths > 0, end, torch.zeros_like(end))
        return total

    def backtrack(self, alphas: Tensor, choose) -> Tensor:
        return backtrack(alphas, self.lengths, self.step, choose, self.final)

    @cached_property
    def viterbi(self) -> Tensor:
        """argmax_z score(z): (b, t) long, -1 past each length (Viterbi 1967)."""
        fast = _registry.run("viterbi", self)
        if fast is not None:
            return fast
        _, alphas = self.forward(MaxSemiring, keep=True)
        return self.backtrack(alphas, Argmax())

    def sample(self, sample_shape=torch.Size(), generator: torch.Generator | None = None) -> Tensor:
        """Exact draws z ∝ exp(score(z)) by forward-filtering backward-sampling: (*sample_shape, b, t)."""
        sample_shape = torch.Size(sample_shape)
        _, alphas = self.log_alphas
        return self.backtrack(alphas.expand(*sample_shape, *alphas.shape), GumbelDraw(generator))

    @cached_property
    def log_alphas(self) -> tuple[Tensor, Tensor]:
        """The log-semiring forward pass kept for backward sampling: (log Z (b,), alphas (b, t, k))."""
        with torch.no_grad():
            return self.forward(LogSemiring, keep=True)

    @cached_property
    def entropy(self) -> Tensor:
        """H(z) = log Z − E[score(z)] (b,), in nats; 0 for empty sequences and where log Z = -inf. `Dense`
        chains: the expectation recursion (`_dense_entropy`), memory O(b·k²) per step; other steps (CTC):
        E[score] = Σ θ ∂ log Z/∂θ over init, emissions and final by one autograd pass (the banded step's
        allowed moves score 0)."""
        if isinstance(self.step, Dense):
            return _dense_entropy(self)
        with torch.enable_grad():
            init = self.init.detach().expand(self.batch, -1).clone().requires_grad_(True)
            e = self.emission_tensor.detach().requires_grad_(True)
            leaves = [init, e]
            final = self.final
            if final is not None:
                final = final.detach().expand(self.batch, -1).clone().requires_grad_(True)
                leaves.append(final)
            chain = self.replace(init=init, emissions=e, final=final, fast=False)
            logz, _ = _forward(chain, LogSemiring)
            grads = torch.autograd.grad(logz.sum(), leaves, allow_unused=True)
        expected = torch.zeros_like(logz, dtype=torch.float64)
        for leaf, g in zip(leaves, grads, strict=True):
            if g is not None:  # impossible entries (-inf) have zero probability: 0 · -inf counts 0
                contrib = torch.where(g != 0, g * leaf.detach(), torch.zeros_like(g))
                expected = expected + contrib.reshape(self.batch, -1).double().sum(-1)
        h = (logz.detach().double() - expected).to(logz.dtype)
        return torch.where(torch.isfinite(logz.detach()), h, torch.zeros_like(h))


def _dense_entropy(chain: Chain) -> Tensor:
    """H(z) of a `Dense` chain by the expectation recursion (the expectation semiring in normalised form,
    Li & Eisner 2009): beside log α_t(j), carry μ_t(j) = E[score(z_0..z_t) | z_t = j, e_0..e_t], with
    μ_t(j) = Σ_i w_t(i, j) (μ_{t-1}(i) + A_t[i, j]) + e_t[j], w_t(i, j) = P(z_{t-1} = i | z_t = j, e_0..e_t)
    ∝ α_{t-1}(i) A_t[i, j]; then E[score] = Σ_j P(z_L = j) (μ_L(j) + final_j). No autograd: one pass holding
    a (b, k, k) step at a time; μ and the shifts of log α are summed in float64, so H = log Z − E[score]
    keeps its precision over long sequences."""
    lengths, b, step = chain.lengths, chain.batch, chain.step
    floor = torch.finfo(chain.init.dtype).min
    zero = torch.zeros((), dtype=torch.float64, device=lengths.device)
    log_alpha = mu = None
    scale = torch.zeros(b, dtype=torch.float64, device=lengths.device)
    t = 0
    with torch.no_grad():
        for chunk in chain.chunks():
            for c in range(chunk.shape[1]):
                e = chunk[:, c]
                if log_alpha is None:
                    new_alpha = (chain.init + e).expand(b, -1)
                    new_mu = new_alpha.double()
                else:
                    a_t = step.at(t)
                    m = log_alpha.unsqueeze(-1) + a_t  # (b, from i, to j)
                    top = logsumexp_safe(m, -2)
                    w = torch.exp(m - torch.where(torch.isfinite(top), top, 0.0).unsqueeze(-2))
                    w = torch.where(torch.isfinite(m), w, 0.0).double()
                    inner = torch.where(w > 0, w * (mu.unsqueeze(-1) + a_t.double()), zero).sum(-2)
                    new_alpha, new_mu = top + e, inner + e.double()
                shift = new_alpha.amax(-1, keepdim=True).clamp_min(floor)
                new_alpha = new_alpha - shift
                active = (t < lengths).unsqueeze(-1)
                scale = scale + torch.where(active, shift, 0.0).squeeze(-1).double()
                log_alpha = new_alpha if log_alpha is None else torch.where(active, new_alpha, log_alpha)
                mu = new_mu if mu is None else torch.where(active, new_mu, mu)
                t += 1
    if log_alpha is None:
        return chain.init.new_zeros(b)
    end = log_alpha if chain.final is None else log_alpha + chain.final
    end_mu = mu if chain.final is None else mu + chain.final.double()
    total = logsumexp_safe(end, -1)
    p = torch.exp(end - torch.where(torch.isfinite(total), total, 0.0).unsqueeze(-1)).double()
    expected = torch.where(p > 0, p * end_mu, zero).sum(-1)
    h = scale + total.double() - expected
    ok = (lengths > 0) & torch.isfinite(total)
    return torch.where(ok, h, zero).to(chain.init.dtype)


def _forward(chain: Chain, semiring, keep: bool = False, exact: bool = False) -> tuple[Tensor, Tensor | None]:
    """The generic scaled forward recursion, differentiable by autograd (see the module docstring)."""
    lengths, b = chain.lengths, chain.batch
    init, final = chain.init, chain.final
    floor = torch.finfo(init.dtype).min
    run = chain.step.runner(semiring, exact)
    min_len = int(lengths.min()) if b else 0
    alpha = None
    scale = torch.zeros(b, dtype=torch.float64, device=lengths.device)
    kept: list[Tensor] = []
    t = 0
    for chunk in chain.chunks():
        tops = chunk.new_zeros(b, chunk.shape[1])
        for c in range(chunk.shape[1]):
            new = (init + chunk[:, c]) if alpha is None else semiring.mul(run(alpha, t), chunk[:, c])
            top = new.detach().amax(-1, keepdim=True).clamp_min(floor)
            new = new - top
            if t >= min_len:  # ragged batches: sequences past their length keep their last alpha
                active = (t < lengths).unsqueeze(-1)
                top = torch.where(active, top, torch.zeros_like(top))
                new = new if alpha is None else torch.where(active, new, alpha)
            alpha = new
            tops[:, c : c + 1] = top
            if keep:
                kept.append(alpha)
            t += 1
        scale += tops.double().sum(1)
    if run.underflowed():
        return _forward(chain, semiring, keep, exact=True)
    k = init.shape[-1] if alpha is None else alpha.shape[-1]
    alphas = (torch.stack(kept, 1) if kept else init.new_zeros(b, 0, k)) if keep else None
    one = torch.full((b,), semiring.one, dtype=init.dtype, device=lengths.device)
    if alpha is None:
        return one, alphas
    end = alpha if final is None else alpha + final
    total = (scale + semiring.sum(end, -1).double()).to(init.dtype)
    return torch.where(lengths > 0, total, one), alphas
