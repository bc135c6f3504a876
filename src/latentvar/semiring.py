"""Moved to `latentvar.inference.semiring`; this name stays importable."""

from latentvar.inference.semiring import LogSemiring, MaxSemiring, logsumexp_safe

__all__ = ["LogSemiring", "MaxSemiring", "logsumexp_safe"]
