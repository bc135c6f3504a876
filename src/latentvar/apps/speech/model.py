"""The speech reader: two 1-D convolutions (the second with stride 2: 20 ms frames), a 2-layer
bidirectional GRU and a linear layer over blank + 28 characters, CTC's per-frame P(z_t|x).

Shapes (named axes): b batch, t frames, f mel bands, c classes.
"""

from __future__ import annotations

import torch
from torch import nn

from latentvar.apps.speech.data import ALPHABET, N_MELS


class SpeechReader(nn.Module):
    """log-mel (b, t, f) -> per-frame class log-probabilities (b, ceil(t/2), c)."""

    def __init__(self, hidden: int = 160):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv1d(N_MELS, hidden, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, 5, stride=2, padding=2),
            nn.ReLU(),
        )
        self.rnn = nn.GRU(hidden, hidden, num_layers=2, batch_first=True, bidirectional=True, dropout=0.1)
        self.out = nn.Linear(2 * hidden, len(ALPHABET) + 1)

    @staticmethod
    def frames(lengths: torch.Tensor) -> torch.Tensor:
        return (lengths + 1) // 2

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        h = self.conv(feats.transpose(1, 2)).transpose(1, 2)
        h, _ = self.rnn(h)
        return self.out(h).log_softmax(-1)
