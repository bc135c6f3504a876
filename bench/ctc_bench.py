"""CTC speed and memory against torch's native CPU ctc_loss, in the same process.

    PYTHONPATH=src python bench/ctc_bench.py [--repeats 7] [--threads 1]

Prints a markdown table:
- loss forward + backward (gradient w.r.t. the logits before log_softmax) at (B=16, T=200, C=30, L=50),
  (B=8, T=1000, C=80, L=200) and (B=1, T=2000, C=30, L=100): torch.nn.functional.ctc_loss, latentvar.ctc_loss
  with backend 'auto' (on CPU: the compiled kernels), 'compiled' (numba kernels of latentvar.ctc._kernels),
  'native' (torch's kernels with latentvar's exact-gradient correction) and 'latentvar' (the own recursion:
  TorchScript forward, hand-written forward-backward gradient);
- loss forward only (no gradient): torch, 'auto' (= 'compiled' on CPU), 'latentvar';
- forced alignment of a batch of 32 vs aligning the 32 one by one;
- peak memory (max RSS growth, each in a fresh process) of a no-gradient forward at a long input.
Runs of the compared functions are interleaved, and each time is the median over ``repeats`` rounds; every
function runs twice before timing, so TorchScript's and numba's first-call compilation is not timed.

``--old-vs-new [REV]`` instead times this checkout's latentvar.ctc against latentvar.ctc at git revision
REV (default b17c4b5, main before latentvar.inference), imported side by side (`hmm_bench.import_old`),
interleaved in this one process, and prints median ratios new / old.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from latentvar.ctc import CTC, ctc_loss

# the two target sizes, and one small batch with many frames (why 'auto' dispatches gradients to torch)
SIZES = [(16, 200, 30, 50), (8, 1000, 80, 200), (1, 2000, 30, 100)]


def case(b, t, c, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, t, c, generator=g)
    targets = torch.randint(1, c, (b, n), generator=g)
    input_lengths = torch.full((b,), t)
    target_lengths = torch.full((b,), n)
    return logits, targets, input_lengths, target_lengths


def interleaved_medians(fns: dict, repeats: int) -> dict[str, float]:
    for fn in fns.values():  # warm-up (TorchScript compiles on its first calls)
        fn()
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def fwd_bwd(fn, logits, targets, il, tl, **kw):
    def run():
        x = logits.clone().requires_grad_()
        fn(x.log_softmax(-1).transpose(0, 1), targets, il, tl, reduction="sum", **kw).backward()

    return run


def fwd(fn, logits, targets, il, tl, **kw):
    def run():
        with torch.no_grad():
            fn(logits.log_softmax(-1).transpose(0, 1), targets, il, tl, reduction="sum", **kw)

    return run


def loss_rows(repeats: int) -> list[list]:
    rows = []
    for b, t, c, n in SIZES:
        data = case(b, t, c, n)
        names = {
            "torch": "torch.nn.functional.ctc_loss",
            "auto": "latentvar.ctc_loss (auto: on CPU the compiled kernels)",
            "compiled": "latentvar.ctc_loss backend='compiled' (numba kernels)",
            "native": "latentvar.ctc_loss backend='native' (torch's kernels + exact grad)",
            "own": "latentvar.ctc_loss backend='latentvar' (own DP)",
        }
        backends = {"auto": "auto", "compiled": "compiled", "native": "native", "own": "latentvar"}
        med = interleaved_medians(
            {"torch": fwd_bwd(F.ctc_loss, *data)}
            | {key: fwd_bwd(ctc_loss, *data, backend=be) for key, be in backends.items()},
            repeats,
        )
        fmed = interleaved_medians(
            {"torch": fwd(F.ctc_loss, *data)}
            | {key: fwd(ctc_loss, *data, backend=backends[key]) for key in ("auto", "own")},
            repeats,
        )
        size = f"B={b} T={t} C={c} L={n}"
        rows += [[f"loss fwd+bwd, {size}", names[k], v, v / med["torch"]] for k, v in med.items()]
        rows += [[f"loss fwd (no grad), {size}", names[k], v, v / fmed["torch"]] for k, v in fmed.items()]
    return rows


def alignment_rows(repeats: int) -> list[list]:
    b, t, c, n = 32, 200, 30, 50
    logits, targets, il, tl = case(b, t, c, n, seed=1)
    lp = logits.log_softmax(-1)

    def batched():
        CTC(lp, il).forced_align(targets, tl)

    def one_by_one():
        for i in range(b):
            CTC(lp[i : i + 1], il[i : i + 1]).forced_align(targets[i : i + 1], tl[i : i + 1])

    med = interleaved_medians({"one": one_by_one, "batch": batched}, max(3, repeats // 2))
    size = f"B={b} T={t} C={c} L={n}"
    return [
        [f"forced alignment, {size}", "32 calls, one sequence each", med["one"], 1.0],
        [f"forced alignment, {size}", "one batched call", med["batch"], med["batch"] / med["one"]],
    ]


MEMORY_SNIPPET = """
import resource, sys, torch
from latentvar.ctc import ctc_loss
import torch.nn.functional as F
torch.set_num_threads(1)
b, t, c, n = 8, 4000, 40, 800
lp = torch.randn(b, t, c).log_softmax(-1)
tg = torch.randint(1, c, (b, n)); il = torch.full((b,), t); tl = torch.full((b,), n)
with torch.no_grad():  # warm the code paths on a tiny input first
    small = lp[:, :10]
    F.ctc_loss(small.transpose(0, 1), tg[:, :2], torch.full((b,), 10), torch.full((b,), 2))
    backend = "latentvar" if sys.argv[1] == "own" else "compiled"
    ctc_loss(small.transpose(0, 1), tg[:, :2], torch.full((b,), 10), torch.full((b,), 2), backend=backend)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with torch.no_grad():
    if sys.argv[1] == "torch":
        F.ctc_loss(lp.transpose(0, 1), tg, il, tl, reduction="none")
    else:
        ctc_loss(lp.transpose(0, 1), tg, il, tl, reduction="none", backend=backend)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def memory_rows() -> list[list]:
    rows = []
    alpha_mib = 8 * 4000 * (2 * 800 + 1) * 4 / 2**20
    names = {
        "torch": "torch.nn.functional.ctc_loss",
        "own": "latentvar own DP",
        "compiled": "latentvar compiled kernels (auto on CPU)",
    }
    for who, name in names.items():
        out = subprocess.run(
            [sys.executable, "-c", MEMORY_SNIPPET, who], capture_output=True, text=True, check=True
        )
        grown = float(out.stdout.strip())
        rows.append(
            [
                f"peak RSS growth, no-grad loss, B=8 T=4000 C=40 L=800 (α would be {alpha_mib:.0f} MiB)",
                name,
                grown,
                None,
            ]
        )
    return rows


