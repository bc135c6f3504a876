"""HMMs on the Brown corpus: unsupervised POS induction (EM and neural emissions), a supervised tagger,
evaluation (many-to-one, V-measure, perplexity) and the HTML report. Used by `latentvar hmm ...`.

Shapes: b sentences, t words, k states, v vocabulary, c characters per word.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.distributions as D
from torch import Tensor, nn

from latentvar.data import brown
from latentvar.demos.word_clusters import context_clusters, state_counts, warm_start
from latentvar.hmm import HMM, _em_family, _log_partition
from latentvar.io import atomic_write_json, load_checkpoint, save_checkpoint
from latentvar.progress import progress

# --------------------------------------------------------------------------------------------------
# Neural emissions: word representations from characters (Tran et al. 2016, "Unsupervised neural HMMs")


class SpellingEmission(nn.Module):
    """log P(y = w | z = k) = log_softmax_w(s_k · f(w) + b_w): state embeddings s (k, d) score a vector f(w)
    that every vocabulary word gets from its spelling (Tran et al. 2016, §3.1); subclasses define f by
    ``word_vectors()`` and set ``states`` (k, d) and ``word_bias`` (v,).

    ``forward(y)`` maps word ids (b, t) to log-likelihoods (b, t, k); ``log_emission()`` is the (k, v) table.
    """

    def word_vectors(self) -> Tensor:
        raise NotImplementedError

    def log_emission(self) -> Tensor:
        """(k, v), each row normalised over the vocabulary."""
        return torch.log_softmax(self.states @ self.word_vectors().T + self.word_bias, -1)

    def forward(self, y: Tensor) -> Tensor:
        return self.log_emission().T[y]

    @torch.no_grad()
    def sample_given_states(self, z: Tensor) -> Tensor:
        return D.Categorical(logits=self.log_emission()[z]).sample()


class CharEmission(SpellingEmission):
    """`SpellingEmission` with f a character CNN (Kim et al. 2016) over each vocabulary word."""

    def __init__(
        self, words: list[str], num_states: int, dim: int = 64, char_dim: int = 16, channels: int = 64
    ):
        super().__init__()
        chars = sorted({ch for w in words for ch in w})
        self.char_index = {ch: i + 3 for i, ch in enumerate(chars)}  # 0 pad, 1 begin, 2 end
        max_chars = min(max(len(w) for w in words), 14) + 2
        table = torch.zeros(len(words), max_chars, dtype=torch.long)
        for i, w in enumerate(words):
            ids = [1, *[self.char_index[ch] for ch in w[: max_chars - 2]], 2]
            table[i, : len(ids)] = torch.tensor(ids)
        self.register_buffer("chars", table)  # (v, c)
        self.config = {"num_states": num_states, "dim": dim, "char_dim": char_dim, "channels": channels}
        self.char_embed = nn.Embedding(len(chars) + 3, char_dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(char_dim, channels, w, padding=w // 2) for w in (3,))
        self.proj = nn.Sequential(nn.Linear(channels, dim), nn.Tanh(), nn.Linear(dim, dim))
        self.states = nn.Parameter(torch.randn(num_states, dim) * 0.1)
        self.word_bias = nn.Parameter(torch.zeros(len(words)))

    def word_vectors(self) -> Tensor:
        """f(chars(w)) for every vocabulary word: (v, d)."""
        x = self.char_embed(self.chars).transpose(1, 2)  # (v, char_dim, c)
        pooled = [torch.relu(conv(x)).amax(-1) for conv in self.convs]
        return self.proj(torch.cat(pooled, -1))


SHORT_WORD = 3  # `word_features(identity=False)` keeps the identity of words this short


def word_features(word: str, identity: bool = True) -> list[str]:
    """Orthographic features of a word (Berg-Kirkpatrick et al. 2010, "Painless unsupervised learning with
    features", §5.1, extended): its identity, lower-cased form, suffixes of 1-3 letters, a 2-letter prefix,
    and shape (capitalised, all capitals, has a digit, has a hyphen, no letter or digit).

    ``identity=False`` drops the identity and lower-cased form of words longer than ``SHORT_WORD`` letters, so
    a long word's emission can only follow its spelling (as with Tran et al.'s character CNN) while short,
    mostly function, words keep their own feature."""
    if word == brown.UNK:
        return ["unk"]
    low = word.lower()
    out = [f"w={word}", f"l={low}"] if identity or len(low) <= SHORT_WORD else []
    out.append(f"p2={low[:2]}")
    out += [f"s{n}={low[-n:]}" for n in (1, 2, 3) if len(low) > n]
    if word[0].isupper():
        out.append("cap")
    if len(word) > 1 and word.isupper():
        out.append("allcaps")
    if any(ch.isdigit() for ch in word):
        out.append("digit")
    if "-" in word:
        out.append("hyphen")
    if not any(ch.isalnum() for ch in word):
        out.append("punct")
    return out


class FeatureEmission(SpellingEmission):
    """`SpellingEmission` with f(w) = MLP(Σ_{φ ∈ features(w)} e_φ), word vectors built from orthographic
    features (`word_features`) instead of a character CNN. Much cheaper per word, so every training word can
    be in the vocabulary; rare words share their suffix and shape features with frequent ones.
    ``identity=False``: spelling features only for words longer than ``SHORT_WORD`` (`word_features`)."""

    def __init__(self, words: list[str], num_states: int, dim: int = 64, identity: bool = True):
        super().__init__()
        feats = [word_features(w, identity) for w in words]
        names = sorted({f for fs in feats for f in fs})
        self.feature_index = {f: i for i, f in enumerate(names)}
        flat = [self.feature_index[f] for fs in feats for f in fs]
        self.register_buffer("feature_ids", torch.tensor(flat, dtype=torch.long))
        self.register_buffer("offsets", torch.tensor([0, *np.cumsum([len(fs) for fs in feats])[:-1]]))
        self.config = {"num_states": num_states, "dim": dim, "identity": identity}
        self.embed = nn.EmbeddingBag(len(names), dim, mode="sum")
        nn.init.normal_(self.embed.weight, std=0.1)
        self.proj = nn.Sequential(nn.Tanh(), nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, dim))
        self.states = nn.Parameter(torch.randn(num_states, dim) * 0.1)
        self.word_bias = nn.Parameter(torch.zeros(len(words)))

    def word_vectors(self) -> Tensor:
        """f(w) for every vocabulary word: (v, d)."""
        return self.proj(self.embed(self.feature_ids, self.offsets))


# --------------------------------------------------------------------------------------------------
# Data


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


def _length_batches(lengths: Tensor, tokens: int) -> list[Tensor]:
    """Consecutive index ranges of (length-sorted) sentences holding about ``tokens`` padded tokens each."""
    batches, start = [], 0
    n = lengths.shape[0]
    while start < n:
        longest = max(int(lengths[start]), 1)
        size = max(1, tokens // longest)
        batches.append(torch.arange(start, min(start + size, n)))
        start += size
    return batches


# --------------------------------------------------------------------------------------------------
# Models from checkpoints


def build_model(tensors: dict, meta: dict) -> HMM:
    if meta["emission"] == "categorical":
        return HMM(
            tensors["init_logits"], tensors["trans_logits"], D.Categorical(logits=tensors["emission_logits"])
        )
    emission = _neural_emission(meta)
    emission.load_state_dict(
        {k[len("emission.") :]: v for k, v in tensors.items() if k.startswith("emission.")}
    )
    return HMM(tensors["init_logits"], tensors["trans_logits"], emission)


def _neural_emission(meta: dict) -> nn.Module:
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
        out.update({f"emission.{k}": v for k, v in model.emission.state_dict().items()})
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
    if (out / "checkpoint.json").exists():
        tensors, saved = load_checkpoint(out)
        # the settings that define the model; runs from before an option existed used its old default
        options = {"emission": "--emission", "states": "--states", "vocab_size": "--vocab", "init": "--init"}
        if emission == "neural":
            options["features"] = "--features"
        defaults = {"init": "random", "features": "chars"}
        for key, flag in options.items():
            was = saved.get(key, defaults.get(key))
            if was != meta[key]:
                raise ValueError(
                    f"{flag}: {out} was fitted with {was!r}, got {meta[key]!r}; resume with the same settings "
                    "or choose a new --out"
                )
        meta.update({k: saved[k] for k in ("iteration", "history", "seconds")})
        model = build_model(tensors, saved)
    else:
        model = init_model(states, len(vocab), emission, vocab.words, meta, seed)
        if init == "clusters":
            labels = context_clusters(enc.words, enc.lengths, len(vocab), states, seed=seed)
            model = warm_start(model, enc.words, enc.lengths, labels)
    batches = _length_batches(enc.lengths, batch_tokens)
    n_tokens = int(enc.lengths.sum())
    step = em_iteration if emission == "categorical" else None
    opt = None
    if emission == "neural":
        params = _neural_params(model)
        opt = torch.optim.Adam(params, lr=lr)
    bar = progress(
        range(meta["iteration"], iters), desc=f"hmm {emission}", total=iters, initial=meta["iteration"]
    )
    for it in bar:
        t0 = time.time()
        if step is not None:
            model, loglik = step(model, enc, batches)
        else:
            loglik = gradient_epoch(model, enc, batches, opt, seed + it)
        meta["history"].append(loglik / n_tokens)
        meta["iteration"] = it + 1
        meta["seconds"] += time.time() - t0
        bar.set_postfix(ll=f"{loglik / n_tokens:.4f}")
        save_checkpoint(out, _tensors(model), meta)
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
    return HMM(init, trans, _neural_emission(meta))


def em_iteration(model: HMM, enc: brown.Encoded, batches) -> tuple[HMM, float]:
    """One Baum-Welch iteration over all sentences, streamed in minibatches; returns the new model and
    log P(data) under the old one."""
    _em_family(model.emission)
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
        total = _log_partition(model.log_init, model.log_trans, model.emission_log_prob(y), lengths)
        loss = -total.sum() / lengths.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        loglik += float(total.detach().sum())
    return loglik


# --------------------------------------------------------------------------------------------------
# Evaluation


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
    for idx in progress(_length_batches(enc.lengths, batch_tokens), desc="viterbi", disable=not show):
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
    for idx in _length_batches(te_sorted.lengths, 20000):
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
