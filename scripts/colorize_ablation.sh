#!/usr/bin/env bash
# The learned segment prior's ablation (issue 20; docs/colorize.md "The learned prior: ablation"): the same
# photo-corpus recipe as the shipped model (seed 0, 64-px crops, batch 64, lr 2e-3 cosine, width 32, K = 16),
# one training term off per run, then bench/colorize_prior_ablation.py prints the table. Hours on 2 CPU cores.
# Usage: bash scripts/colorize_ablation.sh [--device cuda]
set -euo pipefail
cd "$(dirname "$0")/.."
LV=.venv/bin/latentvar
PY=.venv/bin/python
DEVICE=${2:-cpu}
CORPUS=data-cache/photos
RUNS=runs/ablation
[ -f "$CORPUS/manifest.json" ] || $LV colorize prepare photos --out "$CORPUS"
common=(--data "$CORPUS" --model latent --segments 16 --size 64 --width 32 --batch-size 64 --lr 2e-3
  --lr-decay cosine --val-every 250 --checkpoint-every 250 --select nll --devices 1 --device "$DEVICE" --resume)
# the shipped recipe (1,000 steps), the first learned-prior recipe (no confidence, invariance 1.0, 1,500
# steps) and three ablations at 1,000 steps
# (the defaults are the shipped recipe: --smooth-steps 3 --balance 0.5 --confidence 0.5 --invariance 0.25)
$LV colorize train "${common[@]}" --steps 1000 --out "$RUNS/full"
$LV colorize train "${common[@]}" --steps 1500 --confidence 0 --invariance 1 --out "$RUNS/no-confidence"
$LV colorize train "${common[@]}" --steps 1000 --smooth-steps 0 --balance 0 --confidence 0 --invariance 0 \
  --out "$RUNS/nll-only"
$LV colorize train "${common[@]}" --steps 1000 --confidence 0 --invariance 0 --out "$RUNS/no-invariance"
$LV colorize train "${common[@]}" --steps 1000 --smooth-steps 0 --confidence 0 --invariance 1 --out "$RUNS/no-smoothing"
# the photo model shipped before the learned prior (its hand-set lightness quantiser), from git history
mkdir -p "$RUNS/lightness"
for f in checkpoint.json checkpoint.safetensors; do
  git show "273a2d4:src/latentvar/data/models/photo/$f" > "$RUNS/lightness/$f"
done
PYTHONPATH=src $PY bench/colorize_prior_ablation.py "lightness prior (before)=$RUNS/lightness" \
  "nll only=$RUNS/nll-only" "+smooth +balance=$RUNS/no-invariance" "+balance +invariance=$RUNS/no-smoothing" \
  "no confidence, 1,500 steps=$RUNS/no-confidence" "full (shipped)=$RUNS/full" --json "$RUNS/ablation.json"
