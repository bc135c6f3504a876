"""Stepwise (online) EM against batch EM on the Brown POS-induction task (issue 21; Liang & Klein 2009 found
stepwise EM helps POS induction): the same random start, the same number of passes over the training
sentences, then Viterbi on the test split, many-to-one accuracy against the base tags and their PTB view,
and the training log-likelihood per token. One thread; wall-clock seconds per run.

    PYTHONPATH=src python bench/hmm_online_brown.py [--states 45] [--passes 5] [--max-sentences 20000]
        [--minibatch 500] [--decay 0.7] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
import torch.distributions as D

from latentvar import HMM
from latentvar.apps.pos.data import load_brown, sort_by_length
from latentvar.apps.pos.evaluate import decode, many_to_one
from latentvar.data import brown


def start_model(k: int, v: int, seed: int) -> HMM:
    g = torch.Generator().manual_seed(seed)
    return HMM(
        torch.zeros(k, dtype=torch.float64),
        torch.randn(k, k, generator=g, dtype=torch.float64),
        D.Categorical(logits=torch.randn(k, v, generator=g, dtype=torch.float64)),
    )


def scores(model: HMM, enc, tags: list[str]) -> tuple[float, float]:
    """Many-to-one accuracy on the base tags and on their PTB view."""
    states, gold, _, _ = decode(model, enc, show=False)
    names = [*tags, "X"]  # id len(tags): base tags outside the tag set
    ptb_names = sorted({brown.ptb_tag(t) if t != "X" else "X" for t in names})
    to_ptb = np.array([ptb_names.index(brown.ptb_tag(t) if t != "X" else "X") for t in names])
    return many_to_one(states, gold), many_to_one(states, to_ptb[gold])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=45)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--max-sentences", type=int, default=20000)
    parser.add_argument("--vocab", type=int, default=10000)
    parser.add_argument("--minibatch", type=int, default=500, help="sentences per stepwise M-step")
    parser.add_argument("--decay", type=float, default=0.7, help="stepwise step size (k + 2)^-decay")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, test, vocab, tags = load_brown(args.vocab, args.max_sentences)
    enc_train = sort_by_length(brown.encode(train, vocab, tags))
    enc_test = brown.encode(test, vocab, tags)
    tokens = int(enc_train.lengths.sum())
    y, lengths = enc_train.words, enc_train.lengths
    print(f"{platform.processor() or platform.machine()}, load average {os.getloadavg()}")
    print(f"Brown train: {len(train)} sentences, {tokens} tokens; K = {args.states}, {args.passes} passes")
    print("| method | seconds | train log-lik / token | test many-to-one (base) | (PTB view) |")
    print("|---|---|---|---|---|")
    runs = {
        "batch EM": dict(method="em", batch_size=1024),
        f"stepwise EM (minibatch {args.minibatch}, α = {args.decay})": dict(
            method="stepwise", batch_size=args.minibatch, step_decay=args.decay
        ),
    }
    warm = start_model(args.states, len(vocab.words), args.seed)  # numba loads its kernels once, untimed
    warm.fit(y[:8], lengths[:8], max_iter=1)
    warm.fit(y[:8], lengths[:8], max_iter=1, method="stepwise", batch_size=4)
    for name, kw in runs.items():
        torch.manual_seed(args.seed)  # the stepwise minibatch order
        model = start_model(args.states, len(vocab.words), args.seed)
        t0 = time.perf_counter()
        fit = model.fit(y, lengths, max_iter=args.passes, tol=-1.0, **kw)
        seconds = time.perf_counter() - t0
        with torch.no_grad():
            ll = float(fit.model.log_prob(y, lengths).sum()) / tokens
        base, ptb = scores(fit.model, enc_test, tags)
        print(f"| {name} | {seconds:.1f} | {ll:.4f} | {base:.4f} | {ptb:.4f} |", flush=True)


if __name__ == "__main__":
    main()
