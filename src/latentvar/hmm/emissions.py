"""Emission families for HMMs over words whose log P(word | state) table comes from each word's spelling:
`SpellingEmission` (the base: state embeddings score a vector per vocabulary word), `CharEmission` (a
character CNN, Tran et al. 2016) and `FeatureEmission` (orthographic features, Berg-Kirkpatrick et al.
2010). Each is an ``nn.Module`` an `HMM` takes as its emission: ``forward(y)`` (b, t) -> (b, t, k).

Shapes: b sentences, t words, k states, v vocabulary, c characters per word, d embedding width.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributions as D
from torch import Tensor, nn

UNK = "<unk>"  # the unknown-word token of a vocabulary (latentvar.data.brown.UNK); its only feature is "unk"


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
    if word == UNK:
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
