"""The CLI half of issue 15's bad-input campaign: every case of tests/cli_bad_inputs.py (each `latentvar`
verb x each kind of bad input to its flags) run in-process, judged by the rule (exit 2 and stderr starting
`error: <flag>: `). Prints the markdown table of docs/reliability.md's "The CLI"; exits 1 if a case failed.

    PYTHONPATH=src .venv/bin/python bench/cli_bad_input_campaign.py
"""

from __future__ import annotations

import collections
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from cli_bad_inputs import CASES, KINDS, first_line, fixtures, run_case  # noqa: E402


def main() -> int:
    os.environ.setdefault("TQDM_DISABLE", "1")
    start = time.perf_counter()
    rows: dict[tuple, collections.Counter] = collections.defaultdict(collections.Counter)
    names: dict[tuple, set] = collections.defaultdict(set)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = fixtures(Path(tmp))
        for case in CASES:
            key = (" ".join(case.verb), case.kind)
            outcome = run_case(case, paths)
            rows[key][outcome.status] += 1
            if outcome.status == "refused":
                names[key].add(re.match(r"error: ([^:]+): ", outcome.stderr).group(1))
            else:
                failures.append((case.id, outcome.code, first_line(outcome.stderr)))
    print("| verb | bad input | tried | exit 2 naming the flag | exit 0 (valid) | failures |")
    print("|---|---|---:|---|---:|---:|")
    order = list(KINDS)
    for (verb, kind), n in sorted(rows.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]))):
        flags = ", ".join(f"`{f}`" for f in sorted(names[(verb, kind)]))
        refused = f"{n['refused']} ({flags})" if flags else "0"
        print(f"| `{verb}` | {KINDS[kind]} | {n.total()} | {refused} | {n['valid']} | {n['failure']} |")
    verbs = {c.verb for c in CASES}
    total = collections.Counter()
    for n in rows.values():
        total += n
    print(
        f"\n{len(verbs)} verbs, {len(CASES)} cases: {total['refused']} refused naming the flag, "
        f"{total['valid']} valid results, {total['failure']} failures ({time.perf_counter() - start:.0f} s)."
    )
    for case_id, code, line in failures:
        print(f"FAILED {case_id}: exit {code}: {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
