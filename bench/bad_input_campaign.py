"""The bad-input campaign of issue 15 at full size: every case of tests/bad_inputs.py (each public entry
point of the Python API x each kind of bad input) with up to ``--examples`` hypothesis draws, judged by the
campaign's rule (a ValueError starting with the argument's name, or a valid NaN-free result where the case
allows one). Prints the markdown table of docs/reliability.md; exits 1 if any draw failed.

    PYTHONPATH=src .venv/bin/python bench/bad_input_campaign.py --examples 200
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bad_inputs import CASES, KINDS, run_case  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=200, help="draws per case (default 200)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    # (entry, kind) -> counts of each outcome and the argument names refusals started with
    rows: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    names: dict[tuple[str, str], set] = collections.defaultdict(set)
    failures = []
    for case in CASES:
        key = (case.entry, case.kind)
        for value, outcome in run_case(case, args.examples):
            rows[key][outcome.status] += 1
            if outcome.status == "refused":
                names[key].add(outcome.detail)
            elif outcome.status == "failure":
                failures.append((case.id, repr(value)[:80], outcome.detail))
    order = {k: i for i, k in enumerate(KINDS)}
    entries = list(dict.fromkeys(c.entry for c in CASES))
    print(
        "| entry point | bad input | tried | ValueError naming the argument | valid result | other | failures |"
    )
    print("|---|---|---:|---|---:|---:|---:|")
    total = collections.Counter()
    for entry in entries:
        for kind in sorted({k for e, k in rows if e == entry}, key=order.get):
            c = rows[(entry, kind)]
            total.update(c)
            refused = (
                f"{c['refused']} (`{'`, `'.join(sorted(names[(entry, kind)]))}`)" if c["refused"] else "0"
            )
            print(
                f"| `{entry}` | {kind} | {sum(c.values())} | {refused} | {c['valid']} | {c['documented']} | "
                f"{c['failure']} |"
            )
    tried = sum(total.values())
    print(
        f"\n{len(entries)} entry points, {len(CASES)} cases, {tried} inputs tried: {total['refused']} refused by "
        f"name, {total['valid']} valid results, {total['documented']} documented other errors, "
        f"{total['failure']} failures ({time.perf_counter() - start:.0f} s)."
    )
    for case_id, value, detail in failures[:40]:
        print(f"FAILURE {case_id}: {value} -> {detail}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
