"""Sampling from an HMM: states by ancestral sampling through π and A, observations given the states, and
sequences of variable length that stop through the end-state probabilities (``final_logits``).

Shapes (named axes): s the draws and the models' batch (sample_shape + batch_shape), t steps, k states.
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributions as D
from torch import Tensor, nn

from latentvar.hmm.inputs import is_categorical

PAD = -1  # the state past each sampled sequence's length


@contextlib.contextmanager
def seeded(generator: torch.Generator | None):
    """Draws from torch's global generator, made a function of ``generator``: the global state is forked
    (and restored after) and seeded by a number drawn from it."""
    if generator is None:
        yield
        return
    seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
    devices = [generator.device.index or 0] if generator.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _rows(trans: Tensor, prev: Tensor, t: int, shape: torch.Size) -> Tensor:
    """log A_t[z_{t-1}, :] (*shape, k') for the previous states ``prev`` (*shape,); k' may be k + 1 (end)."""
    a = trans if trans.dim() == 2 else trans[..., t if trans.shape[-3] > 1 else 0, :, :]
    if a.dim() == 2:
        return a[prev]
    a = a.expand(*shape, *a.shape[-2:])
    return a.gather(-2, prev[..., None, None].expand(*shape, 1, a.shape[-1])).squeeze(-2)


def sample_states(model, shape: torch.Size, length: int) -> tuple[Tensor, Tensor]:
    """(z (*shape, length), lengths (*shape,)): a Markov chain of ``length`` steps, or, with end states,
    stopped when the end is drawn (then z is -1 past each length; a chain still running at ``length`` is cut
    there, its length equal to ``length``)."""
    k = model.num_states
    init, trans = model.log_init, model.log_trans
    final = model.log_final
    z = torch.full((*shape, length), PAD, dtype=torch.long, device=init.device)
    lengths = torch.full(shape, length, dtype=torch.long, device=init.device)
    if not length:
        return z, lengths
    z[..., 0] = D.Categorical(logits=init.expand(*shape, k)).sample()
    running = torch.ones(shape, dtype=torch.bool, device=init.device)
    if final is not None:  # the next state or the end (column k), drawn jointly from the row
        trans = model.log_rows
    for t in range(1, length):
        prev = z[..., t - 1].clamp_min(0)
        nxt = D.Categorical(logits=_rows(trans, prev, t, shape)).sample()
        if final is not None:
            ended = running & (nxt == k)
            lengths = torch.where(ended, t, lengths)
            running = running & ~ended
            nxt = torch.where(running, nxt, PAD)
        z[..., t] = nxt
    return z, lengths


def sample_emissions(model, z: Tensor) -> Tensor:
    """y given the states z (..., t); entries where z is -1 hold a draw for state 0 (padding)."""
    em = model.emission
    z = z.clamp_min(0)
    if isinstance(em, nn.Module):
        if not hasattr(em, "sample_given_states"):
            raise ValueError(
                "emission: this module has no sample_given_states(z) method, so y cannot be sampled"
            )
        flat = z.reshape(-1, z.shape[-1])
        y = em.sample_given_states(flat)
        return y.reshape(*z.shape, *y.shape[2:])
    if is_categorical(em) and em.batch_shape == (model.num_states,):
        if z.numel() == 0:
            return torch.zeros_like(z)
        return D.Categorical(logits=em.logits[z]).sample()
    k = model.num_states
    if em.batch_shape == (k,):
        ys = em.sample(z.shape)  # (..., t, k, *event)
    else:
        ys = em.expand(torch.Size((*z.shape, k))).sample()
    ev = len(model.event_shape)
    index = z.reshape(*z.shape, 1, *([1] * ev)).expand(*z.shape, 1, *model.event_shape)
    return ys.gather(z.dim(), index).squeeze(z.dim())
