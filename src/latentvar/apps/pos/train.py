"""Training an HMM tagger on the Brown training split (`latentvar hmm fit`): the model a run's checkpoint
describes (categorical or neural emissions), Baum-Welch iterations for a categorical emission, Adam epochs
on the exact -log P(y) for a neural one, a checkpoint after every iteration.

Shapes: b sentences, t words, k states, v vocabulary.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.distributions as D
from torch import Tensor, nn

from latentvar.apps.pos.data import length_batches, load_brown, sort_by_length
from latentvar.data import brown
from latentvar.hmm import HMM
from latentvar.hmm.emissions import CharEmission, FeatureEmission
from latentvar.hmm.word_clusters import context_clusters, warm_start
from latentvar.inference import Chain
from latentvar.runs import Run, load_optimizer, module_tensors, save_optimizer, tensors_under
from latentvar.stats import em_family


def build_model(tensors: dict, meta: dict) -> HMM:
    if meta["emission"] == "categorical":
        return HMM(
            tensors["init_logits"], tensors["trans_logits"], D.Categorical(logits=tensors["emission_logits"])
        )
    emission = neural_emission(meta)
    emission.load_state_dict(tensors_under(tensors, "emission"))
    return HMM(tensors["init_logits"], tensors["trans_logits"], emission)


def neural_emission(meta: dict) -> nn.Module:
    """The neural emission a run's metadata describes: char-CNN (``features`` "chars", the default of older
    runs), orthographic features ("ngrams") or spelling features without long words' identity ("affixes")."""
    features = meta.get("features", "chars")
    if features in ("ngrams", "affixes"):
        return FeatureEmission(
            meta["vocab"], meta["states"], dim=meta["char"]["dim"], identity=features == "ngrams"
        )
    return CharEmission(
        meta["vocab"], meta["states"], **{k: meta["char"][k] for k in ("dim", "char_dim", "channels")}
    )


def _tensors(model: HMM) -> dict:
    out = {"init_logits": model.init_logits.detach(), "trans_logits": model.trans_logits.detach()}
    if isinstance(model.emission, nn.Module):
        out.update(module_tensors(model.emission, "emission"))
    else:
        out["emission_logits"] = model.emission.logits.detach()
    return out


# --------------------------------------------------------------------------------------------------
# Training


