"""HMM benchmark: latentvar.HMM against hmmlearn (CategoricalHMM) and pomegranate (DenseHMM) on identical
parameters and data. Checks agreement (log-likelihood and posteriors to 1e-4 relative, Viterbi paths),
times scoring / posteriors / Viterbi (median of several runs, ratios in this process) and measures the
peak memory of scoring in fresh subprocesses.

    PYTHONPATH=src python bench/hmm_bench.py [--repeats 3] [--cases 0,1,2] [--threads 1]

``--old-vs-new [REV]`` instead times this checkout's latentvar against the same modules at git revision REV
(default b17c4b5, main before the inference engine), imported side by side as ``latentvar_old``, with the
runs of the two interleaved in this one process (alternating which goes first), and prints median ratios.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributions as D

from latentvar import HMM

CASES = [  # (N sequences, T steps, K states, V symbols)
    (64, 1000, 32, 50),
    (1, 100_000, 8, 50),
    (256, 100, 256, 50),
]


def parameters(k: int, v: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    start = rng.dirichlet(np.ones(k))
    trans = rng.dirichlet(np.ones(k), size=k)
    emit = rng.dirichlet(np.ones(v), size=k)
    return start, trans, emit


def data(n: int, t: int, v: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, v, size=(n, t))


def median_time(fn, repeats: int) -> tuple[float, object]:
    out, times = None, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def ours(start, trans, emit):
    return HMM(
        torch.tensor(np.log(start)), torch.tensor(np.log(trans)), D.Categorical(probs=torch.tensor(emit))
    )


def hmmlearn_model(start, trans, emit):
    from hmmlearn.hmm import CategoricalHMM

    m = CategoricalHMM(n_components=len(start))
    m.startprob_, m.transmat_, m.emissionprob_ = start, trans, emit
    m.n_features = emit.shape[1]
    return m


def pomegranate_model(start, trans, emit):
    from pomegranate.distributions import Categorical
    from pomegranate.hmm import DenseHMM

    # pomegranate computes in float32 (its default; float64 parameters make its forward pass fail)
    f32 = torch.float32
    dists = [Categorical(probs=torch.tensor(e[None], dtype=f32)) for e in emit]
    return DenseHMM(
        dists,
        edges=torch.tensor(trans, dtype=f32),
        starts=torch.tensor(start, dtype=f32),
        ends=torch.ones(len(start)),
    )


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def run_case(n, t, k, v, repeats, skip_pomegranate_viterbi=False):
    start, trans, emit = parameters(k, v)
    y = data(n, t, v)
    yt = torch.tensor(y)
    model = ours(start, trans, emit)
    ref = hmmlearn_model(start, trans, emit)
    x, lengths = y.reshape(-1, 1), np.full(n, t)
    row: dict = {"case": f"N={n}, T={t}, K={k}, V={v}"}
    methods = ["sequential"] + (["parallel"] if k <= 16 else [])
    with torch.no_grad():
        for method in methods:  # compile the kernels once (numba caches them on disk; a one-time cost)
            model.log_prob(yt[:2, :20], method=method)
            warm = model.posterior(yt[:2, :20], method=method)
            _ = (warm.marginals, warm.mode)
        timings = {}
        for method in methods:
            timings[f"score/{method}"], lp = median_time(
                lambda m=method: model.log_prob(yt, method=m), repeats
            )
            timings[f"post/{method}"], post = median_time(
                lambda m=method: model.posterior(yt, method=m).marginals, repeats
            )
            timings[f"viterbi/{method}"], path = median_time(
                lambda m=method: model.posterior(yt, method=m).mode, repeats
            )
            row[f"agree/{method}"] = {"lp": lp, "post": post, "path": path}
    timings["score/hmmlearn"], ref_lp = median_time(lambda: ref.score(x, lengths), repeats)
    timings["post/hmmlearn"], ref_post = median_time(lambda: ref.predict_proba(x, lengths), repeats)
    timings["viterbi/hmmlearn"], (_, ref_path) = median_time(lambda: ref.decode(x, lengths), repeats)
    pm = pomegranate_model(start, trans, emit)
    xp = torch.tensor(y[..., None])
    with torch.no_grad():
        timings["score/pomegranate"], pm_lp = median_time(lambda: pm.log_probability(xp), repeats)
        timings["post/pomegranate"], pm_post = median_time(lambda: pm.predict_proba(xp), repeats)
        if not skip_pomegranate_viterbi:
            timings["viterbi/pomegranate"], pm_path = median_time(lambda: pm.viterbi(xp), repeats)
    checks = {}
    for method in methods:
        a = row.pop(f"agree/{method}")
        checks[method] = {
            "loglik_rel_vs_hmmlearn": rel(float(a["lp"].sum()), ref_lp),
            "posterior_max_abs_vs_hmmlearn": float(np.abs(a["post"].reshape(-1, k).numpy() - ref_post).max()),
            "viterbi_match_hmmlearn": bool((a["path"].reshape(-1).numpy() == ref_path).all()),
            "viterbi_score_rel_vs_hmmlearn": rel(
                float(model.log_joint(a["path"], yt).sum()),
                float(model.log_joint(torch.tensor(ref_path).reshape(n, t), yt).sum()),
            ),
            "loglik_rel_vs_pomegranate": rel(a["lp"].numpy(), pm_lp.double().numpy()),
            "posterior_max_abs_vs_pomegranate": float(
                np.abs(a["post"].numpy() - pm_post.double().numpy()).max()
            ),
        }
        if not skip_pomegranate_viterbi:
            checks[method]["viterbi_match_pomegranate"] = bool(
                (a["path"].numpy() == np.asarray(pm_path).reshape(n, t)).all()
            )
    row["timings_s"] = timings
    row["checks"] = checks
    return row


# -- old against new, interleaved in one process ---------------------------------------------------------

OLD_REV = "b17c4b5"  # main before latentvar.inference
OLD_FILES = (
    "hmm.py",
    "_hmm_kernels.py",
    "ctc.py",
    "semiring.py",
    "_checks.py",
    "core.py",
    "progress.py",
    "mixture.py",
)


def import_old(rev: str = OLD_REV):
    """The HMM and CTC modules as of git revision ``rev``, importable next to this checkout's as
    ``latentvar_old.hmm`` / ``latentvar_old.ctc`` (their own imports rewritten to latentvar_old)."""
    repo = Path(__file__).resolve().parent.parent
    root = Path(tempfile.mkdtemp(prefix="latentvar_old_"))
    pkg = root / "latentvar_old"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name in OLD_FILES:
        text = subprocess.run(
            ["git", "show", f"{rev}:src/latentvar/{name}"],
            capture_output=True,
            text=True,
            check=True,
            cwd=repo,
        ).stdout
        text = re.sub(r"\blatentvar\.", "latentvar_old.", text).replace(
            "from latentvar import", "from latentvar_old import"
        )
        (pkg / name).write_text(text)
    sys.path.insert(0, str(root))
    return importlib.import_module("latentvar_old.hmm"), importlib.import_module("latentvar_old.ctc")


def interleaved(fns: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, the runs interleaved and the order alternated every round; with
    functions named "old" and "new" also "ratio", the median over rounds of new / old."""
    for fn in fns.values():  # warm-up: numba loads or compiles its kernels, TorchScript scripts
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    out = {name: statistics.median(ts) for name, ts in times.items()}
    if {"old", "new"} <= set(times):  # paired: each round's ratio, robust to load that drifts between rounds
        out["ratio"] = statistics.median(n / o for n, o in zip(times["new"], times["old"], strict=True))
    return out


