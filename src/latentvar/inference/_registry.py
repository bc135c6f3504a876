"""Registered fast paths: compiled kernels that answer one question of `latentvar.inference.chain.Chain`
faster than the generic recursion, where they apply.

Each entry is (question, name, applies(chain, *args) -> bool, run(chain, *args) -> result | None). A fast
path may also decline at run time by returning None (e.g. a scaled kernel whose normaliser could have
underflowed); the generic recursion then answers. ``Chain(..., fast=False)`` bypasses every entry, which is
how tests/test_inference.py checks each registered path against the generic recursion.

Questions: ``forward`` (semiring, keep) -> (total, alphas | None); ``log_partition_grad`` -> differentiable
log Z; ``marginals`` -> (b, t, k); ``viterbi`` -> (b, t); ``expected_counts`` -> (log Z (b,), ∂/∂init,
∂/∂log A summed over the batch, ∂/∂emissions).
"""

from __future__ import annotations

from collections.abc import Callable

_PATHS: dict[str, list[tuple[str, Callable, Callable]]] = {}


def register(question: str, name: str, applies: Callable):
    """Decorator: register ``run`` as the fast path ``name`` for ``question`` where ``applies``."""

    def wrap(run: Callable) -> Callable:
        _PATHS.setdefault(question, []).append((name, applies, run))
        return run

    return wrap


def run(question: str, chain, *args):
    """The first applicable fast path's answer, or None (none applies, one declined, or chain.fast off)."""
    if not chain.fast:
        return None
    for _, applies, fn in _PATHS.get(question, ()):
        if applies(chain, *args):
            out = fn(chain, *args)
            if out is not None:
                return out
    return None


def registered() -> dict[str, list[str]]:
    """question -> names of its fast paths, in the order they are tried."""
    return {q: [name for name, _, _ in paths] for q, paths in _PATHS.items()}
