"""Turn trained colorization runs into the models the package ships (see colorize_models_build.sh).

    python scripts/colorize_ship.py photo --corpus data-cache/photos --runs runs/ship
    python scripts/colorize_ship.py twemoji --runs runs/ship

photo: takes the ``photo-latent*`` run (one per K) that `segeval.choose_run` picks on val (`pick_latent`);
vetoes a pick that misses the browser test's click on the bundled Hawa Mahal's sky (`segeval.click_check`)
and applies the rule again to the rest; ships the pick only if its val NLL is below the shipped model's
beyond the val photos' spread (`superiority`: the paired 95 % interval of the difference all below 0);
compares its folder's candidates beside every earlier round's recorded val rows (``--history``,
scripts/colorize_candidates.json, which it updates after a pick: the ARI bar is the project's);
picks its decoding on the corpus's **val** split -- the temperature T and the rebalancing λ
(`quantize.rebalance_weights`, the bin prior being the smoothed bin marginal of the *train* split's views)
by `choose_decoding`'s rule: never below the grey baseline's val AuC, then half the ground truth's
colourfulness at the best AuC, else the most colour -- then measures the latent, per-pixel (its own (T, λ)
by the same rule), regression and grey models (and ``--previous``, the model shipped before) once on the
**test** split; writes the latent run's best-on-val weights (no optimiser state) with ``temperature``,
``rebalance``, ``bin_prior``, ``val_decodings`` and ``test_metrics`` in its JSON to
src/latentvar/data/models/photo/.
twemoji: the twemoji run's weights with its Twemoji test metrics to src/latentvar/data/models/twemoji/.
The MODEL_CARD.md files beside them are written by hand from these numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from latentvar.colorize.colorizer import Colorizer
from latentvar.colorize.crops import EVAL_SIDE
from latentvar.colorize.evaluate import evaluate, grey_baseline
from latentvar.colorize.quantize import bin_prior
from latentvar.colorize.shipped import MODELS_DIR
from latentvar.colorize.train import load_data
from latentvar.io import load_checkpoint, save_checkpoint

# every photo candidate compared on val so far (rows of BENCHMARKS.md's rounds; the ship script adds its own)
HISTORY = Path(__file__).resolve().parent / "colorize_candidates.json"
TEMPERATURES = (0.2, 0.38, 0.5, 0.6, 0.7, 1.0)
REBALANCES = (0.0, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.7, 1.0)


def choose_decoding(colorizer: Colorizer, val, grey_auc: float) -> tuple[float, float, list[dict]]:
    """(T, λ, every val row), in this order of priority: never below "no colour at all" (val AuC >= the
    grey baseline's ``grey_auc``); then at least half as colourful as the ground truth, the highest val
    AuC among such rows; else the most colourful row that still beats grey (none does: the highest AuC)."""
    rows = []
    for lam in REBALANCES:
        for t in TEMPERATURES:
            m = evaluate(colorizer, val, temperature=t, rebalance=lam)
            rows.append({"temperature": t, "rebalance": lam, "auc": m["auc"], "auc_rebalanced": m["auc_rebalanced"],
                         "colorfulness": m["colorfulness"],
                         "colorfulness_ground_truth": m["colorfulness_ground_truth"]})  # fmt: skip
    beats_grey = [r for r in rows if r["auc"] >= grey_auc]
    vivid = [r for r in beats_grey if r["colorfulness"] >= 0.5 * r["colorfulness_ground_truth"]]
    if vivid:
        best = max(vivid, key=lambda r: r["auc"])
    elif beats_grey:
        best = max(beats_grey, key=lambda r: r["colorfulness"])
    else:
        best = max(rows, key=lambda r: r["auc"])
    return best["temperature"], best["rebalance"], rows


def pick_latent(
    runs: Path, corpus: Path, click_gate: bool = True, history: list | None = None
) -> tuple[dict, list]:
    """The ``photo-latent*`` run (one per K) that `segeval.choose_run` picks on val: the lowest val NLL of
    its kept weights (on ``corpus``'s val split, `segeval.corpus_validation`) among the runs whose prior
    has at most 25 connected components per used segment on the val split's hand-drawn regions
    (src/latentvar/data/photo_masks_val) and a val ARI within 0.04 of the best such run's. K is chosen on
    val, never test. With ``click_gate``, a pick that misses the browser test's click (`segeval.click_check`:
    a click in the bundled Hawa Mahal's sky must recolour >= 80 % of it and <= 10 % of the rest) is dropped
    and the rule applied again to the runs left. That photo is in the corpus's test split: it only ever
    vetoes a model the page would fail with, never ranks one; the log names every veto.

    ``history``: the val rows of earlier rounds' candidates (`HISTORY`), compared beside this folder's
    (`segeval.merge_candidates`): the ARI bar is the project's, and a recorded row that the rule picks stops
    the script (nothing in the folder beats it). A recorded row's veto is its recorded click. Returns the
    pick's row ("run": its folder; none for a recorded row) and every row compared (this folder's with
    their click checks), for the history."""
    from latentvar.colorize.composites import ground_truth_sets
    from latentvar.colorize.segeval import (
        CLICK_CHECK,
        VAL_MASKS,
        choose_run,
        click_check,
        corpus_validation,
        merge_candidates,
        score_set,
        val_region_clicks,
        vetoed_by_record,
    )

    def kept(p: Path) -> Path:  # what `export` and `Colorizer.load` take: best.* when there is one
        return p / "best.json" if (p / "best.json").exists() else p / "checkpoint.json"

    found = sorted(p for p in runs.glob("photo-latent*") if kept(p).exists())
    if not found:
        raise SystemExit(f"no photo-latent* run with a best.json or checkpoint.json in {runs}")
    items = ground_truth_sets(corpus, VAL_MASKS, "val", None)["hand"]
    rows = []
    for run in found:
        colorizer = Colorizer.load(run)
        prior = score_set(colorizer, items, baselines=False)["mean"]["prior"]
        val_nll = corpus_validation(colorizer, corpus)["val_nll"]  # one val split for runs of any build
        sky = val_region_clicks(colorizer, corpus)  # recorded beside the veto, a val measurement of it
        rows.append({"name": run.name, "run": run, "val_nll": val_nll, **prior,
                     "val_sky_passes": sky["passes"], "val_sky_photos": sky["photos"]})  # fmt: skip
        print(f"{run.name}: val NLL {val_nll:.4f}, val ARI {prior['ari']:.3f}, "
              f"{prior['components_per_segment']:.1f} components per segment, sky click on val photos "
              f"{sky['passes']} / {sky['photos']}", file=sys.stderr)  # fmt: skip

    def vetoed(row: dict) -> bool:
        if "run" not in row:  # an earlier round's row: its recorded sky click, if one was recorded
            refused = vetoed_by_record(row)
            if refused:
                print(f"{row['name']} (recorded, round {row.get('round')}): the rule's pick, vetoed by its "
                      "recorded click", file=sys.stderr)  # fmt: skip
            return refused
        click = click_check(Colorizer.load(row["run"]))
        # recorded as sky_*: the row's own click_* keys are the val photos' means (`score_set`)
        row.update({"sky_click_hit": bool(click["click_hit"]), "sky_click_inside": click["click_inside"],
                    "sky_click_outside": click["click_outside"]})  # fmt: skip
        print(f"{row['name']}: click check {CLICK_CHECK}: {click}", file=sys.stderr)
        if not click["click_hit"]:
            print(f"{row['name']}: the rule's pick, vetoed: a click in the {CLICK_CHECK[1]} of {CLICK_CHECK[0]} "
                  f"recolours {click['click_inside']:.0%} of it and {click['click_outside']:.0%} of the rest (the "
                  "browser test asks >= 80 % and <= 10 %); the rule again without it", file=sys.stderr)  # fmt: skip
        return not click["click_hit"]

    compared = merge_candidates(history or [], rows)
    try:
        pick = choose_run(compared, veto=vetoed if click_gate else None)
    except ValueError as e:
        raise SystemExit(f"{runs}: {e} (the browser test's click; --skip-click-check: no veto)") from None
    return pick, compared


def record(history_file: Path, compared: list) -> None:
    """Write every row compared back to ``history_file``, atomically; this folder's rows get the next round's
    number and the date."""
    from datetime import UTC, datetime

    from latentvar.io import atomic_write_json

    today = datetime.now(UTC).date().isoformat()
    this_round = 1 + max((r.get("round", 0) for r in compared if "run" not in r), default=0)
    rows = [
        {k: v for k, v in r.items() if k != "run"}
        | ({"round": this_round, "recorded": today} if "run" in r else {})
        for r in compared
    ]
    atomic_write_json(history_file, json.loads(json.dumps(rows, default=lambda o: o.item())))  # numpy scalars


def export(run: Path, name: str, extra: dict) -> Path:
    which = "best" if (run / "best.json").exists() else "checkpoint"
    tensors, meta = load_checkpoint(run, name=which)
    weights = {k: v for k, v in tensors.items() if k.startswith("model.")}
    meta = {k: v for k, v in meta.items() if k not in ("history",)}
    meta["config"]["out"] = f"shipped:{name}"
    meta.update(extra)
    out = MODELS_DIR / name
    save_checkpoint(out, weights, meta)
    return out


def add_intervals(metrics: dict) -> None:
    """Test intervals over photos (`colorize.bootstrap`, paired): the latent model's metrics, its difference
    from grey and from the previous model; each model's per_image parts are dropped afterwards."""
    from latentvar.colorize.bootstrap import intervals

    parts = {kind: m.pop("per_image") for kind, m in metrics.items() if "per_image" in m}
    latent = metrics["latent"]
    latent["ci95"] = {k: v["ci95"] for k, v in intervals(parts["latent"]).items()}
    latent["vs_grey"] = intervals(parts["latent"], parts["grey"])
    if "previous" in parts:
        names = ("nll_nats_per_pixel", "auc", "auc_rebalanced", "colorfulness_ratio")
        latent["vs_previous"] = intervals(parts["latent"], parts["previous"], names)


def superiority(challenger: Colorizer, incumbent: Colorizer, val) -> dict:
    """The challenger's val NLL minus the incumbent's, paired over the val photos (`bootstrap.intervals`):
    {"value", "ci95", "better"}, better only when the whole interval lies below 0. Without it, differences
    of a few thousandths -- well inside the photos' spread (about ±0.02 nats) -- replaced the model."""
    from latentvar.colorize.bootstrap import intervals

    if not torch.equal(challenger.bins.centres, incumbent.bins.centres):
        raise SystemExit("the shipped model quantises ab differently: its val NLL is not comparable")
    a, b = (evaluate(c, val, per_image=True)["per_image"] for c in (challenger, incumbent))
    diff = intervals(a, b, ("nll_nats_per_pixel",))["nll_nats_per_pixel"]
    return {**diff, "better": diff["ci95"][1] < 0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", choices=("photo", "twemoji"))
    ap.add_argument("--corpus", type=Path, default=Path("data-cache/photos"))
    ap.add_argument("--runs", type=Path, default=Path("runs/ship"))
    ap.add_argument(
        "--previous",
        type=Path,
        default=None,
        help="a copy of the model shipped before: measured on test beside the new one, with its own decoding",
    )
    ap.add_argument(
        "--history",
        type=Path,
        default=HISTORY,
        help="earlier rounds' candidate val rows (JSON), compared beside this folder's; updated after a pick",
    )
    ap.add_argument("--no-history", action="store_true", help="compare this folder's runs alone")
    ap.add_argument(
        "--skip-superiority-check",
        action="store_true",
        help="ship the rule's pick even if its val NLL is not below the shipped model's beyond the val photos' "
        "spread (`superiority`)",
    )
    ap.add_argument(
        "--skip-click-check",
        action="store_true",
        help="the rule's pick even if it misses the browser test's click (segeval.click_check): no veto",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    if args.name == "twemoji":
        c = Colorizer.load(args.runs / "twemoji")
        test = load_data("twemoji", 32, "test", c.bins)
        metrics = evaluate(c, test)
        out = export(args.runs / "twemoji", "twemoji", {"test_metrics": {"latent": metrics}})
        print(json.dumps(metrics, indent=1))
        print(f"-> {out}")
        return 0
    try:
        history = [] if args.no_history else json.loads(args.history.read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(
            f"--history: cannot read {args.history} ({e}); --no-history compares this folder alone"
        ) from None
    if not isinstance(history, list):
        raise SystemExit(f"--history: expected a JSON list of candidate rows in {args.history}")
    from latentvar.colorize.segeval import merge_candidates

    try:
        merge_candidates(history, [])  # a bad row stops here, before any candidate is measured
    except ValueError as e:
        raise SystemExit(f"--history: {args.history}: {e}") from None
    pick, compared = pick_latent(args.runs, args.corpus, not args.skip_click_check, history)
    if "run" not in pick:  # this round lost: its rows still count from now on
        if not args.no_history:
            record(args.history, compared)
        raise SystemExit(
            f"the rule picks {pick['name']}, an earlier round's candidate (round {pick.get('round')}: val "
            f"NLL {pick['val_nll']}, ARI {pick['ari']}); its weights are not in {args.runs}: nothing there "
            f"beats it (this round's rows recorded in {args.history})"
        )
    latent_run = pick["run"]
    print(f"latent run: {latent_run}", file=sys.stderr)
    latent = Colorizer.load(latent_run)
    train = load_data(str(args.corpus), EVAL_SIDE, "train", latent.bins)
    prior = bin_prior(train.y, latent.bins.num_bins)  # the train split's views, never val or test
    val = load_data(str(args.corpus), EVAL_SIDE, "val", latent.bins)
    latent.bin_prior = prior
    if not args.skip_superiority_check:  # the model it would replace: --previous, else the shipped one
        incumbent = Colorizer.load(args.previous if args.previous is not None else "photo")
        verdict = superiority(latent, incumbent, val)
        lo, hi = verdict["ci95"]
        print(
            f"val NLL minus the shipped model's: {verdict['value']:+.4f} [{lo:+.4f}, {hi:+.4f}]",
            file=sys.stderr,
        )
        if not verdict["better"]:
            if not args.no_history:
                record(args.history, compared)
            raise SystemExit(
                f"the rule picks {pick['name']}, but its val NLL is not below the shipped model's beyond the "
                f"val photos' spread ({verdict['value']:+.4f}, 95 % [{lo:+.4f}, {hi:+.4f}]): nothing shipped"
                + ("" if args.no_history else f" (this round's rows recorded in {args.history})")
            )
    grey = grey_baseline(EVAL_SIDE, str(args.corpus))
    grey_auc = evaluate(grey, val)["auc"]
    temperature, rebalance, table = choose_decoding(latent, val, grey_auc)
    print(
        json.dumps(table, indent=1), f"\nchosen T = {temperature}, rebalance = {rebalance}", file=sys.stderr
    )
    test = load_data(str(args.corpus), EVAL_SIDE, "test", latent.bins)
    metrics = {"latent": evaluate(latent, test, temperature=temperature, rebalance=rebalance, per_image=True)}
    for kind in ("per-pixel", "regression"):
        run = args.runs / f"photo-{kind}"
        if run.exists():
            other = Colorizer.load(run)
            if kind == "per-pixel":
                other.bin_prior = prior
                t, lam, _ = choose_decoding(other, val, grey_auc)
                metrics[kind] = evaluate(other, test, temperature=t, rebalance=lam)
            else:
                metrics[kind] = evaluate(other, test)
    if args.previous is not None:  # the model this one replaces, with the decoding it shipped with
        metrics["previous"] = evaluate(Colorizer.load(args.previous), test, per_image=True)
    metrics["grey"] = evaluate(grey, test, per_image=True)
    add_intervals(metrics)
    print(json.dumps(metrics, indent=1))
    extra = {"temperature": temperature, "rebalance": rebalance, "bin_prior": prior.tolist(),
             "val_grey_auc": grey_auc, "val_decodings": table, "test_metrics": metrics}  # fmt: skip
    print(f"-> {export(latent_run, 'photo', extra)}")
    if not args.no_history:
        record(args.history, compared)
        print(f"-> {args.history} ({len(compared)} candidates)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
