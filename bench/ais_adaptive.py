"""Adaptive AIS / SMC at its defaults against exact answers, beside the old fixed schedule at equal cost.

    PYTHONPATH=src python bench/ais_adaptive.py [--images 4] [--dz 2 16 64] [--sigma 1 0.5 0.3 0.1 0.05]
                                               [--ising-seeds 3] [--torus-chains 32] [--threads 1]

1. LinearGaussian, d_y = 256, W_ij ~ N(0, 1/16), b ~ N(0, 1) (`benchmark_linear_gaussian`) at each d_z and
   noise σ: ``estimate.ais(model, y)`` (the defaults) against the exact log P(y) of ``--images`` simulated
   images -- mean and max |error|, mean reported stderr, wall time, chain-transitions (``extra["cost"]``)
   -- and, in the same process, the old call (sigmoid schedule, 64 chains, 5 leapfrog steps) given the
   same number of chain-transitions (its num_steps = cost / 64; the adaptive runs draw L with mean 5,
   so the gradient evaluations match in expectation).
2. Ising 10×10 at K = 0.6 (exact log Z by the transfer matrix): ``ais_log_partition(model)`` over
   ``--ising-seeds`` seeds beside the old 1000 linear steps × 64 chains.
3. A 64×64 Ising torus at K = 0.6 against Onsager's infinite-lattice log Z (the torus is within 1e-5 per
   site of it away from K_c): the adaptive estimator with ``--torus-chains`` chains, its error in
   reported stderrs.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from latentvar import estimate
from latentvar.apps.images.linear_gaussian import benchmark_linear_gaussian
from latentvar.estimate.partition import ais_log_partition
from latentvar.generator import LinearGaussian
from latentvar.loopy import GridMRF, onsager_log_partition_per_site

CPU_TIMES: list[float] = []


def timed(fn):
    """(result, wall seconds); the process CPU seconds go to CPU_TIMES (on a shared machine the wall time
    is inflated by other jobs; with one torch thread CPU seconds ≈ the wall time on an idle core)."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    CPU_TIMES.append(time.process_time() - cpu)
    return out, time.perf_counter() - start


def linear_gaussian(args) -> None:
    print("\n| d_z | σ | new: mean / max \\|err\\| | new stderr | new wall (CPU) | cost | old (sigmoid, equal "
          "cost): mean / max \\|err\\| | old wall (CPU) | new diagnostic |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for d_z in args.dz:
        base = benchmark_linear_gaussian(d_z=d_z)
        for sigma in args.sigma:
            model = LinearGaussian(base.W, base.b, sigma)
            torch.manual_seed(args.seed)
            _, y = model.sample((args.images,))
            exact = model.log_prob(y)
            new, t_new = timed(lambda m=model, y=y: estimate.ais(m, y))
            c_new = CPU_TIMES[-1]
            err = (new.estimate - exact).abs()
            cost = int(new.extra["cost"])
            steps = max(1, cost // 64)
            old, t_old = timed(lambda m=model, y=y, s=steps: estimate.ais(m, y, s, 64))
            old_err, c_old = (old.estimate - exact).abs(), CPU_TIMES[-1]
            diag = new.diagnostic if len(new.diagnostic) < 60 else new.diagnostic[:57] + "..."
            print(
                f"| {d_z} | {sigma:g} | {err.mean():.3f} / {err.max():.3f} | {new.stderr.mean():.3f} | "
                f"{t_new:.1f} s ({c_new:.1f}) | {cost:,} | {old_err.mean():.3f} / {old_err.max():.3f} "
                f"(T = {steps}) | {t_old:.1f} s ({c_old:.1f}) | {diag} |",
                flush=True,
            )


def ising(args) -> None:
    model = GridMRF.ising(10, 10, 0.6)
    exact = float(model.log_partition())
    print(f"\nIsing 10×10, K = 0.6, exact log Z = {exact:.4f}\n")
    print(
        "| estimator | seed | error | stderr | error / stderr | cost (chain-steps) | wall (CPU) | diagnostic |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for seed in range(args.ising_seeds):
        gen = torch.Generator().manual_seed(seed)
        new, t = timed(lambda g=gen: ais_log_partition(model, generator=g))
        e, s = float(new.estimate[0]) - exact, float(new.stderr[0])
        print(f"| adaptive (defaults) | {seed} | {e:+.4f} | {s:.4f} | {e / s:+.1f} | {new.extra['cost']:,} | "
              f"{t:.1f} s ({CPU_TIMES[-1]:.1f}) | {new.diagnostic[:70]} |")  # fmt: skip
        gen = torch.Generator().manual_seed(seed)
        old, t = timed(lambda g=gen: ais_log_partition(model, 1000, 64, generator=g, moves="gibbs"))
        e, s = float(old.estimate[0]) - exact, float(old.stderr[0])
        print(f"| old: 1000 linear × 64, Gibbs | {seed} | {e:+.4f} | {s:.4f} | {e / s:+.1f} | 64,000 | {t:.1f} s "
              f"({CPU_TIMES[-1]:.1f}) | {old.diagnostic[:70]} |")  # fmt: skip


def torus(args) -> None:
    k, n = 0.6, 64 * 64
    onsager = onsager_log_partition_per_site(k) * n
    model = GridMRF.ising(64, 64, k, periodic=True)
    gen = torch.Generator().manual_seed(0)
    est, t = timed(lambda: ais_log_partition(model, num_chains=args.torus_chains, generator=gen))
    e, s = float(est.estimate[0]) - onsager, float(est.stderr[0])
    print(f"\n64×64 torus, K = 0.6: Onsager log Z = {onsager:.3f}; adaptive ({args.torus_chains} chains): "
          f"error {e:+.3f} nats ({e / n:+.2e} per site), stderr {s:.3f}, error / stderr {e / s:+.1f}, "
          f"{est.extra['num_temperatures']} temperatures, cost {est.extra['cost']:,}, {t:.0f} s "
          f"({CPU_TIMES[-1]:.0f} s CPU); {est.diagnostic}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--dz", type=int, nargs="+", default=[2, 16, 64])
    ap.add_argument("--sigma", type=float, nargs="+", default=[1.0, 0.5, 0.3, 0.1, 0.05])
    ap.add_argument("--ising-seeds", type=int, default=3)
    ap.add_argument("--torus-chains", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", nargs="*", default=[], choices=["lg", "ising", "torus"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} threads, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    if "lg" not in args.skip:
        linear_gaussian(args)
    if "ising" not in args.skip:
        ising(args)
    if "torus" not in args.skip:
        torus(args)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
