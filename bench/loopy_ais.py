"""AIS estimates of log Z on Ising / Potts grids against exact values, and their cost.

    PYTHONPATH=src python bench/loopy_ais.py [--big-steps 1000 10000] [--chains 64] [--seed 0] [--moves gibbs]

(The fixed-schedule AIS of `ais_log_partition(model, num_steps, num_chains)`; ``--moves gibbs``, the
default here, is the sampler the recorded tables used. The adaptive estimator: bench/ais_adaptive.py.)

- Small and narrow grids, where log Z is exact (the transfer matrix): 4×4 and 10×10 Ising at couplings
  0.2 / 0.3, 0.4407 (critical) and 0.6 / 0.8, a 6×6 3-state Potts grid with random potentials; AIS with
  1000 linear steps × ``chains`` chains.
- A 64×64 Ising torus, where nothing is exact: AIS per site against Onsager's infinite-lattice value
  (the torus differs from it by less than 1e-5 per site away from the critical point), with
  ``big-steps`` steps each, 32 chains.

Each row: the exact value, AIS estimate ± its delta-method stderr, the error in stderrs, the effective
number of chains (ESS; near 1 means one chain carries the estimate and the stderr is not to be trusted),
and the wall time of the AIS run on this machine.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from latentvar.estimate.partition import ais_log_partition
from latentvar.loopy import GridMRF, onsager_log_partition_per_site


def run(model, steps: int, chains: int, seed: int, moves: str):
    start = time.perf_counter()
    est = ais_log_partition(model, steps, chains, generator=torch.Generator().manual_seed(seed), moves=moves)
    return (
        float(est.estimate[0]),
        float(est.stderr[0]),
        float(est.extra["ess"][0]),
        time.perf_counter() - start,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--big-steps", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--chains", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--moves", default="gibbs", choices=["gibbs", "auto", "swendsen-wang"])
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    g = torch.Generator().manual_seed(123)
    a = torch.randn(3, 3, generator=g, dtype=torch.float64)
    potts = GridMRF(torch.randn(6, 6, 3, generator=g, dtype=torch.float64) * 0.5, (a + a.T) * 0.5)
    small = [(f"Ising 4×4, K = {k}", GridMRF.ising(4, 4, k)) for k in (0.2, 0.4407, 0.8)]
    small += [(f"Ising 10×10, K = {k}", GridMRF.ising(10, 10, k)) for k in (0.3, 0.4407, 0.6)]
    small += [("Potts K = 3, 6×6, random potentials", potts)]
    print(f"load {os.getloadavg()[0]:.1f}; AIS: 1000 linear steps × {args.chains} chains, seed {args.seed}\n")
    print("| grid | exact log Z | AIS | error / stderr | ESS | time |\n|---|---:|---:|---:|---:|---:|")
    for name, model in small:
        exact = float(model.log_partition())
        est, se, ess, seconds = run(model, 1000, args.chains, args.seed, args.moves)
        print(
            f"| {name} | {exact:.4f} | {est:.4f} ± {se:.4f} | {(est - exact) / se:+.1f} | {ess:.1f} | {seconds:.1f} s |"
        )
    print("\n64×64 Ising torus, 32 chains, per site (log Z / 4096):\n")
    print(
        "| K | Onsager | steps | AIS | error | stderr | ESS | time |\n|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    for k in (0.3, 0.4407, 0.6):
        onsager = onsager_log_partition_per_site(k)
        for steps in args.big_steps:
            est, se, ess, seconds = run(
                GridMRF.ising(64, 64, k, periodic=True), steps, 32, args.seed, args.moves
            )
            n = 64 * 64
            print(
                f"| {k} | {onsager:.6f} | {steps} | {est / n:.6f} | {est / n - onsager:+.6f} | {se / n:.6f} "
                f"| {ess:.1f} | {seconds:.0f} s |"
            )


if __name__ == "__main__":
    main()
