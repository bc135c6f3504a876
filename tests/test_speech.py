"""The speech application runs end to end on synthetic prompts laid out like the Asterisk packages (the real
data is fetched by scripts/ctc_speech_prepare.sh and is not part of the suite)."""

import gzip
import json
import sys
import wave

import numpy as np

from latentvar.apps.speech import train
from latentvar.apps.speech.data import load_prompts, normalise


def _prompts(root, n=12):
    sounds = root / "en_US_f_Allison"
    sounds.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["; a comment", "tone: [a beep]"]
    for i in range(n):
        name = f"p{i:02d}"
        lines.append(f"{name}: Press {i % 10} or *")
        audio = (rng.standard_normal(4000 + 400 * i) * 3000).astype(np.int16)
        with wave.open(str(sounds / f"{name}.wav"), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
            w.writeframes(audio.tobytes())
    with gzip.open(root / "core-sounds-en.txt.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")


def test_transcripts_are_spelled_out_and_descriptions_dropped(tmp_path):
    _prompts(tmp_path)
    prompts = load_prompts(tmp_path)
    assert len(prompts) == 12  # the bracketed description has no audio and no words
    assert prompts[3][2] == normalise("Press 3 or *") == "press three or star"


def test_training_writes_metrics_report_and_checkpoint(tmp_path, monkeypatch):
    _prompts(tmp_path / "data")
    out = tmp_path / "out"
    argv = [
        "ctc_speech",
        "--data",
        str(tmp_path / "data"),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--batch",
        "4",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    train.main()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["prompts"] == 12 and metrics["held_out_prompts"] == 1 and metrics["epochs"] == 1
    assert (out / "report.html").exists() and (out / "checkpoint.json").exists()
