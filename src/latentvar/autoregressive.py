"""Autoregressive sequence models: P(y) = Π_t P(y_t | y_<t), exact with no latent variable at all.

Shapes (named axes): b batch, t time, v vocabulary.

End-of-sequence convention: token id ``eos`` (default: the last id, v - 1) both starts every prefix (as a
beginning-of-sequence marker) and ends a sequence (as GPT-2's ``<|endoftext|>``). The network sees
[eos, y_1, ..., y_{t-1}] and predicts [y_1, ..., y_t]. ``log_prob(y, lengths)`` scores the first
``lengths[b]`` tokens and, with ``include_eos=True`` (the default), the probability of then emitting
``eos``, so the model is a distribution over finite sequences; ``include_eos=False`` gives the probability
of the prefix alone (comparable with an HMM's log P(y_1..y_T)). ``sample`` draws until ``eos`` or
``max_length`` tokens and returns the tokens before ``eos`` with their lengths.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from latentvar._checks import (
    as_tensor,
    check_count,
    check_integer,
    check_lengths,
    check_positive,
    check_range,
    check_sample_shape,
)


class Autoregressive(nn.Module):
    """P(y) = Π_t softmax(network(prefix))[y_t].

    Args:
        network: an ``nn.Module`` mapping a prefix (b, t) of token ids to next-token logits (b, t, v),
            position t predicting token t + 1 (causal: position t may look only at positions <= t).
        eos: the end-of-sequence / start id (default v - 1, read from the network's output on first use).
    """

    def __init__(self, network: nn.Module, eos: int | None = None):
        super().__init__()
        if not isinstance(network, nn.Module):
            raise ValueError(
                f"network: expected an nn.Module giving logits (b, t, v), got {type(network).__name__}"
            )
        if eos is not None and (isinstance(eos, bool) or not isinstance(eos, int) or eos < 0):
            raise ValueError(f"eos: expected None or a non-negative integer token id, got {eos!r}")
        self.network = network
        self.eos = eos

    def _logits(self, prefix: Tensor) -> Tensor:
        logits = self.network(prefix)
        if logits.dim() != 3 or logits.shape[:2] != prefix.shape:
            raise ValueError(
                f"network: expected next-token logits of shape {(*prefix.shape, 'v')}, "
                f"got {tuple(logits.shape)}"
            )
        if self.eos is None:
            self.eos = logits.shape[-1] - 1
        if self.eos >= logits.shape[-1]:
            raise ValueError(f"eos: expected a token id in [0, {logits.shape[-1] - 1}], got {self.eos}")
        return logits

    def _vocab_size(self) -> int:
        return self._logits(torch.zeros(1, 1, dtype=torch.long)).shape[-1]

    def log_prob(self, y, lengths=None, include_eos: bool = True) -> Tensor:
        """log P(y) of each padded sequence (b, t) over its first ``lengths[b]`` tokens: (b,)."""
        y = check_integer("y", as_tensor("y", y))
        if y.dim() == 1:
            y = y.unsqueeze(0)
        if y.dim() != 2:
            raise ValueError(f"y: expected shape (B, T) token ids, got {tuple(y.shape)}")
        b, T = y.shape
        lengths = (
            torch.full((b,), T, dtype=torch.long)
            if lengths is None
            else check_lengths("lengths", lengths, b, T)
        )
        v = self._vocab_size()
        valid = torch.arange(T) < lengths.unsqueeze(-1)
        check_range("y", y[valid], 0, v)
        y = torch.where(valid, y, torch.full_like(y, self.eos))  # padding -> eos, so the target at L is eos
        start = torch.full((b, 1), self.eos, dtype=torch.long)
        logits = self._logits(torch.cat([start, y], 1))  # (b, t + 1, v)
        logp = torch.log_softmax(logits, -1)
        targets = torch.cat([y, start], 1)  # the token after position L-1 is eos
        token_lp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (b, t + 1)
        keep = torch.arange(T + 1) < (lengths + int(include_eos)).unsqueeze(-1)
        return torch.where(keep, token_lp, torch.zeros_like(token_lp)).sum(-1)

    @torch.no_grad()
    def sample(self, sample_shape: torch.Size = torch.Size(), max_length: int = 50, temperature: float = 1.0):
        """(y, lengths): y (*sample_shape, max_length) token ids (``eos`` past each length), lengths
        (*sample_shape,) -- the number of tokens drawn before ``eos`` (max_length if none came)."""
        max_length = check_count("max_length", max_length)
        check_positive("temperature", temperature)
        sample_shape = check_sample_shape("sample_shape", sample_shape, max(max_length, 1))
        n = math.prod(sample_shape)
        self._vocab_size()
        prefix = torch.full((n, 1), self.eos, dtype=torch.long)
        done = torch.zeros(n, dtype=torch.bool)
        lengths = torch.full((n,), max_length, dtype=torch.long)
        for t in range(max_length):
            logits = self._logits(prefix)[:, -1] / temperature
            nxt = torch.distributions.Categorical(logits=logits).sample()
            ended = (nxt == self.eos) & ~done
            lengths[ended] = t
            done |= ended
            nxt[done] = self.eos
            prefix = torch.cat([prefix, nxt[:, None]], 1)
            if bool(done.all()):
                break
        y = torch.full((n, max_length), self.eos, dtype=torch.long)
        y[:, : prefix.shape[1] - 1] = prefix[:, 1:]
        return y.reshape(*sample_shape, max_length), lengths.reshape(sample_shape)


class RecurrentLM(nn.Module):
    """A word/char language model: embedding -> LSTM (or GRU) -> tied-size linear -> logits (b, t, v)."""

    def __init__(
        self, vocab_size: int, dim: int = 128, hidden: int = 256, layers: int = 1, cell: str = "lstm"
    ):
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell: expected 'lstm' or 'gru', got {cell!r}")
        self.config = {"vocab_size": vocab_size, "dim": dim, "hidden": hidden, "layers": layers, "cell": cell}
        self.embed = nn.Embedding(vocab_size, dim)
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(dim, hidden, num_layers=layers, batch_first=True)
        self.out = nn.Linear(hidden, vocab_size)

    def forward(self, prefix: Tensor) -> Tensor:
        h, _ = self.rnn(self.embed(prefix))
        return self.out(h)
