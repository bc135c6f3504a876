"""Evaluating a Brown tagger (`latentvar hmm eval`, `hmm supervised`): Viterbi states against the gold tags
by many-to-one accuracy and V-measure (base, coarse and PTB tag sets), perplexity; and the supervised
sanity check, a bigram HMM tagger estimated from counts.

Shapes: b sentences, t words, k states, v vocabulary.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.distributions as D
from torch import nn

from latentvar.apps.pos.data import length_batches, sort_by_length
from latentvar.apps.pos.train import build_model
from latentvar.data import brown
from latentvar.hmm import HMM
from latentvar.hmm.word_clusters import state_counts
from latentvar.io import atomic_write_json, load_checkpoint
from latentvar.progress import progress


def many_to_one(pred: np.ndarray, gold: np.ndarray) -> float:
    """Accuracy after mapping every state to the gold tag it co-occurs with most (Johnson 2007)."""
    table = Counter(zip(pred.tolist(), gold.tolist(), strict=True))
    best: dict[int, tuple[int, int]] = {}
    for (p, g), c in table.items():
        if c > best.get(p, (-1, 0))[1]:
            best[p] = (g, c)
    return sum(c for _, c in best.values()) / max(len(pred), 1)


@torch.no_grad()
def decode(model: HMM, enc: brown.Encoded, batch_tokens: int = 20000, show: bool = True):
    """Viterbi states (flattened over tokens) and total log P(y)."""
    enc = sort_by_length(enc)
    states, gold, coarse, loglik = [], [], [], 0.0
    if isinstance(model.emission, nn.Module):
        table = model.emission.log_emission()
        model = HMM(model.init_logits.detach(), model.trans_logits.detach(), D.Categorical(logits=table))
    for idx in progress(length_batches(enc.lengths, batch_tokens), desc="viterbi", disable=not show):
        lengths = enc.lengths[idx]
        y = enc.words[idx, : int(lengths.max())]
        post = model.posterior(y, lengths)
        valid = torch.arange(y.shape[1]) < lengths[:, None]
        states.append(post.mode[valid])
        gold.append(enc.tags[idx, : y.shape[1]][valid])
        coarse.append(enc.coarse[idx, : y.shape[1]][valid])
        loglik += float(post.log_partition.sum())
    return torch.cat(states).numpy(), torch.cat(gold).numpy(), torch.cat(coarse).numpy(), loglik


def evaluate(run: Path, split: str = "test", max_sentences: int | None = None) -> dict:
    from sklearn.metrics import v_measure_score

    tensors, meta = load_checkpoint(run)
    model = build_model(tensors, meta)
    vocab = brown.Vocabulary(meta["vocab"])
    sents = brown.sentences(split)[:max_sentences]
    tags = brown.tagset(brown.sentences("all"))
    enc = brown.encode(sents, vocab, tags)
    pred, gold, coarse, loglik = decode(model, enc)
    ptb_names = sorted({brown.ptb_tag(t) for t in tags} | {"X"})
    ptb = np.array([ptb_names.index(brown.ptb_tag(t)) for t in tags] + [ptb_names.index("X")])[gold]
    n = len(pred)
    nll = -loglik / n
    return {
        "split": split,
        "tokens": n,
        "unk_rate": float(
            (enc.words[torch.arange(enc.words.shape[1]) < enc.lengths[:, None]] == 0).float().mean()
        ),
        "many_to_one": many_to_one(pred, gold),
        "v_measure": float(v_measure_score(gold, pred)),
        "many_to_one_coarse": many_to_one(pred, coarse),
        "v_measure_coarse": float(v_measure_score(coarse, pred)),
        "many_to_one_ptb": many_to_one(pred, ptb),
        "v_measure_ptb": float(v_measure_score(ptb, pred)),
        "nll_per_token": nll,
        "perplexity": math.exp(nll),
        "vocab_size": len(vocab),
        "states": meta["states"],
        "emission": meta["emission"],
        "iterations": meta["iteration"],
        "train_seconds": meta["seconds"],
    }


# --------------------------------------------------------------------------------------------------
# The supervised sanity check: an HMM from counts


def supervised(vocab_size: int | None, out: Path) -> dict:
    """A bigram HMM tagger with base Brown tags as states, estimated from training counts (add-1 transitions,
    add-0.01 emissions -- unknown words score by the <unk> row, trained on hapaxes); Viterbi accuracy on
    the test split."""
    train, test = brown.sentences("train"), brown.sentences("test")
    tags = brown.tagset(brown.sentences("all"))
    counts = Counter(w for s in train for w, _ in s)
    vocab = brown.Vocabulary.build(
        [[(w, "") for w, _ in s if counts[w] > 1] for s in train], max_size=vocab_size
    )
    tr, te = brown.encode(train, vocab, tags), brown.encode(test, vocab, tags)
    k, v = len(tags) + 1, len(vocab)
    init, trans, emit = state_counts(tr.tags, tr.words, tr.lengths, k, v)
    init, trans, emit = init + 1, trans + 1, emit + 0.01
    model = HMM(init.log(), trans.log(), D.Categorical(probs=emit / emit.sum(-1, keepdim=True)))
    pred = []
    te_sorted = sort_by_length(te)
    golds = []
    for idx in progress(length_batches(te_sorted.lengths, 20000), desc="supervised viterbi"):
        lengths = te_sorted.lengths[idx]
        y = te_sorted.words[idx, : int(lengths.max())]
        mask = torch.arange(y.shape[1]) < lengths[:, None]
        pred.append(model.posterior(y, lengths).mode[mask])
        golds.append(te_sorted.tags[idx, : y.shape[1]][mask])
    pred_t, gold_t = torch.cat(pred), torch.cat(golds)
    coarse_of = torch.tensor([brown.COARSE_TAGS.index(brown.coarse_tag(t)) for t in tags] + [11])
    metrics = {
        "accuracy": float((pred_t == gold_t).float().mean()),
        "accuracy_coarse": float((coarse_of[pred_t] == coarse_of[gold_t]).float().mean()),
        "tags": len(tags),
        "test_tokens": int(gold_t.numel()),
        "vocab": v,
    }
    atomic_write_json(Path(out) / "supervised.json", metrics)
    return metrics
