"""Hidden Markov models: z_1..z_T a Markov chain over k states, y_t ~ P(y | z_t).

    P(y) = Σ_z π_{z_1} P(y_1|z_1) Π_{t>1} A_{z_{t-1} z_t} P(y_t|z_t)      (Rabiner 1989, eq. 19-21)

Shapes (named axes): b batch of sequences, t time, k states, v vocabulary; ``y`` is (b, t, *event) padded,
with ``lengths`` (b,) giving each sequence's true length (steps past it are ignored, whatever they hold).

The forward recursion alpha_t = (alpha_{t-1} ⊗ A) ⊙ e_t (Rabiner 1989) answers several questions
(Goodman 1999; torch-struct). On CPU tensors it runs scaled in probability space as compiled kernels
(`latentvar._hmm_kernels`): log P(y), forward-backward for the marginals and EM's expected counts (which are
also the gradient of log P(y)), and max-product Viterbi with backpointers. In log space in torch (other
devices, and the fallback if a scaled normaliser could underflow) its alphas are sampled backwards
(forward-filtering backward-sampling, Chib 1996) or differentiated (`marginals_autograd`, an independent
check). The parallel scan runs in `LogSemiring` or `MaxSemiring`.

Unlike torch-struct, the k×k transition matrix is shared, never expanded to (b, t, k, k): scoring keeps only
(b, k) alphas and computes emissions in time chunks, so its memory is O(b·k) besides the inputs. A
log-depth parallel scan (associative log-matmul of the per-step (k, k) matrices) is selectable with
``method="parallel"`` for long sequences with few states.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.distributions as D
from torch import Tensor, nn

from latentvar import _hmm_kernels as _kernels
from latentvar._checks import (
    as_tensor,
    check_finite,
    check_integer,
    check_lengths,
    check_positive,
    check_range,
    check_support,
)
from latentvar.core import FitResult, LatentVariableModel, Posterior, track_convergence
from latentvar.progress import progress
from latentvar.semiring import LogSemiring, MaxSemiring

METHODS = ("sequential", "parallel")
CHUNK_VALUES = 2**18  # emission log-likelihoods computed at once when scoring: b·chunk·k near this


# --------------------------------------------------------------------------------------------------
# The forward recursion in a semiring


def _log_vecmat_exact(alpha: Tensor, log_trans: Tensor) -> Tensor:
    """logsumexp_i (alpha[b, i] + log_trans[i, j]) -> (b, j) by broadcasting: exact for any magnitudes."""
    return LogSemiring.sum(alpha.unsqueeze(-1) + log_trans, dim=-2)


class _Step:
    """One step of the recursion, alpha (b, k) with max_k alpha = 0 -> alpha ⊗ A (b, k), less ``shift()``.

    In the log semiring a matmul of exp(alpha) with the column-shifted exp(A) does it in O(b·k²) without a
    (b, k, k) tensor. A product that underflows to 0 (a path near-impossible on *both* sides, below e^-87
    in float32) shows up as -inf in the running sum ``seen``; the caller then redoes the run exactly by
    broadcasting, so peaked or near-zero probabilities never turn into -inf."""

    def __init__(self, log_trans: Tensor, exact: bool):
        self.log_trans = log_trans
        self.exact = exact
        self.seen = None
        self.col_max = log_trans.amax(0).clamp_min(torch.finfo(log_trans.dtype).min)
        if not self.exact:
            self.trans_exp = (log_trans - self.col_max).exp()

    def shift(self) -> Tensor | float:
        """What the step leaves out, per to-state: the column maxima of A (fold it into the emissions)."""
        return 0.0 if self.exact else self.col_max

    def __call__(self, alpha: Tensor) -> Tensor:
        if self.exact:
            return _log_vecmat_exact(alpha, self.log_trans)
        out = (alpha.exp() @ self.trans_exp).log()
        self.seen = out.detach().clone() if self.seen is None else self.seen.add_(out.detach())
        return out

    def underflowed(self) -> bool:
        return self.seen is not None and bool(torch.isneginf(self.seen).any())


def _chain_forward(
    log_init: Tensor,
    log_trans: Tensor,
    emissions,
    lengths: Tensor,
    keep: bool = False,
    exact: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """The forward recursion alpha_t[j] = (⊕_i alpha_{t-1}[i] ⊗ A[i, j]) ⊗ e_t[j] (Rabiner 1989, eq. 20).

    ``emissions``: a (b, t, k) tensor of log P(y_t | z_t), or a callable returning an iterator over its time
    chunks (b, c, k). Alphas freeze after each sequence's length. Each alpha is shifted to max 0 and the
    shifts are summed in float64 (the scaled recursion, Rabiner 1989 §V.A), so float32 keeps its precision
    over 100,000 steps. Returns (⊕_k alpha_{L-1} per sequence (b,) -- 0 for empty sequences --, the shifted
    alphas (b, t, k) if ``keep``, else None). Memory without ``keep``: O(b·k) plus one chunk."""
    chunks = (lambda: iter([emissions])) if torch.is_tensor(emissions) else emissions
    b, k = lengths.shape[0], log_init.shape[0]
    dtype = log_init.dtype
    floor = torch.finfo(dtype).min
    step = _Step(log_trans, exact)
    min_len = int(lengths.min()) if b else 0
    alpha = None
    scale = torch.zeros(b, dtype=torch.float64)
    kept: list[Tensor] = []
    t = 0
    for chunk in chunks():
        chunk = chunk + step.shift()
        tops = chunk.new_zeros(b, chunk.shape[1])
        for c in range(chunk.shape[1]):
            new = (log_init + chunk[:, c] - step.shift()) if alpha is None else step(alpha) + chunk[:, c]
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
    if step.underflowed():
        return _chain_forward(log_init, log_trans, emissions, lengths, keep, exact=True)
    alphas = (torch.stack(kept, 1) if kept else log_init.new_zeros(b, 0, k)) if keep else None
    if alpha is None:
        return log_init.new_zeros(b), alphas
    total = (scale + LogSemiring.sum(alpha, -1).double()).to(dtype)
    return torch.where(lengths > 0, total, torch.zeros_like(total)), alphas


def _chain_backward(log_trans: Tensor, emission_lp: Tensor, lengths: Tensor, exact: bool = False) -> Tensor:
    """beta_t[i] = logsumexp_j A[i, j] + e_{t+1}[j] + beta_{t+1}[j], beta_{L-1} = 0 (Rabiner 1989, eq. 24),
    each step shifted to max 0: (b, t, k), zero past each length."""
    b, T, k = emission_lp.shape
    step = _Step(log_trans.T.contiguous(), exact)
    floor = torch.finfo(emission_lp.dtype).min
    beta = emission_lp.new_zeros(b, k)
    betas = [beta]
    for t in range(T - 2, -1, -1):
        x = beta + emission_lp[:, t + 1]
        new = step(x - x.amax(-1, keepdim=True).clamp_min(floor)) + step.shift()
        new = new - new.amax(-1, keepdim=True).clamp_min(floor)
        beta = torch.where((t < lengths - 1).unsqueeze(-1), new, torch.zeros_like(new))
        betas.append(beta)
    if step.underflowed():
        return _chain_backward(log_trans, emission_lp, lengths, exact=True)
    return torch.stack(betas[::-1], 1)


# --------------------------------------------------------------------------------------------------
# Compiled kernels (latentvar._hmm_kernels, numba): the scaled recursions in probability space and Viterbi,
# one sequence per loop iteration with no interpreter overhead per step. They work in float64 on CPU
# tensors; a sequence whose scaled normaliser could have underflowed is flagged and the whole batch is
# then recomputed by the exact log-space recursion above, so near-zero probabilities never become -inf.


def _np64(x: Tensor) -> np.ndarray:
    return x.detach().to(torch.float64).contiguous().numpy()


def _compiled(*tensors: Tensor) -> bool:
    """True where the compiled kernels apply: CPU tensors."""
    return all(x.device.type == "cpu" for x in tensors)


def _in_groups(b: int, fn) -> list:
    """fn(lo, hi) over contiguous groups of the b sequences, one group per torch thread, run on Python
    threads (the kernels release the GIL)."""
    n = max(1, min(b, torch.get_num_threads()))
    if n == 1:
        return [fn(0, b)]
    bounds = [b * i // n for i in range(n + 1)]
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(fn, bounds[:-1], bounds[1:]))


def _scaled_transitions(log_trans: Tensor) -> tuple[np.ndarray, Tensor]:
    """A' = exp(log A - its column maxima) (k, k) as float64 NumPy, and those maxima (k,) as float64."""
    log_trans = log_trans.detach().double()
    col_max = log_trans.amax(0).clamp_min(torch.finfo(torch.float64).min)
    return (log_trans - col_max).exp().numpy(), col_max


