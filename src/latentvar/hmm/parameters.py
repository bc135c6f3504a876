"""The parameters of an HMM, checked: init_logits (..., k), trans_logits (k, k) or (..., t|1, k, k), the
emission, and end-state logits final_logits (..., k); their broadcast batch shape. A bad parameter raises a
ValueError that names it."""

from __future__ import annotations

import torch
import torch.distributions as D
from torch import Tensor, nn

from latentvar._checks import as_tensor, check_finite


def check_parameters(init_logits, trans_logits, emission, final_logits):
    """(init_logits, trans_logits, final_logits) as tensors, and the models' batch shape."""
    init_logits = as_tensor("init_logits", init_logits)
    trans_logits = as_tensor("trans_logits", trans_logits)
    named = [("init_logits", init_logits), ("trans_logits", trans_logits)]
    if final_logits is not None:
        final_logits = as_tensor("final_logits", final_logits)
        named.append(("final_logits", final_logits))
    for name, x in named:
        if not torch.is_floating_point(x):
            raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
        check_finite(name, x, allow_neg_inf=True)
    if init_logits.dim() < 1 or init_logits.shape[-1] < 1:
        raise ValueError(
            f"init_logits: expected shape (..., K) with K >= 1 states, got {tuple(init_logits.shape)}"
        )
    k = init_logits.shape[-1]
    if trans_logits.dim() < 2 or trans_logits.shape[-2:] != (k, k):
        raise ValueError(
            f"trans_logits: expected shape ({k}, {k}) or (..., T, {k}, {k}) (K from init_logits), "
            f"got {tuple(trans_logits.shape)}"
        )
    if bool(torch.isneginf(init_logits).all(-1).any()):
        raise ValueError("init_logits: every state has initial probability zero (all -inf)")
    shapes = [init_logits.shape[:-1], trans_logits.shape[:-3]]
    if final_logits is None:
        if bool(torch.isneginf(trans_logits).all(-1).any()):
            raise ValueError(
                "trans_logits: some row (from-state) has all transition probabilities zero (all -inf)"
            )
    else:
        check_final(final_logits, trans_logits, k)
        shapes.append(final_logits.shape[:-1])
    if isinstance(emission, D.Distribution):
        eb = tuple(emission.batch_shape)
        if not eb or eb[-1] != k:
            raise ValueError(
                f"emission: expected batch_shape ({k},) or (..., T, {k}) -- one emission distribution per "
                f"state, K={k} from init_logits -- got batch_shape {eb}"
            )
        shapes.append(torch.Size(eb[:-2]))
    elif not isinstance(emission, nn.Module):
        raise ValueError(
            "emission: expected a torch.distributions.Distribution or an nn.Module, "
            f"got {type(emission).__name__}"
        )
    try:  # one model (every shape empty) is the common case: torch.broadcast_shapes costs tens of µs
        batch_shape = shapes[0] if all(s == shapes[0] for s in shapes) else torch.broadcast_shapes(*shapes)
    except RuntimeError:
        raise ValueError(
            f"trans_logits: expected leading (batch) axes broadcasting with init_logits "
            f"{tuple(init_logits.shape[:-1])} and the emission, got shape {tuple(trans_logits.shape)}"
        ) from None
    if isinstance(emission, nn.Module) and batch_shape:
        raise ValueError("emission: a module emission needs one model (init_logits (K,)), not a batch")
    return init_logits, trans_logits, final_logits, batch_shape


def check_final(final_logits: Tensor, trans_logits: Tensor, k: int) -> None:
    """End-state logits (..., k), with transitions shared over time (each row of A is normalised together
    with its end probability), and no from-state whose row and end are all impossible."""
    if final_logits.dim() < 1 or final_logits.shape[-1] != k:
        raise ValueError(
            f"final_logits: expected shape (..., {k}) (K from init_logits), got {tuple(final_logits.shape)}"
        )
    if trans_logits.dim() > 2 and trans_logits.shape[-3] > 1:
        raise ValueError(
            "final_logits: end states need transitions shared over time ((K, K) or (..., 1, K, K)), "
            f"got trans_logits {tuple(trans_logits.shape)}"
        )
    rows = torch.isneginf(trans_logits).all(-1)  # (..., [1,] k)
    ends = torch.isneginf(final_logits)
    if trans_logits.dim() > 2:
        ends = ends.unsqueeze(-2)
    if bool((rows & ends).any()):
        raise ValueError(
            "final_logits: some from-state can neither move nor end (its row of trans_logits and its "
            "final_logits are all -inf)"
        )
