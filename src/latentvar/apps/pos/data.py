"""The Brown corpus as the tagger sees it: the train/test split and vocabulary, sentences sorted by length,
and minibatches of about a fixed number of padded tokens.

Shapes: b sentences, t words.
"""

from __future__ import annotations

import torch
from torch import Tensor

from latentvar.data import brown


def load_brown(vocab_size: int, max_sentences: int | None):
    """Train/test sentences, vocabulary (from the training split) and base tag set."""
    train, test = brown.sentences("train"), brown.sentences("test")
    if max_sentences is not None:
        train = train[:max_sentences]
    vocab = brown.Vocabulary.build(train, max_size=vocab_size)
    tags = brown.tagset(brown.sentences("all"))
    return train, test, vocab, tags


def sort_by_length(enc: brown.Encoded) -> brown.Encoded:
    """Sentences sorted by length so that minibatches (cut to their longest sentence) carry little padding."""
    order = enc.lengths.argsort(descending=True)
    return brown.Encoded(enc.words[order], enc.tags[order], enc.coarse[order], enc.lengths[order])


def length_batches(lengths: Tensor, tokens: int) -> list[Tensor]:
    """Consecutive index ranges of (length-sorted) sentences holding about ``tokens`` padded tokens each."""
    batches, start = [], 0
    n = lengths.shape[0]
    while start < n:
        longest = max(int(lengths[start]), 1)
        size = max(1, tokens // longest)
        batches.append(torch.arange(start, min(start + size, n)))
        start += size
    return batches