def hmm_tasks(n, t, k, v, old_hmm) -> tuple[dict, dict]:
    """(name -> model factory for old and new, task -> fn(factory)): the calls old and new are timed on."""
    start, trans, emit = parameters(k, v)
    yt = torch.tensor(data(n, t, v))
    li, lt, le = (torch.tensor(np.log(x)) for x in (start, trans, emit))

    def factory(cls):
        return lambda grad=False: cls(
            li.clone().requires_grad_(grad), lt.clone().requires_grad_(grad), D.Categorical(logits=le)
        )

    models = {"old": factory(old_hmm.HMM), "new": factory(HMM)}
    tasks = {}
    for method in ["sequential"] + (["parallel"] if k <= 16 else []):
        tasks[f"score ({method})"] = lambda m, method=method: _nograd(lambda: m().log_prob(yt, method=method))
        tasks[f"marginals ({method})"] = lambda m, method=method: _nograd(
            lambda: m().posterior(yt, method=method).marginals
        )
        tasks[f"viterbi ({method})"] = lambda m, method=method: _nograd(
            lambda: m().posterior(yt, method=method).mode
        )
    tasks["score + gradient"] = lambda m: m(True).log_prob(yt).sum().backward()
    tasks["Baum-Welch iteration"] = lambda m: m().fit(yt, max_iter=1)
    if t < 10_000:  # FFBS is a Python loop over steps in both versions: minutes at T = 100,000
        tasks["posterior sample (8)"] = lambda m: _nograd(lambda: m().posterior(yt).sample((8,)))
    return models, tasks


