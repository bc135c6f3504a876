"""Forced alignment of long inputs in bounded memory: peak RSS of `CTC.forced_align(memory="bounded")`
(checkpointed Viterbi, `latentvar.ctc.align`) against the plain stored-table alignment (memory="full").

    PYTHONPATH=src python bench/ctc_align_memory.py [--frames 100000] [--tokens 2000] [--batch 2]

Each case runs in a fresh process, which reports its peak resident set size (ru_maxrss) and its RSS just
before aligning (inputs built, torch and latentvar imported); the table prints both, the growth, the time,
and the size of the plain alignment's (b, t, 2l + 1) table. The plain alignment runs at a tenth of the
frames (its table at full length is the number shown, beyond the 2 GiB budget); the bounded one at full
length and at the tenth, where both paths are also compared for equality. Random log-softmax inputs,
C = 30 classes, float32, targets of distinct-neighbour labels (no forced blanks), every sequence full length.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import torch


def child(frames: int, tokens: int, batch: int, memory: str, seed: int = 0) -> None:
    from latentvar.ctc import CTC

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(seed)
    log_probs = torch.randn(batch, frames, 30, generator=g).log_softmax(-1)
    targets = torch.randint(1, 30, (batch, tokens), generator=g)
    model = CTC(log_probs, torch.full((batch,), frames))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    out = model.forced_align(targets, torch.full((batch,), tokens), memory=memory)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    digest = int((out.path.long() * torch.arange(frames)).sum()) % 1_000_003  # to compare the two paths
    print(json.dumps({"before": before, "peak": peak, "seconds": seconds, "digest": digest,
                      "score": out.score.tolist()}))  # fmt: skip


def run(frames, tokens, batch, memory) -> dict:
    cmd = [sys.executable, __file__, "--child", memory, "--frames", str(frames), "--tokens", str(tokens)]
    cmd += ["--batch", str(batch)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--child", choices=["full", "bounded"])
    args = parser.parse_args()
    if args.child:
        child(args.frames, args.tokens, args.batch, args.child)
        return
    b, t, n = args.batch, args.frames, args.tokens
    small_t, small_n = t // 10, n // 10
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, one thread")
    print(f"command: PYTHONPATH=src python bench/ctc_align_memory.py --frames {t} --tokens {n} --batch {b}\n")
    print(
        "| memory | batch | frames | tokens | plain table (MiB) | RSS before (MiB) | peak RSS (MiB) | growth (MiB) | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    rows = [("bounded", t, n), ("bounded", small_t, small_n), ("full", small_t, small_n)]
    results = {}
    for memory, frames, tokens in rows:
        r = run(frames, tokens, b, memory)
        results[(memory, frames)] = r
        table = b * frames * (2 * tokens + 1) * 4 / 2**20
        print(f"| {memory} | {b} | {frames:,} | {tokens:,} | {table:,.0f} | {r['before']:,.0f} | {r['peak']:,.0f} "
              f"| {r['peak'] - r['before']:,.0f} | {r['seconds']:.1f} |")  # fmt: skip
    same = results[("bounded", small_t)]["digest"] == results[("full", small_t)]["digest"]
    same &= results[("bounded", small_t)]["score"] == results[("full", small_t)]["score"]
    print(f"\nbounded path == plain path at {small_t:,} frames: {same}")
    print(f"peak RSS of the bounded alignment at {t:,} frames x {n:,} tokens x batch {b}: "
          f"{results[('bounded', t)]['peak']:,.0f} MiB (budget 2,048 MiB)")  # fmt: skip


if __name__ == "__main__":
    main()
