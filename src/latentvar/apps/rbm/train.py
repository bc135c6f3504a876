"""Persistent contrastive divergence (Tieleman 2008) for an RBM on binary images, through the run harness.

The log-likelihood gradient of an RBM is a difference of two expectations,

    ∂/∂W mean_n log p(v_n) = E_data[v σ(c + vᵀW)ᵀ] - E_model[v hᵀ],

the first exact over a minibatch, the second estimated on ``fantasy`` persistent Gibbs chains that carry on
from one update to the next (``cd_steps`` block Gibbs sweeps per update). Updates: SGD with momentum
(0.5 for the first 5 epochs, then 0.9), learning rate lr / (1 + epoch / lr_decay), L2 weight decay on W.

Every ``eval_every`` epochs the val log-likelihood is measured (exactly for n_h <= 20, else by a small AIS
run) and the parameters with the best val score are kept: the epoch is chosen on val, never on test.

Resumable: a checkpoint at each epoch's end holds the parameters, their velocities, the fantasy chains and
the best parameters so far; epoch e's minibatch order, Gibbs draws and val AIS draws all come from one
generator of (seed, e), so a resumed run ends exactly as an unbroken one (and --epochs may be raised).

Shapes (named axes): ``n`` images, ``b`` batch, ``f`` fantasy chains, ``d`` pixels (n_v), ``k`` hidden.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from latentvar.apps.rbm.data import pixel_log_odds
from latentvar.apps.rbm.evaluate import ais_log_z, exact_log_z, mean_log_f
from latentvar.loopy.rbm import RBM
from latentvar.runs import Run, step_generator

PARAMS = ("W", "visible_bias", "hidden_bias")
INIT_STEP = 2**32 - 1  # the initial weights' and chains' stream, apart from every epoch's


@dataclass
class PCDConfig:
    """The settings that define a run (a resumed run must match them; the defaults were chosen on val)."""

    hidden: int = 16
    lr: float = 0.02
    lr_decay: float = 50.0
    batch: int = 20
    fantasy: int = 100
    cd_steps: int = 1
    weight_decay: float = 1e-4
    eval_every: int = 25
    val_chains: int = 100
    val_steps: int = 1000
    seed: int = 0


@dataclass
class Trained:
    """A finished run: the RBM with the best val log-likelihood (``best_epoch``), the last epoch's RBM,
    the fantasy chains, and the val history [{epoch, val_loglik, ...}]."""

    best: RBM
    last: RBM
    best_epoch: int
    fantasy: Tensor
    history: list[dict]
    epochs: int


def train(
    out: str | Path,
    train_x: Tensor,
    val_x: Tensor,
    config: PCDConfig,
    epochs: int,
    resume: bool = False,
    show_progress: bool = True,
) -> Trained:
    """Train (or continue, with ``resume``) the run in ``out`` up to ``epochs`` epochs."""
    run = Run(out, resume, step_key="epoch")
    log_odds = pixel_log_odds(train_x)
    state = initial_state(train_x.shape[1], config, log_odds)
    start, history, best_epoch = 0, [], 0
    if (saved := run.load()) is not None:
        run.check_settings(
            saved.meta["config"], {k: (f"--{k.replace('_', '-')}", v) for k, v in asdict(config).items()}
        )
        state = {k: saved.tensors[k] for k in state}
        start, history, best_epoch = (
            saved.step,
            saved.meta["history"],
            saved.meta["best_epoch"],
        )
    for epoch in run.progress(start, epochs, f"rbm pcd h={config.hidden}", disable=not show_progress):
        g = step_generator(config.seed, epoch)
        pcd_epoch(state, train_x, config, epoch, g)
        if (epoch + 1) % config.eval_every == 0:
            rbm = rbm_of(state, "")
            score = val_score(rbm, val_x, log_odds, config, g)
            history.append({"epoch": epoch + 1, **score})
            if not history[:-1] or score["val_loglik"] > max(h["val_loglik"] for h in history[:-1]):
                best_epoch = epoch + 1
                state |= {f"best.{k}": state[k].clone() for k in PARAMS}
        meta = {
            "kind": "rbm-pcd-digits",
            "epoch": epoch + 1,
            "config": asdict(config),
            "history": history,
            "best_epoch": best_epoch,
        }
        run.save(state, meta)
    done = max(start, epochs)
    if best_epoch == 0:  # no val evaluation yet: the last parameters are the only candidate
        state |= {f"best.{k}": state[k].clone() for k in PARAMS}
    return Trained(
        rbm_of(state, "best."), rbm_of(state, ""), best_epoch or done, state["fantasy"], history, done
    )


def initial_state(n_v: int, config: PCDConfig, log_odds: Tensor) -> dict[str, Tensor]:
    """W ~ N(0, 0.01²), visible biases at the data's log-odds, hidden biases 0 (Hinton's 2010 guide); zero
    velocities; fantasy chains drawn from the independent-pixels model."""
    g = step_generator(config.seed, INIT_STEP)
    W = 0.01 * torch.randn(n_v, config.hidden, generator=g, dtype=torch.float64)
    params = {
        "W": W,
        "visible_bias": log_odds.clone(),
        "hidden_bias": torch.zeros(config.hidden, dtype=torch.float64),
    }
    fantasy = (
        torch.rand(config.fantasy, n_v, generator=g, dtype=torch.float64) < torch.sigmoid(log_odds)
    ).double()
    return (
        params
        | {f"velocity.{k}": torch.zeros_like(v) for k, v in params.items()}
        | {f"best.{k}": v.clone() for k, v in params.items()}
        | {"fantasy": fantasy}
    )


def pcd_epoch(state: dict[str, Tensor], x: Tensor, config: PCDConfig, epoch: int, g: torch.Generator) -> None:
    """One pass over ``x`` in minibatches (order drawn from ``g``), updating ``state`` in place."""
    lr = config.lr / (1.0 + epoch / config.lr_decay)
    momentum = 0.5 if epoch < 5 else 0.9
    order = torch.randperm(len(x), generator=g)
    for start in range(0, len(x), config.batch):
        v0 = x[order[start : start + config.batch]]
        W, b, c = state["W"], state["visible_bias"], state["hidden_bias"]
        vf = state["fantasy"]
        for _ in range(config.cd_steps):
            hf = bernoulli(torch.sigmoid(vf @ W + c), g)
            vf = bernoulli(torch.sigmoid(hf @ W.T + b), g)
        state["fantasy"] = vf
        ph0, phf = torch.sigmoid(v0 @ W + c), torch.sigmoid(vf @ W + c)
        grads = {
            "W": v0.T @ ph0 / len(v0) - vf.T @ phf / len(vf) - config.weight_decay * W,
            "visible_bias": v0.mean(0) - vf.mean(0),
            "hidden_bias": ph0.mean(0) - phf.mean(0),
        }
        for k, grad in grads.items():
            velocity = state[f"velocity.{k}"]
            velocity.mul_(momentum).add_(grad, alpha=lr)
            state[k] = state[k] + velocity


def val_score(rbm: RBM, val_x: Tensor, log_odds: Tensor, config: PCDConfig, g: torch.Generator) -> dict:
    """The val mean log-likelihood: exact where Z can be enumerated, else a small AIS run."""
    log_f, _ = mean_log_f(rbm, val_x)
    exact = exact_log_z(rbm)
    if exact is not None:
        return {"val_loglik": log_f - exact, "exact": True}
    z = ais_log_z(rbm, log_odds, config.val_chains, config.val_steps, g)
    return {"val_loglik": log_f - z["log_z"], "exact": False, "stderr": z["stderr"]}


def rbm_of(state: dict[str, Tensor], prefix: str) -> RBM:
    return RBM(*(state[prefix + k] for k in PARAMS))


def bernoulli(p: Tensor, g: torch.Generator) -> Tensor:
    return (torch.rand(p.shape, generator=g, dtype=p.dtype) < p).double()
