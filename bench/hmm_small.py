"""Small-problem HMM benchmark: latentvar.HMM against hmmlearn (GaussianHMM) and pomegranate (DenseHMM) in
the regime of the published cross-library comparison of HiddenMarkovModels.jl
(libs/HMMComparison/experiments/measurements.jl in gdalle/HiddenMarkovModels.jl): 50 sequences of 100
steps, 2, 4, ..., 10 states, diagonal Gaussian emissions of dimension 1, one thread; their parameters
(uniform start, transition rows of uniform draws normalised, means N(0, 1), standard deviations 1) and their
data (standard normal draws, not samples of the model).

Times forward (log P(y)), forward-backward (posteriors), Viterbi and one Baum-Welch iteration on identical
parameters and data, all three libraries in this process (median of interleaved rounds, ratios printed), and
checks that they agree: log-likelihoods, posteriors, Viterbi paths and the parameters after one EM step.

    PYTHONPATH=src python bench/hmm_small.py [--repeats 30] [--states 2,4,6,8,10] [--json out.json]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread everywhere, set before numpy / torch load their runtimes

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributions as D  # noqa: E402

from latentvar import HMM  # noqa: E402

SEQS, STEPS, DIM = 50, 100, 1
LIBS = ("latentvar", "hmmlearn", "pomegranate")
TASKS = ("forward", "forward-backward", "Viterbi", "Baum-Welch (1 iteration)")


def parameters(k: int, dim: int = DIM, seed: int = 0) -> dict[str, np.ndarray]:
    """HiddenMarkovModels.jl's benchmark parameters (HMMBenchmark build_params, dense case)."""
    rng = np.random.default_rng(seed)
    trans = rng.random((k, k))
    return {
        "start": np.full(k, 1.0 / k),
        "trans": trans / trans.sum(1, keepdims=True),
        "means": rng.standard_normal((k, dim)),
        "stds": np.ones((k, dim)),
    }


def data(n: int = SEQS, t: int = STEPS, dim: int = DIM, seed: int = 1) -> np.ndarray:
    """(n, t, dim) standard normal draws, as their build_data."""
    return np.random.default_rng(seed).standard_normal((n, t, dim))


# -- the three libraries, built from the same numbers --------------------------------------------------


def ours(p) -> HMM:
    emission = D.Independent(D.Normal(torch.tensor(p["means"]), torch.tensor(p["stds"])), 1)
    return HMM(torch.tensor(np.log(p["start"])), torch.tensor(np.log(p["trans"])), emission)


def hmmlearn_model(p):
    from hmmlearn.hmm import GaussianHMM

    # as their benchmark: scaling implementation, no re-initialisation, one EM step per fit; covars_prior 0
    # (default 1e-2) so that the M-step is plain maximum likelihood like the others'
    m = GaussianHMM(
        n_components=len(p["start"]), covariance_type="diag", n_iter=1, tol=-np.inf,
        implementation="scaling", init_params="", covars_prior=0.0,
    )  # fmt: skip
    m.startprob_, m.transmat_, m.means_, m.covars_ = p["start"], p["trans"], p["means"], p["stds"] ** 2
    return m


def pomegranate_model(p):
    from pomegranate.distributions import Normal
    from pomegranate.hmm import DenseHMM

    dists = [
        Normal(means=torch.tensor(m), covs=torch.tensor(s**2), covariance_type="diag")
        for m, s in zip(p["means"], p["stds"], strict=True)
    ]
    # ends of probability 1 add log 1 = 0: log P(y) over sequences of the given length, as the others
    # (their benchmark sets 1e-10, which shifts every log-likelihood by a constant)
    k = len(p["start"])
    return DenseHMM(
        dists, edges=torch.tensor(p["trans"]), starts=torch.tensor(p["start"]),
        ends=torch.ones(k, dtype=torch.float64), max_iter=1, tol=1e-10,
    )  # fmt: skip


class float64_default:
    """torch's default dtype float64 within: pomegranate makes its work tensors in the default dtype and
    fails on float64 parameters otherwise (HiddenMarkovModels.jl's benchmark sets it globally)."""

    def __enter__(self):
        self.was = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)

    def __exit__(self, *exc):
        torch.set_default_dtype(self.was)