def old_vs_new_rows(old_hmm, repeats: int, cases) -> list[list]:
    rows = []
    for n, t, k, v in cases:
        models, tasks = hmm_tasks(n, t, k, v, old_hmm)
        for task, fn in tasks.items():
            reps = repeats if t < 10_000 or "parallel" not in task else max(3, repeats // 2)
            med = interleaved({name: (lambda f=fn, m=m: f(m)) for name, m in models.items()}, reps)
            rows.append([f"N={n}, T={t}, K={k}", task, med["old"], med["new"], med["ratio"]])
            print(
                f"| {rows[-1][0]} | {task} | {med['old'] * 1e3:.1f} | {med['new'] * 1e3:.1f} | "
                f"{med['ratio']:.2f} |",
                flush=True,
            )
    return rows


def _nograd(fn):
    with torch.no_grad():
        return fn()


def old_vs_new(rev: str, repeats: int, cases) -> list[list]:
    old_hmm, _ = import_old(rev)
    print(f"latentvar at {rev} (old) against this checkout (new); load average {os.getloadavg()}")
    print("| case | task | old (ms) | new (ms) | new / old (median of paired rounds) |")
    print("|---|---|---|---|---|")
    rows = old_vs_new_rows(old_hmm, repeats, cases)
    print(f"load average after: {os.getloadavg()}")
    return rows


PEAK_SNIPPET = """
import sys, numpy as np, torch
sys.path.insert(0, "bench"); import hmm_bench as B
torch.set_num_threads({threads})
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
n, t, k, v = {case}
start, trans, emit = B.parameters(k, v); y = B.data(n, t, v)
which = "{which}"
if which == "hmmlearn":
    m = B.hmmlearn_model(start, trans, emit); x = y.reshape(-1, 1); lengths = np.full(n, t)
    m.score(x[:10], [10])
    run = lambda: m.score(x, lengths)
else:
    m = B.ours(start, trans, emit); yt = torch.tensor(y)
    m.log_prob(yt[:1, :10], method="{method}")
    run = lambda: m.log_prob(yt, method="{method}")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak resident set size (VmHWM)
before = status("VmRSS:")
with torch.no_grad():
    run()
print(status("VmHWM:") - before)
"""


def peak_mib(case, which, method, threads) -> float:
    code = PEAK_SNIPPET.format(case=tuple(case), which=which, method=method, threads=threads)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default="0,1,2", help="comma-separated indices into CASES ('' for none)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--skip-pomegranate-viterbi",
        action="store_true",
        help="leave out pomegranate's Viterbi on the T = 100,000 case (it runs for about 9 minutes)",
    )
    parser.add_argument("--memory", action="store_true", help="also the peak-memory table of scoring")
    parser.add_argument(
        "--old-vs-new", nargs="?", const=OLD_REV, default=None, metavar="REV",
        help=f"time this checkout against latentvar at git revision REV (default {OLD_REV}), interleaved",
    )  # fmt: skip
    args = parser.parse_args()
    if args.old_vs_new:
        torch.set_num_threads(args.threads)
        cases = [CASES[int(c)] for c in args.cases.split(",") if c]
        rows = old_vs_new(args.old_vs_new, args.repeats, cases)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
        return
    # importing pomegranate sets torch's thread count to the core count (through its OpenMP runtime): import
    # the references first, then fix the threads for everybody
    import hmmlearn.hmm  # noqa: F401
    import pomegranate.hmm  # noqa: F401

    torch.set_num_threads(args.threads)
    rows = []
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"threads {args.threads}"
    )
    for i in (int(c) for c in args.cases.split(",") if c):
        n, t, k, v = CASES[i]
        # the T = 100,000 case runs for tens of seconds per call on the slowest paths: one timed run each
        row = run_case(
            n, t, k, v, 1 if t >= 10_000 else args.repeats, t >= 10_000 and args.skip_pomegranate_viterbi
        )
        row["peak_scoring_MiB"] = {
            "latentvar sequential": peak_mib(CASES[i], "ours", "sequential", args.threads),
            "hmmlearn": peak_mib(CASES[i], "hmmlearn", "", args.threads),
        }
        if k <= 16:
            row["peak_scoring_MiB"]["latentvar parallel"] = peak_mib(
                CASES[i], "ours", "parallel", args.threads
            )
        rows.append(row)
        print_row(row)
        print("peak scoring memory (MiB above the resident set before the call):", row["peak_scoring_MiB"])
    if args.memory:
        print_memory(args.threads)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


