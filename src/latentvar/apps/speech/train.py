"""Real speech with latentvar's CTC: a small character model on the Asterisk core prompts, and forced
alignments of transcripts to audio on held-out prompts. Not part of `make test`.

    scripts/ctc_speech_prepare.sh                 # apt-get download of the two Debian packages (CC-BY-SA 3.0)
    PYTHONPATH=src python bench/ctc_speech.py [--epochs 30] [--out runs/ctc_speech] [--resume]
    python -m latentvar.apps.speech [...]           # the same

Data: `asterisk-core-sounds-en-wav` (568 prompts, 8 kHz, one speaker) and the transcripts in
`asterisk-core-sounds-en`'s core-sounds-en.txt.gz. Prompts whose transcript is a bracketed description
(tones, silence) are dropped; digits and the keys * and # are spelled out as spoken. A fixed 10% of the
prompts is held out. Features: 40 log-mel bands of a 32 ms / 10 ms STFT, computed in torch. Model: two
1-D convolutions (the second with stride 2: 20 ms frames), a 2-layer bidirectional GRU and a linear layer
over 29 classes (blank, space, apostrophe, a-z).

Shapes (named axes): b batch, t frames, f mel bands, c classes.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from torch import nn

from latentvar import report
from latentvar.apps.digits.evaluate import edit_distance
from latentvar.apps.speech.data import (
    ALPHABET,
    MAX_SECONDS,
    N_MELS,
    SAMPLE_RATE,
    batch_of,
    decode_text,
    load_prompts,
    log_mel,
    mel_filterbank,
    word_spans,
)
from latentvar.apps.speech.model import SpeechReader
from latentvar.ctc import CTC, ctc_loss
from latentvar.io import atomic_write_bytes, atomic_write_json
from latentvar.runs import (
    Run,
    load_optimizer,
    module_tensors,
    restore_rng,
    rng_tensors,
    save_optimizer,
    tensors_under,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="runs/speech_data")
    parser.add_argument("--out", default="runs/ctc_speech")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=160, help="width of the convolutions and the GRU")
    parser.add_argument(
        "--checkpoint-every", type=int, default=0, help="steps between checkpoints (0: each epoch's end)"
    )
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    root = Path(args.data)
    if not any(root.rglob("core-sounds-en.txt.gz")):
        raise SystemExit(f"data: no Asterisk prompts under {root}; run scripts/ctc_speech_prepare.sh {root}")

    prompts = load_prompts(root)
    filters = mel_filterbank()
    order = torch.randperm(len(prompts), generator=torch.Generator().manual_seed(1234)).tolist()
    n_test = len(prompts) // 10
    test = [prompts[i] for i in order[:n_test]]
    train = [prompts[i] for i in order[n_test:] if len(prompts[i][1]) <= MAX_SECONDS * SAMPLE_RATE]
    train_items = [(log_mel(a, filters), t) for _, a, t in train]
    test_items = [(log_mel(a, filters), t) for _, a, t in test]
    seconds = sum(len(a) for _, a, _ in prompts) / SAMPLE_RATE
    print(
        f"{len(prompts)} transcribed prompts ({seconds / 60:.1f} min); "
        f"train {len(train)}, held out {len(test)}"
    )

    t0 = time.perf_counter()
    model = fit(out, train_items, args)
    train_seconds = time.perf_counter() - t0

    # held-out prompts: greedy CER, and forced alignment of the true transcript
    model.eval()
    with torch.no_grad():
        feats, lengths, targets, target_lengths = batch_of(test_items)
        frames = SpeechReader.frames(lengths)
        ctc = CTC(model(feats), frames)
        decoded = ctc.decode()
        alignment = ctc.forced_align(targets, target_lengths)
        marginals = ctc.posterior(targets, target_lengths).marginals
        loglik = ctc.log_prob(targets, target_lengths)
    errors = chars = 0
    rows = []
    for i, (_, text) in enumerate(test_items):
        hyp = decode_text(decoded.labels[i], int(decoded.lengths[i]))
        errors += edit_distance(hyp, text)
        chars += len(text)
        rows.append([test[i][0], text, hyp])
    metrics = {
        "prompts": len(prompts),
        "train_prompts": len(train),
        "held_out_prompts": len(test),
        "epochs": args.epochs,
        "train_seconds": train_seconds,
        "held_out_cer_greedy": errors / chars,
        "held_out_mean_loglik_per_char": float((loglik / target_lengths).mean()),
    }
    atomic_write_json(out / "metrics.json", metrics)
    print(metrics)
    sections = [report.table(["metric", "value"], [[k, v] for k, v in metrics.items()])]
    sections += figures(test, test_items, frames, alignment, marginals, out)
    sections.append(report.table(["prompt", "transcript", "greedy decoding"], rows[:40]))
    report.write(out / "report.html", "CTC forced alignment on held-out Asterisk prompts", sections)
    print(f"report: {out / 'report.html'}")


def epoch_order(train_items, batch: int, seed: int, epoch: int) -> list[int]:
    """Epoch ``epoch``'s order of the training items, a pure function of (seed, epoch): shuffled, then
    sorted by length within chunks of 8 batches (batches of similar length pad little)."""
    g = torch.Generator().manual_seed(seed * 1000 + epoch)
    perm = torch.randperm(len(train_items), generator=g).tolist()
    chunk = 8 * batch
    return [
        i
        for k in range(0, len(perm), chunk)
        for i in sorted(perm[k : k + chunk], key=lambda i: len(train_items[i][0]))
    ]


def fit(out: Path, train_items, args: argparse.Namespace) -> SpeechReader:
    """Adam with warm-up and cosine decay over ``args.epochs``, a checkpoint at each epoch's end (and every
    ``args.checkpoint_every`` steps): model, Adam's state and the RNG state of the GRU's dropout, so a
    killed run resumed with ``--resume`` ends as an unbroken one (checkpoints from before they held the
    step and Adam's state resume at their epoch, with fresh moments)."""
    run = Run(out, args.resume)
    torch.manual_seed(args.seed)
    model = SpeechReader(args.hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = math.ceil(len(train_items) / args.batch)
    total = args.epochs * steps_per_epoch
    start = 0
    if (saved := run.load()) is not None:
        model.load_state_dict(tensors_under(saved.tensors, "model"))
        load_optimizer(optimizer, saved.tensors)
        restore_rng(saved.tensors)
        start = saved.meta.get("step", saved.meta["epoch"] * steps_per_epoch)
    bar = run.progress(start, total, "speech ctc")
    for step in bar:
        epoch, first = divmod(step, steps_per_epoch)
        if step == start or first == 0:
            order = epoch_order(train_items, args.batch, args.seed, epoch)
        model.train()
        warm = min(1.0, (step + 1) / 100)
        for group in optimizer.param_groups:
            group["lr"] = args.lr * warm * 0.5 * (1 + math.cos(math.pi * step / total))
        k = first * args.batch
        feats, lengths, targets, target_lengths = batch_of(
            [train_items[i] for i in order[k : k + args.batch]]
        )
        log_probs = model(feats)
        loss = ctc_loss(
            log_probs.transpose(0, 1),
            targets,
            SpeechReader.frames(lengths),
            target_lengths,
            zero_infinity=True,
        )
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
        done = step + 1
        if done % steps_per_epoch == 0 or (args.checkpoint_every and done % args.checkpoint_every == 0):
            tensors = module_tensors(model, "model") | save_optimizer(optimizer) | rng_tensors()
            meta = {"kind": "ctc-speech", "epoch": done // steps_per_epoch, "step": done, "args": vars(args)}
            run.save(tensors, meta)
    bar.close()
    return model


def figures(test, test_items, frames, alignment, marginals, out: Path, count: int = 6) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    html = []
    for i in range(min(count, len(test_items))):
        feats, text = test_items[i]
        t = int(frames[i])
        fig, (ax, ax_post) = plt.subplots(2, 1, figsize=(min(16, 2 + t * 0.06), 5.2), sharex=True)
        ax.imshow(
            feats.T.numpy(),
            aspect="auto",
            origin="lower",
            cmap="viridis",
            extent=(0, len(feats) * 0.01, 0, N_MELS),
        )
        for j, (word, start, end) in enumerate(word_spans(text, alignment.spans[i])):
            left, right = start * 0.02, end * 0.02
            ax.axvspan(left, right, color="white", alpha=0.18 if j % 2 else 0.3)
            ax.axvline(left, color="white", lw=0.8)
            ax.text((left + right) / 2, N_MELS + 1, word, ha="center", va="bottom", fontsize=8, rotation=30)
        ax.set_ylabel("mel band")
        ax.set_title(f"{test[i][0]}: forced alignment of the transcript (word spans)", pad=22)
        heat = marginals[i, :t].T.numpy()
        ax_post.imshow(
            heat, aspect="auto", origin="lower", cmap="magma", extent=(0, t * 0.02, -0.5, len(ALPHABET) + 0.5)
        )
        ax_post.set_yticks(range(len(ALPHABET) + 1), ["∅", "␣", "'", *ALPHABET[2:]], fontsize=6)
        ax_post.set(xlabel="seconds", ylabel="P(z_t = c | x, y)")
        path = out / f"prompt_{i:02d}.png"
        png = report.figure_bytes(fig, dpi=100)  # closes the figure
        atomic_write_bytes(path, png)
        html.append(report.img(png, alt=text))
    return html


if __name__ == "__main__":
    main()