def calls(p, y: np.ndarray) -> dict[str, dict]:
    """library -> task -> (setup, run): ``run(setup())`` is one timed call and returns what the agreement
    checks read. ``setup`` (not timed) builds a fresh model where the call changes it (a Baum-Welch step),
    else returns the one model."""
    n, t, dim = y.shape
    yt, x, lengths = torch.tensor(y), y.reshape(n * t, dim), np.full(n, t)
    model, ref = ours(p), hmmlearn_model(p)

    def no_grad(fn):
        def run(m):
            with torch.no_grad():
                return fn(m)

        return run

    def in_float64(fn):
        def run(m):
            with torch.no_grad(), float64_default():
                return fn(m)

        return run

    def pm_fresh():
        with float64_default():
            return pomegranate_model(p)

    pm = pm_fresh()
    return {
        "latentvar": {  # fit returns a new model: the one model serves every round
            TASKS[0]: (lambda: model, no_grad(lambda m: m.log_prob(yt))),
            TASKS[1]: (lambda: model, no_grad(lambda m: m.posterior(yt).marginals)),
            TASKS[2]: (lambda: model, no_grad(lambda m: m.posterior(yt).mode)),
            TASKS[3]: (lambda: model, lambda m: m.fit(yt, max_iter=1, reg_covar=0.0).model),
        },
        "hmmlearn": {
            TASKS[0]: (lambda: ref, lambda m: m.score(x, lengths)),
            TASKS[1]: (lambda: ref, lambda m: m.predict_proba(x, lengths)),
            TASKS[2]: (lambda: ref, lambda m: m.decode(x, lengths)[1]),
            TASKS[3]: (lambda: hmmlearn_model(p), lambda m: m.fit(x, lengths)),
        },
        "pomegranate": {
            TASKS[0]: (lambda: pm, in_float64(lambda m: m.log_probability(yt))),
            TASKS[1]: (lambda: pm, in_float64(lambda m: m.predict_proba(yt))),
            TASKS[2]: (lambda: pm, in_float64(lambda m: m.viterbi(yt))),
            TASKS[3]: (pm_fresh, in_float64(lambda m: m.fit(yt))),
        },
    }


# -- timing ----------------------------------------------------------------------------------------------


def time_all(p, y, repeats: int) -> tuple[dict, dict]:
    """(library -> task -> the seconds of each round, library -> task -> one result). Rounds are
    interleaved (each task by every library in turn, the library order rotated each round), so load that
    drifts on a shared machine touches all alike."""
    fns = calls(p, y)
    results = {
        lib: {task: run(setup()) for task, (setup, run) in tasks.items()} for lib, tasks in fns.items()
    }
    times: dict = {lib: {task: [] for task in tasks} for lib, tasks in fns.items()}
    libs = list(fns)
    for r in range(repeats):
        for task in TASKS:
            for lib in libs[r % 3 :] + libs[: r % 3]:
                setup, run = fns[lib][task]
                m = setup()
                t0 = time.perf_counter()
                run(m)
                times[lib][task].append(time.perf_counter() - t0)
    return times, results


# -- agreement -------------------------------------------------------------------------------------------


def _np(x) -> np.ndarray:
    return (x.detach().double().numpy() if torch.is_tensor(x) else np.asarray(x, dtype=np.float64)).copy()


def em_parameters(lib: str, fitted) -> dict[str, np.ndarray]:
    """start, transitions (rows renormalised), means, variances after one EM step, as NumPy."""
    if lib == "latentvar":
        base = fitted.emission.base_dist
        out = [fitted.log_init.exp(), fitted.log_trans.exp(), base.loc, base.scale**2]
    elif lib == "hmmlearn":
        out = [
            fitted.startprob_,
            fitted.transmat_,
            fitted.means_,
            fitted.covars_.reshape(fitted.means_.shape),
        ]
    else:  # pomegranate re-estimates the end probabilities too: its rows sum to 1 - P(end | state)
        out = [
            fitted.starts.exp(),
            fitted.edges.exp(),
            torch.stack([d.means for d in fitted.distributions]),
            torch.stack([d.covs for d in fitted.distributions]),
        ]
    start, trans, means, variances = (_np(v) for v in out)
    return {
        "start": start,
        "trans": trans / trans.sum(1, keepdims=True),
        "means": means,
        "variances": variances,
    }