def print_memory(threads: int) -> None:
    """Peak resident memory added by one scoring call (fresh subprocess each), as T grows with N, K fixed."""
    print("\n### peak memory of scoring, N=64, K=32, V=50 (MiB above the resident set before the call)")
    print("| T | latentvar sequential | hmmlearn | an (N, T, K) float64 tensor would be |")
    print("|---|---|---|---|")
    for t in (1000, 10_000, 50_000):
        case = (64, t, 32, 50)
        ours_mib, ref_mib = (
            peak_mib(case, "ours", "sequential", threads),
            peak_mib(case, "hmmlearn", "", threads),
        )
        print(f"| {t} | {ours_mib:.1f} | {ref_mib:.1f} | {64 * t * 32 * 8 / 2**20:.0f} |")


def _fmt(x) -> str:
    return "—" if x is None else f"{x:.4f}"


def _ratio(x, best) -> str:
    return "—" if x is None else f"{x / best:.1f}×"


def print_row(row) -> None:
    tm = row["timings_s"]
    print(f"\n### {row['case']}")
    print(
        "| task | latentvar seq (s) | latentvar parallel (s) | hmmlearn (s) | pomegranate (s) | "
        "hmmlearn / latentvar best | pomegranate / latentvar best |"
    )
    print("|---|---|---|---|---|---|---|")
    for task in ("score", "post", "viterbi"):
        seq, par = tm.get(f"{task}/sequential"), tm.get(f"{task}/parallel")
        best = min(x for x in (seq, par) if x is not None)
        hl, pg = tm.get(f"{task}/hmmlearn"), tm.get(f"{task}/pomegranate")
        cells = [_fmt(seq), _fmt(par), _fmt(hl), _fmt(pg), _ratio(hl, best), _ratio(pg, best)]
        print(f"| {task} | " + " | ".join(cells) + " |")
    print("checks:", json.dumps(row["checks"]))


if __name__ == "__main__":
    main()
