"""Context clusters and the warm start of HMMs from them, on a toy grammar whose word classes are known."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
import torch.distributions as D
from sklearn.metrics import v_measure_score
from typer.testing import CliRunner

from latentvar import HMM
from latentvar.hmm.word_clusters import context_clusters, context_vectors, state_counts, warm_start

# start-only adverbs, determiners, adjectives, nouns, verbs, end marks; a sentence is
# [S] D [A] N V D [A] N E -- every class has its own left/right neighbour classes
CLASSES = {"S": 2, "D": 3, "A": 3, "N": 5, "V": 4, "E": 2}


def toy_corpus(n: int = 1500, seed: int = 0):
    rng = random.Random(seed)
    words = ["<unk>"] + [f"{c}{i}" for c, m in CLASSES.items() for i in range(m)]
    label = {w: i for i, c in enumerate(CLASSES) for w in words if w[0] == c}
    label["<unk>"] = 0
    sents = []
    for _ in range(n):
        pattern = (["S"] if rng.random() < 0.3 else []) + ["D"] + (["A"] if rng.random() < 0.5 else [])
        pattern += ["N", "V", "D"] + (["A"] if rng.random() < 0.5 else []) + ["N", "E"]
        sents.append([f"{c}{rng.randrange(CLASSES[c])}" for c in pattern])
    index = {w: i for i, w in enumerate(words)}
    t = max(map(len, sents))
    ids = torch.zeros(n, t, dtype=torch.long)
    for b, s in enumerate(sents):
        ids[b, : len(s)] = torch.tensor([index[w] for w in s])
    lengths = torch.tensor([len(s) for s in sents])
    return sents, words, ids, lengths, torch.tensor([label[w] for w in words])


def test_context_vectors_keep_the_neighbour_count_geometry():
    """At full rank the SVD keeps every inner product, so the vectors' Gram matrix is that of the
    square-rooted, row-normalised neighbour counts -- counted here by hand, one side at a time."""
    sents, words, ids, lengths, _ = toy_corpus(300)
    v = len(words)
    index = {w: i for i, w in enumerate(words)}
    counts = np.zeros(v)
    for s in sents:
        for w in s:
            counts[index[w]] += 1
    ranked = sorted(range(1, v), key=lambda i: (-counts[i], i))  # all words are contexts; <unk> never
    col = {w: j for j, w in enumerate(ranked)}
    x = context_vectors(ids, lengths, v, context_words=v, rank=v)
    half = x.shape[1] // 2
    for side, vecs in ((-1, x[:, :half]), (1, x[:, half:])):
        m = np.zeros((v, len(ranked) + 1))
        for s in sents:
            for t, w in enumerate(s):
                u = t + side
                m[index[w], col[index[s[u]]] if 0 <= u < len(s) else len(ranked)] += 1
        m = np.sqrt(m)
        m /= np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
        np.testing.assert_allclose(vecs @ vecs.T, m @ m.T, atol=1e-8)


def test_context_clusters_recover_the_word_classes():
    _, words, ids, lengths, label = toy_corpus()
    clusters = context_clusters(ids, lengths, len(words), k=len(CLASSES))
    assert clusters.shape == (len(words),)
    # one cluster per class, up to renaming (<unk> never occurs, so its cluster does not matter)
    assert v_measure_score(label[1:].numpy(), clusters[1:].numpy()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"^k: "):
        context_clusters(ids, lengths, len(words), k=100)
    with pytest.raises(ValueError, match="words/lengths"):
        context_vectors(ids[0], lengths, len(words))
    with pytest.raises(ValueError, match=r"^lengths: "):
        context_clusters(ids, lengths + ids.shape[1], len(words), k=3)
    with pytest.raises(ValueError, match=r"^words: expected ids in \[0, 5\)"):
        context_clusters(ids, lengths, 5, k=3)


def test_warm_start_categorical_counts_and_decoding():
    _, words, ids, lengths, label = toy_corpus(400)
    k, v = len(CLASSES), len(words)
    model = HMM(torch.zeros(k), torch.zeros(k, k), D.Categorical(logits=torch.zeros(k, v)))
    warm = warm_start(model, ids, lengths, label)
    # transitions: add-one class bigram counts, counted by hand
    trans = np.ones((k, k))
    first = np.ones(k)
    emit = np.full((k, v), 0.01)  # and add-0.01 (state, word) counts
    for b in range(ids.shape[0]):
        z = [int(label[w]) for w in ids[b, : lengths[b]]]
        first[z[0]] += 1
        for a, c in zip(z, z[1:], strict=False):
            trans[a, c] += 1
        for state, w in zip(z, ids[b, : lengths[b]].tolist(), strict=True):
            emit[state, w] += 1
    np.testing.assert_allclose(warm.log_trans.exp().numpy(), trans / trans.sum(1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(warm.log_init.exp().numpy(), first / first.sum(), rtol=1e-5)
    np.testing.assert_allclose(warm.emission.probs.numpy(), emit / emit.sum(1, keepdims=True), rtol=1e-5)
    # the unambiguous toy grammar decodes to its classes
    post = warm.posterior(ids, lengths)
    valid = torch.arange(ids.shape[1]) < lengths[:, None]
    assert torch.equal(post.mode[valid], label[ids][valid])
    with pytest.raises(ValueError, match=r"^labels: "):
        warm_start(model, ids, lengths, label + k)
    with pytest.raises(ValueError, match=r"^z: expected states"):
        state_counts(label[ids] + k, ids, lengths, k, v)


def test_warm_start_fits_a_neural_emission_to_the_clusters():
    from latentvar.hmm.emissions import FeatureEmission

    _, words, ids, lengths, label = toy_corpus(400)
    k = len(CLASSES)
    torch.manual_seed(0)
    emission = FeatureEmission(words, k, dim=16)
    model = HMM(torch.zeros(k), torch.zeros(k, k), emission)
    before = emission.log_emission().detach().argmax(0)
    warm = warm_start(model, ids, lengths, label, steps=150, lr=0.05, show=False)
    assert warm.emission is emission
    best_state = emission.log_emission().detach().argmax(0)  # the state most likely to emit each word
    assert torch.equal(best_state[1:], label[1:]) and not torch.equal(before[1:], label[1:])
    with pytest.raises(ValueError, match=r"^labels: .*vocabulary"):
        warm_start(model, ids, lengths, torch.cat([label, label]), steps=1, show=False)


@pytest.mark.slow
def test_cli_hmm_fit_from_clusters(tmp_path):
    from latentvar.cli import app

    runner = CliRunner()
    run = tmp_path / "cl"
    args = ["hmm", "fit", "--states", "6", "--out", str(run), "--max-sentences", "300", "--vocab", "500"]
    r = runner.invoke(app, [*args, "--init", "clusters", "--iters", "2"])
    assert r.exit_code == 0, r.output
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["init"] == "clusters" and meta["iteration"] == 2
    assert meta["history"][1] >= meta["history"][0] - 1e-6  # EM does not decrease the likelihood
    r = runner.invoke(app, [*args, "--init", "random", "--iters", "3"])
    assert isinstance(r.exception, ValueError) and str(r.exception).startswith("--init")
    r = runner.invoke(app, [*args, "--init", "kmeans"])
    assert r.exit_code != 0 and "--init" in r.output
    # the neural HMM with spelling-only long words, from clusters, then evaluated
    neural = tmp_path / "nc"
    args = ["hmm", "fit", "--emission", "neural", "--features", "affixes", "--init", "clusters"]
    args += ["--states", "6", "--out", str(neural), "--max-sentences", "300", "--vocab", "100000"]
    r = runner.invoke(app, [*args, "--iters", "1", "--batch-tokens", "2000", "--lr", "0.05"])
    assert r.exit_code == 0, r.output
    meta = json.loads((neural / "checkpoint.json").read_text())
    assert (meta["features"], meta["init"], meta["iteration"]) == ("affixes", "clusters", 1)
    out = tmp_path / "nc.json"
    r = runner.invoke(app, ["hmm", "eval", "--run", str(neural), "--json", str(out), "--max-sentences", "30"])
    assert r.exit_code == 0, r.output
    assert 0 < json.loads(out.read_text())["many_to_one"] <= 1
