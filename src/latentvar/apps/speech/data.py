"""The Asterisk core prompts as CTC data: transcripts normalised to 28 characters (digits and * # spelled
out), 8 kHz waveforms, 40 log-mel bands of a 32 ms / 10 ms STFT computed in torch, padded batches, and
character spans read back as words. The raw files come from scripts/ctc_speech_prepare.sh.

Shapes (named axes): b batch, t frames, f mel bands, c classes.
"""

from __future__ import annotations

import gzip
import math
import re
import wave
from pathlib import Path

import numpy as np
import torch

ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"  # class k + 1; class 0 is the blank
SPOKEN = {
    "0": " zero ", "1": " one ", "2": " two ", "3": " three ", "4": " four ", "5": " five ",
    "6": " six ", "7": " seven ", "8": " eight ", "9": " nine ", "*": " star ", "#": " pound ",
}  # fmt: skip
SAMPLE_RATE = 8000
N_FFT, HOP, N_MELS = 256, 80, 40
MAX_SECONDS = 12.0


def normalise(text: str) -> str:
    text = "".join(SPOKEN.get(ch, ch) for ch in text.lower())
    text = re.sub(r"[^a-z' ]+", " ", text)
    return re.sub(r" +", " ", text).strip()


def load_prompts(root: Path) -> list[tuple[str, np.ndarray, str]]:
    """(name, waveform float32 in [-1, 1], normalised transcript) for every transcribed prompt."""
    txt = next(root.rglob("core-sounds-en.txt.gz"))
    sounds = next(p for p in root.rglob("en_US_f_Allison") if p.is_dir())
    prompts = []
    for line in gzip.open(txt, "rt", encoding="utf-8", errors="replace"):
        if line.startswith(";") or ":" not in line:
            continue
        name, text = line.split(":", 1)
        text = text.strip()
        wav = sounds / f"{name.strip()}.wav"
        if not wav.exists() or text.startswith("[") or not normalise(text):
            continue
        with wave.open(str(wav)) as w:
            if w.getframerate() != SAMPLE_RATE or w.getsampwidth() != 2:
                continue
            audio = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768
        prompts.append((name.strip(), audio, normalise(text)))
    return prompts


def mel_filterbank(n_fft: int = N_FFT, n_mels: int = N_MELS, sr: int = SAMPLE_RATE) -> torch.Tensor:
    """Triangular filters on the mel scale (HTK formula mel = 2595 log10(1 + f/700)): (n_fft//2+1, f)."""
    mel = torch.linspace(0, 2595 * math.log10(1 + sr / 2 / 700), n_mels + 2)
    hz = 700 * (10 ** (mel / 2595) - 1)
    bins = torch.linspace(0, sr / 2, n_fft // 2 + 1)
    lower, centre, upper = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0).T


def log_mel(audio: np.ndarray, filters: torch.Tensor) -> torch.Tensor:
    """Per-utterance normalised log-mel features (t, f) at 10 ms frames."""
    x = torch.as_tensor(audio)
    spec = torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True).abs() ** 2
    feats = torch.log(spec.T @ filters + 1e-6)
    return (feats - feats.mean(0)) / (feats.std(0) + 1e-5)


def encode(text: str) -> list[int]:
    return [ALPHABET.index(ch) + 1 for ch in text]


def batch_of(items):
    feats = [f for f, _ in items]
    lengths = torch.tensor([len(f) for f in feats])
    padded = torch.zeros(len(feats), int(lengths.max()), N_MELS)
    for i, f in enumerate(feats):
        padded[i, : len(f)] = f
    texts = [encode(t) for _, t in items]
    target_lengths = torch.tensor([len(t) for t in texts])
    targets = torch.zeros(len(texts), int(target_lengths.max()), dtype=torch.long)
    for i, t in enumerate(texts):
        targets[i, : len(t)] = torch.tensor(t)
    return padded, lengths, targets, target_lengths


def decode_text(labels: torch.Tensor, length: int) -> str:
    return "".join(ALPHABET[k - 1] for k in labels[:length].tolist())


def word_spans(text: str, spans: torch.Tensor) -> list[tuple[str, int, int]]:
    """Word-level (word, first frame, one past last frame) from character spans (l, 2)."""
    out, start = [], 0
    for word in text.split(" "):
        first, last = start, start + len(word) - 1
        out.append((word, int(spans[first, 0]), int(spans[last, 1])))
        start = last + 2
    return out
