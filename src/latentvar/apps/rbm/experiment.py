"""`python -m latentvar.apps.rbm --out DIR`: train RBMs on the binarised digits by PCD (one run folder per
hidden size, DIR/h<N>, resumable with --resume), estimate their test log-likelihood by AIS (exactly too where
n_h <= 20), and write DIR/results.json and DIR/report.html.

Defaults chosen on val only (500 epochs, the best of the val checks every 25 epochs; val log p(v) in
nats, exact for 16 hidden units, AIS with 100 chains × 1000 steps for 100):

    lr      16 hidden        100 hidden
    0.005   -18.818 (500)    -
    0.01    -18.384 (475)    -16.913 (425)
    0.02    -18.327 (475)    -16.747 (325)    <- the default
    0.05    -19.649 (450)    -
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, fields
from pathlib import Path

import torch

from latentvar.apps.rbm import report
from latentvar.apps.rbm.data import SPLIT_SEED, THRESHOLD, pixel_log_odds, split_digits
from latentvar.apps.rbm.evaluate import independent_pixels_log_likelihood, log_likelihood
from latentvar.apps.rbm.train import PCDConfig, train
from latentvar.io import atomic_write_json
from latentvar.runs import step_generator

EVAL_STEP = 2**32 - 2  # the test AIS's and the report's stream, apart from every training epoch's


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m latentvar.apps.rbm", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument(
        "--hidden", type=int, nargs="+", default=[16, 100], help="hidden sizes, one model each"
    )
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    defaults = PCDConfig()
    for f in fields(PCDConfig):
        if f.name not in ("hidden", "seed"):
            parser.add_argument(
                f"--{f.name.replace('_', '-')}",
                type=type(getattr(defaults, f.name)),
                default=getattr(defaults, f.name),
            )
    parser.add_argument("--ais-chains", type=int, default=500, help="AIS chains for the test log Z")
    parser.add_argument("--ais-steps", type=int, default=10000, help="AIS steps (a linear schedule)")
    parser.add_argument("--gibbs-steps", type=int, nargs="+", default=[1, 10, 100, 1000])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images of each split")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resume", action="store_true", help="continue the checkpoints in DIR/h<N>")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    data = split_digits(args.limit)
    log_odds = pixel_log_odds(data.train)
    models, gallery = [], []
    for hidden in args.hidden:
        config = PCDConfig(
            hidden=hidden,
            seed=args.seed,
            **{f.name: getattr(args, f.name) for f in fields(PCDConfig) if f.name not in ("hidden", "seed")},
        )
        t0 = time.perf_counter()
        trained = train(
            args.out / f"h{hidden}", data.train, data.val, config, args.epochs, args.resume, not args.quiet
        )
        train_seconds = time.perf_counter() - t0
        g = step_generator(args.seed, EVAL_STEP)
        test = log_likelihood(trained.best, data.test, log_odds, args.ais_chains, args.ais_steps, g)
        models.append(
            {
                "hidden": hidden,
                "config": asdict(config),
                "epochs": trained.epochs,
                "best_epoch": trained.best_epoch,
                "history": trained.history,
                "test": test,
                "train_seconds_this_call": train_seconds,
            }
        )
        chains = report.gibbs_gallery(trained.best, log_odds, args.gibbs_steps, 20, g)
        gallery.append(
            {"hidden": hidden, "W": trained.best.W, "chains": chains, "fantasy": trained.fantasy[:20]}
        )
        print(summary_line(models[-1]))
    results = {
        "data": {
            "train": len(data.train),
            "val": len(data.val),
            "test": len(data.test),
            "threshold": THRESHOLD,
            "split_seed": SPLIT_SEED,
        },
        "independent_pixels": {
            "val": independent_pixels_log_likelihood(data.val, log_odds),
            "test": independent_pixels_log_likelihood(data.test, log_odds),
        },
        "models": models,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "wall_seconds": time.perf_counter() - t_start,
    }
    atomic_write_json(args.out / "results.json", results)
    report.write(args.out, results, gallery, data.test)
    print(f"report: {args.out / 'report.html'} ({results['wall_seconds']:.1f} s)")
    return results


def summary_line(model: dict) -> str:
    t, z = model["test"], model["test"]["log_z"]
    exact = "" if t["exact"] is None else f", exact {t['exact']:.3f}"
    return (
        f"h={model['hidden']}: epoch {model['best_epoch']} (val), test log p(v) AIS {t['ais']:.3f} ± "
        f"{t['ais_stderr']:.3f}{exact} nats ({z['chains']} chains × {z['steps']} steps, {z['seconds']:.1f} s)"
    )
