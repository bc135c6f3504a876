"""AIS convergence on the digits RBMs of `python -m latentvar.apps.rbm --out DIR`: log Z of each saved model
(the best-on-val parameters in DIR/h<N>) by AIS at several numbers of steps, beside the exact value where
n_h <= 20, from the same base model as the app (independent pixels at the training data's log-odds).

    PYTHONPATH=src python -m latentvar.apps.rbm --out runs/rbm_digits
    PYTHONPATH=src python bench/rbm_digits_ais.py runs/rbm_digits [--steps 1000 10000 30000] [--chains 500]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from latentvar.apps.rbm.data import pixel_log_odds, split_digits
from latentvar.apps.rbm.evaluate import ais_log_z, exact_log_z
from latentvar.io import load_checkpoint
from latentvar.loopy.rbm import RBM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--steps", type=int, nargs="+", default=[1000, 10000, 30000])
    parser.add_argument("--chains", type=int, default=500)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    torch.set_num_threads(1)
    log_odds = pixel_log_odds(split_digits().train)
    print("| hidden | exact log Z | AIS steps × chains | AIS log Z | AIS − exact | ESS | seconds |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for folder in sorted(args.run.glob("h*"), key=lambda p: int(p.name[1:])):
        tensors, _ = load_checkpoint(folder)
        rbm = RBM(tensors["best.W"], tensors["best.visible_bias"], tensors["best.hidden_bias"])
        exact = exact_log_z(rbm)
        for steps in args.steps:
            z = ais_log_z(rbm, log_odds, args.chains, steps, torch.Generator().manual_seed(args.seed))
            diff = "-" if exact is None else f"{z['log_z'] - exact:+.4f}"
            shown = "-" if exact is None else f"{exact:.4f}"
            print(
                f"| {rbm.num_hidden} | {shown} | {steps} × {args.chains} | {z['log_z']:.4f} ± {z['stderr']:.4f} "
                f"| {diff} | {z['ess']:.0f} | {z['seconds']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
