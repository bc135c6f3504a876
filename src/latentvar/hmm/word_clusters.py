"""Type-level word clusters from distributional context, an HMM initialiser: start an HMM over words in a
syntactic basin.

Every word type gets a vector from the words seen next to it (Schütze 1995; Lamar et al. 2010, "SVD and
clustering for unsupervised POS tagging"): counts of its left and of its right neighbours among the most
frequent words (a sentence boundary counts as a neighbour), square-rooted, each row scaled to unit length,
reduced by a truncated SVD per side and concatenated. Weighted k-means (weights = word frequency) on the
frequent words gives one cluster per word type; rarer words go to the nearest centroid.

`warm_start` then sets an HMM's initial and transition probabilities from the cluster bigram counts and fits
its emission to the clusters, so that marginal-likelihood training (EM or gradient) refines a tagging whose
states are already parts of speech instead of starting from noise.

Shapes: b sentences, t words, k states/clusters, v vocabulary.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.distributions as D
from scipy.sparse.linalg import svds
from torch import Tensor, nn

from latentvar.hmm import HMM
from latentvar.progress import progress


def _valid(words: Tensor, lengths: Tensor) -> Tensor:
    return torch.arange(words.shape[1]) < lengths[:, None]


def _check_corpus(words: Tensor, lengths: Tensor, vocab_size: int) -> None:
    if words.dim() != 2 or lengths.dim() != 1 or lengths.shape[0] != words.shape[0]:
        raise ValueError(
            f"words/lengths: expected (b, t) ids and (b,) lengths, got {tuple(words.shape)} and "
            f"{tuple(lengths.shape)}"
        )
    if lengths.numel() and (int(lengths.min()) < 0 or int(lengths.max()) > words.shape[1]):
        raise ValueError(f"lengths: expected values in [0, {words.shape[1]}], got {lengths.tolist()[:8]}...")
    ids = words[_valid(words, lengths)]
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise ValueError(
            f"words: expected ids in [0, {vocab_size}) (vocab_size), got [{int(ids.min())}, {int(ids.max())}]"
        )


def word_counts(words: Tensor, lengths: Tensor, vocab_size: int) -> np.ndarray:
    """(v,) token count of every word id in the padded (b, t) ``words``."""
    _check_corpus(words, lengths, vocab_size)
    return np.bincount(words[_valid(words, lengths)].numpy(), minlength=vocab_size).astype(np.float64)


def context_vectors(
    words: Tensor, lengths: Tensor, vocab_size: int, context_words: int = 3000, rank: int = 50
) -> np.ndarray:
    """(v, 2·rank) distributional vectors: left and right neighbour counts over the ``context_words`` most
    frequent word ids (id 0, ``<unk>``, is never a context) plus the sentence boundary, square-rooted, rows
    L2-normalised, truncated SVD per side (scaled by the singular values), rows L2-normalised again."""
    counts = word_counts(words, lengths, vocab_size)
    counts[0] = 0
    ranked = np.argsort(-counts, kind="stable")[:context_words]
    ranked = ranked[counts[ranked] > 0]
    column = np.full(vocab_size, -1)
    column[ranked] = np.arange(len(ranked))
    boundary = len(ranked)
    rank = min(rank, boundary)  # svds needs rank < number of columns (boundary + 1)

    valid = _valid(words, lengths).numpy()
    ids = words.numpy()
    # the neighbour on each side of every token; the boundary outside the sentence
    padded = np.pad(np.where(valid, column[ids], -1), ((0, 0), (1, 1)), constant_values=-1)
    inside = np.pad(valid, ((0, 0), (1, 1)))
    halves = []
    for neighbour, neighbour_inside in ((padded[:, :-2], inside[:, :-2]), (padded[:, 2:], inside[:, 2:])):
        ctx = np.where(neighbour_inside, neighbour, boundary)
        keep = valid & (ctx >= 0)
        m = sp.csr_matrix(
            (np.ones(int(keep.sum())), (ids[keep], ctx[keep])), shape=(vocab_size, boundary + 1)
        )
        m.sum_duplicates()
        m.data = np.sqrt(m.data)
        norms = np.sqrt(np.asarray(m.multiply(m).sum(1)).ravel())
        m = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ m
        u, s, _ = svds(m, k=rank, random_state=0)
        order = np.argsort(-s)
        x = u[:, order] * s[order]
        x[norms == 0] = 0  # a word never seen on this side has no direction (not SVD round-off, scaled up)
        halves.append(x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))
    return np.concatenate(halves, 1)


def context_clusters(
    words: Tensor,
    lengths: Tensor,
    vocab_size: int,
    k: int,
    context_words: int = 3000,
    rank: int = 50,
    cluster_words: int = 10000,
    seed: int = 0,
) -> Tensor:
    """(v,) a cluster in [0, k) for every word id: frequency-weighted k-means on the `context_vectors` of the
    ``cluster_words`` most frequent words, every other word assigned to its nearest centroid."""
    from sklearn.cluster import KMeans

    if k < 1:
        raise ValueError(f"k: expected a positive number of clusters, got {k}")
    counts = word_counts(words, lengths, vocab_size)
    counts[0] = 0
    top = np.argsort(-counts, kind="stable")[:cluster_words]
    top = top[counts[top] > 0]
    if len(top) < k:
        raise ValueError(f"k: {k} clusters need at least {k} distinct words, the data has {len(top)}")
    x = context_vectors(words, lengths, vocab_size, context_words, rank)
    km = KMeans(k, n_init=4, random_state=seed).fit(x[top], sample_weight=counts[top])
    return torch.from_numpy(km.predict(x).astype(np.int64))


def state_counts(z: Tensor, words: Tensor, lengths: Tensor, k: int, v: int) -> tuple[Tensor, Tensor, Tensor]:
    """Counts of a hard state sequence ``z`` (b, t) emitting ``words`` (b, t), over each sentence's first
    ``lengths[b]`` steps: first states (k,), state bigrams (k, k) and (state, word) pairs (k, v) -- the
    statistics of an HMM estimated from labelled sequences (`warm_start`, the supervised tagger)."""
    _check_corpus(words, lengths, v)
    valid = _valid(words, lengths)
    if z.shape != words.shape or (valid.any() and (int(z[valid].min()) < 0 or int(z[valid].max()) >= k)):
        raise ValueError(f"z: expected states in [0, {k}) shaped like words {tuple(words.shape)}")
    has_first = lengths > 0
    init = torch.zeros(k).index_add_(0, z[has_first, 0], torch.ones(int(has_first.sum())))
    pair = valid[:, 1:]
    trans = torch.zeros(k, k).index_put_(
        (z[:, :-1][pair], z[:, 1:][pair]), torch.ones(int(pair.sum())), accumulate=True
    )
    emit = torch.zeros(k, v).index_put_(
        (z[valid], words[valid]), torch.ones(int(valid.sum())), accumulate=True
    )
    return init, trans, emit


def warm_start(
    model: HMM,
    words: Tensor,
    lengths: Tensor,
    labels: Tensor,
    steps: int = 300,
    lr: float = 0.02,
    show: bool = True,
) -> HMM:
    """An HMM whose states are the clusters: initial and transition probabilities from the cluster bigram
    counts (add-one), and emissions fitted to the clusters -- a Categorical emission gets the smoothed
    within-cluster word frequencies; a neural emission (any module with ``log_emission()`` (k, v)) is trained
    by ``steps`` of Adam to maximise Σ_w count(w) log P(w | labels[w]). The neural module is updated in place.
    """
    k = model.num_states
    v = labels.shape[0]
    if int(labels.min()) < 0 or int(labels.max()) >= k:
        raise ValueError(
            f"labels: expected clusters in [0, {k}), got [{int(labels.min())}, {int(labels.max())}]"
        )
    _check_corpus(words, lengths, v)
    # padding may hold any value; only the valid steps are counted
    init, trans, emit = state_counts(labels[words.clamp(0, v - 1)], words, lengths, k, v)
    init_logits = (init + 1).log()
    trans_logits = (trans + 1).log()
    emission = model.emission
    if isinstance(emission, nn.Module):
        if emission.log_emission().shape != (k, v):
            raise ValueError(
                f"labels: expected one cluster per word of the emission's vocabulary "
                f"({emission.log_emission().shape[1]}), got {v}"
            )
        opt = torch.optim.Adam(emission.parameters(), lr=lr)
        counts = emit.sum(0)  # every word sits in its own cluster's row
        target = torch.arange(v)
        for _ in progress(range(steps), desc="warm start", disable=not show):
            loss = -(counts * emission.log_emission()[labels, target]).sum() / counts.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        table = emit + 0.01
        emission = D.Categorical(probs=table / table.sum(-1, keepdim=True))
    return HMM(
        init_logits - init_logits.logsumexp(0),
        trans_logits - trans_logits.logsumexp(1, keepdim=True),
        emission,
    )
