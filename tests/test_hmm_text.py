"""The Brown data, the autoregressive model and the HMM/LM command line on tiny slices of real text."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from typer.testing import CliRunner

from latentvar import Autoregressive
from latentvar.autoregressive import RecurrentLM
from latentvar.cli import app
from latentvar.data import brown

# -- data -------------------------------------------------------------------------------------------


def test_brown_counts_split_and_tags():
    docs = brown.documents()
    assert len(docs) == 500
    sents = [s for _, ss in docs for s in ss]
    assert len(sents) == 57340
    assert sum(len(s) for s in sents) == 1161192  # the package's README
    train, test = brown.sentences("train"), brown.sentences("test")
    assert len(train) + len(test) == 57340 and 5000 < len(test) < 7000
    assert brown.base_tag("np-tl") == "np" and brown.base_tag("fw-in+at-tl") == "in+at"
    assert brown.base_tag("nn-tl-hl") == "nn" and brown.base_tag("pps+bez-hl") == "pps+bez"
    assert brown.base_tag("---hl") == "--"
    assert brown.coarse_tag("pps+bez") == "PRON" and brown.coarse_tag("nn$-tl") == "NOUN"
    assert brown.coarse_tag("bedz*") == "VERB" and brown.coarse_tag("*") == "ADV"
    assert [brown.ptb_tag(t) for t in ("bedz", "ppss+md", "nns$-tl", "md*", "pp$", "cs", "ql")] == [
        "VBD",
        "PRP",
        "NNS",
        "MD",
        "PRP$",
        "IN",
        "RB",
    ]
    # every tag of the corpus has a PTB tag (none falls through to X)
    assert {brown.ptb_tag(t) for s in sents for _, t in s} <= set(brown.PTB.values())
    # every tag of the corpus has a coarse class other than X, except interjections and nil
    xs = {brown.base_tag(t) for s in sents for _, t in s if brown.coarse_tag(t) == "X"}
    assert xs <= {"uh", "nil"}
    with pytest.raises(ValueError, match=r"^split: "):
        brown.sentences("dev")


def test_brown_encode_and_vocabulary():
    sents = brown.sentences("test")[:50]
    vocab = brown.Vocabulary.build(sents, max_size=100)
    assert len(vocab) == 100 and vocab.words[0] == brown.UNK
    enc = brown.encode(sents, vocab, brown.tagset(sents))
    assert enc.words.shape == enc.tags.shape == (50, int(enc.lengths.max()))
    valid = torch.arange(enc.words.shape[1]) < enc.lengths[:, None]
    assert (enc.tags[valid] >= 0).all() and (enc.tags[~valid] == -1).all()
    assert enc.words[0, 0] == vocab.encode(sents[0][0][0])


# -- autoregressive ---------------------------------------------------------------------------------


class Bigram(torch.nn.Module):
    """Next-token logits from the last token only: log P is a sum of table lookups we can check by hand."""

    def __init__(self, v):
        super().__init__()
        self.table = torch.nn.Parameter(torch.randn(v, v))

    def forward(self, prefix):
        return self.table[prefix]


def total_last(model, seqs) -> float:
    return float(model.log_prob(seqs).detach().exp().sum())


def test_autoregressive_log_prob_is_the_chain_rule_and_normalised():
    v = 4  # ids 0..2 tokens, 3 = eos
    net = Bigram(v)
    model = Autoregressive(net)
    y = torch.tensor([[0, 2, 1], [1, 0, 0]])
    lengths = torch.tensor([3, 1])
    lp = model.log_prob(y, lengths)
    logp = torch.log_softmax(net.table, -1)
    expected0 = logp[3, 0] + logp[0, 2] + logp[2, 1] + logp[1, 3]
    expected1 = logp[3, 1] + logp[1, 3]
    torch.testing.assert_close(lp, torch.stack([expected0, expected1]))
    torch.testing.assert_close(model.log_prob(y, lengths, include_eos=False)[1], logp[3, 1])
    # Σ over every sequence of length <= 6 of P(y, then eos) + P(longer) = 1
    total = 0.0
    for n in range(0, 7):
        seqs = torch.tensor(list(itertools.product(range(3), repeat=n)), dtype=torch.long).reshape(3**n, n)
        total += float(model.log_prob(seqs).detach().exp().sum())
    longer = float(model.log_prob(seqs, include_eos=False).detach().exp().sum()) - total_last(model, seqs)
    assert abs(total + longer - 1) < 1e-5


def test_autoregressive_sample_matches_probabilities():
    torch.manual_seed(0)
    net = Bigram(3)
    model = Autoregressive(net)
    y, lengths = model.sample((4000,), max_length=2)
    assert y.shape == (4000, 2) and lengths.shape == (4000,)
    assert ((y == 2) == (torch.arange(2) >= lengths[:, None])).all()  # eos fills the rest
    # frequency of the empty sequence vs its probability
    p_empty = float(model.log_prob(torch.zeros(1, 0, dtype=torch.long)).exp().detach())
    assert abs(float((lengths == 0).float().mean()) - p_empty) < 4 * math.sqrt(p_empty * (1 - p_empty) / 4000)


def test_autoregressive_bad_input():
    model = Autoregressive(RecurrentLM(5, dim=4, hidden=4))
    with pytest.raises(ValueError, match=r"^y: "):
        model.log_prob(torch.tensor([[0, 5]]))
    with pytest.raises(ValueError, match=r"^lengths: "):
        model.log_prob(torch.tensor([[0, 1]]), torch.tensor([3]))
    with pytest.raises(ValueError, match=r"^y: "):
        model.log_prob(torch.tensor([[0.5]]))
    with pytest.raises(ValueError, match=r"^network: "):
        Autoregressive(lambda x: x)


# -- command line -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_hmm_and_lm_end_to_end(tmp_path):
    runner = CliRunner()
    hmm_run, lm_run = tmp_path / "hmm", tmp_path / "lm"
    common = ["--max-sentences", "200", "--vocab", "300"]
    r = runner.invoke(
        app,
        ["hmm", "fit", "--data", "brown", "--states", "5", "--iters", "2", "--out", str(hmm_run), *common],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        ["hmm", "fit", "--data", "brown", "--states", "5", "--iters", "3", "--out", str(hmm_run), *common],
    )
    assert r.exit_code == 0, r.output  # resumes at iteration 2
    meta = json.loads((hmm_run / "checkpoint.json").read_text())
    assert meta["iteration"] == 3 and meta["history"][2] >= meta["history"][1] - 1e-6
    out = tmp_path / "hmm.json"
    r = runner.invoke(
        app, ["hmm", "eval", "--run", str(hmm_run), "--json", str(out), "--max-sentences", "30"]
    )
    assert r.exit_code == 0, r.output
    metrics = json.loads(out.read_text())
    assert {"many_to_one", "v_measure", "nll_per_token", "perplexity"} <= set(metrics)
    assert 0 < metrics["many_to_one"] <= 1 and math.isclose(
        metrics["perplexity"], math.exp(metrics["nll_per_token"])
    )
    # PTB and coarse tags are functions of the base tag: merging gold classes cannot lower many-to-one
    assert metrics["many_to_one"] <= min(metrics["many_to_one_ptb"], metrics["many_to_one_coarse"])
    r = runner.invoke(
        app,
        [
            "lm",
            "fit",
            "--data",
            "brown",
            "--out",
            str(lm_run),
            "--steps",
            "3",
            "--dim",
            "8",
            "--hidden",
            "8",
            *common,
        ],
    )
    assert r.exit_code == 0, r.output
    out = tmp_path / "lm.json"
    r = runner.invoke(app, ["lm", "eval", "--run", str(lm_run), "--json", str(out), "--max-sentences", "30"])
    assert r.exit_code == 0, r.output
    assert {"nll_per_token", "perplexity"} <= set(json.loads(out.read_text()))
    r = runner.invoke(app, ["lm", "sample", "--run", str(lm_run), "-n", "3"])
    assert r.exit_code == 0 and len(r.output.strip().splitlines()) == 3
    r = runner.invoke(app, ["hmm", "report", "--run", str(hmm_run), "--lm", str(lm_run)])
    assert r.exit_code == 0, r.output
    page = (hmm_run / "report.html").read_text()
    assert "Top words per state" in page and "many-to-one (PTB view)" in page
    assert "HMM on Brown: categorical emissions (random start)" in page
    r = runner.invoke(app, ["hmm", "fit", "--data", "wsj", "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "--data" in r.output


def test_word_features_and_feature_emission():
    from latentvar.hmm.emissions import FeatureEmission, word_features

    assert word_features("Running") == ["w=Running", "l=running", "p2=ru", "s1=g", "s2=ng", "s3=ing", "cap"]
    assert {"allcaps", "digit", "hyphen"} <= set(word_features("B-52"))
    assert "punct" in word_features("--") and word_features("<unk>") == ["unk"]
    # without identity, a long word is only its spelling; a short one keeps its own feature
    assert word_features("Running", identity=False) == ["p2=ru", "s1=g", "s2=ng", "s3=ing", "cap"]
    assert word_features("the", identity=False) == ["w=the", "l=the", "p2=th", "s1=e", "s2=he"]
    words = ["<unk>", "the", "The", "running", "jumping", "1960", "--"]
    em = FeatureEmission(words, num_states=3, dim=8)
    table = em.log_emission()
    assert table.shape == (3, len(words))
    torch.testing.assert_close(table.exp().sum(-1), torch.ones(3))
    y = torch.tensor([[1, 3, 4], [6, 0, 2]])
    torch.testing.assert_close(em(y), table.T[y])
    # before the MLP, each word's vector is the sum of its own features' embeddings (the bags are right),
    # so words sharing a suffix share those terms
    pre = em.embed(em.feature_ids, em.offsets)
    for i, w in enumerate(words):
        ids = torch.tensor([em.feature_index[f] for f in word_features(w)])
        torch.testing.assert_close(pre[i], em.embed.weight[ids].sum(0))
    assert set(word_features("running")) & set(word_features("jumping")) == {"s1=g", "s2=ng", "s3=ing"}


@pytest.mark.slow
def test_cli_hmm_neural_ngrams_fit_resume_eval(tmp_path):
    runner = CliRunner()
    run = tmp_path / "ng"
    args = ["hmm", "fit", "--emission", "neural", "--features", "ngrams", "--states", "4", "--out", str(run)]
    args += ["--max-sentences", "150", "--vocab", "100000", "--batch-tokens", "1000", "--lr", "0.05"]
    assert runner.invoke(app, [*args, "--iters", "1"]).exit_code == 0
    r = runner.invoke(app, [*args, "--iters", "2"])
    assert r.exit_code == 0, r.output
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["iteration"] == 2 and meta["features"] == "ngrams" and meta["history"][1] > meta["history"][0]
    out = tmp_path / "ng.json"
    r = runner.invoke(app, ["hmm", "eval", "--run", str(run), "--json", str(out), "--max-sentences", "20"])
    assert r.exit_code == 0, r.output
    assert 0 < json.loads(out.read_text())["many_to_one"] <= 1
    r = runner.invoke(app, [*args[:-2], "--features", "cnn"])
    assert r.exit_code != 0 and "--features" in r.output
    # resuming with another model configuration is refused with a ValueError naming the option (the
    # `latentvar` entry point turns it into `error: ...`, exit 2)
    r = runner.invoke(app, [*args[:-2], "--features", "chars", "--iters", "3"])
    assert isinstance(r.exception, ValueError) and "--features" in str(r.exception)
    assert "fitted with 'ngrams'" in str(r.exception)
    r = runner.invoke(app, [*args, "--states", "5", "--iters", "3"])
    assert isinstance(r.exception, ValueError) and str(r.exception).startswith("--states")
    assert json.loads((run / "checkpoint.json").read_text())["iteration"] == 2  # nothing was overwritten