def fit(
    out: Path,
    states: int,
    emission: str,
    vocab_size: int,
    max_sentences: int | None,
    iters: int,
    batch_tokens: int,
    lr: float,
    seed: int,
    threads: int,
    features: str = "chars",
    init: str = "random",
) -> dict:
    """Fit an HMM on the Brown training split; checkpoint after every iteration (resumes after a kill).
    ``features``: the neural emission's word vectors, "chars" (char-CNN), "ngrams" or "affixes"
    (`FeatureEmission` with or without long words' identity).
    ``init``: "random", or "clusters" -- start from the type-level context clusters of the training words
    (`word_clusters.context_clusters` and `warm_start`)."""
    if init not in ("random", "clusters"):
        raise ValueError(f"init: expected 'random' or 'clusters', got {init!r}")
    torch.set_num_threads(threads)
    out = Path(out)
    train, _, vocab, _ = load_brown(vocab_size, max_sentences)
    enc = sort_by_length(brown.encode(train, vocab, brown.tagset(train)))
    meta = {
        "emission": emission,
        "states": states,
        "vocab": vocab.words,
        "vocab_size": vocab_size,
        "max_sentences": max_sentences,
        "seed": seed,
        "lr": lr,
        "batch_tokens": batch_tokens,
        "init": init,
        "iteration": 0,
        "history": [],
        "seconds": 0.0,
    }
    if emission == "neural":
        meta["char"] = {"dim": 64, "char_dim": 16, "channels": 64}
        meta["features"] = features
    run = Run(out, resume=True, step_key="iteration")
    if (saved := run.load()) is not None:
        # the settings that define the model; runs from before an option existed used its old default
        options = {"emission": "--emission", "states": "--states", "vocab_size": "--vocab", "init": "--init"}
        if emission == "neural":
            options["features"] = "--features"
        wanted = {key: (flag, meta[key]) for key, flag in options.items()}
        run.check_settings(saved.meta, wanted, defaults={"init": "random", "features": "chars"})
        meta.update({k: saved.meta[k] for k in ("iteration", "history", "seconds")})
        model = build_model(saved.tensors, saved.meta)
    else:
        model = init_model(states, len(vocab), emission, vocab.words, meta, seed)
        if init == "clusters":
            labels = context_clusters(enc.words, enc.lengths, len(vocab), states, seed=seed)
            model = warm_start(model, enc.words, enc.lengths, labels)
    batches = length_batches(enc.lengths, batch_tokens)
    n_tokens = int(enc.lengths.sum())
    step = em_iteration if emission == "categorical" else None
    opt = None
    if emission == "neural":
        params = _neural_params(model)
        opt = torch.optim.Adam(params, lr=lr)
        if saved is not None:
            load_optimizer(opt, saved.tensors)  # runs from before Adam's state was saved restart its moments
    bar = run.progress(meta["iteration"], iters, f"hmm {emission}")
    for it in bar:
        t0 = time.time()
        if step is not None:
            model, loglik = step(model, enc, batches)
            # carry on from exactly what the checkpoint holds: the model a resume builds from these
            # tensors. (Rebuilding renormalises the logits, which is not idempotent to the last bit, so
            # saving the rebuilt model's tensors instead put one more renormalisation into every resume.)
            tensors = _tensors(model)
            model = build_model(tensors, meta)
        else:
            loglik = gradient_epoch(model, enc, batches, opt, seed + it)
            tensors = _tensors(model)
        meta["history"].append(loglik / n_tokens)
        meta["iteration"] = it + 1
        meta["seconds"] += time.time() - t0
        bar.set_postfix(ll=f"{loglik / n_tokens:.4f}")
        run.save(tensors | (save_optimizer(opt) if opt is not None else {}), meta)
    return meta


def init_model(states: int, v: int, emission: str, words: list[str], meta: dict, seed: int) -> HMM:
    g = torch.Generator().manual_seed(seed)
    init = torch.randn(states, generator=g) * 0.1
    trans = torch.randn(states, states, generator=g) * 0.1
    if emission == "categorical":
        # near-uniform emissions with noise (Johnson 2007 initialises EM at random)
        probs = torch.rand(states, v, generator=g) * 0.2 + 1.0
        return HMM(init, trans, D.Categorical(probs=probs / probs.sum(-1, keepdim=True)))
    torch.manual_seed(seed)
    return HMM(init, trans, neural_emission(meta))


def em_iteration(model: HMM, enc: brown.Encoded, batches) -> tuple[HMM, float]:
    """One Baum-Welch iteration over all sentences, streamed in minibatches; returns the new model and
    log P(data) under the old one."""
    em_family(model.emission, "emission")  # refuse an emission EM cannot update
    result = model.fit(
        enc.words, enc.lengths, method="em", max_iter=1, tol=-math.inf, batch_size=512, pseudocount=1e-6
    )
    return result.model, result.history[-1] * int(enc.lengths.sum())


def _neural_params(model: HMM) -> list[Tensor]:
    model.init_logits = model.init_logits.detach().clone().requires_grad_(True)
    model.trans_logits = model.trans_logits.detach().clone().requires_grad_(True)
    return [model.init_logits, model.trans_logits, *model.emission.parameters()]


def gradient_epoch(model: HMM, enc: brown.Encoded, batches, opt, seed: int) -> float:
    """One pass of Adam on the exact -log P(y) per token (the marginal over all state sequences)."""
    g = torch.Generator().manual_seed(seed)
    loglik = 0.0
    for i in torch.randperm(len(batches), generator=g).tolist():
        idx = batches[i]
        lengths = enc.lengths[idx]
        y = enc.words[idx, : int(lengths.max())]
        total = Chain(model.log_init, model.log_trans, model.emission_log_prob(y), lengths).log_partition()
        loss = -total.sum() / lengths.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        loglik += float(total.detach().sum())
    return loglik
