"""Faults survived, measured (issue 15, item 4): the campaign of tests/test_faults.py with more of everything,
printed as markdown tables.

    PYTHONPATH=src python bench/fault_injection.py [--kills 10] [--scale 3] [--corruptions 4000] [--seed 0]

1. Every training verb (`lm fit`, `hmm fit` with categorical and neural emissions, `ctc train`, `generator
   train` as a VAE and as a GAN, `colorize train`, the speech app, the RBM app; small models, the functions
   their commands call) runs in a child interpreter and is SIGKILLed ``--kills`` times, half of them paused
   inside a checkpoint write (after the tensors are written, after the fsync, or after the rename but before
   the .json copy), half at a random moment of a step-and-save cycle; each kill is followed by a resume.
   After each kill every checkpoint must load with finite tensors and a step that never goes back; the last
   resume runs to the end and is compared with an unbroken run tensor for tensor (all these verbs are
   meant to be deterministic; the table gives the largest difference where they are not). ``--scale`` multiplies the steps.
2. A full disk: each verb trains on a small tmpfs (needs root; skipped otherwise) that is filled once its
   first checkpoint exists; its next write must end the process with DiskFullError (exit 1) and leave the
   previous checkpoint loadable.
3. ``--corruptions`` truncated, bit-flipped, byte-changed or zeroed copies of two checkpoints (one with every
   tensor dtype a run saves, and the `lm fit` run of part 1), each fault at a random offset of a random
   region (the header length, the JSON header, the metadata JSON inside it, the tensor bytes): each load
   must be refused with a ValueError naming the file, or return exactly the original values (pickle and
   torch.load are disabled meanwhile). A wrong load or any other exception stops the script.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import killing  # noqa: E402 -- the harness shared with tests/test_faults.py


def kills_table(reports) -> str:
    rows = [
        "| verb | kills | paused inside a write (phase of every kill inside a write) | random-moment kills (inside a write) "
        "| resumes "
        "| checkpoints checked | final = unbroken | s |",
        "|---|---:|---|---:|---:|---:|---|---:|",
    ]
    total = dict(kills=0, write=0, random=0, random_write=0, resumes=0, checks=0)
    for r in reports:
        phases = ", ".join(f"{k} {v}" for k, v in sorted(r.phases.items()))
        paused = r.during_write - r.random_during_write
        rows.append(
            f"| {r.verb} | {r.kills} | {paused} ({phases}) | {r.random_kills} ({r.random_during_write}) "
            f"| {r.resumes} | {r.checks} | {'yes' if r.same_as_unbroken else f'no: max diff {r.difference:.1e}'} "
            f"| {r.seconds:.0f} |"
        )
        total["kills"] += r.kills
        total["write"] += paused
        total["random"] += r.random_kills
        total["random_write"] += r.random_during_write
        total["resumes"] += r.resumes
        total["checks"] += r.checks
    rows.append(
        f"| **all** | **{total['kills']}** | **{total['write']}** | **{total['random']} "
        f"({total['random_write']})** | **{total['resumes']}** | **{total['checks']}** "
        f"| {'all' if all(r.same_as_unbroken for r in reports) else 'NOT all'} | |"
    )
    return "\n".join(rows)


def disk_full(verb: killing.Verb, work: Path) -> dict:
    """Train ``verb`` (a long run) on a 16 MiB tmpfs, fill it once a checkpoint exists, and see how it ends."""
    tmpfs = killing.small_tmpfs(work / "disk", "16m")
    if tmpfs is None:
        return {"verb": verb.name, "skipped": "mount -t tmpfs not allowed"}
    if verb.prepare is not None:
        verb.prepare(work / "disk-data" / "data")
    with tmpfs as disk:
        out = disk / "run"
        code = verb.code(out, False)
        if verb.prepare is not None:  # its data outside the small disk
            code = code.replace(str(out.parent / "data"), str(work / "disk-data" / "data"))
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            env=killing.FAULT_ENV,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.time() + 300
        while not killing.checkpoints(out) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        filled = proc.poll() is None
        if filled:
            killing.fill_disk(disk)
        _, stderr = proc.communicate(timeout=300)
        last = (stderr.decode().strip().splitlines() or [""])[-1]
        loads = all(killing.load_checkpoint(folder) for folder in killing.checkpoints(out).values())
        return {
            "verb": verb.name,
            "filled": filled,
            "exit": proc.returncode,
            "error": last,
            "loads": loads and bool(killing.checkpoints(out)),
            "temporaries": len(killing.temporaries(out)),
        }


def disk_table(rows) -> str:
    out = ["| verb | exit status | last line on stderr | previous checkpoint loads |", "|---|---:|---|---|"]
    for r in rows:
        if "skipped" in r:
            out.append(f"| {r['verb']} | skipped: {r['skipped']} | | |")
            continue
        error = r["error"].split(": ", 1)
        text = (
            f"`{error[0]}`: {error[1].split(' writing ')[0].rsplit('/', 1)[-1]} ..."
            if len(error) > 1
            else r["error"]
        )
        status = r["exit"] if r["filled"] else f"{r['exit']} (finished before the disk filled)"
        out.append(f"| {r['verb']} | {status} | {text} | {'yes' if r['loads'] else 'NO'} |")
    return "\n".join(out)


def corruption_table(counts_by_source: dict[str, dict]) -> str:
    rows = ["| checkpoint | region | fault | tried | refused (ValueError naming the file) | loaded unchanged |",
            "|---|---|---|---:|---:|---:|"]  # fmt: skip
    tried = refused = unchanged = 0
    for source, counts in counts_by_source.items():
        for (region, kind), row in sorted(counts.items()):
            rows.append(
                f"| {source} | {region} | {kind} | {row['tried']} | {row['refused']} | {row['unchanged']} |"
            )
            tried, refused, unchanged = (
                tried + row["tried"],
                refused + row["refused"],
                unchanged + row["unchanged"],
            )
    rows.append(f"| **all** | | | **{tried}** | **{refused}** | **{unchanged}** |")
    rows.append(
        "\nWrong values loaded: 0; other exceptions: 0; unpicklings: 0 (the script stops on the first)."
    )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=10, help="SIGKILLs per verb")
    ap.add_argument("--scale", type=int, default=3, help="multiplies each verb's steps")
    ap.add_argument("--corruptions", type=int, default=4000, help="corrupted loads per checkpoint")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="", help="run only the verbs whose name contains this")
    ap.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = args.work or Path(tempfile.mkdtemp(prefix="fault_injection."))
    verbs = [v for v in killing.training_verbs(args.scale) if args.only in v.name]
    started = time.time()
    reports = []
    for i, verb in enumerate(verbs):
        reports.append(
            killing.kill_and_resume(verb, work / f"kill{i}", args.kills, args.seed * 1000 + i, strict=False)
        )
        print(f"{verb.name}: {reports[-1]}", file=sys.stderr, flush=True)
    disks = [
        disk_full(v, work / f"disk{i}")
        for i, v in enumerate(killing.training_verbs(50))
        if args.only in v.name
    ]
    sources = {"all dtypes": None}
    lm = next((i for i, v in enumerate(verbs) if v.name == "lm fit"), None)
    if lm is not None:
        sources["lm fit run"] = work / f"kill{lm}" / "killed" / "checkpoint.safetensors"
    counts = {
        name: killing.corruption_campaign(
            work / f"corrupt-{name.replace(' ', '-')}", args.corruptions, args.seed, src
        )
        for name, src in sources.items()
    }
    print(f"## Faults survived ({datetime.date.today()}, {platform.platform()}, torch {torch.__version__})\n")
    print(
        f"`PYTHONPATH=src python bench/fault_injection.py --kills {args.kills} --scale {args.scale} "
        f"--corruptions {args.corruptions} --seed {args.seed}` ({time.time() - started:.0f} s)\n"
    )
    print("### SIGKILL and resume\n")
    print(kills_table(reports))
    print("\n### A disk that fills up during a checkpoint write (a 16 MiB tmpfs)\n")
    print(disk_table(disks))
    print("\n### Truncated and corrupted checkpoints\n")
    print(corruption_table(counts))


if __name__ == "__main__":
    main()
