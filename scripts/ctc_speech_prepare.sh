#!/usr/bin/env bash
# Fetch the real speech data of latentvar.apps.speech (bench/ctc_speech.py) from Debian's registry (nothing is committed):
#   asterisk-core-sounds-en-wav  568 English prompts, 8 kHz 16-bit WAV, one speaker (Allison Smith)
#   asterisk-core-sounds-en      core-sounds-en.txt.gz, the transcripts
# Licence: CC-BY-SA 3.0 (see usr/share/doc/*/copyright inside the packages).
# Usage: scripts/ctc_speech_prepare.sh [DIR]   (default runs/speech_data)
set -euo pipefail
dir="${1:-runs/speech_data}"
mkdir -p "$dir/debs"
cd "$dir/debs"
packages="asterisk-core-sounds-en-wav asterisk-core-sounds-en"
apt-get download $packages 2>/dev/null || { apt-get update -qq && apt-get download $packages; }
for deb in *.deb; do dpkg-deb -x "$deb" ..; done
echo "extracted into $dir: $(find .. -name '*.wav' | wc -l) wav files"
