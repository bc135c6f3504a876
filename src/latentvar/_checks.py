"""Argument checks shared by every model: a bad input raises a ValueError that names the argument,
says what was expected and what was given -- never a silent NaN or a traceback from deep inside torch."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def as_tensor(name: str, value, dtype: torch.dtype | None = None) -> Tensor:
    """`value` as a tensor; a ValueError naming `name` if it cannot be one."""
    if isinstance(value, Tensor):
        return value if dtype is None else value.to(dtype)
    try:
        return torch.as_tensor(value, dtype=dtype)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name}: expected a tensor or array, got {type(value).__name__} ({err})") from None


def check_finite(name: str, x: Tensor, allow_neg_inf: bool = False) -> Tensor:
    """Refuse NaN and +-inf (or only NaN and +inf, for log-probabilities where -inf means 'impossible')."""
    if not torch.is_floating_point(x):
        return x
    # the common case in one pass: all finite (or, allowing -inf, all below +inf; NaN compares False); a CPU
    # float32/64 tensor through its NumPy view (a few microseconds less per call on small inputs)
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.layout == torch.strided:
        v = x.detach().numpy()
        if bool((v < np.inf).all() if allow_neg_inf else np.isfinite(v).all()):
            return x
    elif bool((x < torch.inf).all() if allow_neg_inf else torch.isfinite(x).all()):
        return x
    bad = torch.isnan(x) | (torch.isposinf(x) if allow_neg_inf else torch.isinf(x))
    if bool(bad.any()):
        n = int(bad.sum())
        kind = "NaN or +inf" if allow_neg_inf else "NaN or infinite"
        raise ValueError(f"{name}: expected finite values, got {n} {kind} entr{'y' if n == 1 else 'ies'}")
    return x


def check_ndim(name: str, x: Tensor, ndim: int | Sequence[int], axes: str = "") -> Tensor:
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if x.dim() not in allowed:
        want = " or ".join(str(d) for d in allowed)
        named = f" ({axes})" if axes else ""
        raise ValueError(f"{name}: expected {want} dimensions{named}, got shape {tuple(x.shape)}")
    return x


def check_size(name: str, x: Tensor, dim: int, size: int, what: str) -> Tensor:
    if x.dim() == 0 or x.shape[dim] != size:
        raise ValueError(
            f"{name}: expected size {size} ({what}) in dimension {dim}, got shape {tuple(x.shape)}"
        )
    return x


def check_integer(name: str, x: Tensor) -> Tensor:
    if torch.is_floating_point(x) or torch.is_complex(x) or x.dtype == torch.bool:
        raise ValueError(f"{name}: expected an integer tensor, got dtype {x.dtype}")
    return x


def check_range(name: str, x: Tensor, low: int, high: int) -> Tensor:
    """Integers in [low, high)."""
    if x.numel() and (int(x.min()) < low or int(x.max()) >= high):
        raise ValueError(
            f"{name}: expected values in [{low}, {high - 1}], got values in [{int(x.min())}, {int(x.max())}]"
        )
    return x


def check_lengths(name: str, lengths, batch: int, max_len: int) -> Tensor:
    """Per-sequence lengths: shape (batch,), integers in [0, max_len]."""
    lengths = check_integer(name, as_tensor(name, lengths))
    if lengths.shape != (batch,):
        raise ValueError(
            f"{name}: expected shape ({batch},), one length per sequence, got {tuple(lengths.shape)}"
        )
    if lengths.numel() and int(lengths.min()) < 0:
        raise ValueError(f"{name}: expected non-negative lengths, got {int(lengths.min())}")
    if lengths.numel() and int(lengths.max()) > max_len:
        raise ValueError(
            f"{name}: expected lengths <= {max_len} (the padded length), got {int(lengths.max())}"
        )
    return lengths


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_positive(name: str, value: float | int, integer: bool = False) -> None:
    """A positive integer, or (``integer=False``) a positive finite number."""
    if integer and not _is_int(value):
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    if not integer and (
        isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value)
    ):
        raise ValueError(f"{name}: expected a positive finite number, got {value!r}")
    if not value > 0:
        what = "a positive integer" if integer else "a positive value"
        raise ValueError(f"{name}: expected {what}, got {value!r}")


def check_number(name: str, value: float) -> None:
    """A real number, not NaN (a tolerance: a negative one, or -inf, runs every iteration)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or math.isnan(value):
        raise ValueError(f"{name}: expected a number, got {value!r}")


def check_non_negative(name: str, value: float) -> None:
    """A finite number >= 0 (a pseudocount, a variance floor)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")


# Draws beyond this many are refused up front: no machine holds them, and torch would fail deep inside
# its allocator (or overflow its element count) instead.
MAX_DRAWS = 2**40


def check_count(name: str, value, limit: int = MAX_DRAWS) -> int:
    """A non-negative integer of at most ``limit`` (a length, a number of steps)."""
    if not _is_int(value) or value < 0:
        raise ValueError(f"{name}: expected a non-negative integer, got {value!r}")
    if value > limit:
        raise ValueError(f"{name}: expected at most {limit:,} (2^{limit.bit_length() - 1}), got {value:,}")
    return int(value)


def check_sample_shape(name: str, shape, per_draw: int = 1) -> torch.Size:
    """``shape`` as a torch.Size of non-negative integers whose draws, ``per_draw`` elements each, number at
    most `MAX_DRAWS` (more is no real request: it would fail inside torch's allocator)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if isinstance(shape, (str, bytes)) or not isinstance(shape, (Sequence, torch.Size)):
        raise ValueError(f"{name}: expected a tuple of non-negative integers, got {shape!r}")
    if not all(_is_int(s) and s >= 0 for s in shape):
        raise ValueError(f"{name}: expected a tuple of non-negative integers, got {tuple(shape)!r}")
    total = math.prod(int(s) for s in shape) * max(int(per_draw), 1)
    if total > MAX_DRAWS:
        raise ValueError(
            f"{name}: {tuple(int(s) for s in shape)} asks for {total:,} values, more than the limit of "
            f"{MAX_DRAWS:,} (2^40)"
        )
    return torch.Size(int(s) for s in shape)


def check_real(name: str, x: Tensor) -> Tensor:
    """Refuse complex and boolean tensors where real numbers are expected."""
    if torch.is_complex(x) or x.dtype == torch.bool:
        raise ValueError(f"{name}: expected real numbers, got dtype {x.dtype}")
    return x


def check_support(name: str, dist: torch.distributions.Distribution, value: Tensor) -> Tensor:
    """Values outside `dist`'s support would give -inf or garbage log-probabilities: refuse them."""
    try:
        inside = dist.support.check(value)
    except (NotImplementedError, RuntimeError):
        return value
    # the support check reduces over the event dims for independent supports
    if not bool(torch.as_tensor(inside).all()):
        raise ValueError(f"{name}: values outside the support of {type(dist).__name__} ({dist.support})")
    return value