def agreement(results: dict, k: int) -> dict[str, float | bool]:
    ours_, ref, pm = results["latentvar"], results["hmmlearn"], results["pomegranate"]
    lp = _np(ours_[TASKS[0]])
    post = _np(ours_[TASKS[1]])
    path = _np(ours_[TASKS[2]]).astype(int)
    fit = em_parameters("latentvar", ours_[TASKS[3]])
    checks: dict[str, float | bool] = {
        "loglik_rel_hmmlearn": abs(lp.sum() - ref[TASKS[0]]) / abs(ref[TASKS[0]]),
        "loglik_rel_pomegranate": float(np.max(np.abs(lp - _np(pm[TASKS[0]])) / np.abs(lp))),
        "posterior_abs_hmmlearn": float(np.abs(post.reshape(-1, k) - ref[TASKS[1]]).max()),
        "posterior_abs_pomegranate": float(np.abs(post - _np(pm[TASKS[1]])).max()),
        "viterbi_same_hmmlearn": bool((path.reshape(-1) == ref[TASKS[2]]).all()),
        "viterbi_same_pomegranate": bool((path == _np(pm[TASKS[2]]).reshape(path.shape)).all()),
    }
    for lib, fitted in (("hmmlearn", ref[TASKS[3]]), ("pomegranate", pm[TASKS[3]])):
        other = em_parameters(lib, fitted)
        checks[f"em_step_abs_{lib}"] = max(float(np.abs(fit[key] - other[key]).max()) for key in fit)
    return checks


def _ok(checks: dict) -> bool:
    tol = {"loglik": 1e-9, "posterior": 1e-6, "em_step": 1e-6}
    return all(
        value if isinstance(value, bool) else value < tol[next(p for p in tol if name.startswith(p))]
        for name, value in checks.items()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--states", default="2,4,6,8,10")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    import hmmlearn.hmm  # noqa: F401
    import pomegranate.hmm  # noqa: F401

    torch.set_num_threads(1)  # pomegranate's import sets torch's thread count to the core count
    y = data()
    print(
        f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, threads "
        f"{torch.get_num_threads()}, {SEQS} sequences x {STEPS} steps, dim {DIM}, median of {args.repeats} "
        f"interleaved rounds, load average {os.getloadavg()}"
    )
    print("times: medians; ratios: of the medians (of the minima)")
    print(
        "| K | task | latentvar (ms) | hmmlearn (ms) | pomegranate (ms) | hmmlearn / latentvar | "
        "pomegranate / latentvar |"
    )
    print("|---|---|---|---|---|---|---|")
    rows = []
    for k in (int(s) for s in args.states.split(",")):
        p = parameters(k)
        times, results = time_all(p, y, args.repeats)
        med = {
            lib: {task: statistics.median(ts) for task, ts in tasks.items()} for lib, tasks in times.items()
        }
        low = {lib: {task: min(ts) for task, ts in tasks.items()} for lib, tasks in times.items()}
        checks = agreement(results, k)
        for task in TASKS:
            a, b, c = (med[lib][task] for lib in LIBS)
            la, lb, lc = (low[lib][task] for lib in LIBS)
            print(
                f"| {k} | {task} | {a * 1e3:.2f} | {b * 1e3:.2f} | {c * 1e3:.2f} | {b / a:.1f}× ({lb / la:.1f}×) | "
                f"{c / a:.1f}× ({lc / la:.1f}×) |"
            )
        print(
            f"| {k} | agreement {'ok' if _ok(checks) else 'FAILED'} | " + json.dumps(checks) + " |||||",
            flush=True,
        )
        rows.append({"K": k, "median_s": med, "min_s": low, "checks": checks})
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
