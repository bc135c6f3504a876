"""An autoregressive word LSTM on the Brown corpus, on the HMM's vocabulary and split. Used by `latentvar lm`.

The network's vocabulary is the HMM's (``<unk>`` = 0) plus one end-of-sentence id (the last); see
`latentvar.autoregressive` for the convention.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from latentvar.autoregressive import Autoregressive, RecurrentLM
from latentvar.data import brown
from latentvar.io import load_checkpoint
from latentvar.progress import progress
from latentvar.runs import Run, load_optimizer, module_tensors, save_optimizer, step_generator, tensors_under


def _encode(sents, vocab):
    enc = brown.encode(sents, vocab, [])
    order = enc.lengths.argsort(descending=True)
    return enc.words[order], enc.lengths[order]


def load(run: Path) -> tuple[Autoregressive, dict]:
    tensors, meta = load_checkpoint(run)
    net = RecurrentLM(**meta["network"])
    net.load_state_dict(tensors_under(tensors, "net"))
    return Autoregressive(net, eos=meta["network"]["vocab_size"] - 1), meta


def fit(
    out: Path,
    vocab_size: int,
    max_sentences,
    steps: int,
    batch_size: int,
    dim: int,
    hidden: int,
    lr: float,
    seed: int,
    threads: int,
    every: int = 100,
) -> dict:
    """Adam on -log P(y) (with end of sentence) per token over random minibatches; checkpoints (model and
    optimiser) every ``every`` steps, and a re-run resumes from the last one (`rerun_note`)."""
    torch.set_num_threads(threads)
    out = Path(out)
    train = brown.sentences("train")
    if max_sentences is not None:
        train = train[:max_sentences]
    vocab = brown.Vocabulary.build(train, max_size=vocab_size)
    words, lengths = _encode(train, vocab)
    config = {"vocab_size": len(vocab) + 1, "dim": dim, "hidden": hidden, "layers": 1, "cell": "lstm"}
    torch.manual_seed(seed)
    net = RecurrentLM(**config)
    model = Autoregressive(net, eos=len(vocab))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    meta = {
        "vocab": vocab.words,
        "network": config,
        "step": 0,
        "history": [],
        "seconds": 0.0,
        "seed": seed,
        "vocab_size": vocab_size,
        "max_sentences": max_sentences,
        "steps": steps,
        "lr": lr,
    }
    run = Run(out, resume=True)
    if (saved := run.load()) is not None:
        net.load_state_dict(tensors_under(saved.tensors, "net"))
        load_optimizer(opt, saved.tensors)
        meta.update({k: saved.meta[k] for k in ("step", "history", "seconds")})
    bar = run.progress(meta["step"], steps, "lm")
    running, t0 = [], time.time()
    for step in bar:
        idx = torch.randint(words.shape[0], (batch_size,), generator=step_generator(seed, step))
        lb = lengths[idx]
        lp = model.log_prob(words[idx, : int(lb.max())], lb)
        loss = -lp.sum() / (lb.sum() + batch_size)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        running.append(float(loss.detach()))
        if (step + 1) % every == 0 or step + 1 == steps:
            meta["history"].append(sum(running) / len(running))
            meta["step"] = step + 1
            meta["seconds"] += time.time() - t0
            t0, running = time.time(), []
            bar.set_postfix(nll=f"{meta['history'][-1]:.3f}")
            run.save(module_tensors(net, "net") | save_optimizer(opt), meta)
    return meta


batch_generator = step_generator  # the name before the run harness


@torch.no_grad()
def evaluate(run: Path, split: str = "test", max_sentences=None, batch_size: int = 64) -> dict:
    model, meta = load(run)
    vocab = brown.Vocabulary(meta["vocab"])
    words, lengths = _encode(brown.sentences(split)[:max_sentences], vocab)
    total, total_eos = 0.0, 0.0
    for i in progress(range(0, words.shape[0], batch_size), desc="lm eval"):
        lb = lengths[i : i + batch_size]
        y = words[i : i + batch_size, : int(lb.max())]
        total += float(model.log_prob(y, lb, include_eos=False).sum())
        total_eos += float(model.log_prob(y, lb).sum())
    n = int(lengths.sum())
    nll = -total / n
    return {
        "split": split,
        "tokens": n,
        "nll_per_token": nll,
        "perplexity": math.exp(nll),
        "nll_per_token_with_eos": -total_eos / (n + len(lengths)),
        "vocab_size": len(vocab),
        "steps": meta["step"],
        "train_seconds": meta["seconds"],
    }


def sample_sentences(run: Path, n: int, max_length: int = 40, seed: int = 0) -> list[str]:
    model, meta = load(run)
    torch.manual_seed(seed)
    y, lengths = model.sample((n,), max_length)
    return [" ".join(meta["vocab"][int(t)] for t in y[i, : int(lengths[i])]) for i in range(n)]
