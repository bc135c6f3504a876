"""Real speech with CTC: a small character model on the Asterisk core prompts (one speaker, 8 kHz) and
forced alignments of transcripts to held-out audio. Not part of `make test`: its data is fetched by
scripts/ctc_speech_prepare.sh; run it with `python -m latentvar.apps.speech` (or bench/ctc_speech.py).

Rooms: data.py (prompts, log-mel features, batches), model.py (`SpeechReader`), train.py (training,
held-out CER and log-likelihood, alignment pictures and report).
"""
