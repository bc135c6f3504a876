"""BDMC on images simulated from a trained Twemoji run: the old fixed sigmoid schedule beside the adaptive
estimator given the same budget (issue 22).

Both calls bracket log P(y) of the same simulated images (the same seed before each `estimate.bdmc`), from
the same start (``--init auto``: the encoder for a VAE, the prior for a GAN). Old: ``--chains`` chains ×
``--steps`` temperatures, one HMC transition of ``--leapfrog`` leapfrog steps per temperature, forward and
reverse: 2 · chains · steps chain-transitions. New: ``schedule="adaptive"`` with ``max_cost`` set to that
same number of chain-transitions over its tuning runs, its forward and its reverse run; its transitions
draw the leapfrog length with mean ``--leapfrog``, so the decoder gradient evaluations match in
expectation. A forward hook on the decoder counts what each call really spent: latents decoded with a
gradient (HMC) and without one (weights, bisection). Prints a markdown table: the gap per image, its mean,
wall and CPU seconds, chain-transitions, decoder evaluations.

    PYTHONPATH=src python bench/generator_bdmc_budget.py --run runs/vae --images 2 --chains 8 \
        --steps 10000 --leapfrog 5 --new-chains 16 --replicates 2
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import torch

from latentvar import estimate
from latentvar.apps.images.evaluate import resolve_ais_init
from latentvar.apps.images.train import load_eval


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


class DecoderCounter:
    """Latents through the decoder, split by whether they carry a gradient (HMC) or not."""

    def __init__(self, decoder: torch.nn.Module):
        self.grad = self.forward = 0
        decoder.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output) -> None:
        rows = int(inputs[0].shape[0])
        if inputs[0].requires_grad:  # an HMC gradient in z (not a weight or a bisection)
            self.grad += rows
        else:
            self.forward += rows

    def take(self) -> tuple[int, int]:
        out = (self.grad, self.forward)
        self.grad = self.forward = 0
        return out


def run_one(name, model, counter, args, options) -> dict:
    torch.manual_seed(args.seed + 1)  # the same simulated images for every call
    counter.take()
    start, cpu = time.perf_counter(), time.process_time()
    res = estimate.bdmc(model, args.images, **options)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    grad, fwd = counter.take()
    lower, upper = res.lower.estimate, res.upper.estimate
    gap = upper - lower
    if "cost" in res.lower.extra:
        transitions = int(res.lower.extra["cost"] + res.upper.extra["cost"])
    else:
        transitions = 2 * options["num_chains"] * options["num_steps"]
    row = {
        "name": name,
        "gap_per_image": gap.tolist(),
        "mean_gap": float(gap.mean()),
        "lower": lower.tolist(),
        "upper": upper.tolist(),
        "wall_s": wall,
        "cpu_s": cpu,
        "transitions": transitions,
        "decoder_grad_evals_per_image": grad // args.images,
        "decoder_forward_evals_per_image": fwd // args.images,
        "temperatures": int(res.upper.extra.get("num_temperatures", options.get("num_steps", 0))),
        "forward_acceptance": float(res.lower.extra["acceptance"].mean()),
        "reverse_acceptance": float(res.upper.extra["acceptance"].mean()),
        "lower_diagnostic": res.lower.diagnostic,
    }
    if "cost" in res.lower.extra:  # the two tuning runs' share of the budget
        row["tuning_transitions"] = transitions - 2 * int(res.upper.extra["cost"])
    for key in ("explore_temperatures", "num_resamples"):
        if key in res.lower.extra:
            value = res.lower.extra[key]
            row[key] = value.tolist() if torch.is_tensor(value) else value
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--images", type=int, default=2, help="simulated images")
    parser.add_argument("--chains", type=int, default=8, help="old: chains")
    parser.add_argument("--steps", type=int, default=10000, help="old: temperatures")
    parser.add_argument("--leapfrog", type=int, default=5)
    parser.add_argument("--step-size", type=float, default=0.02)
    parser.add_argument("--new-chains", type=int, default=16, help="new: estimation chains")
    parser.add_argument("--replicates", type=int, default=2, help="new: independent groups of chains")
    parser.add_argument("--init", choices=["auto", "encoder", "prior"], default="auto")
    parser.add_argument("--only", choices=["old", "new"], default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# {platform.node()} {platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)")
    print(f"# before: {_uptime()}", flush=True)
    run = load_eval(args.run)
    init = resolve_ais_init(args.init, run)
    # simulated images carry Gaussian noise outside [-1, 1]; the density is defined on all of R^D
    run.model.check_images = lambda images, name="y": images
    counter = DecoderCounter(run.model.decoder)
    common = {
        "leapfrog_steps": args.leapfrog,
        "step_size": args.step_size,
        "initial": run.encoder if init == "encoder" else None,
    }
    budget = 2 * args.chains * args.steps
    calls = {
        "old": dict(common, num_steps=args.steps, num_chains=args.chains, schedule="sigmoid"),
        "new": dict(
            common,
            num_chains=args.new_chains,
            replicates=args.replicates,
            schedule="adaptive",
            max_cost=budget,
        ),
    }
    rows = [run_one(k, run.model, counter, args, v) for k, v in calls.items() if args.only in (None, k)]
    print(f"# after: {_uptime()}")
    print(
        f"\n{args.run} ({init} start), {args.images} simulated images, budget {budget:,} chain-transitions\n"
    )
    print("| schedule | BDMC gap per image | mean gap | temperatures | chain-transitions | decoder grad "
          "evals / image | decoder forward-only evals / image | wall (CPU) |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        gaps = ", ".join(f"{g:.2f}" for g in r["gap_per_image"])
        print(
            f"| {r['name']} | {gaps} | {r['mean_gap']:.2f} | {r['temperatures']:,} | {r['transitions']:,} | "
            f"{r['decoder_grad_evals_per_image']:,} | {r['decoder_forward_evals_per_image']:,} | "
            f"{r['wall_s']:.0f} s ({r['cpu_s']:.0f}) |"
        )


if __name__ == "__main__":
    main()