def ctc_tasks(data) -> dict:
    """task -> fn(module): the calls old and new are timed on."""
    logits, targets, il, tl = data
    lp = logits.log_softmax(-1)
    return {
        "loss fwd+bwd (auto)": lambda m: fwd_bwd(m.ctc_loss, *data)(),
        "loss fwd+bwd (own DP)": lambda m: fwd_bwd(m.ctc_loss, *data, backend="latentvar")(),
        "loss fwd, no grad (own DP)": lambda m: fwd(m.ctc_loss, *data, backend="latentvar")(),
        "forced alignment (batch)": lambda m: m.CTC(lp, il).forced_align(targets, tl),
        "posterior marginals": lambda m: m.CTC(lp, il).posterior(targets, tl).marginals,
        "posterior sample (8)": lambda m: m.CTC(lp, il).posterior(targets, tl).sample((8,)),
    }


def old_vs_new_rows(old_ctc, repeats: int) -> list[list]:
    """The same calls through the old and the new module, interleaved (alternating which goes first)."""
    import latentvar.ctc as new_ctc
    from hmm_bench import interleaved

    rows = []
    for b, t, c, n in SIZES:
        tasks = ctc_tasks(case(b, t, c, n))
        for task, fn in tasks.items():
            med = interleaved({"old": lambda f=fn: f(old_ctc), "new": lambda f=fn: f(new_ctc)}, repeats)
            rows.append([f"B={b} T={t} C={c} L={n}", task, med["old"], med["new"], med["ratio"]])
            print(
                f"| {rows[-1][0]} | {task} | {med['old'] * 1e3:.1f} | {med['new'] * 1e3:.1f} | "
                f"{med['ratio']:.2f} |",
                flush=True,
            )
    b, t, c, n = 32, 200, 30, 50
    logits, targets, il, tl = case(b, t, c, n, seed=1)
    lp = logits.log_softmax(-1)

    def one_by_one(m):
        for i in range(b):
            m.CTC(lp[i : i + 1], il[i : i + 1]).forced_align(targets[i : i + 1], tl[i : i + 1])

    med = interleaved({"old": lambda: one_by_one(old_ctc), "new": lambda: one_by_one(new_ctc)}, repeats)
    rows.append([f"B={b} T={t} C={c} L={n}", "forced alignment, 32 calls of one", *med.values()])
    print(f"| {rows[-1][0]} | {rows[-1][1]} | {med['old'] * 1e3:.1f} | {med['new'] * 1e3:.1f} | "
          f"{med['ratio']:.2f} |", flush=True)  # fmt: skip
    return rows


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="Also write the rows here.")
    parser.add_argument(
        "--old-vs-new", nargs="?", const="b17c4b5", default=None, metavar="REV",
        help="time this checkout against latentvar.ctc at git revision REV (default b17c4b5), interleaved",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.old_vs_new:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from hmm_bench import import_old

        _, old_ctc = import_old(args.old_vs_new)
        print(f"latentvar.ctc at {args.old_vs_new} (old) against this checkout (new); load {os.getloadavg()}")
        print("| case | task | old (ms) | new (ms) | new / old (median of paired rounds) |")
        print("|---|---|---|---|---|")
        rows = old_vs_new_rows(old_ctc, args.repeats)
        print(f"load average after: {os.getloadavg()}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
        return
    started, load_before = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()
    rows = loss_rows(args.repeats) + alignment_rows(args.repeats) + memory_rows()
    print(f"started {started}; load average before {load_before}, after {os.getloadavg()}")
    print(
        f"machine: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}, {args.threads} thread(s)"
    )
    print("| what | implementation | median | ratio |")
    print("|---|---|---|---|")
    for what, impl, value, ratio in rows:
        shown = f"{value:.1f} MiB" if what.startswith("peak") else f"{value * 1e3:.1f} ms"
        print(f"| {what} | {impl} | {shown} | {'' if ratio is None else f'{ratio:.2f}×'} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