def _step_weights(log_init: Tensor, col_max: Tensor, em: Tensor, t0: int) -> tuple[np.ndarray, np.ndarray]:
    """The scaled kernels' per-step weights exp(e_t + offset - top_t) (b, c, k) and tops (b, c) for the
    emission chunk ``em`` starting at step t0, computed with torch's vectorised exp: the offset is log π at
    t = 0 and the transition column maxima after. A step where every state is impossible gets weights 0
    (the kernel then flags the sequence)."""
    shifted = em.detach().double() + col_max
    if t0 == 0 and em.shape[1]:
        shifted[:, 0] = em[:, 0].detach().double() + log_init.detach().double()
    top = shifted.amax(-1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    return (shifted - top).exp().numpy(), top.squeeze(-1).numpy()


def _compiled_forward(log_init: Tensor, log_trans: Tensor, chunks, lengths: Tensor) -> Tensor | None:
    """log P(y) (b,) by the compiled scaled forward recursion over the emission chunks (b, c, k), memory
    O(b·k) besides one chunk; None if a sequence needs the exact log-space recursion."""
    b, k = lengths.shape[0], log_init.shape[0]
    alpha, loglik, ok = np.zeros((b, k)), np.zeros(b), np.ones(b, dtype=bool)
    trans_p, col_max = _scaled_transitions(log_trans)
    lens = lengths.numpy()
    t = 0
    for chunk in chunks():
        probs, tops = _step_weights(log_init, col_max, chunk, t)
        _in_groups(
            b,
            lambda lo, hi, t=t, probs=probs, tops=tops: _kernels.forward_chunk(
                trans_p, probs[lo:hi], tops[lo:hi], lens[lo:hi], t, alpha[lo:hi], loglik[lo:hi], ok[lo:hi]
            ),
        )
        t += chunk.shape[1]
    return torch.from_numpy(loglik).to(log_init.dtype) if ok.all() else None


def _compiled_forward_backward(log_init, log_trans, emission_lp, lengths, weights=None, counts=True):
    """(γ (b, t, k) zero past each length, log P(y) (b,), Σ_b w_b γ_b,1 (k,), Σ_b w_b Σ_t ξ_b,t (k, k)) in
    float64 by the compiled scaled forward-backward; None if a sequence needs the log-space recursion."""
    b = lengths.shape[0]
    w = np.ones(b) if weights is None else _np64(weights)
    trans_p, col_max = _scaled_transitions(log_trans)
    probs, tops = _step_weights(log_init, col_max, emission_lp, 0)
    lens = lengths.numpy()
    parts = _in_groups(
        b,
        lambda lo, hi: _kernels.forward_backward(
            trans_p, probs[lo:hi], tops[lo:hi], lens[lo:hi], w[lo:hi], counts
        ),
    )
    gamma, loglik, ok = (np.concatenate([part[i] for part in parts]) for i in range(3))
    if not ok.all():
        return None
    init_c, trans_c = sum(part[3] for part in parts), sum(part[4] for part in parts)
    return tuple(torch.from_numpy(x) for x in (gamma, loglik, init_c, trans_c))


class _CompiledLogPartition(torch.autograd.Function):
    """log P(y) (b,) with its gradient: ∂/∂ log π = γ_1, ∂/∂ log A = Σ_t ξ_t, ∂/∂ e_t = γ_t (the expected
    counts, Eisner 2016), each weighted by the incoming gradient of its sequence; the backward pass reruns
    the compiled forward-backward. Also returns ok (): False where the caller must use log space."""

    @staticmethod
    def forward(ctx, log_init, log_trans, emission_lp, lengths):
        total = _compiled_forward(log_init, log_trans, lambda: iter([emission_lp]), lengths)
        ctx.save_for_backward(log_init, log_trans, emission_lp, lengths)
        ok = torch.tensor(total is not None)
        ctx.mark_non_differentiable(ok)
        return (emission_lp.new_zeros(lengths.shape[0]) if total is None else total), ok

    @staticmethod
    def backward(ctx, grad, _grad_ok):
        log_init, log_trans, emission_lp, lengths = ctx.saved_tensors
        out = _compiled_forward_backward(log_init, log_trans, emission_lp, lengths, grad)
        gamma, _, init_c, trans_c = out
        g_em = gamma.to(emission_lp.dtype) * grad.view(-1, 1, 1)
        return init_c.to(log_init.dtype), trans_c.to(log_trans.dtype), g_em, None


def _log_partition(log_init: Tensor, log_trans: Tensor, emission_lp: Tensor, lengths: Tensor) -> Tensor:
    """log P(y) (b,) from emission log-likelihoods (b, t, k), differentiable in all three inputs: compiled
    on CPU, the log-space recursion otherwise (or where a scaled normaliser could underflow)."""
    if _compiled(log_init, log_trans, emission_lp):
        total, ok = _CompiledLogPartition.apply(log_init, log_trans, emission_lp, lengths)
        if bool(ok):
            return total
    return _chain_forward(log_init, log_trans, emission_lp, lengths)[0]


def _viterbi(log_init: Tensor, log_trans: Tensor, emission_lp: Tensor, lengths: Tensor) -> Tensor:
    """The Viterbi path (b, t) long, -1 past each length: compiled on CPU, else the log-space max-product
    recursion with backpointers in torch."""
    if _compiled(log_init, log_trans, emission_lp):
        li, lt, em, lens = _np64(log_init), _np64(log_trans), _np64(emission_lp), lengths.numpy()
        parts = _in_groups(lengths.shape[0], lambda lo, hi: _kernels.viterbi(li, lt, em[lo:hi], lens[lo:hi]))
        return torch.from_numpy(np.concatenate(parts))
    return _viterbi_torch(log_init, log_trans, emission_lp, lengths)


def _viterbi_torch(log_init: Tensor, log_trans: Tensor, emission_lp: Tensor, lengths: Tensor) -> Tensor:
    b, T, k = emission_lp.shape
    z = torch.full((b, T), -1, dtype=torch.long, device=emission_lp.device)
    if T == 0 or b == 0:
        return z
    back = []
    delta = log_init + emission_lp[:, 0]
    for t in range(1, T):
        best, arg = (delta.unsqueeze(-1) + log_trans).max(-2)
        back.append(arg)
        delta = torch.where((t < lengths).unsqueeze(-1), best + emission_lp[:, t], delta)
    cur = delta.argmax(-1)
    for t in range(T - 1, -1, -1):
        active = t < lengths
        z[:, t] = torch.where(active, cur, torch.full_like(cur, -1))
        if t > 0:
            cur = torch.where(active, back[t - 1].gather(1, cur.unsqueeze(1)).squeeze(1), cur)
    return z


# --------------------------------------------------------------------------------------------------
# The parallel scan: log P(y) = ⊕ alpha_0 ⊗ M_1 ⊗ ... ⊗ M_{T-1}, M_t[i, j] = A[i, j] + e_t[j]


def _semiring_matmul_exact(semiring, a: Tensor, b: Tensor) -> Tensor:
    # broadcast then reduce: exact in float32 for any spread of magnitudes (k small on this path)
    return semiring.sum(a.unsqueeze(-1) + b.unsqueeze(-3), dim=-2)


def _log_matmul_bmm(a: Tensor, b: Tensor) -> Tensor | None:
    """Log-semiring product of stacks of (k, k) matrices by one batched matmul of shifted exponentials:
    log(exp(a - a_row_max) @ exp(b - b_col_max)) + maxes. None if any entry underflowed to -inf (the caller
    then takes the exact broadcast product, so near-zero probabilities never become -inf)."""
    floor = torch.finfo(a.dtype).min
    a_top = a.detach().amax(-1, keepdim=True).clamp_min(floor)
    b_top = b.detach().amax(-2, keepdim=True).clamp_min(floor)
    out = torch.matmul((a - a_top).exp(), (b - b_top).exp())
    if bool((out == 0).any()):
        return None
    return out.log() + a_top + b_top


def _semiring_matmul(semiring, a: Tensor, b: Tensor) -> Tensor:
    fast = _log_matmul_bmm(a, b) if semiring is LogSemiring else None
    return _semiring_matmul_exact(semiring, a, b) if fast is None else fast


def _shift_matrices(mats: Tensor) -> tuple[Tensor, Tensor]:
    """Each (k, k) matrix less its (detached) maximum, and the maxima summed per sequence in float64."""
    top = mats.detach().amax((-1, -2), keepdim=True).clamp_min(torch.finfo(mats.dtype).min)
    return mats - top, top.flatten(1).double().sum(1)


def _chain_parallel(
    log_init: Tensor, log_trans: Tensor, emission_lp: Tensor, lengths: Tensor, semiring
) -> Tensor:
    """The same quantity as `_chain_forward`, by a log-depth tree of (k, k) semiring matrix products
    (the associative scan of Särkkä & García-Fernández 2021); past each length M_t is the semiring
    identity. Every product is shifted to max 0 and the shifts summed in float64, so float32 stays precise
    (and so do its gradients, the marginals) at t = 100,000. Work O(b·t·k³), depth O(log t)."""
    b, T, k = emission_lp.shape
    if T == 0:
        return log_init.new_zeros(b)
    alpha0, scale = _shift_matrices((log_init + emission_lp[:, 0]).unsqueeze(1).unsqueeze(1))  # (b, 1, 1, k)
    if T > 1:
        mats = log_trans + emission_lp[:, 1:].unsqueeze(-2)  # (b, t-1, k, k)
        eye = torch.full((k, k), semiring.zero, dtype=mats.dtype).fill_diagonal_(semiring.one)
        past = (torch.arange(1, T) >= lengths.unsqueeze(-1)).view(b, T - 1, 1, 1)
        mats, shift = _shift_matrices(torch.where(past, eye, mats))
        scale = scale + shift
        while mats.shape[1] > 1:
            if mats.shape[1] % 2:
                mats = torch.cat([mats, eye.expand(b, 1, k, k)], 1)
            mats, shift = _shift_matrices(_semiring_matmul(semiring, mats[:, 0::2], mats[:, 1::2]))
            scale = scale + shift
        alpha0 = _semiring_matmul(semiring, alpha0.view(b, 1, k), mats[:, 0])
    total = (semiring.sum(alpha0.flatten(1), -1).double() + scale).to(log_init.dtype)
    return torch.where(lengths > 0, total, torch.zeros_like(total))


# --------------------------------------------------------------------------------------------------
# The model


def _is_categorical(dist) -> bool:
    return isinstance(dist, D.Categorical) and not isinstance(dist, D.OneHotCategorical)


class HMM(LatentVariableModel):
    """A hidden Markov model with k states.

    Args:
        init_logits: (k,) unnormalised log P(z_1).
        trans_logits: (k, k) unnormalised log P(z_t = j | z_{t-1} = i), rows i = from-state.
        emission: a `torch.distributions.Distribution` with batch_shape (k,) (Categorical, Normal,
            MultivariateNormal, Independent(...)), or an `nn.Module` mapping y (b, t, ...) to per-step
            log-likelihoods log P(y_t | z_t = k) of shape (b, t, k) (neural emissions).

    Computation follows the dtype of the parameters: build them in float64 for a float64 model.
    """

    def __init__(self, init_logits: Tensor, trans_logits: Tensor, emission: D.Distribution | nn.Module):
        init_logits = as_tensor("init_logits", init_logits)
        trans_logits = as_tensor("trans_logits", trans_logits)
        for name, x in (("init_logits", init_logits), ("trans_logits", trans_logits)):
            if not torch.is_floating_point(x):
                raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
            check_finite(name, x, allow_neg_inf=True)
        if init_logits.dim() != 1 or init_logits.shape[0] < 1:
            raise ValueError(
                f"init_logits: expected shape (K,) with K >= 1 states, got {tuple(init_logits.shape)}"
            )
        k = init_logits.shape[0]
        if trans_logits.shape != (k, k):
            raise ValueError(
                f"trans_logits: expected shape ({k}, {k}) (K from init_logits), "
                f"got {tuple(trans_logits.shape)}"
            )
        if bool(torch.isneginf(init_logits).all()):
            raise ValueError("init_logits: every state has initial probability zero (all -inf)")
        if bool(torch.isneginf(trans_logits).all(-1).any()):
            raise ValueError(
                "trans_logits: some row (from-state) has all transition probabilities zero (all -inf)"
            )
        if isinstance(emission, D.Distribution):
            if tuple(emission.batch_shape) != (k,):
                raise ValueError(
                    f"emission: expected batch_shape ({k},) -- one emission distribution per state, K={k} "
                    f"from init_logits -- got batch_shape {tuple(emission.batch_shape)}"
                )
        elif not isinstance(emission, nn.Module):
            raise ValueError(
                "emission: expected a torch.distributions.Distribution or an nn.Module, "
                f"got {type(emission).__name__}"
            )
        self.init_logits = init_logits
        self.trans_logits = trans_logits
        self.emission = emission
        self.num_states = k

    # -- parameters --------------------------------------------------------------------------------
    @property
    def log_init(self) -> Tensor:
        """log π: (k,)."""
        return torch.log_softmax(self.init_logits, -1)

    @property
    def log_trans(self) -> Tensor:
        """log A: (k, k), rows = from-state, each row normalised."""
        return torch.log_softmax(self.trans_logits, -1)

    @property
    def event_shape(self) -> torch.Size:
        return self.emission.event_shape if isinstance(self.emission, D.Distribution) else torch.Size()

    def __repr__(self) -> str:
        emission = type(self.emission).__name__
        return f"HMM(K={self.num_states}, emission={emission}, dtype={self.init_logits.dtype})"

    # -- inputs ------------------------------------------------------------------------------------
    def _check_inputs(self, y, lengths) -> tuple[Tensor, Tensor]:
        """y as a (b, t, *event) tensor (a single (t, *event) sequence gets b = 1), lengths (b,)."""
        y = as_tensor("y", y)
        ev = len(self.event_shape)
        if y.dim() == 1 + ev:
            y = y.unsqueeze(0)
        if y.dim() != 2 + ev or tuple(y.shape[2:]) != tuple(self.event_shape):
            raise ValueError(
                f"y: expected shape (B, T{', ' if ev else ''}{', '.join(map(str, self.event_shape))}) "
                f"-- B sequences of T steps -- got {tuple(y.shape)}"
            )
        b, T = y.shape[:2]
        lengths = (
            torch.full((b,), T, dtype=torch.long)
            if lengths is None
            else check_lengths("lengths", lengths, b, T).long()
        )
        full = bool((lengths == T).all())  # no padding: check y as it is, without a mask
        valid = None if full else torch.arange(T) < lengths.unsqueeze(-1)  # (b, t)
        observed = y if full else y[valid]
        if torch.is_floating_point(y):
            check_finite("y", observed)
        if isinstance(self.emission, D.Distribution):
            if _is_categorical(self.emission):
                check_integer("y", y)
                check_range("y", observed, 0, self.emission.logits.shape[-1])
            else:
                check_support("y", self.emission, observed.reshape(-1, *y.shape[2:]).unsqueeze(1))
            y = y if full else self._fill_padding(y, valid)
        return y, lengths

    @staticmethod
    def _fill_padding(y: Tensor, valid: Tensor) -> Tensor:
        """Padding may hold anything (-1, NaN): replace it by a valid observation so emissions stay finite."""
        if bool(valid.all()) or not bool(valid.any()):
            return y if bool(valid.any()) else torch.zeros_like(y)
        filler = y[valid][0]
        mask = valid.view(*valid.shape, *([1] * (y.dim() - 2)))
        return torch.where(mask, y, filler)

    def emission_log_prob(self, y: Tensor) -> Tensor:
        """log P(y_t | z_t = k): (b, t, k) for y (b, t, *event) (no checks; padding must be valid values)."""
        em = self.emission
        if isinstance(em, nn.Module):
            out = em(y)
            if out.shape != (*y.shape[:2], self.num_states):
                raise ValueError(
                    f"emission: the module returned shape {tuple(out.shape)}, expected "
                    f"{(*y.shape[:2], self.num_states)} (b, t, k) log-likelihoods"
                )
            return out
        if _is_categorical(em):  # index the (k, v) table instead of broadcasting to (b, t, k, v)
            return em.logits.T[y.long()]
        ev = len(self.event_shape)
        return em.log_prob(y.unsqueeze(y.dim() - ev))

    def _emission_chunks(self, y: Tensor, chunk: int) -> Iterator[Tensor]:
        for t0 in range(0, y.shape[1], chunk):
            yield self.emission_log_prob(y[:, t0 : t0 + chunk])

    # -- the API -----------------------------------------------------------------------------------
    def log_prob(self, y, lengths=None, method: str = "sequential", chunk: int | None = None) -> Tensor:
        """Exact log P(y) of each padded sequence over its first ``lengths[b]`` steps: (b,).

        ``method="sequential"``: the forward recursion, memory O(b·k) besides the emissions of ``chunk``
        steps at a time (default: as many steps as keep a chunk near 2^18 values, 2 MiB in float64);
        ``"parallel"``: a log-depth scan of (k, k) products, memory O(b·t·k²)."""
        y, lengths = self._check_inputs(y, lengths)
        if method == "sequential":
            if chunk is None:
                chunk = max(1, CHUNK_VALUES // max(1, y.shape[0] * self.num_states))
            check_positive("chunk", chunk, integer=True)
            log_init, log_trans = self.log_init, self.log_trans
            chunks = lambda: self._emission_chunks(y, chunk)  # noqa: E731 (re-iterable for an exact rerun)
            if torch.is_grad_enabled() and (
                log_init.requires_grad or log_trans.requires_grad or next(chunks(), y).requires_grad
            ):  # differentiable: the whole (b, t, k) emissions are kept for the backward pass anyway
                return _log_partition(log_init, log_trans, self.emission_log_prob(y), lengths)
            total = _compiled_forward(log_init, log_trans, chunks, lengths) if _compiled(log_init) else None
            if total is None:  # not on CPU, or a normaliser could have underflowed: the log-space recursion
                total, _ = _chain_forward(log_init, log_trans, chunks, lengths)
            return total
        if method == "parallel":
            return _chain_parallel(
                self.log_init, self.log_trans, self.emission_log_prob(y), lengths, LogSemiring
            )
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")

    def log_joint(self, z, y, lengths=None) -> Tensor:
        """log P(z, y) = log π_{z_1} + Σ_t log A_{z_{t-1} z_t} + Σ_t log P(y_t | z_t): (b,)."""
        y, lengths = self._check_inputs(y, lengths)
        return _log_joint(
            self.log_init, self.log_trans, self.emission_log_prob(y), self._check_z(z, y, lengths), lengths
        )

    def _check_z(self, z, y, lengths) -> Tensor:
        z = check_integer("z", as_tensor("z", z))
        if z.dim() == 1:
            z = z.unsqueeze(0)
        if z.shape[-2:] != y.shape[:2]:
            raise ValueError(
                f"z: expected shape (..., {y.shape[0]}, {y.shape[1]}) like y, got {tuple(z.shape)}"
            )
        valid = torch.arange(y.shape[1]) < lengths.unsqueeze(-1)
        check_range("z", z[..., valid], 0, self.num_states)
        return z

    def posterior(self, y, lengths=None, method: str = "sequential") -> HMMPosterior:
        """The exact P(z | y): `HMMPosterior` with marginals (b, t, k), mode (b, t), sample, log_prob."""
        if method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
        y, lengths = self._check_inputs(y, lengths)
        return HMMPosterior(self, self.emission_log_prob(y).detach(), lengths, method)

    def sample(self, sample_shape: torch.Size = torch.Size(), length: int = 1) -> tuple[Tensor, Tensor]:
        """(z, y): z (*sample_shape, length) states, y (*sample_shape, length, *event) observations.

        A module emission can be sampled if it has a ``sample_given_states(z) -> y`` method."""
        if not isinstance(length, int) or isinstance(length, bool) or length < 0:
            raise ValueError(f"length: expected a non-negative integer, got {length!r}")
        sample_shape = torch.Size(sample_shape)
        n = math.prod(sample_shape)
        z = torch.empty(n, length, dtype=torch.long)
        with torch.no_grad():
            if length:
                z[:, 0] = D.Categorical(logits=self.log_init).sample((n,))
                trans = self.log_trans
                for t in range(1, length):
                    z[:, t] = D.Categorical(logits=trans[z[:, t - 1]]).sample()
            y = self._sample_emissions(z)
        return z.reshape(*sample_shape, length), y.reshape(*sample_shape, length, *y.shape[2:])

    def _sample_emissions(self, z: Tensor) -> Tensor:
        em = self.emission
        if isinstance(em, nn.Module):
            if not hasattr(em, "sample_given_states"):
                raise ValueError(
                    "emission: this module has no sample_given_states(z) method, so y cannot be sampled"
                )
            return em.sample_given_states(z)
        if _is_categorical(em):
            if z.numel() == 0:
                return torch.zeros_like(z)
            return D.Categorical(logits=em.logits[z]).sample()
        ys = em.sample(z.shape)  # (n, t, k, *event)
        ev = len(self.event_shape)
        index = z.reshape(*z.shape, 1, *([1] * ev)).expand(*z.shape, 1, *self.event_shape)
        return ys.gather(2, index).squeeze(2)

    # -- fitting -----------------------------------------------------------------------------------
    def fit(
        self,
        y,
        lengths=None,
        method: str = "em",
        max_iter: int = 100,
        tol: float = 1e-6,
        batch_size: int = 256,
        lr: float = 0.05,
        pseudocount: float = 0.0,
        reg_covar: float = 1e-6,
        parameters: list[Tensor] | None = None,
        callback=None,
        show_progress: bool = False,
    ) -> FitResult:
        """Fit to sequences y (b, t, *event) with ``lengths``, starting from this model's parameters.

        ``method="em"``: Baum-Welch (Baum et al. 1970; Rabiner 1989 §III.C) for Categorical and Gaussian
        (Normal, Independent(Normal), MultivariateNormal) emissions; each iteration streams the sequences
        in minibatches of ``batch_size``, summing expected counts -- taken as gradients of log P(y) with
        respect to log π, log A and the emission log-likelihoods (Eisner 2016) -- then re-estimates
        (``pseudocount`` added to counts, ``reg_covar`` to variances). The likelihood never decreases.

        ``method="gradient"``: Adam on the exact -log P(y) per token over minibatches, for Categorical,
        Normal, MultivariateNormal (optionally in Independent) or module emissions (their parameters);
        one iteration is one pass over the data. ``parameters`` adds extra tensors to optimise.

        History: mean log-likelihood per observed step after each iteration."""
        y, lengths = self._check_inputs(y, lengths)
        check_positive("max_iter", max_iter, integer=True)
        check_positive("batch_size", batch_size, integer=True)
        if method == "em":
            return _fit_em(
                self, y, lengths, max_iter, tol, batch_size, pseudocount, reg_covar, callback, show_progress
            )
        if method == "gradient":
            return _fit_gradient(
                self, y, lengths, max_iter, tol, batch_size, lr, parameters, callback, show_progress
            )
        raise ValueError(f"method: expected 'em' or 'gradient', got {method!r}")


def _log_joint(log_init, log_trans, emission_lp, z, lengths) -> Tensor:
    """log P(z, y) for z (..., b, t) given emission log-likelihoods (b, t, k): (..., b)."""
    T = emission_lp.shape[1]
    valid = torch.arange(T) < lengths.unsqueeze(-1)  # (b, t)
    zc = z.clamp_min(0)
    emit = emission_lp.expand(*z.shape, -1).gather(-1, zc.unsqueeze(-1)).squeeze(-1)
    score = torch.where(valid, emit, torch.zeros_like(emit)).sum(-1)
    score = score + torch.where(lengths > 0, log_init[zc[..., 0]], torch.zeros_like(score)) if T else score
    if T > 1:
        trans = log_trans[zc[..., :-1], zc[..., 1:]]
        score = score + torch.where(valid[:, 1:], trans, torch.zeros_like(trans)).sum(-1)
    return score


# --------------------------------------------------------------------------------------------------
# The posterior


class HMMPosterior(Posterior):
    """P(z | y) for an HMM, from the emission log-likelihoods (b, t, k) and lengths (b,).

    ``marginals`` (b, t, k) by forward-backward (zero past each length); ``marginals_autograd`` the same as
    the gradient of log P(y) with respect to the emission log-likelihoods; ``mode`` (b, t) the Viterbi
    path (-1 past each length); ``sample`` by forward-filtering backward-sampling; ``log_prob(z)``."""

    def __init__(self, model: HMM, emission_lp: Tensor, lengths: Tensor, method: str = "sequential"):
        self.model = model
        self.emission_lp = emission_lp
        self.lengths = lengths
        self.method = method
        self.log_init = model.log_init.detach()
        self.log_trans = model.log_trans.detach()
        self._cache: dict[str, Tensor] = {}

    @property
    def valid(self) -> Tensor:
        """(b, t) True within each length."""
        return torch.arange(self.emission_lp.shape[1]) < self.lengths.unsqueeze(-1)

    def _forward(self) -> tuple[Tensor, Tensor]:
        """The log-space forward pass keeping its (shifted) alphas: (log P(y) (b,), alphas (b, t, k))."""
        if "forward" not in self._cache:
            self._cache["forward"] = _chain_forward(
                self.log_init, self.log_trans, self.emission_lp, self.lengths, keep=True
            )
        return self._cache["forward"]

    @property
    def log_evidence(self) -> Tensor:
        """log P(y): (b,)."""
        if "log_evidence" not in self._cache:
            total = None
            if _compiled(self.emission_lp):
                chunks = lambda: iter([self.emission_lp])  # noqa: E731
                total = _compiled_forward(self.log_init, self.log_trans, chunks, self.lengths)
            self._cache["log_evidence"] = self._forward()[0] if total is None else total
        return self._cache["log_evidence"]

    @property
    def marginals(self) -> Tensor:
        """P(z_t = k | y): (b, t, k) by forward-backward (Rabiner 1989, eq. 27), zero past each length
        (with ``method="parallel"``: by differentiating the parallel scan)."""
        if self.method == "parallel":
            return self.marginals_autograd * self.valid.unsqueeze(-1)
        if "marginals" not in self._cache:
            if _compiled(self.emission_lp):
                fast = _compiled_forward_backward(
                    self.log_init, self.log_trans, self.emission_lp, self.lengths, counts=False
                )
                if fast is not None:
                    self._cache["marginals"] = fast[0].to(self.emission_lp.dtype)
                    self._cache.setdefault("log_evidence", fast[1].to(self.emission_lp.dtype))
                    return self._cache["marginals"]
            total, alphas = self._forward()
            betas = _chain_backward(self.log_trans, self.emission_lp, self.lengths)
            gamma = torch.softmax(alphas + betas, -1)  # alphas and betas are shifted per step
            self._cache["marginals"] = gamma * self.valid.unsqueeze(-1)
        return self._cache["marginals"]

    @property
    def marginals_autograd(self) -> Tensor:
        """The same marginals as ∂ log P(y) / ∂ log P(y_t | z_t = k) (Eisner 2016; torch-struct)."""
        with torch.enable_grad():
            e = self.emission_lp.detach().requires_grad_(True)
            if self.method == "parallel":
                total = _chain_parallel(self.log_init, self.log_trans, e, self.lengths, LogSemiring)
            else:
                total, _ = _chain_forward(self.log_init, self.log_trans, e, self.lengths)
            (grad,) = torch.autograd.grad(total.sum(), e)
        return grad

    @property
    def mode(self) -> Tensor:
        """The Viterbi path argmax_z P(z | y): (b, t) long, -1 past each length (Viterbi 1967)."""
        if "mode" not in self._cache:
            if self.method == "parallel":
                self._cache["mode"] = self._mode_parallel()
            else:
                self._cache["mode"] = _viterbi(self.log_init, self.log_trans, self.emission_lp, self.lengths)
        return self._cache["mode"]

    def _mode_parallel(self) -> Tensor:
        # the gradient of the max-semiring score is the one-hot best path (torch-struct's argmax)
        with torch.enable_grad():
            e = self.emission_lp.detach().requires_grad_(True)
            best = _chain_parallel(self.log_init, self.log_trans, e, self.lengths, MaxSemiring)
            (grad,) = torch.autograd.grad(best.sum(), e)
        z = grad.argmax(-1)
        return torch.where(self.valid, z, torch.full_like(z, -1))

    def _backtrack(self, alphas: Tensor, choose) -> Tensor:
        """Walk back from each sequence's last step: z_{L-1} = choose(alpha_{L-1}), then
        z_t = choose(alpha_t + log A[:, z_{t+1}]). ``alphas`` (..., b, t, k); returns (..., b, t)."""
        T = alphas.shape[-2]
        lengths = self.lengths
        z = torch.full(alphas.shape[:-1], -1, dtype=torch.long)
        nxt = torch.zeros(alphas.shape[:-2], dtype=torch.long)
        for t in range(T - 1, -1, -1):
            a_t = alphas[..., t, :]
            last = choose(a_t)
            inner = choose(a_t + self.log_trans.T[nxt])
            cur = torch.where(
                t == lengths - 1, last, torch.where(t < lengths - 1, inner, torch.full_like(last, -1))
            )
            z[..., t] = cur
            nxt = cur.clamp_min(0)
        return z

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        """Exact draws from P(z | y) by forward-filtering backward-sampling (Chib 1996):
        (*sample_shape, b, t), -1 past each length."""
        sample_shape = torch.Size(sample_shape)
        _, alphas = self._forward()
        alphas = alphas.expand(*sample_shape, *alphas.shape)
        return self._backtrack(alphas, lambda scores: D.Categorical(logits=scores).sample())

    def log_prob(self, z) -> Tensor:
        """log P(z | y) = log P(z, y) - log P(y): (..., b) for z (..., b, t);
        entries past each length are ignored."""
        z = check_integer("z", as_tensor("z", z))
        b, T, k = self.emission_lp.shape
        if tuple(z.shape[-2:]) != (b, T):
            raise ValueError(
                f"z: expected shape (..., {b}, {T}) like the posterior's y, got {tuple(z.shape)}"
            )
        check_range("z", z[..., self.valid], 0, k)
        joint = _log_joint(self.log_init, self.log_trans, self.emission_lp, z, self.lengths)
        return joint - self.log_evidence


# --------------------------------------------------------------------------------------------------
# Fitting


def _batches(n: int, batch_size: int, shuffle: bool = False) -> list[Tensor]:
    order = torch.randperm(n) if shuffle else torch.arange(n)
    return list(order.split(batch_size))


def _trim(y: Tensor, lengths: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
    """The minibatch idx, cut to its longest sequence."""
    lb = lengths[idx]
    T = int(lb.max()) if lb.numel() else 0
    return y[idx, :T], lb


def _em_family(emission) -> str:
    if _is_categorical(emission):
        return "categorical"
    if isinstance(emission, D.MultivariateNormal):
        return "full"
    if isinstance(emission, D.Normal):
        return "normal"
    if isinstance(emission, D.Independent) and isinstance(emission.base_dist, D.Normal):
        return "diag"
    raise ValueError(
        f"emission: EM supports Categorical, Normal, Independent(Normal) and MultivariateNormal emissions, "
        f"got {type(emission).__name__}; use method='gradient' for others"
    )


def _expected_counts(model: HMM, y: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """E-step for one minibatch: (log P(y) summed, initial counts (k,), transition counts (k, k),
    state posteriors (b, t, k)), as gradients of log P(y) w.r.t. log π, log A and the emissions."""
    e = model.emission_log_prob(y).detach()
    if _compiled(e):
        fast = _compiled_forward_backward(model.log_init, model.log_trans, e, lengths)
        if fast is not None:
            gamma, loglik, init_c, trans_c = fast
            dtype = e.dtype
            return loglik.sum().to(dtype), init_c.to(dtype), trans_c.to(dtype), gamma.to(dtype)
    with torch.enable_grad():
        log_init = model.log_init.detach().requires_grad_(True)
        log_trans = model.log_trans.detach().requires_grad_(True)
        e = e.requires_grad_(True)
        total, _ = _chain_forward(log_init, log_trans, e, lengths)
        g_init, g_trans, gamma = torch.autograd.grad(total.sum(), (log_init, log_trans, e))
    return total.sum().detach(), g_init, g_trans, gamma


def _m_step_emission(family: str, emission, stats: dict, pseudocount: float, reg_covar: float):
    nk = stats["n"] + 10 * torch.finfo(stats["n"].dtype).eps
    if family == "categorical":
        counts = stats["counts"] + pseudocount
        return D.Categorical(logits=(counts / counts.sum(-1, keepdim=True)).log())
    mean = stats["sy"] / nk.view(-1, *([1] * (stats["sy"].dim() - 1)))
    if family == "full":
        cov = stats["syy"] / nk[:, None, None] - mean.unsqueeze(-1) * mean.unsqueeze(-2)
        cov = cov + reg_covar * torch.eye(mean.shape[-1], dtype=mean.dtype)
        return D.MultivariateNormal(mean, covariance_matrix=cov)
    var = (stats["syy"] / nk.view(-1, *([1] * (mean.dim() - 1))) - mean**2).clamp_min(0) + reg_covar
    if family == "normal":
        return D.Normal(mean, var.sqrt())
    return D.Independent(D.Normal(mean, var.sqrt()), 1)


def _accumulate_emission(family: str, stats: dict, y: Tensor, gamma: Tensor, valid: Tensor, k: int, v: int):
    g = gamma[valid]  # (n, k)
    yv = y[valid]
    stats["n"] = stats.get("n", 0) + g.sum(0)
    if family == "categorical":
        counts = torch.zeros(k, v, dtype=g.dtype).index_add_(1, yv.long(), g.T)
        stats["counts"] = stats.get("counts", 0) + counts
        return
    yv = yv.to(g.dtype)
    if family == "normal":
        stats["sy"] = stats.get("sy", 0) + g.T @ yv
        stats["syy"] = stats.get("syy", 0) + g.T @ (yv * yv)
        return
    stats["sy"] = stats.get("sy", 0) + g.T @ yv
    if family == "full":
        stats["syy"] = stats.get("syy", 0) + torch.einsum("nk,nd,ne->kde", g, yv, yv)
    else:
        stats["syy"] = stats.get("syy", 0) + g.T @ (yv * yv)


def _fit_em(
    model: HMM, y, lengths, max_iter, tol, batch_size, pseudocount, reg_covar, callback, show_progress
):
    family = _em_family(model.emission)
    k = model.num_states
    v = model.emission.logits.shape[-1] if family == "categorical" else 0
    n_obs = max(int(lengths.sum()), 1)
    history: list[float] = []
    converged = False
    bar = progress(range(max_iter), desc="Baum-Welch", disable=not show_progress)
    for _ in bar:
        loglik = 0.0
        init_c = torch.zeros(k, dtype=model.init_logits.dtype)
        trans_c = torch.zeros(k, k, dtype=model.init_logits.dtype)
        stats: dict = {}
        for idx in _batches(y.shape[0], batch_size):
            yb, lb = _trim(y, lengths, idx)
            total, g_init, g_trans, gamma = _expected_counts(model, yb, lb)
            loglik += float(total)
            init_c += g_init
            trans_c += g_trans
            _accumulate_emission(family, stats, yb, gamma, torch.arange(yb.shape[1]) < lb[:, None], k, v)
        # the log-likelihood of the parameters *before* this M-step: EM's monotone sequence
        mean_ll = loglik / n_obs
        if history and mean_ll - history[-1] < tol:
            history.append(mean_ll)
            converged = True
            break
        history.append(mean_ll)
        bar.set_postfix(loglik=f"{mean_ll:.5f}")
        init_c = init_c + pseudocount
        trans_c = trans_c + pseudocount
        model = HMM(
            (init_c / init_c.sum()).log(),
            (trans_c / trans_c.sum(-1, keepdim=True).clamp_min(torch.finfo(trans_c.dtype).tiny)).log(),
            _m_step_emission(family, model.emission, stats, pseudocount, reg_covar),
        )
        if callback is not None:
            callback(model, len(history), mean_ll)
    return FitResult(model, history, converged)


def _fit_gradient(model: HMM, y, lengths, max_iter, tol, batch_size, lr, parameters, callback, show_progress):
    from latentvar.mixture import _unconstrained

    init = model.init_logits.detach().clone().requires_grad_(True)
    trans = model.trans_logits.detach().clone().requires_grad_(True)
    if isinstance(model.emission, nn.Module):
        leaves, rebuild = list(model.emission.parameters()), (lambda p, m=model.emission: m)
    else:
        leaves, rebuild = _unconstrained(model.emission)
        for p in leaves:
            p.requires_grad_(True)
    params = [init, trans, *leaves, *(parameters or [])]
    opt = torch.optim.Adam(params, lr=lr)
    n_obs = max(int(lengths.sum()), 1)
    history: list[float] = []
    converged = False
    bar = progress(range(max_iter), desc="gradient", disable=not show_progress)
    for it in bar:
        loglik = 0.0
        for idx in _batches(y.shape[0], batch_size, shuffle=True):
            yb, lb = _trim(y, lengths, idx)
            current = HMM(init, trans, rebuild(leaves))
            total = _log_partition(current.log_init, current.log_trans, current.emission_log_prob(yb), lb)
            loss = -total.sum() / max(int(lb.sum()), 1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loglik += float(total.detach().sum())
        mean_ll = loglik / n_obs
        bar.set_postfix(loglik=f"{mean_ll:.5f}")
        done = track_convergence(history, mean_ll, tol, lr)
        if callback is not None:
            callback(HMM(init.detach(), trans.detach(), rebuild(leaves)), it + 1, mean_ll)
        if done:
            converged = True
            break
    emission = rebuild(leaves)
    if isinstance(emission, D.Distribution):
        emission = rebuild([p.detach() for p in leaves])
    return FitResult(HMM(init.detach(), trans.detach(), emission), history, converged)
