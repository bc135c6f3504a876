"""The HTML report of an HMM run on Brown: metrics beside the LM's, top words per state, the state/tag
confusion, sampled sentences from the HMM and the LM, the training curve."""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn

from latentvar import report
from latentvar.apps.pos.evaluate import decode, evaluate
from latentvar.apps.pos.train import build_model
from latentvar.data import brown
from latentvar.io import load_checkpoint


def _emission_table(model) -> torch.Tensor:
    em = model.emission
    return em.log_emission().detach() if isinstance(em, nn.Module) else em.logits.detach()


def _confusion_figure(pred: np.ndarray, coarse: np.ndarray, k: int):
    import matplotlib.pyplot as plt

    table = np.zeros((k, len(brown.COARSE_TAGS)))
    np.add.at(table, (pred, coarse), 1)
    order = np.lexsort((-table.max(1), table.argmax(1)))  # group states by their majority tag
    rows = table[order] / np.maximum(table[order].sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6, max(4, k * 0.16)))
    ax.imshow(rows, aspect="auto", cmap="Blues")
    ax.set_xticks(range(len(brown.COARSE_TAGS)), brown.COARSE_TAGS, rotation=60)
    ax.set_yticks(range(k), [str(s) for s in order], fontsize=6)
    ax.set_xlabel("gold coarse tag")
    ax.set_ylabel("HMM state (grouped by majority tag)")
    ax.set_title("P(tag | state) on the test split")
    return fig


def _curve_figure(history: list[float], label: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(range(1, len(history) + 1), history, marker=".")
    ax.set_xlabel("iteration")
    ax.set_ylabel(label)
    return fig


def write_report(run: Path, lm: Path | None, extra: list[Path], out: Path) -> Path:
    tensors, meta = load_checkpoint(run)
    model = build_model(tensors, meta)
    vocab = meta["vocab"]
    tags = brown.tagset(brown.sentences("all"))
    enc = brown.encode(brown.sentences("test"), brown.Vocabulary(vocab), tags)
    pred, gold, coarse, _ = decode(model, enc, show=False)
    k = meta["states"]
    sections = []

    rows = []
    for r in [run, *extra]:
        m = evaluate(r)
        rows.append(
            [
                f"HMM {_describe(load_checkpoint(r)[1])} ({r.name})",
                m["many_to_one"],
                m["v_measure"],
                m["many_to_one_ptb"],
                m["many_to_one_coarse"],
                m["vocab_size"],
                m["nll_per_token"],
                m["perplexity"],
            ]
        )
    if lm is not None:
        from latentvar.apps.pos.lm import evaluate as lm_evaluate

        m = lm_evaluate(lm)
        rows.append(
            [f"LSTM LM ({lm.name})", "—", "—", "—", "—", m["vocab_size"], m["nll_per_token"], m["perplexity"]]
        )
    sections.append(
        "<h2>Test-split metrics</h2>"
        + report.table(
            [
                "model",
                "many-to-one (base tags)",
                "V-measure",
                "many-to-one (PTB view)",
                "many-to-one (12 coarse)",
                "vocabulary",
                "nll/token",
                "perplexity",
            ],
            rows,
        )
        + "<p class='note'>Many-to-one maps each state to its most frequent gold tag; the PTB view scores the "
        "same states against the Penn Treebank tags of the base tags (brown.ptb_tag), the tag set of the WSJ "
        "results in the literature; perplexity is over "
        "the test split's words (no end-of-sentence term), every word outside a model's vocabulary scored as "
        "its one &lt;unk&gt; token, so perplexities compare only between rows of the same vocabulary size.</p>"
    )

    table = _emission_table(model)
    top = table.topk(8, dim=-1).indices
    majority = Counter(zip(pred.tolist(), gold.tolist(), strict=True))
    best: dict[int, tuple[str, int]] = {}
    for (s, g), c in majority.items():
        if c > best.get(s, ("", 0))[1]:
            best[s] = (tags[g] if g < len(tags) else "?", c)
    size = Counter(pred.tolist())
    rows = [
        [
            s,
            best.get(s, ("—", 0))[0],
            f"{best.get(s, ('', 0))[1] / max(size[s], 1):.0%}",
            size[s],
            " ".join(vocab[int(i)] for i in top[s]),
        ]
        for s in range(k)
    ]
    sections.append(
        "<h2>Top words per state</h2>"
        + report.table(
            ["state", "majority gold tag", "share", "test tokens", "most probable words P(w | state)"], rows
        )
    )
    sections.append(
        "<h2>State / tag confusion</h2>" + report.img(report.figure_bytes(_confusion_figure(pred, coarse, k)))
    )

    torch.manual_seed(0)
    z, y = model.sample((6,), 14)
    hmm_lines = [" ".join(vocab[int(t)] for t in row) for row in y]
    sections.append(
        "<h2>Sentences sampled from the HMM (14 words each)</h2><ul>"
        + "".join(f"<li>{html.escape(s)}</li>" for s in hmm_lines)
        + "</ul>"
    )
    if lm is not None:
        from latentvar.apps.pos.lm import sample_sentences

        lm_lines = sample_sentences(lm, 6)
        sections.append(
            "<h2>Sentences sampled from the LSTM LM</h2><ul>"
            + "".join(f"<li>{html.escape(s)}</li>" for s in lm_lines)
            + "</ul>"
        )
    sections.append(
        "<h2>Training curve</h2>"
        + report.img(report.figure_bytes(_curve_figure(meta["history"], "train log-likelihood / token")))
    )
    return report.write(out, f"HMM on Brown: {_describe(meta)}, {k} states", sections)


def _describe(meta: dict) -> str:
    """The `hmm fit` options that made a run, e.g. "neural emissions (affixes features, clusters start)"."""
    details = [f"{meta['features']} features"] if meta["emission"] == "neural" and "features" in meta else []
    details += [f"{meta['init']} start"] if "init" in meta else []
    return f"{meta['emission']} emissions" + (f" ({', '.join(details)})" if details else "")
